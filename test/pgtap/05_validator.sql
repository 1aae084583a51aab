-- The revetl FDW validator: what sql/destinations.sql does not already cover.
-- Header injection and reserved headers, bounds, secrets on servers and in
-- user mappings, options where revetl takes none, and the host allowlist
-- (test/pgtap/run.py sets revetl.allowed_hosts = '127.0.0.1, localhost, .example.com').
BEGIN;
SELECT plan(51);

-- The error as 'SQLSTATE: message | detail | hint', to check all of its parts.
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hnt text;
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                          hnt = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || ' | ' || coalesce(det, '') || ' | ' || coalesce(hnt, '');
END $$;

CREATE SERVER tap_ok FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/ok');

-- Headers: no injection through names or values, no headers revetl sets itself.
SELECT is(pg_temp.err($$CREATE SERVER tap_h1 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
            url 'http://127.0.0.1:9/', headers '{"Content-Length": "5"}')$$),
          'HV024: header "Content-Length" in option "headers" cannot be set | revetl sets this header itself. | ',
          'a Content-Length header is refused: HV024, with the reason');
SELECT throws_ok($$CREATE SERVER tap_h2 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', headers '{"transfer-ENCODING": "chunked"}')$$,
                 'HV024', 'header "transfer-ENCODING" in option "headers" cannot be set',
                 'reserved header names are matched case-insensitively');
SELECT throws_ok($$CREATE SERVER tap_h3 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', headers '{"X-A": "b\nX-Evil: 1"}')$$,
                 'HV024', 'invalid value for header "X-A" in option "headers"',
                 'a bare line feed in a header value is refused');
SELECT throws_ok($$CREATE SERVER tap_h4 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', headers '{"X-A": "a\u0000b"}')$$,
                 'HV024', 'invalid value for header "X-A" in option "headers"',
                 'a NUL (JSON \u0000) in a header value is refused');
SELECT throws_ok($$CREATE SERVER tap_h5 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', headers '{"X-A\r\nX-Evil": "1"}')$$,
                 'HV024', 'invalid header name in option "headers"',
                 'a line break in a header name is refused');
SELECT throws_ok($$CREATE SERVER tap_h6 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', headers '{"X-A:": "1"}')$$,
                 'HV024', 'invalid header name in option "headers"', 'a colon in a header name is refused');
SELECT is(pg_temp.err($$CREATE SERVER tap_h7 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
            url 'http://127.0.0.1:9/', headers '{"X-A": 1}')$$),
          'HV024: invalid value for header "X-A" in option "headers" | Header values must be JSON strings. | ',
          'a non-string header value is refused');
SELECT throws_ok(format($$CREATE SERVER tap_h8 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                          url 'http://127.0.0.1:9/', headers %L)$$,
                        jsonb_build_object('X-A', repeat('a', 8193))),
                 'HV024', 'invalid value for header "X-A" in option "headers"', 'a header value over 8192 bytes');
SELECT lives_ok(format($$CREATE SERVER tap_h9 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                         url 'http://127.0.0.1:9/', headers %L)$$,
                       jsonb_build_object('X-A', repeat('a', 8192), 'X-B', 'ok')),
                'a header value of exactly 8192 bytes is accepted');

-- Secrets never go on a server, whatever they are called.
SELECT is(pg_temp.err($$CREATE SERVER tap_s1 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
            url 'http://127.0.0.1:9/', api_key 'k')$$),
          'HV00D: invalid option "api_key" for a revetl server | '
          'Secrets belong in a user mapping, where other roles cannot read them. | '
          'Use CREATE USER MAPPING FOR role SERVER name OPTIONS (token ''...'').',
          'api_key on a server: HV00D, pointing to user mappings');
SELECT throws_ok($$CREATE SERVER tap_s2 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', password 'p')$$,
                 'HV00D', 'invalid option "password" for a revetl server', 'password on a server: HV00D');
SELECT throws_ok($$CREATE SERVER tap_s3 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', secret 's')$$,
                 'HV00D', 'invalid option "secret" for a revetl server', 'secret on a server: HV00D');

-- Bounds of numbers and durations, and the method.
SELECT throws_ok($$CREATE SERVER tap_b1 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', max_attempts '21')$$,
                 'HV024', 'invalid value for option "max_attempts": "21"', 'max_attempts above 20');
SELECT throws_ok($$CREATE SERVER tap_b2 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', batch_size '10001')$$,
                 'HV024', 'invalid value for option "batch_size": "10001"', 'batch_size above 10000');
SELECT throws_ok($$CREATE SERVER tap_b3 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', batch_size '+5')$$,
                 'HV024', 'invalid value for option "batch_size": "+5"', 'a signed integer is refused');
SELECT throws_ok($$CREATE SERVER tap_b4 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', connect_timeout '121s')$$,
                 'HV024', 'invalid value for option "connect_timeout": "121s"', 'connect_timeout above 120s');
SELECT throws_ok($$CREATE SERVER tap_b5 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', timeout '601s')$$,
                 'HV024', 'invalid value for option "timeout": "601s"', 'timeout above 600s');
SELECT throws_ok($$CREATE SERVER tap_b6 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', timeout '1.5s')$$,
                 'HV024', 'invalid value for option "timeout": "1.5s"', 'a fractional duration is refused');
SELECT throws_ok($$CREATE SERVER tap_b7 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', timeout '1h')$$,
                 'HV024', 'invalid value for option "timeout": "1h"', 'timeout of an hour is above 600s');
SELECT lives_ok($$CREATE SERVER tap_b8 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                  url 'http://127.0.0.1:9/', max_attempts '20', batch_size '10000', timeout '10min',
                  connect_timeout '2min', method 'PATCH')$$,
                'the upper bounds themselves are accepted, and minutes are a unit');
SELECT lives_ok($$CREATE SERVER tap_b9 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                  url 'http://127.0.0.1:9/', max_attempts '1', batch_size '1', timeout '1', connect_timeout '5 S')$$,
                'the lower bounds are accepted; a bare number is milliseconds; units ignore case and spaces');
SELECT throws_ok($$CREATE SERVER tap_b10 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/', method 'post')$$,
                 'HV024', 'invalid value for option "method": "post"', 'methods are upper case');

-- URLs.
SELECT is(pg_temp.err($$CREATE SERVER tap_u1 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
            url 'http://127.0.0.1:9/a b')$$),
          'HV024: invalid value for option "url" | The URL may not contain whitespace and is limited to 2048 bytes. | ',
          'a URL with a space is refused');
SELECT throws_ok(format($$CREATE SERVER tap_u2 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url %L)$$,
                        'http://127.0.0.1:9/' || repeat('p', 2030)),
                 'HV024', 'invalid value for option "url"', 'a URL over 2048 bytes is refused');

-- User mappings take the credentials of one auth scheme and headers, and
-- their errors never show the secret.
SELECT throws_ok($$CREATE USER MAPPING FOR CURRENT_USER SERVER tap_ok OPTIONS (usr 'x')$$,
                 'HV00D', 'invalid option "usr" for a revetl user mapping', 'usr on a user mapping: HV00D');
SELECT throws_ok($$CREATE USER MAPPING FOR CURRENT_USER SERVER tap_ok OPTIONS (url 'http://127.0.0.1:9/')$$,
                 'HV00D', 'invalid option "url" for a revetl user mapping',
                 'a server option on a user mapping: HV00D');
SELECT throws_ok($$CREATE USER MAPPING FOR CURRENT_USER SERVER tap_ok OPTIONS (token '')$$,
                 'HV024', 'invalid value for option "token"', 'an empty token: HV024');
SELECT is(pg_temp.err($$CREATE USER MAPPING FOR CURRENT_USER SERVER tap_ok OPTIONS (token E's3cr3t\r\nX-Evil: 1')$$),
          'HV024: invalid value for option "token" | '
          'The token must be non-empty, at most 8192 bytes, without line breaks. | ',
          'a token with a line break: HV024, and the token is not in the error');
SELECT is(pg_temp.err($$CREATE USER MAPPING FOR CURRENT_USER SERVER tap_ok
                          OPTIONS (headers '{"Authorization": "Bearer s3cr3t\r\nX-Evil: 1"}')$$),
          'HV024: invalid value for header "Authorization" in option "headers" | '
          'Header values may not contain line breaks or NUL and are limited to 8192 bytes. | ',
          'a mapping header value with a line break: named by header, the value is not shown');
SELECT unalike(pg_temp.err($$CREATE USER MAPPING FOR CURRENT_USER SERVER tap_ok OPTIONS (headers 's3cr3t')$$),
               '%s3cr3t%', 'a mapping headers value that is not JSON is not shown in the error');
SELECT throws_ok($$CREATE USER MAPPING FOR CURRENT_USER SERVER tap_ok OPTIONS (headers '{"Host": "x"}')$$,
                 'HV024', 'header "Host" in option "headers" cannot be set',
                 'a reserved header is refused in a user mapping too');
SELECT lives_ok($$CREATE USER MAPPING FOR CURRENT_USER SERVER tap_ok
                    OPTIONS (token 't', headers '{"Authorization": "Bearer x"}')$$,
                'a user mapping with a token and headers is accepted');
SELECT throws_ok($$ALTER USER MAPPING FOR CURRENT_USER SERVER tap_ok OPTIONS (SET token '')$$,
                 'HV024', 'invalid value for option "token"', 'ALTER USER MAPPING is validated too');
SELECT is((SELECT umoptions FROM pg_user_mappings WHERE srvname = 'tap_ok' AND usename = current_user),
          ARRAY['token=t', 'headers={"Authorization": "Bearer x"}'], 'the failed ALTER changed nothing');

-- revetl takes no options on the wrapper, foreign tables or their columns.
SELECT throws_ok($$ALTER FOREIGN DATA WRAPPER revetl OPTIONS (ADD url 'http://127.0.0.1:9/')$$,
                 'HV00D', 'invalid option "url" for foreign data wrapper revetl', 'a wrapper option: HV00D');
SELECT is(pg_temp.err($$CREATE FOREIGN TABLE tap_ft1 (a int) SERVER tap_ok OPTIONS (table_name 'x')$$),
          'HV00D: invalid option "table_name" | revetl destinations take options on servers and user mappings only. | ',
          'a foreign table option: HV00D');
SELECT throws_ok($$CREATE FOREIGN TABLE tap_ft2 (a int OPTIONS (column_name 'b')) SERVER tap_ok$$,
                 'HV00D', 'invalid option "column_name"', 'a foreign table column option: HV00D');
SELECT lives_ok($$CREATE FOREIGN TABLE tap_ft3 (a int) SERVER tap_ok$$,
                'a foreign table without options can be created');
SELECT throws_ok($$SELECT * FROM tap_ft3$$, '55000', 'foreign-data wrapper "revetl" has no handler',
                 'but it cannot be read: revetl servers are destinations');

-- The host allowlist.
SELECT is(current_setting('revetl.allowed_hosts'), '127.0.0.1, localhost, .example.com',
          'run.py set revetl.allowed_hosts');
SELECT lives_ok($$CREATE SERVER tap_a1 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                  url 'https://api.example.com/hook')$$, 'a subdomain of an allowed .domain is accepted');
SELECT lives_ok($$CREATE SERVER tap_a2 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                  url 'HTTPS://API.Example.COM:8443/hook')$$, 'host and scheme are compared ignoring case');
SELECT lives_ok($$CREATE SERVER tap_a3 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                  url 'http://localhost:8080/hook')$$, 'an allowed host with a port is accepted');
SELECT is(pg_temp.err($$CREATE SERVER tap_a4 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
            url 'https://evil.test/hook')$$),
          '42501: destination host "evil.test" is not in revetl.allowed_hosts |  | '
          'A superuser can add it to revetl.allowed_hosts in postgresql.conf and reload.',
          'a host not on the allowlist: 42501, with a hint');
SELECT throws_ok($$CREATE SERVER tap_a5 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'https://api.example.com@evil.test/hook')$$,
                 '42501', 'destination host "evil.test" is not in revetl.allowed_hosts',
                 'an allowed name as user info does not make the host allowed');
SELECT throws_ok($$CREATE SERVER tap_a6 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'https://evil.test#@api.example.com/hook')$$,
                 '42501', 'destination host "evil.test" is not in revetl.allowed_hosts',
                 'an allowed name after a fragment does not make the host allowed');
SELECT throws_ok($$CREATE SERVER tap_a7 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'https://notexample.com/hook')$$,
                 '42501', 'destination host "notexample.com" is not in revetl.allowed_hosts',
                 '.example.com does not allow a name that merely ends in example.com');
SELECT throws_ok($$CREATE SERVER tap_a8 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1.evil.test/hook')$$,
                 '42501', 'destination host "127.0.0.1.evil.test" is not in revetl.allowed_hosts',
                 'an allowed address as a prefix does not make the host allowed');
SELECT throws_ok($$ALTER SERVER tap_ok OPTIONS (SET url 'https://evil.test/hook')$$,
                 '42501', 'destination host "evil.test" is not in revetl.allowed_hosts',
                 'ALTER SERVER is checked against the allowlist too');
SELECT is((SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'tap_ok'),
          ARRAY['type=webhook', 'url=http://127.0.0.1:9/ok'], 'the refused ALTER SERVER changed nothing');

-- Only roles with USAGE on the wrapper (superusers, by default) create destinations.
CREATE ROLE tap_plain;
SET LOCAL ROLE tap_plain;
SELECT throws_ok($$CREATE SERVER tap_p1 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                   url 'http://127.0.0.1:9/')$$,
                 '42501', 'permission denied for foreign-data wrapper revetl',
                 'an ordinary role may not create a destination: 42501');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

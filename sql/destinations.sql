-- Destinations are foreign servers of the revetl wrapper; its validator
-- rejects unknown types and options with PostgreSQL-style errors.
CREATE EXTENSION revetl;

-- A good webhook server, with non-secret headers and tuning options.
CREATE SERVER hooks FOREIGN DATA WRAPPER revetl
  OPTIONS (type 'webhook', url 'http://127.0.0.1:9/events',
           headers '{"X-Source": "revetl"}', timeout '5s', batch_size '50', max_attempts '3');
SELECT srvname, srvoptions FROM pg_foreign_server WHERE srvname = 'hooks';

-- The secret goes in a user mapping.
CREATE USER MAPPING FOR CURRENT_USER SERVER hooks OPTIONS (token 'secret-token');
CREATE USER MAPPING FOR PUBLIC SERVER hooks OPTIONS (headers '{"X-Api-Key": "k"}');

-- Type is required and must be known.
CREATE SERVER bad1 FOREIGN DATA WRAPPER revetl OPTIONS (url 'http://127.0.0.1:9/');
CREATE SERVER bad2 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhok', url 'http://127.0.0.1:9/');
CREATE SERVER bad3 FOREIGN DATA WRAPPER revetl OPTIONS (type 'kafka', url 'http://127.0.0.1:9/');
-- A webhook needs a URL, and only http(s) URLs.
CREATE SERVER bad4 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook');
CREATE SERVER bad5 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'file:///etc/passwd');
CREATE SERVER bad6 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://');
-- Unknown options are named, with a suggestion when one is close.
CREATE SERVER bad7 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', batchsize '10');
CREATE SERVER bad8 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', colour 'red');
-- Secrets never belong on the server, where every role can read them.
CREATE SERVER bad9 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', token 'x');
-- Values are checked: integers and durations within bounds, headers as JSON.
CREATE SERVER bad10 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', batch_size '0');
CREATE SERVER bad11 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', timeout '0s');
CREATE SERVER bad12 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', timeout 'soon');
CREATE SERVER bad13 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', headers 'X-A: b');
CREATE SERVER bad14 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', headers '{"X-A": "b\r\nX-Evil: 1"}');
CREATE SERVER bad15 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', method 'GET');
-- ALTER SERVER is validated the same way, and a failed ALTER changes nothing.
ALTER SERVER hooks OPTIONS (SET url 'ftp://127.0.0.1/');
ALTER SERVER hooks OPTIONS (ADD connect_timeout '2s');
SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'hooks';
-- ALTER SERVER is judged on the options it leaves, exactly as CREATE SERVER
-- with those options would be: an option of another type is refused, and a
-- type change needs what the new type requires.
CREATE SERVER hs FOREIGN DATA WRAPPER revetl OPTIONS (type 'hubspot', timeout '5s');
ALTER SERVER hs OPTIONS (ADD method 'PUT');
CREATE SERVER hs_bad FOREIGN DATA WRAPPER revetl OPTIONS (type 'hubspot', timeout '5s', method 'PUT');
ALTER SERVER hs OPTIONS (SET type 'webhook');
CREATE SERVER hooks2 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/', method 'PUT');
ALTER SERVER hooks2 OPTIONS (SET type 'hubspot', DROP url);
ALTER SERVER hooks2 OPTIONS (SET type 'hubspot', DROP url, DROP method);
SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'hooks2';
-- User mappings take the credentials of one auth scheme (token; user and
-- password; api_key) and headers; bad values name the option, not the secret.
ALTER USER MAPPING FOR CURRENT_USER SERVER hooks OPTIONS (ADD passwd 'x');
ALTER USER MAPPING FOR CURRENT_USER SERVER hooks OPTIONS (ADD password 'x');
ALTER USER MAPPING FOR PUBLIC SERVER hooks OPTIONS (SET headers '{"bad header": "value-is-secret"}');
-- The wrapper itself takes no options.
ALTER FOREIGN DATA WRAPPER revetl OPTIONS (ADD type 'webhook');

-- Options of user mappings stay hidden from roles that are not their user.
CREATE ROLE someone_else;
SET ROLE someone_else;
SELECT srvname, umoptions FROM pg_user_mappings WHERE srvname = 'hooks' ORDER BY usename;
RESET ROLE;
DROP ROLE someone_else;

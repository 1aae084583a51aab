-- create_sync: the row it writes, the shadow table it makes, the errors it
-- raises (each leaving nothing behind), and drop_sync undoing it all.
BEGIN;
SELECT plan(69);

CREATE SERVER tap_hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/tap');
CREATE SCHEMA tap_s;
CREATE TABLE tap_s.people (a int, b text, c text, d int);
CREATE TABLE tap_s."Odd Name" ("Key Col" int, "v" text);
CREATE ROLE tap_owner;
GRANT USAGE ON SCHEMA tap_s TO tap_owner;
GRANT SELECT ON tap_s.people TO tap_owner;
GRANT USAGE ON FOREIGN SERVER tap_hooks TO tap_owner;
-- pgTAP's functions live in public; the model is found through tap_s.
SET LOCAL search_path = public, tap_s;

CREATE FUNCTION pg_temp.sync_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM revetl.syncs';
CREATE FUNCTION pg_temp.shadow_count() RETURNS bigint LANGUAGE sql AS
  $$SELECT count(*) FROM pg_class WHERE relnamespace = 'revetl'::regnamespace AND relname LIKE 'shadow\_%'
      AND relkind = 'r'$$;
CREATE TEMP TABLE before AS SELECT pg_temp.sync_count() AS syncs, pg_temp.shadow_count() AS shadows;
GRANT SELECT ON before TO PUBLIC;
CREATE TEMP TABLE created (id bigint);
GRANT ALL ON created TO PUBLIC;

-- A sync made by an ordinary role, every parameter passed by name and out of order.
SET LOCAL ROLE tap_owner;
SELECT lives_ok($$
  INSERT INTO created
  SELECT revetl.create_sync(schedule => 'every 15 minutes', match_on => 'email', object => 'contacts',
                            options => '{"batch_size": 7}',
                            map => '[{"field": "who", "expression": "upper(c)"}, {"field": "n", "expression": "d + 1"}]',
                            mode => 'mirror', key => ARRAY['b', 'a'], destination => 'tap_hooks',
                            model => 'people', name => 'tap_people')
$$, 'create_sync takes named parameters in any order');
SELECT results_eq(
  $$SELECT name, owner::text, model_kind, model_schema, model_name, model_query, destination, object, match_on,
           key_columns, mode, map, options, paused, schedule_kind, schedule_value
      FROM revetl.syncs WHERE name = 'tap_people'$$,
  $$VALUES ('tap_people'::text, current_user::text COLLATE "default", 'relation'::text, 'tap_s'::text,
            'people'::text, NULL::text, 'tap_hooks'::text, 'contacts'::text, 'email'::text, ARRAY['b', 'a'],
            'mirror'::text,
            '[{"field": "who", "expression": "upper(c)"}, {"field": "n", "expression": "d + 1"}]'::jsonb,
            '{"batch_size": 7}'::jsonb, false, 'every'::text, '15 minutes'::text)$$,
  'the row holds the given values: owner = current_user, model qualified, key and map order kept');
RESET ROLE;
SET LOCAL search_path = public, tap_s;

SELECT is(pg_temp.sync_count(), (SELECT syncs + 1 FROM before), 'exactly one row was added to revetl.syncs');
SELECT is((SELECT owner::text FROM revetl.syncs WHERE name = 'tap_people'), 'tap_owner',
          'the owner is the role that called create_sync');
SELECT is((SELECT id FROM created), (SELECT id FROM revetl.syncs WHERE name = 'tap_people'),
          'create_sync returns the id of the new row');
SELECT is((SELECT key_columns[1] FROM revetl.syncs WHERE name = 'tap_people'), 'b',
          'the first key column is the first one given, not the table''s first column');
SELECT is((SELECT search_path FROM revetl.syncs WHERE name = 'tap_people'), 'public, tap_s',
          'the creator''s search_path is recorded for map expressions');
SELECT cmp_ok((SELECT created_at FROM revetl.syncs WHERE name = 'tap_people'), '=', now(),
              'created_at is the creating transaction''s time');

-- Its shadow table.
CREATE TEMP TABLE shadow AS SELECT shadow_table::name AS t FROM revetl.syncs WHERE name = 'tap_people';
SELECT is((SELECT t::text FROM shadow), 'shadow_' || (SELECT id FROM created), 'the shadow table is shadow_<id>');
SELECT has_table('revetl', (SELECT t FROM shadow), 'the shadow table exists in schema revetl');
SELECT columns_are('revetl', (SELECT t FROM shadow), ARRAY['key', 'row_hash', 'dest_id', 'run_id', 'synced_at', 'verify_after',
                                                          'version', 'removed'],
                   'the shadow table has the columns key, row_hash, dest_id, run_id, synced_at, verify_after, '
                   'version, removed');
SELECT col_is_pk('revetl', (SELECT t FROM shadow), 'key', 'key is the shadow table''s primary key');
SELECT col_type_is('revetl', (SELECT t FROM shadow), 'key', 'text', 'shadow key is text');
SELECT is((SELECT collname::text FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
            WHERE attrelid = ('revetl.' || (SELECT t FROM shadow))::regclass AND attname = 'key'), 'C',
          'shadow key has collation "C" (bytewise comparison with the plan''s key text)');
SELECT col_type_is('revetl', (SELECT t FROM shadow), 'row_hash', 'bigint', 'shadow row_hash is bigint');
SELECT col_not_null('revetl', (SELECT t FROM shadow), 'row_hash', 'shadow row_hash is NOT NULL');
SELECT col_type_is('revetl', (SELECT t FROM shadow), 'run_id', 'bigint', 'shadow run_id is bigint');
SELECT col_type_is('revetl', (SELECT t FROM shadow), 'synced_at', 'timestamp with time zone',
                   'shadow synced_at is timestamptz');
SELECT table_privs_are('revetl', (SELECT t FROM shadow), 'tap_owner', ARRAY['SELECT'],
                       'the sync owner has SELECT and nothing else on its shadow table');
SELECT table_privs_are('revetl', (SELECT t FROM shadow), 'public', ARRAY[]::name[],
                       'PUBLIC has no privilege on the shadow table');
SELECT is((SELECT relowner::regrole::text FROM pg_class
            WHERE oid = ('revetl.' || (SELECT t FROM shadow))::regclass),
          (SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'revetl'),
          'the shadow table belongs to the extension owner, not to the sync owner');
SELECT is(pg_temp.shadow_count(), (SELECT shadows + 1 FROM before), 'exactly one shadow table was added');

-- Other model forms: a query is stored verbatim, quoted names are resolved.
SELECT lives_ok($$SELECT revetl.create_sync('tap_query', 'SELECT a AS id, c FROM tap_s.people WHERE d > 0',
                                           'tap_hooks', ARRAY['id'])$$, 'a query model is accepted');
SELECT results_eq($$SELECT model_kind, model_schema, model_name, model_query, mode, map, options, object,
                           match_on, schedule_kind, schedule_value
                      FROM revetl.syncs WHERE name = 'tap_query'$$,
                  $$VALUES ('query'::text, NULL::text, NULL::text,
                            'SELECT a AS id, c FROM tap_s.people WHERE d > 0'::text, 'upsert'::text, NULL::jsonb,
                            '{}'::jsonb, NULL::text, NULL::text, 'manual'::text, NULL::text)$$,
                  'a query model is stored as text, with the default mode, map, options and schedule');
SELECT lives_ok($$SELECT revetl.create_sync('tap_objmap', 'people', 'tap_hooks', ARRAY['a'],
                                           map => '{"who": "upper(c)", "n": "d + 1"}')$$,
                'a map may also be given as a JSON object');
SELECT ok((SELECT jsonb_array_length(map) = 2
                  AND map @> '[{"field": "who", "expression": "upper(c)"}, {"field": "n", "expression": "d + 1"}]'
             FROM revetl.syncs WHERE name = 'tap_objmap'),
          'an object map is stored as the array of its fields and expressions');
CREATE TEMP TABLE objmap AS SELECT id, shadow_table FROM revetl.syncs WHERE name = 'tap_objmap';
SELECT is(revetl.create_sync('tap_objmap', 'people', 'tap_hooks', ARRAY['a'], map => '{"who": "lower(c)"}',
                             replace => true),
          (SELECT id FROM objmap), 'create_sync(replace => true) replaces the sync in place and returns its id');
SELECT results_eq($$SELECT id, shadow_table, map FROM revetl.syncs WHERE name = 'tap_objmap'$$,
                  $$SELECT id, shadow_table, '[{"field": "who", "expression": "lower(c)"}]'::jsonb FROM objmap$$,
                  'the replaced sync keeps its id and shadow table and has the new map');
SELECT lives_ok($$SELECT revetl.create_sync('tap_odd', '"Odd Name"', 'tap_hooks', ARRAY['Key Col'])$$,
                'a quoted, mixed-case model name and key column are accepted');
SELECT results_eq($$SELECT model_schema, model_name, key_columns FROM revetl.syncs WHERE name = 'tap_odd'$$,
                  $$VALUES ('tap_s'::text, 'Odd Name'::text, ARRAY['Key Col'])$$,
                  'the quoted model name is stored unquoted, with its schema');

CREATE TEMP TABLE mid AS SELECT pg_temp.sync_count() AS syncs, pg_temp.shadow_count() AS shadows;

-- Errors: exact SQLSTATE and message; nothing is left behind.
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'people', 'no_such_server', ARRAY['a'])$$,
                 '42704', 'server "no_such_server" does not exist', 'unknown server: 42704');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM mid), 'no row after the unknown-server error');
SELECT throws_ok($$SELECT revetl.create_sync('tap_people', 'people', 'tap_hooks', ARRAY['a'])$$,
                 '42710', 'sync "tap_people" already exists', 'duplicate name: 42710');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM mid), 'no row after the duplicate-name error');
SELECT is((SELECT key_columns FROM revetl.syncs WHERE name = 'tap_people'), ARRAY['b', 'a'],
          'the existing sync is untouched by the duplicate');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'people', 'tap_hooks', ARRAY['a', 'zz'])$$,
                 '42703', 'column "zz" does not exist in model tap_s.people', 'unknown key column: 42703');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM mid), 'no row after the unknown-key-column error');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'people', 'tap_hooks', ARRAY['A'])$$,
                 '42703', 'column "A" does not exist in model tap_s.people',
                 'key columns are case-sensitive names, not identifiers to fold');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'people', 'tap_hooks', ARRAY['a'], mode => 'Mirror')$$,
                 '22023', 'invalid sync mode "Mirror"', 'bad mode: 22023 (modes are case-sensitive)');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM mid), 'no row after the bad-mode error');
SELECT throws_ok($$SELECT revetl.create_sync(NULL, 'people', 'tap_hooks', ARRAY['a'])$$,
                 '22004', 'sync name must not be null', 'null name: 22004');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM mid), 'no row after the null-name error');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', NULL, 'tap_hooks', ARRAY['a'])$$,
                 '22004', 'model must not be null', 'null model: 22004');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'people', NULL, ARRAY['a'])$$,
                 '22004', 'destination must not be null', 'null destination: 22004');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'people', 'tap_hooks', ARRAY['a'], options => '{"colour": 1}')$$,
                 '22023', 'unknown sync option "colour"', 'unknown option: 22023');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM mid), 'no row after the unknown-option error');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'people', 'tap_hooks', ARRAY['a'],
                                            map => '{"e": "c); DROP TABLE tap_s.people; --"}')$$,
                 '42601', 'syntax error at or near ")"', 'map syntax error: 42601');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM mid), 'no row after the map syntax error');
SELECT has_table('tap_s', 'people', 'the model table survived the map injection attempt');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'WITH d AS (DELETE FROM tap_s.people RETURNING *) SELECT * FROM d',
                                            'tap_hooks', ARRAY['a'])$$,
                 '22023', 'invalid model query', 'data-modifying CTE model: 22023');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM mid), 'no row after the data-modifying CTE error');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'WITH d AS (SELECT 1 AS a), e AS (INSERT INTO tap_s.people (a) VALUES (1) RETURNING a) SELECT * FROM d',
                                            'tap_hooks', ARRAY['a'])$$,
                 '22023', 'invalid model query', 'a data-modifying CTE after a plain one is refused too');
INSERT INTO tap_s.people VALUES (1, 'x', 'c1', 1), (1, 'y', 'c2', 2);
SELECT lives_ok($$SELECT revetl.create_sync('tap_x', 'people', 'tap_hooks', ARRAY['a'])$$,
                'a key the data makes non-unique is a WARNING, not an error (runs report the rows invalid)');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM mid) + 1, 'the sync with a non-unique key exists');
SELECT lives_ok($$SELECT * FROM revetl.execute('DROP SYNC tap_x')$$, 'and can be dropped');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'people', 'tap_hooks', ARRAY['a'],
                                            schedule => 'sometimes')$$,
                 '22023', 'invalid schedule "sometimes"', 'an invalid schedule: 22023');
SELECT throws_ok($$SELECT revetl.create_sync('tap_x', 'people', 'tap_hooks', '{{a},{b}}'::text[])$$,
                 '2202E', 'key must be a one-dimensional array', 'a two-dimensional key: 2202E');
SELECT is(pg_temp.shadow_count(), (SELECT shadows FROM mid), 'no shadow table was left by any failure');
SELECT is_empty($$SELECT 1 FROM revetl.syncs WHERE name = 'tap_x'$$, 'no sync tap_x exists after the failures');

-- drop_sync removes the row and the shadow table.
SET LOCAL ROLE tap_owner;
SELECT lives_ok($$SELECT revetl.drop_sync('tap_people')$$, 'the owner drops its sync');
RESET ROLE;
SET LOCAL search_path = public, tap_s;
SELECT is_empty($$SELECT 1 FROM revetl.syncs WHERE name = 'tap_people'$$, 'the sync row is gone');
SELECT hasnt_table('revetl', (SELECT t FROM shadow), 'the shadow table is gone');
SET LOCAL client_min_messages = warning;  -- the "does not exist, skipping" notices
SELECT lives_ok($$SELECT revetl.drop_sync('tap_people', if_exists => true)$$,
                'drop_sync(if_exists => true) on a missing sync does not throw');
SELECT lives_ok($$SELECT revetl.drop_sync('never_existed', true)$$,
                'drop_sync(name, true) on a missing sync does not throw');
RESET client_min_messages;
SELECT throws_ok($$SELECT revetl.drop_sync('tap_people')$$, '42704', 'sync "tap_people" does not exist',
                 'drop_sync without if_exists on a missing sync: 42704');
SELECT throws_ok($$SELECT revetl.drop_sync(NULL, true)$$, '22004', 'sync name must not be null',
                 'drop_sync(NULL): 22004, even with if_exists');
SELECT lives_ok($$SELECT revetl.drop_sync('tap_query'); SELECT revetl.drop_sync('tap_odd');
                  SELECT revetl.drop_sync('tap_objmap')$$,
                'the superuser drops the other syncs');
SELECT is(pg_temp.sync_count(), (SELECT syncs FROM before), 'back to the syncs there were before');
SELECT is(pg_temp.shadow_count(), (SELECT shadows FROM before), 'back to the shadow tables there were before');

SELECT * FROM finish();
ROLLBACK;

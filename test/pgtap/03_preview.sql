-- preview_sync: the actions and payloads a run would send, computed against
-- the shadow state, sending and recording nothing.
BEGIN;
SELECT plan(37);

CREATE SERVER tap_hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/tap');
CREATE TABLE tap_items (id int PRIMARY KEY, name text, price numeric, note text);
INSERT INTO tap_items VALUES (1, 'book', 12.5, 'x'), (2, 'pen', 2.5, NULL), (3, 'ink', NULL, 'y');
CREATE TABLE tap_many (id int PRIMARY KEY);
INSERT INTO tap_many SELECT generate_series(1, 15);
CREATE TABLE tap_dups (id int, v text);
INSERT INTO tap_dups VALUES (1, 'a'), (2, 'd');

-- Writes (or overwrites) a shadow row for a sync, as the worker would after a
-- delivery.
CREATE FUNCTION pg_temp.shadow_put(sync text, key text, row_hash bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('INSERT INTO revetl.%I (key, row_hash, dest_id, run_id) VALUES ($1, $2, $3, 0) '
                 'ON CONFLICT (key) DO UPDATE SET row_hash = excluded.row_hash',
                 (SELECT shadow_table FROM revetl.syncs WHERE name = sync))
    USING key, row_hash, 'dest-' || key;
END $$;

SELECT lives_ok($$SELECT revetl.create_sync('tap_up', 'tap_items', 'tap_hooks', ARRAY['id'],
                   map => '{"title": "upper(name)", "cents": "(price * 100)::int"}')$$, 'an upsert sync');
SELECT lives_ok($$SELECT revetl.create_sync('tap_mirror', 'tap_items', 'tap_hooks', ARRAY['id'], mode => 'mirror',
                   map => '{"title": "upper(name)", "cents": "(price * 100)::int"}')$$, 'a mirror sync');

-- A new table model: every row is an add, with exactly the mapped payload.
SELECT results_eq(
  $$SELECT action, key, payload, reason FROM revetl.preview_sync('tap_up', 100) ORDER BY (key->>'id')::int$$,
  $$VALUES ('add'::text, '{"id": 1}'::jsonb, '{"title": "BOOK", "cents": 1250}'::jsonb, NULL::text),
           ('add', '{"id": 2}', '{"title": "PEN", "cents": 250}', NULL),
           ('add', '{"id": 3}', '{"title": "INK", "cents": null}', NULL)$$,
  'a new model: one add per row, payloads hold the mapped fields only');
SELECT is((SELECT payload::text FROM revetl.preview_sync('tap_up', 100) WHERE key = '{"id": 3}'),
          '{"cents": null, "title": "INK"}', 'a NULL value is sent as JSON null, not left out');

-- max_rows.
SELECT is_empty($$SELECT * FROM revetl.preview_sync('tap_up', 0)$$, 'max_rows => 0 returns no rows');
SELECT is((SELECT count(*) FROM revetl.preview_sync('tap_up', max_rows => 2)), 2::bigint,
          'max_rows => 2 returns 2 of 3 rows');
SELECT is((SELECT count(*) FROM revetl.preview_sync('tap_up', 3)), 3::bigint, 'max_rows equal to the row count');
SELECT lives_ok($$SELECT revetl.create_sync('tap_many', 'tap_many', 'tap_hooks', ARRAY['id'])$$, 'a 15-row sync');
SELECT is((SELECT count(*) FROM revetl.preview_sync('tap_many')), 10::bigint, 'max_rows defaults to 10');
SELECT results_eq($$SELECT action, key FROM revetl.preview_sync('tap_many', 3)$$,
                  $$VALUES ('add'::text, '{"id": 10}'::jsonb), ('add', '{"id": 11}'), ('add', '{"id": 12}')$$,
                  'preview rows come in the bytewise order of the key text ({"id": 10} sorts before {"id": 1})');
SELECT is((SELECT count(*) FROM revetl.preview_sync('tap_many', NULL)), 10::bigint,
          'max_rows NULL means the default, 10');
SELECT throws_ok($$SELECT * FROM revetl.preview_sync('tap_up', -1)$$, '22023', 'max_rows must not be negative',
                 'a negative max_rows: 22023');
SELECT throws_ok($$SELECT * FROM revetl.preview_sync(NULL)$$, '22004', 'sync name must not be null',
                 'a NULL sync name: 22004');

-- create_sync warns of a key that is not unique, and the model can change
-- afterwards: NULL keys and duplicate keys are then invalid, with the reason;
-- two NULL keys are not duplicates of each other.
SELECT lives_ok($$SELECT revetl.create_sync('tap_dups', 'tap_dups', 'tap_hooks', ARRAY['id'])$$,
                'a sync on a table without a unique key, while its keys are unique');
INSERT INTO tap_dups VALUES (1, 'b'), (NULL, 'c'), (NULL, 'e');
SELECT results_eq(
  $$SELECT action, key, payload, reason FROM revetl.preview_sync('tap_dups', 100)
     ORDER BY action, key::text, payload->>'v'$$,
  $$VALUES ('add'::text, '{"id": 2}'::jsonb, '{"id": 2, "v": "d"}'::jsonb, NULL::text),
           ('invalid', '{"id": 1}', '{"id": 1, "v": "a"}', 'duplicate key: 2 rows of the model have this key'),
           ('invalid', '{"id": 1}', '{"id": 1, "v": "b"}', 'duplicate key: 2 rows of the model have this key'),
           ('invalid', '{"id": null}', '{"id": null, "v": "c"}', 'the key has a NULL value (key columns: id)'),
           ('invalid', '{"id": null}', '{"id": null, "v": "e"}', 'the key has a NULL value (key columns: id)')$$,
  'NULL keys and duplicate keys are previewed as invalid with their reasons');
SELECT results_eq(
  $$SELECT action, key, reason FROM revetl.preview_sync('tap_dups', 100)$$,
  $$VALUES ('add'::text, '{"id": 2}'::jsonb, NULL::text),
           ('invalid', '{"id": 1}', 'duplicate key: 2 rows of the model have this key'),
           ('invalid', '{"id": 1}', 'duplicate key: 2 rows of the model have this key'),
           ('invalid', '{"id": null}', 'the key has a NULL value (key columns: id)'),
           ('invalid', '{"id": null}', 'the key has a NULL value (key columns: id)')$$,
  'preview order is by operation first: the add of key 2 before the duplicates of key 1, duplicates before NULL keys');

-- Shadow state: what the destination was last told. Every mapped type has an
-- extended hash function, so the row hash is hash_record_extended over the
-- mapped values, in the map's stored order (a JSON object map is stored with
-- its keys in jsonb order: cents, then title).
SELECT is((SELECT map FROM revetl.syncs WHERE name = 'tap_up'),
          '[{"field": "cents", "expression": "(price * 100)::int"}, {"field": "title", "expression": "upper(name)"}]',
          'the map of tap_up is stored as cents, then title');
SELECT lives_ok($$SELECT pg_temp.shadow_put('tap_up', '{"id": 1}', 42);
                  SELECT pg_temp.shadow_put('tap_up', '{"id": 2}',
                           (SELECT hash_record_extended(ROW(((price * 100)::int
                                                            ), (upper(name)
                                                            )), 0)
                              FROM tap_items WHERE id = 2));
                  SELECT pg_temp.shadow_put('tap_up', '{"id": 99}', 7)$$,
                'shadow rows for the upsert sync: id 1 stale, id 2 current, id 99 gone from the model');
SELECT results_eq(
  $$SELECT action, key, payload, reason FROM revetl.preview_sync('tap_up', 100) ORDER BY (key->>'id')::int$$,
  $$VALUES ('change'::text, '{"id": 1}'::jsonb, '{"title": "BOOK", "cents": 1250}'::jsonb, NULL::text),
           ('add', '{"id": 3}', '{"title": "INK", "cents": null}', NULL)$$,
  'upsert: a stale hash is a change, a matching hash is no action, a removed key is ignored');
SELECT is_empty($$SELECT 1 FROM revetl.preview_sync('tap_up', 100) WHERE key = '{"id": 2}'$$,
                'the row whose shadow hash is hash_record_extended(ROW(<mapped expressions>), 0) is not previewed');
SELECT lives_ok($$SELECT pg_temp.shadow_put('tap_up', '{"id": 2}',
                                            hashtextextended('{"cents": 250, "title": "PEN"}', 0))$$,
                'the shadow row of id 2 gets the hash of its payload text instead');
SELECT results_eq(
  $$SELECT action, key, payload FROM revetl.preview_sync('tap_up', 100) WHERE key = '{"id": 2}'$$,
  $$VALUES ('change'::text, '{"id": 2}'::jsonb, '{"title": "PEN", "cents": 250}'::jsonb)$$,
  'hashable mapped values are not hashed by their payload text: that hash is a change');
SELECT results_eq($$SELECT action, key FROM revetl.preview_sync('tap_up', 100)$$,
                  $$VALUES ('add'::text, '{"id": 3}'::jsonb), ('change', '{"id": 1}'), ('change', '{"id": 2}')$$,
                  'adds come before changes whatever their keys');
SELECT results_eq($$SELECT action, key FROM revetl.preview_sync('tap_up', 1)$$,
                  $$VALUES ('add'::text, '{"id": 3}'::jsonb)$$, 'max_rows keeps the first rows in that order');

SELECT lives_ok($$SELECT pg_temp.shadow_put('tap_mirror', '{"id": 1}',
                           (SELECT hash_record_extended(ROW(((price * 100)::int
                                                            ), (upper(name)
                                                            )), 0)
                              FROM tap_items WHERE id = 1));
                  SELECT pg_temp.shadow_put('tap_mirror', '{"id": 99}', 7)$$,
                'shadow rows for the mirror sync: id 1 current, id 99 gone from the model');
SELECT results_eq(
  $$SELECT action, key, payload, reason FROM revetl.preview_sync('tap_mirror', 100) ORDER BY (key->>'id')::int$$,
  $$VALUES ('add'::text, '{"id": 2}'::jsonb, '{"title": "PEN", "cents": 250}'::jsonb, NULL::text),
           ('add', '{"id": 3}', '{"title": "INK", "cents": null}', NULL),
           ('remove', '{"id": 99}', NULL, NULL)$$,
  'mirror: a shadow key missing from the model is a remove, without payload');
SELECT lives_ok($$SELECT pg_temp.shadow_put('tap_mirror', '{"id": 0}', 7)$$,
                'another shadow row for the mirror sync: id 0, gone from the model');
SELECT results_eq($$SELECT action, key FROM revetl.preview_sync('tap_mirror', 100)$$,
                  $$VALUES ('add'::text, '{"id": 2}'::jsonb), ('add', '{"id": 3}'), ('remove', '{"id": 0}'),
                           ('remove', '{"id": 99}')$$,
                  'removes come last, after adds with greater keys');

-- Insert mode sends added rows only: a stale hash is no change.
SELECT lives_ok($$SELECT revetl.create_sync('tap_insert', 'tap_items', 'tap_hooks', ARRAY['id'], mode => 'insert',
                   map => '{"title": "upper(name)"}')$$, 'an insert-mode sync');
SELECT lives_ok($$SELECT pg_temp.shadow_put('tap_insert', '{"id": 1}', 42);
                  SELECT pg_temp.shadow_put('tap_insert', '{"id": 99}', 7)$$,
                'shadow rows for the insert sync: id 1 stale, id 99 gone from the model');
SELECT results_eq(
  $$SELECT action, key, payload FROM revetl.preview_sync('tap_insert', 100) ORDER BY (key->>'id')::int$$,
  $$VALUES ('add'::text, '{"id": 2}'::jsonb, '{"title": "PEN"}'::jsonb), ('add', '{"id": 3}', '{"title": "INK"}')$$,
  'insert mode: new keys are adds; a stale hash and a removed key are ignored');

-- Keys are rendered as the worker renders them, whatever the session's time zone.
SET LOCAL TimeZone = 'America/New_York';
SELECT lives_ok($$SELECT revetl.create_sync('tap_ts',
                    $q$SELECT '2024-01-02 03:04:05+02'::timestamptz AS t, 'x'::text AS k, 1.50 AS v$q$,
                    'tap_hooks', ARRAY['t', 'k'])$$, 'a query model keyed by a timestamptz');
SELECT results_eq($$SELECT action, key FROM revetl.preview_sync('tap_ts')$$,
                  $$VALUES ('add'::text, '{"k": "x", "t": "2024-01-02T01:04:05+00:00"}'::jsonb)$$,
                  'a timestamptz key is rendered in UTC, not in the session''s time zone');
-- Without a map the hash is hash_record_extended of the whole model row.
SELECT lives_ok($$SELECT pg_temp.shadow_put('tap_ts', '{"k": "x", "t": "2024-01-02T01:04:05+00:00"}',
                    hash_record_extended(ROW('2024-01-02 01:04:05+00'::timestamptz, 'x'::text, 1.50::numeric), 0))$$,
                'shadow row for the timestamptz key, in UTC, with the hash of the model row');
SELECT is_empty($$SELECT * FROM revetl.preview_sync('tap_ts')$$,
                'the shadow row matches although the session is in another time zone');
RESET TimeZone;

-- Previewing sends and records nothing.
SELECT is((SELECT count(*) FROM revetl.sync_runs r JOIN revetl.syncs s ON s.id = r.sync_id
            WHERE s.name LIKE 'tap\_%'), 0::bigint, 'preview requested no run');
SELECT is((SELECT count(*) FROM revetl.changes), 0::bigint, 'preview queued no change');

SELECT * FROM finish();
ROLLBACK;

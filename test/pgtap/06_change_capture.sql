-- Change capture: the trigger function and the four statement-level triggers
-- a SCHEDULE ON CHANGE (or track_changes) sync puts on its table, the keys
-- they write into revetl.captured_changes, the run an ON CHANGE sync queues,
-- what may not be tracked, how ALTER and DROP SYNC remove the capture, and
-- the DDL watch that keeps the triggers on a model rebuilt as dbt does.
-- Nothing here commits, so no worker ever runs a sync.
BEGIN;
SELECT plan(66);

CREATE SERVER tap_hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/tap');
CREATE TABLE tap_m (id int PRIMARY KEY, v text);
INSERT INTO tap_m VALUES (1, 'a'), (2, 'b'), (3, 'c');
CREATE TABLE tap_t (a int, b text, v int, PRIMARY KEY (a, b));
CREATE TABLE tap_p (id int PRIMARY KEY);
CREATE VIEW tap_v AS SELECT * FROM tap_p;
CREATE ROLE tap_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON tap_m TO tap_writer;

CREATE FUNCTION pg_temp.sid(sync text) RETURNS bigint LANGUAGE sql STABLE
  AS $$SELECT id FROM revetl.syncs WHERE name = sync$$;
-- The capture function of a sync, NULL when there is none.
CREATE FUNCTION pg_temp.capture_fn(sync text) RETURNS regprocedure LANGUAGE sql STABLE
  AS $$SELECT to_regprocedure('revetl.capture_' || pg_temp.sid(sync) || '()')$$;
-- The capture triggers of a sync, by name, wherever they are.
CREATE FUNCTION pg_temp.capture_triggers(sync text) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(tgrelid::regclass::text || '.' || tgname ORDER BY tgrelid::regclass::text, tgname),
                  '{}')
    FROM pg_trigger WHERE tgname LIKE 'revetl\_capture\_' || pg_temp.sid(sync) || '\_%'$$;
-- The keys captured for a sync since the last call (NULL shown as 'NULL'),
-- in text order.
CREATE TEMP TABLE mark (sync_name text PRIMARY KEY, last_id bigint);
CREATE FUNCTION pg_temp.new_keys(sync text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  since bigint := coalesce((SELECT last_id FROM mark WHERE sync_name = sync), 0);
  keys text[];
BEGIN
  SELECT coalesce(array_agg(coalesce(c.key, 'NULL') ORDER BY c.key COLLATE "C"), '{}') INTO keys
    FROM revetl.captured_changes c WHERE c.sync_id = pg_temp.sid(sync) AND c.id > since;
  INSERT INTO mark VALUES (sync, (SELECT coalesce(max(id), 0) FROM revetl.captured_changes))
    ON CONFLICT (sync_name) DO UPDATE SET last_id = excluded.last_id;
  RETURN keys;
END $$;
-- The runs of a sync that were not cancelled, as trigger:status.
CREATE FUNCTION pg_temp.runs(sync text) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(trigger || ':' || status ORDER BY id), '{}') FROM revetl.sync_runs
   WHERE sync_id = pg_temp.sid(sync) AND status <> 'cancelled'$$;

-- An ON CHANGE sync ----------------------------------------------------------------
SELECT results_eq(
  $$SELECT * FROM revetl.execute('CREATE SYNC tap_oc FROM tap_m TO tap_hooks KEY (id) SCHEDULE ON CHANGE')$$,
  $$VALUES ('CREATE SYNC tap_oc'::text)$$, 'CREATE SYNC ... SCHEDULE ON CHANGE on a table');
SELECT results_eq($$SELECT schedule_kind, schedule_value, options FROM revetl.syncs WHERE name = 'tap_oc'$$,
                  $$VALUES ('on change'::text, NULL::text, '{}'::jsonb)$$,
                  'the sync is scheduled on change, without a track_changes option');
SELECT is(pg_temp.capture_fn('tap_oc')::text, 'revetl.capture_' || pg_temp.sid('tap_oc') || '()',
          'the sync has the capture function revetl.capture_<sync id>()');
SELECT results_eq(
  $$SELECT p.prorettype::regtype::text, l.lanname::text COLLATE "default", p.prosecdef,
           p.proconfig COLLATE "default",
           p.proowner = (SELECT extowner FROM pg_extension WHERE extname = 'revetl')
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = pg_temp.capture_fn('tap_oc')$$,
  $$VALUES ('trigger'::text, 'plpgsql'::text, true, ARRAY['search_path=pg_catalog, pg_temp'], true)$$,
  'the capture function is a SECURITY DEFINER plpgsql trigger function of the extension owner with a safe search_path');
SELECT is(pg_temp.capture_triggers('tap_oc'),
          ARRAY['tap_m.revetl_capture_' || pg_temp.sid('tap_oc') || '_del',
                'tap_m.revetl_capture_' || pg_temp.sid('tap_oc') || '_ins',
                'tap_m.revetl_capture_' || pg_temp.sid('tap_oc') || '_trunc',
                'tap_m.revetl_capture_' || pg_temp.sid('tap_oc') || '_upd'],
          'the four capture triggers revetl_capture_<id>_ins/_upd/_del/_trunc are on the model table');
SELECT results_eq(
  $$SELECT substring(tgname from '_([a-z]+)$') COLLATE "default", tgfoid = pg_temp.capture_fn('tap_oc'),
           tgtype::int, tgenabled::text, tgoldtable::text COLLATE "default", tgnewtable::text COLLATE "default"
      FROM pg_trigger WHERE tgrelid = 'tap_m'::regclass AND tgname LIKE 'revetl\_capture\_%' ORDER BY tgname$$,
  $$VALUES ('del'::text, true, 8, 'O'::text, 'revetl_old'::text, NULL::text),
           ('ins', true, 4, 'O', NULL, 'revetl_new'),
           ('trunc', true, 32, 'O', NULL, NULL),
           ('upd', true, 16, 'O', 'revetl_old', 'revetl_new')$$,
  'each trigger is AFTER ... FOR EACH STATEMENT, enabled, runs the capture function and reads its transition tables');
SELECT results_eq($$SELECT incremental_ready FROM revetl.sync_state WHERE sync_id = pg_temp.sid('tap_oc')$$,
                  $$VALUES (false)$$, 'attaching the triggers leaves the sync not ready for incremental plans');
SELECT is(pg_temp.new_keys('tap_oc'), '{}', 'nothing is captured yet');
-- Creating the sync may already have queued a run (the DDL watch fires on the
-- shadow table's CREATE TABLE); this file does not rely on it either way.
-- Cancel whatever is queued, so that the run a change queues can be seen.
UPDATE revetl.sync_runs SET status = 'cancelled' WHERE sync_id = pg_temp.sid('tap_oc') AND status = 'queued';

-- What the triggers capture.
INSERT INTO tap_m VALUES (4, 'd'), (5, 'e');
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": 4}', '{"id": 5}'], 'an INSERT captures the inserted keys');
SELECT is(pg_temp.runs('tap_oc'), ARRAY['on change:queued'],
          'and queues one run with trigger ''on change''');
SELECT results_eq($$SELECT requested_by, row_limit, full_diff FROM revetl.sync_runs
                     WHERE sync_id = pg_temp.sid('tap_oc') AND status = 'queued'$$,
                  $$VALUES ('revetl'::text, NULL::integer, false)$$,
                  'the on-change run is requested by revetl, is no test run and asks for no full diff');
UPDATE tap_m SET v = 'x' WHERE id = 1;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": 1}'], 'an UPDATE captures the updated key');
UPDATE tap_m SET id = 20 WHERE id = 2;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": 20}', '{"id": 2}'],
          'an UPDATE of the key captures the old and the new key');
DELETE FROM tap_m WHERE id = 3;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": 3}'], 'a DELETE captures the deleted key');
UPDATE tap_m SET v = v WHERE false;
SELECT is(pg_temp.new_keys('tap_oc'), '{}', 'a statement that changes no row captures no key');
SELECT is(pg_temp.runs('tap_oc'), ARRAY['on change:queued'],
          'while a run is queued, further changes queue no other run');

-- An ordinary role that writes the table is captured too, though it can
-- neither read the captured keys nor call the wake-up function itself.
SET LOCAL ROLE tap_writer;
SELECT lives_ok($$INSERT INTO tap_m VALUES (6, 'f'); UPDATE tap_m SET v = 'y' WHERE id = 4$$,
                'an ordinary role writes the tracked table');
SELECT throws_ok($$SELECT * FROM revetl.captured_changes$$, '42501', 'permission denied for table captured_changes',
                 'an ordinary role cannot read revetl.captured_changes: 42501');
SELECT throws_ok($$INSERT INTO revetl.captured_changes (sync_id, key) VALUES (0, 'x')$$, '42501',
                 'permission denied for table captured_changes',
                 'an ordinary role cannot write revetl.captured_changes: 42501');
SELECT throws_ok(format('SELECT revetl._capture_wake(%s)', pg_temp.sid('tap_oc')), '42501',
                 'permission denied for function _capture_wake',
                 'an ordinary role cannot call revetl._capture_wake: 42501');
RESET ROLE;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": 4}', '{"id": 6}'], 'the ordinary role''s changes were captured');

TRUNCATE tap_m;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['NULL'], 'TRUNCATE captures a NULL key (everything may have changed)');
SELECT is(pg_temp.runs('tap_oc'), ARRAY['on change:queued'], 'still one queued run');
INSERT INTO tap_m VALUES (1, 'a'), (2, 'b'), (3, 'c');
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": 1}', '{"id": 2}', '{"id": 3}'], 'the table is refilled');

-- A paused ON CHANGE sync captures but queues nothing.
SELECT lives_ok($$SELECT * FROM revetl.execute('CREATE SYNC tap_paused FROM tap_p TO tap_hooks KEY (id) SCHEDULE ON CHANGE');
                  SELECT revetl.pause_sync('tap_paused')$$, 'another ON CHANGE sync, paused');
UPDATE revetl.sync_runs SET status = 'cancelled' WHERE sync_id = pg_temp.sid('tap_paused') AND status = 'queued';
INSERT INTO tap_p VALUES (7);
SELECT is(pg_temp.new_keys('tap_paused'), ARRAY['{"id": 7}'], 'the paused sync captures the changed keys');
SELECT is(pg_temp.runs('tap_paused'), '{}', 'but queues no run');

-- track_changes => true with another schedule: captured, never woken.
SELECT lives_ok($$SELECT * FROM revetl.execute(
                    'CREATE SYNC tap_tr FROM tap_t TO tap_hooks KEY (a, b) SCHEDULE EVERY ''1 hour'' WITH (track_changes = true)')$$,
                'CREATE SYNC ... SCHEDULE EVERY ... WITH (track_changes = true) on a table');
SELECT is(pg_temp.capture_triggers('tap_tr'),
          ARRAY['tap_t.revetl_capture_' || pg_temp.sid('tap_tr') || '_del',
                'tap_t.revetl_capture_' || pg_temp.sid('tap_tr') || '_ins',
                'tap_t.revetl_capture_' || pg_temp.sid('tap_tr') || '_trunc',
                'tap_t.revetl_capture_' || pg_temp.sid('tap_tr') || '_upd'],
          'a tracked EVERY sync has its four capture triggers');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap_t'::regclass
             AND tgfoid = pg_temp.capture_fn('tap_tr')), 4::bigint, 'all four run its capture function');
SELECT results_eq(
  $$SELECT prosrc LIKE '%revetl._capture_wake(' || pg_temp.sid(s) || ')%' FROM pg_proc p, unnest(ARRAY['tap_oc', 'tap_tr'])
      WITH ORDINALITY AS u(s, n) WHERE p.oid = pg_temp.capture_fn(s) ORDER BY n$$,
  $$VALUES (true), (false)$$, 'only the ON CHANGE sync''s capture function wakes the worker');
INSERT INTO tap_t VALUES (1, 'x', 10), (2, 'y', 20);
UPDATE tap_t SET v = 11 WHERE a = 1;
SELECT is(pg_temp.new_keys('tap_tr'), ARRAY['{"a": 1, "b": "x"}', '{"a": 1, "b": "x"}', '{"a": 2, "b": "y"}'],
          'a composite key is captured as an object of all its columns, once per statement');
SELECT is(pg_temp.runs('tap_tr'), '{}', 'a tracked EVERY sync queues no run on change');
SELECT is(pg_temp.new_keys('tap_oc'), '{}', 'changes to another table are not captured for tap_oc');

-- Only tables can be tracked.
SELECT throws_ok($$SELECT * FROM revetl.execute('CREATE SYNC tap_view FROM tap_v TO tap_hooks KEY (id) SCHEDULE ON CHANGE')$$,
                 '22023', 'changes to public.tap_v cannot be captured', 'SCHEDULE ON CHANGE on a view: 22023');
SELECT throws_ok($$SELECT revetl.create_sync('tap_view', 'tap_v', 'tap_hooks', ARRAY['id'],
                                            options => '{"track_changes": true}')$$,
                 '22023', 'changes to public.tap_v cannot be captured', 'track_changes on a view: 22023');
SELECT throws_ok($$SELECT revetl.create_sync('tap_query', 'SELECT * FROM tap_m', 'tap_hooks', ARRAY['id'],
                                            schedule => 'on change')$$,
                 '22023', 'SCHEDULE ON CHANGE needs a table model', 'SCHEDULE ON CHANGE on a query: 22023');
SELECT is_empty($$SELECT 1 FROM revetl.syncs WHERE name IN ('tap_view', 'tap_query')$$,
                'the refused syncs were not created');
SELECT is_empty($$SELECT 1 FROM pg_trigger WHERE tgrelid IN ('tap_m'::regclass, 'tap_v'::regclass)
                     AND tgname LIKE 'revetl\_capture\_%' AND tgfoid <> pg_temp.capture_fn('tap_oc')$$,
                'and left no capture trigger behind');

-- dbt rebuilds a model under a temporary name and renames it into place: the
-- DDL watch puts the triggers on the new table and the next run diffs it all.
-- As after a full diff of each sync:
UPDATE revetl.sync_state SET incremental_ready = true WHERE sync_id IN (pg_temp.sid('tap_oc'), pg_temp.sid('tap_tr'));
SELECT results_eq(
  $$SELECT sync_id = pg_temp.sid('tap_oc'), incremental_ready FROM revetl.sync_state
     WHERE sync_id IN (pg_temp.sid('tap_oc'), pg_temp.sid('tap_tr')) ORDER BY 1 DESC$$,
  $$VALUES (true, true), (false, true)$$, 'both tracked syncs are ready for incremental plans before the rebuild');
CREATE TEMP TABLE old_model AS SELECT 'tap_m'::regclass::oid AS relid;
SELECT lives_ok($$CREATE TABLE tap_m_new AS SELECT * FROM tap_m;
                  ALTER TABLE tap_m RENAME TO tap_m_old;
                  ALTER TABLE tap_m_new RENAME TO tap_m;
                  DROP TABLE tap_m_old$$,
                'the model is rebuilt as dbt does: create as, rename the old away, rename the new into place, drop');
SELECT isnt('tap_m'::regclass::oid, (SELECT relid FROM old_model), 'tap_m is a new table');
SELECT is(pg_temp.capture_triggers('tap_oc'),
          ARRAY['tap_m.revetl_capture_' || pg_temp.sid('tap_oc') || '_del',
                'tap_m.revetl_capture_' || pg_temp.sid('tap_oc') || '_ins',
                'tap_m.revetl_capture_' || pg_temp.sid('tap_oc') || '_trunc',
                'tap_m.revetl_capture_' || pg_temp.sid('tap_oc') || '_upd'],
          'the four capture triggers are on the new tap_m');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap_m'::regclass
             AND tgfoid = pg_temp.capture_fn('tap_oc')), 4::bigint, 'and run the sync''s capture function');
SELECT results_eq(
  $$SELECT sync_id = pg_temp.sid('tap_oc'), incremental_ready FROM revetl.sync_state
     WHERE sync_id IN (pg_temp.sid('tap_oc'), pg_temp.sid('tap_tr')) ORDER BY 1 DESC$$,
  $$VALUES (true, false), (false, true)$$,
  'the rebuilt model''s sync is no longer ready for incremental plans; the sync of another table still is');
INSERT INTO tap_m VALUES (8, 'h');
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": 8}'], 'changes to the new table are captured');
SELECT is(pg_temp.runs('tap_oc'), ARRAY['on change:queued'], 'still one queued run after the rebuild');

-- The track_changes default follows the schedule.
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_tr SET SCHEDULE MANUAL')$$,
                'a sync with track_changes = true becomes manual');
SELECT is(cardinality(pg_temp.capture_triggers('tap_tr')), 4, 'its explicit track_changes keeps its triggers');
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_oc SET SCHEDULE MANUAL')$$,
                'ALTER SYNC ... SET SCHEDULE MANUAL on an ON CHANGE sync');
SELECT is(pg_temp.capture_fn('tap_oc'), NULL, 'the capture function is gone');
SELECT is(pg_temp.capture_triggers('tap_oc'), '{}', 'the capture triggers are gone');
INSERT INTO tap_m VALUES (9, 'i');
SELECT is(pg_temp.new_keys('tap_oc'), '{}', 'changes are no longer captured');
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_oc SET SCHEDULE ON CHANGE')$$,
                'back to SCHEDULE ON CHANGE');
SELECT is(cardinality(pg_temp.capture_triggers('tap_oc')), 4, 'the capture triggers are back');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap_m'::regclass
             AND tgfoid = pg_temp.capture_fn('tap_oc')), 4::bigint, 'on tap_m, with the capture function');
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_oc SET (track_changes = false)')$$,
                'an ON CHANGE sync set to track_changes = false');
SELECT is(pg_temp.capture_triggers('tap_oc'), '{}', 'an explicit track_changes = false removes the capture');
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_oc RESET (track_changes)')$$,
                'track_changes reset to its default');
SELECT is(cardinality(pg_temp.capture_triggers('tap_oc')), 4, 'the default for ON CHANGE captures again');

-- DROP SYNC removes the capture.
CREATE TEMP TABLE dropped AS SELECT pg_temp.sid('tap_oc') AS id, pg_temp.capture_fn('tap_oc')::oid AS fn;
SELECT lives_ok($$SELECT * FROM revetl.execute('DROP SYNC tap_oc')$$, 'DROP SYNC of the ON CHANGE sync');
SELECT is(to_regprocedure('revetl.capture_' || (SELECT id FROM dropped) || '()'), NULL,
          'its capture function is gone');
SELECT is_empty($$SELECT 1 FROM pg_trigger WHERE tgfoid = (SELECT fn FROM dropped)
                   OR tgname LIKE 'revetl\_capture\_' || (SELECT id FROM dropped) || '\_%'$$,
                'its capture triggers are gone');
SELECT is_empty($$SELECT 1 FROM revetl.captured_changes WHERE sync_id = (SELECT id FROM dropped)$$,
                'its captured keys are gone');
SELECT is_empty($$SELECT 1 FROM revetl.sync_runs WHERE sync_id = (SELECT id FROM dropped) AND status = 'queued'$$,
                'its queued on-change run was cancelled');
SELECT lives_ok($$INSERT INTO tap_m VALUES (10, 'j'); UPDATE tap_m SET v = 'k'; DELETE FROM tap_m; TRUNCATE tap_m$$,
                'the table is written freely after the sync is gone');

SELECT * FROM finish();
ROLLBACK;

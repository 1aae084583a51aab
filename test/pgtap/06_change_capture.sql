-- Change capture: the trigger function and the four statement-level triggers
-- a SCHEDULE ON CHANGE (or track_changes) sync puts on its table, the keys
-- they write into revetl.captured_changes (every key value a JSON string),
-- that a write queues no run (the scheduler does, after the write commits),
-- what may not be tracked, how the triggers follow the model (ALTER SYNC ...
-- SET FROM, a dbt rebuild, a key column dropped or renamed), how turning
-- tracking off or DROP SYNC removes the capture, and that nothing in a key
-- column's name can break out of the capture function's body.
-- Nothing here commits, so neither the scheduler nor a worker ever sees it.
BEGIN;
SELECT plan(108);

CREATE SERVER tap_hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/tap');
CREATE TABLE tap_m (id int PRIMARY KEY, v text);
INSERT INTO tap_m VALUES (1, 'a'), (2, 'b'), (3, 'c');
CREATE TABLE tap_t (a int, b text, v int, PRIMARY KEY (a, b));
CREATE TABLE tap_p (id int PRIMARY KEY);
CREATE VIEW tap_v AS SELECT * FROM tap_p;
CREATE TABLE tap_part (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE tap_part_1 PARTITION OF tap_part FOR VALUES FROM (0) TO (1000);
CREATE TABLE tap_m2 (id int PRIMARY KEY, v text);
CREATE TABLE tap_k (k int PRIMARY KEY, v text);
CREATE TABLE tap_dq ("$revetl$;SELECT 1;$revetl$" int, "o'k');SELECT 2;--" text,
                     PRIMARY KEY ("$revetl$;SELECT 1;$revetl$", "o'k');SELECT 2;--"));
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
-- in text order; a key captured with retry = true is followed by ' (retry)'.
CREATE TEMP TABLE mark (sync_name text PRIMARY KEY, last_id bigint);
CREATE FUNCTION pg_temp.new_keys(sync text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  since bigint := coalesce((SELECT last_id FROM mark WHERE sync_name = sync), 0);
  keys text[];
BEGIN
  SELECT coalesce(array_agg(coalesce(c.key, 'NULL') || CASE WHEN c.retry THEN ' (retry)' ELSE '' END
                            ORDER BY c.key COLLATE "C"), '{}') INTO keys
    FROM revetl.captured_changes c WHERE c.sync_id = pg_temp.sid(sync) AND c.id > since;
  INSERT INTO mark VALUES (sync, (SELECT coalesce(max(id), 0) FROM revetl.captured_changes))
    ON CONFLICT (sync_name) DO UPDATE SET last_id = excluded.last_id;
  RETURN keys;
END $$;
-- All the runs of a sync, as trigger:status.
CREATE FUNCTION pg_temp.runs(sync text) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(trigger || ':' || status ORDER BY id), '{}') FROM revetl.sync_runs
   WHERE sync_id = pg_temp.sid(sync)$$;
-- How many keys are captured for a sync, whenever captured.
CREATE FUNCTION pg_temp.captured(sync text) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT count(*) FROM revetl.captured_changes WHERE sync_id = pg_temp.sid(sync)$$;
-- sync_state.incremental_ready of a sync.
CREATE FUNCTION pg_temp.ready(sync text) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT incremental_ready FROM revetl.sync_state WHERE sync_id = pg_temp.sid(sync)$$;

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
  $$VALUES ('trigger'::text, 'c'::text, true,
            ARRAY['search_path=pg_catalog, pg_temp', 'DateStyle=ISO, YMD', 'TimeZone=UTC',
                  'IntervalStyle=postgres', 'extra_float_digits=3'], true)$$,
  'the capture function is a SECURITY DEFINER C trigger function of the extension owner with a safe '
  'search_path and fixed date, time and float rendering');
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
  $$VALUES ('del'::text, true, 8, 'A'::text, 'revetl_old'::text, NULL::text),
           ('ins', true, 4, 'A', NULL, 'revetl_new'),
           ('trunc', true, 32, 'A', NULL, NULL),
           ('upd', true, 16, 'A', 'revetl_old', 'revetl_new')$$,
  'each trigger is AFTER ... FOR EACH STATEMENT, enabled always (logical replication too), runs the capture '
  'function and reads its transition tables');
SELECT is(pg_temp.ready('tap_oc'), false, 'attaching the triggers leaves the sync not ready for incremental plans');
-- The shadow table's CREATE TABLE is revetl's own DDL: the DDL watch ignores
-- it, so it neither attaches triggers early nor marks the table as rebuilt.
SELECT is(pg_temp.new_keys('tap_oc'), '{}', 'creating the sync captures nothing, not even a NULL key');
SELECT is(pg_temp.runs('tap_oc'), '{}', 'and queues no run');

-- What the triggers capture: every key value as a JSON string (format('%s')).
INSERT INTO tap_m VALUES (4, 'd'), (5, 'e');
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": "4"}', '{"id": "5"}'],
          'an INSERT captures the inserted keys, the values as JSON strings, with retry = false');
SELECT is(pg_temp.runs('tap_oc'), '{}',
          'the write queues no run (the scheduler queues it after the write commits)');
SELECT lives_ok(format('SELECT revetl._capture_wake(%s)', pg_temp.sid('tap_oc')),
                'revetl._capture_wake, called by the extension owner as the triggers do');
SELECT is(pg_temp.runs('tap_oc'), '{}', 'only wakes the scheduler at commit: it queues no run');
UPDATE tap_m SET v = 'x' WHERE id = 1;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": "1"}'], 'an UPDATE captures the updated key');
UPDATE tap_m SET id = 20 WHERE id = 2;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": "2"}', '{"id": "20"}'],
          'an UPDATE of the key captures the old and the new key');
DELETE FROM tap_m WHERE id = 3;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": "3"}'], 'a DELETE captures the deleted key');
UPDATE tap_m SET v = v WHERE false;
SELECT is(pg_temp.new_keys('tap_oc'), '{}', 'a statement that changes no row captures no key');
SELECT is(pg_temp.runs('tap_oc'), '{}', 'UPDATE and DELETE queue no run either');

-- An ordinary role that writes the table is captured too, though it can
-- neither read the captured keys nor call the wake-up function itself.
SET LOCAL ROLE tap_writer;
SELECT lives_ok($$INSERT INTO tap_m VALUES (6, 'f'); UPDATE tap_m SET v = 'y' WHERE id = 4$$,
                'an ordinary role writes the tracked table');
SELECT is((SELECT count(*) FROM revetl.captured_changes), 0::bigint,
          'an ordinary role sees no captured key of syncs it does not own (row security)');
SELECT throws_ok($$INSERT INTO revetl.captured_changes (sync_id, key) VALUES (0, 'x')$$, '42501',
                 'permission denied for table captured_changes',
                 'an ordinary role cannot write revetl.captured_changes: 42501');
SELECT throws_ok(format('SELECT revetl._capture_wake(%s)', pg_temp.sid('tap_oc')), '42501',
                 'permission denied for function _capture_wake',
                 'an ordinary role cannot call revetl._capture_wake: 42501');
RESET ROLE;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": "4"}', '{"id": "6"}'],
          'the ordinary role''s changes were captured');

TRUNCATE tap_m;
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['NULL'],
          'TRUNCATE captures a NULL key (everything may have changed), with retry = false');
SELECT is(pg_temp.runs('tap_oc'), '{}', 'TRUNCATE queues no run either');
INSERT INTO tap_m VALUES (1, 'a'), (2, 'b'), (3, 'c');
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": "1"}', '{"id": "2"}', '{"id": "3"}'], 'the table is refilled');

-- A paused ON CHANGE sync captures but queues nothing.
SELECT lives_ok($$SELECT * FROM revetl.execute('CREATE SYNC tap_paused FROM tap_p TO tap_hooks KEY (id) SCHEDULE ON CHANGE');
                  SELECT revetl.pause_sync('tap_paused')$$, 'another ON CHANGE sync, paused');
INSERT INTO tap_p VALUES (7);
SELECT is(pg_temp.new_keys('tap_paused'), ARRAY['{"id": "7"}'], 'the paused sync captures the changed keys');
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
  $$SELECT bool_and(split_part(encode(t.tgargs, 'escape'), '\000', 4) = 'wake') FROM pg_trigger t,
           unnest(ARRAY['tap_oc', 'tap_tr']) WITH ORDINALITY AS u(s, n)
      WHERE t.tgfoid = pg_temp.capture_fn(s) GROUP BY n ORDER BY n$$,
  $$VALUES (true), (false)$$, 'only the ON CHANGE sync''s capture triggers ask to wake its run or the scheduler');
INSERT INTO tap_t VALUES (1, 'x', 10), (2, 'y', 20);
UPDATE tap_t SET v = 11 WHERE a = 1;
SELECT is(pg_temp.new_keys('tap_tr'), ARRAY['{"a": "1", "b": "x"}', '{"a": "1", "b": "x"}', '{"a": "2", "b": "y"}'],
          'a composite key is captured as an object of all its columns, each a JSON string, once per statement');
SELECT is(pg_temp.runs('tap_tr'), '{}', 'a tracked EVERY sync queues no run on change');
SELECT is(pg_temp.new_keys('tap_oc'), '{}', 'changes to another table are not captured for tap_oc');

-- What may not be tracked.
SELECT throws_ok($$SELECT * FROM revetl.execute('CREATE SYNC tap_view FROM tap_v TO tap_hooks KEY (id) SCHEDULE ON CHANGE')$$,
                 '22023', 'changes to public.tap_v cannot be captured', 'SCHEDULE ON CHANGE on a view: 22023');
SELECT throws_ok($$SELECT revetl.create_sync('tap_view', 'tap_v', 'tap_hooks', ARRAY['id'],
                                            options => '{"track_changes": true}')$$,
                 '22023', 'changes to public.tap_v cannot be captured', 'track_changes on a view: 22023');
SELECT throws_ok($$SELECT revetl.create_sync('tap_query', 'SELECT * FROM tap_m', 'tap_hooks', ARRAY['id'],
                                            schedule => 'on change')$$,
                 '22023', 'SCHEDULE ON CHANGE needs a table model', 'SCHEDULE ON CHANGE on a query: 22023');
SELECT throws_ok($$SELECT revetl.create_sync('tap_query', 'SELECT * FROM tap_m', 'tap_hooks', ARRAY['id'],
                                            options => '{"track_changes": true}')$$,
                 '22023', 'changes to a query model cannot be captured', 'track_changes = true on a query model: 22023');
SELECT throws_ok($$SELECT * FROM revetl.execute(
                    'CREATE SYNC tap_off FROM tap_p TO tap_hooks KEY (id) SCHEDULE ON CHANGE WITH (track_changes = false)')$$,
                 '22023', 'SCHEDULE ON CHANGE needs track_changes',
                 'SCHEDULE ON CHANGE WITH (track_changes = false) would never run: 22023');
SELECT throws_ok($$SELECT * FROM revetl.execute('CREATE SYNC tap_pt FROM tap_part TO tap_hooks KEY (id) SCHEDULE ON CHANGE')$$,
                 '0A000', 'changes to partitioned table public.tap_part cannot be captured',
                 'SCHEDULE ON CHANGE on a partitioned table (writes to a partition would be missed): 0A000');
SELECT throws_ok($$SELECT revetl.create_sync('tap_pt', 'tap_part', 'tap_hooks', ARRAY['id'],
                                            options => '{"track_changes": true}')$$,
                 '0A000', 'changes to partitioned table public.tap_part cannot be captured',
                 'track_changes on a partitioned table: 0A000');
SELECT is_empty($$SELECT 1 FROM revetl.syncs WHERE name IN ('tap_view', 'tap_query', 'tap_off', 'tap_pt')$$,
                'the refused syncs were not created');
SELECT is_empty($$SELECT 1 FROM pg_trigger WHERE tgrelid IN ('tap_m'::regclass, 'tap_v'::regclass, 'tap_p'::regclass,
                                                             'tap_part'::regclass, 'tap_part_1'::regclass)
                     AND tgname LIKE 'revetl\_capture\_%'
                     AND tgfoid NOT IN (pg_temp.capture_fn('tap_oc'), pg_temp.capture_fn('tap_paused'))$$,
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
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['NULL'],
          'the rebuild captures one NULL key with retry = false for the ON CHANGE sync (its next run is a full diff)');
SELECT is(pg_temp.runs('tap_oc'), '{}', 'the rebuild queues no run itself');
INSERT INTO tap_m VALUES (8, 'h');
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": "8"}'], 'changes to the new table are captured');

-- The same for a tracked sync that is not ON CHANGE, step by step.
CREATE TABLE tap_t_new AS SELECT * FROM tap_t;
ALTER TABLE tap_t RENAME TO tap_t_old;
SELECT is(pg_temp.capture_triggers('tap_tr'), '{}',
          'a tracked model renamed away keeps no capture trigger (it is no longer the model)');
SELECT is(pg_temp.ready('tap_tr'), false, 'and its sync is no longer ready for incremental plans');
SELECT lives_ok($$INSERT INTO tap_t_old VALUES (9, 'z', 90)$$, 'the renamed table is written freely');
ALTER TABLE tap_t_new RENAME TO tap_t;
DROP TABLE tap_t_old;
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap_t'::regclass
             AND tgfoid = pg_temp.capture_fn('tap_tr')), 4::bigint,
          'the table renamed into place gets the four capture triggers');
SELECT is(pg_temp.new_keys('tap_tr'), '{}', 'a sync that is not ON CHANGE gets no NULL key from a rebuild');

-- The triggers follow the model: ALTER SYNC ... SET FROM another table.
UPDATE revetl.sync_state SET incremental_ready = true WHERE sync_id = pg_temp.sid('tap_oc');
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_oc SET FROM tap_m2')$$,
                'ALTER SYNC ... SET FROM another table');
SELECT is(pg_temp.capture_triggers('tap_oc'),
          ARRAY['tap_m2.revetl_capture_' || pg_temp.sid('tap_oc') || '_del',
                'tap_m2.revetl_capture_' || pg_temp.sid('tap_oc') || '_ins',
                'tap_m2.revetl_capture_' || pg_temp.sid('tap_oc') || '_trunc',
                'tap_m2.revetl_capture_' || pg_temp.sid('tap_oc') || '_upd'],
          'the four capture triggers moved to the new model, none is left on the old one');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap_m2'::regclass
             AND tgfoid = pg_temp.capture_fn('tap_oc')), 4::bigint, 'they run the sync''s capture function');
SELECT is(pg_temp.ready('tap_oc'), false, 'a sync with a new model is not ready for incremental plans');
INSERT INTO tap_m VALUES (10, 'j');
INSERT INTO tap_m2 VALUES (1, 'a');
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": "1"}'],
          'writes to the new model are captured, writes to the old one are not');

-- A key column dropped or renamed: the sync's triggers leave the table.
SELECT lives_ok($$SELECT * FROM revetl.execute('CREATE SYNC tap_kc FROM tap_k TO tap_hooks KEY (k) SCHEDULE ON CHANGE')$$,
                'an ON CHANGE sync on tap_k, keyed by k');
UPDATE revetl.sync_state SET incremental_ready = true WHERE sync_id = pg_temp.sid('tap_kc');
ALTER TABLE tap_k RENAME COLUMN k TO k2;
SELECT is(pg_temp.capture_triggers('tap_kc'), '{}', 'renaming the key column removes the sync''s capture triggers');
SELECT is(pg_temp.ready('tap_kc'), false, 'and leaves the sync not ready for incremental plans');
SELECT lives_ok($$INSERT INTO tap_k VALUES (1, 'a'); UPDATE tap_k SET v = 'b'; DELETE FROM tap_k WHERE k2 = 1;
                  TRUNCATE tap_k$$,
                'the table is written freely without its key column');
SELECT is(pg_temp.new_keys('tap_kc'), '{}', 'and nothing is captured');
ALTER TABLE tap_k RENAME COLUMN k2 TO k;
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap_k'::regclass
             AND tgfoid = pg_temp.capture_fn('tap_kc')), 4::bigint,
          'with the key column back, the four capture triggers are back');
SELECT is(pg_temp.new_keys('tap_kc'), ARRAY['NULL'], 'and a NULL key marks the table as new to them');
UPDATE revetl.sync_state SET incremental_ready = true WHERE sync_id = pg_temp.sid('tap_kc');
ALTER TABLE tap_k DROP COLUMN k;
SELECT is(pg_temp.capture_triggers('tap_kc'), '{}', 'dropping the key column removes the sync''s capture triggers');
SELECT is(pg_temp.ready('tap_kc'), false, 'and leaves the sync not ready for incremental plans');
SELECT lives_ok($$INSERT INTO tap_k VALUES ('a'); UPDATE tap_k SET v = 'b'; DELETE FROM tap_k; TRUNCATE tap_k$$,
                'the table is written freely after its key column was dropped');
SELECT is(pg_temp.new_keys('tap_kc'), '{}', 'and nothing is captured');

-- Turning tracking off drops the function and triggers and the captured keys.
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_tr SET SCHEDULE MANUAL')$$,
                'a sync with track_changes = true becomes manual');
SELECT is(cardinality(pg_temp.capture_triggers('tap_tr')), 4, 'its explicit track_changes keeps its triggers');
SELECT ok(pg_temp.captured('tap_oc') > 0, 'the ON CHANGE sync has captured keys');
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_oc SET SCHEDULE MANUAL')$$,
                'ALTER SYNC ... SET SCHEDULE MANUAL on an ON CHANGE sync');
SELECT is(pg_temp.capture_fn('tap_oc'), NULL, 'the capture function is gone');
SELECT is(pg_temp.capture_triggers('tap_oc'), '{}', 'the capture triggers are gone');
SELECT is(pg_temp.captured('tap_oc'), 0::bigint, 'the sync''s captured keys are gone');
INSERT INTO tap_m2 VALUES (9, 'i');
SELECT is(pg_temp.captured('tap_oc'), 0::bigint, 'changes are no longer captured');
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_oc SET SCHEDULE ON CHANGE')$$,
                'back to SCHEDULE ON CHANGE');
SELECT is(cardinality(pg_temp.capture_triggers('tap_oc')), 4, 'the capture triggers are back');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap_m2'::regclass
             AND tgfoid = pg_temp.capture_fn('tap_oc')), 4::bigint, 'on tap_m2, with the capture function');
SELECT throws_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_oc SET (track_changes = false)')$$,
                 '22023', 'SCHEDULE ON CHANGE needs track_changes',
                 'an ON CHANGE sync cannot be set to track_changes = false: 22023');
SELECT is(cardinality(pg_temp.capture_triggers('tap_oc')), 4, 'and keeps its capture triggers');
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_oc SET (track_changes = true)');
                  SELECT * FROM revetl.execute('ALTER SYNC tap_oc RESET (track_changes)')$$,
                'track_changes set to true, then reset to its default');
SELECT is(cardinality(pg_temp.capture_triggers('tap_oc')), 4, 'the default for ON CHANGE captures');
SELECT ok(pg_temp.captured('tap_tr') > 0, 'the manual sync with track_changes = true has captured keys');
SELECT lives_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_tr SET (track_changes = false)')$$,
                'ALTER SYNC ... SET (track_changes = false)');
SELECT is(pg_temp.capture_fn('tap_tr'), NULL, 'its capture function is gone');
SELECT is(pg_temp.capture_triggers('tap_tr'), '{}', 'its capture triggers are gone');
SELECT is(pg_temp.captured('tap_tr'), 0::bigint, 'its captured keys are gone');
SELECT throws_ok($$SELECT * FROM revetl.execute('ALTER SYNC tap_tr SET SCHEDULE ON CHANGE')$$,
                 '22023', 'SCHEDULE ON CHANGE needs track_changes',
                 'a sync with track_changes = false cannot be scheduled ON CHANGE: 22023');

-- Nothing in a key column's name can end the capture function's body (a
-- string literal, not dollar-quoted) or add a statement to it.
SELECT lives_ok($$SELECT revetl.create_sync('tap_dq', 'tap_dq', 'tap_hooks',
                                           ARRAY['$revetl$;SELECT 1;$revetl$', 'o''k'');SELECT 2;--'],
                                           schedule => 'on change')$$,
                'an ON CHANGE sync keyed by columns named "$revetl$;SELECT 1;$revetl$" and "o''k'');SELECT 2;--"');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap_dq'::regclass
             AND tgfoid = pg_temp.capture_fn('tap_dq')), 4::bigint, 'it has its four capture triggers');
INSERT INTO tap_dq VALUES (1, 'x');
DELETE FROM tap_dq;
SELECT is(pg_temp.new_keys('tap_dq'),
          ARRAY[jsonb_build_object('$revetl$;SELECT 1;$revetl$', '1', 'o''k'');SELECT 2;--', 'x')::text,
                jsonb_build_object('$revetl$;SELECT 1;$revetl$', '1', 'o''k'');SELECT 2;--', 'x')::text],
          'an INSERT and a DELETE are captured under the columns'' names');
SELECT is((SELECT array_agg(DISTINCT encode(t.tgargs, 'escape'))
             FROM pg_trigger t WHERE t.tgfoid = pg_temp.capture_fn('tap_dq')),
          ARRAY[pg_temp.sid('tap_dq') || '\000public\000tap_dq\000wake\000'
                || replace('$revetl$;SELECT 1;$revetl$', '\', '\\') || '\000'
                || replace('o''k'');SELECT 2;--', '\', '\\') || '\000'],
          'the triggers pass the sync, its model and the key columns'' names as they are, as arguments');
-- A trigger revetl did not make for this table (a superuser could attach
-- one) captures nothing: the function checks its table against its arguments.
SELECT throws_ok(format($q$DO $d$ BEGIN
                   CREATE TABLE tap_other (x int);
                   CREATE TRIGGER revetl_capture_%1$s_x AFTER INSERT ON tap_other REFERENCING NEW TABLE AS n
                     FOR EACH STATEMENT EXECUTE FUNCTION revetl.capture_%1$s('%1$s', 'public', 'tap_dq', '', 'x');
                   INSERT INTO tap_other VALUES (1);
                 END $d$$q$, pg_temp.sid('tap_dq')),
                 '39P01', format('revetl capture function of sync %s called for another table or trigger',
                                 pg_temp.sid('tap_dq')),
                 'the capture function refuses to capture for a table that is not its model');

-- DROP SYNC removes the capture.
-- A run the scheduler queued after a change (inserted here as it would):
INSERT INTO revetl.runs (sync_id, sync_name, trigger, requested_by)
  VALUES (pg_temp.sid('tap_oc'), 'tap_oc', 'on change', 'revetl');
INSERT INTO tap_m2 VALUES (11, 'k');
SELECT is(pg_temp.new_keys('tap_oc'), ARRAY['{"id": "11"}', 'NULL'],
          'the ON CHANGE sync has a captured key (and one full-diff marker from its definition changes)');
CREATE TEMP TABLE dropped AS SELECT pg_temp.sid('tap_oc') AS id, pg_temp.capture_fn('tap_oc')::oid AS fn;
SELECT lives_ok($$SELECT * FROM revetl.execute('DROP SYNC tap_oc')$$, 'DROP SYNC of the ON CHANGE sync');
SELECT is(to_regprocedure('revetl.capture_' || (SELECT id FROM dropped) || '()'), NULL,
          'its capture function is gone');
SELECT is_empty($$SELECT 1 FROM pg_trigger WHERE tgfoid = (SELECT fn FROM dropped)
                   OR tgname LIKE 'revetl\_capture\_' || (SELECT id FROM dropped) || '\_%'$$,
                'its capture triggers are gone');
SELECT is_empty($$SELECT 1 FROM revetl.captured_changes WHERE sync_id = (SELECT id FROM dropped)$$,
                'its captured keys are gone');
SELECT results_eq($$SELECT trigger, status FROM revetl.sync_runs WHERE sync_id = (SELECT id FROM dropped)$$,
                  $$VALUES ('on change'::text, 'cancelled'::text)$$, 'its queued on-change run was cancelled');
SELECT lives_ok($$INSERT INTO tap_m2 VALUES (10, 'j'); UPDATE tap_m2 SET v = 'k'; DELETE FROM tap_m2; TRUNCATE tap_m2$$,
                'the table is written freely after the sync is gone');

SELECT * FROM finish();
ROLLBACK;

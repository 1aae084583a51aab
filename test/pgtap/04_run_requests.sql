-- run_sync requests (manual, test runs with max_rows, full diffs), pausing,
-- the health sync_status shows before any run, and who may create, run,
-- preview, alter, pause, rename, give away and drop a sync.
-- Runs are never awaited here: the worker cannot see this transaction, which
-- rolls back; the integration tests cover runs.
BEGIN;
SELECT plan(67);

CREATE SERVER tap_hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/tap');
CREATE TABLE tap_events (id int PRIMARY KEY, kind text);
INSERT INTO tap_events VALUES (1, 'signup'), (2, 'login');
CREATE TABLE tap_secret (id int PRIMARY KEY, ssn text);

CREATE ROLE tap_owner;                 -- owns the sync
CREATE ROLE tap_member;                -- a member of tap_owner, inheriting its privileges
GRANT tap_owner TO tap_member;
CREATE ROLE tap_noinherit NOINHERIT;   -- a member that does not inherit
GRANT tap_owner TO tap_noinherit;
CREATE ROLE tap_outsider;              -- may read the model, but is no member of the owner
CREATE ROLE tap_nousage;               -- may read the model, but has no USAGE on the server
GRANT SELECT ON tap_events TO tap_owner, tap_outsider, tap_nousage;
GRANT USAGE ON FOREIGN SERVER tap_hooks TO tap_owner, tap_outsider;

CREATE TEMP TABLE runs (n serial, id bigint);
GRANT ALL ON runs, runs_n_seq TO PUBLIC;
CREATE FUNCTION pg_temp.run_count() RETURNS bigint LANGUAGE sql
  AS $$SELECT count(*) FROM revetl.sync_runs WHERE sync_name = 'tap_run'$$;

SET LOCAL ROLE tap_owner;
SELECT lives_ok($$SELECT revetl.create_sync('tap_run', 'tap_events', 'tap_hooks', ARRAY['id'])$$,
                'the owner role creates a sync');
RESET ROLE;

-- Requests: increasing ids, a queued row visible inside the transaction.
SELECT lives_ok($$INSERT INTO runs (id) SELECT revetl.run_sync('tap_run')$$, 'run_sync returns');
SELECT lives_ok($$INSERT INTO runs (id) SELECT revetl.run_sync('tap_run', wait => false)$$,
                'run_sync(wait => false) returns');
SELECT cmp_ok((SELECT id FROM runs WHERE n = 2), '>', (SELECT id FROM runs WHERE n = 1),
              'run ids increase');
SELECT results_eq(
  $$SELECT r.id, r.sync_id, r.sync_name, r.status, r.trigger, r.requested_by
      FROM revetl.sync_runs r WHERE r.sync_name = 'tap_run' ORDER BY r.id$$,
  $$SELECT runs.id, (SELECT id FROM revetl.syncs WHERE name = 'tap_run'), 'tap_run'::text, 'queued'::text,
           'manual'::text, current_user::text COLLATE "default"
      FROM runs ORDER BY n$$,
  'each request is one queued manual run, requested_by the current user, with the returned id');
SELECT results_eq(
  $$SELECT requested_at, started_at, planned_at, finished_at, rows_added + rows_changed + rows_removed +
           rows_delivered + rows_rejected + rows_invalid + requests + retries, error
      FROM revetl.sync_runs WHERE id = (SELECT id FROM runs WHERE n = 1)$$,
  $$VALUES (now(), NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, 0::bigint, NULL::text)$$,
  'a queued run has not started, counts nothing and has no error');
SELECT results_eq(
  $$SELECT row_limit, full_diff, plan_kind, rows_retried, plan_duration, delivery_duration
      FROM revetl.sync_runs WHERE sync_name = 'tap_run' ORDER BY id$$,
  $$VALUES (NULL::integer, false, NULL::text, 0::bigint, NULL::interval, NULL::interval),
           (NULL, false, NULL, 0, NULL, NULL)$$,
  'a manual run has no row limit, asks for no full diff, is not planned yet and has no durations');

-- The status of a sync that has never finished a run.
SELECT results_eq(
  $$SELECT owner::text, schedule, paused, last_run_id, last_status, last_trigger, last_finished_at, last_error,
           last_success_at, rows_waiting, oldest_undelivered_at, next_run_at, health
      FROM revetl.sync_status WHERE name = 'tap_run'$$,
  $$VALUES ('tap_owner'::text, 'manual'::text, false, NULL::bigint, NULL::text, NULL::text, NULL::timestamptz,
            NULL::text, NULL::timestamptz, 0::bigint, NULL::timestamptz, NULL::timestamptz, 'never run'::text)$$,
  'sync_status: a fresh sync with queued runs only has never run, waits for nothing and has no last run');

-- Waiting inside a transaction block is refused at once, and queues nothing.
SELECT throws_ok($$SELECT revetl.run_sync('tap_run', wait => true)$$, '25001',
                 'cannot wait for a run of sync "tap_run" inside a transaction block',
                 'run_sync(wait => true) in a transaction block: 25001');
SELECT is(pg_temp.run_count(), 2::bigint, 'the refused wait queued no run');
SELECT throws_ok($$SELECT revetl.run_sync(NULL)$$, '22004', 'sync name must not be null',
                 'run_sync(NULL): 22004');

-- A paused sync does not run.
SELECT lives_ok($$SELECT revetl.pause_sync('tap_run')$$, 'pause_sync');
SELECT is((SELECT paused FROM revetl.syncs WHERE name = 'tap_run'), true, 'the sync is paused');
SELECT results_eq($$SELECT paused, health FROM revetl.sync_status WHERE name = 'tap_run'$$,
                  $$VALUES (true, 'paused'::text)$$, 'sync_status: a paused sync has health paused');
SELECT throws_ok($$SELECT revetl.run_sync('tap_run')$$, '55000', 'sync "tap_run" is paused',
                 'run_sync of a paused sync: 55000');
SELECT is(pg_temp.run_count(), 2::bigint, 'the paused sync queued no run');
SELECT lives_ok($$SELECT * FROM revetl.preview_sync('tap_run')$$, 'a paused sync can still be previewed');
SELECT lives_ok($$SELECT revetl.resume_sync('tap_run')$$, 'resume_sync');
SELECT is((SELECT paused FROM revetl.syncs WHERE name = 'tap_run'), false, 'the sync is no longer paused');
SELECT results_eq($$SELECT paused, health FROM revetl.sync_status WHERE name = 'tap_run'$$,
                  $$VALUES (false, 'never run'::text)$$, 'sync_status: resumed, it has never run again');

-- A role that is no member of the owner.
SET LOCAL ROLE tap_outsider;
SELECT throws_ok($$SELECT revetl.run_sync('tap_run')$$, '42501', 'must be owner of sync "tap_run"',
                 'a non-owner may not run the sync: 42501');
SELECT throws_ok($$SELECT * FROM revetl.preview_sync('tap_run')$$, '42501', 'must be owner of sync "tap_run"',
                 'a non-owner may not preview the sync: 42501');
SELECT throws_ok($$SELECT revetl.drop_sync('tap_run')$$, '42501', 'must be owner of sync "tap_run"',
                 'a non-owner may not drop the sync: 42501');
SELECT throws_ok($$SELECT revetl.drop_sync('tap_run', if_exists => true)$$, '42501',
                 'must be owner of sync "tap_run"', 'if_exists does not excuse a non-owner: 42501');
SELECT throws_ok($$SELECT revetl.pause_sync('tap_run')$$, '42501', 'must be owner of sync "tap_run"',
                 'a non-owner may not pause the sync: 42501');
SELECT throws_ok($$SELECT revetl.alter_sync('tap_run', mode => 'mirror')$$, '42501',
                 'must be owner of sync "tap_run"', 'a non-owner may not alter the sync: 42501');
SELECT throws_ok($$SELECT revetl.rename_sync('tap_run', 'mine_now')$$, '42501', 'must be owner of sync "tap_run"',
                 'a non-owner may not rename the sync: 42501');
SELECT throws_ok($$SELECT revetl.alter_sync_owner('tap_run', 'tap_outsider')$$, '42501',
                 'must be owner of sync "tap_run"', 'a non-owner may not take the sync over: 42501');
SELECT throws_ok($$SELECT revetl.create_sync('tap_run', 'tap_events', 'tap_hooks', ARRAY['id'], replace => true)$$,
                 '42501', 'must be owner of sync "tap_run"', 'a non-owner may not replace the sync: 42501');
SELECT results_eq($$SELECT owner::text, mode, paused FROM revetl.syncs WHERE name = 'tap_run'$$,
                  $$VALUES ('tap_owner'::text, 'upsert'::text, false)$$, 'the refused changes changed nothing');
SELECT throws_ok($$SELECT revetl.create_sync('tap_run', 'tap_events', 'tap_hooks', ARRAY['id'])$$, '42710',
                 'sync "tap_run" already exists', 'sync names are database-wide, not per role');
RESET ROLE;
SELECT is(pg_temp.run_count(), 2::bigint, 'the refused requests queued no run');

-- Test runs (max_rows) and full diffs (full).
SELECT lives_ok($$INSERT INTO runs (id) SELECT revetl.run_sync('tap_run', max_rows => 2)$$,
                'run_sync(max_rows => 2) returns');
SELECT results_eq(
  $$SELECT status, trigger, row_limit, full_diff, requested_by FROM revetl.sync_runs
     WHERE id = (SELECT max(id) FROM runs)$$,
  $$VALUES ('queued'::text, 'test'::text, 2, false, current_user::text COLLATE "default")$$,
  'a run with max_rows is a queued test run with row_limit 2 and no full diff');
SELECT lives_ok($$INSERT INTO runs (id) SELECT revetl.run_sync('tap_run', full => true)$$,
                'run_sync(full => true) returns');
SELECT results_eq(
  $$SELECT status, trigger, row_limit, full_diff FROM revetl.sync_runs WHERE id = (SELECT max(id) FROM runs)$$,
  $$VALUES ('queued'::text, 'manual'::text, NULL::integer, true)$$,
  'a run with full => true is a manual run that records full_diff');
SELECT lives_ok($$INSERT INTO runs (id) SELECT revetl.run_sync('tap_run', false, 1, true)$$,
                'run_sync(name, wait, max_rows, full) by position');
SELECT results_eq(
  $$SELECT trigger, row_limit, full_diff FROM revetl.sync_runs WHERE id = (SELECT max(id) FROM runs)$$,
  $$VALUES ('test'::text, 1, true)$$, 'a test run may also be a full diff');
SELECT lives_ok($$INSERT INTO runs (id) SELECT revetl.run_sync('tap_run', max_rows => NULL, full => NULL)$$,
                'run_sync(max_rows => NULL, full => NULL) returns');
SELECT results_eq(
  $$SELECT trigger, row_limit, full_diff FROM revetl.sync_runs WHERE id = (SELECT max(id) FROM runs)$$,
  $$VALUES ('manual'::text, NULL::integer, false)$$, 'NULL max_rows and full mean a plain manual run');
SELECT throws_ok($$SELECT revetl.run_sync('tap_run', max_rows => 0)$$, '22023', 'max_rows must be at least 1',
                 'run_sync(max_rows => 0): 22023');
SELECT throws_ok($$SELECT revetl.run_sync('tap_run', max_rows => -5)$$, '22023', 'max_rows must be at least 1',
                 'a negative max_rows: 22023');
SELECT is(pg_temp.run_count(), 6::bigint, 'the refused max_rows queued no run');

-- A member that does not inherit the owner's privileges is refused until it
-- takes the role with SET ROLE.
SET LOCAL ROLE tap_noinherit;
SELECT throws_ok($$SELECT revetl.run_sync('tap_run')$$, '42501', 'must be owner of sync "tap_run"',
                 'a NOINHERIT member may not run the sync: 42501');
SET LOCAL ROLE tap_owner;
SELECT lives_ok($$INSERT INTO runs (id) SELECT revetl.run_sync('tap_run')$$, 'the owner role runs the sync');
SELECT is((SELECT requested_by FROM revetl.sync_runs WHERE id = (SELECT max(id) FROM runs)), 'tap_owner',
          'requested_by is the owner role');
RESET ROLE;

-- A member of the owner role may do all an owner may.
SET LOCAL ROLE tap_member;
SELECT lives_ok($$INSERT INTO runs (id) SELECT revetl.run_sync('tap_run')$$, 'a member of the owner runs the sync');
SELECT is((SELECT requested_by FROM revetl.sync_runs WHERE id = (SELECT max(id) FROM runs)), 'tap_member',
          'requested_by names the member, not the owner');
SELECT results_eq($$SELECT action, key FROM revetl.preview_sync('tap_run') ORDER BY key->>'id'$$,
                  $$VALUES ('add'::text, '{"id": 1}'::jsonb), ('add', '{"id": 2}')$$,
                  'a member of the owner previews the sync');
SELECT lives_ok($$SELECT revetl.pause_sync('tap_run'); SELECT revetl.resume_sync('tap_run')$$,
                'a member of the owner pauses and resumes the sync');
SELECT throws_ok($$SELECT revetl.alter_sync_owner('tap_run', 'tap_outsider')$$, '42501',
                 'must be able to SET ROLE "tap_outsider"', 'a sync cannot be given to a role one is not a member of');
SELECT lives_ok($$SELECT revetl.drop_sync('tap_run')$$, 'a member of the owner drops the sync');
RESET ROLE;
SELECT is_empty($$SELECT 1 FROM revetl.syncs WHERE name = 'tap_run'$$, 'the sync is gone');
SELECT is((SELECT count(*) FROM revetl.sync_runs WHERE sync_name = 'tap_run' AND status = 'queued'), 0::bigint,
          'dropping the sync cancelled its queued runs');
SELECT throws_ok($$SELECT revetl.run_sync('tap_run')$$, '42704', 'sync "tap_run" does not exist',
                 'a dropped sync cannot be run: 42704');

-- create_sync needs USAGE on the server...
SET LOCAL ROLE tap_nousage;
SELECT throws_ok($$SELECT revetl.create_sync('tap_n1', 'tap_events', 'tap_hooks', ARRAY['id'])$$, '42501',
                 'permission denied for foreign server tap_hooks', 'no USAGE on the server: 42501');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER tap_hooks TO tap_member;
SET LOCAL ROLE tap_nousage;
SELECT throws_ok($$SELECT revetl.create_sync('tap_n1', 'tap_events', 'tap_hooks', ARRAY['id'])$$, '42501',
                 'permission denied for foreign server tap_hooks',
                 'USAGE granted to some other role does not help: 42501');
RESET ROLE;
-- ... and SELECT on everything the model and map read.
SET LOCAL ROLE tap_outsider;
SELECT throws_ok($$SELECT revetl.create_sync('tap_n2', 'tap_secret', 'tap_hooks', ARRAY['id'])$$, '42501',
                 'permission denied for table tap_secret', 'no SELECT on a table model: 42501');
SELECT throws_ok($$SELECT revetl.create_sync('tap_n2', 'SELECT id, ssn FROM tap_secret', 'tap_hooks', ARRAY['id'])$$,
                 '42501', 'permission denied for table tap_secret', 'no SELECT on a query model''s table: 42501');
SELECT throws_ok($$SELECT revetl.create_sync('tap_n2', 'tap_events', 'tap_hooks', ARRAY['id'],
                                            map => '{"x": "(SELECT max(ssn) FROM tap_secret)"}')$$,
                 '42501', 'permission denied for table tap_secret', 'no SELECT on a table a map reads: 42501');
SELECT is((SELECT count(*) FROM revetl.syncs WHERE name IN ('tap_n1', 'tap_n2')), 0::bigint,
          'no refused sync was created');
SELECT lives_ok($$SELECT revetl.create_sync('tap_n2', 'tap_events', 'tap_hooks', ARRAY['id'])$$,
                'with USAGE and SELECT the outsider creates its own sync');
SELECT is((SELECT owner::text FROM revetl.syncs WHERE name = 'tap_n2'), 'tap_outsider',
          'the outsider owns the sync it created');
SELECT lives_ok($$SELECT revetl.drop_sync('tap_n2')$$, 'and drops it');
RESET ROLE;

-- A superuser may run any sync.
SET LOCAL ROLE tap_owner;
SELECT lives_ok($$SELECT revetl.create_sync('tap_run2', 'tap_events', 'tap_hooks', ARRAY['id'])$$,
                'the owner creates another sync');
RESET ROLE;
SELECT lives_ok($$INSERT INTO runs (id) SELECT revetl.run_sync('tap_run2')$$, 'a superuser runs another role''s sync');
SELECT is((SELECT sync_name FROM revetl.sync_runs WHERE id = (SELECT max(id) FROM runs)), 'tap_run2',
          'the run belongs to the sync that was named');

SELECT * FROM finish();
ROLLBACK;

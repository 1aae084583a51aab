-- Run requests: queued at commit, never when rolled back, and waiting is
-- refused where it could never end. Delivery itself is tested by the
-- integration tests; this file does not look at how runs end.
CREATE EXTENSION IF NOT EXISTS revetl;
CREATE SERVER IF NOT EXISTS nowhere FOREIGN DATA WRAPPER revetl
  OPTIONS (type 'webhook', url 'http://127.0.0.1:9/nothing', max_attempts '1', connect_timeout '200ms');
CREATE TABLE events (id int PRIMARY KEY, kind text);
INSERT INTO events VALUES (1, 'signup');
SELECT revetl.create_sync('events_out', 'events', 'nowhere', ARRAY['id']) > 0 AS created;

-- A request inside a transaction that rolls back leaves no run behind.
BEGIN;
SELECT revetl.run_sync('events_out') > 0 AS requested;
SELECT count(*) AS runs_in_transaction FROM revetl.sync_runs WHERE sync_name = 'events_out';
ROLLBACK;
SELECT count(*) AS runs_after_rollback FROM revetl.sync_runs WHERE sync_name = 'events_out';

-- A committed request is recorded with who asked and how.
SELECT revetl.run_sync('events_out') > 0 AS requested;
SELECT sync_name, trigger, requested_by FROM revetl.sync_runs WHERE sync_name = 'events_out';

-- Waiting inside a transaction block fails at once, with a hint.
BEGIN;
SELECT revetl.run_sync('events_out', wait => true);
ROLLBACK;

-- A paused sync does not run.
SELECT revetl.pause_sync('events_out');
SELECT revetl.run_sync('events_out');
SELECT revetl.resume_sync('events_out');

-- Dropping a sync cancels its queued runs.
SELECT revetl.drop_sync('events_out');
SELECT count(*) AS still_queued FROM revetl.sync_runs WHERE sync_name = 'events_out' AND status = 'queued';

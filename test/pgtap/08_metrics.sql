-- revetl.metrics (issue 17): one row per sync for monitoring, its columns,
-- who may read it, and its values from runs and captured changes (inserted
-- here directly; the transaction rolls back, so no worker ever sees them).
BEGIN;
SELECT plan(9);

SELECT has_view('revetl', 'metrics', 'view revetl.metrics exists');
SELECT columns_are('revetl', 'metrics',
    ARRAY['sync_name', 'health', 'paused', 'runs_succeeded', 'runs_partial', 'runs_failed', 'runs_cancelled',
          'runs_interrupted', 'runs_queued', 'runs_running', 'rows_delivered', 'rows_rejected', 'requests',
          'throttled', 'rows_waiting', 'captured_backlog', 'oldest_change_age_seconds',
          'last_success_age_seconds'],
    'revetl.metrics has exactly the documented columns');
SELECT table_privs_are('revetl', 'metrics', 'public', ARRAY['SELECT'], 'PUBLIC has SELECT only on revetl.metrics');

CREATE SERVER tap_metrics FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/m');
CREATE TABLE tap_metric_rows (id int PRIMARY KEY);
CREATE ROLE tap_metrics_owner;
CREATE ROLE tap_monitor IN ROLE pg_monitor;
GRANT SELECT ON tap_metric_rows TO tap_metrics_owner;
GRANT USAGE ON FOREIGN SERVER tap_metrics TO tap_metrics_owner;
SET LOCAL ROLE tap_metrics_owner;
SELECT revetl.create_sync('tap_metered', 'tap_metric_rows', 'tap_metrics', ARRAY['id']);
SELECT revetl.create_sync('tap_unmetered', 'tap_metric_rows', 'tap_metrics', ARRAY['id']);
RESET ROLE;

SELECT results_eq(
    $$SELECT sync_name, health, runs_succeeded + runs_failed + runs_queued, rows_delivered, captured_backlog,
             oldest_change_age_seconds, last_success_age_seconds IS NULL
        FROM revetl.metrics WHERE sync_name LIKE 'tap_%' ORDER BY sync_name$$,
    $$VALUES ('tap_metered'::text, 'never run'::text, 0::bigint, 0::numeric, 0::bigint, 0::float8, true),
             ('tap_unmetered', 'never run', 0, 0, 0, 0, true)$$,
    'a sync that never ran has zeros and no last success');

INSERT INTO revetl.runs (sync_id, sync_name, status, started_at, planned_at, finished_at,
                         rows_added, rows_delivered, rows_rejected, requests, throttled)
SELECT s.id, s.name, v.status, now() - interval '1 h', now() - interval '1 h', v.finished,
       v.added, v.delivered, v.rejected, v.requests, v.throttled
  FROM revetl.syncs s,
       (VALUES ('succeeded', now() - interval '50 min', 10, 10, 0, 2, 1),
               ('partial', now() - interval '40 min', 5, 3, 2, 1, 0),
               ('failed', now() - interval '30 min', 4, 0, 0, 4, 3)) AS v(status, finished, added, delivered,
                                                                        rejected, requests, throttled)
 WHERE s.name = 'tap_metered';
INSERT INTO revetl.runs (sync_id, sync_name) SELECT id, name FROM revetl.syncs WHERE name = 'tap_metered';
INSERT INTO revetl.captured_changes (sync_id, key, captured_at)
SELECT id, k, now() - interval '10 min' * k::int FROM revetl.syncs, (VALUES ('1'), ('2')) AS v(k)
 WHERE name = 'tap_metered';

SELECT results_eq(
    $$SELECT health, runs_succeeded, runs_partial, runs_failed, runs_queued, runs_running, rows_delivered,
             rows_rejected, requests, throttled, captured_backlog
        FROM revetl.metrics WHERE sync_name = 'tap_metered'$$,
    $$VALUES ('failing'::text, 1::bigint, 1::bigint, 1::bigint, 1::bigint, 0::bigint, 13::numeric, 2::numeric,
              7::numeric, 4::numeric, 2::bigint)$$,
    'run outcomes, the queue, rows, requests, throttling and the backlog are summed per sync');
SELECT cmp_ok((SELECT oldest_change_age_seconds FROM revetl.metrics WHERE sync_name = 'tap_metered'), '>=', 1200::float8,
              'the oldest captured change is 20 minutes old or more');
SELECT cmp_ok((SELECT last_success_age_seconds FROM revetl.metrics WHERE sync_name = 'tap_metered'), '>=', 3000::float8,
              'the last success is 50 minutes old or more');
SELECT is((SELECT runs_succeeded + runs_queued + captured_backlog FROM revetl.metrics
            WHERE sync_name = 'tap_unmetered'), 0::bigint, 'the other sync has none of it');

-- A monitoring role that owns nothing sees every sync's numbers.
SET LOCAL ROLE tap_monitor;
SELECT results_eq($$SELECT count(*), sum(runs_failed) FROM revetl.metrics WHERE sync_name LIKE 'tap_%'$$,
                  $$VALUES (2::bigint, 1::numeric)$$, 'a pg_monitor member sees every sync');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

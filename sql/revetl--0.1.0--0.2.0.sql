-- revetl 0.1.0 -> 0.2.0: run by ALTER EXTENSION revetl UPDATE.
--
-- Every change to the schema lands here and in sql/revetl--0.2.0.sql in the
-- same commit (docs/operations.md, "Upgrading"): the upgrade test checks that
-- an updated 0.1.0 and a fresh 0.2.0 have the same schema, and that an
-- update keeps every sync, server, shadow row and run.
\echo Use "ALTER EXTENSION revetl UPDATE TO '0.2.0'" to load this file. \quit

----------------------------------------------------------------------------
-- Security (issue 19).
----------------------------------------------------------------------------

-- Run history moves to revetl.runs, read through the view revetl.sync_runs,
-- which shows a run's error text only to the sync's owner role.
ALTER TABLE revetl.sync_runs RENAME TO runs;
ALTER SEQUENCE revetl.sync_runs_id_seq RENAME TO runs_id_seq;
ALTER TABLE revetl.runs RENAME CONSTRAINT sync_runs_pkey TO runs_pkey;
ALTER TABLE revetl.runs RENAME CONSTRAINT sync_runs_status_check TO runs_status_check;
ALTER TABLE revetl.runs RENAME CONSTRAINT sync_runs_trigger_check TO runs_trigger_check;
ALTER TABLE revetl.runs RENAME CONSTRAINT sync_runs_row_limit_check TO runs_row_limit_check;
ALTER TABLE revetl.runs RENAME CONSTRAINT sync_runs_plan_kind_check TO runs_plan_kind_check;
ALTER INDEX revetl.sync_runs_open_idx RENAME TO runs_open_idx;
ALTER INDEX revetl.sync_runs_sync_idx RENAME TO runs_sync_idx;
COMMENT ON TABLE revetl.runs IS 'one row per run; read it through revetl.sync_runs';
REVOKE ALL ON revetl.runs FROM PUBLIC;

-- One row per run, for every role: status, timings and counts. The error
-- text is the owner's alone (NULL for other roles, monitoring roles
-- included): it can quote what the destination answered.
CREATE VIEW revetl.sync_runs AS
SELECT r.id, r.sync_id, r.sync_name, r.status, r.trigger, r.row_limit, r.full_diff, r.plan_kind,
       r.requested_by, r.requested_at, r.started_at, r.planned_at, r.finished_at,
       r.rows_added, r.rows_changed, r.rows_removed, r.rows_delivered, r.rows_rejected, r.rows_invalid,
       r.rows_retried, r.throttled, r.requests, r.retries,
       CASE WHEN pg_catalog.pg_has_role(s.owner, 'USAGE') THEN r.error END AS error,
       r.plan_duration, r.delivery_duration
  FROM revetl.runs r
  LEFT JOIN revetl.syncs s ON s.id = r.sync_id;

COMMENT ON VIEW revetl.sync_runs IS
  'one row per run: status, timings, row counts, requests, and (for the sync''s owner) the error';
GRANT SELECT ON revetl.sync_runs TO PUBLIC;

-- sync_status shows last_error to the owner only: it is made once, in its
-- final form, at the end of this script.
-- Captured keys are read by the plan of an incremental run, which runs as
-- the sync's owner: each role sees the keys of its own syncs only.
GRANT SELECT ON revetl.captured_changes TO PUBLIC;
ALTER TABLE revetl.captured_changes ENABLE ROW LEVEL SECURITY;
CREATE POLICY captured_changes_owner ON revetl.captured_changes FOR SELECT USING (
    EXISTS (SELECT 1 FROM revetl.syncs s
             WHERE s.id = captured_changes.sync_id
               AND pg_catalog.pg_has_role(s.owner, 'USAGE')));

-- Capture trigger functions run with the extension owner's rights: only
-- revetl's own triggers may call them (0.1.0 left them executable by PUBLIC,
-- so any role could attach one to a table of its own).
DO $do$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'revetl'::regnamespace AND p.proname ~ '^capture_[0-9]+$'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$do$;

-- Identifier helpers for ad audiences (docs/identifiers.md): the normalised
-- and hashed emails, phone numbers, names and locations that Google Customer
-- Match and Meta Custom Audiences match on. Each result depends on its
-- arguments alone (not on the locale or any setting), hence IMMUTABLE and
-- PARALLEL SAFE. hashed_identifier is a SQL function without SET clauses,
-- so the planner inlines it into the calling query; every name in it is
-- schema-qualified instead.
----------------------------------------------------------------------------

CREATE FUNCTION revetl.normalize_email(email text, rule text DEFAULT 'default')
RETURNS text
AS 'MODULE_PATHNAME', 'revetl_normalize_email'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION revetl.normalize_email(text, text) IS
  'the email trimmed and lower-cased; rule google also removes all white space, and the dots and +tag of gmail.com and googlemail.com addresses; NULL if it is not an email';

-- Not STRICT: default_region is NULL unless given.
CREATE FUNCTION revetl.e164(phone text, default_region text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'revetl_e164'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION revetl.e164(text, text) IS
  'the phone number in E.164 (+ and digits), parsed and validated by libphonenumber; default_region (ISO 3166-1 alpha-2) for numbers without a country code; NULL if it is not a valid number';

CREATE FUNCTION revetl.normalize_identifier(kind text, value text, rule text DEFAULT 'default',
                                            default_region text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'revetl_normalize_identifier'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION revetl.normalize_identifier(text, text, text, text) IS
  'the value normalised for its kind as the rule''s vendor documents it: the text hashed_identifier hashes; NULL if it cannot be normalised';

-- The UTF-8 bytes of normalize_identifier's result, whatever the database
-- encoding: what hashed_identifier hashes. Callable by everyone, as the
-- inlined hashed_identifier runs with the caller's privileges.
CREATE FUNCTION revetl._identifier_bytes(kind text, value text, rule text, default_region text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'revetl_identifier_bytes'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

CREATE FUNCTION revetl.hashed_identifier(kind text, value text, rule text DEFAULT 'default',
                                         default_region text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.encode(pg_catalog.sha256(revetl._identifier_bytes(kind, value, rule, default_region)), 'hex');

COMMENT ON FUNCTION revetl.hashed_identifier(text, text, text, text) IS
  'SHA-256 (64 lower-case hex characters) of the value normalised for its kind as the rule''s vendor documents it; NULL if it cannot be normalised';

-- One row per destination type, from the specs compiled into revetl.so
-- (src/core/connectors/registry.cpp): its options, auth schemes, objects
-- and modes, limits, whether it returns record ids and takes idempotency
-- keys, and what a MODE AUDIENCE string names (NULL: no audience mode).
CREATE FUNCTION revetl._destination_types()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'revetl_destination_types'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE VIEW revetl.destination_types AS
SELECT d->>'type' AS type,
       d->>'summary' AS summary,
       d->'options' AS options,
       ARRAY(SELECT jsonb_array_elements_text(d->'auth')) AS auth,
       d->'objects' AS objects,
       ARRAY(SELECT jsonb_array_elements_text(d->'modes')) AS modes,
       d->'limits' AS limits,
       (d->>'returns_ids')::boolean AS returns_ids,
       (d->>'idempotency_keys')::boolean AS idempotency_keys,
       d->>'audience' AS audience
  FROM jsonb_array_elements(revetl._destination_types()) AS d;

GRANT SELECT ON revetl.destination_types TO PUBLIC;
COMMENT ON VIEW revetl.destination_types IS
  'one row per destination type: its options, auth schemes, objects, modes, limits and what MODE AUDIENCE names';

----------------------------------------------------------------------------
-- Runs stopped by a shutdown or pg_terminate_backend end 'interrupted' and
-- are queued again (issue 17).
----------------------------------------------------------------------------
ALTER TABLE revetl.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE revetl.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled', 'interrupted'));

----------------------------------------------------------------------------
-- revetl.cancel_run (issue 20).
----------------------------------------------------------------------------
-- Cancels a queued or running run: a queued run never starts; a running one
-- stops at once (a statement in progress is cancelled), rows in flight are
-- re-verified later and rows not yet sent stay planned; the run ends
-- 'cancelled'. For the sync's owner (or a member of its role).
CREATE FUNCTION revetl.cancel_run(run_id bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'revetl_cancel_run'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

COMMENT ON FUNCTION revetl.cancel_run(bigint) IS
  'cancels a queued or running run of a sync you own; it ends cancelled and its undelivered rows wait for the next run';

----------------------------------------------------------------------------
-- Exactly the model at the destination when old requests land late (issue
-- 18): shadow rows keep a version (the run that last recorded the key) and
-- removals keep a tombstone until their re-verification; a planned change
-- carries the version its idempotency key is derived from.
----------------------------------------------------------------------------
-- (Added without a default, then filled: a default given to ADD COLUMN
-- would be kept as the column's "missing value", which a fresh install does
-- not have. The queue is small: it holds only the changes of open runs.)
ALTER TABLE revetl.changes ADD COLUMN version bigint;
UPDATE revetl.changes SET version = 0;
ALTER TABLE revetl.changes ALTER COLUMN version SET DEFAULT 0, ALTER COLUMN version SET NOT NULL;

----------------------------------------------------------------------------
-- Warehouse-scale runs (issue 16): the queue holds what recovery needs (the
-- keys), and the payloads stay with the run's process that sends them. A
-- change queued by a 0.1.0 run still open is re-verified by recovery, as
-- any queued change, and planned afresh.
----------------------------------------------------------------------------
ALTER TABLE revetl.changes DROP COLUMN payload;

-- Every sync's shadow table, with the columns a new one gets
-- (BuildShadowTableDdl). Existing rows are live, at version 0: nothing is
-- sent again because of the update.
DO $do$
DECLARE
    shadow text;
BEGIN
    FOR shadow IN SELECT s.shadow_table FROM revetl.syncs s ORDER BY s.id LOOP
        EXECUTE pg_catalog.format('ALTER TABLE revetl.%I ADD COLUMN version bigint NOT NULL DEFAULT 0, '
                                  'ADD COLUMN removed boolean NOT NULL DEFAULT false', shadow);
    END LOOP;
END
$do$;

----------------------------------------------------------------------------
-- revetl.run_sync(name, resync => true) (issue 20): the owner sends every
-- row of the model again, with new idempotency keys; allow_removals => true
-- (issue 17) lets one run remove more than the sync's max_removals.
----------------------------------------------------------------------------
ALTER TABLE revetl.runs ADD COLUMN resync boolean, ADD COLUMN allow_removals boolean;
UPDATE revetl.runs SET resync = false, allow_removals = false;
ALTER TABLE revetl.runs ALTER COLUMN resync SET DEFAULT false, ALTER COLUMN resync SET NOT NULL,
    ALTER COLUMN allow_removals SET DEFAULT false, ALTER COLUMN allow_removals SET NOT NULL;

CREATE OR REPLACE VIEW revetl.sync_runs AS
SELECT r.id, r.sync_id, r.sync_name, r.status, r.trigger, r.row_limit, r.full_diff, r.plan_kind,
       r.requested_by, r.requested_at, r.started_at, r.planned_at, r.finished_at,
       r.rows_added, r.rows_changed, r.rows_removed, r.rows_delivered, r.rows_rejected, r.rows_invalid,
       r.rows_retried, r.throttled, r.requests, r.retries,
       CASE WHEN pg_catalog.pg_has_role(s.owner, 'USAGE') THEN r.error END AS error,
       r.plan_duration, r.delivery_duration, r.resync, r.allow_removals
  FROM revetl.runs r
  LEFT JOIN revetl.syncs s ON s.id = r.sync_id;

DROP FUNCTION revetl.run_sync(text, boolean, integer, boolean);
CREATE FUNCTION revetl.run_sync(name text, wait boolean DEFAULT false, max_rows integer DEFAULT NULL,
                                full boolean DEFAULT false, resync boolean DEFAULT false,
                                allow_removals boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'revetl_run_sync'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

COMMENT ON FUNCTION revetl.run_sync(text, boolean, integer, boolean, boolean, boolean) IS
  'requests a run of a sync at commit and returns its run id; with wait => true, outside a transaction block, returns once the run has finished';

----------------------------------------------------------------------------
-- Retry timing (issue 20): manual runs no longer push an ON CHANGE sync's
-- automatic retry back, and sync_status shows when it is due.
----------------------------------------------------------------------------
-- ON CHANGE syncs whose last run left rows to retry (captured_changes.retry),
-- with no run open, and when the scheduler retries them: change_retry_interval
-- after the last automatic run that failed or left rows, doubled for each
-- further one since the last success (up to 64 times). Manual and test runs
-- do not count: trying a fix by hand never pushes the retry back. Read by the
-- scheduler and by sync_status.next_retry_at.
CREATE VIEW revetl._change_retries AS
SELECT s.id AS sync_id,
       coalesce(f.last_end, '-infinity')
         + pg_catalog.current_setting('revetl.change_retry_interval')::interval
           * pg_catalog.power(2, least(greatest(f.n - 1, 0), 6)) AS due_at
  FROM revetl.syncs s
 CROSS JOIN LATERAL (
       SELECT max(r.finished_at) AS last_end, count(*) AS n FROM revetl.runs r
        WHERE r.sync_id = s.id AND r.status IN ('failed', 'partial') AND r.trigger NOT IN ('test', 'manual')
          AND r.id > coalesce((SELECT max(ok.id) FROM revetl.runs ok WHERE ok.sync_id = s.id
                                  AND ok.status = 'succeeded' AND ok.trigger <> 'test'), 0)) f
 WHERE s.schedule_kind = 'on change' AND NOT s.paused
   AND EXISTS (SELECT 1 FROM revetl.captured_changes c WHERE c.sync_id = s.id AND c.retry)
   AND NOT EXISTS (SELECT 1 FROM revetl.runs r WHERE r.sync_id = s.id
                    AND r.status IN ('queued', 'running') AND r.trigger <> 'test');

REVOKE ALL ON revetl._change_retries FROM PUBLIC;

----------------------------------------------------------------------------
-- The destination schema cache (issue 12): the fields a destination
-- describes (HubSpot's properties), per server and user mapping.
----------------------------------------------------------------------------
-- Requests for revetl.refresh_destination_fields, performed by a revetl
-- process outside the caller's transaction. Internal: the function tells
-- the caller how its request ended.
CREATE TABLE revetl.field_refreshes (
    id            bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    server_id     oid NOT NULL,
    role_id       oid NOT NULL,   -- whose rights and user mapping the fetch uses
    object        text NOT NULL,
    requested_by  text NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    fields        integer,
    error         text,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

-- The cache itself. mapping_id is the user mapping (pg_user_mapping's oid)
-- whose credentials fetched the rows: two roles with mappings of their own
-- may reach two different accounts behind one server.
CREATE TABLE revetl.field_cache (
    server_id   oid NOT NULL,
    mapping_id  oid NOT NULL,
    object      text NOT NULL,
    name        text NOT NULL,
    label       text NOT NULL DEFAULT '',
    type        text NOT NULL DEFAULT '',
    field_type  text NOT NULL DEFAULT '',
    read_only   boolean NOT NULL DEFAULT false,
    options     jsonb,
    fetched_at  timestamptz NOT NULL,
    PRIMARY KEY (server_id, mapping_id, object, name)
);

REVOKE ALL ON revetl.field_refreshes, revetl.field_cache FROM PUBLIC;

-- What a destination answered is its owner's alone: a role sees the rows of
-- servers it has USAGE on, fetched with the user mapping in effect for it
-- (its own, else PUBLIC's). security_barrier keeps a caller's functions in
-- WHERE from seeing rows before that filter.
CREATE VIEW revetl.destination_fields WITH (security_barrier) AS
SELECT s.srvname AS server, c.object, c.name AS field, c.label, c.type, c.field_type, c.read_only,
       c.options, c.fetched_at,
       CASE WHEN m.umuser = 0 THEN 'public' ELSE m.usename::text END AS user_mapping
  FROM revetl.field_cache c
  JOIN pg_catalog.pg_foreign_server s ON s.oid = c.server_id
  JOIN pg_catalog.pg_user_mappings m ON m.umid = c.mapping_id
 WHERE pg_catalog.has_server_privilege(c.server_id, 'USAGE')
   AND c.mapping_id = (SELECT u.umid FROM pg_catalog.pg_user_mappings u
                        WHERE u.srvid = c.server_id
                          AND (u.umuser = 0 OR u.usename = current_user)
                        ORDER BY u.umuser = 0 LIMIT 1);

COMMENT ON VIEW revetl.destination_fields IS
  'the fields destinations described (revetl.refresh_destination_fields), for servers you have USAGE on';
GRANT SELECT ON revetl.destination_fields TO PUBLIC;

-- Fetches the fields of `object` (the server type's default object when
-- NULL) with the caller's user mapping, in a revetl process: the caller's
-- transaction never waits on HTTP. With wait => true it returns the number
-- of fields cached once the fetch is done; with wait => false it returns
-- NULL and the fetch happens after commit.
CREATE FUNCTION revetl.refresh_destination_fields(server name, object text DEFAULT NULL,
                                                  wait boolean DEFAULT true)
RETURNS integer
AS 'MODULE_PATHNAME', 'revetl_refresh_destination_fields'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

COMMENT ON FUNCTION revetl.refresh_destination_fields(name, text, boolean) IS
  'fetches the fields a destination describes into revetl.destination_fields, outside your transaction';

-- Asynchronous jobs a run's rows wait on at the destination (job ids are
-- state). A row is written right after the destination accepted the job and
-- before it is polled, and deleted in the transaction that records its rows'
-- outcomes. A run killed while a job is pending leaves it 'pending': the
-- sync's next run polls it again instead of sending its rows again, or, when
-- the destination no longer knows it, sends them again (writes match by key)
-- and marks it 'expired'. Never exposed to users: rows hold payloads.
CREATE TABLE revetl.delivery_jobs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync_id     bigint NOT NULL REFERENCES revetl.syncs (id) ON DELETE CASCADE,
    run_id      bigint NOT NULL,
    batch_no    bigint NOT NULL,
    -- the destination's job id, and the connector's step and state for the
    -- poll that resumes it
    job_id      text NOT NULL,
    step        text NOT NULL,
    flow_state  text NOT NULL DEFAULT '',
    -- the changes the job covers, in the order they were sent:
    -- [{seq, op, key, payload, row_hash, dest_id, version}]
    rows        jsonb NOT NULL,
    row_count   integer NOT NULL,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'expired')),
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX delivery_jobs_sync_idx ON revetl.delivery_jobs (sync_id, id);
REVOKE ALL ON revetl.delivery_jobs FROM PUBLIC;

----------------------------------------------------------------------------
-- revetl.sync_progress (issue 17): runs in progress at a glance.
----------------------------------------------------------------------------
-- Runs in progress, in the manner of PostgreSQL's pg_stat_progress_* views:
-- the phase, what the plan found, what was recorded so far (the counters are
-- committed with each group of batches, at least every 50 ms while rows
-- flow), and an estimate of the time left from the rate so far. Counts only:
-- no error text, no payload, so every role may read it.
CREATE VIEW revetl.sync_progress AS
SELECT r.id AS run_id, r.sync_id, r.sync_name, r.trigger,
       CASE WHEN r.planned_at IS NULL THEN 'planning' ELSE 'delivering' END AS phase,
       r.started_at,
       pg_catalog.now() - r.started_at AS elapsed,
       CASE WHEN r.planned_at IS NOT NULL THEN r.rows_added + r.rows_changed + r.rows_removed END AS rows_planned,
       r.rows_delivered + r.rows_rejected AS rows_done,
       r.rows_delivered, r.rows_rejected, r.rows_invalid,
       r.requests, r.retries, r.throttled,
       CASE WHEN r.planned_at IS NOT NULL AND r.rows_delivered + r.rows_rejected > 0
            THEN (pg_catalog.now() - r.planned_at)
                 * ((r.rows_added + r.rows_changed + r.rows_removed - r.rows_delivered - r.rows_rejected)::float8
                    / (r.rows_delivered + r.rows_rejected))
       END AS estimated_time_left
  FROM revetl.runs r
 WHERE r.status = 'running';

COMMENT ON VIEW revetl.sync_progress IS
  'one row per run in progress: phase, rows planned and done, requests, and an estimate of the time left';
GRANT SELECT ON revetl.sync_progress TO PUBLIC;

-- One row per sync for monitoring (Prometheus' postgres_exporter reads it
-- with contrib/postgres_exporter/revetl-queries.yaml): health as a label,
-- run outcomes and delivery counters summed over the retained run history
-- (so they drop when old runs are purged: read them as gauges), the queue,
-- the captured backlog and how old its oldest change is. Counts and ages
-- only, no error text and no payload, so every role (a member of
-- pg_monitor among them) sees every sync.
CREATE VIEW revetl.metrics AS
SELECT s.name AS sync_name,
       st.health,
       s.paused,
       coalesce(r.runs_succeeded, 0) AS runs_succeeded,
       coalesce(r.runs_partial, 0) AS runs_partial,
       coalesce(r.runs_failed, 0) AS runs_failed,
       coalesce(r.runs_cancelled, 0) AS runs_cancelled,
       coalesce(r.runs_interrupted, 0) AS runs_interrupted,
       coalesce(r.runs_queued, 0) AS runs_queued,
       coalesce(r.runs_running, 0) AS runs_running,
       coalesce(r.rows_delivered, 0) AS rows_delivered,
       coalesce(r.rows_rejected, 0) AS rows_rejected,
       coalesce(r.requests, 0) AS requests,
       coalesce(r.throttled, 0) AS throttled,
       st.rows_waiting,
       coalesce(c.captured_backlog, 0) AS captured_backlog,
       coalesce(pg_catalog.date_part('epoch', pg_catalog.now() - c.oldest_captured_at), 0)::float8
         AS oldest_change_age_seconds,
       pg_catalog.date_part('epoch', pg_catalog.now() - st.last_success_at)::float8 AS last_success_age_seconds
  FROM revetl.syncs s
  JOIN revetl.sync_status st ON st.name = s.name
  LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE x.status = 'succeeded') AS runs_succeeded,
               count(*) FILTER (WHERE x.status = 'partial') AS runs_partial,
               count(*) FILTER (WHERE x.status = 'failed') AS runs_failed,
               count(*) FILTER (WHERE x.status = 'cancelled') AS runs_cancelled,
               count(*) FILTER (WHERE x.status = 'interrupted') AS runs_interrupted,
               count(*) FILTER (WHERE x.status = 'queued') AS runs_queued,
               count(*) FILTER (WHERE x.status = 'running') AS runs_running,
               sum(x.rows_delivered) AS rows_delivered, sum(x.rows_rejected) AS rows_rejected,
               sum(x.requests) AS requests, sum(x.throttled) AS throttled
          FROM revetl.runs x WHERE x.sync_id = s.id) r ON true
  LEFT JOIN LATERAL (
        SELECT count(*) AS captured_backlog, min(cc.captured_at) AS oldest_captured_at
          FROM revetl.captured_changes cc WHERE cc.sync_id = s.id) c ON true;

COMMENT ON VIEW revetl.metrics IS
  'one row per sync for monitoring: health, run outcomes, rows delivered and refused, requests, throttling, queue and backlog';
GRANT SELECT ON revetl.metrics TO PUBLIC;

----------------------------------------------------------------------------
-- Schema changes that break a sync (issue 17): the DDL watch also runs for
-- views and drops, checks the syncs whose model changed, and keeps what no
-- longer fits in sync_state.model_problem, shown by sync_status.
----------------------------------------------------------------------------
ALTER TABLE revetl.sync_state ADD COLUMN model_problem text;

-- track_changes = 'wal': the table the WAL capture decodes for the sync; a
-- different one (a new sync, a rebuilt model) means a full diff first.
ALTER TABLE revetl.sync_state ADD COLUMN wal_relid oid;

-- Back-pressure alerts (alert_backlog_age, alert_wal_retained): the limit a
-- sync's backlog is over, as the scheduler last found it; NULL when within.
ALTER TABLE revetl.sync_state ADD COLUMN alert_backlog text;

DROP EVENT TRIGGER revetl_ddl_watch;
CREATE EVENT TRIGGER revetl_ddl_watch ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE', 'DROP TABLE',
               'CREATE VIEW', 'ALTER VIEW', 'DROP VIEW', 'CREATE MATERIALIZED VIEW',
               'ALTER MATERIALIZED VIEW', 'DROP MATERIALIZED VIEW', 'ALTER FOREIGN TABLE',
               'DROP FOREIGN TABLE')
  EXECUTE FUNCTION revetl._ddl_watch();

----------------------------------------------------------------------------
-- Copies of a database do not send (issue 17): revetl.instance, each sync's
-- instance_token, revetl.confirm_copy(), and health 'copy' in sync_status.
----------------------------------------------------------------------------
-- This installation's identity. A copy of the database (CREATE DATABASE
-- ... TEMPLATE, a dump restored anywhere) must not send to the original's
-- destinations until a DBA says it may: a template copy carries this row
-- into a database of another oid, and a restore creates the extension (and
-- so a new token) before it restores the syncs, each of which keeps the
-- token of the installation it was made in. Not dumped. See
-- docs/operations.md, "Copies of a database".
CREATE TABLE revetl.instance (
    token         uuid NOT NULL,
    database_oid  oid NOT NULL
);
INSERT INTO revetl.instance (token, database_oid)
SELECT pg_catalog.gen_random_uuid(), d.oid FROM pg_catalog.pg_database d
 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database();
REVOKE ALL ON revetl.instance FROM PUBLIC;

-- Releases the syncs of a copy of a database (see revetl.instance): for a
-- superuser or a member of the database's owner role.
CREATE FUNCTION revetl.confirm_copy()
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) session_user)
       AND NOT pg_catalog.pg_has_role(session_user,
             (SELECT d.datdba FROM pg_catalog.pg_database d
               WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()), 'MEMBER') THEN
        RAISE EXCEPTION 'must be the owner of database % to confirm it as a copy', pg_catalog.current_database()
          USING ERRCODE = '42501',
                HINT = 'A superuser or a member of the database''s owner role may run revetl.confirm_copy().';
    END IF;
    UPDATE revetl.instance
       SET token = pg_catalog.gen_random_uuid(),
           database_oid = (SELECT d.oid FROM pg_catalog.pg_database d
                            WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
    UPDATE revetl.syncs SET instance_token = (SELECT i.token FROM revetl.instance i);
END
$$;

COMMENT ON FUNCTION revetl.confirm_copy() IS
  'releases the syncs of a copy of a database (a template copy or a restored dump) to send from this database';

ALTER TABLE revetl.syncs ADD COLUMN instance_token uuid;
UPDATE revetl.syncs SET instance_token = (SELECT i.token FROM revetl.instance i);
ALTER TABLE revetl.syncs ALTER COLUMN instance_token SET NOT NULL;

-- revetl.sync_status in its 0.2.0 form, once every table and view it reads
-- is in place: last_error for the owner only (issue 19), next_retry_at,
-- model_problem, and health 'copy'.
CREATE OR REPLACE VIEW revetl.sync_status AS
SELECT s.name,
       s.owner,
       s.schedule_kind || coalesce(' ' || s.schedule_value, '') AS schedule,
       s.paused,
       last.id AS last_run_id,
       last.status AS last_status,
       last.trigger AS last_trigger,
       last.finished_at AS last_finished_at,
       CASE WHEN pg_catalog.pg_has_role(s.owner, 'USAGE') THEN last.error END AS last_error,
       ok.finished_at AS last_success_at,
       coalesce(greatest(last.rows_added + last.rows_changed + last.rows_removed - last.rows_delivered, 0)
                + last.rows_invalid, 0)
         + coalesce((SELECT count(*) FROM revetl.changes c JOIN revetl.runs r ON r.id = c.run_id
                      WHERE r.sync_id = s.id AND r.status = 'running'), 0) AS rows_waiting,
       (SELECT min(r.started_at) FROM revetl.runs r
         WHERE r.sync_id = s.id AND r.id > coalesce(ok.id, 0) AND r.started_at IS NOT NULL) AS oldest_undelivered_at,
       st.next_run_at,
       CASE
         WHEN s.instance_token IS DISTINCT FROM i.token
           OR i.database_oid IS DISTINCT FROM (SELECT d.oid FROM pg_catalog.pg_database d
                                                WHERE d.datname = pg_catalog.current_database()) THEN 'copy'
         WHEN s.paused THEN 'paused'
         WHEN EXISTS (SELECT 1 FROM revetl.runs r WHERE r.sync_id = s.id AND r.status = 'running') THEN 'running'
         WHEN last.id IS NULL THEN 'never run'
         WHEN last.status = 'failed' THEN 'failing'
         WHEN last.status = 'partial' THEN 'degraded'
         WHEN (s.options ? 'alert_no_success_for') AND st.alert_stale THEN 'degraded'
         WHEN st.alert_backlog IS NOT NULL THEN 'degraded'
         ELSE 'healthy'
       END AS health,
       CASE WHEN cr.due_at = '-infinity' THEN pg_catalog.now() ELSE cr.due_at END AS next_retry_at,
       st.model_problem,
       -- back-pressure: captured keys waiting for a run (coalesced by key
       -- when planned), and how long the oldest has waited
       (SELECT count(*) FROM revetl.captured_changes c WHERE c.sync_id = s.id) AS backlog_keys,
       pg_catalog.now() - (SELECT min(c.captured_at) FROM revetl.captured_changes c
                            WHERE c.sync_id = s.id) AS backlog_age,
       -- track_changes = 'wal': the database's slot, how far its consumer is
       -- behind the WAL written, and how much WAL it keeps from removal
       CASE WHEN (s.options ->> 'track_changes') = 'wal' AND NOT pg_catalog.pg_is_in_recovery() THEN
         (SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), sl.confirmed_flush_lsn)::bigint
            FROM pg_catalog.pg_replication_slots sl WHERE sl.slot_name = 'revetl_' || (SELECT d.oid FROM pg_catalog.pg_database d
                                                   WHERE d.datname = pg_catalog.current_database())::text)
       END AS wal_lag_bytes,
       CASE WHEN (s.options ->> 'track_changes') = 'wal' AND NOT pg_catalog.pg_is_in_recovery() THEN
         (SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), sl.restart_lsn)::bigint
            FROM pg_catalog.pg_replication_slots sl WHERE sl.slot_name = 'revetl_' || (SELECT d.oid FROM pg_catalog.pg_database d
                                                   WHERE d.datname = pg_catalog.current_database())::text)
       END AS wal_retained_bytes,
       -- back-pressure alert: which limit the backlog is over (alert_backlog_age,
       -- alert_wal_retained), as the scheduler last found it; NULL when within
       st.alert_backlog AS backlog_alert
  FROM revetl.syncs s
  LEFT JOIN revetl.instance i ON true
  LEFT JOIN revetl.sync_state st ON st.sync_id = s.id
  LEFT JOIN revetl._change_retries cr ON cr.sync_id = s.id
  LEFT JOIN LATERAL (SELECT * FROM revetl.runs r
                      WHERE r.sync_id = s.id AND r.status NOT IN ('queued', 'running')
                      ORDER BY r.id DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT r.id, r.finished_at FROM revetl.runs r
                      WHERE r.sync_id = s.id AND r.status = 'succeeded'
                      ORDER BY r.id DESC LIMIT 1) ok ON true;

-- Captured keys: one index write less per key (issue 15). Every read goes
-- by sync and id, through captured_changes_sync_idx.
ALTER TABLE revetl.captured_changes DROP CONSTRAINT captured_changes_pkey;

----------------------------------------------------------------------------
-- MODE AUDIENCE (issue 14): the model's rows are the members of a list, tag
-- or audience, named by syncs.audience; the function forms take it.
----------------------------------------------------------------------------
ALTER TABLE revetl.syncs DROP CONSTRAINT syncs_mode_check;
ALTER TABLE revetl.syncs ADD CONSTRAINT syncs_mode_check
  CHECK (mode IN ('upsert', 'update', 'insert', 'mirror', 'audience'));
ALTER TABLE revetl.syncs ADD COLUMN audience text;
ALTER TABLE revetl.syncs ADD CONSTRAINT syncs_audience_check
  CHECK ((mode = 'audience') = (audience IS NOT NULL));

DROP FUNCTION revetl.create_sync(text, text, text, text[], text, jsonb, jsonb, text, text, text, boolean);
CREATE FUNCTION revetl.create_sync(
    name        text,
    model       text,
    destination text,
    key         text[],
    mode        text DEFAULT 'upsert',
    map         jsonb DEFAULT NULL,
    options     jsonb DEFAULT '{}',
    object      text DEFAULT NULL,
    match_on    text DEFAULT NULL,
    schedule    text DEFAULT 'manual',
    replace     boolean DEFAULT false,
    audience    text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'revetl_create_sync'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

COMMENT ON FUNCTION revetl.create_sync(text, text, text, text[], text, jsonb, jsonb, text, text, text, boolean, text) IS
  'creates a sync from a table, view or query (model) to a revetl foreign server (destination); the function form of CREATE [OR REPLACE] SYNC';

DROP FUNCTION revetl.alter_sync(text, text, text, text[], text, jsonb, jsonb, text, text, text);
CREATE FUNCTION revetl.alter_sync(
    name        text,
    model       text DEFAULT NULL,
    destination text DEFAULT NULL,
    key         text[] DEFAULT NULL,
    mode        text DEFAULT NULL,
    map         jsonb DEFAULT NULL,
    options     jsonb DEFAULT NULL,
    object      text DEFAULT NULL,
    match_on    text DEFAULT NULL,
    schedule    text DEFAULT NULL,
    audience    text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'revetl_alter_sync'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

----------------------------------------------------------------------------
-- The full-diff plan (issue 16, docs/change-tracking.md#full-diff): the row
-- hash computed over the mapped values as they are, and a shadow key's
-- fields read back in the key columns' own types. A shadow table gains its
-- typed key columns (key_1, key_2, ..., generated from its key text with
-- key_field) at the first run that plans it, when the model's key types
-- are known; the row hash is the one earlier versions stored, so the first
-- run after an update sends only the rows that really changed.
----------------------------------------------------------------------------

-- hash_record_extended(ROW(v1, v2, ...), 0) without forming the row.
-- Callable by everyone: the plan runs as the sync's owner.
CREATE FUNCTION revetl.row_hash(VARIADIC "any")
RETURNS bigint
AS 'MODULE_PATHNAME', 'revetl_row_hash'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION revetl.row_hash("any") IS
  'the row hash revetl''s plan stores for the values: hash_record_extended(ROW(values), 0)';

-- Not STRICT: the third argument is a typed NULL that only gives the type.
-- IMMUTABLE: a key's text is the jsonb rendering of its values, which their
-- input functions read back the same whatever the session's settings.
CREATE FUNCTION revetl.key_field(key text, field text, type anyelement)
RETURNS anyelement
AS 'MODULE_PATHNAME', 'revetl_key_field'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION revetl.key_field(text, text, anyelement) IS
  'one field of a shadow key''s text ({"column": value, ...}) as a value of the given type';

-- jsonb_build_object(key, value, ...) with each argument's conversion looked
-- up once per call site: the plan's key and payload objects, the same bytes.
-- STABLE, not IMMUTABLE: some output functions follow settings (TimeZone).
-- Callable by everyone: the plan runs as the sync's owner.
CREATE FUNCTION revetl.object_jsonb(VARIADIC "any")
RETURNS jsonb
AS 'MODULE_PATHNAME', 'revetl_object_jsonb'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION revetl.object_jsonb("any") IS
  'jsonb_build_object''s result for text keys and any values, for revetl''s plan';

----------------------------------------------------------------------------
-- A refused row can say what its owner can do about it (issue 20: a
-- removal that can never be sent, NO_RECORD_ID, is reported once with how
-- to remove the record by hand).
----------------------------------------------------------------------------
ALTER TABLE revetl.rejected_rows ADD COLUMN hint text;

COMMENT ON COLUMN revetl.rejected_rows.hint IS
  'what the sync''s owner can do about the refusal, when revetl knows (NO_RECORD_ID: how to remove the record by hand)';

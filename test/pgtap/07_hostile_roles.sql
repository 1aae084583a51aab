-- Hostile roles, in one session (issue 19): a second role, mallory, attacks a
-- first, victim. Every probe asserts that the attack fails and that the
-- victim's syncs are unchanged. Worker-side and multi-session probes are in
-- test/integration/test_security.py.
--
-- mallory's "hijack kit" shadows built-ins that revetl calls by name
-- (nextval(text), quote_ident, clock_timestamp(), now(), count(*), max, and
-- the operator = on bigint and text) with functions that try
-- ALTER ROLE mallory SUPERUSER (which only works when they run as a
-- superuser) and then return the real value. After every probe mallory must
-- still be no superuser.
--
-- Nothing here commits, so neither the scheduler nor a worker ever sees it.
BEGIN;
SELECT plan(117);

CREATE ROLE victim LOGIN;
CREATE ROLE mallory LOGIN;
CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
CREATE SCHEMA victim AUTHORIZATION victim;
CREATE SCHEMA mallory AUTHORIZATION mallory;
CREATE SERVER victim_hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/victim');
CREATE SERVER mallory_hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/mallory');
-- A DBA shares the victim's destination with mallory.
GRANT USAGE ON FOREIGN SERVER victim_hooks TO victim, mallory;
GRANT USAGE ON FOREIGN SERVER mallory_hooks TO mallory;
CREATE USER MAPPING FOR victim SERVER victim_hooks OPTIONS (token 'victim-tap-token-0xfeed');

-- What a probe did: its result ('ok' or 'SQLSTATE: message'), whether mallory
-- was a superuser right after it, and the search_path before and after.
CREATE TEMP TABLE obs (label text PRIMARY KEY, result text, super boolean, path_before text, path_after text);
GRANT ALL ON obs TO PUBLIC;

-- Runs sql (as the current role); with path, under that search_path, restored
-- afterwards; without, the search_path is left as sql leaves it. Everything
-- in here is schema-qualified, because path may be mallory's.
CREATE FUNCTION pg_temp.probe(label text, sql text, path text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE
  saved text := pg_catalog.current_setting('search_path');
  res text := 'ok';
BEGIN
  IF path IS NOT NULL THEN
    PERFORM pg_catalog.set_config('search_path', path, true);
  END IF;
  BEGIN
    EXECUTE sql;
  EXCEPTION WHEN OTHERS THEN
    res := SQLSTATE || ': ' || SQLERRM;
  END;
  INSERT INTO pg_temp.obs VALUES (label, res,
    (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'mallory'),
    saved, pg_catalog.current_setting('search_path'));
  IF path IS NOT NULL THEN
    PERFORM pg_catalog.set_config('search_path', saved, true);
  END IF;
  -- Undo a successful escalation at once (a superuser mallory may do that
  -- itself), so that the next probe starts from scratch.
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'mallory') THEN
    EXECUTE 'ALTER ROLE mallory NOSUPERUSER';
  END IF;
END $f$;
CREATE FUNCTION pg_temp.res(l text) RETURNS text LANGUAGE sql AS $$SELECT result FROM pg_temp.obs WHERE label = l$$;
CREATE FUNCTION pg_temp.super(l text) RETURNS boolean LANGUAGE sql AS $$SELECT super FROM pg_temp.obs WHERE label = l$$;
CREATE FUNCTION pg_temp.path_kept(l text) RETURNS boolean LANGUAGE sql
  AS $$SELECT path_before = path_after FROM pg_temp.obs WHERE label = l$$;
CREATE FUNCTION pg_temp.sid(sync text) RETURNS bigint LANGUAGE sql STABLE
  AS $$SELECT id FROM revetl.syncs WHERE name = sync$$;
CREATE FUNCTION pg_temp.captured(sync text) RETURNS bigint LANGUAGE sql STABLE
  AS $$SELECT count(*) FROM revetl.captured_changes WHERE sync_id = pg_temp.sid(sync)$$;
-- A role's own statement that must fail: its SQLSTATE, or 'ok'.
CREATE FUNCTION pg_temp.state_of(sql text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE sql;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $f$;
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE sql;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $f$;
-- The same with the error's detail.
CREATE FUNCTION pg_temp.error_detail_of(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE d text;
BEGIN
  EXECUTE sql;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(d, '') || ')', '');
END $f$;

-- The victim's data and syncs --------------------------------------------------------
SET LOCAL ROLE victim;
CREATE TABLE victim.people (id int PRIMARY KEY, email text, ssn text);
INSERT INTO victim.people VALUES (1, 'a@example.com', '111-11-1111'), (2, 'b@example.com', '222-22-2222');
SELECT lives_ok($$SELECT revetl.execute('CREATE SYNC v_people FROM victim.people TO victim_hooks KEY (id)
                                           MAP (email AS email)')$$, 'the victim creates a sync');
SELECT lives_ok($$SELECT revetl.execute('CREATE SYNC v_tracked FROM victim.people TO victim_hooks KEY (id)
                                           SCHEDULE ON CHANGE')$$, 'the victim creates a tracked sync');
RESET ROLE;

-- mallory's schema: its tables and its hijack kit ----------------------------------
SET LOCAL ROLE mallory;
CREATE TABLE mallory.t (id int PRIMARY KEY, v text);
INSERT INTO mallory.t VALUES (1, 'one'), (2, 'two'), (3, 'three');
CREATE TABLE mallory.tt (id int PRIMARY KEY, v text);
INSERT INTO mallory.tt VALUES (1, 'one');
CREATE TABLE mallory.junk (id int);

CREATE FUNCTION mallory.escalate() RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE 'ALTER ROLE mallory SUPERUSER';
EXCEPTION WHEN OTHERS THEN
  NULL;  -- not a superuser here: stay quiet and let the caller go on
END $f$;
CREATE FUNCTION mallory.nextval(text) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.nextval($1::pg_catalog.regclass); END $f$;
CREATE FUNCTION mallory.quote_ident(text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.quote_ident($1); END $f$;
CREATE FUNCTION mallory.quote_ident(name) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.quote_ident($1::pg_catalog.text); END $f$;
CREATE FUNCTION mallory.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.clock_timestamp(); END $f$;
CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.now(); END $f$;
CREATE FUNCTION mallory.count_step(bigint) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.+) 1; END $f$;
CREATE AGGREGATE mallory.count(*) (SFUNC = mallory.count_step, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION mallory.max_step(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN GREATEST($1, $2); END $f$;
CREATE AGGREGATE mallory.max(bigint) (SFUNC = mallory.max_step, STYPE = bigint);
CREATE FUNCTION mallory.int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR mallory.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = mallory.int8eq);
CREATE FUNCTION mallory.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.texteq);
-- Owner code for class 2: tries to escalate and to leave its search_path in
-- whatever session evaluates it.
CREATE FUNCTION mallory.evil() RETURNS int LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM mallory.escalate();
  PERFORM pg_catalog.set_config('search_path', 'mallory, pg_catalog', false);
  RETURN 1;
END $f$;
RESET ROLE;

SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'), false, 'setup: mallory is no superuser');

-- 1. search_path hijack -> superuser --------------------------------------------------
SET LOCAL ROLE mallory;
SELECT pg_temp.probe('1 create', $$SELECT revetl.execute('CREATE SYNC m_plain FROM mallory.t TO mallory_hooks KEY (id)')$$,
                     'mallory, pg_catalog');
SELECT pg_temp.probe('1 create fn', $$SELECT revetl.create_sync('m_fn', 'mallory.t', 'mallory_hooks', ARRAY['id'])$$,
                     'mallory, pg_catalog');
SELECT pg_temp.probe('1 create tracked',
                     $$SELECT revetl.execute('CREATE SYNC m_tracked FROM mallory.tt TO mallory_hooks KEY (id) SCHEDULE ON CHANGE')$$,
                     'mallory, pg_catalog');
SELECT pg_temp.probe('1 run', $$SELECT revetl.run_sync('m_plain')$$, 'mallory, pg_catalog');
SELECT pg_temp.probe('1 alter', $$SELECT revetl.execute('ALTER SYNC m_plain SET MODE MIRROR')$$, 'mallory, pg_catalog');
SELECT pg_temp.probe('1 track', $$SELECT revetl.execute('ALTER SYNC m_plain SET (track_changes = true)')$$,
                     'mallory, pg_catalog');
SELECT pg_temp.probe('1 untrack', $$SELECT revetl.execute('ALTER SYNC m_plain SET (track_changes = false)')$$,
                     'mallory, pg_catalog');
SELECT pg_temp.probe('1 pause', $$SELECT revetl.pause_sync('m_plain'); SELECT revetl.resume_sync('m_plain')$$,
                     'mallory, pg_catalog');
SELECT pg_temp.probe('1 rename sync', $$SELECT revetl.execute('ALTER SYNC m_fn RENAME TO m_fn2')$$, 'mallory, pg_catalog');
SELECT pg_temp.probe('1 preview', $$SELECT count(*) FROM revetl.preview_sync('m_plain')$$, 'mallory, pg_catalog');
SELECT pg_temp.probe('1 rename table', $$ALTER TABLE mallory.tt RENAME TO tt_renamed$$, 'mallory, pg_catalog');
SELECT pg_temp.probe('1 rebuild table',
                     $$CREATE TABLE mallory.tt AS SELECT * FROM mallory.tt_renamed; ALTER TABLE mallory.tt ADD PRIMARY KEY (id)$$,
                     'mallory, pg_catalog');
SELECT pg_temp.probe('1 reassign', $$REASSIGN OWNED BY mallory TO mallory$$, 'mallory, pg_catalog');
SELECT pg_temp.probe('1 drop tracked', $$SELECT revetl.execute('DROP SYNC m_tracked')$$, 'mallory, pg_catalog');
SELECT pg_temp.probe('1 drop tracked fn',
                     $$SELECT revetl.execute('CREATE SYNC m_tracked2 FROM mallory.t TO mallory_hooks KEY (id) WITH (track_changes = true)');
                       SELECT revetl.drop_sync('m_tracked2')$$,
                     'mallory, pg_catalog');
-- The same, with pg_catalog first: exact-signature functions (nextval(text),
-- quote_ident(name)) and operators win over pg_catalog's even then.
SELECT pg_temp.probe('1 create, pg_catalog first',
                     $$SELECT revetl.execute('CREATE SYNC m_late FROM mallory.tt TO mallory_hooks KEY (id) WITH (track_changes = true)');
                       SELECT revetl.execute('DROP SYNC m_late')$$,
                     'pg_catalog, mallory');
RESET ROLE;

SELECT is(pg_temp.res(l), 'ok', l || ': mallory''s own command works')
  FROM unnest(ARRAY['1 create', '1 create fn', '1 create tracked', '1 run', '1 alter', '1 track', '1 untrack',
                    '1 pause', '1 rename sync', '1 preview', '1 rename table', '1 rebuild table', '1 reassign',
                    '1 drop tracked', '1 drop tracked fn', '1 create, pg_catalog first']) l;
SELECT is(pg_temp.super(l), false, l || ': mallory is still no superuser')
  FROM unnest(ARRAY['1 create', '1 create fn', '1 create tracked', '1 run', '1 alter', '1 track', '1 untrack',
                    '1 pause', '1 rename sync', '1 preview', '1 rename table', '1 rebuild table', '1 reassign',
                    '1 drop tracked', '1 drop tracked fn', '1 create, pg_catalog first']) l;
ALTER ROLE mallory NOSUPERUSER;
-- What revetl creates under mallory's search_path calls only pg_catalog: a
-- shadow table's DEFAULT now() bound to mallory.now() would run it as the
-- extension owner at every insert.
SELECT is_empty($$
  SELECT c.relname, p.oid::regprocedure
    FROM pg_depend d
    JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
    JOIN pg_class c ON c.oid = ad.adrelid
    JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
   WHERE c.relnamespace = 'revetl'::regnamespace AND p.pronamespace <> 'pg_catalog'::regnamespace$$,
  'no column default of revetl''s tables calls a function outside pg_catalog (shadow tables made under mallory''s path)');
SELECT is_empty($$
  SELECT p.oid::regprocedure, d.refobjid
    FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
   WHERE p.pronamespace = 'revetl'::regnamespace
     AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass)
     AND d.refobjid IN (SELECT oid FROM pg_proc WHERE pronamespace = 'mallory'::regnamespace
                        UNION SELECT oid FROM pg_operator WHERE oprnamespace = 'mallory'::regnamespace)$$,
  'no revetl function depends on a function or operator of mallory''s');

-- 2. A superuser looking at mallory's sync runs none of its code as superuser -----------
SET LOCAL ROLE mallory;
SELECT pg_temp.probe('2 create q', $$SELECT revetl.execute('CREATE SYNC m_evil_q
                                       FROM (SELECT id, v FROM mallory.t WHERE mallory.evil() = 1)
                                       TO mallory_hooks KEY (id)')$$);
SET search_path TO DEFAULT;
SELECT pg_temp.probe('2 create map', $$SELECT revetl.execute('CREATE SYNC m_evil_map FROM mallory.t TO mallory_hooks
                                         KEY (id) MAP (v AS v, mallory.evil() AS e)')$$);
SET search_path TO DEFAULT;
RESET ROLE;
SELECT is(pg_temp.res('2 create q'), 'ok', 'mallory creates a sync whose query model calls its own function');
SELECT is(pg_temp.res('2 create map'), 'ok', 'mallory creates a sync whose MAP calls its own function');
SELECT ok(pg_temp.path_kept('2 create q'), 'creating it leaves mallory''s own search_path unchanged');
SELECT pg_temp.probe('2 preview q', $$SELECT count(*) FROM revetl.preview_sync('m_evil_q')$$);
SET search_path TO DEFAULT;
ALTER ROLE mallory NOSUPERUSER;
SELECT pg_temp.probe('2 preview map', $$SELECT count(*) FROM revetl.preview_sync('m_evil_map')$$);
SET search_path TO DEFAULT;
ALTER ROLE mallory NOSUPERUSER;
SELECT pg_temp.probe('2 alter mode', $$SELECT revetl.execute('ALTER SYNC m_evil_q SET MODE MIRROR')$$);
SET search_path TO DEFAULT;
ALTER ROLE mallory NOSUPERUSER;
SELECT pg_temp.probe('2 alter mode fn', $$SELECT revetl.alter_sync('m_evil_q', mode => 'insert')$$);
SET search_path TO DEFAULT;
ALTER ROLE mallory NOSUPERUSER;
SELECT pg_temp.probe('2 alter key', $$SELECT revetl.execute('ALTER SYNC m_evil_q SET KEY (id, v)')$$);
SET search_path TO DEFAULT;
ALTER ROLE mallory NOSUPERUSER;
SELECT pg_temp.probe('2 alter map', $$SELECT revetl.execute('ALTER SYNC m_evil_map SET MODE MIRROR')$$);
SET search_path TO DEFAULT;
ALTER ROLE mallory NOSUPERUSER;
SELECT pg_temp.probe('2 replace',
                     format('SELECT revetl.execute(%L)',
                            regexp_replace(revetl.sync_ddl('m_evil_q'), '^CREATE SYNC', 'CREATE OR REPLACE SYNC')));
SET search_path TO DEFAULT;
ALTER ROLE mallory NOSUPERUSER;
SELECT pg_temp.probe('2 replace map',
                     format('SELECT revetl.execute(%L)',
                            regexp_replace(revetl.sync_ddl('m_evil_map'), '^CREATE SYNC', 'CREATE OR REPLACE SYNC')));
SET search_path TO DEFAULT;
ALTER ROLE mallory NOSUPERUSER;
SELECT pg_temp.probe('2 track', $$SELECT revetl.execute('ALTER SYNC m_evil_map SET (track_changes = true)')$$);
SET search_path TO DEFAULT;
ALTER ROLE mallory NOSUPERUSER;

SELECT is(pg_temp.res(l), 'ok', l || ': the superuser''s command works')
  FROM unnest(ARRAY['2 preview q', '2 preview map', '2 alter mode', '2 alter mode fn', '2 alter key', '2 alter map',
                    '2 replace', '2 replace map', '2 track']) l;
SELECT is(pg_temp.super(l), false, l || ': mallory''s code did not run as the superuser')
  FROM unnest(ARRAY['2 preview q', '2 preview map', '2 alter mode', '2 alter mode fn', '2 alter key', '2 alter map',
                    '2 replace', '2 replace map', '2 track']) l;
SELECT ok(pg_temp.path_kept(l), l || ': the superuser''s search_path is unchanged afterwards')
  FROM unnest(ARRAY['2 preview q', '2 preview map', '2 alter mode', '2 alter mode fn', '2 alter key', '2 alter map',
                    '2 replace', '2 replace map', '2 track']) l;
SELECT is((SELECT owner::text FROM revetl.syncs WHERE name = 'm_evil_q'), 'mallory',
          'CREATE OR REPLACE by the superuser kept mallory as the owner');

-- The owner code still works for its owner, and leaves no setting behind.
SET LOCAL ROLE mallory;
SELECT pg_temp.probe('2 owner preview map', $p$DO $d$ BEGIN
  IF (SELECT count(*) FROM revetl.preview_sync('m_evil_map')) = 0 THEN RAISE EXCEPTION 'no rows'; END IF;
END $d$$p$);
SET search_path TO DEFAULT;
SELECT pg_temp.probe('2 owner preview q', $p$DO $d$ BEGIN
  IF (SELECT count(*) FROM revetl.preview_sync('m_evil_q')) = 0 THEN RAISE EXCEPTION 'no rows'; END IF;
END $d$$p$);
SET search_path TO DEFAULT;
RESET ROLE;
SELECT is(pg_temp.res('2 owner preview map'), 'ok', 'mallory''s own preview of its MAP sync returns rows');
SELECT is(pg_temp.res('2 owner preview q'), 'ok', 'mallory''s own preview of its query-model sync returns rows');
SELECT ok(pg_temp.path_kept('2 owner preview map'), 'the owner''s own preview leaves its search_path unchanged');
ALTER ROLE mallory NOSUPERUSER;

-- 4. Capture functions: nobody but revetl's triggers runs them --------------------------
SELECT ok(NOT has_function_privilege('mallory', format('revetl.capture_%s()', pg_temp.sid('v_tracked')), 'EXECUTE'),
          'mallory has no EXECUTE on the victim''s capture function');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                       WHERE p.pronamespace = 'revetl'::regnamespace AND p.proname LIKE 'capture\_%'
                         AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'),
          'no capture function is executable by PUBLIC');
CREATE TEMP TABLE cap_before AS SELECT pg_temp.captured('v_tracked') AS n;
SET LOCAL ROLE mallory;
SELECT is(pg_temp.state_of(format(
            'CREATE TRIGGER steal AFTER INSERT ON mallory.junk REFERENCING NEW TABLE AS revetl_new '
            'FOR EACH STATEMENT EXECUTE FUNCTION revetl.capture_%s()', pg_temp.sid('v_tracked'))), '42501',
          'mallory cannot attach the victim''s capture function to its own table (INSERT): 42501');
SELECT is(pg_temp.state_of(format(
            'CREATE TRIGGER steal_d AFTER DELETE ON mallory.junk REFERENCING OLD TABLE AS revetl_old '
            'FOR EACH STATEMENT EXECUTE FUNCTION revetl.capture_%s()', pg_temp.sid('v_tracked'))), '42501',
          'mallory cannot attach it for DELETE either: 42501');
SELECT is(pg_temp.state_of(format(
            'CREATE TRIGGER steal_t AFTER TRUNCATE ON mallory.junk '
            'FOR EACH STATEMENT EXECUTE FUNCTION revetl.capture_%s()', pg_temp.sid('v_tracked'))), '42501',
          'mallory cannot attach it for TRUNCATE either: 42501');
SELECT is(pg_temp.state_of(format('SELECT revetl.capture_%s()', pg_temp.sid('v_tracked'))), '42501',
          'mallory cannot call the victim''s capture function: 42501');
-- Whatever got attached, writing mallory's table must not reach the victim's queue.
CREATE TEMP TABLE junk_written AS SELECT pg_temp.state_of($$INSERT INTO mallory.junk SELECT g FROM generate_series(1000, 1999) g;
                          DELETE FROM mallory.junk; TRUNCATE mallory.junk$$);
RESET ROLE;
SELECT is(pg_temp.captured('v_tracked'), (SELECT n FROM cap_before),
          'the victim''s captured changes gained no junk rows');
-- The victim's own writes are still captured.
SET LOCAL ROLE victim;
INSERT INTO victim.people VALUES (3, 'c@example.com', '333-33-3333');
RESET ROLE;
SELECT is(pg_temp.captured('v_tracked'), (SELECT n FROM cap_before) + 1,
          'the victim''s own write is still captured');

-- 5. Cross-owner dependencies -------------------------------------------------------------
SET LOCAL ROLE mallory;
SELECT is(pg_temp.state_of($$SELECT revetl.execute('CREATE SYNC m_after FROM mallory.t TO mallory_hooks KEY (id)
                                                      SCHEDULE AFTER v_people')$$), '42501',
          'mallory cannot schedule a sync AFTER the victim''s sync: 42501');
SELECT is(pg_temp.state_of($$SELECT revetl.create_sync('m_after_fn', 'mallory.t', 'mallory_hooks', ARRAY['id'],
                                                         schedule => 'after v_people')$$), '42501',
          'nor with the function form: 42501');
SELECT is(pg_temp.state_of($$SELECT revetl.execute('ALTER SYNC m_plain SET SCHEDULE AFTER v_people')$$), '42501',
          'nor by ALTER SYNC ... SET SCHEDULE AFTER: 42501');
SELECT is(pg_temp.state_of($$SELECT revetl.alter_sync('m_plain', schedule => 'after v_tracked')$$), '42501',
          'nor by alter_sync(schedule => ''after ...''): 42501');
RESET ROLE;
SELECT is((SELECT count(*) FROM revetl.syncs WHERE schedule_kind = 'after'), 0::bigint,
          'no sync is scheduled AFTER another');

-- A member of the victim's role may (set up legitimately); the victim can
-- still drop its own sync, and the dependent becomes manual.
GRANT victim TO mallory;
SET LOCAL ROLE mallory;
SELECT lives_ok($$SELECT revetl.execute('CREATE SYNC m_after_ok FROM mallory.t TO mallory_hooks KEY (id)
                                           SCHEDULE AFTER v_people')$$,
                'a member of the victim''s role may schedule AFTER the victim''s sync');
RESET ROLE;
REVOKE victim FROM mallory;
SET LOCAL ROLE victim;
SELECT lives_ok($$SELECT revetl.execute('CREATE SYNC v_second FROM victim.people TO victim_hooks KEY (id)
                                           SCHEDULE AFTER v_people')$$, 'the victim schedules its own second sync AFTER');
SELECT is(pg_temp.error_of($$SELECT revetl.execute('DROP SYNC v_people')$$), 'ok',
          'the victim drops its own sync, though others are scheduled AFTER it');
RESET ROLE;
SELECT results_eq($$SELECT name, schedule_kind, schedule_value FROM revetl.syncs
                     WHERE name IN ('m_after_ok', 'v_second') ORDER BY name$$,
                  $$VALUES ('m_after_ok'::text, 'manual'::text, NULL::text), ('v_second', 'manual', NULL)$$,
                  'the dependents still exist and are manual now');

-- 6d. Minimum schedule interval --------------------------------------------------------
SET LOCAL ROLE mallory;
SELECT is(pg_temp.state_of($$SELECT revetl.execute('CREATE SYNC m_fast1 FROM mallory.t TO mallory_hooks KEY (id)
                                                      SCHEDULE EVERY ''1 millisecond''')$$), '22023',
          'SCHEDULE EVERY ''1 millisecond'': 22023');
SELECT matches(pg_temp.error_of($$SELECT revetl.execute('CREATE SYNC m_fast2 FROM mallory.t TO mallory_hooks KEY (id)
                                                          SCHEDULE EVERY ''1 millisecond''')$$),
               'revetl\.min_schedule_interval', 'the message names revetl.min_schedule_interval');
SELECT is(pg_temp.state_of($$SELECT revetl.execute('CREATE SYNC m_fast3 FROM mallory.t TO mallory_hooks KEY (id)
                                                      SCHEDULE EVERY ''29 seconds''')$$), '22023',
          'SCHEDULE EVERY ''29 seconds'' (below the 30 s default): 22023');
SELECT is(pg_temp.state_of($$SELECT revetl.create_sync('m_fast4', 'mallory.t', 'mallory_hooks', ARRAY['id'],
                                                         schedule => 'every 10 ms')$$), '22023',
          'the function form with ''every 10 ms'': 22023');
SELECT is(pg_temp.state_of($$SELECT revetl.execute('ALTER SYNC m_plain SET SCHEDULE EVERY ''1 millisecond''')$$),
          '22023', 'ALTER SYNC ... SET SCHEDULE EVERY ''1 millisecond'': 22023');
SELECT is(pg_temp.state_of($$SELECT revetl.execute('CREATE SYNC m_slow FROM mallory.t TO mallory_hooks KEY (id)
                                                      SCHEDULE EVERY ''30 seconds''')$$), 'ok',
          'SCHEDULE EVERY ''30 seconds'' is accepted');
RESET ROLE;
SELECT is(current_setting('revetl.min_schedule_interval', true) IS NOT NULL, true,
          'the setting revetl.min_schedule_interval exists');
SELECT is(current_setting('revetl.max_syncs_per_role', true) IS NOT NULL, true,
          'the setting revetl.max_syncs_per_role exists');

-- 7. One validation for servers ----------------------------------------------------------
-- This cluster allows 127.0.0.1, localhost and .example.com: HubSpot's default
-- host api.hubapi.com is not allowed.
-- The same server name for both, so that the messages can be compared whole.
CREATE TEMP TABLE srv AS SELECT
  pg_temp.error_of($$CREATE SERVER tap_same FOREIGN DATA WRAPPER revetl OPTIONS (type 'hubspot')$$) AS created;
SELECT isnt((SELECT created FROM srv), 'ok', 'CREATE SERVER of a HubSpot server on its default host is refused here');
DROP SERVER IF EXISTS tap_same;
CREATE SERVER tap_same FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/x');
SELECT is(pg_temp.error_of($$ALTER SERVER tap_same OPTIONS (SET type 'hubspot', DROP url)$$),
          (SELECT created FROM srv WHERE created <> 'ok'),
          'ALTER SERVER to the same options is refused with the same SQLSTATE and message');
SELECT is((SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'tap_same'),
          ARRAY['type=webhook', 'url=http://127.0.0.1:9/x'], 'the server is unchanged');
DROP SERVER tap_same;
CREATE SERVER tap_same FOREIGN DATA WRAPPER revetl OPTIONS (type 'hubspot', url 'http://127.0.0.1:9/hs');
SELECT is(pg_temp.error_of($$ALTER SERVER tap_same OPTIONS (DROP url)$$), (SELECT created FROM srv WHERE created <> 'ok'),
          'dropping a HubSpot server''s url (back to its default host) is refused like CREATE SERVER');
DROP SERVER tap_same;
SELECT is(pg_temp.error_of($$CREATE SERVER tap_same FOREIGN DATA WRAPPER revetl
                               OPTIONS (type 'webhook', url 'http://not-allowed.invalid/x')$$),
          (SELECT pg_temp.error_of($$CREATE SERVER tap_same FOREIGN DATA WRAPPER revetl
                                      OPTIONS (type 'webhook', url 'http://127.0.0.1:9/x');
                                    ALTER SERVER tap_same OPTIONS (SET url 'http://not-allowed.invalid/x')$$)),
          'a url outside the allowlist: ALTER and CREATE fail alike');
CREATE SERVER tap_wh FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/x');
SELECT is(pg_temp.error_of($$ALTER SERVER tap_wh OPTIONS (SET type 'hubspot')$$), 'ok',
          'changing the type while keeping an allowed url is accepted');

-- 8. Captured keys of other owners stay hidden -------------------------------------------
SET LOCAL ROLE mallory;
SELECT is(pg_temp.error_of($$SELECT 1 FROM revetl.captured_changes
                              WHERE sync_id = pg_temp.sid('v_tracked') HAVING count(*) > 0$$)
          IN ('ok', '42501: permission denied for table captured_changes'), true,
          'mallory''s query of revetl.captured_changes is refused or shows no victim keys');
RESET ROLE;

-- 10. Inventory: every SECURITY DEFINER function has a fixed, safe search_path --------------
SET LOCAL ROLE mallory;
SELECT lives_ok($$SELECT revetl.execute('CREATE SYNC m_inv FROM mallory.t TO mallory_hooks KEY (id) WITH (track_changes = true)')$$,
                'a non-superuser creates a tracked sync (its capture function joins the inventory)');
RESET ROLE;
SELECT cmp_ok((SELECT count(*) FROM pg_proc WHERE pronamespace = 'revetl'::regnamespace AND prosecdef), '>=', 2::bigint,
              'the inventory sees the capture functions');
CREATE TEMP TABLE secdef AS
  SELECT p.oid::regprocedure::text AS fn,
         (SELECT substr(c, length('search_path=') + 1) FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%') AS path
    FROM pg_proc p
   WHERE p.prosecdef
     AND (p.pronamespace = 'revetl'::regnamespace
          OR p.oid IN (SELECT objid FROM pg_depend WHERE classid = 'pg_proc'::regclass AND deptype = 'e'
                         AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'revetl')));
SELECT is_empty($$SELECT fn FROM secdef WHERE path IS NULL$$,
                'every SECURITY DEFINER function of revetl sets search_path');
SELECT is_empty($$SELECT fn FROM secdef WHERE path !~ '^\s*"?pg_catalog"?\s*(,|$)'$$,
                'every SECURITY DEFINER function''s search_path starts with pg_catalog');
-- Schemas named in those paths in which a role other than a superuser may create objects.
SELECT is_empty($$
  SELECT s.fn, n.nspname
    FROM secdef s, regexp_split_to_table(s.path, '\s*,\s*') AS e(entry)
    JOIN pg_namespace n ON n.nspname = trim(both '"' from e.entry)
   WHERE EXISTS (SELECT 1 FROM pg_roles r WHERE NOT r.rolsuper
                    AND has_schema_privilege(r.oid, n.oid, 'CREATE'))
      OR trim(both '"' from e.entry) IN ('$user', 'public')$$,
  'no SECURITY DEFINER function''s search_path names a schema a non-superuser can create objects in');

-- The victim's syncs are unchanged by everything mallory tried (v_people was
-- dropped by the victim itself above, v_second made manual).
SELECT is((SELECT string_agg(format('%s|%s|%s', name, owner, mode), ',' ORDER BY name) FROM revetl.syncs
            WHERE owner = 'victim'::regrole), 'v_second|victim|upsert,v_tracked|victim|upsert',
          'the victim''s syncs are the victim''s and unchanged');

-- 5 (continued). DROP OWNED works across dependencies ------------------------------------
-- A second, clean role (no hijack kit), with syncs AFTER and before the victim's.
CREATE ROLE mallory_b LOGIN;
CREATE SCHEMA mallory_b AUTHORIZATION mallory_b;
GRANT USAGE ON FOREIGN SERVER mallory_hooks TO mallory_b;
GRANT mallory_b TO victim;
SET LOCAL ROLE mallory_b;
CREATE TABLE mallory_b.t (id int PRIMARY KEY);
SELECT lives_ok($$SELECT revetl.execute('CREATE SYNC mb_first FROM mallory_b.t TO mallory_hooks KEY (id)')$$,
                'mallory_b creates a sync');
RESET ROLE;
SET LOCAL ROLE victim;
SELECT lives_ok($$SELECT revetl.execute('CREATE SYNC v_after_mb FROM victim.people TO victim_hooks KEY (id)
                                           SCHEDULE AFTER mb_first')$$,
                'the victim (a member of mallory_b''s role) schedules a sync AFTER mallory_b''s');
RESET ROLE;
REVOKE mallory_b FROM victim;
SELECT is(pg_temp.error_detail_of('DROP OWNED BY mallory_b'), 'ok',
          'a superuser''s DROP OWNED BY mallory_b succeeds, though the victim''s sync runs AFTER its sync');
SELECT is((SELECT count(*) FROM revetl.syncs WHERE owner = 'mallory_b'::regrole), 0::bigint,
          'mallory_b owns no sync afterwards');
SELECT is((SELECT schedule_kind FROM revetl.syncs WHERE name = 'v_after_mb'), 'manual',
          'the victim''s dependent sync survives, now manual');
SELECT is(pg_temp.error_detail_of('DROP OWNED BY victim'), 'ok', 'a superuser''s DROP OWNED BY victim succeeds');

-- And for mallory, whose syncs were created under its hijacking search_path.
SELECT is(pg_temp.error_detail_of('DROP OWNED BY mallory'), 'ok', 'a superuser''s DROP OWNED BY mallory succeeds');
SELECT is((SELECT count(*) FROM revetl.syncs WHERE owner = 'mallory'::regrole), 0::bigint,
          'mallory owns no sync afterwards');

SELECT * FROM finish();
ROLLBACK;

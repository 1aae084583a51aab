"""Hostile roles, across sessions and through the workers (issue 19).

A second role, mallory, attacks a first, victim; each test asserts that the
attack fails and that the victim's data and syncs are unchanged. In-session
probes are in test/pgtap/07_hostile_roles.sql.

One cluster for the module (revetl.allowed_hosts = '127.0.0.1', the mocks
listen there); the tests about revetl.max_syncs_per_role and about the
allowlist's default have clusters of their own.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, wait_for  # noqa: E402
from hostile import (HIJACK_PATH, Session, is_superuser, release_sql, run_backends,  # noqa: E402
                     setup_roles, slow_function_sql, sqlstate_of, unescalate, wait_for_sleeping_run)

TOKEN = "vtok-7Qx9-SECRET-a1b2c3d4e5"
SSN = "111-11-1111"
LOCK_CLASS = 1919252084  # revetl's advisory lock class ('rvet')

cluster = None
mock = None


def setUpModule():
    global cluster, mock
    cluster = Cluster(name="revetl-security", extra_conf="revetl.allowed_hosts = '127.0.0.1'").start()
    mock = MockWebhook()
    cluster.sql("CREATE EXTENSION revetl")
    cluster.wait_for_worker()
    setup_roles(cluster, f"{mock.url}/victim", f"{mock.url}/mallory", TOKEN)
    cluster.sql(f"""
        CREATE TABLE victim.people (id int PRIMARY KEY, email text, ssn text);
        INSERT INTO victim.people VALUES (1, 'a@example.com', '{SSN}'), (2, 'b@example.com', '222-22-2222'),
                                         (3, 'c@example.com', '333-33-3333');
    """, user="victim")
    cluster.sql("""
        CREATE TABLE mallory.t (id int PRIMARY KEY, v text);
        INSERT INTO mallory.t SELECT g, 'v' || g FROM generate_series(1, 3) g;
    """, user="mallory")


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


def psql(sql, user="postgres", db="postgres", c=None):
    """Runs sql with verbose errors (SQLSTATE shown); returns (stdout, stderr, rc)."""
    return (c or cluster).psql("\\set VERBOSITY verbose\n" + sql, user=user, db=db, check=False)


class SecurityTest(unittest.TestCase):
    counter = 0

    def setUp(self):
        mock.reset()
        SecurityTest.counter += 1
        self.n = SecurityTest.counter
        self.escalations = []
        self.sessions = []

    def tearDown(self):
        for s in self.sessions:
            s.close()
        unescalate(cluster)

    def session(self, user):
        s = Session(cluster, user=user)
        self.sessions.append(s)
        return s

    def step(self, label):
        """Records whether mallory became superuser by the step just done, and undoes it."""
        if is_superuser(cluster):
            self.escalations.append(label)
            unescalate(cluster)

    def assert_no_escalation(self):
        self.assertEqual(self.escalations, [], f"mallory became superuser after these steps: {self.escalations}")

    def ok(self, sql, user, what):
        out, err, rc = psql(sql, user=user)
        self.assertEqual(rc, 0, f"{what}: {err}")
        return out.strip()

    def run_and_wait(self, sync, user, timeout=60):
        run_id = int(self.ok(f"SELECT revetl.run_sync('{sync}')", user, f"run_sync {sync}"))
        return run_id, cluster.wait_for_run(run_id, timeout=timeout)

    def sync_id(self, sync):
        return int(cluster.sql(f"SELECT id FROM revetl.syncs WHERE name = '{sync}'"))

    # 1. search_path hijack -> superuser ---------------------------------------------------
    def test_1_run_sync_wait_under_hijacking_search_path(self):
        s = f"m_wait_{self.n}"
        self.ok(f"SELECT revetl.execute('CREATE SYNC {s} FROM mallory.t TO mallory_hooks KEY (id)')",
                "mallory", "create")
        self.step("create (default search_path)")
        out, err, rc = psql(f"SET search_path = {HIJACK_PATH}; SELECT revetl.run_sync('{s}', wait => true)",
                            user="mallory")
        self.step("run_sync(wait => true)")
        self.assertEqual(rc, 0, err)
        self.assertEqual(cluster.sql(f"SELECT status FROM revetl.sync_runs WHERE sync_name = '{s}'"), "succeeded")
        self.assert_no_escalation()

    def test_1_creating_and_dropping_under_hijacking_search_path(self):
        s = f"m_cd_{self.n}"
        cluster.sql(f"CREATE TABLE mallory.tr_{self.n} (id int PRIMARY KEY, v text); "
                    f"INSERT INTO mallory.tr_{self.n} VALUES (1, 'x')", user="mallory")
        prefix = f"SET search_path = {HIJACK_PATH}; "
        self.ok(prefix + f"SELECT revetl.execute('CREATE SYNC {s} FROM mallory.tr_{self.n} TO mallory_hooks "
                         f"KEY (id) SCHEDULE ON CHANGE')", "mallory", "create tracked")
        self.step("CREATE SYNC ... SCHEDULE ON CHANGE")
        self.ok(prefix + f"SELECT revetl.execute('ALTER SYNC {s} SET SCHEDULE MANUAL; "
                         f"ALTER SYNC {s} SET (track_changes = true)')", "mallory", "alter")
        self.step("ALTER SYNC ... SET (track_changes = true)")
        self.ok(prefix + f"SELECT revetl.execute('DROP SYNC {s}')", "mallory", "drop tracked")
        self.step("DROP SYNC of a tracked sync")
        self.assert_no_escalation()

    def test_1_ddl_watch_on_rename_and_rebuild_of_a_tracked_table(self):
        s = f"m_ddl_{self.n}"
        t = f"mallory.ddl_{self.n}"
        cluster.sql(f"CREATE TABLE {t} (id int PRIMARY KEY, v text); INSERT INTO {t} VALUES (1, 'x')",
                    user="mallory")
        self.ok(f"SELECT revetl.execute('CREATE SYNC {s} FROM {t} TO mallory_hooks KEY (id) "
                f"WITH (track_changes = true)')", "mallory", "create tracked")
        self.step("create (default search_path)")
        prefix = f"SET search_path = {HIJACK_PATH}; "
        self.ok(prefix + f"ALTER TABLE {t} RENAME TO ddl_{self.n}_old", "mallory", "rename")
        self.step("ALTER TABLE ... RENAME of the tracked table")
        # A dbt-style rebuild: the new table takes the old name.
        self.ok(prefix + f"CREATE TABLE {t} AS SELECT * FROM {t}_old; ALTER TABLE {t} ADD PRIMARY KEY (id); "
                         f"DROP TABLE {t}_old", "mallory", "rebuild")
        self.step("CREATE TABLE AS / ALTER TABLE of a rebuilt model")
        self.ok(prefix + f"ALTER TABLE {t} ADD COLUMN w int; INSERT INTO {t} VALUES (2, 'y', 1)", "mallory",
                "alter and write")
        self.step("ALTER TABLE ADD COLUMN and a captured write")
        self.ok(prefix + f"SELECT revetl.drop_sync('{s}')", "mallory", "drop")
        self.step("drop_sync of a tracked sync")
        self.assert_no_escalation()

    def test_1_worker_does_not_use_the_stored_search_path_for_its_own_statements(self):
        # The sync is created (and its search_path stored) under mallory's path;
        # the worker's bookkeeping must still call pg_catalog's functions.
        s = f"m_stored_{self.n}"
        self.ok(f"SET search_path = {HIJACK_PATH}; SELECT revetl.execute('CREATE SYNC {s} FROM mallory.t "
                f"TO mallory_hooks KEY (id) MAP (v AS v)')", "mallory", "create")
        self.step("CREATE SYNC under the hijacking path")
        self.assertEqual(cluster.sql(f"SELECT search_path FROM revetl.syncs WHERE name = '{s}'"), HIJACK_PATH,
                         "the creator's search_path is stored with the sync")
        run_id, status = self.run_and_wait(s, "mallory")
        self.step("a run by the worker")
        self.assertEqual(status, "succeeded",
                         cluster.sql(f"SELECT error FROM revetl.sync_runs WHERE id = {run_id}"))
        cluster.sql("UPDATE mallory.t SET v = v || '!' WHERE id = 1", user="mallory")
        run_id, status = self.run_and_wait(s, "mallory")
        self.step("a second run (changes)")
        self.assertEqual(status, "succeeded")
        self.assert_no_escalation()

    def test_1_map_that_sets_search_path_does_not_reach_the_workers_statements(self):
        s = f"m_setcfg_{self.n}"
        q = f"m_setcfg_q_{self.n}"
        self.ok(f"""SELECT revetl.execute($$CREATE SYNC {s} FROM mallory.t TO mallory_hooks KEY (id)
                      MAP (v AS v, pg_catalog.set_config('search_path', '{HIJACK_PATH}', false) AS sp)$$)""",
                "mallory", "create MAP sync")
        self.ok(f"""SELECT revetl.execute($$CREATE SYNC {q}
                      FROM (SELECT id, v FROM mallory.t
                             WHERE pg_catalog.set_config('search_path', '{HIJACK_PATH}', false) IS NOT NULL)
                      TO mallory_hooks KEY (id)$$)""", "mallory", "create query sync")
        self.step("create")
        for name in (s, q):
            run_id, status = self.run_and_wait(name, "mallory")
            self.step(f"run of {name}")
            self.assertEqual(status, "succeeded",
                             cluster.sql(f"SELECT error FROM revetl.sync_runs WHERE id = {run_id}"))
            cluster.sql("UPDATE mallory.t SET v = v || '+'", user="mallory")
            run_id, status = self.run_and_wait(name, "mallory")
            self.step(f"second run of {name}")
        # The same evaluated by evil(), which also tries to escalate itself.
        e = f"m_evil_{self.n}"
        self.ok(f"SELECT revetl.execute('CREATE SYNC {e} FROM mallory.t TO mallory_hooks KEY (id) "
                f"MAP (v AS v, mallory.evil() AS e)')", "mallory", "create evil")
        self.run_and_wait(e, "mallory")
        self.step("run of a MAP calling mallory.evil()")
        # A superuser asking for the run changes nothing: the worker runs it as the owner.
        cluster.sql("UPDATE mallory.t SET v = v || '*'", user="mallory")
        self.run_and_wait(e, "postgres")
        self.step("a superuser's run of mallory's sync")
        self.assert_no_escalation()

    # 2. A superuser looking at mallory's sync (across sessions) ------------------------------
    def test_2_superuser_commands_on_mallorys_sync_run_no_owner_code_as_superuser(self):
        s = f"m_look_{self.n}"
        self.ok(f"SELECT revetl.execute('CREATE SYNC {s} FROM (SELECT id, v FROM mallory.t WHERE mallory.evil() = 1) "
                f"TO mallory_hooks KEY (id) MAP (v AS v, mallory.evil() AS e)')", "mallory", "create")
        self.step("create")
        probes = {
            "preview_sync": f"SELECT count(*) FROM revetl.preview_sync('{s}')",
            "ALTER SYNC SET MODE": f"SELECT revetl.execute('ALTER SYNC {s} SET MODE MIRROR')",
            "alter_sync(key)": f"SELECT revetl.alter_sync('{s}', key => ARRAY['id', 'v'])",
            "CREATE OR REPLACE SYNC": f"SELECT revetl.execute(regexp_replace(revetl.sync_ddl('{s}'), "
                                      f"'^CREATE SYNC', 'CREATE OR REPLACE SYNC'))",
        }
        for label, sql in probes.items():
            out, err, rc = psql(f"{sql};\nSELECT 'path=' || current_setting('search_path');", user="postgres")
            self.step(f"superuser: {label}")
            self.assertEqual(rc, 0, f"{label}: {err}")
            self.assertIn('path="$user", public', out, f"{label}: the superuser's search_path changed")
        out, err, rc = psql(f"SELECT count(*) FROM revetl.preview_sync('{s}')", user="mallory")
        self.assertEqual(rc, 0, err)
        self.assertGreater(int(out.strip()), 0, "mallory's own preview returns rows")
        self.assert_no_escalation()

    # 3. Destination content is the owner's alone ------------------------------------------------
    def test_3_destination_answers_are_visible_to_the_owner_only_and_redacted(self):
        s = f"v_echo_{self.n}"
        self.ok(f"SELECT revetl.execute('CREATE SYNC {s} FROM victim.people TO victim_hooks KEY (id) "
                f"MAP (email AS email, ssn AS ssn) WITH (max_attempts = 1, batch_size = 10)')", "victim", "create")
        echo = f'echo: Authorization: Bearer {TOKEN} record {{"ssn": "{SSN}"}}'
        # A failed run whose error quotes the answer.
        mock.configure(faults=[{"status": 500, "body": echo}])
        failed_id, status = self.run_and_wait(s, "victim")
        self.assertEqual(status, "failed")
        self.assertTrue(mock.requests(), "the destination was reached")
        # A JSON 400 answer echoing the header and the record.
        mock.configure(faults=[{"status": 400, "body": {"error": "bad request",
                                                        "headers": {"authorization": f"Bearer {TOKEN}"},
                                                        "record": {"ssn": SSN}}}] * 5)
        self.run_and_wait(s, "victim")
        # Refused rows whose reason echoes both (no fault left in the queue).
        mock.reset()
        mock.configure(reject=[{"field": "ssn", "equals": SSN, "code": "ECHO",
                                           "reason": f"Bearer {TOKEN} may not write ssn {SSN}"}])
        partial_id, status = self.run_and_wait(s, "victim")
        self.assertEqual(status, "partial")
        mock.configure(reject=[])
        self.assertEqual(cluster.sql(f"SELECT count(*) FROM revetl.rejected_rows WHERE run_id = {partial_id}"), "1",
                         "the refused row was recorded")

        cols = "status, rows_added, rows_changed, rows_delivered, rows_rejected, rows_invalid, requests"
        truth = cluster.rows(f"SELECT {cols} FROM revetl.sync_runs WHERE sync_name = '{s}' ORDER BY id")
        truth_status = cluster.rows(f"SELECT health, last_status FROM revetl.sync_status WHERE name = '{s}'")
        self.assertEqual(truth_status, [["degraded", "partial"]])
        for role in ("mallory", "monitor"):
            with self.subTest(role=role):
                runs = cluster.rows(f"SELECT {cols} FROM revetl.sync_runs WHERE sync_name = '{s}' ORDER BY id",
                                    user=role)
                self.assertEqual(runs, truth, f"{role} sees the runs' status and counts")
                errors = cluster.rows(f"SELECT coalesce(error, '<null>') FROM revetl.sync_runs "
                                      f"WHERE sync_name = '{s}' ORDER BY id", user=role)
                self.assertEqual(errors, [["<null>"]] * len(truth), f"{role} reads no error text")
                st = cluster.rows(f"SELECT health, last_status, coalesce(last_error, '<null>') "
                                  f"FROM revetl.sync_status WHERE name = '{s}'", user=role)
                self.assertEqual(st, [truth_status[0] + ["<null>"]], f"{role}: health and status, no last_error")
                self.assertEqual(cluster.sql(f"SELECT count(*) FROM revetl.rejected_rows WHERE sync_name = '{s}'",
                                             user=role), "0", f"{role} sees none of the victim's rejected rows")

        # The owner reads its errors, with the secret redacted.
        error = cluster.sql(f"SELECT error FROM revetl.sync_runs WHERE id = {failed_id}", user="victim")
        self.assertTrue(error, "the victim reads its run's error")
        self.assertNotIn(TOKEN, error)
        self.assertIn("[redacted]", error)
        reason = cluster.sql(f"SELECT reason FROM revetl.rejected_rows WHERE run_id = {partial_id}", user="victim")
        self.assertNotIn(TOKEN, reason)

        # The token is stored nowhere, and neither it nor the row data is logged.
        for table in ("revetl.sync_runs", "revetl.sync_status", "revetl.rejected_rows"):
            self.assertEqual(cluster.sql(f"SELECT count(*) FROM {table} x WHERE x::text LIKE '%{TOKEN}%'"), "0",
                             f"the token is in {table}")
        log = cluster.log_text()
        self.assertNotIn(TOKEN, log, "the token is in the server log")
        self.assertNotIn(SSN, log, "a row's value from the destination's answer is in the server log")

        # run_sync(wait => true): what the victim's session is told is redacted too.
        mock.configure(faults=[{"status": 500, "body": echo}])
        out, err, rc = psql(f"SELECT revetl.run_sync('{s}', wait => true)", user="victim")
        self.assertNotEqual(rc, 0)
        self.assertNotIn(TOKEN, err)
        self.assertNotIn(TOKEN, cluster.log_text(), "the token is in the server log")

    # 4. Capture functions -----------------------------------------------------------------------
    def test_4_mallory_cannot_write_into_the_victims_capture_queue(self):
        t = f"victim.tracked_{self.n}"
        v = f"v_capture_{self.n}"
        cluster.sql(f"CREATE TABLE {t} (id int PRIMARY KEY); INSERT INTO {t} VALUES (1), (2)", user="victim")
        self.ok(f"SELECT revetl.execute('CREATE SYNC {v} FROM {t} TO victim_hooks KEY (id) SCHEDULE ON CHANGE')",
                "victim", "create")
        out, err, rc = psql(f"SELECT revetl.run_sync('{v}', wait => true)", user="victim")
        self.assertEqual(rc, 0, err)
        sid = self.sync_id(v)
        runs_before = cluster.sql(f"SELECT count(*) FROM revetl.sync_runs WHERE sync_id = {sid}")
        captured_before = cluster.sql(f"SELECT count(*) FROM revetl.captured_changes WHERE sync_id = {sid}")
        cluster.sql(f"CREATE TABLE mallory.junk_{self.n} (id int)", user="mallory")
        out, err, rc = psql(f"CREATE TRIGGER steal AFTER INSERT ON mallory.junk_{self.n} "
                            f"REFERENCING NEW TABLE AS revetl_new FOR EACH STATEMENT "
                            f"EXECUTE FUNCTION revetl.capture_{sid}()", user="mallory")
        self.assertNotEqual(rc, 0, "mallory attached the victim's capture function to its own table")
        self.assertEqual(sqlstate_of(err), "42501", err)
        out, err, rc = psql(f"SELECT revetl.capture_{sid}()", user="mallory")
        self.assertEqual(sqlstate_of(err), "42501", f"calling the capture function: {err}")
        # Whatever got attached, mallory's writes must not reach the victim's queue.
        psql(f"INSERT INTO mallory.junk_{self.n} SELECT g FROM generate_series(1000, 1999) g", user="mallory")
        self.assertEqual(cluster.sql(f"SELECT count(*) FROM revetl.captured_changes WHERE sync_id = {sid}"),
                         captured_before, "junk keys in the victim's captured changes")
        # The victim's own writes still are captured and run.
        before = int(cluster.sql("SELECT coalesce(max(id), 0) FROM revetl.sync_runs"))
        cluster.sql(f"INSERT INTO {t} VALUES (3)", user="victim")
        run = wait_for(lambda: cluster.sql(f"SELECT status FROM revetl.sync_runs WHERE sync_id = {sid} AND id > {before} "
                                           f"AND status NOT IN ('queued', 'running') ORDER BY id LIMIT 1"),
                       timeout=60, what="the victim's ON CHANGE run")
        self.assertEqual(run, "succeeded")
        self.assertGreater(int(cluster.sql(f"SELECT count(*) FROM revetl.sync_runs WHERE sync_id = {sid}")),
                           int(runs_before))

    # 5. Cross-owner dependencies and locks -----------------------------------------------------
    def test_5_mallorys_advisory_locks_do_not_hold_the_victims_run(self):
        s = f"v_lock_{self.n}"
        self.ok(f"SELECT revetl.execute('CREATE SYNC {s} FROM victim.people TO victim_hooks KEY (id)')",
                "victim", "create")
        sid = self.sync_id(s)
        holder = self.session("mallory")
        out = holder.run(f"SELECT pg_advisory_lock({LOCK_CLASS}, {sid}); SELECT pg_advisory_lock({sid}, {LOCK_CLASS}); "
                         f"SELECT pg_advisory_lock(({LOCK_CLASS}::bigint << 32) | {sid}); "
                         f"SELECT pg_advisory_lock({sid}::bigint); SELECT 'held'")
        self.assertIn("held", out, out)
        start = time.monotonic()
        out, err, rc = psql(f"SET statement_timeout = '30s'; SELECT revetl.run_sync('{s}', wait => true)",
                            user="victim")
        elapsed = time.monotonic() - start
        holder.close()
        self.assertEqual(rc, 0, f"the victim's run did not finish while mallory held lock keys: {err}")
        self.assertLess(elapsed, 20)
        self.assertEqual(cluster.sql(f"SELECT status FROM revetl.sync_runs WHERE sync_name = '{s}' "
                                     f"ORDER BY id DESC LIMIT 1"), "succeeded")

    def test_5_victim_drops_its_sync_though_others_run_after_it(self):
        v = f"v_up_{self.n}"
        m = f"m_down_{self.n}"
        v2 = f"v_down_{self.n}"
        self.ok(f"SELECT revetl.execute('CREATE SYNC {v} FROM victim.people TO victim_hooks KEY (id)')",
                "victim", "create")
        # Refused without membership in the victim's role.
        out, err, rc = psql(f"SELECT revetl.execute('CREATE SYNC {m} FROM mallory.t TO mallory_hooks KEY (id) "
                            f"SCHEDULE AFTER {v}')", user="mallory")
        self.assertNotEqual(rc, 0, "mallory scheduled a sync AFTER the victim's")
        self.assertEqual(sqlstate_of(err), "42501", err)
        # Set up legitimately: as a member of the victim's role, and the victim's own.
        cluster.sql("GRANT victim TO mallory")
        try:
            self.ok(f"SELECT revetl.execute('CREATE SYNC {m} FROM mallory.t TO mallory_hooks KEY (id) "
                    f"SCHEDULE AFTER {v}')", "mallory", "create dependent as a member")
        finally:
            cluster.sql("REVOKE victim FROM mallory")
        self.ok(f"SELECT revetl.execute('CREATE SYNC {v2} FROM victim.people TO victim_hooks KEY (id) "
                f"SCHEDULE AFTER {v}')", "victim", "create own dependent")
        out, err, rc = psql(f"SELECT revetl.execute('DROP SYNC {v}')", user="victim")
        self.assertEqual(rc, 0, f"the victim could not drop its own sync: {err}")
        self.assertIn("NOTICE", err)
        self.assertIn(m, err, "a NOTICE names the dependent sync")
        self.assertEqual(cluster.rows(f"SELECT name, schedule_kind FROM revetl.syncs WHERE name IN ('{m}', '{v2}') "
                                      f"ORDER BY name"), [[m, "manual"], [v2, "manual"]])
        self.assertEqual(cluster.sql(f"SELECT count(*) FROM revetl.syncs WHERE name = '{v}'"), "0")

    # 6. Resources ---------------------------------------------------------------------------
    def test_6a_plan_timeout_bounds_planning(self):
        tag = f"a{self.n}"
        s = f"m_slow_{self.n}"
        cluster.sql(slow_function_sql(tag), user="mallory")
        try:
            self.ok(f"SELECT revetl.execute('CREATE SYNC {s} FROM mallory.t TO mallory_hooks KEY (id) "
                    f"MAP (v AS v, mallory.slow_{tag}() AS s) WITH (plan_timeout = ''2s'')')", "mallory",
                    "create with plan_timeout")
            start = time.monotonic()
            out, err, rc = psql(f"SET statement_timeout = '60s'; SELECT revetl.run_sync('{s}', wait => true)",
                                user="mallory")
            elapsed = time.monotonic() - start
            self.assertNotEqual(rc, 0)
            self.assertLess(elapsed, 30, "planning was not bounded by plan_timeout")
            error = cluster.sql(f"SELECT error FROM revetl.sync_runs WHERE sync_name = '{s}' ORDER BY id DESC LIMIT 1",
                                user="mallory")
            self.assertIn("plan_timeout", error)
            self.assertEqual(cluster.sql(f"SELECT status FROM revetl.sync_runs WHERE sync_name = '{s}' "
                                         f"ORDER BY id DESC LIMIT 1"), "failed")
        finally:
            cluster.sql(release_sql(tag), user="mallory")
            wait_for(lambda: not run_backends(cluster), timeout=60, what="runs to end")

    def test_6b_drop_and_pause_cancel_a_running_plan(self):
        tag = f"b{self.n}"
        cluster.sql(slow_function_sql(tag), user="mallory")
        try:
            for verb in ("PAUSE", "DROP"):
                with self.subTest(verb=verb):
                    s = f"m_{verb.lower()}_{self.n}"
                    self.ok(f"SELECT revetl.execute('CREATE SYNC {s} FROM mallory.t TO mallory_hooks KEY (id) "
                            f"MAP (v AS v, mallory.slow_{tag}() AS s)')", "mallory", "create")
                    run_id = int(self.ok(f"SELECT revetl.run_sync('{s}')", "mallory", "run"))
                    wait_for_sleeping_run(cluster)
                    stmt = f"ALTER SYNC {s} PAUSE" if verb == "PAUSE" else f"DROP SYNC {s}"
                    start = time.monotonic()
                    out, err, rc = psql(f"SET statement_timeout = '20s'; SELECT revetl.execute('{stmt}')",
                                        user="mallory")
                    elapsed = time.monotonic() - start
                    self.assertEqual(rc, 0, f"{stmt}: {err}")
                    self.assertLess(elapsed, 10, f"{stmt} waited for the model")
                    def ended():
                        st = cluster.sql(f"SELECT status FROM revetl.sync_runs WHERE id = {run_id}")
                        return st if st not in ("queued", "running") else None
                    try:
                        status = wait_for(ended, timeout=10, what=f"the run to end after {stmt}")
                    except TimeoutError:
                        self.fail(f"the run was still running 10 s after {stmt}")
                    self.assertEqual(status, "cancelled")
        finally:
            cluster.sql(release_sql(tag), user="mallory")
            wait_for(lambda: not run_backends(cluster), timeout=60, what="runs to end")

    def test_6c_a_hanging_alert_destination_does_not_delay_other_syncs(self):
        alerts = MockWebhook()
        try:
            alerts.configure(delay_ms=30000)
            cluster.sql(f"""
                CREATE SERVER alert_hooks_{self.n} FOREIGN DATA WRAPPER revetl
                  OPTIONS (type 'webhook', url '{alerts.url}/alert');
                CREATE SERVER dead_hooks_{self.n} FOREIGN DATA WRAPPER revetl
                  OPTIONS (type 'webhook', url 'http://127.0.0.1:9/dead', connect_timeout '1s');
                GRANT USAGE ON FOREIGN SERVER alert_hooks_{self.n}, dead_hooks_{self.n} TO mallory;
            """)
            failing = [f"m_fail_{self.n}_{i}" for i in range(3)]
            for f in failing:
                self.ok(f"SELECT revetl.execute('CREATE SYNC {f} FROM mallory.t TO dead_hooks_{self.n} KEY (id) "
                        f"WITH (max_attempts = 1, alert_to = ''alert_hooks_{self.n}'')')", "mallory", "create")
            v = f"v_fast_{self.n}"
            self.ok(f"SELECT revetl.execute('CREATE SYNC {v} FROM victim.people TO victim_hooks KEY (id)')",
                    "victim", "create")
            ids = [int(self.ok(f"SELECT revetl.run_sync('{f}')", "mallory", "run")) for f in failing]
            self.assertEqual(cluster.wait_for_run(ids[0]), "failed")
            start = time.monotonic()
            out, err, rc = psql(f"SELECT revetl.run_sync('{v}', wait => true)", user="victim")
            elapsed = time.monotonic() - start
            self.assertEqual(rc, 0, err)
            self.assertLess(elapsed, 5, "an unrelated run waited for alerts to a hanging destination")
            for i in ids:
                cluster.wait_for_run(i)
        finally:
            alerts.stop()

    def test_6f_refused_create_database_template_leaves_the_worker_alone(self):
        cluster.sql("CREATE ROLE mallory_cdb LOGIN CREATEDB")
        try:
            pid = cluster.wait_for_worker()
            for attempt in range(3):
                for role in ("mallory_cdb", "mallory"):
                    out, err, rc = psql(f"CREATE DATABASE hostile_copy_{attempt} TEMPLATE postgres", user=role)
                    self.assertNotEqual(rc, 0, "the copy was permitted")
                    self.assertEqual(sqlstate_of(err), "42501", err)
                    self.assertEqual(cluster.worker_pids(), [pid],
                                     f"attempt {attempt + 1} by {role} stopped the template's revetl worker")
        finally:
            cluster.sql("DROP ROLE mallory_cdb")
            cluster.wait_for_worker(timeout=60)

    def test_6g_scheduler_survives_drop_while_the_run_is_terminated(self):
        # Each round: three slow runs in progress; their syncs are dropped while
        # a superuser terminates the runs, in one order or the other.
        tag = f"g{self.n}"
        cluster.sql(slow_function_sql(tag), user="mallory")
        pid = cluster.wait_for_worker()
        try:
            for i in range(6):
                syncs = [f"m_term_{self.n}_{i}_{j}" for j in range(3)]
                for s in syncs:
                    self.ok(f"SELECT revetl.execute('CREATE SYNC {s} FROM mallory.t TO mallory_hooks KEY (id) "
                            f"MAP (v AS v, mallory.slow_{tag}() AS s)')", "mallory", "create")
                    self.ok(f"SELECT revetl.run_sync('{s}')", "mallory", "run")
                wait_for(lambda: cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'revetl run' "
                                             "AND wait_event = 'PgSleep'") == "3",
                         timeout=30, what="three runs sleeping in the model")
                drop = f"SELECT revetl.execute('DROP SYNC {', '.join(syncs)}')"
                terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'revetl run'"
                if i % 2 == 0:
                    # DROP first (it may wait for the runs), then terminate.
                    dropper = self.session("mallory")
                    dropper.send(drop)
                    wait_for(lambda: dropper.done() or cluster.sql(
                        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%revetl.execute(''DROP SYNC%' "
                        "AND wait_event_type = 'Lock' AND backend_type = 'client backend'") != "0",
                        timeout=10, what="the DROP to wait or end")
                    cluster.sql(terminate)
                    if dropper.pending:
                        dropper.wait(timeout=30)
                else:
                    # Terminate, and drop at once, as a superuser.
                    self.ok(f"{terminate}; {drop}", "postgres", "terminate and drop")
                wait_for(lambda: not run_backends(cluster), timeout=30, what="the runs to end")
                self.assertEqual(cluster.sql(f"SELECT count(*) FROM revetl.syncs WHERE name LIKE 'm_term_{self.n}_{i}_%'"),
                                 "0")
                # Later syncs still run, under the same scheduler.
                v = f"v_after_term_{self.n}_{i}"
                self.ok(f"SELECT revetl.execute('CREATE SYNC {v} FROM victim.people TO victim_hooks KEY (id)')",
                        "victim", "create")
                out, err, rc = psql(f"SET statement_timeout = '40s'; SELECT revetl.run_sync('{v}', wait => true)",
                                    user="victim")
                self.assertEqual(rc, 0, f"a later sync did not run after round {i + 1}: {err}")
                self.assertEqual(cluster.worker_pids(), [pid], f"the scheduler was restarted in round {i + 1}")
            self.assertNotIn("sync_state_sync_id_fkey", cluster.log_text())
        finally:
            cluster.sql(release_sql(tag), user="mallory")
            wait_for(lambda: not run_backends(cluster), timeout=60, what="runs to end")
            cluster.wait_for_worker(timeout=60)

    # 8. Non-superuser tracked syncs work ---------------------------------------------------------
    def test_8_non_superuser_tracked_syncs_deliver_incrementally(self):
        t = f"victim.orders_{self.n}"
        cluster.sql(f"CREATE TABLE {t} (id int PRIMARY KEY, total int); "
                    f"INSERT INTO {t} SELECT g, g FROM generate_series(1, 5) g", user="victim")
        oc = f"v_onchange_{self.n}"
        tc = f"v_tracked_{self.n}"
        self.ok(f"SELECT revetl.execute('CREATE SYNC {oc} FROM {t} TO victim_hooks KEY (id) SCHEDULE ON CHANGE; "
                f"CREATE SYNC {tc} FROM {t} TO victim_hooks KEY (id) WITH (track_changes = true)')", "victim",
                "create tracked syncs")
        # mallory has captured keys of its own waiting.
        cluster.sql(f"CREATE TABLE mallory.tracked_{self.n} (id int PRIMARY KEY)", user="mallory")
        self.ok(f"SELECT revetl.execute('CREATE SYNC m_tr_{self.n} FROM mallory.tracked_{self.n} TO mallory_hooks "
                f"KEY (id) WITH (track_changes = true)')", "mallory", "create mallory's tracked sync")
        cluster.sql(f"INSERT INTO mallory.tracked_{self.n} VALUES (1), (2)", user="mallory")

        for sync in (oc, tc):
            out, err, rc = psql(f"SELECT revetl.run_sync('{sync}', wait => true)", user="victim")
            self.assertEqual(rc, 0, f"first (full) run of {sync}: {err}")

        def last_run(sync, after):
            r = cluster.rows(f"SELECT id, status, coalesce(plan_kind, ''), coalesce(error, '') FROM revetl.sync_runs "
                             f"WHERE sync_name = '{sync}' AND id > {after} AND status NOT IN ('queued', 'running') "
                             f"ORDER BY id DESC LIMIT 1", user="victim")
            return r[0] if r else None

        for round_ in range(3):
            before = int(cluster.sql("SELECT coalesce(max(id), 0) FROM revetl.sync_runs"))
            cluster.sql(f"UPDATE {t} SET total = total + 1 WHERE id = {round_ + 1}; "
                        f"INSERT INTO {t} VALUES ({100 + round_}, 0)", user="victim")
            r = wait_for(lambda: last_run(oc, before), timeout=60, what=f"ON CHANGE run {round_ + 1}")
            self.assertEqual(r[1:3], ["succeeded", "incremental"],
                             f"ON CHANGE run {round_ + 1}: " + cluster.sql(f"SELECT error FROM revetl.sync_runs "
                                                                           f"WHERE id = {r[0]}"))
            out, err, rc = psql(f"SELECT revetl.run_sync('{tc}', wait => true)", user="victim")
            r = last_run(tc, before)
            self.assertEqual(r[1:3], ["succeeded", "incremental"], f"track_changes run {round_ + 1}: {err}")

        # The owner still cannot read other owners' captured keys.
        out, err, rc = psql("SELECT count(*) FROM revetl.captured_changes c WHERE NOT EXISTS "
                            "(SELECT 1 FROM revetl.syncs s WHERE s.id = c.sync_id AND s.owner = 'victim'::regrole)",
                            user="victim")
        if rc == 0:
            self.assertEqual(out.strip(), "0", "the victim reads mallory's captured keys")
        else:
            self.assertEqual(sqlstate_of(err), "42501", err)
        self.assertNotEqual(cluster.sql(f"SELECT count(*) FROM revetl.captured_changes "
                                        f"WHERE sync_id = {self.sync_id(f'm_tr_{self.n}')}"), "0",
                            "mallory's keys are there to be hidden")


class SyncsPerRoleTest(unittest.TestCase):
    """revetl.max_syncs_per_role, set in the cluster's configuration."""

    def test_6e_max_syncs_per_role_limits_non_superusers(self):
        c = Cluster(name="revetl-security-limit",
                    extra_conf="revetl.allowed_hosts = '127.0.0.1'\nrevetl.max_syncs_per_role = 3").start()
        try:
            c.sql("CREATE EXTENSION revetl")
            c.sql("""CREATE ROLE mallory LOGIN; CREATE SCHEMA mallory AUTHORIZATION mallory;
                     CREATE SERVER h FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/x');
                     GRANT USAGE ON FOREIGN SERVER h TO mallory;""")
            c.sql("CREATE TABLE mallory.t (id int PRIMARY KEY)", user="mallory")
            out, err, rc = psql("SHOW revetl.max_syncs_per_role", c=c)
            self.assertEqual((rc, out.strip()), (0, "3"), f"the setting revetl.max_syncs_per_role: {err}")
            for i in range(3):
                _, err, rc = psql(f"SELECT revetl.execute('CREATE SYNC m{i} FROM mallory.t TO h KEY (id)')",
                                  user="mallory", c=c)
                self.assertEqual(rc, 0, err)
            _, err, rc = psql("SELECT revetl.execute('CREATE SYNC m3 FROM mallory.t TO h KEY (id)')",
                              user="mallory", c=c)
            self.assertNotEqual(rc, 0, "mallory's 4th sync was accepted")
            self.assertEqual(sqlstate_of(err), "53400", err)
            _, err, rc = psql("SELECT revetl.create_sync('m3', 'mallory.t', 'h', ARRAY['id'])", user="mallory", c=c)
            self.assertEqual(sqlstate_of(err), "53400", f"the function form: {err}")
            self.assertEqual(c.sql("SELECT count(*) FROM revetl.syncs WHERE owner = 'mallory'::regrole"), "3")
            # Superusers are exempt; a dropped sync frees its place.
            for i in range(4):
                _, err, rc = psql(f"SELECT revetl.execute('CREATE SYNC su{i} FROM mallory.t TO h KEY (id)')", c=c)
                self.assertEqual(rc, 0, err)
            _, err, rc = psql("SELECT revetl.execute('DROP SYNC m0; CREATE SYNC m3 FROM mallory.t TO h KEY (id)')",
                              user="mallory", c=c)
            self.assertEqual(rc, 0, err)
        finally:
            c.destroy()


class AllowlistDefaultTest(unittest.TestCase):
    """revetl.allowed_hosts at its default ('*'): internal addresses are refused,
    judged on the address connected to."""

    def setUp(self):
        # The test clusters open 127.0.0.1 for the mocks: this one goes back
        # to the default.
        self.c = Cluster(name="revetl-security-net", extra_conf="revetl.allowed_hosts = '*'\n").start()
        self.mock = MockWebhook()
        self.c.sql("CREATE EXTENSION revetl")
        self.c.wait_for_worker()

    def tearDown(self):
        self.mock.stop()
        self.c.destroy()

    def test_9_loopback_private_and_metadata_hosts_are_refused_by_default(self):
        c = self.c
        self.assertEqual(c.sql("SELECT boot_val FROM pg_settings WHERE name = 'revetl.allowed_hosts'"), "*")
        self.assertEqual(c.sql("SHOW revetl.allowed_hosts"), "*")
        port = self.mock.port
        refused = [f"http://127.0.0.1:{port}/x", "http://169.254.169.254/latest", "http://10.1.2.3/",
                   f"http://[::1]:{port}/", "http://192.168.1.1/", "http://172.16.0.1/", "http://[fd00::1]/",
                   "http://0.0.0.0/", f"http://127.1.2.3:{port}/"]
        for i, url in enumerate(refused):
            with self.subTest(url=url):
                _, err, rc = psql(f"CREATE SERVER r{i} FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url '{url}')",
                                  c=c)
                self.assertNotEqual(rc, 0, f"{url} was accepted")
                self.assertEqual(sqlstate_of(err), "42501", err)
                self.assertIn("revetl.allowed_hosts", err)
        # ALTER SERVER too.
        c.sql("CREATE SERVER outside FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'https://hooks.example.com/x')")
        _, err, rc = psql("ALTER SERVER outside OPTIONS (SET url 'http://169.254.169.254/latest')", c=c)
        self.assertEqual(sqlstate_of(err), "42501", err)

        # A name that resolves to loopback is accepted as written, refused on connect.
        c.sql(f"""CREATE SERVER named FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://localhost:{port}/n');
                  CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);
                  SELECT revetl.create_sync('s', 'public.t', 'named', ARRAY['id'], options => '{{"max_attempts": 1}}');""")
        run_id = int(c.sql("SELECT revetl.run_sync('s')"))
        self.assertEqual(c.wait_for_run(run_id), "failed")
        self.assertEqual(self.mock.requests(), [], "the run reached a loopback address")
        error = c.sql(f"SELECT error FROM revetl.sync_runs WHERE id = {run_id}")
        self.assertIn("revetl.allowed_hosts", error)
        self.assertIn("127.0.0.1", error)

        # Opened explicitly, addresses and CIDRs work (names still need a
        # name entry: "*" here).
        c.sql("ALTER SYSTEM SET revetl.allowed_hosts = '*, 127.0.0.1, 10.0.0.0/8'; SELECT pg_reload_conf()")
        wait_for(lambda: c.sql("SHOW revetl.allowed_hosts") == "*, 127.0.0.1, 10.0.0.0/8", what="reload")
        for i, url in enumerate([f"http://127.0.0.1:{port}/x", "http://10.1.2.3/"]):
            _, err, rc = psql(f"CREATE SERVER ok{i} FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url '{url}')",
                              c=c)
            self.assertEqual(rc, 0, f"{url}: {err}")
        _, err, rc = psql("CREATE SERVER still_refused FOREIGN DATA WRAPPER revetl "
                          "OPTIONS (type 'webhook', url 'http://169.254.169.254/latest')", c=c)
        self.assertEqual(sqlstate_of(err), "42501", err)
        # The worker sees the reload too: the name resolving to 127.0.0.1 now delivers.
        def delivered():
            rid = int(c.sql("SELECT revetl.run_sync('s')"))
            return c.wait_for_run(rid) == "succeeded"
        wait_for(delivered, timeout=30, interval=0.5, what="a run to the allowed address")
        self.assertTrue(self.mock.requests())

    def test_9b_narrowing_allowed_hosts_stops_a_run_in_progress(self):
        # A run that has a keep-alive connection open to an address a reload
        # then refuses sends nothing more over it (nor over a new one).
        c = self.c
        c.sql("ALTER SYSTEM SET revetl.allowed_hosts = '*, 127.0.0.1'; SELECT pg_reload_conf()")
        wait_for(lambda: c.sql("SHOW revetl.allowed_hosts") == "*, 127.0.0.1", what="reload")
        c.sql(f"""CREATE SERVER slow FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook',
                    url 'http://127.0.0.1:{self.mock.port}/slow', batch_size '1', max_in_flight '1',
                    max_attempts '1');
                  CREATE TABLE many (id int PRIMARY KEY);
                  INSERT INTO many SELECT generate_series(1, 300);
                  SELECT revetl.create_sync('many_s', 'public.many', 'slow', ARRAY['id']);""")
        self.mock.configure(delay_ms=30)
        run_id = int(c.sql("SELECT revetl.run_sync('many_s')"))
        wait_for(lambda: len(self.mock.requests()) >= 5, timeout=60, what="the run to be sending")
        c.sql("ALTER SYSTEM SET revetl.allowed_hosts = '*'; SELECT pg_reload_conf()")
        wait_for(lambda: c.sql("SHOW revetl.allowed_hosts") == "*", what="reload")
        self.assertEqual(c.wait_for_run(run_id), "failed")
        self.mock.configure(delay_ms=0)
        self.assertLess(len(self.mock.requests()), 300, "the run kept sending after the reload")
        error = c.sql(f"SELECT error FROM revetl.sync_runs WHERE id = {run_id}")
        self.assertIn("revetl.allowed_hosts", error)


if __name__ == "__main__":
    unittest.main()

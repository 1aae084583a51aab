"""ON CHANGE runs that deliver commits as they come (revetl.change_run_duration):
one run's process plans and delivers each new commit's keys, with every
guarantee of a run of its own: coalescing by key, an idempotency key per
change, PAUSE / cancel_run / ALTER SYNC, and exact convergence after the
run's process is killed and after `pg_ctl stop -m immediate` mid-stream."""

import os
import random
import signal
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, PsqlError, key, wait_for  # noqa: E402

cluster = None
mock = None


def setUpModule():
    global cluster, mock
    # Long runs, so that a test's commits surely fall in one run; retries of
    # undelivered keys after a second (the crash test waits for them).
    # pg_stat_statements sees the runs' plan queries (whether they were
    # compiled, below).
    cluster = Cluster(name="revetl-realtime", extra_conf="revetl.change_run_duration = '10min'\n"
                                                         "revetl.change_retry_interval = 1\n"
                                                         "shared_preload_libraries = 'revetl, pg_stat_statements'\n"
                                                         "pg_stat_statements.track = all").start()
    mock = MockWebhook()
    cluster.sql(f"""
        create extension revetl;
        create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/t',
            settle_time '1s');
    """)
    cluster.wait_for_worker()


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


def sql_ok(text):
    _, _, rc = cluster.psql(text, check=False)
    return rc == 0


def runs(sync):
    return cluster.rows(f"select id, status, trigger, plan_kind, rows_added + rows_changed + rows_removed, "
                        f"coalesce(error, '') from revetl.sync_runs where sync_name = '{sync}' order by id")


def settled(sync):
    return cluster.sql(f"select count(*) from revetl.sync_runs where sync_name = '{sync}' "
                       f"and status in ('queued', 'running')") == "0"


def running(sync):
    return cluster.sql(f"select count(*) from revetl.sync_runs where sync_name = '{sync}' "
                       f"and status = 'running'") == "1"


class RealtimeTest(unittest.TestCase):
    n = 0

    def setUp(self):
        mock.reset()
        RealtimeTest.n += 1
        self.t = f"rt_{RealtimeTest.n}"
        self.s = f"rt_sync_{RealtimeTest.n}"
        cluster.sql(f"create table {self.t} (id int primary key, score int not null); "
                    f"insert into {self.t} select g, 0 from generate_series(1, 20) g")
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO hooks KEY (id) "
                    f"MODE MIRROR SCHEDULE ON CHANGE$$)")
        # The first run is a full diff; the ones after it plan captured keys.
        cluster.sql(f"update {self.t} set score = 0 where id = 1")
        wait_for(lambda: len(mock.records()) == 20 and settled(self.s), timeout=60, what="the first full run")

    def tearDown(self):
        cluster.sql(f"select revetl.resume_sync('{self.s}')") if self._paused() else None
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")

    def _paused(self):
        return cluster.sql(f"select coalesce((select paused from revetl.syncs where name = '{self.s}'), false)") \
            == "t"

    def model(self):
        return {key(id=int(i)): {"id": int(i), "score": int(sc)}
                for i, sc in cluster.rows(f"select id, score from {self.t}")}

    def divergence(self):
        """What differs and where the sync stands, for a failure message."""
        have, want = mock.records(), self.model()
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))[:20]
        sync_id = cluster.sql(f"select id from revetl.syncs where name = '{self.s}'")
        quoted = ", ".join("'" + k.replace("'", "''") + "'" for k in diff) or "null"
        shadow = cluster.rows(f"select key, removed, verify_after, version from revetl.shadow_{sync_id} "
                              f"where key in ({quoted})")
        status = cluster.rows(f"select health, rows_waiting, coalesce(last_error, '') from revetl.sync_status "
                              f"where name = '{self.s}'")
        return "\n".join([f"keys that differ (destination, model): "
                          f"{[(k, have.get(k), want.get(k)) for k in diff]}",
                          f"their shadow rows: {shadow}", f"sync_status: {status}",
                          f"last runs: {runs(self.s)[-8:]}"])

    def score(self, i):
        return mock.records().get(key(id=i), {}).get("score")

    def test_one_run_delivers_commit_after_commit(self):
        before = len(runs(self.s))
        for i, v in enumerate([5, 6, 7, 8, 9], start=2):
            cluster.sql(f"update {self.t} set score = {v} where id = {i}")
            wait_for(lambda: self.score(i) == v, timeout=30, interval=0.01, what=f"row {i} to arrive")
        later = runs(self.s)[before:]
        # One run, still going, planned the five commits one after another.
        self.assertEqual(len(later), 1, later)
        self.assertEqual(later[0][1:5], ["running", "on change", "incremental", "5"], later)
        self.assertEqual(cluster.sql("select count(*) from pg_stat_activity where backend_type = 'revetl run'"),
                         "1")
        self.assertEqual(mock.records(), self.model())

    def test_plans_look_captured_keys_up_and_never_scan_the_shadow(self):
        # Each plan of an ON CHANGE run reads its captured keys' shadow rows
        # through the typed key's index, whatever the statistics say. Right
        # after a first run fills the shadow table, its key columns have no
        # statistics yet (autoanalyze is off here to keep it so): the planner
        # then turned the lookup into a semi join over a sequential scan of
        # every shadow row, at every plan, many a second.
        t, s = f"{self.t}_big", f"{self.s}_big"
        cluster.sql(f"create table {t} (id int primary key, score int not null); "
                    f"insert into {t} select g, 0 from generate_series(100001, 120000) g; analyze {t}")
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC {s} FROM {t} TO hooks KEY (id) "
                    f"MODE MIRROR SCHEDULE ON CHANGE$$)")
        try:
            shadow = "revetl.shadow_" + cluster.sql(f"select id from revetl.syncs where name = '{s}'")
            cluster.sql(f"alter table {shadow} set (autovacuum_enabled = false)")
            cluster.sql(f"update {t} set score = 0 where id = 100001")
            wait_for(lambda: settled(s) and cluster.sql(f"select count(*) from {shadow}") == "20000",
                     timeout=120, what="the first full run")

            def scans():
                return cluster.sql(f"select seq_scan || '|' || coalesce(idx_scan, 0) from pg_stat_user_tables "
                                   f"where relid = '{shadow}'::regclass").split("|")

            seq_before, idx_before = scans()
            for i, v in enumerate([5, 6, 7, 8, 9], start=100002):
                cluster.sql(f"update {t} set score = {v} where id = {i}")
                wait_for(lambda: self.score(i) == v, timeout=30, interval=0.01, what=f"row {i} to arrive")
            # The run ends a second after the last change; its process's
            # statistics are written as it exits.
            wait_for(lambda: settled(s) and cluster.sql(
                "select count(*) from pg_stat_activity where backend_type = 'revetl run'") == "0",
                timeout=60, what="the run to end")
            self.assertEqual(cluster.sql(f"select plan_kind from revetl.sync_runs where sync_name = '{s}' "
                                         f"order by id desc limit 1"), "incremental")
            wait_for(lambda: scans()[1] != idx_before, timeout=30, what="the run's statistics")
            seq_after, idx_after = scans()
            self.assertEqual(seq_after, seq_before, "an incremental plan scanned the whole shadow table")
            self.assertGreater(int(idx_after), int(idx_before))
        finally:
            cluster.sql(f"select revetl.drop_sync('{s}', if_exists => true)")

    def test_incremental_plans_are_never_compiled(self):
        # Compiling an ON CHANGE run's plan query took longer than running
        # it, at every plan: incremental plans run with jit = off, full diffs
        # keep the server's settings. Here JIT is asked for every query.
        if cluster.sql("select pg_jit_available()") != "t":
            self.skipTest("this server has no JIT")
        cluster.sql("create extension if not exists pg_stat_statements")
        cluster.sql("alter system set jit_above_cost = 0; select pg_reload_conf()")
        try:
            # A new process sees it (the run's process is new too).
            wait_for(lambda: cluster.sql("show jit_above_cost") == "0", what="the setting to be loaded")
            cluster.sql("select pg_stat_statements_reset()")
            for i, v in enumerate([5, 6, 7], start=2):
                cluster.sql(f"update {self.t} set score = {v} where id = {i}")
                wait_for(lambda: self.score(i) == v, timeout=30, interval=0.01, what=f"row {i} to arrive")
            cluster.sql(f"select * from revetl.run_sync('{self.s}', full => true, wait => true)")

            def compiled(start):
                return cluster.sql("select coalesce(sum(calls), 0) || '|' || coalesce(sum(jit_functions), 0) "
                                   f"from pg_stat_statements where query like '{start}%'").split("|")
            calls, functions = compiled("WITH cap AS MATERIALIZED")
            self.assertGreaterEqual(int(calls), 3)
            self.assertEqual(functions, "0", "an incremental plan was compiled")
            # The full diff's plan was: JIT works on this server.
            calls, functions = compiled("SELECT (CASE WHEN m.present")
            self.assertEqual(calls, "1")
            self.assertGreater(int(functions), 0)
        finally:
            cluster.sql("alter system reset jit_above_cost; select pg_reload_conf()")
        self.assertEqual(mock.records(), self.model())

    def test_a_b_a_b_in_one_run_has_four_idempotency_keys(self):
        # The mock skips a record whose idempotency key it applied before: a
        # repeated key would leave the row at A.
        for v in [1, 2, 1, 2]:
            cluster.sql(f"update {self.t} set score = {v} where id = 3")
            wait_for(lambda: mock.record_writes().get(key(id=3)) is not None and self.score(3) == v,
                     timeout=30, interval=0.01, what=f"score {v} to arrive")
            wait_for(lambda: cluster.sql(f"select count(*) from revetl.captured_changes c join revetl.syncs s "
                                         f"on s.id = c.sync_id where s.name = '{self.s}'") == "0",
                     timeout=30, what="the change to be planned")
        sent = [r for req in mock.requests() for r in req["body"]["records"] if r["key"] == {"id": 3}]
        self.assertEqual([r["data"]["score"] for r in sent][-4:], [1, 2, 1, 2])
        self.assertEqual(len({r["idempotency_key"] for r in sent[-4:]}), 4, sent)
        self.assertEqual(mock.duplicates(), 0)
        self.assertEqual(len({req["body"]["run_id"] for req in mock.requests()[-4:]}), 1)

    def test_ten_updates_of_one_row_while_one_is_in_flight_send_the_last_once(self):
        mock.configure(delay_ms=3000)
        writes = mock.record_writes()[key(id=4)]
        cluster.sql(f"update {self.t} set score = 1 where id = 4")
        # Planned, and its request is held by the slow destination.
        wait_for(lambda: cluster.sql(f"select coalesce(sum(rows_changed), 0) from revetl.sync_runs "
                                     f"where sync_name = '{self.s}' and status = 'running'") == "1",
                 timeout=30, interval=0.01, what="the first update to be planned")
        cluster.sql("".join(f"update {self.t} set score = {v} where id = 4;\n" for v in range(2, 11)))
        wait_for(lambda: self.score(4) == 10, timeout=60, what="the last version to arrive")
        mock.configure(delay_ms=0)
        self.assertEqual(mock.record_writes()[key(id=4)] - writes, 2)
        sent = [r["data"]["score"] for req in mock.requests() for r in req["body"]["records"]
                if r["key"] == {"id": 4}]
        self.assertEqual(sent[-2:], [1, 10])

    def test_pause_cancel_run_and_alter_end_the_run(self):
        cluster.sql(f"update {self.t} set score = 11 where id = 5")
        wait_for(lambda: self.score(5) == 11 and running(self.s), timeout=30, what="a running run")
        first = runs(self.s)[-1][0]
        # ALTER SYNC: the run ends, and the next commit runs the new definition.
        cluster.sql(f"select * from revetl.execute($$ALTER SYNC {self.s} SET (batch_size = 7)$$)")
        wait_for(lambda: runs(self.s)[-1][0] != first or settled(self.s), timeout=30, what="the run to end")
        wait_for(lambda: settled(self.s), timeout=30, what="the run to end")
        self.assertEqual(runs(self.s)[-1][1], "succeeded")
        cluster.sql(f"update {self.t} set score = 12 where id = 5")
        wait_for(lambda: self.score(5) == 12 and running(self.s), timeout=30, what="the change after ALTER")
        # cancel_run: the run ends cancelled; the next commit starts another.
        run_id = runs(self.s)[-1][0]
        cluster.sql(f"select revetl.cancel_run({run_id})")
        wait_for(lambda: settled(self.s), timeout=30, what="the cancelled run to end")
        self.assertEqual(runs(self.s)[-1][1], "cancelled")
        cluster.sql(f"update {self.t} set score = 13 where id = 5")
        wait_for(lambda: self.score(5) == 13 and running(self.s), timeout=30, what="the change after cancel")
        # PAUSE: nothing more is sent until RESUME.
        cluster.sql(f"select revetl.pause_sync('{self.s}')")
        wait_for(lambda: settled(self.s), timeout=30, what="the paused run to end")
        cluster.sql(f"update {self.t} set score = 14 where id = 5")
        count = len(runs(self.s))
        cluster.sql(f"select revetl.resume_sync('{self.s}')")
        wait_for(lambda: self.score(5) == 14, timeout=30, what="the change after RESUME")
        self.assertGreater(len(runs(self.s)), count)
        self.assertEqual(mock.records(), self.model())

    def test_run_sync_during_a_run_ends_that_run(self):
        cluster.sql(f"update {self.t} set score = 21 where id = 6")
        wait_for(lambda: self.score(6) == 21 and running(self.s), timeout=30, what="a running run")
        first = runs(self.s)[-1][0]
        # The module's runs last ten minutes: run_sync(wait) returns within
        # the minute only if the running run ends for it.
        out = cluster.sql(f"set statement_timeout = '60s'; "
                          f"select revetl.run_sync('{self.s}', full => true, wait => true)")
        by_id = {r[0]: r for r in runs(self.s)}
        self.assertEqual(by_id[first][1], "succeeded")
        self.assertEqual(by_id[out.split()[-1]][1:4], ["succeeded", "manual", "full"])

    def test_a_row_sent_then_deleted_across_an_immediate_stop_is_removed(self):
        # A run's further plans commit without waiting for the flush, and the
        # WAL writer here writes such commits every 10 s only. The row added
        # below is planned by one and sent, then the server stops. Its plan
        # must be on disk before the send, so that recovery marks the key for
        # re-verification (a tombstone): a lost plan would leave no record
        # that the row may be at the destination. The model then
        # deletes it, before its re-verification is due, and nothing else
        # changes: the scheduler must start the run that sends the removal
        # once it is due (an ON CHANGE sync would otherwise wait for a change
        # that never comes).
        with cluster.lazy_wal_writer():
            cluster.sql(f"update {self.t} set score = 31 where id = 7")
            wait_for(lambda: self.score(7) == 31 and running(self.s), timeout=30, interval=0.01,
                     what="a running run")
            # The same run plans the insert (it waits a second for more
            # changes): a further plan.
            cluster.sql(f"insert into {self.t} values (700, 1)")
            wait_for(lambda: self.score(700) == 1, timeout=30, interval=0.01, what="the added row to arrive")
            self.assertEqual(cluster.sql(f"select rows_changed, rows_added from revetl.sync_runs "
                                         f"where sync_name = '{self.s}' and status = 'running'"), "1|1")
            # The destination refuses the row's next sends, so that the run
            # queued again after the crash cannot add it again before the
            # delete below (which would hide a lost plan).
            mock.configure(reject=[{"field": "id", "equals": 700}])
            cluster.stop(mode="immediate")
            cluster.start()
        cluster.wait_for_worker()
        cluster.sql(f"delete from {self.t} where id = 700")
        mock.configure(reject=[])
        try:
            wait_for(lambda: mock.records() == self.model(), timeout=60, interval=0.2,
                     what="the destination to converge to the model")
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{self.divergence()}") from None

    def test_killed_run_and_immediate_stop_mid_stream_converge_exactly(self):
        rng = random.Random(15)
        stop = threading.Event()
        errors = []
        mock.configure(delay_ms=30)

        def writer():
            next_id = 1000
            while not stop.is_set():
                op = rng.random()
                try:
                    if op < 0.4:
                        cluster.psql(f"insert into {self.t} values ({next_id}, {rng.randint(0, 99)}); "
                                     f"update {self.t} set score = score + 1 where id = {rng.randint(1, 20)}")
                        next_id += 1
                    elif op < 0.8:
                        cluster.psql("".join(f"update {self.t} set score = score + 1 where id = "
                                             f"{rng.choice([1, 2, 3, next_id - 1])};" for _ in range(3)))
                    else:
                        cluster.psql(f"delete from {self.t} where id = {rng.randint(1000, next_id)}")
                except PsqlError:
                    pass  # the server is restarting: what committed is what the model has
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
                    return

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            for crash in ("kill", "immediate"):
                wait_for(lambda: running(self.s) and len(mock.requests()) > 5, timeout=60,
                         what="a running run delivering")
                mock.clear_requests()
                if crash == "kill":
                    restarts = cluster.log_text().count("reinitializing")
                    pid = cluster.sql("select pid from pg_stat_activity where backend_type = 'revetl run'")
                    self.assertTrue(pid)
                    os.kill(int(pid), signal.SIGKILL)
                    wait_for(lambda: cluster.log_text().count("reinitializing") > restarts, timeout=60,
                             what="the server to restart after the killed run")
                else:
                    cluster.stop(mode="immediate")
                    cluster.start()
                wait_for(lambda: sql_ok("select 1"), timeout=60, what="the server to accept connections")
                cluster.wait_for_worker()
        finally:
            stop.set()
            thread.join(timeout=120)
        self.assertEqual(errors, [])
        mock.configure(delay_ms=0)
        # Every key's last version arrives, and every deleted key is gone.
        try:
            wait_for(lambda: mock.records() == self.model(), timeout=180, interval=0.5,
                     what="the destination to converge to the model")
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{self.divergence()}") from None
        self.assertEqual(mock.records(), self.model())
        statuses = {r[1] for r in runs(self.s)}
        self.assertIn("failed", statuses, "the killed runs are recorded as failed")


if __name__ == "__main__":
    unittest.main()

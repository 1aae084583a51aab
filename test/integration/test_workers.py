"""The launcher and the per-database workers: start, wake, survive crashes,
reload settings, and never block DROP DATABASE."""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, key, wait_for  # noqa: E402


class WorkerTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(name="revetl-workers").start()
        self.mock = MockWebhook()

    def tearDown(self):
        self.mock.stop()
        self.cluster.destroy()

    def make_sync(self, db="postgres", rows=5, batch_size=100, in_flight=1):
        self.cluster.sql(f"""
            create extension if not exists revetl;
            create table t (id int primary key, v text);
            insert into t select g, 'v' || g from generate_series(1, {rows}) g;
            create server h foreign data wrapper revetl options (type 'webhook', url '{self.mock.url}/w');
            select revetl.create_sync('s', 'public.t', 'h', array['id'],
                                      options => '{{"batch_size": {batch_size}, "max_in_flight": {in_flight}}}');
        """, db=db)

    def test_launcher_and_workers_are_visible_by_type(self):
        self.cluster.sql("create database other; create database plain")
        self.cluster.sql("create extension revetl")
        self.cluster.sql("create extension revetl", db="other")
        self.cluster.wait_for_worker("postgres")
        self.cluster.wait_for_worker("other")
        launchers = self.cluster.sql("select count(*) from pg_stat_activity where backend_type = 'revetl launcher'")
        self.assertEqual(launchers, "1")
        # A database without the extension gets no lasting worker.
        wait_for(lambda: self.cluster.sql(
            "select count(*) = 0 from pg_stat_activity where backend_type = 'revetl worker' "
            "and datname = 'plain'") == "t", what="probe worker in 'plain' to exit")
        self.assertEqual(len(self.cluster.worker_pids("postgres")), 1)

    def test_sigkill_mid_run_marks_run_failed_and_replans(self):
        self.make_sync(rows=6, batch_size=1)
        self.cluster.wait_for_worker()
        self.mock.configure(delay_ms=700)
        run_id = int(self.cluster.sql("select revetl.run_sync('s')"))
        # Kill the process delivering the run (at least one batch is done).
        wait_for(lambda: len(self.mock.requests()) >= 2, timeout=30, what="delivery to start")
        pid = int(self.cluster.sql("select pid from pg_stat_activity where backend_type = 'revetl run'"))
        os.kill(pid, signal.SIGKILL)
        # The postmaster resets shared memory and restarts everything.
        wait_for(lambda: self.cluster.sql("select 1") == "1", timeout=60, what="server after crash")
        self.mock.configure(delay_ms=0)
        wait_for(lambda: self.cluster.sql(f"select status from revetl.sync_runs where id = {run_id}") == "failed",
                 timeout=60, what="interrupted run to be marked failed")
        error = self.cluster.sql(f"select error from revetl.sync_runs where id = {run_id}")
        self.assertIn("process running this run stopped", error)
        retry = self.cluster.sql("select id from revetl.sync_runs where trigger = 'retry'")
        self.assertTrue(retry)
        self.assertEqual(self.cluster.wait_for_run(int(retry)), "succeeded")
        expected = {key(id=i): {"id": i, "v": f"v{i}"} for i in range(1, 7)}
        self.assertEqual(self.mock.records(), expected)
        # At most the batch in flight was sent twice.
        writes = self.mock.record_writes()
        self.assertLessEqual(sum(writes.values()) + self.mock.duplicates(), 7)
        self.assertEqual(self.cluster.sql("select count(*) from revetl.changes"), "0")

    def test_a_waiting_run_sync_is_told_by_the_run_not_the_scheduler(self):
        # The run's own process tells the waiting caller once its outcome is
        # committed: run_sync(wait => true) returns even while the scheduler
        # cannot reap the process (stopped here with SIGSTOP; before, the
        # caller waited for the scheduler, which after a big run came up to a
        # second after the run's end).
        self.make_sync(rows=4, batch_size=1)
        worker = self.cluster.wait_for_worker()
        self.mock.configure(delay_ms=300)
        cmd = [os.path.join(self.cluster.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-h", self.cluster.dir, "-p", str(self.cluster.port), "-U", "postgres", "-d", "postgres",
               "-c", "select revetl.run_sync('s', wait => true)"]
        waiter = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stopped = False
        try:
            wait_for(lambda: len(self.mock.requests()) >= 1, timeout=30, what="delivery to start")
            os.kill(worker, signal.SIGSTOP)
            stopped = True
            self.mock.configure(delay_ms=0)
            out, err = waiter.communicate(timeout=60)
            self.assertEqual(waiter.returncode, 0, err)
            run_id = int(out.strip())
            self.assertEqual(self.cluster.sql(f"select status from revetl.sync_runs where id = {run_id}"),
                             "succeeded")
            # Every queued change was deleted as it was recorded.
            self.assertEqual(self.cluster.sql(f"select count(*) from revetl.changes where run_id = {run_id}"), "0")
        finally:
            if stopped:
                os.kill(worker, signal.SIGCONT)
            if waiter.poll() is None:
                waiter.kill()
                waiter.wait(timeout=10)
        expected = {key(id=i): {"id": i, "v": f"v{i}"} for i in range(1, 5)}
        self.assertEqual(self.mock.records(), expected)
        # The scheduler, running again, reaps the process and goes on.
        self.assertEqual(self.cluster.wait_for_run(int(self.cluster.sql("select revetl.run_sync('s')"))),
                         "succeeded")

    def test_a_failed_run_leaves_no_queued_changes(self):
        # A run that stops with rows still queued deletes them as it ends
        # (the next run plans them again).
        self.make_sync(rows=6, batch_size=1)
        self.cluster.wait_for_worker()
        self.mock.configure(faults=[{"action": "pass"}, {"action": "pass"},
                                    {"status": 401, "body": {"error": "unauthorized"}}])
        _, err, rc = self.cluster.psql("select revetl.run_sync('s', wait => true)", check=False)
        self.assertNotEqual(rc, 0)
        run_id = int(self.cluster.sql("select max(id) from revetl.sync_runs"))
        self.assertEqual(self.cluster.sql(f"select status from revetl.sync_runs where id = {run_id}"), "failed")
        self.assertLess(int(self.cluster.sql(f"select rows_delivered from revetl.sync_runs where id = {run_id}")), 6)
        self.assertEqual(self.cluster.sql("select count(*) from revetl.changes"), "0")
        self.assertEqual(self.cluster.wait_for_run(int(self.cluster.sql("select revetl.run_sync('s')"))),
                         "succeeded")
        expected = {key(id=i): {"id": i, "v": f"v{i}"} for i in range(1, 7)}
        self.assertEqual(self.mock.records(), expected)

    def test_a_clean_shutdown_interrupts_the_run_and_resumes_it(self):
        # pg_ctl stop -m fast sends SIGTERM: the run in progress is recorded
        # as interrupted (not failed), and a run of the sync is queued again,
        # which finishes the job after the restart.
        self.make_sync(rows=6, batch_size=1)
        self.cluster.wait_for_worker()
        self.mock.configure(delay_ms=700)
        run_id = int(self.cluster.sql("select revetl.run_sync('s')"))
        wait_for(lambda: len(self.mock.requests()) >= 2, timeout=30, what="delivery to start")
        self.cluster.stop("fast")
        self.mock.configure(delay_ms=0)
        self.cluster.start()
        self.assertEqual(self.cluster.sql(f"select status from revetl.sync_runs where id = {run_id}"),
                         "interrupted")
        error = self.cluster.sql(f"select error from revetl.sync_runs where id = {run_id}")
        self.assertIn("shutdown", error)
        retry = wait_for(lambda: self.cluster.sql(f"select id from revetl.sync_runs where trigger = 'retry' "
                                                  f"and id > {run_id}"), what="the run to be queued again")
        self.assertEqual(self.cluster.wait_for_run(int(retry)), "succeeded")
        expected = {key(id=i): {"id": i, "v": f"v{i}"} for i in range(1, 7)}
        self.assertEqual(self.mock.records(), expected)
        # A planned restart is no failure: health stays healthy.
        self.assertEqual(self.cluster.sql("select health from revetl.sync_status where name = 's'"), "healthy")
        self.assertNotIn("process running this run stopped", self.cluster.log_text())

    def test_cancel_run_stops_a_running_and_a_queued_run(self):
        self.make_sync(rows=6, batch_size=1)
        self.cluster.wait_for_worker()
        self.cluster.sql("create role canceller login; create role stranger login")
        self.cluster.sql("alter table t owner to canceller; grant usage on foreign server h to canceller")
        self.cluster.sql("select revetl.alter_sync_owner('s', 'canceller')")
        self.mock.configure(delay_ms=700)
        running = int(self.cluster.sql("select revetl.run_sync('s')", user="canceller"))
        wait_for(lambda: len(self.mock.requests()) >= 1, timeout=30, what="delivery to start")
        queued = int(self.cluster.sql("select revetl.run_sync('s')", user="canceller"))
        self.assertEqual(self.cluster.sql(f"select status from revetl.sync_runs where id = {queued}"), "queued")
        # Not the owner: refused.
        _, err, rc = self.cluster.psql(f"select revetl.cancel_run({running})", user="stranger", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn('must be owner of sync "s"', err)
        _, err, rc = self.cluster.psql("select revetl.cancel_run(999999)", check=False)
        self.assertIn("run 999999 does not exist", err)
        self.cluster.sql(f"select revetl.cancel_run({queued})", user="canceller")
        self.assertEqual(self.cluster.rows(f"select status, error from revetl.sync_runs where id = {queued}",
                                           user="canceller"),
                         [["cancelled", "cancelled by revetl.cancel_run (role canceller)"]])
        self.cluster.sql(f"select revetl.cancel_run({running})", user="canceller")
        wait_for(lambda: self.cluster.sql(f"select status from revetl.sync_runs where id = {running}")
                 == "cancelled", timeout=15, what="the running run to be cancelled")
        self.assertLess(len(self.mock.records()), 6, "the cancelled run delivered everything anyway")
        _, err, _ = self.cluster.psql(f"select revetl.cancel_run({running})", user="canceller")
        self.assertIn("already ended (cancelled)", err)
        # Nothing is lost: the next run delivers the rest.
        self.mock.configure(delay_ms=0)
        again = int(self.cluster.sql("select revetl.run_sync('s', wait => true)", user="canceller"))
        self.assertEqual(self.cluster.wait_for_run(again), "succeeded")
        expected = {key(id=i): {"id": i, "v": f"v{i}"} for i in range(1, 7)}
        self.assertEqual(self.mock.records(), expected)

    def test_terminated_worker_is_restarted(self):
        self.cluster.sql("create extension revetl")
        pid = self.cluster.wait_for_worker()
        self.cluster.sql(f"select pg_terminate_backend({pid})")
        new_pid = wait_for(lambda: [p for p in self.cluster.worker_pids() if p != pid], timeout=30,
                           what="worker restart")[0]
        self.assertNotEqual(new_pid, pid)
        self.make_sync()
        run_id = int(self.cluster.sql("select revetl.run_sync('s', wait => true)"))
        self.assertEqual(self.cluster.wait_for_run(run_id), "succeeded")

    def test_terminated_run_is_interrupted_and_queued_again(self):
        # pg_terminate_backend is SIGTERM, as a shutdown: the run is recorded
        # as interrupted, not failed, and queued again.
        self.make_sync(rows=4, batch_size=1)
        self.cluster.wait_for_worker()
        self.mock.configure(delay_ms=500)
        run_id = int(self.cluster.sql("select revetl.run_sync('s')"))
        wait_for(lambda: len(self.mock.requests()) >= 1, timeout=30, what="delivery to start")
        self.cluster.sql("select pg_terminate_backend(pid) from pg_stat_activity where backend_type = 'revetl run'")
        self.mock.configure(delay_ms=0)
        wait_for(lambda: self.cluster.sql(f"select status from revetl.sync_runs where id = {run_id}")
                 == "interrupted", timeout=30, what="terminated run to be marked interrupted")
        retry = int(wait_for(lambda: self.cluster.sql("select id from revetl.sync_runs where trigger = 'retry'"),
                             what="retry run"))
        self.assertEqual(self.cluster.wait_for_run(retry), "succeeded")
        self.assertEqual(len(self.mock.records()), 4)

    def test_drop_database_with_running_worker_does_not_hang(self):
        self.cluster.sql("create database doomed")
        self.cluster.sql("create extension revetl", db="doomed")
        self.cluster.wait_for_worker("doomed")
        start = time.monotonic()
        _, err, rc = self.cluster.psql("drop database doomed", check=False)
        self.assertEqual(rc, 0, err)
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(self.cluster.sql("select count(*) from pg_database where datname = 'doomed'"), "0")
        # Also while a run is delivering in that database.
        self.cluster.sql("create database busy")
        self.make_sync(db="busy", rows=20, batch_size=1)
        self.mock.configure(delay_ms=300)
        self.cluster.sql("select revetl.run_sync('s')", db="busy")
        wait_for(lambda: self.cluster.sql("select count(*) from pg_stat_activity where backend_type = 'revetl run' "
                                          "and datname = 'busy'") == "1", timeout=30, what="run in progress")
        start = time.monotonic()
        _, err, rc = self.cluster.psql("drop database busy", check=False)
        self.assertEqual(rc, 0, err)
        self.assertLess(time.monotonic() - start, 10)
        self.mock.configure(delay_ms=0)
        # Renaming works too, and the worker comes back under the new name.
        self.cluster.sql("create database before_rename")
        self.cluster.sql("create extension revetl", db="before_rename")
        self.cluster.wait_for_worker("before_rename")
        _, err, rc = self.cluster.psql("alter database before_rename rename to after_rename", check=False)
        self.assertEqual(rc, 0, err)
        self.cluster.wait_for_worker("after_rename", timeout=40)

    def test_sighup_reloads_settings_in_the_worker(self):
        self.make_sync()
        self.cluster.wait_for_worker()
        self.cluster.sql("alter system set revetl.allowed_hosts = 'hooks.example.com'; select pg_reload_conf()")
        wait_for(lambda: self.cluster.sql("show revetl.allowed_hosts") == "hooks.example.com",
                 what="reload in this session")
        _, err, rc = self.cluster.psql("select revetl.run_sync('s', wait => true)", check=False)
        self.assertNotEqual(rc, 0)
        error = self.cluster.sql("select error from revetl.sync_runs order by id desc limit 1")
        self.assertIn('destination host "127.0.0.1" of server "h" is not in revetl.allowed_hosts', error)
        self.assertEqual(self.mock.requests(), [])
        self.cluster.sql("alter system reset revetl.allowed_hosts; select pg_reload_conf()")
        wait_for(lambda: self.cluster.sql("show revetl.allowed_hosts") == "*, 127.0.0.1", what="reload")
        run_id = int(self.cluster.sql("select revetl.run_sync('s', wait => true)"))
        self.assertEqual(self.cluster.wait_for_run(run_id), "succeeded")

    def test_create_extension_without_preload_fails_with_a_hint(self):
        plain = Cluster(name="revetl-nopreload",
                        extra_conf="shared_preload_libraries = ''")
        try:
            plain.start()
            _, err, rc = plain.psql("create extension revetl", check=False)
            self.assertNotEqual(rc, 0)
            self.assertIn("revetl must be loaded via shared_preload_libraries", err)
            self.assertIn("HINT:  Add revetl to shared_preload_libraries", err)
        finally:
            plain.destroy()


if __name__ == "__main__":
    unittest.main()

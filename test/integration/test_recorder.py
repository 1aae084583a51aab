"""The recorder: a big run's second process, which records delivered batches
(shadow state, refused rows, counters, the queue) while the run's process
sends the next ones (src/pg/recorder.hpp). Here any run of 50 rows or more
gets one (revetl.recorder_min_rows = 50); the other suites run with the
default, and scripts/test.sh runs test_pipeline.py once more with a recorder
for every run."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, OpenTransaction, key, wait_for  # noqa: E402

ROWS = 300


class RecorderCase(unittest.TestCase):
    """A cluster, a 300-row model, a MIRROR sync of 10-row batches sent one
    at a time, and helpers (no tests of its own)."""

    extra_conf = "revetl.recorder_min_rows = 50\n"

    def setUp(self):
        self.cluster = Cluster(name="revetl-recorder", extra_conf=self.extra_conf).start()
        self.mock = MockWebhook()
        self.cluster.sql(f"""
            create extension revetl;
            create table t (id int primary key, v text);
            insert into t select g, 'v' || g from generate_series(1, {ROWS}) g;
            create server h foreign data wrapper revetl options (type 'webhook', url '{self.mock.url}/w');
            select revetl.create_sync('s', 'public.t', 'h', array['id'], mode => 'mirror',
                                      options => '{{"batch_size": 10, "max_in_flight": 1}}');
        """)
        self.cluster.wait_for_worker()

    def tearDown(self):
        self.mock.stop()
        self.cluster.destroy()

    def model(self):
        return {key(id=int(i)): {"id": int(i), "v": v} for i, v in self.cluster.rows("select id, v from t")}

    def run_and_wait(self):
        """run_sync(wait => true): the run's row, as a dict."""
        out, err, rc = self.cluster.psql("select revetl.run_sync('s', wait => true)", check=False)
        run_id = self.cluster.sql("select max(id) from revetl.sync_runs")
        cols = ["status", "rows_added", "rows_changed", "rows_removed", "rows_delivered", "rows_rejected",
                "requests", "error"]
        row = self.cluster.rows(f"select {', '.join(cols)} from revetl.sync_runs where id = {run_id}")[0]
        return dict(zip(cols, row), out=out.strip(), err=err, rc=rc)

    def recorders(self):
        return self.cluster.rows("select pid, query from pg_stat_activity where backend_type = 'revetl recorder'")

    def start_slow_run(self, delay_ms=60):
        # 30 requests of 10 rows, one at a time: about two seconds.
        self.mock.configure(delay_ms=delay_ms)
        run_id = int(self.cluster.sql("select revetl.run_sync('s')"))
        return run_id

    def assert_state_matches_destination(self):
        """The shadow state holds exactly what the destination holds, and
        nothing is left queued."""
        self.assertEqual(self.mock.records(), self.model())
        self.assertEqual(self.cluster.sql("select count(*) from revetl.changes"), "0")
        shadow = self.cluster.sql("select shadow_table from revetl.syncs where name = 's'")
        self.assertEqual(self.cluster.sql(f"select count(*) from revetl.{shadow} where not removed"), str(ROWS))


class RecorderTest(RecorderCase):
    def test_a_big_run_is_recorded_by_a_second_process(self):
        run_id = self.start_slow_run()
        pid = wait_for(self.recorders, timeout=30, interval=0.01, what="the run's recorder process")[0][0]
        self.assertEqual(self.cluster.wait_for_run(run_id), "succeeded")
        # The recorder had exited when the run's outcome was committed.
        self.assertEqual(self.recorders(), [])
        self.assertEqual(self.cluster.sql(f"select count(*) from pg_stat_activity where pid = {pid}"), "0")
        run = self.cluster.rows(f"select rows_added, rows_delivered, rows_rejected, requests from revetl.sync_runs "
                                f"where id = {run_id}")[0]
        self.assertEqual(run, [str(ROWS), str(ROWS), "0", "30"])
        self.assert_state_matches_destination()
        # What it recorded is the state the next plan diffs against: only
        # the rows changed since are sent, and a removal is one.
        self.mock.configure(delay_ms=0)
        self.mock.clear_requests()
        self.cluster.sql("update t set v = v || '!' where id <= 7; delete from t where id = 300")
        run = self.run_and_wait()
        self.assertEqual((run["status"], run["rows_changed"], run["rows_removed"], run["rows_delivered"]),
                         ("succeeded", "7", "1", "8"), run)
        self.assertEqual(self.mock.records(), self.model())

    def test_a_big_plan_is_queued_by_the_recorder(self):
        # 100,000 rows: once the plan has found a thousand changes it starts
        # the recorder, which then queues chunks of the plan's changes in a
        # transaction of its own while the plan computes the next (the plan
        # queues a chunk itself while the recorder has four unanswered). The
        # run's end state is what one process would leave.
        self.cluster.sql("alter system set log_min_messages = debug1")
        self.cluster.sql("select pg_reload_conf()")
        wait_for(lambda: self.cluster.sql("show log_min_messages") == "debug1", what="the reload")
        self.cluster.sql("insert into t select g, 'v' || g from generate_series(301, 100000) g")
        self.cluster.sql("select revetl.create_sync('big', 'public.t', 'h', array['id'], mode => 'mirror', "
                         "options => '{\"batch_size\": 1000, \"max_in_flight\": 4}')")
        out, err, rc = self.cluster.psql("select revetl.run_sync('big', wait => true)", check=False)
        self.assertEqual(rc, 0, err)
        run_id = int(out.strip())
        run = self.cluster.rows(f"select status, rows_added, rows_delivered from revetl.sync_runs where id = {run_id}")
        self.assertEqual(run[0], ["succeeded", "100000", "100000"])
        found = re.findall(rf"run {run_id}: the recorder queued (\d+) of the plan's (\d+) changes",
                           self.cluster.log_text())
        self.assertEqual(len(found), 1, "the recorder queued none of the plan's changes")
        offloaded, planned = map(int, found[0])
        self.assertEqual(planned, 100000)
        self.assertTrue(0 < offloaded < planned, found)
        self.assertEqual(self.mock.records(), self.model())
        self.assertEqual(self.cluster.sql("select count(*) from revetl.changes"), "0")
        shadow = self.cluster.sql("select shadow_table from revetl.syncs where name = 'big'")
        self.assertEqual(self.cluster.sql(f"select count(*) from revetl.{shadow}"), "100000")
        # The queued changes were exactly the plan's: a second run finds
        # nothing to send.
        self.mock.clear_requests()
        self.cluster.sql("select revetl.run_sync('big', wait => true)")
        self.assertEqual(self.cluster.sql("select rows_added + rows_changed + rows_removed from revetl.sync_runs "
                                          "order by id desc limit 1"), "0")
        self.assertEqual(self.mock.requests(), [])
        # A plan that fails after the recorder queued part of it (too many
        # removals for the sync's max_removals): the recorder's uncommitted
        # changes go with it, nothing stays queued, and nothing was sent.
        self.cluster.sql("select * from revetl.execute($$ALTER SYNC big SET (max_removals = 10)$$)")
        self.cluster.sql("delete from t where id > 60000")
        out, err, rc = self.cluster.psql("select revetl.run_sync('big', wait => true)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("the run would remove 40000 of the 100000 records delivered", err)
        wait_for(lambda: self.recorders() == [], timeout=30, what="the recorder to exit")
        self.assertEqual(self.cluster.sql("select count(*) from revetl.changes"), "0")
        self.assertEqual(self.mock.requests(), [])
        self.cluster.sql("select revetl.run_sync('big', wait => true, allow_removals => true)")
        self.assertEqual(self.mock.records(), self.model())
        self.assertEqual(self.cluster.sql(f"select count(*) from revetl.{shadow} where not removed"), "60000")

    def test_refused_rows_are_recorded_by_the_recorder(self):
        # Two rows refused by the destination: in revetl.rejected_rows with
        # the destination's reason, the run partial, the others recorded.
        self.mock.configure(reject=[{"field": "id", "equals": 5, "reason": "no five"},
                                    {"field": "id", "equals": 77, "reason": "no 77"}])
        run = self.run_and_wait()
        self.assertEqual((run["status"], run["rows_delivered"], run["rows_rejected"]),
                         ("partial", str(ROWS - 2), "2"), run)
        rejected = self.cluster.rows("select key->>'id', reason from revetl.rejected_rows order by 1::int")
        self.assertEqual([r[0] for r in rejected], ["5", "77"])
        self.assertIn("no five", rejected[0][1])
        shadow = self.cluster.sql("select shadow_table from revetl.syncs where name = 's'")
        self.assertEqual(self.cluster.sql(f"select count(*) from revetl.{shadow}"), str(ROWS - 2))
        self.assertEqual(self.cluster.sql("select count(*) from revetl.changes"), "0")

    def test_a_recorder_that_stops_fails_the_run_and_loses_nothing(self):
        run_id = self.start_slow_run(delay_ms=100)
        pid = wait_for(self.recorders, timeout=30, interval=0.01, what="the run's recorder process")[0][0]
        wait_for(lambda: len(self.mock.requests()) >= 3, timeout=30, what="a few batches delivered")
        self.cluster.sql(f"select pg_terminate_backend({pid})")
        self.assertEqual(self.cluster.wait_for_run(run_id), "failed")
        error = self.cluster.sql(f"select error from revetl.sync_runs where id = {run_id}")
        self.assertIn("recorder process (revetl recorder) stopped", error)
        # Rows delivered and not recorded are planned again (and re-verified
        # later): the next run completes the destination and the state.
        self.mock.configure(delay_ms=0)
        self.assertEqual(self.run_and_wait()["status"], "succeeded")
        self.assert_state_matches_destination()

    def test_a_recording_error_fails_the_run_with_postgres_words(self):
        # A shadow row that appears for a key the run adds: the recorder's
        # insert fails, and the run with PostgreSQL's message, as when the
        # run's own process records.
        run_id = self.start_slow_run()
        wait_for(self.recorders, timeout=30, interval=0.01, what="the run's recorder process")
        shadow = self.cluster.sql("select shadow_table from revetl.syncs where name = 's'")
        self.cluster.sql(f"insert into revetl.{shadow} (key, row_hash, run_id) "
                         f"select jsonb_build_object('id', id)::text, 0, 0 from t where id > 200 "
                         f"on conflict do nothing")
        self.assertEqual(self.cluster.wait_for_run(run_id), "failed")
        self.assertIn("duplicate key", self.cluster.sql(f"select error from revetl.sync_runs where id = {run_id}"))
        wait_for(lambda: self.recorders() == [], timeout=30, what="the recorder to exit")
        self.mock.configure(delay_ms=0)
        self.assertEqual(self.run_and_wait()["status"], "succeeded")
        self.assertEqual(self.mock.records(), self.model())
        self.assertEqual(self.cluster.sql("select count(*) from revetl.changes"), "0")

    def test_pausing_a_recorded_run_cancels_it_and_the_next_run_completes(self):
        run_id = self.start_slow_run()
        wait_for(self.recorders, timeout=30, interval=0.01, what="the run's recorder process")
        self.cluster.sql("select revetl.pause_sync('s')")
        self.assertEqual(self.cluster.wait_for_run(run_id), "cancelled")
        self.assertEqual(self.recorders(), [])
        self.cluster.sql("select revetl.resume_sync('s')")
        self.mock.configure(delay_ms=0)
        self.assertEqual(self.run_and_wait()["status"], "succeeded")
        self.assert_state_matches_destination()


class RecorderUnderASerializableDefaultTest(RecorderCase):
    """default_transaction_isolation = serializable for the cluster (as a
    DBA may set it for the applications' sessions): a run's process and its
    recorder that record at the same time, and so update the same
    revetl.runs row, still both commit (revetl's own transactions run at
    read committed whatever the default)."""

    extra_conf = "revetl.recorder_min_rows = 50\ndefault_transaction_isolation = 'serializable'\n"

    def test_the_run_and_its_recorder_record_side_by_side(self):
        shadow = self.cluster.sql("select shadow_table from revetl.syncs where name = 's'")
        run_id = self.start_slow_run()
        wait_for(lambda: self.cluster.sql(f"select planned_at is not null from revetl.sync_runs where id = {run_id}")
                 == "t" and self.recorders(), timeout=30, interval=0.01, what="the run delivering, with its recorder")
        # Every recording writes the shadow table: while a session holds it
        # in SHARE mode, the recorder waits on its next group, takes one
        # more, and the run's process records the group after itself and
        # waits too. Released, both go on, each in a transaction that began
        # before the other's commit.
        holder = OpenTransaction(self.cluster, f"lock table revetl.{shadow} in share mode")
        try:

            def both_wait():
                waiting = self.cluster.rows(
                    "select backend_type from pg_stat_activity where wait_event_type = 'Lock' "
                    "and backend_type in ('revetl run', 'revetl recorder') order by 1")
                return [w[0] for w in waiting] == ["revetl recorder", "revetl run"]

            wait_for(both_wait, timeout=60, what="the run's process and its recorder waiting to record")
            holder.commit()
        finally:
            holder.abort()
        self.assertEqual(self.cluster.wait_for_run(run_id), "succeeded",
                         self.cluster.sql(f"select error from revetl.sync_runs where id = {run_id}"))
        run = self.cluster.rows(f"select rows_delivered, rows_rejected, requests from revetl.sync_runs "
                                f"where id = {run_id}")[0]
        self.assertEqual(run, [str(ROWS), "0", "30"])
        self.assert_state_matches_destination()
        self.assertEqual(self.cluster.sql("show default_transaction_isolation"), "serializable")


class RecorderWithoutWorkerSlotTest(RecorderCase):
    """No background worker slot left for a recorder: the run records its
    batches itself, with the same results."""

    # The logical replication launcher, revetl's launcher and the
    # database's scheduler, and the run: nothing left for a recorder.
    extra_conf = "revetl.recorder_min_rows = 50\nmax_worker_processes = 4\n"

    def test_without_a_free_slot_the_run_records_itself(self):
        workers = self.cluster.sql("select count(*) from pg_stat_activity where backend_type in "
                                   "('logical replication launcher', 'revetl launcher', 'revetl worker')")
        self.assertEqual(workers, "3", "the slots this test leaves free")
        run_id = self.start_slow_run()
        seen_run = False
        deadline = time.monotonic() + 60
        while self.cluster.sql(f"select status from revetl.sync_runs where id = {run_id}") in ("queued", "running"):
            self.assertLess(time.monotonic(), deadline, "the run did not end")
            self.assertEqual(self.recorders(), [])
            seen_run = seen_run or self.cluster.sql(
                "select count(*) from pg_stat_activity where backend_type = 'revetl run'") == "1"
        self.assertTrue(seen_run)
        self.assertEqual(self.cluster.wait_for_run(run_id), "succeeded")
        self.assert_state_matches_destination()


if __name__ == "__main__":
    unittest.main()

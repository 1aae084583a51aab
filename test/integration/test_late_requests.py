"""Late requests and idempotency keys (issue 18): the destination ends equal
to the model whatever order old requests land in within settle_time, and
idempotency keys are unique per change.

Each interleaving is made deterministic with the mock's "hold" fault: the
mock keeps a request unanswered and unapplied (revetl times out and sends it
again), and applies it only when the test calls release(), after a later
request. Every scenario runs against a plain receiver and against one that
skips idempotency keys it applied before (the mock's "dedupe"), and must end
with the destination equal to the model in both.
"""

import json
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, key, wait_for  # noqa: E402

cluster = None
mock = None

# A request revetl gives up on after 1 s may still be applied for 2 s.
SERVER_OPTIONS = "timeout '1s', settle_time '2s', max_attempts '4', batch_size '1', max_in_flight '1'"


def setUpModule():
    global cluster, mock
    cluster = Cluster(name="revetl-late").start()
    mock = MockWebhook()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


class LateRequestsTest(unittest.TestCase):
    counter = 0

    def setUp(self):
        mock.reset()
        LateRequestsTest.counter += 1
        self.n = LateRequestsTest.counter
        self.table = f"t_{self.n}"
        self.sync = f"late_{self.n}"
        cluster.sql(f"""
            create table {self.table} (id int primary key, v text);
            create server s_{self.n} foreign data wrapper revetl
              options (type 'webhook', url '{mock.url}/in/{self.n}', {SERVER_OPTIONS});
            select revetl.create_sync('{self.sync}', 'public.{self.table}', 's_{self.n}', array['id'],
                                      mode => 'mirror', map => '{{"v": "v"}}');
        """)
        self.shadow = cluster.sql(f"select shadow_table from revetl.syncs where name = '{self.sync}'")

    def run_sync(self):
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.sync}', wait => true)"))
        status = cluster.sql(f"select status from revetl.sync_runs where id = {run_id}")
        self.assertIn(status, ("succeeded", "partial"), f"run {run_id}")
        return run_id

    def run_counts(self, run_id):
        return cluster.rows(f"select rows_added, rows_changed, rows_removed, requests, retries "
                            f"from revetl.sync_runs where id = {run_id}")[0]

    def model(self):
        return {key(id=int(i)): {"v": v} for i, v in cluster.rows(f"select id, v from {self.table}")}

    def wait_settled(self):
        """Until every pending re-verification is due (no fixed sleep)."""
        wait_for(lambda: cluster.sql(f"select count(*) from revetl.{self.shadow} "
                                     f"where verify_after > now()") == "0",
                 timeout=30, what="the settle time to pass")

    def converge(self):
        """Runs until nothing is planned and no verification is pending."""
        self.wait_settled()
        self.run_sync()
        self.assertEqual(cluster.sql(f"select count(*) from revetl.{self.shadow} "
                                     f"where verify_after is not null or removed"), "0")
        self.assertEqual(mock.records(), self.model())

    def both_receivers(self, scenario):
        for dedupe in (False, True):
            with self.subTest(dedupe=dedupe):
                self.setUp()
                mock.configure(dedupe=dedupe)
                scenario()

    # -----------------------------------------------------------------------
    def test_a_late_upsert_does_not_outlive_a_delete(self):
        def scenario():
            cluster.sql(f"insert into {self.table} values (1, 'A'), (2, 'x')")
            self.run_sync()
            cluster.sql(f"update {self.table} set v = 'B' where id = 1")
            mock.configure(faults=[{"action": "hold"}])
            self.run_sync()  # the first attempt hangs; its retry is applied
            self.assertEqual(cluster.sql(f"select verify_after is not null from revetl.{self.shadow} "
                                         f"where key = '{{\"id\": 1}}'"), "t")
            cluster.sql(f"delete from {self.table} where id = 1")
            self.run_sync()  # the delete is applied ...
            self.assertNotIn(key(id=1), mock.records())
            # ... and its key keeps a tombstone until the settle time has passed
            self.assertEqual(cluster.sql(f"select removed from revetl.{self.shadow} "
                                         f"where key = '{{\"id\": 1}}'"), "t")
            self.assertEqual(mock.release(), 1)  # now the hung upsert lands
            if not mock.configure()["dedupe"]:
                self.assertEqual(mock.records()[key(id=1)], {"v": "B"})
            self.converge()
            self.assertNotIn(key(id=1), mock.records())
        self.both_receivers(scenario)

    def test_a_late_delete_does_not_outlive_a_re_insert(self):
        def scenario():
            cluster.sql(f"insert into {self.table} values (1, 'A'), (2, 'x')")
            self.run_sync()
            cluster.sql(f"delete from {self.table} where id = 1")
            mock.configure(faults=[{"action": "hold"}])
            self.run_sync()  # the delete hangs; its retry is applied
            self.assertEqual(cluster.sql(f"select removed and verify_after is not null "
                                         f"from revetl.{self.shadow} where key = '{{\"id\": 1}}'"), "t")
            cluster.sql(f"insert into {self.table} values (1, 'C')")
            run = self.run_sync()  # the key comes back: an add, re-verified later
            self.assertEqual(self.run_counts(run)[:3], ["1", "0", "0"])
            self.assertEqual(mock.records()[key(id=1)], {"v": "C"})
            self.assertEqual(mock.release(), 1)  # now the hung delete lands
            self.converge()
            self.assertEqual(mock.records()[key(id=1)], {"v": "C"})
        self.both_receivers(scenario)

    def test_a_re_insert_answered_after_the_settle_time_is_still_verified(self):
        # The re-insert is applied at once but answered (and so recorded)
        # only after verify_after: the late delete may land between the two,
        # so recording it must not end the wait. (Ended by the record's
        # time, the record stayed missing: the key was never sent again.)
        def scenario():
            cluster.sql(f"alter server s_{self.n} options (set timeout '4s')")
            cluster.sql(f"insert into {self.table} values (1, 'A'), (2, 'x')")
            self.run_sync()
            cluster.sql(f"delete from {self.table} where id = 1")
            mock.configure(faults=[{"action": "hold"}])
            self.run_sync()  # the delete hangs; its retry is applied
            settle_end = cluster.sql(f"select verify_after from revetl.{self.shadow} "
                                     f"where key = '{{\"id\": 1}}' and removed")
            self.assertNotEqual(settle_end, "")
            cluster.sql(f"insert into {self.table} values (1, 'C')")
            # Applied at once, answered 3 s later: past the 2 s settle time.
            mock.configure(faults=[{"action": "pass", "answer_delay_ms": 3000}])
            run = int(cluster.sql(f"select revetl.run_sync('{self.sync}')"))
            wait_for(lambda: mock.records().get(key(id=1)) == {"v": "C"}, timeout=30, what="the re-insert")
            self.assertEqual(mock.release(), 1)  # the hung delete lands after it
            if not mock.configure()["dedupe"]:  # (its key was applied by its retry)
                self.assertNotIn(key(id=1), mock.records())
            wait_for(lambda: cluster.sql(f"select status from revetl.sync_runs where id = {run}")
                     not in ("queued", "running"), timeout=60, what="the slow run to end")
            self.assertEqual(cluster.sql(f"select finished_at > '{settle_end}' from revetl.sync_runs "
                                         f"where id = {run}"), "t")
            self.assertEqual(cluster.sql(f"select verify_after = '{settle_end}' from revetl.{self.shadow} "
                                         f"where key = '{{\"id\": 1}}'"), "t")
            self.converge()
            self.assertEqual(mock.records()[key(id=1)], {"v": "C"})
        self.both_receivers(scenario)

    def test_a_killed_run_counts_every_request_it_made(self):
        # SIGKILL: no Finish, and the crash restart resets shared memory. The
        # counts after the last commit come from the file the run kept them in.
        cluster.sql(f"insert into {self.table} select g, 'v' || g from generate_series(1, 60) g")
        mock.configure(delay_ms=300)
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.sync}')"))
        wait_for(lambda: len(mock.requests()) >= 3, timeout=30, what="a few requests")
        restarts = cluster.log_text().count("reinitializing")
        pid = cluster.sql("select pid from pg_stat_activity where backend_type = 'revetl run'")
        os.kill(int(pid), signal.SIGKILL)
        wait_for(lambda: cluster.log_text().count("reinitializing") > restarts, timeout=30,
                 what="the crash restart")
        mock.configure(delay_ms=0)

        def recorded():
            _, _, rc = cluster.psql("select 1", check=False)
            if rc != 0:
                return None
            row = cluster.rows(f"select status, requests from revetl.sync_runs where id = {run_id}")
            return row and row[0][0] == "failed" and row[0]
        requests = int(wait_for(recorded, timeout=60, what="the killed run to be recovered")[1])

        def seen():
            return sum(1 for q in mock.requests() if q["body"] and q["body"]["run_id"] == run_id)
        wait_for(lambda: seen() == requests, timeout=10,
                 what=f"the endpoint to have seen the {requests} requests the killed run counted")
        self.assertGreaterEqual(requests, 3)
        cluster.wait_for_worker()
        wait_for(lambda: mock.records() == self.model(), timeout=60, what="the retry to deliver the rest")
        wait_for(lambda: cluster.sql(f"select count(*) from revetl.sync_runs where sync_name = '{self.sync}' "
                                     f"and status in ('queued', 'running')") == "0", timeout=60,
                 what="the retry to finish")

    def test_idempotency_keys_are_unique_per_change(self):
        # A receiver that skips keys it applied before (as docs/destinations.md
        # advises) must apply A -> B -> A, and delete, re-insert, delete,
        # re-insert: content that comes back is a new change.
        mock.configure(dedupe=True)
        cluster.sql(f"insert into {self.table} values (1, 'A'), (2, 'x')")
        self.run_sync()
        keys = []
        for value in ("B", "A"):
            cluster.sql(f"update {self.table} set v = '{value}' where id = 1")
            self.run_sync()
            self.assertEqual(mock.records(), self.model())
        for _ in range(2):
            cluster.sql(f"delete from {self.table} where id = 2")
            self.run_sync()
            self.assertEqual(mock.records(), self.model())
            cluster.sql(f"insert into {self.table} values (2, 'x')")
            self.run_sync()
            self.assertEqual(mock.records(), self.model())
        keys = [r["idempotency_key"] for q in mock.requests() for r in q["body"]["records"]]
        self.assertEqual(len(keys), len(set(keys)), "an idempotency key was used for two changes")
        self.assertEqual(mock.duplicates(), 0)

    def test_a_retry_keeps_its_idempotency_key(self):
        cluster.sql(f"insert into {self.table} values (1, 'A')")
        mock.configure(faults=[{"status": 503, "apply": True}])
        run = self.run_sync()
        sent = [r["idempotency_key"] for q in mock.requests() for r in q["body"]["records"]]
        self.assertEqual(len(sent), 2)
        self.assertEqual(sent[0], sent[1], "a retry of one change must carry the same key")
        self.assertEqual(self.run_counts(run)[3:], ["2", "1"])
        self.assertEqual(mock.duplicates(), 1)

    def test_a_reset_after_the_request_was_read_leaves_the_row_uncertain(self):
        # The second request's connection is reset after the mock applied it:
        # whoever sends it again (libcurl on a fresh connection, or revetl),
        # the run counts both copies and re-verifies the row later.
        cluster.sql(f"insert into {self.table} values (1, 'A'), (2, 'B'), (3, 'C')")
        mock.configure(dedupe=False, faults=[{"action": "pass"}, {"action": "reset", "apply": True}])
        run = self.run_sync()
        journal = [q for q in mock.requests() if q["body"]]
        self.assertEqual(len(journal), 4)
        self.assertEqual(self.run_counts(run)[3:], ["4", "1"])
        second = journal[1]["body"]["records"][0]["key"]
        uncertain = cluster.rows(f"select key from revetl.{self.shadow} where verify_after is not null")
        self.assertEqual(uncertain, [[json.dumps(second)]])
        self.converge()

    def test_rows_a_failed_run_never_sent_stay_unknown_and_count_as_adds(self):
        # The first request is refused as unauthorised (the run stops at
        # once): only that request's row may have reached the destination.
        cluster.sql(f"insert into {self.table} select g, 'v' || g from generate_series(1, 5) g")
        mock.configure(reject_all_status=401)
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.sync}')"))
        cluster.wait_for_run(run_id)
        self.assertEqual(cluster.sql(f"select status, requests from revetl.sync_runs where id = {run_id}"),
                         "failed|1")
        self.assertEqual(cluster.rows(f"select key, removed from revetl.{self.shadow}"), [['{"id": 1}', "t"]])
        mock.configure(reject_all_status=None)
        run = self.run_sync()
        # Every row is new to the destination as far as revetl knows: adds,
        # the one that may have arrived included.
        self.assertEqual(self.run_counts(run)[:3], ["5", "0", "0"])
        self.assertEqual(mock.records(), self.model())

    def test_a_run_that_would_remove_too_much_sends_nothing(self):
        # A model rebuilt (nearly) empty: the default guard (10% of what was
        # delivered, at least 100) stops the run before anything is sent.
        cluster.sql(f"insert into {self.table} select g, 'v' || g from generate_series(1, 300) g")
        cluster.sql(f"select * from revetl.execute('ALTER SYNC {self.sync} SET (batch_size = 100)')")
        self.run_sync()
        mock.clear_requests()
        cluster.sql(f"delete from {self.table} where id > 50")
        _, err, rc = cluster.psql(f"select revetl.run_sync('{self.sync}', wait => true)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("the run would remove 250 of the 300 records delivered, more than the sync's max_removals "
                      "(the default, 10% of the 300 records delivered and at least 100); nothing was sent", err)
        self.assertIn(f"revetl.run_sync('{self.sync}', allow_removals => true)", err)
        self.assertEqual(mock.requests(), [])
        self.assertEqual(len(mock.records()), 300)
        self.assertEqual(cluster.sql(f"select count(*) from revetl.{self.shadow}"), "300")
        # A limit of the sync's own lets it through ...
        cluster.sql(f"select * from revetl.execute($$ALTER SYNC {self.sync} SET (max_removals = '90%')$$)")
        run = self.run_sync()
        self.assertEqual(self.run_counts(run)[2], "250")
        self.assertEqual(mock.records(), self.model())
        # ... and so does allow_removals, past a count.
        cluster.sql(f"select * from revetl.execute($$ALTER SYNC {self.sync} SET (max_removals = 10)$$)")
        cluster.sql(f"delete from {self.table} where id > 30")
        _, err, rc = cluster.psql(f"select revetl.run_sync('{self.sync}', wait => true)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("the run would remove 20 of the 50 records delivered, more than the sync's max_removals "
                      "(10 rows)", err)
        run = int(cluster.sql(f"select revetl.run_sync('{self.sync}', wait => true, allow_removals => true)"))
        self.assertEqual(self.run_counts(run)[2], "20")
        self.assertEqual(cluster.sql(f"select allow_removals from revetl.sync_runs where id = {run}"), "t")
        self.assertEqual(mock.records(), self.model())

    def test_resync_sends_every_row_again_with_new_keys(self):
        mock.configure(dedupe=True)
        cluster.sql(f"insert into {self.table} select g, 'v' || g from generate_series(1, 30) g")
        self.run_sync()
        first = {r["idempotency_key"] for q in mock.requests() for r in q["body"]["records"]}
        mock.clear_requests()
        self.assertEqual(cluster.sql(f"select count(*) from revetl.sync_runs r join revetl.syncs s "
                                     f"on s.id = r.sync_id where s.name = '{self.sync}' and r.resync"), "0")
        run = int(cluster.sql(f"select revetl.run_sync('{self.sync}', wait => true, resync => true)"))
        self.assertEqual(cluster.rows(f"select rows_added, rows_changed, rows_delivered, resync, plan_kind "
                                      f"from revetl.sync_runs where id = {run}"), [["0", "30", "30", "t", "full"]])
        again = [r["idempotency_key"] for q in mock.requests() for r in q["body"]["records"]]
        self.assertEqual(len(again), 30)
        self.assertFalse(first & set(again), "a resync must not reuse the keys of the first delivery")
        # A deduplicating receiver applied every one of them.
        self.assertEqual(set(mock.record_writes().values()), {2})
        # MIRROR still knows what to remove, and a normal run sends nothing.
        mock.clear_requests()
        cluster.sql(f"delete from {self.table} where id = 3")
        self.run_sync()
        sent = [(r["op"], r["key"]["id"]) for q in mock.requests() for r in q["body"]["records"]]
        self.assertEqual(sent, [("delete", 3)])
        self.assertEqual(mock.records(), self.model())

    def test_resync_is_refused_where_it_cannot_work(self):
        _, err, rc = cluster.psql(f"select revetl.run_sync('{self.sync}', max_rows => 5, resync => true)",
                                  check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("max_rows cannot be combined with resync", err)
        cluster.sql(f"select * from revetl.execute('ALTER SYNC {self.sync} SET MODE INSERT')")
        _, err, rc = cluster.psql(f"select revetl.run_sync('{self.sync}', resync => true)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn(f'sync "{self.sync}" cannot be resynced: it is in INSERT mode', err)
        self.assertIn("SET MODE UPSERT", err)

    def test_a_stopped_run_counts_every_request_it_made(self):
        cluster.sql(f"insert into {self.table} select g, 'v' from generate_series(1, 40) g")
        mock.configure(delay_ms=150)
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.sync}')"))
        wait_for(lambda: len(mock.requests()) >= 4, timeout=30, what="a few requests")
        cluster.sql("select pg_terminate_backend(pid) from pg_stat_activity "
                    "where backend_type = 'revetl run'")
        cluster.wait_for_run(run_id)
        mock.configure(delay_ms=0)
        status, requests = cluster.rows(f"select status, requests from revetl.sync_runs where id = {run_id}")[0]
        self.assertEqual(status, "interrupted")
        # Every request it counted reached the endpoint, the one still in
        # flight when it stopped included (the mock journals it after its delay).
        def seen():
            return sum(1 for q in mock.requests() if q["body"] and q["body"]["run_id"] == run_id)
        wait_for(lambda: seen() == int(requests), timeout=10,
                 what=f"the endpoint to have seen the {requests} requests the run counted")
        self.assertGreaterEqual(int(requests), 4)
        # The retry queued for it delivers the rest; nothing is lost.
        wait_for(lambda: mock.records() == self.model(), timeout=60, what="the retry to deliver the rest")
        wait_for(lambda: cluster.sql(f"select count(*) from revetl.sync_runs r join revetl.syncs s "
                                     f"on s.id = r.sync_id where s.name = '{self.sync}' "
                                     f"and r.status in ('queued', 'running')") == "0",
                 timeout=60, what="the retry to finish")


if __name__ == "__main__":
    unittest.main()

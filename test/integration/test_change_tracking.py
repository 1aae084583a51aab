"""Change tracking: capture triggers, incremental runs, ON CHANGE latency,
dbt-style rebuilds, and concurrent writers during runs."""

import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, key, wait_for  # noqa: E402

cluster = None
mock = None


def setUpModule():
    global cluster, mock
    cluster = Cluster(name="revetl-tracking").start()
    mock = MockWebhook()
    cluster.sql(f"""
        create extension revetl;
        create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/t');
    """)
    cluster.wait_for_worker()


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


def last_run(sync):
    rows = cluster.rows(f"select id, status, trigger, plan_kind, rows_added, rows_changed, rows_removed, "
                        f"rows_delivered from revetl.sync_runs where sync_name = '{sync}' order by id desc limit 1")
    return rows[0] if rows else None


def settled(sync):
    return cluster.sql(f"select count(*) from revetl.sync_runs where sync_name = '{sync}' "
                       f"and status in ('queued', 'running')") == "0"


class ChangeTrackingTest(unittest.TestCase):
    n = 0

    def setUp(self):
        mock.reset()
        ChangeTrackingTest.n += 1
        self.t = f"leads_{ChangeTrackingTest.n}"
        self.s = f"live_{ChangeTrackingTest.n}"
        cluster.sql(f"create table {self.t} (id int primary key, email text, score int, note text); "
                    f"insert into {self.t} select g, 'u' || g || '@x.com', g, 'n' from generate_series(1, 50) g")

    def tearDown(self):
        wait_for(lambda: settled(self.s), timeout=30, what="runs to settle")
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")

    def model(self):
        return {key(id=int(i)): {"email": e, "score": int(sc)}
                for i, e, sc in cluster.rows(f"select id, email, score from {self.t}")}

    def create(self, schedule="SCHEDULE ON CHANGE", mode="MIRROR"):
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO hooks KEY (id) "
                    f"MODE {mode} MAP (email AS email, score AS score) {schedule}$$)")

    def sent_keys(self, since=0):
        return sorted(rec["key"]["id"] for req in mock.requests()[since:] for rec in req["body"]["records"])

    def test_on_change_delivers_each_commit_incrementally(self):
        self.create()
        # The first change starts a full diff (the triggers are new): everything goes.
        cluster.sql(f"update {self.t} set score = score + 1 where id = 1")
        wait_for(lambda: len(mock.records()) == 50, timeout=30, what="first full run")
        wait_for(lambda: settled(self.s), timeout=30, what="first run to end")
        first_runs = cluster.rows(f"select trigger, plan_kind, rows_added, rows_changed from revetl.sync_runs "
                                  f"where sync_name = '{self.s}' order by id")
        self.assertEqual(first_runs[0][:2], ["on change", "full"], first_runs)
        self.assertEqual(mock.records(), self.model())

        # Later commits are planned from the captured keys only.
        seen = len(mock.requests())
        start = time.monotonic()
        cluster.sql(f"update {self.t} set score = 1000 where id = 7")
        wait_for(lambda: mock.records().get(key(id=7), {}).get("score") == 1000, timeout=10,
                 interval=0.01, what="change to arrive")
        latency = time.monotonic() - start
        print(f"\n  commit-to-destination latency: {latency * 1000:.0f} ms", file=sys.stderr)
        wait_for(lambda: settled(self.s), timeout=30, what="run to end")
        run = last_run(self.s)
        self.assertEqual(run[1:4], ["succeeded", "on change", "incremental"])
        self.assertEqual(self.sent_keys(seen), [7])

        # A change to an unmapped column is captured but sends nothing.
        seen = len(mock.requests())
        cluster.sql(f"update {self.t} set note = 'unmapped' where id = 8")
        wait_for(lambda: last_run(self.s)[0] != run[0] and settled(self.s), timeout=30, what="run after note change")
        self.assertEqual(last_run(self.s)[4:8], ["0", "0", "0", "0"])
        self.assertEqual(self.sent_keys(seen), [])

        # Inserts, deletes and key updates in one transaction.
        seen = len(mock.requests())
        cluster.sql(f"begin; insert into {self.t} values (100, 'new@x.com', 5, 'n'); "
                    f"delete from {self.t} where id = 2; update {self.t} set id = 200 where id = 3; commit")
        wait_for(lambda: mock.records() == self.model(), timeout=15, what="destination to match the model")
        self.assertEqual(self.sent_keys(seen), [2, 3, 100, 200])

    def test_rolled_back_changes_start_no_run(self):
        self.create()
        cluster.sql(f"update {self.t} set score = 0 where id = 1")
        wait_for(lambda: settled(self.s) and last_run(self.s) is not None, timeout=30, what="first run")
        runs = cluster.sql(f"select count(*) from revetl.sync_runs where sync_name = '{self.s}'")
        cluster.sql(f"begin; update {self.t} set score = -1; rollback")
        self.assertEqual(cluster.sql(f"select count(*) from revetl.sync_runs where sync_name = '{self.s}'"), runs)
        self.assertEqual(cluster.sql(f"select count(*) from revetl.captured_changes c join revetl.syncs s "
                                     f"on s.id = c.sync_id where s.name = '{self.s}'"), "0")

    def test_refused_row_is_captured_again_and_retried(self):
        self.create()
        cluster.sql(f"update {self.t} set score = score where id = 1")
        wait_for(lambda: len(mock.records()) == 50 and settled(self.s), timeout=30, what="first run")
        mock.configure(reject=[{"field": "email", "equals": "bad@x.com", "reason": "invalid"}])
        cluster.sql(f"update {self.t} set email = 'bad@x.com' where id = 9")
        wait_for(lambda: settled(self.s) and last_run(self.s)[1] == "partial", timeout=30, what="refused run")
        self.assertEqual(cluster.sql(f"select count(*) from revetl.captured_changes c join revetl.syncs s on "
                                     f"s.id = c.sync_id where s.name = '{self.s}'"), "1")
        mock.configure(reject=[])
        seen = len(mock.requests())
        cluster.sql(f"update {self.t} set score = score + 1 where id = 10")  # any commit wakes the sync
        wait_for(lambda: mock.records() == self.model(), timeout=15, what="retry of the refused row")
        self.assertEqual(self.sent_keys(seen), [9, 10])

    def test_on_change_retries_a_failed_run_on_its_own_with_backoff(self):
        # No new change is needed: rows a failed run left wait
        # revetl.change_retry_interval, doubling per further failure.
        cluster.sql(f"create server flaky foreign data wrapper revetl options (type 'webhook', "
                    f"url '{mock.url}/flaky', max_attempts '1')")
        cluster.sql("alter system set revetl.change_retry_interval = 1; select pg_reload_conf()")
        try:
            cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO flaky KEY (id) "
                        f"MODE MIRROR MAP (email AS email, score AS score) SCHEDULE ON CHANGE$$)")
            cluster.sql(f"update {self.t} set score = score where id = 1")
            wait_for(lambda: len(mock.records()) == 50 and settled(self.s), timeout=30, what="first run")

            mock.configure(reject_all_status=503)
            cluster.sql(f"update {self.t} set score = 7000 where id = 7")
            retries = f"from revetl.sync_runs where sync_name = '{self.s}' and trigger = 'retry'"
            wait_for(lambda: cluster.sql(f"select count(*) {retries} and status = 'failed'") == "2",
                     timeout=30, what="two failed retries")
            # Each retry started at least the (doubling) interval after the run before it ended.
            runs = cluster.rows(f"select trigger, status, extract(epoch from started_at - lag(finished_at) over "
                                f"(order by id)) from revetl.sync_runs where sync_name = '{self.s}' order by id")
            self.assertEqual([r[:2] for r in runs[1:4]],
                             [["on change", "failed"], ["retry", "failed"], ["retry", "failed"]], runs)
            self.assertGreaterEqual(float(runs[2][2]), 1.0, runs)
            self.assertGreaterEqual(float(runs[3][2]), 2.0, runs)

            # The destination comes back; the table stays quiet.
            mock.configure(reject_all_status=None)
            wait_for(lambda: mock.records().get(key(id=7), {}).get("score") == 7000, timeout=30,
                     what="the retry to deliver the change")
            wait_for(lambda: settled(self.s), timeout=30, what="the retry to end")
            self.assertEqual(last_run(self.s)[1:3], ["succeeded", "retry"])
            self.assertEqual(mock.records(), self.model())
            # Nothing is left to retry, so the timer has nothing to start.
            self.assertEqual(cluster.sql(f"select count(*) from revetl.captured_changes c join revetl.syncs s "
                                         f"on s.id = c.sync_id where s.name = '{self.s}'"), "0")
        finally:
            cluster.sql("alter system reset revetl.change_retry_interval; select pg_reload_conf()")
            mock.configure(reject_all_status=None)
            wait_for(lambda: settled(self.s), timeout=30, what="runs to settle")
            cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true); drop server flaky")

    def test_next_retry_at_shows_the_retry_and_manual_runs_do_not_push_it_back(self):
        cluster.sql(f"create server flaky2 foreign data wrapper revetl options (type 'webhook', "
                    f"url '{mock.url}/flaky2', max_attempts '1')")
        try:
            cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO flaky2 KEY (id) "
                        f"MAP (email AS email, score AS score) SCHEDULE ON CHANGE$$)")
            cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)")
            status = f"select next_retry_at from revetl.sync_status where name = '{self.s}'"
            self.assertEqual(cluster.sql(status), "")
            mock.configure(reject_all_status=503)
            cluster.sql(f"update {self.t} set score = 7000 where id = 7")
            wait_for(lambda: cluster.sql(status) != "", timeout=30, what="the retry to be scheduled")
            # change_retry_interval (60 s) after the failed ON CHANGE run ended
            failed = (f"select extract(epoch from (select next_retry_at from revetl.sync_status "
                      f"where name = '{self.s}') - max(finished_at)) from revetl.sync_runs "
                      f"where sync_name = '{self.s}' and trigger = 'on change' and status = 'failed'")
            self.assertEqual(float(cluster.sql(failed)), 60.0)
            due = cluster.sql(status)
            # Trying by hand while the destination is still down does not
            # push the automatic retry back.
            _, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
            self.assertNotEqual(rc, 0, err)
            self.assertEqual(cluster.sql(status), due)
            # Fixed: a run by hand retries at once, and nothing is left to retry.
            mock.configure(reject_all_status=None)
            cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)")
            self.assertEqual(mock.records().get(key(id=7), {}).get("score"), 7000)
            self.assertEqual(cluster.sql(status), "")
        finally:
            mock.configure(reject_all_status=None)
            wait_for(lambda: settled(self.s), timeout=30, what="runs to settle")
            cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true); drop server flaky2")

    def test_dbt_table_rebuild_in_one_transaction_with_post_hook(self):
        self.create(schedule="SCHEDULE MANUAL WITH (track_changes = true)")
        cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)")
        self.assertEqual(len(mock.records()), 50)
        seen = len(mock.requests())

        def rebuild(select):
            # What dbt's table materialization runs, with a post-hook inside.
            cluster.sql(f"""
                begin;
                create table {self.t}__dbt_tmp as {select};
                alter table {self.t} rename to {self.t}__dbt_backup;
                alter table {self.t}__dbt_tmp rename to {self.t};
                drop table {self.t}__dbt_backup cascade;
                select revetl.run_sync('{self.s}');
                commit;
            """)

        rebuild(f"select * from {self.t}")
        wait_for(lambda: settled(self.s) and last_run(self.s)[1] == "succeeded", timeout=30, what="post-hook run")
        self.assertEqual(last_run(self.s)[3], "full")
        self.assertEqual(self.sent_keys(seen), [], "an identical rebuild resent rows")
        triggers = cluster.sql(f"select count(*) from pg_trigger where tgrelid = '{self.t}'::regclass "
                               f"and tgname like 'revetl_capture_%'")
        self.assertEqual(triggers, "4")

        rebuild(f"select id, email, case when id <= 3 then score * 10 else score end as score, note "
                f"from {self.t} where id <> 50")
        wait_for(lambda: settled(self.s) and mock.records() == self.model(), timeout=30, what="changed rebuild")
        self.assertEqual(self.sent_keys(seen), [1, 2, 3, 50])

        # The new table's triggers capture changes for incremental runs.
        cluster.sql(f"insert into {self.t} values (300, 'late@x.com', 1, 'n')")
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)"))
        self.assertEqual(cluster.rows(f"select plan_kind, rows_added from revetl.sync_runs where id = {run_id}"),
                         [["incremental", "1"]])

    def test_dbt_incremental_merge_is_captured(self):
        self.create(schedule="SCHEDULE MANUAL WITH (track_changes = true)")
        cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)")
        seen = len(mock.requests())
        cluster.sql(f"""
            merge into {self.t} t using (values (5, 'merged@x.com', 55), (400, 'm@x.com', 1)) as v(id, email, score)
              on t.id = v.id
            when matched then update set email = v.email, score = v.score
            when not matched then insert values (v.id, v.email, v.score, 'n');
            delete from {self.t} where id = 6;
        """)
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)"))
        self.assertEqual(cluster.rows(f"select plan_kind, rows_added, rows_changed, rows_removed "
                                      f"from revetl.sync_runs where id = {run_id}"),
                         [["incremental", "1", "1", "1"]])
        self.assertEqual(self.sent_keys(seen), [5, 6, 400])
        self.assertEqual(mock.records(), self.model())

    def test_truncate_means_a_full_diff(self):
        self.create(schedule="SCHEDULE MANUAL WITH (track_changes = true)")
        cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)")
        cluster.sql(f"truncate {self.t}; insert into {self.t} values (1, 'u1@x.com', 1, 'n')")
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)"))
        self.assertEqual(cluster.rows(f"select plan_kind, rows_removed from revetl.sync_runs where id = {run_id}"),
                         [["full", "49"]])
        self.assertEqual(mock.records(), self.model())

    def test_full_diff_on_request(self):
        self.create(schedule="SCHEDULE MANUAL WITH (track_changes = true)")
        cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)")
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.s}', wait => true, full => true)"))
        self.assertEqual(cluster.sql(f"select plan_kind from revetl.sync_runs where id = {run_id}"), "full")
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.s}', wait => true)"))
        self.assertEqual(cluster.sql(f"select plan_kind from revetl.sync_runs where id = {run_id}"), "incremental")

    def test_concurrent_writers_lose_nothing_and_count_nothing_twice(self):
        mock.configure(delay_ms=20)
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO hooks KEY (id) "
                    f"MODE MIRROR MAP (email AS email, score AS score) SCHEDULE ON CHANGE "
                    f"WITH (batch_size = 5)$$)")
        stop = threading.Event()
        errors = []

        def writer(offset):
            try:
                for i in range(60):
                    if stop.is_set():
                        return
                    k = 1 + (i * 7 + offset) % 60
                    cluster.sql(f"insert into {self.t} values ({k}, 'w{offset}-{i}@x.com', {i}, 'n') "
                                f"on conflict (id) do update set score = excluded.score, email = excluded.email")
                    if i % 10 == 0:
                        cluster.sql(f"delete from {self.t} where id = {1 + (i + offset) % 60}")
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(o,)) for o in (0, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        stop.set()
        self.assertEqual(errors, [])
        mock.configure(delay_ms=0)
        # One last commit after the writers: the destination must end equal.
        cluster.sql(f"update {self.t} set note = 'final' where id = (select min(id) from {self.t})")
        try:
            wait_for(lambda: settled(self.s) and mock.records() == self.model(), timeout=60,
                     what="destination to equal the model")
        except TimeoutError:
            model, dest = self.model(), mock.records()
            diff = {k: (model.get(k), dest.get(k)) for k in set(model) | set(dest) if model.get(k) != dest.get(k)}
            runs = cluster.rows(f"select id, status, plan_kind, rows_added, rows_changed, rows_removed, "
                                f"rows_delivered, error from revetl.sync_runs where sync_name = '{self.s}' order by id")
            self.fail(f"destination differs: {diff}\nruns: {runs}")
        # Nothing was delivered twice for the same row version.
        self.assertEqual(mock.duplicates(), 0)
        overlap = cluster.sql(f"select count(*) from revetl.sync_runs a join revetl.sync_runs b "
                              f"on a.sync_id = b.sync_id and a.id < b.id "
                              f"where a.sync_name = '{self.s}' and b.started_at < a.finished_at")
        self.assertEqual(overlap, "0", "two runs of the sync overlapped")


if __name__ == "__main__":
    unittest.main()

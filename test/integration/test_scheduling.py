"""Schedules, sequences, concurrency, alerts, test runs, sync_status and
pruning: what the database's scheduler does on its own.

Waits are on conditions with timeouts; where a test must show that
something does NOT happen, it waits for the scheduler to have passed the
point where it would have happened (a later event it handles in order)."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, key, wait_for  # noqa: E402

cluster = None
mock = None
alerts = None


def setUpModule():
    global cluster, mock, alerts
    cluster = Cluster(name="revetl-scheduling", extra_conf="revetl.min_schedule_interval = 1\n").start()
    mock = MockWebhook()
    alerts = MockWebhook()
    cluster.sql(f"""
        create extension revetl;
        create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/w',
                                                                  max_attempts '1');
        create server slack foreign data wrapper revetl options (type 'webhook', url '{alerts.url}/slack');
    """)
    cluster.wait_for_worker()


def tearDownModule():
    for m in (mock, alerts):
        if m:
            m.stop()
    if cluster:
        cluster.destroy()


def runs(sync, trigger=None):
    where = f"sync_name = '{sync}'" + (f" and trigger = '{trigger}'" if trigger else "")
    return cluster.rows(f"select id, status, trigger, started_at, finished_at from revetl.sync_runs "
                        f"where {where} order by id")


class SchedulingTest(unittest.TestCase):
    n = 0

    def setUp(self):
        mock.reset()
        alerts.reset()
        SchedulingTest.n += 1
        self.t = f"model_{SchedulingTest.n}"
        cluster.sql(f"create table {self.t} (id int primary key, v text); "
                    f"insert into {self.t} select g, 'v' || g from generate_series(1, 3) g")

    def sync(self, name, extra=""):
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC {name} FROM {self.t} TO hooks KEY (id) {extra}$$)")

    def test_every_runs_repeatedly_and_pause_stops_it(self):
        self.sync("every_s", "SCHEDULE EVERY '1 second'")
        wait_for(lambda: len([r for r in runs("every_s", "schedule") if r[1] == "succeeded"]) >= 2, timeout=30,
                 what="two scheduled runs")
        cluster.sql("select * from revetl.execute('ALTER SYNC every_s PAUSE')")
        # The scheduler clears a paused sync's next run time on its next pass.
        wait_for(lambda: cluster.sql("select next_run_at is null from revetl.sync_state st join revetl.syncs s "
                                     "on s.id = st.sync_id where s.name = 'every_s'") == "t",
                 timeout=15, what="scheduler to see the pause")
        wait_for(lambda: all(r[1] not in ("queued", "running") for r in runs("every_s")), timeout=15,
                 what="runs in progress to end")
        count = len(runs("every_s"))
        # Another sync's run proves the scheduler went round at least once more.
        self.sync("marker")
        run_id = int(cluster.sql("select revetl.run_sync('marker', wait => true)"))
        self.assertEqual(cluster.wait_for_run(run_id), "succeeded")
        self.assertEqual(len(runs("every_s")), count)
        cluster.sql("select * from revetl.execute('DROP SYNC every_s, marker')")

    def test_runs_of_one_sync_never_overlap(self):
        mock.configure(delay_ms=300)
        self.sync("slow_every", "SCHEDULE EVERY '1 second' WITH (batch_size = 1)")
        cluster.sql(f"update {self.t} set v = v || '!'")
        wait_for(lambda: len([r for r in runs("slow_every") if r[1] == "succeeded"]) >= 3, timeout=60,
                 what="three runs")
        cluster.sql("select revetl.pause_sync('slow_every')")
        finished = [r for r in runs("slow_every") if r[3] and r[4]]
        spans = sorted((r[3], r[4]) for r in finished)
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            self.assertLessEqual(e1, s2, "two runs of one sync overlapped")
        queued = cluster.sql("select max(c) from (select count(*) c from revetl.sync_runs where sync_name = "
                             "'slow_every' and status = 'queued' group by sync_id) x")
        self.assertIn(queued, ("", "0", "1"))
        mock.configure(delay_ms=0)
        cluster.sql("select * from revetl.execute('DROP SYNC slow_every')")

    def test_cron_waits_for_its_next_minute(self):
        self.sync("cron_s", "SCHEDULE CRON '* * * * *'")
        wait_for(lambda: cluster.sql("select next_run_at is not null from revetl.sync_state st join revetl.syncs s "
                                     "on s.id = st.sync_id where s.name = 'cron_s'") == "t",
                 timeout=15, what="cron next run time")
        self.assertEqual(cluster.sql("select next_run_at = date_trunc('minute', now()) + interval '1 minute' "
                                     "or next_run_at = date_trunc('minute', now()) from revetl.sync_state st "
                                     "join revetl.syncs s on s.id = st.sync_id where s.name = 'cron_s'"), "t")
        self.assertEqual(cluster.sql("select to_char(next_run_at, 'SS') from revetl.sync_state st "
                                     "join revetl.syncs s on s.id = st.sync_id where s.name = 'cron_s'"), "00")
        cluster.sql("select * from revetl.execute('DROP SYNC cron_s')")

    def test_missed_slots_run_once_after_downtime(self):
        self.sync("hourly", "SCHEDULE EVERY '1 hour'")
        wait_for(lambda: len(runs("hourly", "schedule")) == 1, timeout=15, what="first scheduled run")
        wait_for(lambda: runs("hourly")[-1][1] == "succeeded", timeout=30, what="first run to finish")
        # The server is down for five hours' worth of slots.
        cluster.stop()
        cluster.start()
        cluster.sql("update revetl.sync_state set next_run_at = now() - interval '5 hours' "
                    "where sync_id = (select id from revetl.syncs where name = 'hourly')")
        cluster.sql("select revetl.run_sync('hourly', wait => true)")  # wakes the scheduler; a manual run
        wait_for(lambda: len(runs("hourly", "schedule")) == 2, timeout=30, what="catch-up run")
        wait_for(lambda: all(r[1] not in ("queued", "running") for r in runs("hourly")), timeout=30,
                 what="runs to end")
        self.assertEqual(len(runs("hourly", "schedule")), 2)
        self.assertEqual(cluster.sql("select next_run_at > now() and next_run_at <= now() + interval '1 hour' "
                                     "from revetl.sync_state st join revetl.syncs s on s.id = st.sync_id "
                                     "where s.name = 'hourly'"), "t")
        cluster.sql("select * from revetl.execute('DROP SYNC hourly')")

    def test_sequence_runs_after_success_and_stops_on_failure(self):
        cluster.sql(f"""
            create server down foreign data wrapper revetl
              options (type 'webhook', url '{mock.url}/down', max_attempts '1');
        """)
        self.sync("step_a")
        self.sync("step_b", "SCHEDULE AFTER step_a")
        self.sync("step_c", "SCHEDULE AFTER step_b")
        run_a = int(cluster.sql("select revetl.run_sync('step_a', wait => true)"))
        wait_for(lambda: runs("step_c") and runs("step_c")[-1][1] == "succeeded", timeout=30, what="chain a->b->c")
        self.assertEqual(runs("step_b")[-1][2], "after")
        self.assertEqual(runs("step_c")[-1][2], "after")
        self.assertLess(run_a, int(runs("step_b")[-1][0]))

        # step_a fails: the chain stops there.
        cluster.sql(f"update {self.t} set v = 'changed'")
        mock.configure(reject_all_status=None, faults=[{"status": 503}])
        _, err, rc = cluster.psql("select revetl.run_sync('step_a', wait => true)", check=False)
        self.assertNotEqual(rc, 0)
        b_count = len(runs("step_b"))
        self.sync("marker2")
        cluster.sql("select revetl.run_sync('marker2', wait => true)")
        self.assertEqual(len(runs("step_b")), b_count, "step_b ran after step_a failed")

        # Unless step_b is told to run after a failure too.
        cluster.sql("select * from revetl.execute($$ALTER SYNC step_b SET (run_after_failure = true)$$)")
        mock.configure(faults=[{"status": 503}])
        cluster.psql("select revetl.run_sync('step_a', wait => true)", check=False)
        wait_for(lambda: len(runs("step_b")) == b_count + 1, timeout=30, what="step_b after a failure")
        cluster.sql("select * from revetl.execute('DROP SYNC step_c, step_b, step_a, marker2'); drop server down")

    def test_slow_destination_does_not_starve_other_syncs(self):
        cluster.sql(f"""
            create server slow_hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/slow');
        """)
        # The mock delays every request, so make the slow sync's requests many.
        mock.configure(delay_ms=150)
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC slow_one FROM {self.t} TO slow_hooks KEY (id) "
                    f"WITH (batch_size = 1, max_in_flight = 1)$$)")
        self.sync("fast_one")
        slow = int(cluster.sql("select revetl.run_sync('slow_one')"))
        wait_for(lambda: cluster.sql(f"select status from revetl.sync_runs where id = {slow}") == "running",
                 timeout=15, what="slow run to start")
        fast = int(cluster.sql("select revetl.run_sync('fast_one')"))
        self.assertEqual(cluster.wait_for_run(fast), "succeeded")
        self.assertEqual(cluster.wait_for_run(slow), "succeeded")
        order = cluster.sql(f"select (select finished_at from revetl.sync_runs where id = {fast}) < "
                            f"(select finished_at from revetl.sync_runs where id = {slow})")
        self.assertEqual(order, "t", "the fast sync waited for the slow one")
        mock.configure(delay_ms=0)
        cluster.sql("select * from revetl.execute('DROP SYNC slow_one, fast_one'); drop server slow_hooks")

    def test_alerts_fire_once_per_state_change(self):
        self.sync("alerting", "WITH (alert_to = 'slack', alert_rejected_rows = 1)")
        mock.configure(faults=[{"status": 503}])
        cluster.psql("select revetl.run_sync('alerting', wait => true)", check=False)
        wait_for(lambda: len(alerts.requests()) == 1, timeout=15, what="failure alert")
        first = alerts.requests()[0]["body"]
        self.assertEqual(first["event"], "run_failed")
        self.assertIn('sync "alerting"', first["text"])
        self.assertIn("HTTP 503", first["text"])
        # Failing again is the same state: no second alert.
        mock.configure(faults=[{"status": 503}])
        cluster.psql("select revetl.run_sync('alerting', wait => true)", check=False)
        self.sync("marker3")
        cluster.sql("select revetl.run_sync('marker3', wait => true)")
        self.assertEqual(len(alerts.requests()), 1)
        # Rejected rows over the threshold: a new state, one alert.
        mock.configure(reject=[{"field": "v", "equals": "v2", "reason": "bad v"}])
        cluster.psql("select revetl.run_sync('alerting', wait => true)", check=False)
        wait_for(lambda: len(alerts.requests()) == 2, timeout=15, what="rejected rows alert")
        self.assertEqual(alerts.requests()[1]["body"]["event"], "rejected_rows")
        # Healthy again: one recovery alert.
        mock.configure(reject=[])
        cluster.sql("select revetl.run_sync('alerting', wait => true)")
        wait_for(lambda: len(alerts.requests()) == 3, timeout=15, what="recovery alert")
        self.assertEqual(alerts.requests()[2]["body"]["event"], "recovered")
        cluster.sql("select * from revetl.execute('DROP SYNC alerting, marker3')")

    def test_no_success_alert(self):
        self.sync("stale_one", "WITH (alert_to = 'slack', alert_no_success_for = '1min')")
        cluster.sql("update revetl.syncs set created_at = now() - interval '2 minutes' where name = 'stale_one'")
        mock.configure(faults=[{"status": 503}])
        cluster.psql("select revetl.run_sync('stale_one', wait => true)", check=False)
        wait_for(lambda: any(r["body"]["event"] == "no_success" for r in alerts.requests()), timeout=15,
                 what="no-success alert")
        self.assertEqual(cluster.sql("select health from revetl.sync_status where name = 'stale_one'"), "failing")
        cluster.sql("select * from revetl.execute('DROP SYNC stale_one')")

    def test_test_run_sends_at_most_max_rows(self):
        self.sync("trial")
        run_id = int(cluster.sql("select revetl.run_sync('trial', wait => true, max_rows => 2)"))
        row = cluster.rows(f"select trigger, row_limit, rows_added, rows_delivered from revetl.sync_runs "
                           f"where id = {run_id}")[0]
        self.assertEqual(row, ["test", "2", "2", "2"])
        self.assertEqual(sorted(mock.records()), [key(id=1), key(id=2)])
        run_id = int(cluster.sql("select revetl.run_sync('trial', wait => true)"))
        self.assertEqual(cluster.sql(f"select rows_added from revetl.sync_runs where id = {run_id}"), "1")
        self.assertEqual(len(mock.records()), 3)
        cluster.sql("select * from revetl.execute('DROP SYNC trial')")

    def test_sync_status_answers_at_a_glance(self):
        self.sync("status_ok")
        self.sync("status_partial")
        self.sync("status_failing")
        self.sync("status_paused")
        self.sync("status_new")
        cluster.sql("select revetl.run_sync('status_ok', wait => true)")
        mock.configure(reject=[{"field": "v", "equals": "v1", "reason": "no"}])
        cluster.psql("select revetl.run_sync('status_partial', wait => true)", check=False)
        mock.configure(reject=[], faults=[{"status": 500}])
        cluster.psql("select revetl.run_sync('status_failing', wait => true)", check=False)
        cluster.sql("select revetl.pause_sync('status_paused')")
        status = {r[0]: r[1:] for r in cluster.rows(
            "select name, health, last_status, rows_waiting, oldest_undelivered_at is not null "
            "from revetl.sync_status where name like 'status_%'")}
        self.assertEqual(status["status_ok"], ["healthy", "succeeded", "0", "f"])
        self.assertEqual(status["status_partial"], ["degraded", "partial", "1", "t"])
        self.assertEqual(status["status_failing"], ["failing", "failed", "3", "t"])
        self.assertEqual(status["status_paused"][0], "paused")
        self.assertEqual(status["status_new"][:2], ["never run", ""])
        cluster.sql("select * from revetl.execute('DROP SYNC status_ok, status_partial, status_failing, "
                    "status_paused, status_new')")

    def test_history_is_pruned_by_age(self):
        self.sync("pruned")
        for _ in range(3):
            cluster.sql("select revetl.run_sync('pruned', wait => true)")
        mock.configure(reject=[{"field": "v", "equals": "changed", "reason": "no"}])
        cluster.sql(f"update {self.t} set v = 'changed' where id = 1")
        cluster.psql("select revetl.run_sync('pruned', wait => true)", check=False)
        cluster.sql("update revetl.runs set finished_at = now() - interval '40 days' "
                    "where sync_name = 'pruned'; "
                    "update revetl.rejected_rows set rejected_at = now() - interval '40 days' "
                    "where sync_name = 'pruned'")
        self.assertEqual(cluster.rows("select * from revetl.prune_history()"), [["3", "1"]])
        self.assertEqual(cluster.rows("select * from revetl.prune_history()"), [["0", "0"]])
        # The latest finished run of the sync stays for sync_status.
        self.assertEqual(cluster.sql("select count(*) from revetl.sync_runs where sync_name = 'pruned'"), "1")
        self.assertEqual(cluster.sql("select count(*) from revetl.rejected_rows where sync_name = 'pruned'"), "0")
        mock.configure(reject=[])
        cluster.sql("select * from revetl.execute('DROP SYNC pruned')")

    def test_failed_run_log_line_names_database_and_sync(self):
        self.sync("logged")
        mock.configure(faults=[{"status": 500}])
        cluster.psql("select revetl.run_sync('logged', wait => true)", check=False)
        wait_for(lambda: 'sync "logged" in database "postgres" failed' in cluster.log_text(), timeout=10,
                 what="log line")
        cluster.sql("select * from revetl.execute('DROP SYNC logged')")


if __name__ == "__main__":
    unittest.main()

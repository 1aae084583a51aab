"""Back-pressure alerts (alert_backlog_age, alert_wal_retained) through the
sync's alert_to webhook: one alert when a tracked sync's backlog crosses a
limit, none more while it stays over, one `recovered` when it is back; for a
paused WAL-tracked sync whose keys queue in the database, for WAL held back
behind the slot by a long transaction, and for a trigger-tracked sync. And
the slot invalidated by max_slot_wal_keep_size: the scheduler says so in a
WARNING, replaces the slot, and the next run is a full diff that finds the
change the lost WAL held."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, OpenTransaction, key, wait_for  # noqa: E402

cluster = None
mock = None
alerts = None


def setUpModule():
    global cluster, mock, alerts
    cluster = Cluster(name="revetl-backpressure", extra_conf="wal_level = logical\n"
                                                             "max_replication_slots = 4\n"
                                                             "revetl.change_retry_interval = 1\n"
                                                             # WARNINGs in the log (the default
                                                             # test setting, log, hides them).
                                                             "log_min_messages = warning\n").start()
    mock = MockWebhook()
    alerts = MockWebhook()
    cluster.sql(f"""
        create extension revetl;
        create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/t',
            settle_time '1s');
        create server ops foreign data wrapper revetl options (type 'webhook', url '{alerts.url}/ops');
        create table filler (id bigint, pad text);
    """)
    cluster.wait_for_worker()


def tearDownModule():
    for m in (mock, alerts):
        if m:
            m.stop()
    if cluster:
        cluster.destroy()


def events(sync):
    return [r["body"]["event"] for r in alerts.requests() if r["body"].get("sync") == sync]


def bodies(sync, event):
    return [r["body"] for r in alerts.requests() if r["body"].get("sync") == sync and r["body"]["event"] == event]


def status(sync, columns):
    return cluster.rows(f"select {columns} from revetl.sync_status where name = '{sync}'")[0]


def slot_row():
    return cluster.sql("select wal_status from pg_replication_slots where slot_name = "
                       "'revetl_' || (select oid from pg_database where datname = current_database())")


class BackpressureAlertTest(unittest.TestCase):
    n = 0

    def setUp(self):
        alerts.reset()
        mock.reset()
        BackpressureAlertTest.n += 1
        self.t = f"bp_{BackpressureAlertTest.n}"
        self.s = f"bp_sync_{BackpressureAlertTest.n}"
        cluster.sql(f"create table {self.t} (id int primary key, score int not null); "
                    f"insert into {self.t} select g, 0 from generate_series(1, 20) g")

    def tearDown(self):
        cluster.sql(f"select * from revetl.execute($$DROP SYNC IF EXISTS {self.s}$$)")

    def model(self):
        return {key(id=int(i)): {"id": int(i), "score": int(sc)}
                for i, sc in cluster.rows(f"select id, score from {self.t}")}

    def create(self, options, track="'wal'"):
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO hooks KEY (id) "
                    f"MODE MIRROR SCHEDULE ON CHANGE WITH (track_changes = {track}, alert_to = 'ops', "
                    f"{options})$$)")
        if track == "'wal'":
            wait_for(lambda: slot_row() == "reserved", timeout=60, what="the worker to create the slot")
        cluster.sql(f"update {self.t} set score = 1 where id = 1")
        self.converge("the first run")

    def converge(self, what):
        wait_for(lambda: mock.records() == self.model() and cluster.sql(
            f"select count(*) from revetl.sync_runs where sync_name = '{self.s}' "
            f"and status in ('queued', 'running')") == "0", timeout=90, interval=0.2, what=what)
        self.assertEqual(mock.records(), self.model())

    def test_paused_wal_sync_backlog_age_alerts_once_and_recovers(self):
        self.create("alert_backlog_age = '2s'")
        self.assertEqual(events(self.s), [])
        cluster.sql(f"select revetl.pause_sync('{self.s}')")
        cluster.sql(f"update {self.t} set score = score + 1 where id <= 5")
        # The keys queue in the database (the slot moves on); their age
        # crosses the limit: one alert.
        wait_for(lambda: events(self.s) == ["backlog"], timeout=60, what="the backlog alert")
        body = bodies(self.s, "backlog")[0]
        self.assertIn(f'sync "{self.s}"', body["text"])
        self.assertIn("longer than its alert_backlog_age (2 s)", body["text"])
        self.assertIn("(the sync is paused)", body["text"])
        backlog, alert, health = status(self.s, "backlog_keys, backlog_alert, health")
        self.assertEqual((backlog, alert, health), ("5", "backlog age", "paused"))
        # Still over, and older every check: no second alert.
        wait_for(lambda: cluster.sql(f"select backlog_age > interval '5 s' from revetl.sync_status "
                                     f"where name = '{self.s}'") == "t", timeout=60, what="the backlog to age")
        self.assertEqual(events(self.s), ["backlog"])
        cluster.sql(f"select revetl.resume_sync('{self.s}')")
        cluster.sql(f"update {self.t} set score = score + 1 where id = 6")
        self.converge("the backlog to drain")
        wait_for(lambda: events(self.s) == ["backlog", "recovered"], timeout=60, what="the recovery alert")
        self.assertEqual(status(self.s, "backlog_keys, coalesce(backlog_alert, 'none'), health"),
                         ["0", "none", "healthy"])

    def test_wal_held_back_alerts_and_recovers(self):
        self.create("alert_wal_retained = '1MB', alert_backlog_age = 'none'")
        held = OpenTransaction(cluster, "insert into filler values (0, 'held')")
        try:
            # 4 MB of WAL for a table no sync tracks, behind the open transaction.
            cluster.sql("insert into filler select g, repeat(md5(g::text), 30) from generate_series(1, 4000) g")
            wait_for(lambda: events(self.s) == ["backlog"], timeout=60, what="the WAL retained alert")
            body = bodies(self.s, "backlog")[0]
            self.assertIn("has its database's WAL slot retaining", body["text"])
            self.assertIn("more than its alert_wal_retained (1048576 bytes)", body["text"])
            alert, retained = status(self.s, "backlog_alert, wal_retained_bytes")
            self.assertEqual(alert, "WAL retained")
            self.assertGreater(int(retained), 1048576)
        finally:
            held.commit()

        # Once the transaction ends the slot's restart point moves on (at the
        # next snapshot of running transactions, which a checkpoint logs).
        def recovered():
            cluster.sql("checkpoint")
            return events(self.s) == ["backlog", "recovered"]
        wait_for(recovered, timeout=90, interval=0.5, what="the recovery alert")
        self.assertEqual(status(self.s, "coalesce(backlog_alert, 'none')"), ["none"])

    def test_trigger_tracked_sync_failing_backlog(self):
        # A trigger-tracked ON CHANGE sync whose destination fails: its keys
        # wait for the retry; the run failure and the backlog are two alerts,
        # and one recovery once both are over.
        # (The retries come 1, 2, 4, 8 s after a failure; each failed run
        # queues the keys again, so the backlog's age crosses 3 s at the
        # third gap.)
        self.create("alert_backlog_age = '3s', max_attempts = 1", track="true")
        mock.configure(reject_all_status=503)
        cluster.sql(f"update {self.t} set score = score + 1 where id = 2")
        wait_for(lambda: "backlog" in events(self.s), timeout=90, what="the backlog alert")
        self.assertEqual(events(self.s), ["run_failed", "backlog"])
        self.assertEqual(status(self.s, "backlog_alert"), ["backlog age"])
        mock.configure(reject_all_status=None)
        self.converge("the retried keys")
        wait_for(lambda: events(self.s)[-1:] == ["recovered"], timeout=60, what="the recovery alert")
        self.assertEqual(events(self.s), ["run_failed", "backlog", "recovered"])


class SlotInvalidatedTest(unittest.TestCase):
    def tearDown(self):
        cluster.sql("alter system reset max_slot_wal_keep_size; select pg_reload_conf()")
        cluster.sql("select * from revetl.execute($$DROP SYNC IF EXISTS lost_sync$$)")

    def test_invalidated_slot_falls_back_to_a_full_diff(self):
        mock.reset()
        cluster.sql("create table lost_t (id int primary key, score int not null); "
                    "insert into lost_t select g, 0 from generate_series(1, 20) g")
        cluster.sql("select * from revetl.execute($$CREATE SYNC lost_sync FROM lost_t TO hooks KEY (id) "
                    "MODE MIRROR SCHEDULE ON CHANGE WITH (track_changes = 'wal')$$)")
        wait_for(lambda: slot_row() == "reserved", timeout=60, what="the worker to create the slot")
        old_slot = cluster.sql("select restart_lsn from pg_replication_slots where slot_name like 'revetl_%'")
        cluster.sql("update lost_t set score = 1 where id = 1")

        def model():
            return {key(id=int(i)): {"id": int(i), "score": int(sc)}
                    for i, sc in cluster.rows("select id, score from lost_t")}
        wait_for(lambda: mock.records() == model(), timeout=90, what="the first run")
        # A change the slot will never decode: its transaction starts before
        # the slot's restart point is pushed out of the kept WAL.
        held = OpenTransaction(cluster, "update lost_t set score = 999 where id = 3")
        try:
            cluster.sql("alter system set max_slot_wal_keep_size = '1MB'; select pg_reload_conf()")

            def lost():
                cluster.sql("insert into filler select g, 'x' from generate_series(1, 100) g; "
                            "select pg_switch_wal(); checkpoint")
                return slot_row() in ("lost", "")
            wait_for(lost, timeout=90, interval=0.5, what="the slot to be invalidated")
        finally:
            held.commit()
        cluster.sql("alter system reset max_slot_wal_keep_size; select pg_reload_conf()")
        # The scheduler says so once, replaces the slot, and the next run is a
        # full diff that finds the lost change.
        wait_for(lambda: "replication slot \"revetl_" in cluster.log_text()
                 and "was invalidated" in cluster.log_text(), timeout=60, what="the WARNING")
        log = cluster.log_text()
        self.assertTrue("WARNING:  revetl worker for database \"postgres\": replication slot" in log)
        self.assertTrue("The slot is created again, and then each WAL-tracked sync (\"lost_sync\") runs a full "
                        "diff, which finds them." in log)
        wait_for(lambda: slot_row() == "reserved", timeout=60, what="a new slot")
        self.assertNotEqual(cluster.sql("select restart_lsn from pg_replication_slots "
                                        "where slot_name like 'revetl_%'"), old_slot)
        wait_for(lambda: mock.records() == model(), timeout=90, what="the full diff to deliver the lost change")
        self.assertEqual(mock.records()[key(id=3)]["score"], 999)
        kinds = [r[0] for r in cluster.rows("select plan_kind from revetl.sync_runs where sync_name = 'lost_sync' "
                                            "and status = 'succeeded' order by id")]
        self.assertEqual(kinds[0], "full")
        self.assertIn("full", kinds[1:], "the run after the invalidation is a full diff")
        self.assertEqual(log.count("was invalidated"), 1, "one WARNING, not one per pass")
        # Later changes are read from the new slot.
        cluster.sql("update lost_t set score = 7 where id = 4")
        wait_for(lambda: mock.records() == model(), timeout=90, what="a change through the new slot")


if __name__ == "__main__":
    unittest.main()

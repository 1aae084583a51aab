"""track_changes = 'wal': changed keys read from the WAL by revetl's own
logical decoding output plugin, through one slot per database that the
worker creates and drops, with no trigger on the table. Inserts, updates
(the key too), deletes, TRUNCATE, a partitioned table decoded through its
root, back-pressure (a paused sync's keys queue in the database and the slot
still advances), exact convergence after the consumer is killed (SIGKILL)
and after `pg_ctl stop -m immediate`, and the refusal without
wal_level = logical."""

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
    cluster = Cluster(name="revetl-wal", extra_conf="wal_level = logical\n"
                                                    "max_replication_slots = 4\n"
                                                    "revetl.change_run_duration = '10min'\n"
                                                    "revetl.change_retry_interval = 1\n").start()
    mock = MockWebhook()
    cluster.sql(f"""
        create extension revetl;
        create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/t',
            settle_time '1s');
    """)
    cluster.wait_for_worker()


def tearDownModule():
    if cluster and os.environ.get("REVETL_SHOW_LOG"):
        with open("/tmp/wal_test_server.log", "w") as f:
            f.write(cluster.log_text())
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


def sql_ok(text):
    _, _, rc = cluster.psql(text, check=False)
    return rc == 0


def settled(sync):
    return cluster.sql(f"select count(*) from revetl.sync_runs where sync_name = '{sync}' "
                       f"and status in ('queued', 'running')") == "0"


def slot():
    return cluster.sql("select slot_name from pg_replication_slots where slot_name = "
                       "'revetl_' || (select oid from pg_database where datname = current_database())")


def plan_kinds(sync):
    return [r[0] for r in cluster.rows(f"select plan_kind from revetl.sync_runs where sync_name = '{sync}' "
                                       f"and status in ('succeeded', 'partial') order by id")]


class WalCaptureTest(unittest.TestCase):
    n = 0

    def setUp(self):
        mock.reset()
        WalCaptureTest.n += 1
        self.t = f"wt_{WalCaptureTest.n}"
        self.s = f"wal_sync_{WalCaptureTest.n}"

    def tearDown(self):
        cluster.sql(f"select * from revetl.execute($$DROP SYNC IF EXISTS {self.s}$$)")

    def model(self):
        return {key(id=int(i)): {"id": int(i), "score": int(sc)}
                for i, sc in cluster.rows(f"select id, score from {self.t}")}

    def create(self, schedule="ON CHANGE", table_ddl=None):
        cluster.sql(table_ddl or f"create table {self.t} (id int primary key, score int not null)")
        cluster.sql(f"insert into {self.t} select g, 0 from generate_series(1, 20) g")
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO hooks KEY (id) "
                    f"MODE MIRROR SCHEDULE {schedule} WITH (track_changes = 'wal')$$)")
        # No trigger: the WAL is read instead.
        self.assertEqual(cluster.sql(f"select count(*) from pg_trigger where tgrelid = '{self.t}'::regclass "
                                     f"and tgname like 'revetl%'"), "0")
        wait_for(slot, timeout=60, what="the worker to create the slot")

    def converge(self, what):
        wait_for(lambda: mock.records() == self.model() and settled(self.s), timeout=90, interval=0.2,
                 what=what)
        self.assertEqual(mock.records(), self.model())

    def test_inserts_updates_deletes_and_truncate(self):
        self.create()
        # A first change starts the first run (a full diff, the slot exists).
        cluster.sql(f"update {self.t} set score = 1 where id = 1")
        self.converge("the first full run")
        cluster.sql(f"insert into {self.t} values (21, 5), (22, 6)")
        self.converge("inserted rows")
        cluster.sql(f"update {self.t} set score = score + 10 where id <= 3")
        self.converge("updated rows")
        # The key itself changes: the old key's record goes (MIRROR).
        cluster.sql(f"update {self.t} set id = 100 where id = 4")
        self.converge("a changed key")
        self.assertNotIn(key(id=4), mock.records())
        cluster.sql(f"delete from {self.t} where id in (5, 6)")
        self.converge("deleted rows")
        kinds = plan_kinds(self.s)
        self.assertEqual(kinds[0], "full")
        self.assertIn("incremental", kinds[1:], "later runs plan the keys read from the WAL")
        # Lag and retained WAL are shown; the queue drained.
        lag, retained, backlog = cluster.rows(f"select wal_lag_bytes, wal_retained_bytes, backlog_keys "
                                              f"from revetl.sync_status where name = '{self.s}'")[0]
        self.assertNotEqual(lag, "")
        self.assertNotEqual(retained, "")
        self.assertEqual(backlog, "0")
        # TRUNCATE: a NULL key, so a full diff removes everything.
        cluster.sql(f"truncate {self.t}")
        self.converge("a truncated table")
        self.assertEqual(mock.records(), {})
        self.assertEqual(plan_kinds(self.s)[-1], "full")

    def test_partitioned_table_through_its_root(self):
        self.create(table_ddl=f"create table {self.t} (id int primary key, score int not null) "
                              f"partition by range (id); "
                              f"create table {self.t}_a partition of {self.t} for values from (1) to (1000); "
                              # columns in another order: found by name
                              f"create table {self.t}_b (score int not null, id int not null); "
                              f"alter table {self.t} attach partition {self.t}_b for values from (1000) to (9999)")
        cluster.sql(f"update {self.t} set score = 1 where id = 1")
        self.converge("the first full run")
        cluster.sql(f"insert into {self.t} values (1500, 7)")           # through the root
        cluster.sql(f"insert into {self.t}_a values (30, 8)")           # into a partition directly
        cluster.sql(f"update {self.t}_b set score = 9 where id = 1500")
        cluster.sql(f"update {self.t} set id = 2000 where id = 2")      # moves between partitions
        cluster.sql(f"delete from {self.t}_a where id = 3")
        self.converge("changes through the root and the partitions")
        self.assertIn("incremental", plan_kinds(self.s)[1:])

    def test_paused_sync_drains_into_the_queue(self):
        self.create(schedule="MANUAL")
        cluster.sql(f"select * from revetl.run_sync('{self.s}', wait => true)")
        cluster.sql(f"select revetl.pause_sync('{self.s}')")
        # Two updates of every row in one transaction, which one read of the
        # slot decodes whole (the reader may read between two transactions).
        cluster.sql(f"begin; update {self.t} set score = score + 1; update {self.t} set score = score + 1; "
                    f"commit")
        # The keys queue in the database, coalesced by key, and the slot moves
        # on: the WAL does not pile up behind a paused sync.
        wait_for(lambda: cluster.sql(f"select backlog_keys from revetl.sync_status "
                                     f"where name = '{self.s}'") == "20", timeout=90,
                 what="the backlog to hold each key once")
        flushed = cluster.sql("select pg_current_wal_flush_lsn()")
        wait_for(lambda: cluster.sql(f"select confirmed_flush_lsn >= '{flushed}' from pg_replication_slots "
                                     f"where slot_name like 'revetl_%'") == "t", timeout=90,
                 what="the slot to advance while the sync is paused")
        self.assertNotEqual(cluster.sql(f"select backlog_age from revetl.sync_status where name = '{self.s}'"), "")
        cluster.sql(f"select revetl.resume_sync('{self.s}')")
        cluster.sql(f"select * from revetl.run_sync('{self.s}', wait => true)")
        self.assertEqual(mock.records(), self.model())
        self.assertEqual(plan_kinds(self.s)[-1], "incremental")

    def test_queued_keys_lost_in_an_immediate_stop_are_decoded_again(self):
        # The scheduler commits the keys it queues without waiting for the
        # flush, and confirms the slot past them only once that commit is on
        # disk. The WAL writer here writes such commits every 10 s only: the
        # queue's commit is still in memory when the server stops, and the
        # slot must not have moved past the update it came from.
        self.create(schedule="MANUAL")
        cluster.sql(f"select * from revetl.run_sync('{self.s}', wait => true)")
        cluster.sql(f"select revetl.pause_sync('{self.s}')")
        with cluster.lazy_wal_writer():
            cluster.sql(f"update {self.t} set score = 5 where id = 2")
            update_end = cluster.sql("select pg_current_wal_insert_lsn()")
            wait_for(lambda: cluster.sql(f"select backlog_keys from revetl.sync_status "
                                         f"where name = '{self.s}'") == "1", timeout=30, interval=0.01,
                     what="the key to be queued")
            # The queue's commit is not on disk yet, nor is the slot past it.
            self.assertEqual(cluster.sql(f"select pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn(), "
                                         f"confirmed_flush_lsn < '{update_end}' from pg_replication_slots "
                                         f"where slot_name like 'revetl_%'"), "t|t")
            cluster.stop(mode="immediate")
            cluster.start()
        cluster.wait_for_worker()
        wait_for(lambda: cluster.sql(f"select backlog_keys from revetl.sync_status "
                                     f"where name = '{self.s}'") == "1", timeout=60,
                 what="the key to be decoded and queued again")
        cluster.sql(f"select revetl.resume_sync('{self.s}')")
        cluster.sql(f"select * from revetl.run_sync('{self.s}', wait => true)")
        self.assertEqual(mock.records(), self.model())

    def test_slot_dropped_with_the_last_wal_sync(self):
        self.create(schedule="MANUAL")
        cluster.sql(f"select * from revetl.execute($$DROP SYNC {self.s}$$)")
        wait_for(lambda: not slot(), timeout=90, what="the worker to drop the slot")

    def test_consumer_killed_and_immediate_stop_converge_exactly(self):
        self.create()
        cluster.sql(f"update {self.t} set score = 1 where id = 1")
        self.converge("the first full run")
        rng = random.Random(15)
        stop = threading.Event()
        errors = []
        mock.configure(delay_ms=20)

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
                wait_for(lambda: len(mock.requests()) > 5, timeout=60, what="deliveries")
                mock.clear_requests()
                if crash == "kill":
                    # The slot's consumer: the database's scheduler.
                    restarts = cluster.log_text().count("reinitializing")
                    pid = cluster.wait_for_worker()
                    os.kill(int(pid), signal.SIGKILL)
                    wait_for(lambda: cluster.log_text().count("reinitializing") > restarts, timeout=60,
                             what="the server to restart after the killed worker")
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
        # Nudge: one more change after the writer stopped.
        cluster.sql(f"update {self.t} set score = score + 1 where id = 1")
        wait_for(lambda: mock.records() == self.model(), timeout=180, interval=0.5,
                 what="the destination to converge to the model")
        self.assertEqual(mock.records(), self.model())


class WithoutLogicalTest(unittest.TestCase):
    def test_refused_without_wal_level_logical(self):
        other = Cluster(name="revetl-wal-replica").start()
        try:
            other.sql("create extension revetl; create server hooks foreign data wrapper revetl "
                      "options (type 'webhook', url 'http://127.0.0.1:9/t'); "
                      "create table t (id int primary key)")
            out, err, rc = other.psql("select * from revetl.execute($$CREATE SYNC s FROM t TO hooks KEY (id) "
                                      "WITH (track_changes = 'wal')$$)", check=False)
            self.assertNotEqual(rc, 0)
            self.assertIn("track_changes = 'wal' needs wal_level = logical", err)
            self.assertIn("HINT:  Set wal_level = logical", err)
            # Triggers stay available.
            other.sql("select * from revetl.execute($$CREATE SYNC s FROM t TO hooks KEY (id) "
                      "WITH (track_changes = true)$$)")
        finally:
            other.destroy()

    def test_key_outside_the_replica_identity_is_refused(self):
        cluster.sql("create table wal_noid (id int not null, other int primary key)")
        out, err, rc = cluster.psql("select * from revetl.execute($$CREATE SYNC wal_noid_s FROM wal_noid TO hooks "
                                    "KEY (id) WITH (track_changes = 'wal')$$)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("is not in the replica identity", err)
        cluster.sql("alter table wal_noid replica identity full")
        cluster.sql("select * from revetl.execute($$CREATE SYNC wal_noid_s FROM wal_noid TO hooks "
                    "KEY (id) WITH (track_changes = 'wal')$$)")
        cluster.sql("select * from revetl.execute($$DROP SYNC wal_noid_s$$)")


if __name__ == "__main__":
    unittest.main()

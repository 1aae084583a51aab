"""The Segment connector against the stateful mock Segment Tracking API:
identify calls delivered through /v1/batch with userId from MATCH ON and
messageId from the change's idempotency key, track calls from OBJECT track,
an oversized row refused alone, batches cut by size, MODE MIRROR refused at
CREATE SYNC, and the same messageId on a retry but a new one for a new
change."""

import base64
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockSegment, PsqlError  # noqa: E402

cluster = None
segment = None


def setUpModule():
    global cluster, segment
    cluster = Cluster(name="revetl-segment").start()
    segment = MockSegment()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if segment:
        segment.stop()
    if cluster:
        cluster.destroy()


class SegmentTest(unittest.TestCase):
    n = 0

    def setUp(self):
        segment.reset()
        SegmentTest.n += 1
        self.t = f"people_{SegmentTest.n}"
        self.srv = f"sg_{SegmentTest.n}"
        self.s = f"to_segment_{SegmentTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(segment.contract_violations(), [])

    def setup_sync(self, rows=10, bio_bytes=1, clause="MODE UPSERT", map_extra="", server_options=""):
        cluster.sql(f"""
            create table {self.t} (id int primary key, plan text, bio text);
            insert into {self.t} select g, 'plan' || g, repeat('b', {bio_bytes}) from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'segment', url '{segment.url}' {server_options});
            create user mapping for postgres server {self.srv} options (token 'test-write-key');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} {clause}
                MAP ('u' || id AS user_id, plan AS plan, bio AS bio {map_extra})
            $$);
        """)

    def sync_now(self, check=True):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        if check:
            self.assertEqual(rc, 0, err)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self):
        return cluster.rows(f"select status, rows_delivered, rows_rejected, requests from revetl.sync_runs "
                            f"where sync_name = '{self.s}' order by id desc limit 1")[0]

    def calls(self):
        return [c for r in segment.requests() if r["path"] == "/v1/batch" for c in json.loads(r["body"])["batch"]]

    def test_identify_delivers(self):
        self.setup_sync(rows=10, clause="KEY (id) MATCH ON user_id")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "10", "0"])
        users = segment.state()["users"]
        self.assertEqual(users["u3"], {"plan": "plan3", "bio": "b"})
        calls = self.calls()
        self.assertEqual({c["type"] for c in calls}, {"identify"})
        ids = [c["messageId"] for c in calls]
        self.assertEqual(len(set(ids)), 10)
        self.assertTrue(all(0 < len(i) <= 100 for i in ids))

    def test_track_events(self):
        self.setup_sync(rows=4, clause="OBJECT track KEY (id) MATCH ON user_id MODE INSERT",
                        map_extra=", 'Signed Up' AS event")
        self.sync_now()
        events = segment.state()["events"]
        self.assertEqual(len(events), 4)
        self.assertEqual({e["event"] for e in events}, {"Signed Up"})
        self.assertEqual(sorted(e["userId"] for e in events), ["u1", "u2", "u3", "u4"])
        self.assertNotIn("event", events[0]["properties"])

    def test_oversized_row_refused_and_batches_cut_by_size(self):
        self.setup_sync(rows=30, bio_bytes=20000, clause="KEY (id) MATCH ON user_id",
                        server_options=", batch_size '1000'")
        cluster.sql(f"update {self.t} set bio = repeat('x', 40000) where id = 7")
        self.sync_now(check=False)
        self.assertEqual(self.last()[:3], ["partial", "29", "1"])
        rejected = cluster.rows(f"select key, error_code from revetl.rejected_rows where sync_name = '{self.s}'")
        self.assertEqual(rejected, [['{"id": 7}', "MESSAGE_TOO_LARGE"]])
        batches = [r for r in segment.requests() if r["path"] == "/v1/batch"]
        self.assertGreaterEqual(len(batches), 2)
        self.assertTrue(all(r["size"] <= 500 * 1024 for r in batches))
        self.assertEqual(segment.stats()["refused"], 0)
        self.assertEqual(len(segment.state()["users"]), 29)

    def test_echoed_write_key_is_redacted(self):
        # A destination may echo the Authorization header it got: the write
        # key in its Basic form (key + ":") must not reach a rejected row.
        basic = base64.b64encode(b"test-write-key:").decode()
        segment.configure(faults=[{"status": 400, "body": {"error": f"refused Authorization: Basic {basic}"}}])
        self.setup_sync(rows=1, clause="KEY (id) MATCH ON user_id")
        self.sync_now(check=False)
        reasons = cluster.rows(f"select reason from revetl.rejected_rows where sync_name = '{self.s}'")
        self.assertEqual(len(reasons), 1)
        # Whole: Base64(key) alone would leave the last character of
        # Base64(key + ":") behind.
        self.assertIn('Basic [redacted]"', reasons[0][0])

    def test_mirror_refused_at_create_sync(self):
        cluster.sql(f"""create table {self.t} (id int primary key);
                        create server {self.srv} foreign data wrapper revetl options (type 'segment')""")
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} "
                        f"KEY (id) MATCH ON user_id MODE MIRROR MAP (id::text AS user_id)$$)")
        self.assertIn("cannot use mode mirror", str(e.exception))
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} "
                        f"OBJECT track KEY (id) MODE INSERT MAP (id::text AS user_id)$$)")
        self.assertIn("needs MATCH ON", str(e.exception))

    def test_same_message_id_on_retry_new_one_for_a_new_change(self):
        # Segment takes the batch but the answer is lost (500): the retry
        # carries the same messageIds, which Segment deduplicates.
        segment.configure(faults=[{"status": 500, "apply": True}])
        self.setup_sync(rows=3, clause="KEY (id) MATCH ON user_id")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        batches = [json.loads(r["body"])["batch"] for r in segment.requests() if r["path"] == "/v1/batch"]
        self.assertEqual(len(batches), 2)
        first = {c["userId"]: c["messageId"] for c in batches[0]}
        self.assertEqual(first, {c["userId"]: c["messageId"] for c in batches[1]})
        self.assertEqual(segment.stats()["duplicates"], 3)

        cluster.sql(f"update {self.t} set plan = 'pro' where id = 2")
        segment.clear_requests()
        self.sync_now()
        again = self.calls()
        self.assertEqual(len(again), 1)
        self.assertEqual(again[0]["userId"], "u2")
        self.assertNotEqual(again[0]["messageId"], first["u2"])
        self.assertEqual(segment.state()["users"]["u2"]["plan"], "pro")


if __name__ == "__main__":
    unittest.main()

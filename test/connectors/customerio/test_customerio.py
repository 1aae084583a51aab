"""The Customer.io connector against the stateful mock Track API: people added,
changed and (MODE MIRROR) deleted through /api/v2/batch, per-item refusals
(207) in revetl.rejected_rows, MODE UPDATE creating nobody, MATCH ON email,
429s waited out, and an invalid API key failing the run without leaking it.
Every request body is checked against Customer.io's OpenAPI."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockCustomerIo  # noqa: E402

cluster = None
cio = None


def setUpModule():
    global cluster, cio
    cluster = Cluster(name="revetl-customerio").start()
    cio = MockCustomerIo()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if cio:
        cio.stop()
    if cluster:
        cluster.destroy()


class CustomerIoTest(unittest.TestCase):
    n = 0

    def setUp(self):
        cio.reset()
        CustomerIoTest.n += 1
        self.t = f"people_{CustomerIoTest.n}"
        self.srv = f"cio_{CustomerIoTest.n}"
        self.s = f"to_cio_{CustomerIoTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(cio.contract_violations(), [])

    def setup_sync(self, rows=30, mode="MIRROR", match_on="id", server_options="", password="test-key"):
        ident = "id::text AS id, email AS email" if match_on == "id" else "email AS email"
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, plan text, score int);
            insert into {self.t} select g, 'user' || g || '@example.com', 'free', g
              from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'customerio', url '{cio.url}' {server_options});
            create user mapping for postgres server {self.srv}
              options (user 'site-1', password '{password}');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id) MATCH ON {match_on} MODE {mode}
                MAP ({ident}, plan AS plan, score AS score)
            $$);
        """)

    def sync_now(self):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def expected(self, key="id"):
        return {(str(i) if key == "id" else e): {"email": e, "plan": p, "score": int(sc)}
                for i, e, p, sc in cluster.rows(f"select id, email, plan, score from {self.t}")}

    def batches(self):
        return [r for r in cio.requests() if r["path"] == "/api/v2/batch" and r["status"] in (200, 207)]

    def test_adds_changes_removals_and_partial_failures(self):
        self.setup_sync(rows=250, server_options=", batch_size '100'")
        cio.configure(reject=[{"field": "email", "pattern": "^user7@", "reason": "invalid_value",
                               "message": "email is suppressed"}])
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.last()[:3], ["partial", "249", "1"])
        self.assertEqual(sorted(len(r["body"]["batch"]) for r in self.batches()), [50, 100, 100])
        rejected = cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                                f"where sync_name = '{self.s}'")
        self.assertEqual(rejected, [['{"id": 7}', "207", "invalid_value", "email: email is suppressed"]])
        expected = self.expected()
        del expected["7"]
        self.assertEqual(cio.people(), expected)
        # Changes and removals: the removed people are deleted by the id kept.
        cio.configure(reject=[])
        cio.clear_requests()
        cluster.sql(f"delete from {self.t} where id in (3, 4); update {self.t} set plan = 'pro' where id = 5")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "4", "0"])  # 3, 4, 5 and 7 again
        items = [i for r in self.batches() for i in r["body"]["batch"]]
        self.assertEqual(sorted((i["action"], i["identifiers"]["id"]) for i in items),
                         [("delete", "3"), ("delete", "4"), ("identify", "5"), ("identify", "7")])
        self.assertEqual(cio.people(), self.expected())

    def test_update_mode_creates_nobody(self):
        self.setup_sync(rows=5, mode="UPDATE")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        self.assertEqual(cio.people(), {})
        self.assertTrue(all(i["attributes"]["_update"] is True for r in self.batches() for i in r["body"]["batch"]))

    def test_match_on_email(self):
        self.setup_sync(rows=10, mode="UPSERT", match_on="email")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "10", "0"])
        self.assertEqual({i["identifiers"]["email"] for r in self.batches() for i in r["body"]["batch"]},
                         {f"user{g}@example.com" for g in range(1, 11)})
        self.assertEqual(cio.people(), {e: v for e, v in self.expected("email").items()})

    def test_429_is_waited_out(self):
        # revetl's own limit off, so that Customer.io's (here 2 requests per
        # second) answers 429.
        self.setup_sync(rows=40, server_options=", rate_limit 'none', max_in_flight '1', batch_size '5'")
        cio.configure(rate_limit=2, rate_window_ms=1000)
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        status, delivered, rejected, throttled = self.last("status, rows_delivered, rows_rejected, throttled")
        self.assertEqual((status, delivered, rejected), ("succeeded", "40", "0"))
        self.assertGreater(int(throttled), 0)
        self.assertGreater(cio.stats()["rate_limited"], 0)
        self.assertEqual(cio.people(), self.expected())

    def test_invalid_key_fails_the_run_clearly(self):
        self.setup_sync(rows=5, password="wrong-secret-key")
        self.sync_now()
        status, delivered, rejected, error = self.last()
        self.assertEqual((status, delivered, rejected), ("failed", "0", "0"))
        self.assertIn("Customer.io refused the credentials (HTTP 401)", error)
        self.assertNotIn("wrong-secret-key", error)
        self.assertEqual(cluster.sql(f"select count(*) from revetl.rejected_rows where sync_name = '{self.s}'"), "0")
        self.assertEqual(cio.people(), {})

    def test_unsupported_targets_are_refused_at_create_sync(self):
        cluster.sql(f"""create table {self.t} (id int primary key, email text);
            create server {self.srv} foreign data wrapper revetl options (type 'customerio', region 'eu')""")
        _, err, rc = cluster.psql(f"select * from revetl.execute($$ CREATE SYNC {self.s} FROM {self.t} "
                                  f"TO {self.srv} KEY (id) MODE INSERT MAP (id::text AS id) $$)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("insert", err.lower())
        _, err, rc = cluster.psql(f"select * from revetl.execute($$ CREATE SYNC {self.s} FROM {self.t} "
                                  f"TO {self.srv} KEY (id) MATCH ON phone MAP (id::text AS id) $$)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot match Customer.io people on \"phone\"", err)
        _, err, rc = cluster.psql(f"create server {self.srv}_x foreign data wrapper revetl "
                                  f"options (type 'customerio', region 'ap')", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("region", err)


if __name__ == "__main__":
    unittest.main()

"""The Braze connector against the stateful mock Braze: attributes written
through /users/track with external_id from MATCH ON and dates in ISO 8601,
a row Braze refuses by index, a 429 waited out until X-RateLimit-Reset,
MIRROR deletes through /users/delete by the kept external_id, MODE INSERT
refused at CREATE SYNC, and a refused REST key failing the run."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockBraze, PsqlError  # noqa: E402

cluster = None
braze = None


def setUpModule():
    global cluster, braze
    cluster = Cluster(name="revetl-braze").start()
    braze = MockBraze()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if braze:
        braze.stop()
    if cluster:
        cluster.destroy()


class BrazeTest(unittest.TestCase):
    n = 0

    def setUp(self):
        braze.reset()
        BrazeTest.n += 1
        self.t = f"people_{BrazeTest.n}"
        self.srv = f"bz_{BrazeTest.n}"
        self.s = f"to_braze_{BrazeTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        # Every request had the documented shape (Braze publishes no contract).
        self.assertEqual(braze.contract_violations(), [])

    def setup_sync(self, rows=10, server_options="", mode="MIRROR", token="test-token"):
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, country text, score numeric,
                                   signed_up timestamptz);
            insert into {self.t} select g, 'user' || g || '@example.com', 'DE', g + 0.5,
                                        timestamptz '2024-05-01 12:00:00+02' + g * interval '1 day'
              from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'braze', url '{braze.url}' {server_options});
            create user mapping for postgres server {self.srv} options (token '{token}');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id) MATCH ON external_id MODE {mode}
                MAP ('u' || id AS external_id, email AS email, country AS country, score AS score,
                     signed_up AS signed_up)
            $$);
        """)

    def sync_now(self, check=True):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        if check:
            self.assertEqual(rc, 0, err)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, requests, throttled, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def bodies(self, path):
        return [json.loads(r["body"]) for r in braze.requests() if r["path"] == path]

    def test_delivers_then_deletes_removed_rows(self):
        self.setup_sync(rows=80)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "80", "0"])
        users = braze.users()
        self.assertEqual(len(users), 80)
        self.assertEqual(users["external_id:u3"]["email"], "user3@example.com")
        self.assertEqual(users["external_id:u3"]["score"], 3.5)
        # timestamptz in UTC ISO 8601.
        self.assertEqual(users["external_id:u3"]["signed_up"], "2024-05-04T10:00:00.000Z")
        tracks = self.bodies("/users/track")
        self.assertEqual(sorted(len(b["attributes"]) for b in tracks), [5, 75])
        self.assertTrue(all(a["_update_existing_only"] is False for b in tracks for a in b["attributes"]))
        self.assertEqual(braze.requests()[0]["headers"]["authorization"], "Bearer test-token")

        cluster.sql(f"update {self.t} set country = 'FR' where id = 3; delete from {self.t} where id in (4, 5)")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        users = braze.users()
        self.assertEqual(users["external_id:u3"]["country"], "FR")
        self.assertNotIn("external_id:u4", users)
        self.assertEqual(len(users), 78)
        deletes = self.bodies("/users/delete")
        self.assertEqual(len(deletes), 1)
        self.assertEqual(sorted(deletes[0]["external_ids"]), ["u4", "u5"])

    def test_refused_row_is_mapped_by_index(self):
        self.setup_sync(rows=10)
        cluster.sql(f"update {self.t} set country = 'XX' where id = 7")
        braze.configure(reject_field="country", reject_pattern="^XX$")
        self.sync_now(check=False)
        self.assertEqual(self.last()[:3], ["partial", "9", "1"])
        rejected = cluster.rows(f"select key, http_status, reason from revetl.rejected_rows "
                                f"where sync_name = '{self.s}'")
        self.assertEqual(rejected, [['{"id": 7}', "201", "Invalid value for country"]])
        self.assertNotIn("external_id:u7", braze.users())
        self.assertIn("external_id:u8", braze.users())
        braze.configure(reject_field=None)
        cluster.sql(f"update {self.t} set country = 'IT' where id = 7")
        self.sync_now()
        self.assertEqual(braze.users()["external_id:u7"]["country"], "IT")

    def test_rate_limit_waited_out_until_reset(self):
        braze.configure(rate_limit={"limit": 2, "window_s": 2})
        # One request in flight: requests already under way when the 429
        # came would reach Braze before Reset through no choice of revetl's.
        self.setup_sync(rows=8, server_options=", rate_limit 'none', batch_size '1', max_attempts '1', "
                                               "max_in_flight '1'")
        self.sync_now()
        status, delivered, rejected, requests, throttled, _ = self.last()
        self.assertEqual((status, delivered, rejected), ("succeeded", "8", "0"))
        stats = braze.stats()
        self.assertGreater(stats["throttled"], 0)
        self.assertEqual(int(throttled), stats["throttled"])
        # After a 429 nothing was sent before the Reset the headers named.
        self.assertEqual(stats["early_after_429"], 0)
        self.assertEqual(len(braze.users()), 8)

    def test_insert_mode_refused_at_create_sync(self):
        cluster.sql(f"""create table {self.t} (id int primary key);
                        create server {self.srv} foreign data wrapper revetl
                          options (type 'braze', url '{braze.url}')""")
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} "
                        f"KEY (id) MODE INSERT MAP (id::text AS external_id)$$)")
        self.assertIn("cannot use mode insert", str(e.exception))
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} "
                        f"KEY (id) MATCH ON email MODE MIRROR MAP (id::text AS email)$$)")
        self.assertIn("cannot mirror Braze users matched on email", str(e.exception))

    def test_refused_key_fails_the_run(self):
        self.setup_sync(rows=3, token="wrong-key")
        self.sync_now(check=False)
        status, delivered, _, _, _, error = self.last()
        self.assertEqual((status, delivered), ("failed", "0"))
        self.assertIn("HTTP 401", error)
        self.assertNotIn("wrong-key", error)


if __name__ == "__main__":
    unittest.main()

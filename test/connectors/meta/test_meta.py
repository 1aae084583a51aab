"""The Meta Custom Audiences connector against the stateful mock Graph API (checking
every call against Meta's spec files): exact audience membership after adds,
removals, a changed identifier (removed under the old one, then added) and a model
view rebuilt by dbt; raw and NULL identifiers invalid and never sent; a run of
several calls sent as sessions; throttling codes waited out; an expired token
failing the run with a hint; a run killed in the middle of a multi-call upload
converging exactly; and the refusals at CREATE SYNC."""

import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockMeta, PsqlError, wait_for  # noqa: E402

cluster = None
meta = None
AUD = 23851234567890


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def member(i, email=None):
    return {"EMAIL": sha(email or f"user{i}@example.com"), "EXTERN_ID": f"c{i}"}


def ordered(members):
    return sorted(members, key=lambda m: sorted(m.items()))


def setUpModule():
    global cluster, meta
    cluster = Cluster(name="revetl-meta").start()
    meta = MockMeta()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if meta:
        meta.stop()
    if cluster:
        cluster.destroy()


class MetaTest(unittest.TestCase):
    n = 0

    def setUp(self):
        meta.reset()
        meta.configure(audiences=[AUD])
        MetaTest.n += 1
        self.t = f"people_{MetaTest.n}"
        self.srv = f"meta_{MetaTest.n}"
        self.s = f"to_meta_{MetaTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        # Every call conformed to Meta's spec files and the documented shapes.
        self.assertEqual(meta.contract_violations(), [])

    MAP = ("revetl.hashed_identifier('email', email, 'meta') AS \"EMAIL\", "
           "'c' || id AS \"EXTERN_ID\"")

    def setup_sync(self, rows=5, server_options="", token="test-token", model=None, map_=MAP):
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, plan text);
            insert into {self.t} select g, 'User' || g || '@Example.com ', 'pro' from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'meta', url '{meta.url}' {server_options});
            create user mapping for postgres server {self.srv} options (token '{token}');
        """)
        cluster.sql(f"""select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {model or self.t} TO {self.srv} KEY (id) MODE AUDIENCE '{AUD}'
                MAP ({map_})
            $$)""")

    def sync_now(self, check=True):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        if check:
            self.assertEqual(rc, 0, err)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, requests, throttled, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def calls(self, method=None):
        return [r for r in meta.requests() if method is None or r["method"] == method]

    def test_audience_membership_follows_the_model(self):
        # The model is a view, as dbt builds one.
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, plan text);
            insert into {self.t} select g, 'User' || g || '@Example.com ', 'pro' from generate_series(1, 5) g;
            create view {self.t}_v as select id, email, plan from {self.t};
            create server {self.srv} foreign data wrapper revetl options (type 'meta', url '{meta.url}');
            create user mapping for postgres server {self.srv} options (token 'test-token');
        """)
        cluster.sql(f"""select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t}_v TO {self.srv} KEY (id) MODE AUDIENCE '{AUD}'
                MAP ({self.MAP})
            $$)""")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        self.assertEqual(meta.members(AUD), ordered([member(i) for i in range(1, 6)]))
        posts = self.calls("POST")
        self.assertEqual(len(posts), 1)
        self.assertEqual(posts[0]["path"], f"/v25.0/{AUD}/users")
        self.assertEqual(posts[0]["payload"]["schema"], ["EMAIL", "EXTERN_ID"])
        self.assertEqual(posts[0]["payload"]["data"][0], [sha("user1@example.com"), "c1"])
        # One call of a kind: no session. The token is in Authorization only.
        self.assertIsNone(posts[0]["session"])
        self.assertEqual(posts[0]["headers"]["authorization"], "Bearer test-token")
        self.assertNotIn("test-token", posts[0]["body"])

        # Another column changes: a member stays a member, nothing is sent.
        meta.clear_requests()
        cluster.sql(f"update {self.t} set plan = 'team'")
        self.sync_now()
        self.assertEqual(self.last()[:2], ["succeeded", "0"])
        self.assertEqual(meta.requests(), [])

        # A removed row leaves, a changed email leaves under the old hash and
        # joins under the new one, a new row joins.
        cluster.sql(f"delete from {self.t} where id = 1; "
                    f"update {self.t} set email = 'renamed2@example.com' where id = 2; "
                    f"insert into {self.t} values (9, 'user9@example.com', 'pro')")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        expected = [member(2, "renamed2@example.com")] + [member(i) for i in (3, 4, 5, 9)]
        self.assertEqual(meta.members(AUD), ordered(expected))
        deleted = sorted(tuple(r) for c in self.calls("DELETE") for r in c["payload"]["data"])
        self.assertEqual(deleted, sorted([(sha("user1@example.com"), "c1"), (sha("user2@example.com"), "c2")]))
        methods = [c["method"] for c in meta.requests()]
        # The old identifiers leave before the new ones join.
        self.assertLess(methods.index("DELETE"), len(methods) - 1 - methods[::-1].index("POST"))

        # dbt rebuilds the view (build, swap, drop): the members are exactly
        # the new model's rows.
        cluster.sql(f"""
            create view {self.t}_v__dbt_tmp as
              select id, email, plan from {self.t} where id <> 3
              union all select 10, 'user10@example.com', 'pro';
            alter view {self.t}_v rename to {self.t}_v__dbt_backup;
            alter view {self.t}_v__dbt_tmp rename to {self.t}_v;
            drop view {self.t}_v__dbt_backup cascade;
        """)
        self.sync_now()
        self.assertEqual(self.last()[0], "succeeded")
        expected = [member(2, "renamed2@example.com")] + [member(i) for i in (4, 5, 9, 10)]
        self.assertEqual(meta.members(AUD), ordered(expected))

    def test_raw_and_null_identifiers_are_never_sent(self):
        self.setup_sync(rows=4, map_="CASE WHEN id = 2 THEN email ELSE revetl.hashed_identifier('email', email, "
                                     "'meta') END AS \"EMAIL\", CASE WHEN id <> 3 THEN 'c' || id END AS extern_id")
        self.sync_now(check=False)
        self.assertEqual(self.last("status, rows_delivered, rows_rejected, rows_invalid"),
                         ["partial", "2", "0", "2"])
        rejected = cluster.rows(f"select key, kind, reason from revetl.rejected_rows where sync_name = '{self.s}' "
                                f"order by key")
        self.assertEqual([r[0] for r in rejected], ['{"id": 2}', '{"id": 3}'])
        self.assertIn("SHA-256", rejected[0][2])
        self.assertIn("extern_id is sent unhashed and must only be present", rejected[0][2])
        self.assertEqual(meta.members(AUD), ordered([member(1), member(4)]))
        bodies = " ".join(c["body"] for c in meta.requests())
        self.assertNotIn("Example.com", bodies)
        self.assertNotIn("example.com", bodies)

    def test_a_run_of_several_calls_is_one_session_per_kind(self):
        self.setup_sync(rows=25, server_options=", batch_size '10'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "25", "0"])
        posts = self.calls("POST")
        self.assertEqual([len(c["payload"]["data"]) for c in posts], [10, 10, 5])
        sessions = [c["session"] for c in posts]
        self.assertEqual(len({s["session_id"] for s in sessions}), 1)
        self.assertEqual([s["batch_seq"] for s in sessions], [1, 2, 3])
        self.assertEqual([s["last_batch_flag"] for s in sessions], [False, False, True])
        self.assertEqual({s["estimated_num_total"] for s in sessions}, {25})
        self.assertEqual(len(meta.members(AUD)), 25)

        # Removals of the next run: a session of their own.
        meta.clear_requests()
        cluster.sql(f"delete from {self.t} where id <= 12")
        self.sync_now()
        deletes = self.calls("DELETE")
        self.assertEqual([len(c["payload"]["data"]) for c in deletes], [10, 2])
        ids = {c["session"]["session_id"] for c in deletes}
        self.assertEqual(len(ids), 1)
        self.assertNotIn(sessions[0]["session_id"], ids)
        self.assertEqual([c["session"]["last_batch_flag"] for c in deletes], [False, True])
        self.assertEqual(meta.members(AUD), ordered([member(i) for i in range(13, 26)]))

    def test_throttling_is_waited_out(self):
        meta.configure(throttle={"next": 2, "code": 80003, "subcode": 2446079})
        self.setup_sync(rows=3)
        self.sync_now()
        status, delivered, rejected, _, throttled, _ = self.last()
        self.assertEqual((status, delivered, rejected, throttled), ("succeeded", "3", "0", "2"))
        self.assertEqual(meta.stats()["throttled"], 2)
        self.assertEqual(len(meta.members(AUD)), 3)

    def test_expired_token_fails_the_run_with_a_hint(self):
        meta.configure(expire_token=True)
        self.setup_sync(rows=3, token="test-token")
        self.sync_now(check=False)
        status, delivered, _, requests, _, error = self.last()
        self.assertEqual((status, delivered, requests), ("failed", "0", "1"))
        self.assertIn("Meta error 190/463", error)
        self.assertIn("user mapping", error)
        self.assertNotIn("test-token", error)
        self.assertEqual(cluster.sql(f"select count(*) from revetl.rejected_rows where sync_name = '{self.s}'"),
                         "0")

    def test_run_killed_during_a_multi_call_upload_converges(self):
        # The second call of the upload hangs at Meta (and applies nothing);
        # the run's process is killed while it waits. The scheduler retries
        # the run, and the rows of the lost call are sent again once their
        # settle time has passed: the audience ends with exactly the model.
        self.setup_sync(rows=30, server_options=", batch_size '10', settle_time '1s', timeout '60s'")
        meta.configure(faults=[{"after": 1, "status": 200, "delay_s": 30,
                                "body": {"num_received": 0, "num_invalid_entries": 0}}])
        killed = int(cluster.sql(f"select revetl.run_sync('{self.s}')"))
        wait_for(lambda: any(r.get("fault") for r in meta.requests()), timeout=60, what="the hanging call")
        self.assertEqual(len(meta.members(AUD)), 10)
        cluster.kill_runs()
        cluster.wait_for_run_after(self.s, killed)
        wait_for(lambda: self.sync_now() and len(meta.members(AUD)) == 30, timeout=120, what="all 30 members")
        self.assertEqual(meta.members(AUD), ordered([member(i) for i in range(1, 31)]))
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "0", "0"])
        # The upload was sent in sessions (several calls per run).
        self.assertTrue(any(c["session"] for c in self.calls("POST")))

    def test_refusals_at_create_sync(self):
        cluster.sql(f"""create table {self.t} (id int primary key, email text);
                        create server {self.srv} foreign data wrapper revetl
                          options (type 'meta', url '{meta.url}')""")

        def refused(clause):
            with self.assertRaises(PsqlError) as e:
                cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} "
                            f"KEY (id) {clause}$$)")
            return str(e.exception)
        err = refused("MODE UPSERT MAP (email AS \"EMAIL\")")
        self.assertIn("cannot use mode upsert", err)
        err = refused(f"MODE AUDIENCE '{AUD}' MAP (email AS \"EMAIL\", id AS external_id)")
        self.assertIn("not a key of Meta's audience schema", err)
        self.assertIn('Perhaps you meant "EXTERN_ID"', err)
        err = refused("MODE AUDIENCE 'vip' MAP (email AS \"EMAIL\")")
        self.assertIn("Meta custom audience id", err)
        err = refused(f"MODE AUDIENCE '{AUD}'")
        self.assertIn("needs a MAP", err)
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"create server {self.srv}_v foreign data wrapper revetl "
                        f"options (type 'meta', api_version '25')")
        self.assertIn("api_version", str(e.exception))


if __name__ == "__main__":
    unittest.main()

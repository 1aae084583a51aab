"""The Iterable connector against the stateful mock Iterable (validating every body
against Iterable's Swagger document): users written through bulkUpdate by email
with dataFields, rows Iterable names in failedUpdates refused alone, 429 waited
out, MIRROR deletes by the kept email, a call that times out sent again, a run
killed during an upload (the list still ends exactly as the model), and
MODE AUDIENCE: exact list membership after adds, removals, a changed email (left
then joined), a change of another field (nothing sent), and a model rebuilt by
dbt; AUDIENCE and INSERT refused where Iterable cannot honour them."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockIterable, PsqlError, wait_for  # noqa: E402

cluster = None
iterable = None
LIST = 4242


def setUpModule():
    global cluster, iterable
    cluster = Cluster(name="revetl-iterable").start()
    iterable = MockIterable()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if iterable:
        iterable.stop()
    if cluster:
        cluster.destroy()


class IterableTest(unittest.TestCase):
    n = 0

    def setUp(self):
        iterable.reset()
        iterable.configure(lists=[LIST])
        IterableTest.n += 1
        self.t = f"people_{IterableTest.n}"
        self.srv = f"it_{IterableTest.n}"
        self.s = f"to_iterable_{IterableTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        # Every request conformed to Iterable's published contract.
        self.assertEqual(iterable.contract_violations(), [])

    def setup_sync(self, rows=10, server_options="", mode="MIRROR", key="test-key",
                   map_="lower(email) AS email, plan AS plan, score AS score", match=""):
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, plan text, score numeric);
            insert into {self.t} select g, 'User' || g || '@example.com', 'pro', g + 0.5
              from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'iterable', url '{iterable.url}' {server_options});
            create user mapping for postgres server {self.srv} options (api_key '{key}');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id) {match} MODE {mode} MAP ({map_})
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
        return [json.loads(r["body"]) for r in iterable.requests() if r["path"] == path]

    def members(self):
        return iterable.members(LIST)

    def test_bulk_update_then_mirror_deletes(self):
        self.setup_sync(rows=30, server_options=", batch_size '25'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "30", "0"])
        users = iterable.users()
        self.assertEqual(len(users), 30)
        self.assertEqual(users["email:user3@example.com"], {"email": "user3@example.com", "plan": "pro",
                                                            "score": 3.5})
        updates = self.bodies("/api/users/bulkUpdate")
        self.assertEqual(sorted(len(b["users"]) for b in updates), [5, 25])
        first = iterable.requests()[0]
        self.assertEqual(first["headers"]["api-key"], "test-key")
        self.assertNotIn("authorization", first["headers"])

        cluster.sql(f"update {self.t} set plan = 'team' where id = 3; delete from {self.t} where id in (4, 5)")
        iterable.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        users = iterable.users()
        self.assertEqual(users["email:user3@example.com"]["plan"], "team")
        self.assertNotIn("email:user4@example.com", users)
        self.assertEqual(len(users), 28)
        deletes = sorted(r["path"] for r in iterable.requests() if r["method"] == "DELETE")
        self.assertEqual(deletes, ["/api/users/user4%40example.com", "/api/users/user5%40example.com"])

    def test_failed_updates_refuse_their_rows_only(self):
        self.setup_sync(rows=6, mode="UPSERT")
        cluster.sql(f"update {self.t} set email = 'broken' where id = 2; "
                    f"update {self.t} set plan = 'XX' where id = 5")
        iterable.configure(reject_field="plan", reject_pattern="^XX$")
        self.sync_now(check=False)
        self.assertEqual(self.last()[:3], ["partial", "4", "2"])
        rejected = cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                                f"where sync_name = '{self.s}' order by key")
        self.assertEqual(rejected, [
            ['{"id": 2}', "200", "invalidEmails", "Iterable found the email address malformed"],
            ['{"id": 5}', "200", "invalidDataEmails",
             "Iterable refused a value of dataFields (a field's type cannot change)"]])
        self.assertEqual(len(iterable.users()), 4)
        # Fixed, the rows go on the next run.
        iterable.configure(reject_field=None)
        cluster.sql(f"update {self.t} set email = 'user2@example.com' where id = 2")
        self.sync_now()
        self.assertEqual(len(iterable.users()), 6)

    def test_rate_limit_is_waited_out(self):
        iterable.configure(rate_limit={"limit": 2, "window_s": 1})
        self.setup_sync(rows=8, mode="UPSERT",
                        server_options=", rate_limit 'none', batch_size '1', max_attempts '1', max_in_flight '1'")
        self.sync_now()
        status, delivered, rejected, _, throttled, _ = self.last()
        self.assertEqual((status, delivered, rejected), ("succeeded", "8", "0"))
        stats = iterable.stats()
        self.assertGreater(stats["throttled"], 0)
        self.assertEqual(int(throttled), stats["throttled"])
        self.assertEqual(len(iterable.users()), 8)

    def test_a_call_that_times_out_is_sent_again(self):
        # The first call is held past the timeout (the upload is cut off
        # mid-call): revetl sends it again and Iterable ends with each user once.
        iterable.configure(faults=[{"status": 200, "delay_s": 3, "body": {"successCount": 0, "failCount": 0}}])
        self.setup_sync(rows=5, mode="UPSERT", server_options=", timeout '1s'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        self.assertEqual(len(iterable.users()), 5)
        self.assertGreaterEqual(len(self.bodies("/api/users/bulkUpdate")), 2)

    def test_audience_membership_follows_the_model(self):
        self.setup_sync(rows=5, mode=f"AUDIENCE '{LIST}'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        self.assertEqual(self.members(), [f"email:user{i}@example.com" for i in range(1, 6)])
        subs = self.bodies("/api/lists/subscribe")
        self.assertEqual(len(subs), 1)
        # Membership only: the list id as a number, each member by email alone.
        self.assertEqual(subs[0]["listId"], LIST)
        self.assertEqual(subs[0]["subscribers"][0], {"email": "user1@example.com"})
        self.assertEqual(self.bodies("/api/users/bulkUpdate"), [])

        # Another field changes: a member stays a member, nothing is sent.
        iterable.clear_requests()
        cluster.sql(f"update {self.t} set plan = 'team', score = 0")
        self.sync_now()
        self.assertEqual(self.last()[:2], ["succeeded", "0"])
        self.assertEqual(iterable.requests(), [])

        # A removed row leaves; a changed email leaves under the old one and
        # joins under the new one; a new row joins.
        cluster.sql(f"delete from {self.t} where id = 1; "
                    f"update {self.t} set email = 'Renamed2@example.com' where id = 2; "
                    f"insert into {self.t} values (9, 'user9@example.com', 'pro', 1)")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        self.assertEqual(self.members(), ["email:renamed2@example.com", "email:user3@example.com",
                                          "email:user4@example.com", "email:user5@example.com",
                                          "email:user9@example.com"])
        unsubs = [s["email"] for b in self.bodies("/api/lists/unsubscribe") for s in b["subscribers"]]
        self.assertEqual(sorted(unsubs), ["user1@example.com", "user2@example.com"])
        # Users are not deleted: only membership is written.
        self.assertIn("email:user1@example.com", iterable.users())

        # dbt rebuilds the model (table materialization: build, swap, drop):
        # the members are exactly the new model's rows.
        cluster.sql(f"""
            create table {self.t}__dbt_tmp as
              select id, email, plan, score from {self.t} where id <> 3
              union all select 10, 'user10@example.com', 'pro', 1;
            alter table {self.t} rename to {self.t}__dbt_backup;
            alter table {self.t}__dbt_tmp rename to {self.t};
            drop table {self.t}__dbt_backup cascade;
        """)
        self.sync_now()
        self.assertEqual(self.members(), ["email:renamed2@example.com", "email:user10@example.com",
                                          "email:user4@example.com", "email:user5@example.com",
                                          "email:user9@example.com"])

    def test_run_killed_during_an_upload_leaves_exact_membership(self):
        # The first subscribe call hangs at Iterable (and applies nothing);
        # the run's process is killed while it waits. The scheduler retries
        # the run, and the rows of the lost call are sent again once their
        # settle time has passed: the list ends with exactly the model.
        iterable.configure(faults=[{"status": 200, "delay_s": 20, "body": {"successCount": 0, "failCount": 0}}])
        self.setup_sync(rows=30, mode=f"AUDIENCE '{LIST}'",
                        server_options=", batch_size '10', max_in_flight '1', settle_time '1s', timeout '60s'")
        killed = int(cluster.sql(f"select revetl.run_sync('{self.s}')"))
        wait_for(lambda: any(r.get("fault") for r in iterable.requests()), timeout=60, what="the hanging call")
        cluster.kill_runs()
        cluster.wait_for_run_after(self.s, killed)
        # Rows whose call was lost are re-verified by the next run at the latest.
        wait_for(lambda: self.sync_now() and len(self.members()) == 30, timeout=120, what="all 30 members")
        self.assertEqual(self.members(), sorted(f"email:user{i}@example.com" for i in range(1, 31)))
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "0", "0"])

    def test_audience_by_user_id_and_unknown_list(self):
        self.setup_sync(rows=3, mode=f"AUDIENCE '{LIST}'", map_="'u' || id AS \"userId\"",
                        match='MATCH ON "userId"')
        self.sync_now()
        self.assertEqual(self.members(), ["userId:u1", "userId:u2", "userId:u3"])
        subs = self.bodies("/api/lists/subscribe")
        self.assertEqual(subs[0]["subscribers"][0], {"userId": "u1", "preferUserId": True})
        # A list Iterable does not have refuses every row, with its message.
        cluster.sql(f"""select * from revetl.execute($$ALTER SYNC {self.s} SET MODE AUDIENCE '77'$$)""")
        self.sync_now(check=False)
        self.assertEqual(self.last()[:3], ["partial", "0", "3"])
        reason = cluster.rows(f"select distinct reason from revetl.rejected_rows where sync_name = '{self.s}'")
        self.assertEqual(reason, [["BadParams: List 77 does not exist"]])

    def test_refusals_at_create_sync(self):
        cluster.sql(f"""create table {self.t} (id int primary key, email text);
                        create server {self.srv} foreign data wrapper revetl
                          options (type 'iterable', url '{iterable.url}')""")
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} "
                        f"KEY (id) MODE INSERT$$)")
        self.assertIn("cannot use mode insert", str(e.exception))
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} "
                        f"KEY (id) MODE AUDIENCE 'vip'$$)")
        self.assertIn("not a valid Iterable list id", str(e.exception))

    def test_refused_key_fails_the_run(self):
        self.setup_sync(rows=3, key="wrong-key")
        self.sync_now(check=False)
        status, delivered, _, _, _, error = self.last()
        self.assertEqual((status, delivered), ("failed", "0"))
        self.assertIn("HTTP 401", error)
        self.assertNotIn("wrong-key", error)


if __name__ == "__main__":
    unittest.main()

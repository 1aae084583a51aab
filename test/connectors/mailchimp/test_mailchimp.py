"""The Mailchimp connector against the stateful mock Mailchimp (validating every
request against the derived Mailchimp OpenAPI): audience members upserted through
the batch endpoint with merge fields, members named in errors[] refused alone
with Mailchimp's error code, INSERT and UPDATE as the API can honour them,
MIRROR removals archived (and a returning row made a member again), the
10-connection limit and the bare 403 waited out, a problem-body 403 and a wrong
key failing the run, an OAuth token as Bearer, the data centre's host going
through revetl.allowed_hosts, a sync's max_in_flight kept within 10,
and MODE AUDIENCE: exact tag membership after adds, removals, a changed email
and a model rebuilt by dbt."""

import hashlib
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockMailchimp, PsqlError, wait_for  # noqa: E402

cluster = None
mc = None
LIST = "a1b2c3d4e5"
KEY = "test-key-us6"


def h(email):
    return hashlib.md5(email.lower().encode()).hexdigest()


def setUpModule():
    global cluster, mc
    cluster = Cluster(name="revetl-mailchimp").start()
    mc = MockMailchimp(api_key=KEY)
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if mc:
        mc.stop()
    if cluster:
        cluster.destroy()


class MailchimpTest(unittest.TestCase):
    n = 0

    def setUp(self):
        mc.reset()
        mc.configure(lists=[LIST])
        MailchimpTest.n += 1
        self.t = f"people_{MailchimpTest.n}"
        self.srv = f"mc_{MailchimpTest.n}"
        self.s = f"to_mailchimp_{MailchimpTest.n}"
        self.others = []

    def tearDown(self):
        for s in [self.s] + self.others:
            cluster.sql(f"select revetl.drop_sync('{s}', if_exists => true)")
        # Every request conformed to the contract.
        self.assertEqual(mc.contract_violations(), [])

    def setup_server(self, server_options="", key=KEY):
        cluster.sql(f"""
            create server {self.srv} foreign data wrapper revetl
              options (type 'mailchimp', url '{mc.url}', list_id '{LIST}' {server_options});
            create user mapping for postgres server {self.srv} options (api_key '{key}');
        """)

    def setup_sync(self, rows=10, server_options="", mode="MIRROR", key=KEY,
                   map_="lower(email) AS email_address, fname AS fname, plan AS plan", with_=""):
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, fname text, plan text);
            insert into {self.t} select g, 'User' || g || '@example.com', 'Ada' || g, 'pro'
              from generate_series(1, {rows}) g;
        """)
        self.setup_server(server_options, key)
        self.create_sync(self.s, self.t, mode, map_, with_)

    def create_sync(self, name, source, mode, map_="lower(email) AS email_address, fname AS fname, plan AS plan",
                    with_=""):
        cluster.sql(f"""select * from revetl.execute($$
              CREATE SYNC {name} FROM {source} TO {self.srv} KEY (id) MODE {mode} MAP ({map_}) {with_}
            $$)""")

    def sync_now(self, sync=None, check=True):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{sync or self.s}', wait => true)", check=False)
        if check:
            self.assertEqual(rc, 0, err)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, sync=None, cols="status, rows_delivered, rows_rejected, requests, throttled, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{sync or self.s}' "
                            f"order by id desc limit 1")[0]

    def bodies(self, method="POST", suffix=""):
        return [json.loads(r["body"]) for r in mc.requests()
                if r["method"] == method and r["path"] == f"/3.0/lists/{LIST}{suffix}"]

    def live(self):
        return sorted(e for e, m in mc.members(LIST).items() if m["status"] != "archived")

    def rejected(self, sync=None):
        return cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                            f"where sync_name = '{sync or self.s}' order by key")

    def test_batch_upsert_with_merge_fields_then_mirror_archives(self):
        self.setup_sync(rows=30, server_options=", batch_size '25'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "30", "0"])
        members = mc.members(LIST)
        self.assertEqual(len(members), 30)
        self.assertEqual(members["user3@example.com"]["merge_fields"], {"FNAME": "Ada3", "PLAN": "pro"})
        self.assertEqual(members["user3@example.com"]["status"], "subscribed")
        batches = self.bodies()
        self.assertEqual(sorted(len(b["members"]) for b in batches), [5, 25])
        self.assertTrue(all(b["update_existing"] is True for b in batches))
        first = mc.requests()[0]
        self.assertTrue(first["headers"]["authorization"].startswith("Basic "))

        cluster.sql(f"update {self.t} set plan = 'team' where id = 3; delete from {self.t} where id in (4, 5)")
        mc.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        members = mc.members(LIST)
        self.assertEqual(members["user3@example.com"]["merge_fields"]["PLAN"], "team")
        # Removed rows are archived, not deleted permanently.
        self.assertEqual(members["user4@example.com"]["status"], "archived")
        self.assertEqual(len(self.live()), 28)
        deletes = sorted(r["path"] for r in mc.requests() if r["method"] == "DELETE")
        self.assertEqual(deletes, sorted(f"/3.0/lists/{LIST}/members/{h(f'user{i}@example.com')}" for i in (4, 5)))
        self.assertFalse(any("delete-permanent" in r["path"] for r in mc.requests()))

        # A row that comes back makes the archived member a member again.
        cluster.sql(f"insert into {self.t} values (4, 'user4@example.com', 'Ada4', 'pro')")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])
        self.assertEqual(mc.members(LIST)["user4@example.com"]["status"], "subscribed")
        self.assertEqual(len(self.live()), 29)

    def test_errors_refuse_their_rows_only(self):
        self.setup_sync(rows=6, mode="UPSERT")
        cluster.sql(f"update {self.t} set email = 'broken' where id = 2; "
                    f"update {self.t} set plan = 'XX' where id = 5")
        mc.configure(reject_field="PLAN", reject_pattern="^XX$", compliance=["user6@example.com"])
        self.sync_now(check=False)
        self.assertEqual(self.last()[:3], ["partial", "3", "3"])
        self.assertEqual(self.rejected(), [
            ['{"id": 2}', "200", "ERROR_GENERIC", "broken looks fake or invalid, please enter a real email address."],
            ['{"id": 5}', "200", "ERROR_GENERIC", "Your merge fields were invalid."],
            ['{"id": 6}', "200", "ERROR_CONTACT_EXISTS",
             "user6@example.com is in a compliance state due to unsubscribe, bounce, or compliance review and "
             "cannot be subscribed."]])
        self.assertEqual(self.live(), ["user1@example.com", "user3@example.com", "user4@example.com"])
        # One call carried them all: the others of it were delivered.
        self.assertEqual(len(self.bodies()), 1)
        # Fixed, the rows go on the next run.
        mc.configure(reject_field=None, compliance=[])
        cluster.sql(f"update {self.t} set email = 'user2@example.com' where id = 2; "
                    f"update {self.t} set plan = 'pro' where id = 5")
        self.sync_now()
        self.assertEqual(len(self.live()), 6)

    def test_insert_and_update_modes(self):
        self.setup_sync(rows=3, mode="INSERT")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        self.assertTrue(all(b["update_existing"] is False for b in self.bodies()))
        # An existing member is refused by INSERT.
        cluster.sql(f"create table {self.t}_more as select * from {self.t}; "
                    f"alter table {self.t}_more add primary key (id); "
                    f"insert into {self.t}_more values (4, 'user4@example.com', 'Ada4', 'pro')")
        ins = f"{self.s}_ins"
        self.others.append(ins)
        self.create_sync(ins, f"{self.t}_more", "INSERT")
        self.sync_now(ins, check=False)
        self.assertEqual(self.last(ins)[:3], ["partial", "1", "3"])
        self.assertEqual({r[2] for r in self.rejected(ins)}, {"ERROR_CONTACT_EXISTS"})

        # UPDATE patches existing members, and refuses the others.
        upd = f"{self.s}_upd"
        self.others.append(upd)
        cluster.sql(f"update {self.t}_more set plan = 'gold'; "
                    f"insert into {self.t}_more values (5, 'user5@example.com', 'Ada5', 'pro')")
        self.create_sync(upd, f"{self.t}_more", "UPDATE")
        mc.clear_requests()
        self.sync_now(upd, check=False)
        self.assertEqual(self.last(upd)[:3], ["partial", "4", "1"])
        self.assertEqual(self.rejected(upd)[0][:3], ['{"id": 5}', "404", "MEMBER_NOT_FOUND"])
        self.assertEqual({m["merge_fields"]["PLAN"] for m in mc.members(LIST).values()}, {"gold"})
        self.assertNotIn("user5@example.com", mc.members(LIST))
        self.assertEqual({r["method"] for r in mc.requests()}, {"PATCH"})

    def test_connection_limit_is_waited_out(self):
        # Two connections at most, each request held: four in flight at once
        # get 429s, which are waited out.
        mc.configure(max_connections=2, hold_s=0.3)
        self.setup_sync(rows=12, mode="UPSERT", server_options=", batch_size '1', max_in_flight '4'")
        self.sync_now()
        status, delivered, rejected, _, throttled, _ = self.last()
        self.assertEqual((status, delivered, rejected), ("succeeded", "12", "0"))
        stats = mc.stats()
        self.assertGreater(stats["throttled"], 0)
        self.assertEqual(int(throttled), stats["throttled"])
        self.assertEqual(stats["max_in_flight"], 2)
        self.assertEqual(len(self.live()), 12)

    def test_a_sync_stays_within_ten_connections(self):
        # A sync's own max_in_flight cannot go past Mailchimp's 10
        # simultaneous connections: no request is ever refused for it.
        mc.configure(hold_s=0.3)
        self.setup_sync(rows=40, mode="UPSERT", server_options=", batch_size '1', max_in_flight '10'",
                        with_="WITH (max_in_flight = 20)")
        self.sync_now()
        status, delivered, rejected, _, throttled, _ = self.last()
        self.assertEqual((status, delivered, rejected, throttled), ("succeeded", "40", "0", "0"))
        stats = mc.stats()
        self.assertEqual(stats["throttled"], 0)
        self.assertGreater(stats["max_in_flight"], 4)
        self.assertLessEqual(stats["max_in_flight"], 10)

    def test_bare_403_is_throttling_and_a_problem_403_fails_the_run(self):
        mc.configure(faults=[{"status": 403, "bare": True}, {"status": 403, "bare": True}])
        self.setup_sync(rows=4, mode="UPSERT", server_options=", max_in_flight '1'")
        self.sync_now()
        status, delivered, _, _, throttled, _ = self.last()
        self.assertEqual((status, delivered, throttled), ("succeeded", "4", "2"))
        self.assertEqual(len(self.live()), 4)
        # A 403 with a problem body is a refusal: the run fails, rows are not rejected.
        mc.configure(faults=[{"status": 403, "body": {
            "type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": "Forbidden", "status": 403,
            "detail": "The API key provided is linked to a different user.", "instance": "x"}}])
        cluster.sql(f"update {self.t} set plan = 'team'")
        self.sync_now(check=False)
        status, delivered, rejected, _, _, error = self.last()
        self.assertEqual((status, delivered, rejected), ("failed", "0", "0"))
        self.assertIn("Forbidden: The API key provided is linked to a different user", error)
        self.assertIn(f"allowed to manage audience {LIST}", error)

    def test_wrong_key_fails_the_run(self):
        self.setup_sync(rows=3, key="wrong-key-us6")
        self.sync_now(check=False)
        status, delivered, rejected, _, _, error = self.last()
        self.assertEqual((status, delivered, rejected), ("failed", "0", "0"))
        self.assertIn("HTTP 401", error)
        self.assertIn("API Key Invalid", error)
        self.assertNotIn("wrong-key", error)

    def test_oauth_token_as_bearer(self):
        # An OAuth access token names no data centre: the server gives dc
        # (here with the mock's url, which wins over it).
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, fname text, plan text);
            insert into {self.t} values (1, 'a@example.com', 'A', 'pro');
            create server {self.srv} foreign data wrapper revetl
              options (type 'mailchimp', url '{mc.url}', dc 'us6', list_id '{LIST}');
            create user mapping for postgres server {self.srv} options (token 'test-oauth-token');
        """)
        self.create_sync(self.s, self.t, "UPSERT")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])
        self.assertEqual({r["headers"]["authorization"] for r in mc.requests()}, {"Bearer test-oauth-token"})
        self.assertEqual(self.live(), ["a@example.com"])

    def test_data_centre_host_goes_through_allowed_hosts(self):
        # Without a url the host is the key's data centre, and the policy
        # judges it before anything is sent.
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, fname text, plan text);
            insert into {self.t} values (1, 'a@example.com', 'A', 'pro');
            create server {self.srv} foreign data wrapper revetl options (type 'mailchimp', list_id '{LIST}');
            create user mapping for postgres server {self.srv} options (api_key 'secret-us19');
        """)
        self.create_sync(self.s, self.t, "UPSERT")
        before = cluster.sql("show revetl.allowed_hosts")
        allowed = "127.0.0.1"
        cluster.sql(f"alter system set revetl.allowed_hosts = '{allowed}'")
        try:
            cluster.sql("select pg_reload_conf()")
            wait_for(lambda: cluster.sql("show revetl.allowed_hosts") == allowed, timeout=30,
                     what="the allowed_hosts reload")
            self.sync_now(check=False)
            status, delivered, _, _, _, error = self.last()
            self.assertEqual((status, delivered), ("failed", "0"))
            self.assertIn('destination host "us19.api.mailchimp.com"', error)
            self.assertIn("revetl.allowed_hosts", error)
            self.assertNotIn("secret", error)
        finally:
            cluster.sql("alter system reset revetl.allowed_hosts")
            cluster.sql("select pg_reload_conf()")
            wait_for(lambda: cluster.sql("show revetl.allowed_hosts") == before, timeout=30, what="the reset")

    def test_audience_tag_membership_follows_the_model(self):
        # Members first (a tag holds members only), then the tag's model.
        self.setup_sync(rows=12, mode="UPSERT")
        self.sync_now()
        tag = "VIP customers"
        vip = f"{self.t}_vip"
        cluster.sql(f"create table {vip} as select * from {self.t} where id <= 5; "
                    f"alter table {vip} add primary key (id); "
                    f"insert into {vip} values (99, 'stranger@example.com', 'S', 'pro')")
        aud = f"{self.s}_vip"
        self.others.append(aud)
        self.create_sync(aud, vip, f"AUDIENCE '{tag}'", map_="lower(email) AS email_address")
        mc.clear_requests()
        self.sync_now(aud, check=False)
        # The stranger is not a member of the audience: refused, never created.
        self.assertEqual(self.last(aud)[:3], ["partial", "5", "1"])
        self.assertEqual(self.rejected(aud)[0][:3], ['{"id": 99}', "404", "MEMBER_NOT_FOUND"])
        self.assertEqual(mc.tagged(LIST, tag), [f"user{i}@example.com" for i in range(1, 6)])
        tags = [json.loads(r["body"]) for r in mc.requests() if r["path"].endswith("/tags")]
        self.assertEqual(tags[0], {"tags": [{"name": tag, "status": "active"}]})
        self.assertEqual(len(self.bodies()), 0)  # membership only: no member is written
        cluster.sql(f"delete from {vip} where id = 99")

        # Another field changes: nothing is sent.
        self.sync_now(aud)
        mc.clear_requests()
        cluster.sql(f"update {vip} set plan = 'team'")
        self.sync_now(aud)
        self.assertEqual(self.last(aud)[:2], ["succeeded", "0"])
        self.assertEqual(mc.requests(), [])

        # A removed row leaves the tag; a changed email leaves under the old
        # member and joins under the new one; a new row joins.
        cluster.sql(f"delete from {vip} where id = 1; "
                    f"update {vip} set email = 'User11@example.com' where id = 2; "
                    f"insert into {vip} values (9, 'user9@example.com', 'Ada9', 'pro')")
        self.sync_now(aud)
        self.assertEqual(self.last(aud)[:3], ["succeeded", "3", "0"])
        self.assertEqual(mc.tagged(LIST, tag), ["user11@example.com", "user3@example.com", "user4@example.com",
                                                "user5@example.com", "user9@example.com"])
        inactive = sorted(r["path"].split("/")[-2] for r in mc.requests()
                          if r["path"].endswith("/tags") and json.loads(r["body"])["tags"][0]["status"] == "inactive")
        self.assertEqual(inactive, sorted([h("user1@example.com"), h("user2@example.com")]))
        # Members are not archived: only the tag is written.
        self.assertEqual(len(self.live()), 12)

        # dbt rebuilds the model (table materialization: build, swap, drop):
        # the tag holds exactly the new model's rows.
        cluster.sql(f"""
            create table {vip}__dbt_tmp as
              select id, email, fname, plan from {vip} where id <> 3
              union all select 10, 'user10@example.com', 'Ada10', 'pro';
            alter table {vip} rename to {vip}__dbt_backup;
            alter table {vip}__dbt_tmp rename to {vip};
            drop table {vip}__dbt_backup cascade;
        """)
        self.sync_now(aud)
        self.assertEqual(mc.tagged(LIST, tag), ["user10@example.com", "user11@example.com", "user4@example.com",
                                                "user5@example.com", "user9@example.com"])
        self.sync_now(aud)
        self.assertEqual(self.last(aud)[:3], ["succeeded", "0", "0"])

    def test_refusals_at_create(self):
        cluster.sql(f"create table {self.t} (id int primary key, email text)")
        self.setup_server()
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} "
                        f"KEY (id) MODE AUDIENCE ' padded'$$)")
        self.assertIn("is not a valid Mailchimp tag name", str(e.exception))
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"create server {self.srv}_x foreign data wrapper revetl "
                        f"options (type 'mailchimp', list_id '{LIST}', max_in_flight '11')")
        self.assertIn("max_in_flight", str(e.exception))
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"create server {self.srv}_y foreign data wrapper revetl "
                        f"options (type 'mailchimp', list_id '../x')")
        self.assertIn("not a Mailchimp audience id", str(e.exception))
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"create server {self.srv}_z foreign data wrapper revetl "
                        f"options (type 'mailchimp', list_id '{LIST}', dc 'evil.example.com/')")
        self.assertIn("not a Mailchimp data centre", str(e.exception))


if __name__ == "__main__":
    unittest.main()

"""The Marketo connector against the stateful mock Marketo: OAuth client
credentials through the Identity endpoint, Sync Leads by a lookup field in
calls of at most 300 with the per-lead reasons in revetl.rejected_rows,
MIRROR deletes by the kept lead ids, a changed email written onto the same
lead by its id, MODE UPDATE and INSERT, the throttling codes (606, 615)
waited out, an expired token (602 in an HTTP 200) minted again once and the
call replayed, and the daily quota (607) failing the run clearly; and
MODE AUDIENCE (static list membership): leads found or created by the lookup
field and added by id, removals by the kept lead id, a changed email (old
lead out, new lead in), per-lead refusals in revetl.rejected_rows, 606 and
602 on list calls, a run killed mid-flight converging, and exact membership
after a model rebuilt by dbt. Every request (body and list query) is
checked against Marketo's Swagger contract."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockMarketo, wait_for  # noqa: E402

cluster = None
mk = None
SYNC = "/rest/v1/leads.json"
DELETE = "/rest/v1/leads/delete.json"
LIST = 1234
LIST_PATH = f"/rest/v1/lists/{LIST}/leads.json"


def setUpModule():
    global cluster, mk
    cluster = Cluster(name="revetl-marketo").start()
    mk = MockMarketo()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if mk:
        mk.stop()
    if cluster:
        cluster.destroy()


class MarketoCase(unittest.TestCase):
    """A fresh mock, and names of its own, for each test; the helpers."""
    n = 0

    def setUp(self):
        mk.reset()
        MarketoCase.n += 1
        self.t = f"people_{MarketoCase.n}"
        self.srv = f"mk_{MarketoCase.n}"
        self.s = f"to_mk_{MarketoCase.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(mk.contract_violations(), [])

    def setup_sync(self, rows=30, mode="MIRROR", server_options=""):
        # rate_limit's period is also how long a 606 is waited out.
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, last text);
            insert into {self.t} select g, 'user' || g || '@example.com', 'Last' || g
              from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'marketo', url '{mk.url}', rate_limit '100 per 1s' {server_options});
            create user mapping for postgres server {self.srv} options (
              oauth_token_url '{mk.token_url}', client_id '{MockMarketo.CLIENT_ID}',
              client_secret '{MockMarketo.CLIENT_SECRET}');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id) MODE {mode}
                MAP (email AS email, last AS "lastName", id AS "externalId__c")
            $$);
        """)

    def sync_now(self):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def expected(self):
        return {int(i): (e, ln) for i, e, ln in cluster.rows(f"select id, email, last from {self.t}")}

    def actual(self):
        return {lead["externalId__c"]: (lead.get("email"), lead.get("lastName")) for lead in mk.leads()}

    def calls(self, path):
        return [r for r in mk.requests() if r["path"] == path]

    def rejected(self):
        return cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                            f"where sync_name = '{self.s}' order by key")

    def shadow_ids(self):
        shadow = cluster.sql(f"select shadow_table from revetl.syncs where name = '{self.s}'")
        return {int(k): v for k, v in cluster.rows(f"select key::jsonb->>'id', dest_id from revetl.{shadow}")}



class MarketoTest(MarketoCase):
    def test_create_sync_refuses_what_cannot_work(self):
        cluster.sql(f"""create table {self.t} (id int primary key, email text);
            create server {self.srv} foreign data wrapper revetl options (type 'marketo', munchkin_id '123-ABC-456')""")
        for clause, message in [("MATCH ON id MODE UPSERT", "cannot upsert Marketo leads by id"),
                                ("OBJECT lists", "lists"),
                                ("MATCH ON \"email;x\"", "cannot look Marketo leads up by")]:
            _, err, rc = cluster.psql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO "
                                      f"{self.srv} {clause} KEY (id) MAP (email AS email)$$)", check=False)
            self.assertNotEqual(rc, 0, clause)
            self.assertIn(message, err, clause)
        _, err, rc = cluster.psql(f"alter server {self.srv} options (set munchkin_id 'evil.com/x')", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("invalid value for option \"munchkin_id\"", err)
        _, err, rc = cluster.psql(f"alter server {self.srv} options (add max_in_flight '11')", check=False)
        self.assertNotEqual(rc, 0)

    def test_sync_rejects_rows_mirrors_deletes_and_follows_a_changed_email(self):
        self.setup_sync(rows=350)
        cluster.sql(f"update {self.t} set email = 'not-an-email' where id = 7")
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.last()[:3], ["partial", "349", "1"])
        calls = self.calls(SYNC)
        self.assertEqual(sorted(len(r["body"]["input"]) for r in calls), [50, 300])
        for r in calls:
            self.assertEqual((r["body"]["action"], r["body"]["lookupField"]), ("createOrUpdate", "email"))
            self.assertTrue(r["headers"]["content-type"].startswith("application/json"))
        self.assertEqual(self.rejected(), [['{"id": 7}', "200", "1003", "Invalid email"]])
        self.assertEqual(self.actual(), {k: v for k, v in self.expected().items() if k != 7})
        ids = self.shadow_ids()
        by_key = {lead["externalId__c"]: str(lead["id"]) for lead in mk.leads()}
        self.assertEqual(ids[3], by_key[3])
        self.assertEqual(mk.stats()["tokens_issued"], 1)

        # No change, no call (row 7 is planned again and refused again).
        mk.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "0", "1"])
        self.assertEqual([len(r["body"]["input"]) for r in self.calls(SYNC)], [1])

        # Deletes by the kept ids; a changed email lands on the same lead.
        mk.clear_requests()
        cluster.sql(f"""delete from {self.t} where id in (3, 4);
                        update {self.t} set email = 'moved@example.com' where id = 5;
                        update {self.t} set last = 'Changed' where id = 6""")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "4", "1"])
        deletes = self.calls(DELETE)
        self.assertEqual(len(deletes), 1)
        self.assertEqual(sorted(r["id"] for r in deletes[0]["body"]["input"]), sorted([int(ids[3]), int(ids[4])]))
        by_id = [r for r in self.calls(SYNC) if r["body"]["lookupField"] == "id"]
        self.assertEqual(len(by_id), 1)
        self.assertEqual(by_id[0]["body"]["action"], "updateOnly")
        self.assertEqual(sorted(r["id"] for r in by_id[0]["body"]["input"]), sorted([int(ids[5]), int(ids[6])]))
        self.assertEqual(self.actual(), {k: v for k, v in self.expected().items() if k != 7})
        self.assertEqual(self.shadow_ids()[5], ids[5], "the same lead, not a new one")
        self.assertEqual(len(mk.leads()), 347)

    def test_update_and_insert_modes(self):
        # MODE UPDATE: Marketo's 1004 for leads it does not have.
        self.setup_sync(rows=4, mode="UPDATE")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "0", "4"])
        self.assertEqual({r[2] for r in self.rejected()}, {"1004"})
        self.assertEqual(self.calls(SYNC)[0]["body"]["action"], "updateOnly")
        self.assertEqual(mk.leads(), [])
        cluster.sql(f"select revetl.drop_sync('{self.s}')")
        self.s += "_insert"  # rejected_rows outlive a dropped sync of the same name
        # MODE INSERT: createOnly; a lead that exists is Marketo's 1005.
        cluster.sql(f"""select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id) MODE INSERT
                MAP (email AS email, last AS "lastName", id AS "externalId__c") $$)""")
        mk.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "4", "0"])
        self.assertEqual(self.calls(SYNC)[0]["body"]["action"], "createOnly")
        cluster.sql(f"insert into {self.t} values (5, 'USER1@example.com', 'Dup')")
        self.sync_now()
        self.assertEqual(self.last()[1:3], ["0", "1"])
        self.assertEqual(self.rejected(), [['{"id": 5}', "200", "1005", "Lead already exists"]])
        self.assertEqual(len(mk.leads()), 4)

    def test_throttling_codes_are_waited_out(self):
        self.setup_sync(rows=10)
        mk.configure(faults=[{"code": "606", "message": "Max rate limit '100' exceeded with in '20' secs"},
                             {"code": "615", "message": "Concurrent access limit reached"}])
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "10", "0"])
        codes = [r.get("code") for r in self.calls(SYNC)]
        self.assertEqual(codes, ["606", "615", None])
        self.assertEqual(self.actual(), self.expected())
        self.assertLessEqual(mk.stats()["max_in_flight"], 10)

    def test_expired_token_is_minted_again_once(self):
        self.setup_sync(rows=5)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        issued = mk.stats()["tokens_issued"]
        mk.expire_tokens()
        cluster.sql(f"update {self.t} set last = 'After expiry'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        stats = mk.stats()
        self.assertEqual(stats["tokens_issued"], issued + 1, "minted again exactly once")
        self.assertEqual(stats["token_expired"], 1)
        expired = [r for r in self.calls(SYNC) if r.get("code") == "602"]
        replayed = [r for r in self.calls(SYNC) if r["seq"] > expired[0]["seq"] and not r.get("code")]
        self.assertEqual(len(replayed), 1)
        self.assertEqual(replayed[0]["body"], expired[0]["body"])
        self.assertEqual(self.actual(), self.expected())

    def test_daily_quota_fails_the_run_clearly(self):
        self.setup_sync(rows=5)
        mk.configure(daily_quota=0)
        self.sync_now()
        status, delivered, rejected, error = self.last()
        self.assertEqual((status, delivered, rejected), ("failed", "0", "0"))
        self.assertIn("607", error)
        self.assertIn("daily API quota", error)
        self.assertNotIn(MockMarketo.CLIENT_SECRET, error)


class MarketoAudienceTest(MarketoCase):
    """MODE AUDIENCE '<static list id>'."""

    def setUp(self):
        super().setUp()
        mk.configure(lists=[LIST])

    def setup_list_sync(self, rows=5, server_options=""):
        self.setup_sync(rows=rows, mode=f"AUDIENCE '{LIST}'", server_options=server_options)

    def members(self):
        """The list's members as the model's ids (through each lead's email)."""
        emails = {lead["id"]: lead.get("email") for lead in mk.leads()}
        return sorted(emails[i] for i in mk.members(LIST))

    def model(self):
        return sorted(r[0] for r in cluster.rows(f"select lower(email) from {self.t} where email like '%@%'"))

    def list_calls(self, method):
        return [r for r in self.calls(LIST_PATH) if r["method"] == method]

    def test_membership_follows_the_model(self):
        self.setup_list_sync(rows=5)
        cluster.sql(f"update {self.t} set email = 'not-an-email' where id = 4")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "4", "1"])
        self.assertEqual(self.members(), self.model())
        # Leads by the lookup field alone (createOrUpdate), then ids to the list.
        lookups = self.calls(SYNC)
        self.assertEqual(len(lookups), 1)
        self.assertEqual((lookups[0]["body"]["action"], lookups[0]["body"]["lookupField"]), ("createOrUpdate", "email"))
        self.assertEqual(lookups[0]["body"]["input"][0], {"email": "user1@example.com"})
        adds = self.list_calls("POST")
        self.assertEqual(len(adds), 1)
        self.assertEqual(sorted(r["id"] for r in adds[0]["body"]["input"]),
                         sorted(int(i) for i in adds[0]["query"].replace("id=", "").split("&")))
        # The refused row, with Marketo's reason; lead ids kept as dest_id.
        self.assertEqual(self.rejected(), [['{"id": 4}', "200", "1003", "Invalid email"]])
        by_email = {lead["email"]: str(lead["id"]) for lead in mk.leads()}
        self.assertEqual(self.shadow_ids()[2], by_email["user2@example.com"])

        # Another field changes: nothing to send (row 4 is refused again).
        mk.clear_requests()
        cluster.sql(f"update {self.t} set last = 'Other'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "0", "1"])
        self.assertEqual(self.list_calls("POST") + self.list_calls("DELETE"), [])

        # A removed row leaves by its kept id, no lookup; a changed email
        # leaves under its old lead and joins under the new one; leads stay.
        mk.clear_requests()
        old2 = int(self.shadow_ids()[2])
        cluster.sql(f"""delete from {self.t} where id in (1, 4);
                        update {self.t} set email = 'moved@example.com' where id = 2;
                        insert into {self.t} values (9, 'user9@example.com', 'L9')""")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        self.assertEqual(self.members(), self.model())
        removed = sorted(r["id"] for c in self.list_calls("DELETE") for r in c["body"]["input"])
        self.assertEqual(removed, sorted([old2, int(by_email["user1@example.com"])]))
        self.assertEqual(sorted(r["email"] for c in self.calls(SYNC) for r in c["body"]["input"]),
                         ["moved@example.com", "user9@example.com"])
        self.assertEqual(self.calls(DELETE), [], "leads are never deleted in this mode")
        self.assertNotEqual(int(self.shadow_ids()[2]), old2)

        # dbt rebuilds the model (build, swap, drop): exactly its rows.
        cluster.sql(f"""
            create table {self.t}__dbt_tmp as
              select id, email, last from {self.t} where id <> 3
              union all select 10, 'user10@example.com', 'L10';
            alter table {self.t} rename to {self.t}__dbt_backup;
            alter table {self.t}__dbt_tmp rename to {self.t};
            drop table {self.t}__dbt_backup cascade;
        """)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "2", "0"])
        self.assertEqual(self.members(), self.model())
        self.assertEqual(len(self.model()), 4)

    def test_removal_of_a_lead_gone_and_an_unknown_list(self):
        self.setup_list_sync(rows=3)
        self.sync_now()
        # The lead of row 1 is deleted in Marketo; its row leaves the model:
        # Marketo's 1004 means it is out of the list already.
        cluster.sql(f"delete from {self.t} where id = 1")
        lead1 = int(self.shadow_ids()[1])
        self.delete_lead(lead1)
        mk.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])
        self.assertEqual(self.members(), self.model())
        # A list Marketo does not have: every row refused with its code.
        cluster.sql(f"select * from revetl.execute($$ALTER SYNC {self.s} SET MODE AUDIENCE '999'$$)")
        cluster.sql(f"insert into {self.t} values (7, 'user7@example.com', 'L7')")
        self.sync_now()
        self.assertEqual(self.last()[1], "0")
        self.assertEqual({tuple(r[2:]) for r in self.rejected()}, {("1013", "Static list not found")})
        self.assertIn('{"id": 7}', [r[0] for r in self.rejected()])

    def delete_lead(self, lead_id):
        """Deletes a lead as a Marketo user would (through the API, with a token of our own)."""
        import json
        import urllib.request
        from urllib.parse import urlencode
        creds = urlencode({"grant_type": "client_credentials", "client_id": MockMarketo.CLIENT_ID,
                           "client_secret": MockMarketo.CLIENT_SECRET})
        with urllib.request.urlopen(urllib.request.Request(f"{mk.token_url}?{creds}"), timeout=10) as r:
            token = json.loads(r.read())["access_token"]
        req = urllib.request.Request(mk.url + DELETE, data=json.dumps({"input": [{"id": lead_id}]}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {token}"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(json.loads(r.read())["result"][0]["status"], "deleted")

    def test_throttling_and_token_expiry_on_list_calls(self):
        self.setup_list_sync(rows=4)
        mk.configure(faults=[{"code": "606", "message": "Max rate limit '100' exceeded with in '20' secs",
                              "path": LIST_PATH}])
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "4", "0"])
        self.assertEqual([r.get("code") for r in self.list_calls("POST")], ["606", None])
        self.assertEqual(self.members(), self.model())
        issued = mk.stats()["tokens_issued"]
        mk.expire_tokens()
        mk.clear_requests()
        cluster.sql(f"delete from {self.t} where id = 4")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])
        self.assertEqual(mk.stats()["tokens_issued"], issued + 1)
        self.assertEqual([r.get("code") for r in self.list_calls("DELETE")], ["602", None])
        self.assertEqual(self.members(), self.model())
        # The daily quota stops the run on a list call too.
        mk.configure(daily_quota=0)
        cluster.sql(f"delete from {self.t} where id = 3")
        self.sync_now()
        self.assertEqual(self.last()[0], "failed")
        self.assertIn("607", self.last()[3])

    def test_run_killed_mid_flight_converges_to_exact_membership(self):
        # Every call is held 20 s at Marketo; the run's process is killed
        # while the first one waits. The held call still applies (as a
        # destination does after the client left); the scheduler retries the
        # run and later runs send what was lost: the list ends as the model.
        mk.configure(delay_ms=20000)
        self.setup_list_sync(rows=30, server_options=", batch_size '10', max_in_flight '1', settle_time '1s', "
                                                     "timeout '60s'")
        killed = int(cluster.sql(f"select revetl.run_sync('{self.s}')"))
        wait_for(lambda: mk.stats()["max_in_flight"] >= 1, timeout=60, what="a call in flight")
        mk.configure(delay_ms=0)  # the call in flight keeps its delay
        self.assertTrue(cluster.kill_runs(), "the run's process")
        cluster.wait_for_run_after(self.s, killed)
        wait_for(lambda: self.sync_now() and self.members() == self.model(), timeout=120, what="all 30 members")
        self.assertEqual(len(self.members()), 30)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "0", "0"])
        self.assertEqual(len(mk.leads()), 30, "one lead per email, however often it was looked up")


if __name__ == "__main__":
    unittest.main()

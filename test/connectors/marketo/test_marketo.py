"""The Marketo connector against the stateful mock Marketo: OAuth client
credentials through the Identity endpoint, Sync Leads by a lookup field in
calls of at most 300 with the per-lead reasons in revetl.rejected_rows,
MIRROR deletes by the kept lead ids, a changed email written onto the same
lead by its id, MODE UPDATE and INSERT, the throttling codes (606, 615)
waited out, an expired token (602 in an HTTP 200) minted again once and the
call replayed, and the daily quota (607) failing the run clearly. Every
request body is checked against Marketo's Swagger contract."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockMarketo  # noqa: E402

cluster = None
mk = None
SYNC = "/rest/v1/leads.json"
DELETE = "/rest/v1/leads/delete.json"


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


class MarketoTest(unittest.TestCase):
    n = 0

    def setUp(self):
        mk.reset()
        MarketoTest.n += 1
        self.t = f"people_{MarketoTest.n}"
        self.srv = f"mk_{MarketoTest.n}"
        self.s = f"to_mk_{MarketoTest.n}"

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


if __name__ == "__main__":
    unittest.main()

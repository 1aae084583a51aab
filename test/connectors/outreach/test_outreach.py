"""The Outreach connector against the stateful mock Outreach: OAuth with a
refresh token that Outreach rotates (the new one written back into the user
mapping), prospects looked up by email then created or PATCHed, a record
that exists before the first run updated rather than duplicated, JSON:API
validation errors in revetl.rejected_rows, MIRROR deletes by the kept ids,
a changed email written onto the same prospect by its kept id, accounts by
customId, MODE UPDATE, a 429 waited out, and an expired access token
refreshed once with the call replayed. Every request body is checked against
Outreach's OpenAPI contract."""

import os
import sys
import unittest
from urllib.parse import parse_qs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockOutreach, wait_for  # noqa: E402

cluster = None
mo = None


def setUpModule():
    global cluster, mo
    cluster = Cluster(name="revetl-outreach").start()
    mo = MockOutreach()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if mo:
        mo.stop()
    if cluster:
        cluster.destroy()


class OutreachTest(unittest.TestCase):
    n = 0

    def setUp(self):
        mo.reset()
        OutreachTest.n += 1
        self.t = f"people_{OutreachTest.n}"
        self.srv = f"or_{OutreachTest.n}"
        self.s = f"to_or_{OutreachTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(mo.contract_violations(), [])

    def server(self):
        cluster.sql(f"""
            create server {self.srv} foreign data wrapper revetl options (type 'outreach', url '{mo.api_url}');
            create user mapping for postgres server {self.srv} options (
              oauth_token_url '{mo.token_url}', client_id '{MockOutreach.CLIENT_ID}',
              client_secret '{MockOutreach.CLIENT_SECRET}', refresh_token '{MockOutreach.REFRESH_TOKEN}');""")

    def setup_sync(self, rows=12, mode="MIRROR"):
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, last text);
            insert into {self.t} select g, 'user' || g || '@example.com', 'Last' || g
              from generate_series(1, {rows}) g;""")
        self.server()
        cluster.sql(f"""select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id) MODE {mode}
                MAP (email AS emails, last AS "lastName", id::text AS "externalId")
            $$)""")

    def sync_now(self):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def expected(self):
        return {k: ([e], ln) for k, e, ln in cluster.rows(f"select id::text, email, last from {self.t}")}

    def actual(self):
        return {r["externalId"]: (r.get("emails"), r.get("lastName")) for r in mo.records("prospects")}

    def rejected(self):
        return cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                            f"where sync_name = '{self.s}' order by key")

    def shadow_ids(self):
        shadow = cluster.sql(f"select shadow_table from revetl.syncs where name = '{self.s}'")
        return {int(k): v for k, v in cluster.rows(f"select key::jsonb->>'id', dest_id from revetl.{shadow}")}

    def calls(self, method, prefix="/api/v2/prospects"):
        return [r for r in mo.requests() if r["method"] == method and r["path"].startswith(prefix)]

    def test_create_sync_refuses_what_cannot_work(self):
        cluster.sql(f"create table {self.t} (id int primary key, email text)")
        self.server()
        for clause, message in [("MATCH ON id", "cannot match Outreach records on id"),
                                ("OBJECT sequences", "sequences"),
                                ("MATCH ON \"emails]&x\"", "cannot look Outreach records up by")]:
            _, err, rc = cluster.psql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO "
                                      f"{self.srv} {clause} KEY (id) MAP (email AS emails)$$)", check=False)
            self.assertNotEqual(rc, 0, clause)
            self.assertIn(message, err, clause)

    def test_prospects_lookup_create_update_delete_and_a_changed_email(self):
        self.setup_sync(rows=12)
        cluster.sql(f"update {self.t} set email = 'not-an-email' where id = 7")
        # A prospect that exists before the first run is updated, not duplicated.
        existing = mo.seed("prospects", {"emails": ["USER3@example.com"], "firstName": "Seed"})
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.last()[:3], ["partial", "11", "1"])
        self.assertEqual(self.rejected(), [['{"id": 7}', "422", "validationError",
                                            "Emails is invalid. (/data/attributes/emails)"]])
        lookups = self.calls("GET")
        self.assertEqual(len(lookups), 12)
        self.assertEqual(parse_qs(lookups[0]["query"])["filter[emails]"][0].endswith("@example.com"), True)
        self.assertEqual(len(self.calls("POST")), 11)  # 10 created, and row 7 refused
        ids = self.shadow_ids()
        self.assertEqual(ids[3], str(existing), "the existing prospect was updated")
        self.assertEqual(len(mo.records("prospects")), 11)
        expected = {k: v for k, v in self.expected().items() if k != "7"}
        self.assertEqual(self.actual(), expected)
        for r in mo.requests():
            if r["body"] is not None and r["path"].startswith("/api/v2"):
                self.assertEqual(r["headers"]["content-type"], "application/vnd.api+json")
        wait_for(lambda: f"revetl: run {run_id} of sync \"{self.s}\": Outreach X-RateLimit-Remaining"
                 in cluster.log_text(), timeout=30, what="the rate limit note in the log")

        # No change: only row 7 is tried again.
        mo.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "0", "1"])
        self.assertEqual(len(self.calls("GET")), 1)

        mo.clear_requests()
        cluster.sql(f"""delete from {self.t} where id in (1, 2);
                        update {self.t} set email = 'moved@example.com' where id = 5;
                        update {self.t} set last = 'Changed' where id = 6""")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "4", "1"])
        self.assertEqual(sorted(r["path"] for r in self.calls("DELETE")),
                         sorted(f"/api/v2/prospects/{ids[k]}" for k in (1, 2)))
        patches = {r["path"]: r["body"] for r in self.calls("PATCH")}
        self.assertEqual(sorted(patches), sorted(f"/api/v2/prospects/{ids[k]}" for k in (5, 6)))
        self.assertEqual(patches[f"/api/v2/prospects/{ids[5]}"]["data"]["attributes"]["emails"],
                         ["moved@example.com"])
        self.assertEqual(len([r for r in self.calls("GET") if "moved" in r["query"]]), 0,
                         "a kept id needs no lookup")
        self.assertEqual(self.shadow_ids()[5], ids[5], "the same prospect, not a new one")
        self.assertEqual(self.actual(), {k: v for k, v in self.expected().items() if k != "7"})

    def test_accounts_by_custom_id_and_mode_update(self):
        cluster.sql(f"""create table {self.t} (id int primary key, name text);
                        insert into {self.t} values (1, 'Acme'), (2, 'Globex'), (3, null)""")
        self.server()
        cluster.sql(f"""select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} OBJECT accounts KEY (id) MODE UPSERT
                MAP ('c-' || id AS "customId", name AS name) $$)""")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "2", "1"])
        self.assertEqual(self.rejected(), [['{"id": 3}', "422", "validationError",
                                            "Name can't be blank. (/data/attributes/name)"]])
        self.assertEqual(sorted((a["customId"], a["name"]) for a in mo.records("accounts")),
                         [("c-1", "Acme"), ("c-2", "Globex")])
        lookups = self.calls("GET", "/api/v2/accounts")
        self.assertEqual(sorted(parse_qs(r["query"])["filter[customId]"][0] for r in lookups), ["c-1", "c-2", "c-3"])
        cluster.sql(f"select revetl.drop_sync('{self.s}')")
        self.s += "_update"  # rejected_rows outlive a dropped sync of the same name
        cluster.sql(f"""insert into {self.t} values (4, 'Initech');
              select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} OBJECT accounts KEY (id) MODE UPDATE
                MAP ('c-' || id AS "customId", upper(name) AS name) $$)""")
        mo.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[1:3], ["2", "2"])
        self.assertEqual({r[2] for r in self.rejected()}, {"NOT_FOUND"})
        self.assertEqual(self.calls("POST", "/api/v2/accounts"), [], "MODE UPDATE creates nothing")
        self.assertEqual(sorted(a["name"] for a in mo.records("accounts")), ["ACME", "GLOBEX"])

    def test_rotated_refresh_token_expiry_and_throttling(self):
        self.setup_sync(rows=4)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "4", "0"])
        # Outreach rotated the refresh token: revetl stored the new one.
        rotated = mo.refresh_token()
        self.assertNotEqual(rotated, MockOutreach.REFRESH_TOKEN)
        options = cluster.sql(f"select array_to_string(umoptions, ',') from pg_user_mapping m join "
                              f"pg_foreign_server s on s.oid = m.umserver where s.srvname = '{self.srv}'")
        self.assertIn(f"refresh_token={rotated}", options)
        issued = mo.stats()["tokens_issued"]
        mo.expire_tokens()
        mo.configure(faults=[{"status": 429, "headers": {"Retry-After": "1"},
                              "body": {"errors": [{"id": "rateLimitExceeded", "title": "Rate Limit Exceeded"}]}}])
        cluster.sql(f"update {self.t} set last = 'After expiry'")
        mo.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "4", "0"])
        stats = mo.stats()
        self.assertEqual(stats["tokens_issued"], issued + 1, "refreshed exactly once")
        statuses = [r["status"] for r in mo.requests() if r["path"].startswith("/api/v2")]
        self.assertIn(401, statuses)
        self.assertIn(429, statuses)
        self.assertEqual(self.actual(), self.expected())
        self.assertEqual(len([r for r in self.calls("PATCH") if r["status"] == 200]), 4)


if __name__ == "__main__":
    unittest.main()

"""The Intercom connector against the stateful mock Intercom: contacts found
by search and then updated by id or created, their ids kept and used for
later updates (even when the match value changes) and MIRROR archives,
per-record refusals in revetl.rejected_rows with Intercom's code and message,
a 409 conflict (search not yet consistent) resolved onto the named contact,
429s waited out until X-RateLimit-Reset, a refused token failing the run,
companies upserted on company_id and deleted, the contact_removal 'delete'
option, the Intercom-Version option, and refusals at CREATE SYNC. Every
request body is checked against Intercom's OpenAPI contract."""

import json
import os
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import INTERCOM_OPENAPI, Cluster, MockIntercom  # noqa: E402

cluster = None
intercom = None


def setUpModule():
    global cluster, intercom
    cluster = Cluster(name="revetl-intercom").start()
    intercom = MockIntercom()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if intercom:
        intercom.stop()
    if cluster:
        cluster.destroy()


def direct(mock, method, path, body):
    """A call to the mock as another Intercom client would make it."""
    req = urllib.request.Request(mock.url + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer test-token"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class IntercomTest(unittest.TestCase):
    n = 0

    def setUp(self):
        intercom.reset()
        IntercomTest.n += 1
        self.t = f"people_{IntercomTest.n}"
        self.srv = f"ic_{IntercomTest.n}"
        self.s = f"to_intercom_{IntercomTest.n}"
        self.mock = intercom

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(self.mock.contract_violations(), [])

    def setup_sync(self, rows=20, server_options="", mode="MIRROR", obj="contacts", match="email", mock=None):
        mock = mock or intercom
        if obj == "companies":
            cols = "id::text AS company_id, name AS name, plan AS plan"
        else:
            cols = "lower(email) AS email, name AS name, id::text AS external_id, score AS score, plan AS plan"
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, name text, score int, plan text);
            insert into {self.t} select g, 'User' || g || '@Example.com', 'name' || g, g, 'plan' || (g % 3)
              from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'intercom', url '{mock.url}' {server_options});
            create user mapping for postgres server {self.srv} options (token 'test-token');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} OBJECT {obj} KEY (id) MATCH ON {match}
                MODE {mode} MAP ({cols})
            $$);
        """)

    def sync_now(self):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def kept_ids(self):
        shadow = cluster.sql(f"select shadow_table from revetl.syncs where name = '{self.s}'")
        return dict(cluster.rows(f"select key::jsonb->>'id', dest_id from revetl.{shadow}"))

    def live(self):
        return {c["external_id"]: c for c in self.mock.contacts() if not c.get("archived")}

    def test_search_then_write_rejects_rows_keeps_ids_and_archives(self):
        self.setup_sync(rows=20)
        self.mock.configure(fail_records=[{"field": "email", "pattern": "^user7@", "code": "parameter_invalid",
                                           "message": "Email address is invalid"}])
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.last()[:3], ["partial", "19", "1"])
        rejected = cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                                f"where sync_name = '{self.s}'")
        self.assertEqual(len(rejected), 1)
        self.assertEqual(rejected[0][:3], ['{"id": 7}', "400", "parameter_invalid"])
        self.assertTrue(rejected[0][3].startswith("email: Email address is invalid [request_id "), rejected[0][3])
        live = self.live()
        self.assertEqual(len(live), 19)
        self.assertEqual(live["3"]["email"], "user3@example.com")
        self.assertEqual(live["3"]["role"], "user")
        self.assertEqual(live["3"]["custom_attributes"], {"score": 3, "plan": "plan0"})
        # One search and one create per row; every call names the version.
        reqs = self.mock.requests()
        self.assertEqual(len([r for r in reqs if r["path"] == "/contacts/search"]), 20)
        self.assertEqual(len([r for r in reqs if r["path"] == "/contacts" and r["method"] == "POST"]), 20)
        self.assertEqual({r["headers"].get("intercom-version") for r in reqs}, {"2.16"})
        ids = self.kept_ids()
        self.assertEqual(ids["3"], live["3"]["id"])
        self.assertIsNone(ids.get("7"))

        # No change: nothing is sent.
        self.mock.configure(fail_records=[])
        self.mock.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])  # the refused row, planned again
        self.assertEqual([r["path"] for r in self.mock.requests()], ["/contacts/search", "/contacts"])
        self.mock.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "0", "0"])
        self.assertEqual(self.mock.requests(), [])

        # A changed match value (the email) updates the same contact by its
        # kept id, without a search; removals archive by id.
        cluster.sql(f"update {self.t} set email = 'renamed5@example.com', score = 555 where id = 5;"
                    f"delete from {self.t} where id in (3, 4)")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        reqs = self.mock.requests()
        self.assertEqual(sorted((r["method"], r["path"]) for r in reqs),
                         sorted([("PUT", f"/contacts/{ids['5']}"), ("POST", f"/contacts/{ids['3']}/archive"),
                                 ("POST", f"/contacts/{ids['4']}/archive")]))
        live = self.live()
        self.assertEqual(live["5"]["id"], ids["5"])
        self.assertEqual(live["5"]["email"], "renamed5@example.com")
        self.assertEqual(live["5"]["custom_attributes"]["score"], 555)
        self.assertNotIn("3", live)
        self.assertEqual(len(self.mock.contacts()), 20, "archived, not deleted")

    def test_conflict_on_create_resolves_onto_the_named_contact(self):
        self.setup_sync(rows=3, mode="UPSERT")
        first = direct(self.mock, "POST", "/contacts", {"role": "user", "email": "user1@example.com", "name": "old"})
        second = direct(self.mock, "POST", "/contacts", {"role": "user", "external_id": "2"})
        # Intercom's search has not indexed them yet: each create meets a 409
        # naming the existing contact, and the row updates that one.
        self.mock.configure(search_delay_ms=600000)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        self.assertEqual(self.mock.stats()["conflicts"], 2)
        self.assertEqual(len(self.mock.contacts()), 3)
        ids = self.kept_ids()
        self.assertEqual((ids["1"], ids["2"]), (first["id"], second["id"]))
        by_id = {c["id"]: c for c in self.mock.contacts()}
        self.assertEqual(by_id[first["id"]]["name"], "name1")
        self.assertEqual(by_id[second["id"]]["email"], "user2@example.com")

    def test_search_hit_updates_without_create(self):
        self.setup_sync(rows=2, mode="UPDATE")
        existing = direct(self.mock, "POST", "/contacts", {"role": "user", "email": "user1@example.com"})
        self.mock.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "1", "1"])
        self.assertEqual(self.kept_ids()["1"], existing["id"])
        self.assertEqual(cluster.rows(f"select key, error_code from revetl.rejected_rows where sync_name = '{self.s}'"),
                         [['{"id": 2}', "NOT_FOUND"]])
        self.assertFalse([r for r in self.mock.requests() if r["path"] == "/contacts" and r["method"] == "POST"])

    def test_429_is_waited_out_until_reset(self):
        self.setup_sync(rows=12, server_options=", rate_limit 'none', max_in_flight '2'")
        self.mock.configure(rate_limit=6, rate_window_ms=1000)
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        status, delivered, rejected, throttled = self.last("status, rows_delivered, rows_rejected, throttled")
        self.assertEqual((status, delivered, rejected), ("succeeded", "12", "0"))
        self.assertGreater(int(throttled), 0)
        self.assertGreater(self.mock.stats()["rate_limited"], 0)
        self.assertEqual(len(self.live()), 12)

    def test_refused_token_fails_the_run(self):
        self.setup_sync(rows=5)
        self.mock.revoke()
        self.sync_now()
        status, delivered, rejected, error = self.last()
        self.assertEqual((status, delivered, rejected), ("failed", "0", "0"))
        self.assertIn("refused the credentials (HTTP 401)", error)
        self.assertIn("Access Token Invalid", error)
        self.assertNotIn("test-token", error)
        self.assertEqual(cluster.sql(f"select count(*) from revetl.rejected_rows where sync_name = '{self.s}'"), "0")
        self.assertEqual(len(self.mock.requests()), 1, "the first refusal stops the run")

    def test_companies_upsert_and_delete(self):
        self.setup_sync(rows=5, obj="companies", match="company_id")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        companies = {c["company_id"]: c for c in self.mock.companies()}
        self.assertEqual(companies["2"]["name"], "name2")
        self.assertEqual(companies["2"]["plan"], "plan2")
        ids = self.kept_ids()
        self.assertEqual(ids["2"], companies["2"]["id"])
        self.mock.clear_requests()
        cluster.sql(f"update {self.t} set name = 'renamed' where id = 2; delete from {self.t} where id = 3")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "2", "0"])
        self.assertEqual(sorted((r["method"], r["path"]) for r in self.mock.requests()),
                         [("DELETE", f"/companies/{ids['3']}"), ("PUT", f"/companies/{ids['2']}")])
        companies = {c["company_id"]: c for c in self.mock.companies()}
        self.assertEqual(companies["2"]["name"], "renamed")
        self.assertNotIn("3", companies)

    def test_delete_option_and_version_2_14(self):
        older = MockIntercom(openapi=INTERCOM_OPENAPI.replace("2.16", "2.14"))
        try:
            self.mock = older
            self.setup_sync(rows=4, server_options=", intercom_version '2.14', contact_removal 'delete'",
                            match="external_id", mock=older)
            self.sync_now()
            self.assertEqual(self.last()[:3], ["succeeded", "4", "0"])
            ids = self.kept_ids()
            cluster.sql(f"delete from {self.t} where id = 1")
            self.sync_now()
            self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])
            deletes = [r for r in older.requests() if r["method"] == "DELETE"]
            self.assertEqual([r["path"] for r in deletes], [f"/contacts/{ids['1']}"])
            self.assertEqual(len(older.contacts()), 3)
            self.assertEqual({r["headers"].get("intercom-version") for r in older.requests()}, {"2.14"})
            self.assertEqual(older.contract_violations(), [])
        finally:
            self.mock = intercom
            older.stop()

    def test_create_sync_refuses_what_intercom_cannot_do(self):
        cluster.sql(f"create table {self.t} (id int primary key, email text);"
                    f"create server {self.srv} foreign data wrapper revetl options (type 'intercom', url '{intercom.url}')")
        for clause, message in [("OBJECT companies MATCH ON company_id MODE UPDATE", "mode"),
                                ("OBJECT contacts MATCH ON phone MODE UPSERT", "cannot match Intercom contacts"),
                                ("OBJECT tickets MATCH ON email MODE UPSERT", "tickets")]:
            out, err, rc = cluster.psql(f"select * from revetl.execute($$ CREATE SYNC {self.s} FROM {self.t} "
                                        f"TO {self.srv} {clause} KEY (id) MAP (email AS email) $$)", check=False)
            self.assertNotEqual(rc, 0, clause)
            self.assertIn(message, err, clause)


if __name__ == "__main__":
    unittest.main()

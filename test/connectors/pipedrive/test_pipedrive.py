"""The Pipedrive connector against the stateful mock Pipedrive (API v2):
persons found by search and then patched by id or created, custom fields by
their keys, ids kept and used for later updates (even when the email
changes) and MIRROR deletes, per-record refusals in revetl.rejected_rows with
Pipedrive's code and message, a kept id deleted in Pipedrive found again,
the burst and search limits' 429s waited out, a spent daily budget and a
refused token failing the run, organizations in MODE UPDATE, and refusals
at CREATE SYNC. Every request body and query is checked against Pipedrive's
OpenAPI v2 contract."""

import json
import os
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockPipedrive  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef01234567"
cluster = None
pipedrive = None


def setUpModule():
    global cluster, pipedrive
    cluster = Cluster(name="revetl-pipedrive").start()
    pipedrive = MockPipedrive()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if pipedrive:
        pipedrive.stop()
    if cluster:
        cluster.destroy()


def direct(method, path, body=None):
    """A call to the mock as another Pipedrive client would make it."""
    req = urllib.request.Request(pipedrive.url + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method, headers={"Content-Type": "application/json",
                                                         "x-api-token": "test-token"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class PipedriveTest(unittest.TestCase):
    n = 0

    def setUp(self):
        pipedrive.reset()
        # The default burst and search limits of the mock are Pipedrive's;
        # tests other than the throttling one raise them.
        pipedrive.configure(rate_limit=1000, search_rate_limit=1000)
        PipedriveTest.n += 1
        self.t = f"people_{PipedriveTest.n}"
        self.srv = f"pd_{PipedriveTest.n}"
        self.s = f"to_pipedrive_{PipedriveTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(pipedrive.contract_violations(), [])

    def setup_sync(self, rows=12, server_options="", mode="MIRROR", obj="persons", match="email"):
        if obj == "organizations":
            cols = 'name AS name, plan AS "' + KEY + '"'
        else:
            cols = 'lower(email) AS email, name AS name, plan AS "' + KEY + '"'
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, name text, plan text);
            insert into {self.t} select g, 'User' || g || '@Example.com', 'name' || g, 'plan' || (g % 3)
              from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'pipedrive', url '{pipedrive.url}' {server_options});
            create user mapping for postgres server {self.srv} options (api_key 'test-token');
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

    def persons(self):
        return {r["emails"][0]["value"]: r for r in pipedrive.records("persons")}

    def test_search_then_write_rejects_rows_keeps_ids_and_deletes(self):
        self.setup_sync(rows=12)
        pipedrive.configure(fail_records=[{"field": "email", "pattern": "^user7@", "error": "Invalid email address",
                                           "code": "ERR_INVALID_EMAIL"}])
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.last()[:3], ["partial", "11", "1"])
        rejected = cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                                f"where sync_name = '{self.s}'")
        self.assertEqual(rejected, [['{"id": 7}', "400", "ERR_INVALID_EMAIL", "Invalid email address"]])
        persons = self.persons()
        self.assertEqual(len(persons), 11)
        p3 = persons["user3@example.com"]
        self.assertEqual((p3["name"], p3["custom_fields"]), ("name3", {KEY: "plan0"}))
        self.assertEqual(p3["emails"], [{"value": "user3@example.com", "primary": True, "label": "work"}])
        reqs = pipedrive.requests()
        self.assertEqual(len([r for r in reqs if r["path"] == "/api/v2/persons/search"]), 12)
        self.assertTrue(all(r["headers"].get("x-api-token") == "test-token" for r in reqs))
        ids = self.kept_ids()
        self.assertEqual(ids["3"], str(p3["id"]))

        pipedrive.configure(fail_records=[])
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])
        pipedrive.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "0", "0"])
        self.assertEqual(pipedrive.requests(), [])

        # A changed email patches the same person by its kept id; removals
        # delete by id.
        cluster.sql(f"update {self.t} set email = 'renamed5@example.com' where id = 5;"
                    f"delete from {self.t} where id in (3, 4)")
        ids = self.kept_ids()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        self.assertEqual(sorted((r["method"], r["path"]) for r in pipedrive.requests()),
                         sorted([("PATCH", f"/api/v2/persons/{ids['5']}"), ("DELETE", f"/api/v2/persons/{ids['3']}"),
                                 ("DELETE", f"/api/v2/persons/{ids['4']}")]))
        persons = self.persons()
        self.assertEqual(str(persons["renamed5@example.com"]["id"]), ids["5"])
        self.assertNotIn("user5@example.com", persons)
        self.assertNotIn("user3@example.com", persons)
        self.assertEqual(len(persons), 10)

    def test_kept_id_deleted_in_pipedrive_is_found_again_or_created(self):
        self.setup_sync(rows=3, mode="UPSERT")
        self.sync_now()
        ids = self.kept_ids()
        direct("DELETE", f"/api/v2/persons/{ids['2']}")
        cluster.sql(f"update {self.t} set name = 'changed' where id = 2")
        pipedrive.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])
        self.assertEqual([(r["method"], r["path"], r["status"]) for r in pipedrive.requests()],
                         [("PATCH", f"/api/v2/persons/{ids['2']}", 404), ("GET", "/api/v2/persons/search", 200),
                          ("POST", "/api/v2/persons", 200)])
        new_id = self.kept_ids()["2"]
        self.assertNotEqual(new_id, ids["2"])
        self.assertEqual(self.persons()["user2@example.com"]["name"], "changed")
        self.assertEqual(str(self.persons()["user2@example.com"]["id"]), new_id)

    def test_burst_and_search_limits_are_waited_out(self):
        self.setup_sync(rows=10, server_options=", rate_limit 'none', max_in_flight '2'", mode="UPSERT")
        pipedrive.configure(rate_limit=8, search_rate_limit=3, rate_window_ms=1000)
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        status, delivered, rejected, throttled = self.last("status, rows_delivered, rows_rejected, throttled")
        self.assertEqual((status, delivered, rejected), ("succeeded", "10", "0"))
        self.assertGreater(int(throttled), 0)
        self.assertGreater(pipedrive.stats()["rate_limited"], 0)
        self.assertEqual(len(self.persons()), 10)

    def test_spent_daily_budget_stops_the_run(self):
        self.setup_sync(rows=10, server_options=", max_in_flight '1'", mode="UPSERT")
        pipedrive.configure(daily_budget=6)
        self.sync_now()
        status, delivered, rejected, error = self.last()
        # The batch in flight is not recorded (the run failed); the next run
        # finds any person written before the budget ran out.
        self.assertEqual((status, rejected), ("failed", "0"))
        self.assertIn("Pipedrive's daily API budget is spent", error)
        self.assertEqual(pipedrive.stats()["daily_refused"], 1, "the run stopped at the first refusal")
        self.assertEqual(len(pipedrive.requests()), 7, "six admitted, one refused")
        pipedrive.configure(daily_budget=None)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "10", "0"])
        self.assertEqual(len(self.persons()), 10, "no person was created twice")

    def test_refused_token_fails_the_run(self):
        self.setup_sync(rows=5)
        pipedrive.revoke()
        self.sync_now()
        status, delivered, rejected, error = self.last()
        self.assertEqual((status, delivered, rejected), ("failed", "0", "0"))
        self.assertIn("refused the credentials (HTTP 401)", error)
        self.assertIn("unauthorized access", error)
        self.assertNotIn("test-token", error)
        self.assertEqual(len(pipedrive.requests()), 1)

    def test_oauth_calls_go_to_api_domain_and_expired_tokens_are_refreshed(self):
        # The server's url names nothing: calls go to the token answer's
        # api_domain (the mock itself).
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, name text);
            insert into {self.t} select g, 'user' || g || '@example.com', 'name' || g from generate_series(1, 4) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'pipedrive', url 'http://127.0.0.1:9');
            create user mapping for postgres server {self.srv}
              options (oauth_token_url '{pipedrive.url}/oauth/token', client_id '{MockPipedrive.CLIENT_ID}',
                       client_secret '{MockPipedrive.CLIENT_SECRET}', refresh_token '{MockPipedrive.REFRESH_TOKEN}');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} OBJECT persons KEY (id) MODE UPSERT
                MAP (email AS email, name AS name)
            $$);
        """)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "4", "0"])
        self.assertEqual(pipedrive.stats()["token_requests"], 1)
        api = [r for r in pipedrive.requests() if r["path"].startswith("/api/v2/")]
        self.assertTrue(api and all(r["headers"]["authorization"].startswith("Bearer pd-access-") for r in api))
        self.assertFalse([r for r in api if "x-api-token" in r["headers"]])
        # The access token expires: one 401, one refresh, the call replayed.
        pipedrive.expire_tokens()
        pipedrive.clear_requests()
        cluster.sql(f"update {self.t} set name = 'renamed' where id = 2")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])
        self.assertEqual([(r["method"], r["path"], r["status"]) for r in pipedrive.requests()],
                         [("PATCH", f"/api/v2/persons/{self.kept_ids()['2']}", 401), ("POST", "/oauth/token", 200),
                          ("PATCH", f"/api/v2/persons/{self.kept_ids()['2']}", 200)])
        self.assertEqual(pipedrive.stats()["token_requests"], 2)
        self.assertEqual(self.persons()["user2@example.com"]["name"], "renamed")

    def test_organizations_update_mode(self):
        existing = direct("POST", "/api/v2/organizations", {"name": "name1"})["data"]
        self.setup_sync(rows=2, obj="organizations", match="name", mode="UPDATE")
        pipedrive.clear_requests()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "1", "1"])
        self.assertEqual(self.kept_ids()["1"], str(existing["id"]))
        orgs = {o["name"]: o for o in pipedrive.records("organizations")}
        self.assertEqual(orgs["name1"]["custom_fields"], {KEY: "plan1"})
        self.assertEqual(cluster.rows(f"select key, error_code from revetl.rejected_rows where sync_name = '{self.s}'"),
                         [['{"id": 2}', "NOT_FOUND"]])
        self.assertFalse([r for r in pipedrive.requests() if r["method"] == "POST"])

    def test_create_sync_refuses_what_pipedrive_cannot_do(self):
        cluster.sql(f"create table {self.t} (id int primary key, email text);"
                    f"create server {self.srv} foreign data wrapper revetl options (type 'pipedrive', "
                    f"url '{pipedrive.url}')")
        for clause, message in [("OBJECT organizations MATCH ON email MODE UPSERT", "cannot match Pipedrive"),
                                ("OBJECT persons MATCH ON title MODE UPSERT", "cannot match Pipedrive"),
                                ("OBJECT deals MATCH ON title MODE UPSERT", "deals")]:
            out, err, rc = cluster.psql(f"select * from revetl.execute($$ CREATE SYNC {self.s} FROM {self.t} "
                                        f"TO {self.srv} {clause} KEY (id) MAP (email AS email) $$)", check=False)
            self.assertNotEqual(rc, 0, clause)
            self.assertIn(message, err, clause)


if __name__ == "__main__":
    unittest.main()

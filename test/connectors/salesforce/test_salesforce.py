"""The Salesforce connector against the stateful mock Salesforce: OAuth with
the instance_url of the token answer, upserts by external id through sObject
Collections (200 a call) with Salesforce's per-record errors in
revetl.rejected_rows, a large run through a Bulk API 2.0 job (CSV upload,
several polls, failedResults mapped back to rows), MIRROR deletes by record
id, a token that expires mid-run (refreshed once, the call replayed),
REQUEST_LIMIT_EXCEEDED failing the run clearly, and a run killed during a
Bulk job resumed by the next run. Every request is checked against
Salesforce's Postman collection (and the documented requests it lacks)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockSalesforce, wait_for  # noqa: E402

cluster = None
sf = None
UPSERT = "/services/data/v60.0/composite/sobjects/Lead/Customer_Id__c"


def setUpModule():
    global cluster, sf
    cluster = Cluster(name="revetl-salesforce").start()
    sf = MockSalesforce()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if sf:
        sf.stop()
    if cluster:
        cluster.destroy()


class SalesforceTest(unittest.TestCase):
    n = 0

    def setUp(self):
        sf.reset()
        SalesforceTest.n += 1
        self.t = f"leads_{SalesforceTest.n}"
        self.srv = f"sf_{SalesforceTest.n}"
        self.s = f"to_sf_{SalesforceTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(sf.contract_violations(), [])

    def setup_sync(self, rows=30, server_options="", mode="MIRROR"):
        # The server's url is not where data calls go: the token answer's
        # instance_url (the mock itself) is.
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, last text, company text);
            insert into {self.t} select g, 'user' || g || '@example.com', 'Last' || g, 'Co ' || g
              from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'salesforce', url 'https://login.salesforce.com', job_poll_interval '20ms'
                       {server_options});
            create user mapping for postgres server {self.srv} options (
              oauth_token_url '{sf.token_url}', client_id '{MockSalesforce.CLIENT_ID}',
              client_secret '{MockSalesforce.CLIENT_SECRET}', refresh_token '{MockSalesforce.REFRESH_TOKEN}');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} OBJECT "Lead" KEY (id) MATCH ON "Customer_Id__c"
                MODE {mode}
                MAP (id::text AS "Customer_Id__c", email AS "Email", last AS "LastName", company AS "Company")
            $$);
        """)

    def sync_now(self):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def expected(self):
        # Line breaks shown as <NL>: rows() reads one row per line.
        return {i: (e, ln, c) for i, e, ln, c in cluster.rows(
            f"select id, email, last, replace(company, chr(10), '<NL>') from {self.t}")}

    def actual(self):
        return {r["Customer_Id__c"]: (r.get("Email"), r.get("LastName"), (r.get("Company") or "").replace("\n", "<NL>"))
                for r in sf.records("Lead")}

    def upserts(self):
        return [r for r in sf.requests() if r["path"] == UPSERT]

    def rejected(self):
        return cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                            f"where sync_name = '{self.s}' order by key")

    def shadow_ids(self):
        shadow = cluster.sql(f"select shadow_table from revetl.syncs where name = '{self.s}'")
        return dict(cluster.rows(f"select key::jsonb->>'id', dest_id from revetl.{shadow}"))

    def test_create_sync_refuses_what_cannot_work(self):
        cluster.sql(f"""create table {self.t} (id int primary key, email text);
            create server {self.srv} foreign data wrapper revetl options (type 'salesforce',
              url 'https://login.salesforce.com')""")
        for clause, message in [("OBJECT Lead MODE UPSERT", "needs MATCH ON"),
                                ("OBJECT Lead MATCH ON Id MODE UPSERT", "cannot upsert Salesforce records by Id"),
                                ("MATCH ON Customer_Id__c", "must name a Salesforce object"),
                                ("OBJECT \"Lead;x\" MATCH ON Customer_Id__c", "must name a Salesforce object")]:
            _, err, rc = cluster.psql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO "
                                      f"{self.srv} {clause} KEY (id) MAP (email AS \"Email\")$$)", check=False)
            self.assertNotEqual(rc, 0, clause)
            self.assertIn(message, err, clause)
        _, err, rc = cluster.psql(f"alter server {self.srv} options (add api_version '45.0')", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("invalid value for option \"api_version\"", err)

    def test_upsert_through_collections_rejects_rows_and_mirrors_deletes(self):
        self.setup_sync(rows=250)
        cluster.sql(f"update {self.t} set email = 'not-an-email' where id = 7")
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.last()[:3], ["partial", "249", "1"])
        # At most 200 records a call, each with attributes.type, allOrNone false.
        calls = self.upserts()
        self.assertEqual(sorted(len(r["body"]["records"]) for r in calls), [50, 200])
        for r in calls:
            self.assertIs(r["body"]["allOrNone"], False)
            self.assertTrue(all(rec["attributes"] == {"type": "Lead"} for rec in r["body"]["records"]))
        self.assertEqual(sf.jobs(), [])
        self.assertEqual(self.rejected(), [['{"id": 7}', "200", "INVALID_EMAIL_ADDRESS",
                                            "INVALID_EMAIL_ADDRESS: Email: invalid email address: not-an-email "
                                            "(fields: Email)"]])
        self.assertEqual(self.actual(), {k: v for k, v in self.expected().items() if k != "7"})
        # Salesforce's record ids are kept; MIRROR deletes by them.
        ids = self.shadow_ids()
        by_key = {r["Customer_Id__c"]: r["Id"] for r in sf.records("Lead")}
        self.assertEqual(ids["3"], by_key["3"])
        # API usage is reported in the run's log line.
        wait_for(lambda: f"revetl: run {run_id} of sync \"{self.s}\": Salesforce Sforce-Limit-Info api-usage="
                 in cluster.log_text(), timeout=30, what="the API usage in the log")
        sf.clear_requests()
        cluster.sql(f"delete from {self.t} where id in (3, 4); update {self.t} set company = 'Changed' where id = 5")
        self.sync_now()
        # Row 7 is planned again, and refused again.
        self.assertEqual(self.last()[:3], ["partial", "3", "1"])
        deletes = [r for r in sf.requests() if r["method"] == "DELETE"]
        self.assertEqual(len(deletes), 1)
        self.assertEqual(deletes[0]["path"], "/services/data/v60.0/composite/sobjects")
        query = dict(p.split("=") for p in deletes[0]["query"].split("&"))
        self.assertEqual(sorted(query["ids"].replace("%2C", ",").split(",")), sorted([ids["3"], ids["4"]]))
        self.assertEqual(query["allOrNone"], "false")
        self.assertEqual(self.actual(), {k: v for k, v in self.expected().items() if k != "7"})

    def test_large_run_through_bulk_job_with_failed_rows(self):
        self.setup_sync(rows=60, server_options=", bulk_threshold '50'")
        cluster.sql(f"""update {self.t} set last = null where id = 11;
                        update {self.t} set company = E'Smith, "Jones"\\nand Co' where id = 12""")
        sf.configure(polls_to_complete=3)
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.last()[:3], ["partial", "59", "1"])
        self.assertEqual(self.upserts(), [], "a large run goes through Bulk API 2.0")
        jobs = sf.jobs()
        self.assertEqual(len(jobs), 1)
        job = jobs[0]
        self.assertEqual((job["object"], job["operation"], job["externalIdFieldName"], job["state"]),
                         ("Lead", "upsert", "Customer_Id__c", "JobComplete"))
        calls = [(r["method"], r["path"].rsplit("/", 1)[-1] or r["path"].rstrip("/").rsplit("/", 1)[-1])
                 for r in sf.requests() if "/jobs/ingest" in r["path"]]
        self.assertEqual(calls[:3], [("POST", "ingest"), ("PUT", "batches"), ("PATCH", job["id"])])
        polls = [r for r in sf.requests() if r["method"] == "GET" and r["path"].endswith(job["id"])]
        self.assertEqual(len(polls), 3, "polled until JobComplete")
        upload = next(r for r in sf.requests() if r["method"] == "PUT")
        self.assertEqual(upload["headers"]["content-type"], "text/csv")
        self.assertIn('"Smith, ""Jones""\nand Co"', upload["text"])
        self.assertEqual(self.rejected(), [['{"id": 11}', "200", "REQUIRED_FIELD_MISSING",
                                            "Required fields are missing: [LastName]:LastName --"]])
        expected = {k: v for k, v in self.expected().items() if k != "11"}
        self.assertEqual(self.actual(), expected)
        self.assertEqual(self.shadow_ids()["12"], {r["Customer_Id__c"]: r["Id"] for r in sf.records("Lead")}["12"])
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs where state = 'pending'"), "0")

    def test_expired_token_is_refreshed_once_mid_run(self):
        self.setup_sync(rows=5)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        issued = sf.stats()["tokens_issued"]
        sf.expire_tokens()
        cluster.sql(f"update {self.t} set company = 'After expiry'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        stats = sf.stats()
        self.assertEqual(stats["tokens_issued"], issued + 1, "refreshed exactly once")
        self.assertEqual(stats["invalid_session"], 1)
        refused = [r for r in sf.requests() if r["status"] == 401]
        replayed = [r for r in self.upserts() if r["status"] == 200 and r["seq"] > refused[0]["seq"]]
        self.assertEqual(len(replayed), 1)
        self.assertEqual(replayed[0]["body"], refused[0]["body"])
        self.assertEqual(self.actual(), self.expected())

    def test_request_limit_exceeded_fails_the_run_clearly(self):
        self.setup_sync(rows=5)
        sf.configure(request_limit_exceeded=True)
        self.sync_now()
        status, delivered, rejected, error = self.last()
        self.assertEqual((status, delivered, rejected), ("failed", "0", "0"))
        self.assertIn("REQUEST_LIMIT_EXCEEDED", error)
        self.assertIn("API request limit is spent", error)
        self.assertIn("api-usage=", error)
        self.assertNotIn(MockSalesforce.CLIENT_SECRET, error)

    def test_instance_url_outside_allowed_hosts_is_refused(self):
        # The token answer names where data calls go: a host the policy does
        # not allow gets nothing, not even the access token.
        self.setup_sync(rows=3)
        sf.configure(instance_url="http://evil.example.com")
        before = cluster.sql("show revetl.allowed_hosts")
        allowed = "127.0.0.1, login.salesforce.com"
        cluster.sql(f"alter system set revetl.allowed_hosts = '{allowed}'")
        try:
            cluster.sql("select pg_reload_conf()")
            wait_for(lambda: cluster.sql("show revetl.allowed_hosts") == allowed, timeout=30,
                     what="the allowed_hosts reload")
            self.sync_now()
            status, delivered, _, error = self.last()
            self.assertEqual((status, delivered), ("failed", "0"))
            self.assertIn('instance_url host "evil.example.com"', error)
            self.assertIn("revetl.allowed_hosts", error)
            self.assertEqual([r["path"] for r in sf.requests()], ["/services/oauth2/token"])
        finally:
            cluster.sql("alter system reset revetl.allowed_hosts")
            cluster.sql("select pg_reload_conf()")
            wait_for(lambda: cluster.sql("show revetl.allowed_hosts") == before, timeout=30, what="the reset")

    def test_killed_run_resumes_its_bulk_job(self):
        self.setup_sync(rows=40, server_options=", bulk_threshold '10'")
        sf.configure(polls_to_complete=100000)
        killed = int(cluster.sql(f"select revetl.run_sync('{self.s}')"))
        job = wait_for(lambda: cluster.sql(f"select j.job_id from revetl.delivery_jobs j join revetl.syncs s "
                                           f"on s.id = j.sync_id where s.name = '{self.s}' and j.state = 'pending'"),
                       timeout=60, what="a pending job")
        wait_for(lambda: len([r for r in sf.requests() if r.get("job_id") == job and r["method"] == "GET"]) >= 2,
                 timeout=30, what="the job to be polled")
        cluster.kill_runs()
        self.assertEqual(cluster.sql(f"select row_count, step from revetl.delivery_jobs where job_id = '{job}'"),
                         "40|bulk_poll")
        sf.configure(polls_to_complete=2)

        _, status = cluster.wait_for_run_after(self.s, killed)
        self.assertEqual(status, "succeeded")
        self.assertEqual(len(sf.jobs()), 1, "the job was resumed, not created again")
        self.assertEqual(self.actual(), self.expected())
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs where state = 'pending'"), "0")


if __name__ == "__main__":
    unittest.main()

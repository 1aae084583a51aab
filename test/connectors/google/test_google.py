"""The Google Customer Match connector against the stateful mock (every write body checked
against test/lib/googlespec.py), through both APIs (api 'data_manager',
the default, and api 'google_ads'): exact user list membership after adds, removals, a
changed identifier (removed under the old one, then added) and a model view rebuilt by
dbt; a run with nothing changed sends nothing; raw and NULL identifiers invalid and never
sent; members Google refuses mapped back to their rows; 429 RESOURCE_EXHAUSTED waited out
for its retryDelay; CONCURRENT_MODIFICATION retried; an expired OAuth token refreshed once;
a run killed while its request / job is being polled converging without sending again;
and the refusals at CREATE SYNC."""

import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockGoogle, PsqlError, wait_for  # noqa: E402

cluster = None
google = None
LIST = 7788991


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def member(i, email=None):
    return {"email": sha(email or f"user{i}@example.com"), "phone": sha(f"+1650253{i:04d}")}


def ordered(members):
    return sorted(members, key=lambda m: sorted(m.items()))


def setUpModule():
    global cluster, google
    cluster = Cluster(name="revetl-google").start()
    google = MockGoogle()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if google:
        google.stop()
    if cluster:
        cluster.destroy()


class GoogleBase:
    API = None
    n = 0
    MAP = ("revetl.hashed_identifier('email', email, 'google') AS email, "
           "revetl.hashed_identifier('phone', phone, 'google') AS phone")

    def setUp(self):
        google.reset()
        GoogleBase.n += 1
        self.t = f"people_{GoogleBase.n}"
        self.srv = f"google_{GoogleBase.n}"
        self.s = f"to_google_{GoogleBase.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(google.contract_violations(), [])

    def server_sql(self, extra=""):
        return (f"create server {self.srv} foreign data wrapper revetl options (type 'google', url '{google.url}', "
                f"api '{self.API}', customer_id '1234567890', consent_ad_user_data 'granted', "
                f"consent_ad_personalization 'granted', job_poll_interval '100ms' "
                + (", customer_match_terms 'accepted'" if self.API == "data_manager" else "") + extra + ");"
                f"create user mapping for postgres server {self.srv} options ("
                f"oauth_token_url '{google.token_url}', client_id '{MockGoogle.CLIENT_ID}', "
                f"client_secret '{MockGoogle.CLIENT_SECRET}', refresh_token '{MockGoogle.REFRESH_TOKEN}', "
                f"headers '{{\"developer-token\": \"dev-token-1\"}}');")

    def setup_sync(self, rows=5, extra="", model=None, map_=None):
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, phone text, plan text);
            insert into {self.t} select g, 'User' || g || '@Example.com ', '+1650253' || lpad(g::text, 4, '0'), 'pro'
              from generate_series(1, {rows}) g;
            create view {self.t}_v as select id, email, phone, plan from {self.t};
            {self.server_sql(extra)}
        """)
        cluster.sql(f"""select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {model or self.t + '_v'} TO {self.srv} KEY (id) MODE AUDIENCE '{LIST}'
                MAP ({map_ or self.MAP})
            $$)""")

    def sync_now(self, check=True):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        if check:
            self.assertEqual(rc, 0, err)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, requests, throttled, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def writes(self):
        return [r for r in google.requests() if not r["path"].endswith(("requestStatus:retrieve", "googleAds:search"))]

    def sent_members(self, kind):
        """The email hashes sent to be added ("add") or removed ("remove")."""
        out = []
        for r in google.requests():
            body = r.get("json") or {}
            if self.API == "data_manager" and r["path"].endswith(":ingest" if kind == "add" else ":remove"):
                out += [m["userData"]["userIdentifiers"][0]["emailAddress"] for m in body["audienceMembers"]]
            if self.API == "google_ads" and r["path"].endswith(":addOperations"):
                op = "create" if kind == "add" else "remove"
                out += [o[op]["userIdentifiers"][0]["hashedEmail"] for o in body["operations"] if op in o]
        return out

    def test_membership_follows_the_model(self):
        self.setup_sync()
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "5", "0"])
        self.assertEqual(google.members(LIST), ordered([member(i) for i in range(1, 6)]))
        w = self.writes()
        self.assertTrue(all(r["headers"]["authorization"].startswith("Bearer ya29.") for r in w))
        if self.API == "google_ads":
            self.assertEqual([r["path"].rsplit(":", 1)[1] for r in w], ["create", "addOperations", "run"])
            self.assertEqual(w[0]["json"]["job"]["customerMatchUserListMetadata"]["userList"],
                             f"customers/1234567890/userLists/{LIST}")
            self.assertEqual(w[1]["headers"]["developer-token"], "dev-token-1")
        else:
            self.assertEqual([r["path"] for r in w], ["/v1/audienceMembers:ingest"])
            self.assertEqual(w[0]["json"]["destinations"][0]["productDestinationId"], str(LIST))
            self.assertEqual(w[0]["json"]["encoding"], "HEX")
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs"), "0")

        # Another column changes: nothing is sent.
        google.clear_requests()
        cluster.sql(f"update {self.t} set plan = 'team'")
        self.sync_now()
        self.assertEqual(self.last()[:2], ["succeeded", "0"])
        self.assertEqual(google.requests(), [])

        # A removed row leaves, a changed email leaves under the old hash and
        # joins under the new one, a new row joins.
        cluster.sql(f"delete from {self.t} where id = 1; "
                    f"update {self.t} set email = 'renamed2@example.com' where id = 2; "
                    f"insert into {self.t} values (9, 'user9@example.com', '+16502530009', 'pro')")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        expected = [member(2, "renamed2@example.com")] + [member(i) for i in (3, 4, 5, 9)]
        self.assertEqual(google.members(LIST), ordered(expected))
        self.assertEqual(sorted(self.sent_members("remove")), sorted([sha("user1@example.com"),
                                                                     sha("user2@example.com")]))
        self.assertEqual(sorted(self.sent_members("add")), sorted([sha("renamed2@example.com"),
                                                                  sha("user9@example.com")]))
        # The old identifiers leave before the new ones join.
        paths = [r["path"] for r in self.writes()]
        if self.API == "data_manager":
            self.assertEqual(paths, ["/v1/audienceMembers:remove", "/v1/audienceMembers:ingest"])
        else:
            ops = [list(r["json"]["operations"][0])[0] for r in self.writes() if r["path"].endswith("addOperations")]
            self.assertEqual(ops, ["remove", "create"])

        # dbt rebuilds the view (build, swap, drop): the members are exactly
        # the new model's rows.
        cluster.sql(f"""
            create view {self.t}_v__dbt_tmp as
              select id, email, phone, plan from {self.t} where id <> 3
              union all select 10, 'user10@example.com', '+16502530010', 'pro';
            alter view {self.t}_v rename to {self.t}_v__dbt_backup;
            alter view {self.t}_v__dbt_tmp rename to {self.t}_v;
            drop view {self.t}_v__dbt_backup cascade;
        """)
        self.sync_now()
        self.assertEqual(self.last()[0], "succeeded")
        expected = [member(2, "renamed2@example.com")] + [member(i) for i in (4, 5, 9, 10)]
        self.assertEqual(google.members(LIST), ordered(expected))

    def test_raw_and_null_identifiers_are_never_sent(self):
        self.setup_sync(rows=4, map_="CASE WHEN id = 2 THEN email ELSE revetl.hashed_identifier('email', email, "
                                     "'google') END AS email, CASE WHEN id <> 3 THEN "
                                     "revetl.hashed_identifier('phone', phone, 'google') END AS phone")
        self.sync_now(check=False)
        self.assertEqual(self.last("status, rows_delivered, rows_invalid"), ["partial", "2", "2"])
        self.assertEqual(google.members(LIST), ordered([member(1), member(4)]))
        bodies = " ".join(r["body"] for r in google.requests())
        self.assertNotIn("xample.com", bodies)

    def test_refused_members_are_mapped_to_their_rows(self):
        google.configure(reject_members=[sha("user3@example.com")])
        self.setup_sync(rows=5)
        self.sync_now(check=False)
        self.assertEqual(self.last("status, rows_delivered, rows_rejected"), ["partial", "4", "1"])
        rejected = cluster.rows(f"select key, error_code from revetl.rejected_rows where sync_name = '{self.s}'")
        self.assertEqual(rejected[0][0], '{"id": 3}')
        self.assertEqual(rejected[0][1], "INVALID_HEX_ENCODING" if self.API == "data_manager"
                         else "INVALID_SHA256_FORMAT")
        self.assertEqual(google.members(LIST), ordered([member(i) for i in (1, 2, 4, 5)]))

    def test_throttling_and_concurrent_modification(self):
        google.configure(throttle={"next": 2, "retry_delay": "1s"}, concurrent=1 if self.API == "google_ads" else 0)
        self.setup_sync(rows=3)
        self.sync_now()
        status, delivered, rejected, _, throttled, _ = self.last()
        self.assertEqual((status, delivered, rejected, throttled), ("succeeded", "3", "0", "2"))
        self.assertEqual(google.stats()["throttled"], 2)
        self.assertEqual(len(google.members(LIST)), 3)

    def test_expired_token_is_refreshed_once(self):
        self.setup_sync(rows=3)
        self.sync_now()
        google.configure(expire_tokens=True)
        cluster.sql(f"insert into {self.t} values (9, 'user9@example.com', '+16502530009', 'pro')")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1", "0"])
        self.assertEqual(google.stats()["tokens"], 2)
        self.assertEqual(len(google.members(LIST)), 4)

    def test_failed_request_rejects_its_rows(self):
        if self.API == "google_ads":
            google.configure(fail_jobs=1)
        else:
            google.configure(fail_requests=1)
        self.setup_sync(rows=3)
        self.sync_now(check=False)
        self.assertEqual(self.last("status, rows_delivered, rows_rejected")[1:], ["0", "3"])
        self.sync_now()
        self.assertEqual(len(google.members(LIST)), 3)

    def test_run_killed_during_the_poll_converges_without_resending(self):
        # Google takes many polls; the run is killed while it polls.
        google.configure(polls=1000)
        self.setup_sync(rows=20)
        killed = int(cluster.sql(f"select revetl.run_sync('{self.s}')"))
        wait_for(lambda: cluster.sql("select count(*) from revetl.delivery_jobs") == "1", timeout=60,
                 what="the job kept")
        wait_for(lambda: google.stats()["status_polls" if self.API == "data_manager" else "job_polls"] >= 2,
                 timeout=60, what="polls")
        writes = len(self.writes())
        cluster.kill_runs()
        google.configure(polls=0, finish_all=True)
        cluster.wait_for_run_after(self.s, killed)
        wait_for(lambda: cluster.sql("select count(*) from revetl.delivery_jobs where state = 'pending'") == "0",
                 timeout=120, what="the kept job resumed")
        self.sync_now()
        self.assertEqual(google.members(LIST), ordered([member(i) for i in range(1, 21)]))
        # Nothing was written again: the resumed run only polled.
        self.assertEqual(len(self.writes()), writes)
        self.assertEqual(self.last()[:3], ["succeeded", "0", "0"])

    def test_login_customer_id_and_partial_success(self):
        # A manager account: the login-customer-id header (Ads) or the
        # destination's loginAccount (Data Manager). Data Manager counts
        # failed members without naming them: the rows stay delivered.
        google.configure(login_customer_id="5550001111", partial_requests=1)
        self.setup_sync(rows=3, extra=", login_customer_id '5550001111'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        w = self.writes()
        if self.API == "google_ads":
            self.assertTrue(all(r["headers"]["login-customer-id"] == "5550001111" for r in w))
        else:
            self.assertEqual(w[0]["json"]["destinations"][0]["loginAccount"],
                             {"accountId": "5550001111", "accountType": "GOOGLE_ADS"})
        self.assertEqual(len(google.members(LIST)), 3)

    def test_refusals_at_create_sync(self):
        cluster.sql(f"create table {self.t} (id int primary key, email text); {self.server_sql()}")

        def refused(clause):
            with self.assertRaises(PsqlError) as e:
                cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} "
                            f"KEY (id) {clause}$$)")
            return str(e.exception)
        self.assertIn("cannot use mode upsert", refused("MODE UPSERT MAP (email AS email)"))
        err = refused(f"MODE AUDIENCE '{LIST}' MAP (email AS emails)")
        self.assertIn("not a Customer Match identifier key", err)
        self.assertIn('Perhaps you meant "email"', err)
        self.assertIn("part of an address", refused(f"MODE AUDIENCE '{LIST}' MAP (email AS first_name)"))
        self.assertIn("user_id together", refused(f"MODE AUDIENCE '{LIST}' MAP (email AS email, "
                                                  f"id::text AS user_id)"))
        self.assertIn("user list id", refused("MODE AUDIENCE 'vip' MAP (email AS email)"))
        with self.assertRaises(PsqlError) as e:
            cluster.sql(f"create server {self.srv}_x foreign data wrapper revetl "
                        f"options (type 'google', customer_id '123-456-7890')")
        self.assertIn("customer_id", str(e.exception))


class DataManagerTest(GoogleBase, unittest.TestCase):
    API = "data_manager"


class GoogleAdsTest(GoogleBase, unittest.TestCase):
    API = "google_ads"

    def run_order(self):
        """The jobs run, in order, as (kind, number of members)."""
        jobs = google.jobs()["jobs"]
        return [(jobs[r["path"].split("/", 2)[2].rsplit(":", 1)[0]]["kind"])
                for r in self.writes() if r["path"].endswith(":run") and "fault" not in r]

    def test_one_job_a_run_and_direction_across_batches(self):
        # batch_size 4: ten rows are three batches, and one job.
        self.setup_sync(rows=10, extra=", batch_size '4'")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "10", "0"])
        self.assertEqual(google.members(LIST), ordered([member(i) for i in range(1, 11)]))
        self.assertEqual([r["path"].rsplit(":", 1)[1] for r in self.writes()],
                         ["create", "addOperations", "addOperations", "addOperations", "run"])
        stats = google.stats()
        self.assertEqual((stats["jobs_created"], stats["add_operations"], stats["runs"]), (1, 3, 1))
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs"), "0")
        runs = cluster.rows(f"select id from revetl.sync_runs where sync_name = '{self.s}'")
        self.assertEqual(len(runs), 1)

        # Five removals, a changed email (out under the old hash, in under
        # the new) and two new rows: eight changes, two batches, one job
        # of removals run and finished before the one job of additions.
        google.clear_requests()
        cluster.sql(f"delete from {self.t} where id <= 5; "
                    f"update {self.t} set email = 'renamed6@example.com' where id = 6; "
                    f"insert into {self.t} values (11, 'user11@example.com', '+16502530011', 'pro'), "
                    f"(12, 'user12@example.com', '+16502530012', 'pro')")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "8", "0"])
        expected = [member(6, "renamed6@example.com")] + [member(i) for i in (7, 8, 9, 10, 11, 12)]
        self.assertEqual(google.members(LIST), ordered(expected))
        stats = google.stats()
        self.assertEqual((stats["jobs_created"], stats["runs"]), (3, 3))
        self.assertEqual(self.run_order(), ["remove", "create"])
        # The removal job was seen done before the additions' job ran.
        paths = [(r["path"], r.get("json") or {}) for r in google.requests()]
        add_run = max(i for i, (p, _) in enumerate(paths) if p.endswith(":run"))
        remove_job = [k for k, j in google.jobs()["jobs"].items() if j["kind"] == "remove"][0]
        self.assertTrue(any(p.endswith("googleAds:search") and remove_job in b.get("query", "")
                            for p, b in paths[:add_run]))
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs"), "0")

    def test_run_killed_before_its_job_runs_converges_without_resending(self):
        # The run call hangs: the run is killed while its job (three batches'
        # operations, parked) has not run yet.
        google.configure(faults=[{"status": 503, "path": ":run", "delay_s": 30}])
        self.setup_sync(rows=12, extra=", batch_size '4'")
        killed = int(cluster.sql(f"select revetl.run_sync('{self.s}')"))
        wait_for(lambda: any(r["path"].endswith(":run") for r in google.requests()), timeout=60,
                 what="the job's run call")
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs where state = 'pending'"), "3")
        writes = len(self.writes())
        cluster.kill_runs()
        cluster.wait_for_run_after(self.s, killed)
        wait_for(lambda: cluster.sql("select count(*) from revetl.delivery_jobs where state = 'pending'") == "0",
                 timeout=120, what="the kept jobs finished")
        self.assertEqual(google.members(LIST), ordered([member(i) for i in range(1, 13)]))
        # The kept job was run once, by the next run: no member sent twice.
        stats = google.stats()
        self.assertEqual((stats["jobs_created"], stats["add_operations"], stats["runs"]), (1, 3, 1))
        self.assertEqual(len(self.writes()), writes + 1)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "0", "0"])
        self.assertEqual(len(self.writes()), writes + 1)


if __name__ == "__main__":
    unittest.main()

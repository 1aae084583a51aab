"""The Klaviyo connector against the stateful mock: profiles upserted through
bulk import jobs that take several polls, per-profile import errors (read page
by page) in revetl.rejected_rows, MODE MIRROR deletes through data privacy
deletion requests, a job Klaviyo no longer knows sent again, 429s waited out,
an invalid API key failing the run, and the refusals at CREATE SYNC; and
MODE AUDIENCE (list membership): jobs with relationships.lists, profile ids
kept from the job's profiles, removals by profile id, a changed email (old
profile out, new one in), import errors in revetl.rejected_rows, 429s, a run
killed during its job resuming it, and exact membership after a model
rebuilt by dbt. Every request body is checked against Klaviyo's OpenAPI,
every call's revision header against the server's option."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockKlaviyo, wait_for  # noqa: E402

cluster = None
klaviyo = None
JOBS = "/api/profile-bulk-import-jobs"
LIST = "Y6nRLr"
RELATIONSHIPS = f"/api/lists/{LIST}/relationships/profiles"


def setUpModule():
    global cluster, klaviyo
    cluster = Cluster(name="revetl-klaviyo").start()
    klaviyo = MockKlaviyo()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if klaviyo:
        klaviyo.stop()
    if cluster:
        cluster.destroy()


class KlaviyoTest(unittest.TestCase):
    n = 0

    def setUp(self):
        klaviyo.reset()
        KlaviyoTest.n += 1
        self.t = f"people_{KlaviyoTest.n}"
        self.srv = f"kl_{KlaviyoTest.n}"
        self.s = f"to_klaviyo_{KlaviyoTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(klaviyo.contract_violations(), [])

    def setup_sync(self, rows=30, mode="MIRROR", server_options="", api_key="pk_test",
                   map_="email AS email, id AS external_id, plan AS plan, score AS score"):
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, plan text, score int);
            insert into {self.t} select g, 'user' || g || '@example.com', 'free', g
              from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'klaviyo', url '{klaviyo.url}', job_poll_interval '20ms',
                       revision '2026-07-15' {server_options});
            create user mapping for postgres server {self.srv} options (api_key '{api_key}');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id) MATCH ON email MODE {mode}
                MAP ({map_})
            $$);
        """)

    def sync_now(self):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def expected(self):
        return {e: (str(i), p, int(sc)) for i, e, p, sc in cluster.rows(f"select id, email, plan, score from {self.t}")}

    def actual(self):
        return {e: (p.get("external_id"), p["properties"].get("plan"), p["properties"].get("score"))
                for e, p in klaviyo.profiles().items()}

    def posts(self):
        return [r for r in klaviyo.requests() if r["path"] == JOBS and r["status"] == 202]

    def test_jobs_partial_failures_and_mirror_deletes(self):
        self.setup_sync(rows=250, server_options=", batch_size '100'")
        klaviyo.configure(polls_to_complete=3, errors_page_size=2, reject=[
            {"field": "email", "pattern": "^user(7|17|27)@", "code": "invalid", "detail": "Email is suppressed"}])
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.last()[:3], ["partial", "247", "3"])
        self.assertEqual(sorted(len(r["body"]["data"]["attributes"]["profiles"]["data"]) for r in self.posts()),
                         [50, 100, 100])
        # Each job polled until complete (three polls); the failing job's
        # errors read in pages of two.
        polls = [r for r in klaviyo.requests() if r["method"] == "GET" and r["path"].count("/") == 3]
        self.assertEqual(len(polls), 9)
        pages = [r for r in klaviyo.requests() if r["path"].endswith("/import-errors")]
        self.assertGreaterEqual(len(pages), 2)
        self.assertTrue(all(r["headers"].get("revision") == "2026-07-15" for r in klaviyo.requests()))
        rejected = {r[0]: r[1:] for r in cluster.rows(
            f"select key, http_status, error_code, reason from revetl.rejected_rows where sync_name = '{self.s}'")}
        self.assertEqual(set(rejected), {'{"id": 7}', '{"id": 17}', '{"id": 27}'})
        self.assertEqual(rejected['{"id": 17}'][:2], ["200", "invalid"])
        self.assertRegex(rejected['{"id": 17}'][2],
                         r"^Email is suppressed \(/data/attributes/profiles/data/\d+/attributes/email\)$")
        expected = self.expected()
        for g in (7, 17, 27):
            del expected[f"user{g}@example.com"]
        self.assertEqual(self.actual(), expected)
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs"), "0")
        # Changes and removals: deletes go through data privacy requests by email.
        klaviyo.configure(reject=[])
        klaviyo.clear_requests()
        cluster.sql(f"delete from {self.t} where id in (3, 4); update {self.t} set plan = 'pro' where id = 5")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "6", "0"])
        deletions = [r for r in klaviyo.requests() if r["path"] == "/api/data-privacy-deletion-jobs"]
        self.assertEqual(sorted(r["body"]["data"]["attributes"]["profile"]["data"]["attributes"]["email"]
                                for r in deletions), ["user3@example.com", "user4@example.com"])
        self.assertEqual(self.actual(), self.expected())

    def test_expired_job_is_sent_again(self):
        self.setup_sync(rows=20)
        klaviyo.configure(polls_to_complete=3, faults=[{"status": 404, "path": JOBS + "/",
                                                        "body": {"errors": [{"id": "x", "code": "not_found",
                                                                             "title": "Not found.", "detail": "gone"}]}}])
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "20", "0"])
        self.assertEqual(len(self.posts()), 2, "sent again once")
        self.assertEqual(self.actual(), self.expected())

    def test_429_is_waited_out(self):
        self.setup_sync(rows=60, server_options=", rate_limit 'none', max_in_flight '1', batch_size '10'")
        klaviyo.configure(polls_to_complete=2, rate_limit=3, rate_window_ms=1000)
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        status, delivered, rejected, throttled = self.last("status, rows_delivered, rows_rejected, throttled")
        self.assertEqual((status, delivered, rejected), ("succeeded", "60", "0"))
        self.assertGreater(int(throttled), 0)
        self.assertGreater(klaviyo.stats()["rate_limited"], 0)
        self.assertEqual(self.actual(), self.expected())

    def test_killed_run_resumes_its_pending_job_without_sending_again(self):
        # A job Klaviyo accepted outlives the run's process: the retry polls
        # it (its id is kept in revetl.delivery_jobs) instead of importing
        # the profiles again, and maps its import errors back to rows.
        self.setup_sync(rows=30)
        klaviyo.configure(polls_to_complete=100000, reject=[
            {"field": "email", "pattern": "^user9@", "code": "invalid", "detail": "Email is suppressed"}])
        killed = int(cluster.sql(f"select revetl.run_sync('{self.s}')"))
        job = wait_for(lambda: cluster.sql(f"select j.job_id from revetl.delivery_jobs j join revetl.syncs s "
                                           f"on s.id = j.sync_id where s.name = '{self.s}' and j.state = 'pending'"),
                       timeout=60, what="a pending job")
        wait_for(lambda: len([r for r in klaviyo.requests() if r["method"] == "GET" and r["path"] == f"{JOBS}/{job}"])
                 >= 2, timeout=30, what="the job to be polled")
        cluster.kill_runs()
        self.assertEqual(len(self.posts()), 1)
        self.assertEqual(cluster.sql(f"select run_id, row_count, state from revetl.delivery_jobs "
                                     f"where job_id = '{job}'"), f"{killed}|30|pending")
        klaviyo.configure(polls_to_complete=3)
        cluster.wait_for_worker()

        retry_id, status = cluster.wait_for_run_after(self.s, killed)
        self.assertEqual(status, "partial")
        # The profiles the job imported were not sent again: any later import
        # carries user9 alone (refused again when planned again).
        after_kill = self.posts()[1:]
        self.assertTrue(all(p["attributes"]["email"] == "user9@example.com"
                            for r in after_kill for p in r["body"]["data"]["attributes"]["profiles"]["data"]),
                        [r["body"] for r in after_kill])
        expected = self.expected()
        del expected["user9@example.com"]
        self.assertEqual(self.actual(), expected)
        rejected = cluster.rows(f"select key, error_code from revetl.rejected_rows where run_id = {retry_id}")
        self.assertIn(['{"id": 9}', "invalid"], rejected)
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs"), "0")

    def test_invalid_key_fails_the_run_clearly(self):
        self.setup_sync(rows=5, api_key="pk_wrong_secret")
        self.sync_now()
        status, delivered, rejected, error = self.last()
        self.assertEqual((status, delivered, rejected), ("failed", "0", "0"))
        self.assertIn("Klaviyo refused the API key (HTTP 401)", error)
        self.assertNotIn("pk_wrong_secret", error)
        self.assertEqual(klaviyo.profiles(), {})

    def test_refusals_at_create_sync(self):
        cluster.sql(f"""create table {self.t} (id int primary key, email text);
            create server {self.srv} foreign data wrapper revetl options (type 'klaviyo')""")
        _, err, rc = cluster.psql(f"select * from revetl.execute($$ CREATE SYNC {self.s} FROM {self.t} "
                                  f"TO {self.srv} KEY (id) MATCH ON external_id MODE MIRROR "
                                  f"MAP (id AS external_id) $$)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot mirror Klaviyo profiles matched on external_id", err)
        _, err, rc = cluster.psql(f"select * from revetl.execute($$ CREATE SYNC {self.s} FROM {self.t} "
                                  f"TO {self.srv} KEY (id) MODE UPDATE MAP (email AS email) $$)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("update", err.lower())
        _, err, rc = cluster.psql(f"create server {self.srv}_x foreign data wrapper revetl "
                                  f"options (type 'klaviyo', revision 'latest')", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("revision", err)


class KlaviyoAudienceTest(KlaviyoTest):
    """MODE AUDIENCE '<list id>'."""

    # Not the profile tests again: only the helpers are shared.
    test_jobs_partial_failures_and_mirror_deletes = None
    test_expired_job_is_sent_again = None
    test_429_is_waited_out = None
    test_killed_run_resumes_its_pending_job_without_sending_again = None
    test_invalid_key_fails_the_run_clearly = None
    test_refusals_at_create_sync = None

    def setUp(self):
        super().setUp()
        klaviyo.configure(lists=[LIST])

    def setup_list_sync(self, rows=5, server_options=""):
        self.setup_sync(rows=rows, mode=f"AUDIENCE '{LIST}'", server_options=server_options,
                        map_="email AS email, plan AS plan")

    def members(self):
        return klaviyo.members(LIST)

    def model(self):
        return sorted(r[0] for r in cluster.rows(f"select lower(email) from {self.t} where email like '%@%.%'"))

    def shadow_ids(self):
        shadow = cluster.sql(f"select shadow_table from revetl.syncs where name = '{self.s}'")
        return {int(k): v for k, v in cluster.rows(f"select key::jsonb->>'id', dest_id from revetl.{shadow}")}

    def calls(self, method, path):
        return [r for r in klaviyo.requests() if r["method"] == method and r["path"] == path]

    def test_membership_follows_the_model(self):
        self.setup_list_sync(rows=5)
        cluster.sql(f"update {self.t} set email = 'not-an-email' where id = 4")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "4", "1"])
        self.assertEqual(self.members(), self.model())
        jobs = self.posts()
        self.assertEqual(len(jobs), 1)
        body = jobs[0]["body"]["data"]
        # The identifier alone, and the list as the job's relationship.
        self.assertEqual(body["attributes"]["profiles"]["data"][0]["attributes"], {"email": "user1@example.com"})
        self.assertEqual(body["relationships"]["lists"]["data"], [{"type": "list", "id": LIST}])
        rejected = cluster.rows(f"select key, error_code, reason from revetl.rejected_rows where sync_name = '{self.s}'")
        self.assertEqual(rejected, [['{"id": 4}', "invalid", "Invalid email address (/data/attributes/profiles/data/3/attributes/email)"]])
        # Profile ids kept as dest_id (read from the job's profiles).
        by_email = {e: p["id"] for e, p in klaviyo.profiles().items()}
        self.assertEqual(self.shadow_ids()[2], by_email["user2@example.com"])
        self.assertTrue(self.calls("GET", f"{JOBS}/{jobs[0]['job_id']}/profiles"))

        # Another field changes: nothing to send (row 4 is refused again).
        klaviyo.clear_requests()
        cluster.sql(f"update {self.t} set plan = 'pro' where id <> 4")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "0", "1"])
        self.assertEqual(self.calls("DELETE", RELATIONSHIPS), [])

        # A removed row leaves by its profile id; a changed email leaves
        # under its old profile and joins under the new one; a new row joins.
        klaviyo.clear_requests()
        old2 = self.shadow_ids()[2]
        cluster.sql(f"""delete from {self.t} where id in (1, 4);
                        update {self.t} set email = 'moved@example.com' where id = 2;
                        insert into {self.t} values (9, 'user9@example.com', 'free', 9)""")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "3", "0"])
        self.assertEqual(self.members(), self.model())
        removed = sorted(r["id"] for c in self.calls("DELETE", RELATIONSHIPS) for r in c["body"]["data"])
        self.assertEqual(removed, sorted([old2, by_email["user1@example.com"]]))
        self.assertNotEqual(self.shadow_ids()[2], old2)
        self.assertIn("user1@example.com", klaviyo.profiles(), "profiles are never deleted in this mode")

        # dbt rebuilds the model (build, swap, drop): exactly its rows.
        cluster.sql(f"""
            create table {self.t}__dbt_tmp as
              select id, email, plan, score from {self.t} where id <> 3
              union all select 10, 'user10@example.com', 'free', 10;
            alter table {self.t} rename to {self.t}__dbt_backup;
            alter table {self.t}__dbt_tmp rename to {self.t};
            drop table {self.t}__dbt_backup cascade;
        """)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "2", "0"])
        self.assertEqual(self.members(), self.model())
        self.assertEqual(len(self.model()), 4)

    def test_removals_in_calls_of_1000_throttling_and_an_unknown_list(self):
        self.setup_list_sync(rows=1005)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "1005", "0"])
        self.assertEqual(len(self.members()), 1005)
        # Jobs of batch_size (1000) rows; each job's profiles in pages of 100.
        self.assertEqual(sorted(len(self.calls("GET", f"{JOBS}/{p['job_id']}/profiles")) for p in self.posts()),
                         [1, 10])
        klaviyo.clear_requests()
        klaviyo.configure(faults=[{"status": 429, "path": "/api/lists/", "headers": {"Retry-After": "1"},
                                   "body": {"errors": [{"id": "x", "code": "throttled", "title": "Throttled",
                                                        "detail": "Request was throttled."}]}}])
        cluster.sql(f"delete from {self.t} where id <= 1002")
        # More removals than max_removals lets through unasked.
        cluster.sql(f"select revetl.run_sync('{self.s}', wait => true, allow_removals => true)")
        self.assertEqual(self.last()[:3], ["succeeded", "1002", "0"])
        calls = self.calls("DELETE", RELATIONSHIPS)
        self.assertEqual([r["status"] for r in calls][:1], [429])
        self.assertEqual(sorted(len(r["body"]["data"]) for r in calls if r["status"] == 204), [2, 1000])
        self.assertEqual(self.members(), self.model())
        # A list Klaviyo does not have: the rows are refused, with its words.
        cluster.sql(f"select * from revetl.execute($$ALTER SYNC {self.s} SET MODE AUDIENCE 'Gone1'$$)")
        cluster.sql(f"delete from {self.t} where id = 1003")
        self.sync_now()
        self.assertEqual(self.last()[1], "0")
        reasons = cluster.rows(f"select distinct error_code from revetl.rejected_rows where sync_name = '{self.s}'")
        self.assertEqual(reasons, [["invalid"]])

    def test_killed_run_resumes_its_list_job(self):
        # The job with the list outlives the killed run: the retry polls it
        # (not a second import) and reads its profiles' ids.
        self.setup_list_sync(rows=30)
        klaviyo.configure(polls_to_complete=100000)
        killed = int(cluster.sql(f"select revetl.run_sync('{self.s}')"))
        job = wait_for(lambda: cluster.sql(f"select j.job_id from revetl.delivery_jobs j join revetl.syncs s "
                                           f"on s.id = j.sync_id where s.name = '{self.s}' and j.state = 'pending'"),
                       timeout=60, what="a pending job")
        wait_for(lambda: len(self.calls("GET", f"{JOBS}/{job}")) >= 2, timeout=30, what="the job to be polled")
        self.assertTrue(cluster.kill_runs())
        klaviyo.configure(polls_to_complete=3)
        cluster.wait_for_worker()

        _, status = cluster.wait_for_run_after(self.s, killed)
        self.assertEqual(status, "succeeded")
        self.assertEqual(len(self.posts()), 1, "the job was resumed, not sent again")
        self.assertEqual(self.members(), self.model())
        self.assertEqual(len(self.members()), 30)
        ids = self.shadow_ids()
        self.assertTrue(all(ids[i] for i in range(1, 31)), ids)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "0", "0"])


if __name__ == "__main__":
    unittest.main()

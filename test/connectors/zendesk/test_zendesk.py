"""The Zendesk connector against the stateful mock Zendesk: users upserted
through bulk jobs that take several polls, per-record failures in
revetl.rejected_rows with Zendesk's codes, MIRROR deletes through
destroy_many jobs, a run killed while its job is pending (the next run polls
the same job instead of sending again), a job Zendesk no longer knows (sent
again, and recorded as expired), the per-minute limit's 429s waited out, and
a 403 (bulk import not enabled) failing the run with a clear message. Every
request body is checked against Zendesk's OpenAPI contract."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockZendesk, wait_for  # noqa: E402

cluster = None
zendesk = None
UPSERT = "/api/v2/users/create_or_update_many"


def setUpModule():
    global cluster, zendesk
    cluster = Cluster(name="revetl-zendesk").start()
    zendesk = MockZendesk()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if zendesk:
        zendesk.stop()
    if cluster:
        cluster.destroy()


class ZendeskTest(unittest.TestCase):
    n = 0

    def setUp(self):
        zendesk.reset()
        ZendeskTest.n += 1
        self.t = f"people_{ZendeskTest.n}"
        self.srv = f"zd_{ZendeskTest.n}"
        self.s = f"to_zendesk_{ZendeskTest.n}"

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(zendesk.contract_violations(), [])

    def setup_sync(self, rows=30, server_options="", mode="MIRROR", schedule=""):
        cluster.sql(f"""
            create table {self.t} (id int primary key, email text, name text, score int);
            insert into {self.t} select g, 'User' || g || '@Example.com', 'name' || g, g
              from generate_series(1, {rows}) g;
            create server {self.srv} foreign data wrapper revetl
              options (type 'zendesk', url '{zendesk.url}', job_poll_interval '20ms' {server_options});
            create user mapping for postgres server {self.srv}
              options (user 'agent@example.com', password 'test-token');
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} OBJECT users KEY (id) MATCH ON email
                MODE {mode}
                MAP (lower(email) AS email, name AS name, id::text AS external_id,
                     jsonb_build_object('score', score) AS user_fields)
                {schedule}
            $$);
        """)

    def sync_now(self):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        return (int(out.strip()) if rc == 0 else None), err

    def last(self, cols="status, rows_delivered, rows_rejected, error"):
        return cluster.rows(f"select {cols} from revetl.sync_runs where sync_name = '{self.s}' "
                            f"order by id desc limit 1")[0]

    def expected(self):
        return {e.lower(): (n, int(sc)) for e, n, sc in cluster.rows(f"select email, name, score from {self.t}")}

    def actual(self):
        return {email: (u.get("name"), u.get("user_fields", {}).get("score")) for email, u in zendesk.users().items()}

    def posts(self):
        return [r for r in zendesk.requests() if r["path"] == UPSERT]

    def test_upsert_through_jobs_rejects_rows_and_mirrors_deletes(self):
        self.setup_sync(rows=250)
        zendesk.configure(polls_to_complete=3, fail_users=[
            {"field": "email", "pattern": "^user7@", "error": "UserUpdateError",
             "details": "Email: user7@example.com is already being used by another user"}])
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.last()[:3], ["partial", "249", "1"])
        # At most 100 users per call, each call a job polled until completed.
        self.assertEqual(sorted(len(r["body"]["users"]) for r in self.posts()), [50, 100, 100])
        polls = [r for r in zendesk.requests() if r["path"].startswith("/api/v2/job_statuses/")]
        self.assertEqual(len(polls), 9, "three polls per job")
        self.assertEqual({r["job_id"] for r in polls}, {r["job_id"] for r in self.posts()})
        rejected = cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                                f"where sync_name = '{self.s}'")
        self.assertEqual(rejected, [['{"id": 7}', "200", "UserUpdateError",
                                     "Email: user7@example.com is already being used by another user"]])
        expected = self.expected()
        del expected["user7@example.com"]
        self.assertEqual(self.actual(), expected)
        # Zendesk's user ids are kept, and MIRROR deletes by them through a job.
        shadow = cluster.sql(f"select shadow_table from revetl.syncs where name = '{self.s}'")
        ids = dict(cluster.rows(f"select key::jsonb->>'id', dest_id from revetl.{shadow}"))
        self.assertEqual(ids["3"], str(zendesk.users()["user3@example.com"]["id"]))
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs"), "0")
        zendesk.configure(fail_users=[])
        zendesk.clear_requests()
        cluster.sql(f"delete from {self.t} where id in (3, 4); update {self.t} set score = 999 where id = 5")
        self.sync_now()
        self.assertEqual(self.last()[:3], ["succeeded", "4", "0"])
        deletes = [r for r in zendesk.requests() if r["method"] == "DELETE"]
        self.assertEqual(len(deletes), 1)
        self.assertEqual(deletes[0]["path"], "/api/v2/users/destroy_many")
        self.assertEqual(sorted(deletes[0]["query"].split("=")[1].replace("%2C", ",").split(",")),
                         sorted([ids["3"], ids["4"]]))
        self.assertEqual(self.actual(), self.expected())

    def kill_run_with_pending_job(self):
        """Starts a run whose job never completes and SIGKILLs it once the job
        is kept; returns the killed run's id and the job id."""
        zendesk.configure(polls_to_complete=100000)
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.s}')"))
        job = wait_for(lambda: cluster.sql(f"select j.job_id from revetl.delivery_jobs j join revetl.syncs s "
                                           f"on s.id = j.sync_id where s.name = '{self.s}' and j.state = 'pending'"),
                       timeout=60, what="a pending job")
        wait_for(lambda: len([r for r in zendesk.requests() if r.get("job_id") == job and r["method"] == "GET"]) >= 2,
                 timeout=30, what="the job to be polled")
        cluster.kill_runs()
        return run_id, job

    def test_killed_run_resumes_its_pending_job_without_sending_again(self):
        self.setup_sync(rows=30)
        zendesk.configure(fail_users=[{"field": "email", "pattern": "^user9@", "error": "InvalidValue",
                                       "details": "Email: user9@example.com is blocked"}])
        killed, job = self.kill_run_with_pending_job()
        self.assertEqual(len(self.posts()), 1)
        # The job (and its rows) outlived the process that was polling it.
        self.assertEqual(cluster.sql(f"select run_id, row_count, state, step from revetl.delivery_jobs "
                                     f"where job_id = '{job}'"), f"{killed}|30|pending|users_upsert")
        zendesk.configure(polls_to_complete=3)
        retry_id, status = cluster.wait_for_run_after(self.s, killed)
        self.assertEqual(status, "partial")
        # The retry polled the same job and sent no user it had applied: the
        # only write after the kill is user9's, refused again.
        after_kill = self.posts()[1:]
        self.assertTrue(all(u["email"] == "user9@example.com" for r in after_kill for u in r["body"]["users"]),
                        [r["body"] for r in after_kill])
        self.assertGreaterEqual(len([r for r in zendesk.requests() if r.get("job_id") == job and
                                     r["method"] == "GET" and r["status"] == 200]), 3)
        self.assertEqual(len(zendesk.users()), 29)
        expected = self.expected()
        del expected["user9@example.com"]
        self.assertEqual(self.actual(), expected)
        # The resumed job's per-record result reached rejected_rows (and so
        # did the refusal of the row planned again).
        rejected = cluster.rows(f"select key, error_code, reason from revetl.rejected_rows "
                                f"where run_id = {retry_id}")
        self.assertEqual(rejected, [['{"id": 9}', "InvalidValue", "Email: user9@example.com is blocked"]] * 2)
        self.assertEqual(cluster.sql("select count(*) from revetl.delivery_jobs"), "0")
        log = cluster.log_text()
        self.assertIn(f"revetl: run {retry_id} of sync \"{self.s}\"", log)
        self.assertIn("resumed 1 jobs an interrupted run left pending", log)

    def test_expired_job_is_sent_again_and_recorded(self):
        self.setup_sync(rows=30)
        killed, job = self.kill_run_with_pending_job()
        zendesk.expire(job)
        zendesk.configure(polls_to_complete=3)
        _, status = cluster.wait_for_run_after(self.s, killed)
        self.assertEqual(status, "succeeded")
        posts = self.posts()
        self.assertEqual(len(posts), 2, "sent again once")
        self.assertEqual(posts[0]["body"], posts[1]["body"])
        self.assertEqual(self.actual(), self.expected())
        self.assertEqual(len(zendesk.users()), 30, "a user was created twice")
        state, note = cluster.rows(f"select state, note from revetl.delivery_jobs where job_id = '{job}'")[0]
        self.assertEqual(state, "expired")
        self.assertIn("its rows were sent again: Zendesk no longer knows job", note)
        self.assertIn(job, note)

    def test_429_is_waited_out(self):
        # revetl's own limit off, so that Zendesk's per-minute window (here 4
        # requests per 1.5 s) answers 429 with Retry-After.
        self.setup_sync(rows=250, server_options=", rate_limit 'none', max_in_flight '1'")
        zendesk.configure(polls_to_complete=2, rate_limit=4, rate_window_ms=1500)
        run_id, err = self.sync_now()
        self.assertIsNotNone(run_id, err)
        status, delivered, rejected, throttled = self.last("status, rows_delivered, rows_rejected, throttled")
        self.assertEqual((status, delivered, rejected), ("succeeded", "250", "0"))
        self.assertGreater(int(throttled), 0)
        self.assertGreater(zendesk.stats()["rate_limited"], 0)
        self.assertEqual(self.actual(), self.expected())

    def test_403_bulk_import_disabled_fails_the_run_clearly(self):
        self.setup_sync(rows=5)
        zendesk.configure(bulk_import_enabled=False)
        self.sync_now()
        status, delivered, rejected, error = self.last()
        self.assertEqual((status, delivered, rejected), ("failed", "0", "0"))
        self.assertIn("Zendesk refused the bulk user import (HTTP 403)", error)
        self.assertIn("must enable bulk user import", error)
        self.assertNotIn("test-token", error)
        self.assertEqual(cluster.sql(f"select count(*) from revetl.rejected_rows where sync_name = '{self.s}'"), "0")

    def test_record_invalid_is_isolated_to_its_row(self):
        self.setup_sync(rows=8)
        cluster.sql(f"update {self.t} set email = 'bad@invalid.example' where id = 6")
        zendesk.configure(record_invalid="@invalid\\.", polls_to_complete=1)
        self.sync_now()
        self.assertEqual(self.last()[:3], ["partial", "7", "1"])
        rejected = cluster.rows(f"select key, http_status, error_code, reason from revetl.rejected_rows "
                                f"where sync_name = '{self.s}'")
        self.assertEqual(rejected, [['{"id": 6}', "422", "RecordInvalid.InvalidFormat",
                                     "Record validation errors: Email: bad@invalid.example is invalid"]])


if __name__ == "__main__":
    unittest.main()

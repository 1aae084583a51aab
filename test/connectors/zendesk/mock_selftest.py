#!/usr/bin/env python3
"""Self-test for test/connectors/zendesk/mock.py: auth, jobs that take several
polls, per-record results in request order, matching on email and
external_id, destroy_many, 403/422, job retention and expiry, the per-minute
rate limit, faults, the journal, and the OpenAPI check.

Run: python3 test/connectors/zendesk/mock_selftest.py"""

import base64
import json
import os
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockZendesk  # noqa: E402

BASIC = "Basic " + base64.b64encode(b"agent@example.com/token:test-token").decode()


class MockZendeskTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockZendesk()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def call(self, method, path, body=None, auth=BASIC):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        req = urllib.request.Request(self.mock.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null"), dict(e.headers)

    def upsert(self, users):
        return self.call("POST", "/api/v2/users/create_or_update_many", {"users": users})

    def poll(self, job_id):
        return self.call("GET", f"/api/v2/job_statuses/{job_id}")

    def run_job(self, job_id):
        states = []
        for _ in range(10):
            status, body, _ = self.poll(job_id)
            self.assertEqual(status, 200)
            states.append(body["job_status"]["status"])
            if states[-1] in ("completed", "failed"):
                return states, body["job_status"]
        self.fail(f"job never finished: {states}")

    def test_auth(self):
        self.assertEqual(self.upsert([{"email": "a@x.com", "name": "A"}])[0], 200)
        self.assertEqual(self.call("POST", "/api/v2/users/create_or_update_many", {"users": []}, auth=None)[0], 401)
        wrong = "Basic " + base64.b64encode(b"agent@example.com:test-token").decode()
        self.assertEqual(self.call("GET", "/api/v2/job_statuses/x", auth=wrong)[0], 401)
        self.assertEqual(self.call("GET", "/api/v2/job_statuses/x", auth="Bearer oauth-token")[0], 404)

    def test_job_takes_several_polls_and_results_are_in_request_order(self):
        self.mock.configure(fail_users=[{"field": "email", "pattern": "^bad", "error": "UserUpdateError",
                                         "details": "Email is blocked"}])
        status, body, headers = self.upsert([
            {"email": "A@x.com", "name": "A"}, {"email": "bad@x.com", "name": "B"},
            {"email": "c@x.com"}, {"email": "not-an-email", "name": "D"}, {"external_id": "e1", "name": "E"}])
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Rate-Limit"], "200")
        job = body["job_status"]
        self.assertEqual((job["status"], job["total"], job["results"]), ("queued", 5, None))
        self.assertEqual(self.mock.users(), {}, "applied before the job ran")
        states, done = self.run_job(job["id"])
        self.assertEqual(states, ["queued", "working", "completed"])
        r = done["results"]
        self.assertEqual([x["index"] for x in r], [0, 1, 2, 3, 4])
        self.assertEqual([x["status"] for x in r], ["Created", "Failed", "Failed", "Failed", "Created"])
        self.assertEqual((r[1]["error"], r[1]["details"]), ("UserUpdateError", "Email is blocked"))
        self.assertIn("Name: is too short", r[2]["details"])
        self.assertIn("not properly formatted", r[3]["details"])
        self.assertEqual(set(self.mock.users()), {"a@x.com", "e1"})
        # Matching: email without regard to case, external_id first.
        _, body, _ = self.upsert([{"email": "a@X.com", "name": "A2"}, {"external_id": "e1", "email": "e@x.com"}])
        _, done = self.run_job(body["job_status"]["id"])
        self.assertEqual([x["status"] for x in done["results"]], ["Updated", "Updated"])
        self.assertEqual(self.mock.users()["a@x.com"]["name"], "A2")
        self.assertEqual(len(self.mock.users()), 2)

    def test_destroy_many_and_failed_job(self):
        _, body, _ = self.upsert([{"email": "a@x.com", "name": "A", "external_id": "1"},
                                  {"email": "b@x.com", "name": "B"}])
        _, done = self.run_job(body["job_status"]["id"])
        ids = [x["id"] for x in done["results"]]
        status, body, _ = self.call("DELETE", f"/api/v2/users/destroy_many?ids={ids[1]},424242")
        self.assertEqual(status, 200)
        _, done = self.run_job(body["job_status"]["id"])
        self.assertEqual(done["results"], [{"id": ids[1], "action": "delete", "success": True, "status": "Deleted"}])
        self.assertEqual(list(self.mock.users()), ["a@x.com"])
        _, body, _ = self.call("DELETE", "/api/v2/users/destroy_many?external_ids=1")
        self.run_job(body["job_status"]["id"])
        self.assertEqual(self.mock.users(), {})
        self.mock.configure(fail_next_job="Internal failure")
        _, body, _ = self.upsert([{"email": "c@x.com", "name": "C"}])
        states, done = self.run_job(body["job_status"]["id"])
        self.assertEqual((states[-1], done["message"], done["results"]), ("failed", "Internal failure", None))
        self.assertEqual(self.mock.users(), {})

    def test_403_422_and_limits(self):
        self.mock.configure(bulk_import_enabled=False)
        status, body, _ = self.upsert([{"email": "a@x.com", "name": "A"}])
        self.assertEqual((status, body["error"]), (403, "Forbidden"))
        self.mock.configure(bulk_import_enabled=True, record_invalid="@invalid")
        status, body, _ = self.upsert([{"email": "a@x.com", "name": "A"}, {"email": "b@invalid.com", "name": "B"}])
        self.assertEqual((status, body["error"]), (422, "RecordInvalid"))
        self.assertEqual(body["details"]["email"][0]["error"], "InvalidFormat")
        self.assertEqual(self.mock.jobs(), [])
        self.assertEqual(self.upsert([{"email": f"u{i}@x.com", "name": "U"} for i in range(101)])[0], 400)

    def test_jobs_expire_and_only_the_last_100_are_kept(self):
        first = self.upsert([{"email": "a@x.com", "name": "A"}])[1]["job_status"]["id"]
        second = self.upsert([{"email": "b@x.com", "name": "B"}])[1]["job_status"]["id"]
        self.mock.expire(second)
        self.assertEqual(self.poll(second)[0], 404)
        self.assertEqual(self.poll(first)[0], 200)
        for i in range(100):
            self.upsert([{"email": f"u{i}@x.com", "name": "U"}])
        self.assertEqual(len(self.mock.jobs()), 100)
        status, body, _ = self.poll(first)
        self.assertEqual((status, body["error"]), (404, "RecordNotFound"))

    def test_rate_limit_faults_journal_and_contract(self):
        self.mock.configure(rate_limit=2, rate_window_ms=60000)
        self.assertEqual(self.poll("x")[0], 404)
        status, _, headers = self.poll("x")
        self.assertEqual((status, headers["X-Rate-Limit-Remaining"]), (404, "0"))
        status, body, headers = self.poll("x")
        self.assertEqual(status, 429)
        self.assertGreaterEqual(int(headers["Retry-After"]), 1)
        self.assertEqual(self.mock.stats()["rate_limited"], 1)
        self.mock.reset()
        self.mock.configure(faults=[{"status": 503, "path": "/api/v2/job_statuses"}])
        job = self.upsert([{"email": "a@x.com", "name": "A"}])[1]["job_status"]["id"]
        self.assertEqual(self.poll(job)[0], 503)
        self.assertEqual(self.poll(job)[0], 200)
        journal = self.mock.requests()
        self.assertEqual([(r["method"], r["status"]) for r in journal], [("POST", 200), ("GET", 503), ("GET", 200)])
        self.assertEqual(journal[0]["body"], {"users": [{"email": "a@x.com", "name": "A"}]})
        self.assertEqual(journal[0]["job_id"], job)
        # A body that breaks Zendesk's contract (external_id must be a string).
        status, _, _ = self.upsert([{"external_id": 5, "name": "N"}])
        self.assertEqual(status, 400)
        self.assertEqual(len(self.mock.contract_violations()), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)

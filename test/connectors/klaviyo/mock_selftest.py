#!/usr/bin/env python3
"""Self-test for test/connectors/klaviyo/mock.py: the Klaviyo-API-Key scheme and
the revision header, bulk import jobs completing after polls, import errors in
pages with original_payload, null attributes ignored, data privacy deletions,
list membership (jobs with relationships.lists, the job's profiles in pages,
adds and removals by profile id, unknown lists and profiles, 1,000 a call),
the OpenAPI contract check, the 429 with Retry-After, expired jobs and faults.

Run: python3 test/connectors/klaviyo/mock_selftest.py"""

import json
import os
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockKlaviyo  # noqa: E402

JOBS = "/api/profile-bulk-import-jobs"


def job_body(*attrs):
    return {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": a} for a in attrs]}}}}


class MockKlaviyoTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockKlaviyo()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def call(self, method, path, body=None, key="pk_test", revision="2026-07-15"):
        headers = {"Content-Type": "application/vnd.api+json"}
        if key:
            headers["Authorization"] = f"Klaviyo-API-Key {key}"
        if revision:
            headers["revision"] = revision
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.mock.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text else None), dict(r.headers)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text else None), dict(e.headers)

    def test_auth_and_revision(self):
        status, body, _ = self.call("POST", JOBS, job_body({"email": "a@x.com"}), key="wrong")
        self.assertEqual((status, body["errors"][0]["code"]), (401, "not_authenticated"))
        status, body, _ = self.call("POST", JOBS, job_body({"email": "a@x.com"}), revision=None)
        self.assertEqual((status, body["errors"][0]["code"]), (400, "invalid_revision"))
        self.assertEqual(self.mock.jobs(), [])

    def test_job_completes_after_polls_with_import_errors_in_pages(self):
        self.mock.configure(polls_to_complete=3, errors_page_size=2)
        profiles = [{"email": f"u{i}@x.com", "first_name": None, "properties": {"n": i}} for i in range(5)]
        profiles += [{"email": f"bad{i}"} for i in range(3)]
        status, body, _ = self.call("POST", JOBS, job_body(*profiles))
        self.assertEqual(status, 202)
        self.assertEqual(body["data"]["attributes"]["status"], "queued")
        jid = body["data"]["id"]
        states = [self.call("GET", f"{JOBS}/{jid}")[1]["data"]["attributes"]["status"] for _ in range(3)]
        self.assertEqual(states, ["queued", "processing", "complete"])
        attrs = self.call("GET", f"{JOBS}/{jid}")[1]["data"]["attributes"]
        self.assertEqual((attrs["total_count"], attrs["completed_count"], attrs["failed_count"]), (8, 5, 3))
        self.assertEqual(set(self.mock.profiles()), {f"u{i}@x.com" for i in range(5)})
        self.assertNotIn("first_name", self.mock.profiles()["u1@x.com"])
        page = self.call("GET", f"{JOBS}/{jid}/import-errors")[1]
        self.assertEqual(len(page["data"]), 2)
        self.assertEqual(page["data"][0]["attributes"]["original_payload"]["attributes"]["email"], "bad0")
        cursor = page["links"]["next"].split("?", 1)[1]
        page2 = self.call("GET", f"{JOBS}/{jid}/import-errors?{cursor}")[1]
        self.assertEqual(len(page2["data"]), 1)
        self.assertIsNone(page2["links"]["next"])
        self.assertEqual(self.mock.contract_violations(), [])

    def test_lists_through_jobs_and_relationships(self):
        self.mock.configure(lists=["Y6nRLr"], polls_to_complete=1)
        body = job_body({"email": "a@x.com"}, {"email": "bad"}, {"email": "c@x.com"})
        body["data"]["relationships"] = {"lists": {"data": [{"type": "list", "id": "Y6nRLr"}]}}
        status, job, _ = self.call("POST", JOBS, body)
        self.assertEqual(status, 202)
        jid = job["data"]["id"]
        # Nothing is listed before the job completes.
        self.assertEqual(self.call("GET", f"{JOBS}/{jid}/profiles")[1]["data"], [])
        self.assertEqual(self.call("GET", f"{JOBS}/{jid}")[1]["data"]["attributes"]["status"], "complete")
        self.assertEqual(self.mock.members("Y6nRLr"), ["a@x.com", "c@x.com"])
        status, page, _ = self.call("GET", f"{JOBS}/{jid}/profiles?page%5Bsize%5D=1&fields%5Bprofile%5D=email")
        self.assertEqual(status, 200)
        self.assertEqual([p["attributes"] for p in page["data"]], [{"email": "a@x.com"}])
        status, page2, _ = self.call("GET", page["links"]["next"].split(self.mock.url, 1)[1])
        self.assertEqual(([p["attributes"]["email"] for p in page2["data"]], page2["links"]["next"]), (["c@x.com"], None))
        a, c = page["data"][0]["id"], page2["data"][0]["id"]
        rel = "/api/lists/Y6nRLr/relationships/profiles"
        self.assertEqual(self.call("DELETE", rel, {"data": [{"type": "profile", "id": a}]})[0], 204)
        self.assertEqual(self.call("DELETE", rel, {"data": [{"type": "profile", "id": a}]})[0], 204)
        self.assertEqual(self.mock.members("Y6nRLr"), ["c@x.com"])
        self.assertEqual(self.call("POST", rel, {"data": [{"type": "profile", "id": a}]})[0], 204)
        self.assertEqual(self.mock.members("Y6nRLr"), ["a@x.com", "c@x.com"])
        # An unknown list, an unknown profile, more than 1,000 ids, a bad body.
        self.assertEqual(self.call("DELETE", "/api/lists/NOPE/relationships/profiles",
                                   {"data": [{"type": "profile", "id": a}]})[0], 404)
        self.assertEqual(self.call("POST", rel, {"data": [{"type": "profile", "id": "01NOPE"}]})[0], 400)
        self.assertEqual(self.call("DELETE", rel, {"data": [{"type": "profile", "id": a}] * 1001})[0], 400)
        self.assertEqual(self.call("DELETE", rel, {"data": [{"id": a}]})[0], 400)
        self.assertEqual(len(self.mock.contract_violations()), 1)
        body["data"]["relationships"]["lists"]["data"][0]["id"] = "Other"
        self.assertEqual(self.call("POST", JOBS, body)[0], 400)
        # A deleted profile leaves its lists.
        self.call("POST", "/api/data-privacy-deletion-jobs", {"data": {"type": "data-privacy-deletion-job",
                  "attributes": {"profile": {"data": {"type": "profile", "attributes": {"email": "c@x.com"}}}}}})
        self.assertEqual(self.mock.members("Y6nRLr"), ["a@x.com"])

    def test_deletion_and_contract(self):
        self.mock.configure(polls_to_complete=1)
        jid = self.call("POST", JOBS, job_body({"email": "a@x.com"}))[1]["data"]["id"]
        self.call("GET", f"{JOBS}/{jid}")
        self.assertEqual(set(self.mock.profiles()), {"a@x.com"})
        deletion = {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": {
            "type": "profile", "attributes": {"email": "A@x.com"}}}}}}
        self.assertEqual(self.call("POST", "/api/data-privacy-deletion-jobs", deletion)[0], 202)
        self.assertEqual(self.mock.profiles(), {})
        bad = job_body({"email": "a@x.com"})
        bad["data"]["type"] = "profile-import-job"
        self.assertEqual(self.call("POST", JOBS, bad)[0], 400)
        self.assertEqual(len(self.mock.contract_violations()), 1)

    def test_rate_limit_expiry_and_faults(self):
        self.mock.configure(rate_limit=1, rate_window_ms=60000)
        status, _, headers = self.call("POST", JOBS, job_body({"email": "a@x.com"}))
        self.assertEqual(status, 202)
        self.assertIn("RateLimit-Remaining", headers)
        status, body, headers = self.call("POST", JOBS, job_body({"email": "b@x.com"}))
        self.assertEqual((status, body["errors"][0]["code"]), (429, "throttled"))
        self.assertIn("Retry-After", headers)
        self.assertNotIn("RateLimit-Remaining", headers)
        self.mock.reset()
        jid = self.call("POST", JOBS, job_body({"email": "a@x.com"}))[1]["data"]["id"]
        self.mock.expire(jid)
        self.assertEqual(self.call("GET", f"{JOBS}/{jid}")[0], 404)
        self.mock.configure(faults=[{"status": 503, "path": JOBS}])
        self.assertEqual(self.call("POST", JOBS, job_body({"email": "a@x.com"}))[0], 503)
        self.assertEqual(self.call("POST", JOBS, job_body({"email": "a@x.com"}))[0], 202)


if __name__ == "__main__":
    unittest.main()

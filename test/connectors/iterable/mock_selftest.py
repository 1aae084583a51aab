#!/usr/bin/env python3
"""Self-test for test/connectors/iterable/mock.py: Api-Key auth, bulkUpdate merges
and failedUpdates (malformed identifiers, a field's type fixed by its first value,
refusals), the 4 MB body limit, deletes by email and userId, list subscribe and
unsubscribe with notFound*, the rate limit's 429, faults, the Swagger contract and
the journal.

Run: python3 test/connectors/iterable/mock_selftest.py"""

import json
import os
import sys
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockIterable  # noqa: E402


class MockIterableTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockIterable()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def call(self, path, body=None, method="POST", key="test-key", raw=None):
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Api-Key"] = key
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.mock.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")

    def test_auth(self):
        status, body = self.call("/api/users/bulkUpdate", {"users": [{"email": "a@x.com"}]}, key=None)
        self.assertEqual((status, body["code"]), (401, "BadApiKey"))
        self.assertEqual(self.call("/api/users/bulkUpdate", {"users": []}, key="wrong")[0], 401)
        self.assertEqual(self.mock.users(), {})

    def test_bulk_update_merges_and_names_failures(self):
        status, body = self.call("/api/users/bulkUpdate", {"users": [
            {"email": "a@x.com", "dataFields": {"plan": "pro", "score": 1}},
            {"email": "not-an-email", "dataFields": {"plan": "pro"}},
            {"userId": "u1", "preferUserId": True, "dataFields": {"plan": "free"}},
            {"userId": "u2", "dataFields": {"plan": "free"}}]})
        self.assertEqual(status, 200)
        self.assertEqual(body["successCount"], 2)
        self.assertEqual(body["failCount"], 2)
        self.assertEqual(body["failedUpdates"], {"invalidEmails": ["not-an-email"], "notFoundUserIds": ["u2"]})
        # Merged: fields not sent are kept.
        self.call("/api/users/bulkUpdate", {"users": [{"email": "a@x.com", "dataFields": {"plan": "team"}}]})
        self.assertEqual(self.mock.users()["email:a@x.com"], {"email": "a@x.com", "plan": "team", "score": 1})
        # A field's type cannot change.
        _, body = self.call("/api/users/bulkUpdate", {"users": [{"email": "a@x.com", "dataFields": {"score": "x"}}]})
        self.assertEqual(body["failedUpdates"], {"invalidDataEmails": ["a@x.com"]})
        self.mock.configure(reject_field="plan", reject_pattern="^bad$")
        _, body = self.call("/api/users/bulkUpdate", {"users": [{"userId": "u1", "dataFields": {"plan": "bad"}}]})
        self.assertEqual(body["failedUpdates"], {"invalidDataUserIds": ["u1"]})

    def test_body_limit_and_bad_json(self):
        big = {"users": [{"email": f"u{i}@x.com", "dataFields": {"pad": "x" * 5000}} for i in range(900)]}
        status, body = self.call("/api/users/bulkUpdate", big)
        self.assertEqual((status, body["code"]), (400, "BatchTooLarge"))
        self.assertEqual(self.mock.users(), {})
        status, body = self.call("/api/users/bulkUpdate", raw=b"{nope")
        self.assertEqual((status, body["code"]), (400, "BadJsonBody"))

    def test_deletes(self):
        self.call("/api/users/bulkUpdate", {"users": [{"email": "a/b@x.com"}, {"userId": "u 1", "preferUserId": True}]})
        self.mock.configure(lists=[5])
        self.call("/api/lists/subscribe", {"listId": 5, "subscribers": [{"email": "a/b@x.com"}]})
        status, body = self.call("/api/users/" + urllib.parse.quote("a/b@x.com", safe=""), method="DELETE")
        self.assertEqual((status, body["code"]), (200, "Success"))
        self.assertEqual(self.mock.members(5), [])
        status, body = self.call("/api/users/byUserId/u%201", method="DELETE")
        self.assertEqual(status, 200)
        status, body = self.call("/api/users/gone%40x.com", method="DELETE")
        self.assertEqual((status, body["code"]), (400, "UnknownEmailError"))
        self.assertEqual(self.mock.users(), {})

    def test_lists(self):
        status, body = self.call("/api/lists/subscribe", {"listId": 9, "subscribers": [{"email": "a@x.com"}]})
        self.assertEqual((status, body["code"]), (400, "BadParams"))
        self.mock.configure(lists=[9])
        _, body = self.call("/api/lists/subscribe", {"listId": 9, "subscribers": [
            {"email": "a@x.com"}, {"email": "b@x.com"}, {"userId": "nobody"}, {"email": "bad"}]})
        self.assertEqual((body["successCount"], body["failCount"]), (2, 2))
        self.assertEqual(self.mock.members(9), ["email:a@x.com", "email:b@x.com"])
        _, body = self.call("/api/lists/unsubscribe", {"listId": 9, "subscribers": [
            {"email": "a@x.com"}, {"email": "c@x.com"}]})
        self.assertEqual(body["failedUpdates"], {"notFoundEmails": ["c@x.com"]})
        self.assertEqual(self.mock.members(9), ["email:b@x.com"])

    def test_rate_limit_and_faults(self):
        self.mock.configure(rate_limit={"limit": 1, "window_s": 60})
        self.assertEqual(self.call("/api/users/bulkUpdate", {"users": []})[0], 200)
        status, body = self.call("/api/users/bulkUpdate", {"users": []})
        self.assertEqual((status, body["code"]), (429, "RateLimitExceeded"))
        self.assertEqual(self.mock.stats()["throttled"], 1)
        self.mock.reset()
        self.mock.configure(faults=[{"status": 503}])
        self.assertEqual(self.call("/api/users/bulkUpdate", {"users": [{"email": "a@x.com"}]})[0], 503)
        self.assertEqual(self.mock.users(), {})
        self.assertEqual(self.call("/api/users/bulkUpdate", {"users": [{"email": "a@x.com"}]})[0], 200)

    def test_contract_and_journal(self):
        self.mock.configure(lists=[3])
        self.call("/api/lists/subscribe", {"listId": "3", "subscribers": [{"email": "a@x.com"}]})
        self.call("/api/users/bulkUpdate", {"users": [{"email": "a@x.com"}]})
        violations = self.mock.contract_violations()
        self.assertEqual(len(violations), 1)
        self.assertIn("listId", violations[0]["errors"][0])
        reqs = self.mock.requests()
        self.assertEqual(reqs[1]["headers"]["api-key"], "test-key")
        self.mock.clear_requests()
        self.assertEqual(self.mock.requests(), [])


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Self-test for test/connectors/braze/mock.py: bearer auth, /users/track
writes and partial errors by index, the 75-object cap, _update_existing_only,
/users/delete with its 50-identifier cap and one identifier kind, the rate
limit's 429 with X-RateLimit-* headers, faults, refusals and the journal.

Run: python3 test/connectors/braze/mock_selftest.py"""

import json
import os
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockBraze  # noqa: E402


class MockBrazeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockBraze()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def call(self, path, body, auth="Bearer test-token"):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        req = urllib.request.Request(self.mock.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read().decode()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null"), dict(e.headers)

    def test_auth(self):
        self.assertEqual(self.call("/users/track", {"attributes": [{"external_id": "a"}]}, auth=None)[0], 401)
        self.assertEqual(self.call("/users/track", {"attributes": [{"external_id": "a"}]},
                                   auth="Bearer wrong")[0], 401)
        self.assertEqual(self.mock.users(), {})

    def test_track_partial_errors(self):
        status, body, _ = self.call("/users/track", {"attributes": [
            {"external_id": "u1", "first_name": "Ada", "email": "a@x.com"},
            {"first_name": "nobody"},
            {"external_id": "u3", "braze_id": "b3"},
            {"external_id": "u4", "seen": "2024-05-01T12:00:00.000Z", "gone": None}]})
        self.assertEqual(status, 201)
        self.assertEqual(body["message"], "success")
        self.assertEqual([e["index"] for e in body["errors"]], [1, 2])
        self.assertEqual(body["errors"][0]["input_array"], "attributes")
        users = self.mock.users()
        self.assertEqual(set(users), {"external_id:u1", "external_id:u4"})
        self.assertEqual(users["external_id:u1"]["first_name"], "Ada")
        self.assertNotIn("gone", users["external_id:u4"])
        self.assertEqual(self.mock.contract_violations(), [])
        # null removes an attribute.
        self.call("/users/track", {"attributes": [{"external_id": "u1", "first_name": None}]})
        self.assertNotIn("first_name", self.mock.users()["external_id:u1"])

    def test_bad_dates_are_contract_errors(self):
        self.call("/users/track", {"attributes": [{"external_id": "u1", "seen": "2024-05-01 12:00:00+00"}]})
        self.assertEqual(len(self.mock.contract_violations()), 1)

    def test_update_existing_only(self):
        status, _, _ = self.call("/users/track", {"attributes": [{"external_id": "u1", "_update_existing_only": True}]})
        self.assertEqual(status, 201)
        self.assertEqual(self.mock.users(), {})

    def test_caps(self):
        status, body, _ = self.call("/users/track", {"attributes": [{"external_id": f"u{i}"} for i in range(76)]})
        self.assertEqual(status, 400)
        self.assertNotEqual(body["message"], "success")
        self.assertEqual(self.mock.users(), {})
        status, _, _ = self.call("/users/track", {
            "attributes": [{"external_id": f"u{i}"} for i in range(40)],
            "events": [{"external_id": "u1", "name": "e", "time": "2024-01-01T00:00:00Z"}] * 36})
        self.assertEqual(status, 400)
        self.assertEqual(self.call("/users/track", {"attributes": [{"external_id": f"u{i}"} for i in range(75)]})[0],
                         201)
        self.assertEqual(len(self.mock.users()), 75)

    def test_delete(self):
        self.call("/users/track", {"attributes": [{"external_id": f"u{i}"} for i in range(3)]})
        status, body, _ = self.call("/users/delete", {"external_ids": ["u0", "u1", "zz"]})
        self.assertEqual((status, body["deleted"]), (201, 2))
        self.assertEqual(set(self.mock.users()), {"external_id:u2"})
        self.assertEqual(self.call("/users/delete", {"external_ids": [f"u{i}" for i in range(51)]})[0], 400)
        self.assertEqual(self.call("/users/delete", {"external_ids": ["u2"], "braze_ids": ["b"]})[0], 400)
        self.assertEqual(self.call("/users/delete", {"external_ids": [2]})[0], 400)
        self.assertEqual(set(self.mock.users()), {"external_id:u2"})

    def test_rate_limit_headers(self):
        self.mock.configure(rate_limit={"limit": 2, "window_s": 2})
        one = {"attributes": [{"external_id": "u"}]}
        self.assertEqual(self.call("/users/track", one)[0], 201)
        self.assertEqual(self.call("/users/track", one)[0], 201)
        status, _, headers = self.call("/users/track", one)
        self.assertEqual(status, 429)
        self.assertEqual(headers["X-RateLimit-Remaining"], "0")
        self.assertEqual(headers["X-RateLimit-Limit"], "2")
        reset = int(headers["X-RateLimit-Reset"])
        self.assertGreater(reset, time.time())
        self.assertEqual(self.mock.stats()["throttled"], 1)
        self.assertEqual(self.call("/users/track", one)[0], 429)
        self.assertEqual(self.mock.stats()["early_after_429"], 1)

    def test_faults_and_refusals(self):
        self.mock.configure(faults=[{"status": 429, "reset_in": 1}, {"status": 503}])
        status, _, headers = self.call("/users/track", {"attributes": [{"external_id": "u"}]})
        self.assertEqual(status, 429)
        self.assertIn("X-RateLimit-Reset", headers)
        self.assertEqual(self.call("/users/track", {"attributes": [{"external_id": "u"}]})[0], 503)
        self.assertEqual(self.mock.users(), {})
        self.mock.configure(reject_field="country", reject_pattern="^XX$")
        status, body, _ = self.call("/users/track", {"attributes": [{"external_id": "a", "country": "XX"},
                                                                    {"external_id": "b", "country": "DE"}]})
        self.assertEqual(body["errors"], [{"type": "Invalid value for country", "input_array": "attributes",
                                           "index": 0}])
        self.assertEqual(set(self.mock.users()), {"external_id:b"})

    def test_journal(self):
        self.call("/users/track", {"attributes": [{"external_id": "u"}]})
        reqs = self.mock.requests()
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["path"], "/users/track")
        self.assertEqual(reqs[0]["headers"]["authorization"], "Bearer test-token")
        self.mock.clear_requests()
        self.assertEqual(self.mock.requests(), [])


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Self-test for test/connectors/customerio/mock.py: Basic auth with site id and
API key, identify and delete items through /api/v2/batch, 207 per-item errors
by batch_index, _update (no creation), the 500 KB request and 32 KB item
limits, the OpenAPI contract check (more than one identifier), the rate
limit's 429, faults and the journal.

Run: python3 test/connectors/customerio/mock_selftest.py"""

import base64
import json
import os
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockCustomerIo  # noqa: E402

GOOD = "Basic " + base64.b64encode(b"site-1:test-key").decode()


def person(ident, action="identify", **attributes):
    item = {"type": "person", "identifiers": ident, "action": action}
    if action == "identify":
        item["attributes"] = attributes
    return item


class MockCustomerIoTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockCustomerIo()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def batch(self, items, auth=GOOD, raw=None):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        data = raw if raw is not None else json.dumps({"batch": items}).encode()
        req = urllib.request.Request(self.mock.url + "/api/v2/batch", data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read().decode() or "null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null"), dict(e.headers)

    def test_auth(self):
        self.assertEqual(self.batch([person({"id": "1"})], auth=None)[0], 401)
        wrong = "Basic " + base64.b64encode(b"site-1:wrong").decode()
        status, body, _ = self.batch([person({"id": "1"})], auth=wrong)
        self.assertEqual((status, body), (401, {"meta": {"error": "Unauthorized request"}}))
        self.assertEqual(self.mock.people(), {})

    def test_identify_delete_and_partial_errors(self):
        status, body, _ = self.batch([person({"id": "1"}, plan="pro", email="a@x.com"),
                                      person({"id": "2"}, email="not-an-address"),
                                      person({"email": "b@x.com"}, plan="free")])
        self.assertEqual(status, 207)
        self.assertEqual(body["errors"], [{"batch_index": 1, "reason": "invalid", "field": "email",
                                           "message": "invalid email address"}])
        self.assertEqual(self.mock.people(), {"1": {"plan": "pro", "email": "a@x.com"},
                                              "b@x.com": {"email": "b@x.com", "plan": "free"}})
        # Merged; null removes; found by email case-insensitively.
        status, body, _ = self.batch([person({"id": "1"}, plan=None, seats=3),
                                      person({"email": "B@X.com"}, plan="team")])
        self.assertEqual((status, body), (200, {}))
        people = self.mock.people()
        self.assertEqual(people["1"], {"email": "a@x.com", "seats": 3})
        self.assertEqual(people["b@x.com"]["plan"], "team")
        self.assertEqual(self.batch([person({"id": "1"}, "delete"), person({"id": "404"}, "delete")])[0], 200)
        self.assertEqual(set(self.mock.people()), {"b@x.com"})
        self.assertEqual(self.mock.contract_violations(), [])

    def test_update_only_creates_nobody(self):
        self.assertEqual(self.batch([person({"id": "9"}, plan="x", _update=True)])[0], 200)
        self.assertEqual(self.mock.people(), {})

    def test_reject_switch(self):
        self.mock.configure(reject=[{"field": "plan", "pattern": "^bad", "reason": "invalid_value",
                                     "message": "plan is not allowed"}])
        status, body, _ = self.batch([person({"id": "1"}, plan="ok"), person({"id": "2"}, plan="bad1")])
        self.assertEqual(status, 207)
        self.assertEqual(body["errors"][0]["batch_index"], 1)
        self.assertEqual(body["errors"][0]["reason"], "invalid_value")
        self.assertEqual(set(self.mock.people()), {"1"})

    def test_contract_refuses_two_identifiers(self):
        status, body, _ = self.batch([{"type": "person", "identifiers": {"id": "1", "email": "a@x.com"},
                                       "action": "identify"}])
        self.assertEqual(status, 400)
        self.assertEqual(len(self.mock.contract_violations()), 1)
        self.assertEqual(self.mock.people(), {})

    def test_size_limits(self):
        big = "x" * 33000
        status, body, _ = self.batch([person({"id": "1"}, blob=big), person({"id": "2"}, plan="a")])
        self.assertEqual(status, 207)
        self.assertEqual([(e["batch_index"], e["reason"]) for e in body["errors"]], [(0, "too_large")])
        items = [person({"id": str(i)}, blob="y" * 30000) for i in range(17)]
        status, body, _ = self.batch(items)
        self.assertEqual(status, 400)
        self.assertEqual(body["meta"]["error"], "batch request too large")
        self.assertEqual(set(self.mock.people()), {"2"})

    def test_rate_limit_and_faults(self):
        self.mock.configure(rate_limit=2, rate_window_ms=60000, retry_after_header=True)
        self.assertEqual(self.batch([person({"id": "1"})])[0], 200)
        self.assertEqual(self.batch([person({"id": "2"})])[0], 200)
        status, body, headers = self.batch([person({"id": "3"})])
        self.assertEqual(status, 429)
        self.assertIn("Retry-After", headers)
        self.assertEqual(self.mock.stats()["rate_limited"], 1)
        self.mock.reset()
        self.mock.configure(faults=[{"status": 503}])
        self.assertEqual(self.batch([person({"id": "1"})])[0], 503)
        self.assertEqual(self.batch([person({"id": "1"})])[0], 200)
        journal = self.mock.requests()
        self.assertEqual([r["status"] for r in journal], [503, 200])
        self.assertTrue(journal[0]["fault"])
        self.assertEqual(journal[1]["body"]["batch"][0]["identifiers"], {"id": "1"})


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Self-test for test/connectors/mailchimp/mock.py: Basic and Bearer auth with RFC
7807 errors, the batch endpoint's partial failures in errors[] (by email), the
500-member cap, update_existing, PATCH of existing members only, archive and
re-adding, tags on members only, the 10-connection limit (an 11th simultaneous
request gets 429), the bare 403 fault, and the contract check.

Run: python3 test/connectors/mailchimp/mock_selftest.py"""

import base64
import hashlib
import json
import os
import sys
import threading
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockMailchimp  # noqa: E402

LIST = "a1b2c3d4e5"


def h(email):
    return hashlib.md5(email.lower().encode()).hexdigest()


class MockMailchimpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockMailchimp()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()
        self.mock.configure(lists=[LIST])

    def call(self, method, path, body=None, key="test-key-us6", bearer=None):
        headers = {"Content-Type": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        elif key:
            headers["Authorization"] = "Basic " + base64.b64encode(f"anystring:{key}".encode()).decode()
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.mock.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text else None), dict(r.headers)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text else None), dict(e.headers)

    def batch(self, *members, update=True, **kw):
        return self.call("POST", f"/3.0/lists/{LIST}",
                         {"members": list(members), "update_existing": update}, **kw)

    def test_auth_and_problem_bodies(self):
        status, body, headers = self.batch({"email_address": "a@x.com", "status": "subscribed"}, key="wrong")
        self.assertEqual((status, body["title"]), (401, "API Key Invalid"))
        self.assertEqual(set(body), {"type", "title", "status", "detail", "instance"})
        self.assertEqual(headers["Content-Type"], "application/problem+json")
        status, _, _ = self.batch({"email_address": "a@x.com", "status": "subscribed"}, bearer="test-oauth-token")
        self.assertEqual(status, 200)
        status, body, _ = self.call("POST", "/3.0/lists/nope", {"members": []})
        self.assertEqual((status, body["title"]), (404, "Resource Not Found"))

    def test_batch_partial_failures_by_email(self):
        self.mock.configure(reject_field="PLAN", reject_pattern="^XX$", compliance=["gone@x.com"])
        status, body, _ = self.batch({"email_address": "A@x.com", "status": "subscribed", "merge_fields": {"PLAN": "p"}},
                                     {"email_address": "broken", "status": "subscribed"},
                                     {"email_address": "c@x.com", "status": "subscribed", "merge_fields": {"PLAN": "XX"}},
                                     {"email_address": "gone@x.com", "status": "subscribed"},
                                     {"email_address": "nostatus@x.com"})
        self.assertEqual(status, 200)
        self.assertEqual((body["total_created"], body["error_count"]), (1, 4))
        self.assertEqual(body["new_members"][0]["id"], h("a@x.com"))
        codes = {e["email_address"]: e["error_code"] for e in body["errors"]}
        self.assertEqual(codes, {"broken": "ERROR_GENERIC", "c@x.com": "ERROR_GENERIC",
                                 "gone@x.com": "ERROR_CONTACT_EXISTS", "nostatus@x.com": "ERROR_GENERIC"})
        self.assertEqual(set(self.mock.members(LIST)), {"a@x.com"})
        # update_existing false refuses an existing member; true updates it.
        status, body, _ = self.batch({"email_address": "a@x.com", "status": "subscribed"}, update=False)
        self.assertEqual(body["errors"][0]["error_code"], "ERROR_CONTACT_EXISTS")
        status, body, _ = self.batch({"email_address": "a@x.com", "merge_fields": {"PLAN": "q"}})
        self.assertEqual(body["total_updated"], 1)
        self.assertEqual(self.mock.members(LIST)["a@x.com"]["merge_fields"], {"PLAN": "q"})
        status, body, _ = self.batch(*[{"email_address": f"u{i}@x.com", "status": "subscribed"} for i in range(501)])
        self.assertEqual((status, body["title"]), (400, "Invalid Resource"))
        self.assertEqual(self.mock.contract_violations(), [])

    def test_patch_archive_and_tags(self):
        status, _, _ = self.call("PATCH", f"/3.0/lists/{LIST}/members/{h('a@x.com')}", {"merge_fields": {"X": 1}})
        self.assertEqual(status, 404)
        status, _, _ = self.call("POST", f"/3.0/lists/{LIST}/members/{h('a@x.com')}/tags",
                                 {"tags": [{"name": "vip", "status": "active"}]})
        self.assertEqual(status, 404)
        self.batch({"email_address": "a@x.com", "status": "subscribed"})
        status, body, _ = self.call("PATCH", f"/3.0/lists/{LIST}/members/{h('a@x.com')}", {"merge_fields": {"X": 1}})
        self.assertEqual((status, body["merge_fields"]), (200, {"X": 1}))
        status, _, _ = self.call("POST", f"/3.0/lists/{LIST}/members/{h('a@x.com')}/tags",
                                 {"tags": [{"name": "vip", "status": "active"}]})
        self.assertEqual(status, 204)
        self.assertEqual(self.mock.tagged(LIST, "vip"), ["a@x.com"])
        self.call("POST", f"/3.0/lists/{LIST}/members/{h('a@x.com')}/tags",
                  {"tags": [{"name": "vip", "status": "inactive"}]})
        self.assertEqual(self.mock.tagged(LIST, "vip"), [])
        status, _, _ = self.call("DELETE", f"/3.0/lists/{LIST}/members/{h('a@x.com')}")
        self.assertEqual(status, 204)
        self.assertEqual(self.mock.members(LIST)["a@x.com"]["status"], "archived")
        status, _, _ = self.call("DELETE", f"/3.0/lists/{LIST}/members/{h('a@x.com')}")
        self.assertEqual(status, 404)
        # Written again, an archived member is a member again.
        status, body, _ = self.batch({"email_address": "a@x.com", "status": "subscribed"})
        self.assertEqual(body["total_created"], 1)
        self.assertEqual(self.mock.members(LIST)["a@x.com"]["status"], "subscribed")
        self.assertEqual(self.mock.contract_violations(), [])

    def test_eleventh_simultaneous_connection_gets_429(self):
        self.mock.configure(hold_s=1.5)
        results = []
        lock = threading.Lock()
        start = threading.Barrier(11)

        def one(i):
            start.wait()
            status, body, headers = self.batch({"email_address": f"c{i}@x.com", "status": "subscribed"})
            with lock:
                results.append((status, body.get("title") if body else None,
                                any(k.lower().startswith("x-ratelimit") for k in headers)))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(11)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(r[0] for r in results), [200] * 10 + [429])
        self.assertIn((429, "Too Many Requests", False), results)
        self.assertEqual(self.mock.stats()["max_in_flight"], 10)

    def test_faults_bare_403_and_contract(self):
        self.mock.configure(faults=[{"status": 403, "bare": True}])
        status, body, _ = self.batch({"email_address": "a@x.com", "status": "subscribed"})
        self.assertEqual((status, body), (403, None))
        self.assertEqual(self.mock.members(LIST), {})
        # A body the contract does not allow is journaled.
        self.batch({"email_address": "a@x.com", "status": "vip"})
        violations = self.mock.contract_violations()
        self.assertEqual(len(violations), 1)
        self.assertIn("status", violations[0]["errors"][0])


if __name__ == "__main__":
    unittest.main()

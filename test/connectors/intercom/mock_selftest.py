#!/usr/bin/env python3
"""Self-test for test/connectors/intercom/mock.py: auth and revocation, contacts
created, searched (with the search delay), updated by id, archived and
deleted, 409 conflicts naming the existing contact, companies upserted on
company_id, per-record failures, the X-RateLimit-* window and its 429,
faults, the journal, and the OpenAPI check (body and Intercom-Version).

Run: python3 test/connectors/intercom/mock_selftest.py"""

import json
import os
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockIntercom  # noqa: E402

AUTH = "Bearer test-token"


class MockIntercomTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockIntercom()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def call(self, method, path, body=None, auth=AUTH, version="2.16"):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        if version:
            headers["Intercom-Version"] = version
        req = urllib.request.Request(self.mock.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null"), dict(e.headers)

    def search(self, field, value):
        return self.call("POST", "/contacts/search", {"query": {"field": field, "operator": "=", "value": value}})

    def test_auth_and_revocation(self):
        status, body, _ = self.call("POST", "/contacts/search", {"query": {}}, auth="Bearer nope")
        self.assertEqual(status, 401)
        self.assertEqual(body["type"], "error.list")
        self.assertEqual(body["errors"][0]["code"], "unauthorized")
        self.assertEqual(self.search("email", "a@x.com")[0], 200)
        self.mock.revoke()
        self.assertEqual(self.search("email", "a@x.com")[0], 401)

    def test_contact_lifecycle_and_conflicts(self):
        status, c, headers = self.call("POST", "/contacts", {"role": "user", "email": "Ada@x.com", "external_id": "1",
                                                             "custom_attributes": {"plan": "pro"}})
        self.assertEqual(status, 200)
        self.assertEqual(len(c["id"]), 24)
        self.assertIn("X-RateLimit-Reset", headers)
        status, found, _ = self.search("email", "ada@x.com")
        self.assertEqual([x["id"] for x in found["data"]], [c["id"]])
        self.assertEqual(found["total_count"], 1)
        # A second user with the same email: 409 naming the first.
        status, err, _ = self.call("POST", "/contacts", {"role": "user", "email": "ada@x.com"})
        self.assertEqual(status, 409)
        self.assertEqual(err["errors"][0]["code"], "conflict")
        self.assertIn(f"id={c['id']}", err["errors"][0]["message"])
        # Leads are not checked.
        self.assertEqual(self.call("POST", "/contacts", {"role": "lead", "email": "ada@x.com"})[0], 200)
        status, u, _ = self.call("PUT", f"/contacts/{c['id']}", {"name": "Ada L", "custom_attributes": {"score": 3}})
        self.assertEqual(status, 200)
        self.assertEqual(u["custom_attributes"], {"plan": "pro", "score": 3})
        status, a, _ = self.call("POST", f"/contacts/{c['id']}/archive")
        self.assertEqual((status, a["archived"]), (200, True))
        self.assertEqual(self.search("email", "ada@x.com")[1]["data"][0]["role"], "lead")
        self.assertEqual(self.call("PUT", f"/contacts/{c['id']}", {"name": "x"})[0], 404)
        status, d, _ = self.call("DELETE", f"/contacts/{c['id']}")
        self.assertEqual((status, d["deleted"]), (200, True))
        status, err, _ = self.call("DELETE", f"/contacts/{c['id']}")
        self.assertEqual((status, err["errors"][0]["code"]), (404, "not_found"))

    def test_search_delay_hides_new_contacts(self):
        self.mock.configure(search_delay_ms=300)
        self.call("POST", "/contacts", {"role": "user", "external_id": "e1"})
        self.assertEqual(self.search("external_id", "e1")[1]["data"], [])
        time.sleep(0.35)  # the mock's own delay, not a wait on revetl
        self.assertEqual(len(self.search("external_id", "e1")[1]["data"]), 1)
        status, body, _ = self.call("POST", "/contacts/search", {"query": {"operator": "AND", "value": [
            {"field": "external_id", "operator": "=", "value": "e1"}, {"field": "role", "operator": "=", "value": "lead"}]}})
        self.assertEqual((status, body["data"]), (200, []))

    def test_companies_upsert_on_company_id(self):
        status, c, _ = self.call("POST", "/companies", {"company_id": "7", "name": "Acme"})
        self.assertEqual(status, 200)
        status, again, _ = self.call("POST", "/companies", {"company_id": "7", "plan": "gold"})
        self.assertEqual(again["id"], c["id"])
        self.assertEqual(again["plan"], "gold")
        self.assertEqual(self.call("POST", "/companies", {"name": "no id"})[0], 400)
        self.assertEqual(self.call("PUT", f"/companies/{c['id']}", {"name": "Acme 2"})[1]["name"], "Acme 2")
        self.assertEqual(self.call("PUT", "/companies/nope", {"name": "x"})[1]["errors"][0]["code"], "company_not_found")
        self.assertEqual(self.call("DELETE", f"/companies/{c['id']}")[1]["deleted"], True)
        self.assertEqual(self.mock.companies(), [])

    def test_fail_records_and_faults(self):
        self.mock.configure(fail_records=[{"field": "email", "pattern": "^bad", "code": "parameter_invalid",
                                           "message": "Email address is invalid"}],
                            faults=[{"status": 503, "path": "/contacts/search"}])
        status, body, _ = self.call("POST", "/contacts", {"role": "user", "email": "bad@x.com"})
        self.assertEqual(status, 400)
        self.assertEqual(body["errors"][0], {"code": "parameter_invalid", "message": "Email address is invalid",
                                             "field": "email"})
        self.assertEqual(self.search("email", "a@x.com")[0], 503)
        self.assertEqual(self.search("email", "a@x.com")[0], 200)
        journal = self.mock.requests()
        self.assertEqual([r["status"] for r in journal], [400, 503, 200])
        self.assertTrue(journal[1]["fault"])
        self.assertEqual(journal[0]["headers"]["intercom-version"], "2.16")

    def test_rate_limit_window(self):
        self.mock.configure(rate_limit=2, rate_window_ms=60000)
        self.assertEqual(self.search("email", "a")[0], 200)
        status, _, headers = self.search("email", "a")
        self.assertEqual((status, headers["X-RateLimit-Remaining"]), (200, "0"))
        status, body, headers = self.search("email", "a")
        self.assertEqual(status, 429)
        self.assertEqual(body["errors"][0]["code"], "rate_limit_exceeded")
        self.assertIn("Exceeded rate limit of 2", body["errors"][0]["message"])
        self.assertGreaterEqual(int(headers["X-RateLimit-Reset"]), int(time.time()))
        self.assertEqual(self.mock.stats()["rate_limited"], 1)

    def test_contract(self):
        # create_contact_request: a string external_id; an unknown version is refused.
        status, body, _ = self.call("POST", "/contacts", {"role": "user", "external_id": 5})
        self.assertEqual(status, 400)
        self.assertEqual(self.mock.contract_violations()[0]["path"], "/contacts")
        status, body, _ = self.call("POST", "/contacts", {"role": "user", "email": "a@x.com"}, version="9.9")
        self.assertEqual((status, body["errors"][0]["code"]), (400, "intercom_version_invalid"))


if __name__ == "__main__":
    unittest.main()

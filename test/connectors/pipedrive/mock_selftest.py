#!/usr/bin/env python3
"""Self-test for test/connectors/pipedrive/mock.py: API token and OAuth auth,
revocation, persons and organizations created, searched (exact and partial,
the search delay), patched and deleted, unknown custom fields, per-record
failures, the burst window and the search limit with x-ratelimit-*, the
daily budget, faults, the journal, and the OpenAPI check of bodies and
query parameters.

Run: python3 test/connectors/pipedrive/mock_selftest.py"""

import base64
import json
import os
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockPipedrive  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef01234567"


class MockPipedriveTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockPipedrive()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def call(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json", "x-api-token": "test-token"}
        h.update(headers or {})
        req = urllib.request.Request(self.mock.url + path, data=data, method=method,
                                     headers={k: v for k, v in h.items() if v is not None})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null"), dict(e.headers)

    def search(self, obj, term, fields, exact=True):
        q = urllib.parse.urlencode({"term": term, "fields": fields, "exact_match": "true" if exact else "false"})
        return self.call("GET", f"/api/v2/{obj}/search?{q}")

    def person(self, email, **extra):
        return self.call("POST", "/api/v2/persons",
                         {"name": email.split("@")[0], "emails": [{"value": email, "primary": True, "label": "work"}],
                          **extra})

    def test_auth(self):
        status, body, _ = self.call("GET", "/api/v2/persons/search?term=x&fields=email&exact_match=true",
                                    headers={"x-api-token": "nope"})
        self.assertEqual((status, body["success"], body["error"]), (401, False, "unauthorized access"))
        status, _, _ = self.call("GET", "/api/v2/persons/search?term=x&fields=email&exact_match=true",
                                 headers={"x-api-token": None, "Authorization": "Bearer oauth-token"})
        self.assertEqual(status, 200)
        self.mock.revoke()
        self.assertEqual(self.search("persons", "x", "email")[0], 401)

    def test_oauth_token_endpoint(self):
        def token(form, basic=None):
            data = urllib.parse.urlencode(form).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if basic:
                headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
            req = urllib.request.Request(self.mock.url + "/oauth/token", data=data, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
        grant = {"grant_type": "refresh_token", "refresh_token": "pd-refresh-token"}
        status, body = token(grant, basic="pd-client:pd-client-secret")
        self.assertEqual(status, 200)
        self.assertEqual(body["api_domain"], self.mock.url)
        bearer = {"x-api-token": None, "Authorization": "Bearer " + body["access_token"]}
        self.assertEqual(self.call("GET", "/api/v2/persons/search?term=x&exact_match=true", headers=bearer)[0], 200)
        self.mock.expire_tokens()
        self.assertEqual(self.call("GET", "/api/v2/persons/search?term=x&exact_match=true", headers=bearer)[0], 401)
        self.assertEqual(token({**grant, "client_id": "pd-client", "client_secret": "pd-client-secret"})[0], 200)
        self.assertEqual(token(grant, basic="pd-client:wrong")[1]["error"], "invalid_client")
        self.assertEqual(token({**grant, "refresh_token": "old"}, basic="pd-client:pd-client-secret")[1]["error"],
                         "invalid_grant")

    def test_persons_lifecycle(self):
        status, p, headers = self.person("Ada@x.com", custom_fields={KEY: "pro"})
        self.assertEqual((status, p["success"], p["data"]["id"]), (200, True, 1))
        self.assertIn("x-ratelimit-reset", {k.lower() for k in headers})
        status, found, _ = self.search("persons", "ada@x.com", "email")
        self.assertEqual([i["item"]["id"] for i in found["data"]["items"]], [1])
        self.assertEqual(found["data"]["items"][0]["item"]["emails"], ["Ada@x.com"])
        self.assertEqual(self.search("persons", "ada@", "email")[1]["data"]["items"], [])
        self.assertEqual(len(self.search("persons", "ada@", "email", exact=False)[1]["data"]["items"]), 1)
        self.assertEqual(len(self.search("persons", "pro", "custom_fields")[1]["data"]["items"]), 1)
        status, u, _ = self.call("PATCH", "/api/v2/persons/1", {"name": "Ada L", "custom_fields": {KEY: None}})
        self.assertEqual((status, u["data"]["name"], u["data"]["custom_fields"]), (200, "Ada L", {}))
        self.assertEqual(self.call("DELETE", "/api/v2/persons/1")[1], {"success": True, "data": {"id": 1}})
        self.assertEqual(self.call("PATCH", "/api/v2/persons/1", {"name": "x"})[1]["error"], "Person not found")
        self.assertEqual(self.search("persons", "ada@x.com", "email")[1]["data"]["items"], [])
        self.assertEqual(len(self.mock.records("persons", deleted=True)), 1)
        self.assertEqual(self.mock.records("persons"), [])

    def test_organizations_and_custom_fields(self):
        self.assertEqual(self.call("POST", "/api/v2/organizations", {"name": "Acme"})[0], 200)
        status, body, _ = self.call("POST", "/api/v2/organizations", {"name": "B", "custom_fields": {"nope": 1}})
        self.assertEqual((status, body["code"]), (400, "ERR_UNKNOWN_CUSTOM_FIELD"))
        self.assertEqual(len(self.search("organizations", "acme", "name")[1]["data"]["items"]), 1)

    def test_search_delay(self):
        self.mock.configure(search_delay_ms=300)
        self.person("a@x.com")
        self.assertEqual(self.search("persons", "a@x.com", "email")[1]["data"]["items"], [])
        time.sleep(0.35)  # the mock's own delay, not a wait on revetl
        self.assertEqual(len(self.search("persons", "a@x.com", "email")[1]["data"]["items"]), 1)

    def test_fail_records_and_faults(self):
        self.mock.configure(fail_records=[{"field": "email", "pattern": "^bad", "error": "Invalid email",
                                           "code": "ERR_INVALID_EMAIL"}],
                            faults=[{"status": 503, "path": "/api/v2/persons/search"}])
        status, body, _ = self.person("bad@x.com")
        self.assertEqual((status, body["error"], body["code"]), (400, "Invalid email", "ERR_INVALID_EMAIL"))
        self.assertEqual(self.search("persons", "a", "email")[0], 503)
        self.assertEqual(self.search("persons", "a", "email")[0], 200)
        journal = self.mock.requests()
        self.assertEqual([r["status"] for r in journal], [400, 503, 200])
        self.assertTrue(journal[1]["fault"])

    def test_burst_search_and_daily_limits(self):
        self.mock.configure(rate_limit=3, search_rate_limit=2, rate_window_ms=60000)
        self.assertEqual(self.search("persons", "a", "email")[0], 200)
        self.assertEqual(self.search("persons", "a", "email")[0], 200)
        status, body, headers = self.search("persons", "a", "email")
        self.assertEqual((status, body["error"]), (429, "Request over limit"))
        self.assertGreaterEqual(int(headers["x-ratelimit-reset"]), 1)
        self.assertEqual(self.person("a@x.com")[0], 200)
        self.assertEqual(self.person("b@x.com")[0], 429)
        self.mock.reset()
        self.mock.configure(daily_budget=1)
        self.assertEqual(self.person("a@x.com")[2]["x-daily-requests-left"], "0")
        status, body, headers = self.person("b@x.com")
        self.assertEqual((status, headers["x-daily-requests-left"]), (429, "0"))
        self.assertEqual(self.mock.stats()["daily_refused"], 1)

    def test_contract(self):
        status, _, _ = self.call("GET", "/api/v2/persons/search?fields=emails")
        self.assertEqual(status, 400)
        status, _, _ = self.call("POST", "/api/v2/persons", {"name": "x", "emails": "a@x.com"})
        self.assertEqual(status, 400)
        status, _, _ = self.call("POST", "/api/v2/organizations", {"website": "no name"})
        self.assertEqual(status, 400)
        self.assertEqual(len(self.mock.contract_violations()), 3)


if __name__ == "__main__":
    unittest.main()

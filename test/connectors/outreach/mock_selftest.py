#!/usr/bin/env python3
"""Self-test for test/connectors/outreach/mock.py: the token endpoint with
rotating refresh tokens, bearer auth and expiry, the JSON:API media type
(415), create / filter / PATCH / DELETE of prospects and accounts, the
validation errors (taken email, blank account name), X-RateLimit-* headers
and 429 with Retry-After, faults, the journal and the OpenAPI check.

Run: python3 test/connectors/outreach/mock_selftest.py"""

import json
import os
import sys
import unittest
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockOutreach  # noqa: E402

MEDIA = "application/vnd.api+json"


class MockOutreachTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockOutreach()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()
        self.access = None

    def raw(self, method, path, data=None, headers=None):
        req = urllib.request.Request(self.mock.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null"), dict(e.headers)

    def refresh(self, token=None):
        form = {"grant_type": "refresh_token", "client_id": MockOutreach.CLIENT_ID,
                "client_secret": MockOutreach.CLIENT_SECRET,
                "refresh_token": token or self.mock.refresh_token()}
        return self.raw("POST", "/oauth/token", urlencode(form).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded"})

    def call(self, method, path, body=None, media=MEDIA, token=None):
        if self.access is None and token is None:
            self.access = self.refresh()[1]["access_token"]
        headers = {"Authorization": f"Bearer {token or self.access}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = media
        return self.raw(method, "/api/v2" + path, data, headers)

    def create(self, kind, attrs):
        return self.call("POST", f"/{kind}", {"data": {"type": kind[:-1], "attributes": attrs}})

    def test_tokens_rotate_and_expire(self):
        status, first, _ = self.refresh(MockOutreach.REFRESH_TOKEN)
        self.assertEqual(status, 200)
        self.assertNotEqual(first["refresh_token"], MockOutreach.REFRESH_TOKEN)
        status, body, _ = self.refresh(MockOutreach.REFRESH_TOKEN)
        self.assertEqual((status, body["error"]), (400, "invalid_grant"), "the old refresh token died")
        self.assertEqual(self.call("GET", "/prospects", token=first["access_token"])[0], 200)
        self.mock.expire_tokens()
        status, body, _ = self.call("GET", "/prospects", token=first["access_token"])
        self.assertEqual((status, body["errors"][0]["id"]), (401, "unauthorized"))
        self.assertEqual(self.mock.stats()["tokens_issued"], 1)

    def test_prospects_create_filter_patch_delete(self):
        status, body, headers = self.create("prospects", {"emails": ["Ada@example.com"], "firstName": "Ada"})
        self.assertEqual(status, 201)
        pid = body["data"]["id"]
        self.assertEqual(body["data"]["type"], "prospect")
        self.assertIn("X-RateLimit-Remaining", headers)
        status, found, _ = self.call("GET", "/prospects?" + quote("filter[emails]") + "=ada%40example.com")
        self.assertEqual((status, [d["id"] for d in found["data"]], found["meta"]["count"]), (200, [pid], 1))
        status, body, _ = self.create("prospects", {"emails": ["ada@example.com"]})
        self.assertEqual(status, 422)
        self.assertEqual(body["errors"][0]["detail"], "Contact email hash has already been taken.")
        status, body, _ = self.call("PATCH", f"/prospects/{pid}",
                                    {"data": {"type": "prospect", "id": pid, "attributes": {"lastName": "L"}}})
        self.assertEqual((status, body["data"]["attributes"]["firstName"], body["data"]["attributes"]["lastName"]),
                         (200, "Ada", "L"))
        self.assertEqual(self.call("PATCH", f"/prospects/{pid}", {"data": {"type": "prospect", "id": pid + 1,
                                                                           "attributes": {}}})[0], 409)
        self.assertEqual(self.call("DELETE", f"/prospects/{pid}")[0], 204)
        status, body, _ = self.call("DELETE", f"/prospects/{pid}")
        self.assertEqual((status, body["errors"][0]["id"]), (404, "resourceNotFound"))

    def test_accounts_and_media_type(self):
        status, body, _ = self.create("accounts", {"customId": "c-1"})
        self.assertEqual((status, body["errors"][0]["detail"]), (422, "Name can't be blank."))
        self.assertEqual(body["errors"][0]["source"]["pointer"], "/data/attributes/name")
        self.assertEqual(self.create("accounts", {"customId": "c-1", "name": "Acme"})[0], 201)
        found = self.call("GET", "/accounts?" + quote("filter[customId]") + "=c-1")[1]
        self.assertEqual(len(found["data"]), 1)
        status, body, _ = self.call("POST", "/accounts", {"data": {"type": "account", "attributes": {"name": "x"}}},
                                    media="application/json")
        self.assertEqual((status, body["errors"][0]["id"]), (415, "unsupportedMediaType"))

    def test_rate_limit_faults_journal_and_contract(self):
        self.mock.configure(rate_limit=2, rate_window_ms=60000)
        self.assertEqual(self.call("GET", "/prospects")[0], 200)
        status, _, headers = self.call("GET", "/prospects")
        self.assertEqual((status, headers["X-RateLimit-Remaining"]), (200, "0"))
        status, body, headers = self.call("GET", "/prospects")
        self.assertEqual((status, body["errors"][0]["id"]), (429, "rateLimitExceeded"))
        self.assertIn("permitted rate limit of 2", body["errors"][0]["detail"])
        self.assertGreaterEqual(int(headers["Retry-After"]), 1)
        self.mock.configure(rate_limit=100, faults=[{"status": 503, "path": "/api/v2/accounts"}])
        self.assertEqual(self.call("GET", "/prospects")[0], 200)
        self.assertEqual(self.call("GET", "/accounts")[0], 503)
        # The contract: emails must be an array.
        status, body, _ = self.create("prospects", {"emails": "x@example.com"})
        self.assertEqual(status, 422)
        self.assertEqual(len(self.mock.contract_violations()), 1)
        journal = self.mock.requests()
        self.assertEqual(journal[0]["body"]["refresh_token"], "***")
        self.assertNotIn("authorization", journal[1]["headers"])
        with self.assertRaises(urllib.error.HTTPError):
            self.mock.configure(bogus=1)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Self-test for test/connectors/oauth/mock.py.

Run: python3 test/connectors/oauth/mock_selftest.py"""

import os
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockOAuth  # noqa: E402

C = {"client_id": MockOAuth.CLIENT_ID, "client_secret": MockOAuth.CLIENT_SECRET}


class MockOAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockOAuth()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def api(self, token, body=None):
        req = urllib.request.Request(self.mock.url + "/v1/import", data=b'[{"id": 1}]', method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": "Bearer " + token} if token else {})})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def test_refresh_grant_rotation_and_invalid_grant(self):
        self.mock.configure(refresh_tokens=["rt-1"], rotate=True, expires_in=60)
        status, body = self.mock.token(grant_type="refresh_token", refresh_token="rt-1", **C)
        self.assertEqual(status, 200)
        self.assertEqual(body["expires_in"], 60)
        self.assertEqual(body["token_type"], "bearer")
        self.assertNotEqual(body["refresh_token"], "rt-1")
        self.assertEqual(self.api(body["access_token"]), 200)
        self.assertEqual(self.api("at-unknown"), 401)
        self.assertEqual(self.api(None), 401)
        # The rotated-away token is dead; the new one works.
        status, dead = self.mock.token(grant_type="refresh_token", refresh_token="rt-1", **C)
        self.assertEqual((status, dead["error"]), (400, "invalid_grant"))
        status, _ = self.mock.token(grant_type="refresh_token", refresh_token=body["refresh_token"], **C)
        self.assertEqual(status, 200)
        self.assertEqual(self.mock.state()["grants"], {"refresh_token": 2})
        self.mock.revoke_refresh_tokens()
        self.assertEqual(self.mock.state()["refresh_tokens"], [])

    def test_client_credentials_bad_client_and_shapes(self):
        self.assertEqual(self.mock.token(grant_type="client_credentials", client_id="x", client_secret="y")[0], 401)
        self.assertEqual(self.mock.token(grant_type="password", **C)[0], 400)
        self.mock.configure(camel_case=True, omit_expires_in=True, instance_url="https://acme.example")
        status, body = self.mock.token(grant_type="client_credentials", **C)
        self.assertEqual(status, 200)
        self.assertIn("accessToken", body)
        self.assertNotIn("expiresIn", body)
        self.assertEqual(body["instanceUrl"], "https://acme.example")
        self.assertEqual(self.mock.grants(), 1)

    def test_expiry_revocation_and_faults(self):
        self.mock.configure(expires_in=1)
        _, body = self.mock.token(grant_type="client_credentials", **C)
        self.assertEqual(self.api(body["access_token"]), 200)
        deadline = time.monotonic() + 10
        while self.api(body["access_token"]) == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.api(body["access_token"]), 401)
        self.mock.configure(expires_in=600)
        _, body = self.mock.token(grant_type="client_credentials", **C)
        self.mock.revoke_access_tokens()
        self.assertEqual(self.api(body["access_token"]), 401)
        self.mock.configure(token_faults=[{"status": 503}, {"delay": 0.2}])
        self.assertEqual(self.mock.token(grant_type="client_credentials", **C)[0], 503)
        self.assertEqual(self.mock.token(grant_type="client_credentials", **C)[0], 200)
        self.assertEqual(self.mock.state()["token_requests"], 4)
        journal = self.mock.requests()
        self.assertEqual([r["status"] for r in journal if r["path"] == "/oauth/token"][-2:], [503, 200])
        self.assertEqual(self.mock.configure(bogus=1)[0], 400)


if __name__ == "__main__":
    unittest.main(verbosity=2)

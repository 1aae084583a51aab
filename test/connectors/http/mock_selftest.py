#!/usr/bin/env python3
"""Self-test for test/connectors/http/mock.py.

Run: python3 test/connectors/http/mock_selftest.py"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockHttp  # noqa: E402


class MockHttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockHttp()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def test_records_batches_refusals_and_faults(self):
        self.assertEqual(self.mock.call("PUT", "/v1/users/1", {"email": "a@x.com"}), (200, {"ok": True}))
        self.assertEqual(self.mock.call("PATCH", "/v1/users/1", {"name": "A"})[0], 200)
        self.assertEqual(self.mock.records()["/v1/users/1"], {"email": "a@x.com", "name": "A"})
        self.assertEqual(self.mock.call("DELETE", "/v1/users/1")[0], 204)
        self.assertEqual(self.mock.call("DELETE", "/v1/users/1")[0], 404)
        self.mock.configure(reject_field="email", reject_pattern="bad")
        status, body = self.mock.call("POST", "/v1/import", {"records": [{"id": 1, "email": "ok@x.com"},
                                                                          {"id": 2, "email": "bad@x.com"}]})
        self.assertEqual(status, 200)
        self.assertIsNone(body["errors"][0])
        self.assertIn("refused", body["errors"][1])
        self.assertEqual(list(self.mock.records()), ["/v1/import#1"])
        self.assertEqual(self.mock.call("PUT", "/v1/users/2", {"email": "bad@x.com"})[0], 422)
        self.mock.configure(faults=[{"status": 503}])
        self.assertEqual(self.mock.call("PUT", "/v1/users/3", {"email": "c@x.com"})[0], 503)
        self.assertNotIn("/v1/users/3", self.mock.records())
        self.assertEqual(len(self.mock.requests()), 7)


if __name__ == "__main__":
    unittest.main(verbosity=2)

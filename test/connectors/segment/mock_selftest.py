#!/usr/bin/env python3
"""Self-test for test/connectors/segment/mock.py: Basic auth with the write key,
identify and track applied, 200 for invalid calls (journaled, dropped), the
32 KB per call and 500 KB per batch refusals, messageId deduplication,
faults (with and without the batch taken) and the journal.

Run: python3 test/connectors/segment/mock_selftest.py"""

import base64
import json
import os
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockSegment  # noqa: E402

AUTH = "Basic " + base64.b64encode(b"test-write-key:").decode()


class MockSegmentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockSegment()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def call(self, body, auth=AUTH, raw=None):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        data = raw if raw is not None else json.dumps(body).encode()
        req = urllib.request.Request(self.mock.url + "/v1/batch", data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def test_auth(self):
        self.assertEqual(self.call({"batch": []}, auth=None), 401)
        wrong = "Basic " + base64.b64encode(b"other:").decode()
        self.assertEqual(self.call({"batch": []}, auth=wrong), 401)

    def test_identify_and_track(self):
        self.assertEqual(self.call({"batch": [
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m1"},
            {"type": "track", "userId": "u1", "event": "Upgraded", "properties": {"p": 1}, "messageId": "m2"}]}),
            200)
        state = self.mock.state()
        self.assertEqual(state["users"], {"u1": {"plan": "pro"}})
        self.assertEqual(state["events"][0]["event"], "Upgraded")
        self.assertEqual(self.mock.contract_violations(), [])

    def test_invalid_calls_get_200_but_are_dropped(self):
        self.assertEqual(self.call({"batch": [{"type": "identify", "traits": {}},
                                              {"type": "track", "userId": "u"},
                                              {"type": "identify", "userId": "u", "messageId": "x" * 101}]}), 200)
        self.assertEqual(self.mock.stats()["dropped"], 3)
        self.assertEqual(len(self.mock.contract_violations()[0]["errors"]), 3)
        self.assertEqual(self.mock.state()["users"], {})

    def test_size_limits(self):
        big = {"type": "identify", "userId": "u", "traits": {"bio": "x" * (32 * 1024)}}
        self.assertEqual(self.call({"batch": [big, {"type": "identify", "userId": "v"}]}), 400)
        self.assertEqual(self.mock.state()["users"], {})
        calls = [{"type": "identify", "userId": f"u{i}", "traits": {"f": "y" * 20000}} for i in range(30)]
        self.assertEqual(self.call({"batch": calls}), 400)
        self.assertEqual(self.call({"batch": calls[:20]}), 200)
        self.assertEqual(len(self.mock.state()["users"]), 20)
        self.assertEqual(self.mock.stats()["refused"], 2)
        self.assertEqual(self.call(None, raw=b"{not json"), 400)

    def test_message_id_dedup(self):
        call = {"type": "identify", "userId": "u", "traits": {"n": 1}, "messageId": "m"}
        self.call({"batch": [call]})
        self.call({"batch": [dict(call, traits={"n": 2})]})
        self.assertEqual(self.mock.stats()["duplicates"], 1)
        self.assertEqual(self.mock.state()["users"]["u"], {"n": 1})

    def test_faults(self):
        self.mock.configure(faults=[{"status": 503}, {"status": 500, "apply": True}])
        call = {"type": "identify", "userId": "u", "messageId": "m"}
        self.assertEqual(self.call({"batch": [call]}), 503)
        self.assertEqual(self.mock.state()["users"], {})
        self.assertEqual(self.call({"batch": [call]}), 500)
        self.assertEqual(self.mock.state()["users"], {"u": {}})
        self.assertEqual(self.call({"batch": [call]}), 200)
        self.assertEqual(self.mock.stats()["duplicates"], 1)

    def test_journal(self):
        self.call({"batch": []})
        reqs = self.mock.requests()
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["headers"]["authorization"], AUTH)
        self.mock.clear_requests()
        self.assertEqual(self.mock.requests(), [])


if __name__ == "__main__":
    unittest.main()

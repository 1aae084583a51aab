#!/usr/bin/env python3
"""Self-test for test/connectors/meta/mock.py: the access token (refused, expired),
adds and DELETE removals of members, invalid entries counted and not applied, the
10,000-row limit, unknown and locked audiences, the API version, sessions and their
checks, throttling by code with X-Business-Use-Case-Usage, faults, the spec check
(test/lib/metaspec.py) and the journal.

Run: python3 test/connectors/meta/mock_selftest.py"""

import hashlib
import json
import os
import sys
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockMeta  # noqa: E402

AUD = 2384


def h(text):
    return hashlib.sha256(text.encode()).hexdigest()


class MockMetaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockMeta()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()
        self.mock.configure(audiences=[AUD])

    def call(self, payload, method="POST", session=None, token="test-token", path=None, raw=None):
        form = {"payload": json.dumps(payload)}
        if session is not None:
            form["session"] = json.dumps(session)
        data = raw if raw is not None else urllib.parse.urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if token:
            headers["Authorization"] = "Bearer " + token
        req = urllib.request.Request(self.mock.url + (path or f"/v25.0/{AUD}/users"), data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read().decode()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null"), dict(e.headers)

    def test_token_refused_and_expired(self):
        status, body, _ = self.call({"schema": ["EMAIL"], "data": [[h("a@x.com")]]}, token="wrong")
        self.assertEqual((status, body["error"]["code"], body["error"]["type"]), (400, 190, "OAuthException"))
        self.assertIn("fbtrace_id", body["error"])
        self.mock.configure(expire_token=True)
        status, body, _ = self.call({"schema": ["EMAIL"], "data": [[h("a@x.com")]]})
        self.assertEqual((body["error"]["code"], body["error"]["error_subcode"]), (190, 463))
        self.assertEqual(self.mock.members(AUD), [])

    def test_add_remove_and_invalid_entries(self):
        status, body, headers = self.call({"schema": ["EMAIL", "EXTERN_ID"],
                                           "data": [[h("a@x.com"), "c1"], [h("b@x.com"), "c2"],
                                                    ["raw@x.com", "c3"]]})
        self.assertEqual(status, 200)
        self.assertEqual((body["num_received"], body["num_invalid_entries"]), (3, 1))
        self.assertIn("custom_audience", headers["X-Business-Use-Case-Usage"])
        self.assertEqual(self.mock.members(AUD), sorted(
            [{"EMAIL": h("a@x.com"), "EXTERN_ID": "c1"}, {"EMAIL": h("b@x.com"), "EXTERN_ID": "c2"}],
            key=lambda d: json.dumps(d, sort_keys=True)))
        status, body, _ = self.call({"schema": ["EMAIL", "EXTERN_ID"], "data": [[h("a@x.com"), "c1"]]},
                                    method="DELETE")
        self.assertEqual((status, body["num_received"]), (200, 1))
        self.assertEqual(self.mock.members(AUD), [{"EMAIL": h("b@x.com"), "EXTERN_ID": "c2"}])
        # The raw email broke the contract as well.
        self.assertTrue(any("SHA-256" in e for v in self.mock.contract_violations() for e in v["errors"]))

    def test_limits_audiences_and_version(self):
        rows = [[h(str(i))] for i in range(10001)]
        status, body, _ = self.call({"schema": ["EMAIL"], "data": rows})
        self.assertEqual((status, body["error"]["code"]), (400, 100))
        self.assertEqual(self.mock.members(AUD), [])
        status, body, _ = self.call({"schema": ["EMAIL"], "data": [[h("a")]]}, path="/v25.0/999/users")
        self.assertEqual((body["error"]["code"], body["error"]["error_subcode"]), (100, 33))
        status, body, _ = self.call({"schema": ["EMAIL"], "data": [[h("a")]]}, path=f"/v19.0/{AUD}/users")
        self.assertEqual(body["error"]["code"], 2635)
        self.mock.configure(locked=[AUD])
        status, body, _ = self.call({"schema": ["EMAIL"], "data": [[h("a")]]})
        self.assertEqual(body["error"]["error_subcode"], 1713230)

    def test_sessions_are_checked(self):
        for seq, last in ((1, False), (2, True)):
            status, body, _ = self.call({"schema": ["EMAIL"], "data": [[h(str(seq))]]}, session={
                "session_id": 77, "batch_seq": seq, "last_batch_flag": last, "estimated_num_total": 2})
            self.assertEqual((status, body["session_id"]), (200, "77"))
        self.assertEqual(self.mock.contract_violations(), [])
        self.assertEqual([c["batch_seq"] for c in self.mock.sessions()["77"]["calls"]], [1, 2])
        # A batch after the last one, and the session reused for removals.
        self.call({"schema": ["EMAIL"], "data": [[h("3")]]}, method="DELETE",
                  session={"session_id": 77, "batch_seq": 3, "last_batch_flag": True, "estimated_num_total": 2})
        errors = [e for v in self.mock.contract_violations() for e in v["errors"]]
        self.assertTrue(any("after the last batch" in e for e in errors), errors)
        self.assertTrue(any("both adds and removals" in e for e in errors), errors)
        # Bad session fields, checked against the spec's shape.
        self.mock.clear_requests()
        self.call({"schema": ["EMAIL"], "data": [[h("4")]]},
                  session={"session_id": "x", "batch_seq": 0, "last_batch_flag": "no"})
        errors = [e for v in self.mock.contract_violations() for e in v["errors"]]
        self.assertEqual(len(errors), 3, errors)

    def test_throttling_by_code_and_rate(self):
        self.mock.configure(throttle={"next": 2, "code": 17, "subcode": 2446079})
        for _ in range(2):
            status, body, _ = self.call({"schema": ["EMAIL"], "data": [[h("a")]]})
            self.assertEqual((status, body["error"]["code"], body["error"]["error_subcode"]), (400, 17, 2446079))
        self.assertEqual(self.call({"schema": ["EMAIL"], "data": [[h("a")]]})[0], 200)
        self.mock.configure(rate_limit={"limit": 1, "window_s": 60})
        self.assertEqual(self.call({"schema": ["EMAIL"], "data": [[h("b")]]})[0], 200)
        status, body, headers = self.call({"schema": ["EMAIL"], "data": [[h("c")]]})
        self.assertEqual(body["error"]["code"], 80003)
        usage = json.loads(headers["X-Business-Use-Case-Usage"])
        self.assertEqual(usage["1234567890"][0]["call_count"], 100)
        self.assertEqual(self.mock.stats()["throttled"], 3)
        self.assertEqual(self.mock.members(AUD), sorted([{"EMAIL": h("a")}, {"EMAIL": h("b")}],
                                                        key=lambda d: json.dumps(d, sort_keys=True)))

    def test_faults_and_journal(self):
        self.mock.configure(faults=[{"status": 500}])
        status, body, _ = self.call({"schema": ["EMAIL"], "data": [[h("a")]]})
        self.assertEqual((status, body["error"]["code"], body["error"]["is_transient"]), (500, 1, True))
        self.assertEqual(self.mock.members(AUD), [])
        journal = self.mock.requests()
        self.assertEqual(journal[0]["fault"], 500)
        self.assertEqual(journal[0]["payload"], {"schema": ["EMAIL"], "data": [[h("a")]]})
        # A fault can let calls through first.
        self.mock.configure(faults=[{"after": 1, "status": 503}])
        self.assertEqual(self.call({"schema": ["EMAIL"], "data": [[h("b")]]})[0], 200)
        self.assertEqual(self.call({"schema": ["EMAIL"], "data": [[h("c")]]})[0], 503)
        self.mock.clear_requests()
        self.assertEqual(self.mock.requests(), [])

    def test_unknown_schema_key_is_a_contract_error(self):
        self.call({"schema": ["EMAIL_ADDRESS"], "data": [[h("a")]]})
        errors = [e for v in self.mock.contract_violations() for e in v["errors"]]
        self.assertTrue(any("unknown key" in e for e in errors), errors)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Self-test for test/connectors/hubspot/mock.py.

Run: python3 test/connectors/hubspot/mock_selftest.py
Starts the mock as a subprocess (port chosen by the OS, read from --port-file),
exercises the HubSpot batch contract, the limits, the faults and the control API,
then stops it with SIGTERM. Waits are condition polls with a deadline, never fixed sleeps.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "mock.py")
TIMEOUT = 10.0
TOKEN = "test-token"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
NOT_FOUND_MESSAGE = ("Could not get some CONTACT objects, they may be deleted or not exist. "
                     "Check that ids are valid.")
RATE_HEADERS = ("X-HubSpot-RateLimit-Interval-Milliseconds", "X-HubSpot-RateLimit-Max",
                "X-HubSpot-RateLimit-Remaining", "X-HubSpot-RateLimit-Daily",
                "X-HubSpot-RateLimit-Daily-Remaining")
CONNECTION_LOST = (ConnectionError, http.client.HTTPException)


def wait_for(predicate, what, timeout=TIMEOUT, interval=0.01):
    """Poll `predicate` until it returns a truthy value or `timeout` expires."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class MockProcess:
    """The mock running in a subprocess, with its own temp directory."""

    def __init__(self, *extra_args):
        self.tmp = tempfile.TemporaryDirectory(prefix="mock_hubspot_test_")
        self.port_file = os.path.join(self.tmp.name, "port")
        self.stderr_path = os.path.join(self.tmp.name, "stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, MOCK, "--port-file", self.port_file, *extra_args],
            stdout=subprocess.DEVNULL, stderr=self._stderr)
        try:
            self.port = int(wait_for(self._read_port, "port file"))
        except BaseException:
            self.stop()
            raise

    def _read_port(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"mock exited early with {self.proc.returncode}: {self.stderr()}")
        try:
            with open(self.port_file, encoding="ascii") as fh:
                return fh.read().strip()
        except FileNotFoundError:
            return None

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def stop(self):
        """SIGTERM the mock; return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode

    def cleanup(self):
        self.stop()
        self.tmp.cleanup()


class Client:
    """A keep-alive JSON client over one http.client connection."""

    def __init__(self, port, timeout=TIMEOUT):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, raw=None):
        headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            payload = resp.read()
        except BaseException:
            self.conn.close()  # so the next request opens a fresh connection
            raise
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(payload) if ctype.startswith("application/json") else payload.decode()
        return resp.status, resp, parsed

    def close(self):
        self.conn.close()


def up(email, trace=None, **properties):
    """One upsert input keyed by email."""
    inp = {"idProperty": "email", "id": email, "properties": properties}
    if trace is not None:
        inp["objectWriteTraceId"] = trace
    return inp


class HubSpotTestCase(unittest.TestCase):
    """Shared helpers; one mock process per test class."""

    mock_args = ()

    @classmethod
    def setUpClass(cls):
        cls.mock = MockProcess(*cls.mock_args)

    @classmethod
    def tearDownClass(cls):
        rc = cls.mock.stop()
        stderr = cls.mock.stderr()
        port_file_left = os.path.exists(cls.mock.port_file)
        cls.mock.cleanup()
        assert rc == 0, f"mock exit status {rc}"
        assert stderr == "", f"mock wrote to stderr: {stderr!r}"
        assert not port_file_left, "port file not removed on exit"

    def setUp(self):
        self.client = Client(self.mock.port)
        status, _, _ = self.client.request("POST", "/_mock/reset")
        self.assertEqual(status, 200)

    def tearDown(self):
        self.client.close()

    def api(self, action, body, obj="contacts", token=TOKEN, client=None, method="POST"):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return (client or self.client).request(
            method, f"/crm/v3/objects/{obj}/batch/{action}", body=body, headers=headers)

    def upsert(self, *inputs, obj="contacts", **kwargs):
        return self.api("upsert", {"inputs": list(inputs)}, obj, **kwargs)

    def records(self, obj="contacts"):
        status, _, out = self.client.request("GET", f"/_mock/records?object={obj}")
        self.assertEqual(status, 200, out)
        return out

    def by_email(self):
        return {r["properties"].get("email"): r for r in self.records()["records"]}

    def journal(self):
        return self.client.request("GET", "/_mock/requests")[2]["requests"]

    def stats(self):
        return self.client.request("GET", "/_mock/stats")[2]

    def configure(self, **config):
        status, _, out = self.client.request("POST", "/_mock/config", body=config)
        self.assertEqual(status, 200, out)
        return out

    def assert_error(self, out, category, message=None):
        self.assertEqual(out["status"], "error")
        self.assertEqual(out["category"], category)
        self.assertIsInstance(out["correlationId"], str)
        if message is not None:
            self.assertEqual(out["message"], message)


class UpsertTest(HubSpotTestCase):
    def test_port_file_and_health(self):
        with open(self.mock.port_file, encoding="ascii") as fh:
            self.assertEqual(int(fh.read()), self.mock.port)
        self.assertEqual(sorted(os.listdir(self.mock.tmp.name)), ["port", "stderr"])
        status, resp, out = self.client.request("GET", "/_mock/health")
        self.assertEqual((status, out), (200, {"ok": True}))
        self.assertIsNotNone(resp.getheader("Content-Length"))

    def test_create_then_update(self):
        status, resp, out = self.upsert(up("ada@example.com", "row-1", firstname="Ada"))
        self.assertEqual(status, 200, out)
        self.assertEqual(resp.getheader("Content-Type"), "application/json;charset=utf-8")
        self.assertEqual((out["status"], out["numErrors"], out["errors"]), ("COMPLETE", 0, []))
        for key in ("requestedAt", "startedAt", "completedAt"):
            self.assertRegex(out[key], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        [first] = out["results"]
        self.assertTrue(first["new"])
        self.assertFalse(first["archived"])
        self.assertGreaterEqual(int(first["id"]), 512)
        self.assertEqual(first["properties"]["email"], "ada@example.com")
        self.assertEqual(first["properties"]["firstname"], "Ada")
        self.assertEqual(first["properties"]["hs_object_id"], first["id"])
        self.assertEqual(first["properties"]["createdate"], first["createdAt"])
        # Limit headers on every admitted response, no Retry-After.
        self.assertEqual([resp.getheader(h) for h in RATE_HEADERS],
                         ["10000", "100", "99", "250000", "249999"])
        self.assertIsNone(resp.getheader("Retry-After"))

        status, _, out = self.upsert(up("ada@example.com", "row-1", lastname="Lovelace",
                                        firstname="Ada B"))
        self.assertEqual(status, 200, out)
        [second] = out["results"]
        self.assertFalse(second["new"])
        self.assertEqual(second["id"], first["id"])
        self.assertEqual(second["createdAt"], first["createdAt"])
        self.assertGreaterEqual(second["updatedAt"], first["updatedAt"])

        records = self.records()
        self.assertEqual(records["created_total"], {"contacts": 1, "companies": 0})
        [rec] = records["records"]
        self.assertEqual(rec["properties"], {"email": "ada@example.com", "firstname": "Ada B",
                                             "lastname": "Lovelace"})
        self.assertEqual((rec["id"], rec["writes"], rec["archived"]), (first["id"], 2, False))

        # Results come in input order; new/existing mixed in one batch.
        status, _, out = self.upsert(up("bob@example.com"), up("ada@example.com"),
                                     up("cy@example.com"))
        self.assertEqual(status, 200, out)
        self.assertEqual([(r["properties"]["email"], r["new"]) for r in out["results"]],
                         [("bob@example.com", True), ("ada@example.com", False),
                          ("cy@example.com", True)])
        self.assertEqual(self.records()["created_total"]["contacts"], 3)

    def test_email_case_insensitive(self):
        status, _, out = self.upsert(up("Ada@Example.COM", firstname="Ada"))
        self.assertEqual(status, 200, out)
        first = out["results"][0]
        self.assertEqual(first["properties"]["email"], "ada@example.com")  # lower-cased
        status, _, out = self.upsert(up("ada@EXAMPLE.com", lastname="L"))
        self.assertEqual(status, 200, out)
        self.assertEqual((out["results"][0]["id"], out["results"][0]["new"]), (first["id"], False))
        records = self.records()
        self.assertEqual(records["created_total"]["contacts"], 1)
        self.assertEqual(records["records"][0]["writes"], 2)

    def test_duplicate_ids_400_nothing_applied(self):
        self.upsert(up("keep@x.com", firstname="Old"))
        status, resp, out = self.upsert(up("a@x.com"), up("keep@x.com", firstname="New"),
                                        up("A@X.com"))
        self.assertEqual(status, 400, out)
        self.assert_error(out, "VALIDATION_ERROR",
                          "Duplicate IDs found in batch input: [a@x.com]. IDs must be unique")
        self.assertEqual(out["context"], {"ids": ["a@x.com"]})
        self.assertIsNotNone(resp.getheader("X-HubSpot-RateLimit-Remaining"))
        by_email = self.by_email()
        self.assertEqual(sorted(by_email), ["keep@x.com"])
        self.assertEqual((by_email["keep@x.com"]["properties"]["firstname"],
                          by_email["keep@x.com"]["writes"]), ("Old", 1))
        # update refuses duplicate record ids the same way
        rid = by_email["keep@x.com"]["id"]
        status, _, out = self.api("update", {"inputs": [{"id": rid, "properties": {"a": "1"}},
                                                        {"id": rid, "properties": {"a": "2"}}]})
        self.assertEqual(status, 400, out)
        self.assertEqual(out["context"], {"ids": [rid]})

    def test_batch_size_and_shape_400s(self):
        status, _, out = self.upsert(*[up(f"u{i}@x.com") for i in range(101)])
        self.assertEqual(status, 400, out)
        self.assert_error(out, "VALIDATION_ERROR")
        self.assertEqual(self.records()["records"], [])
        status, _, out = self.upsert(*[up(f"u{i}@x.com") for i in range(100)])
        self.assertEqual((status, len(out["results"])), (200, 100))
        self.assertEqual(self.records()["created_total"]["contacts"], 100)
        status, _, out = self.upsert()
        self.assertEqual(status, 400, out)
        status, _, out = self.upsert({"idProperty": "firstname", "id": "Ada", "properties": {}})
        self.assertEqual(status, 400, out)
        self.assertEqual(out["message"],
                         "Unable to perform update/upsert by non-unique 0-1 property firstname")
        status, _, out = self.upsert({"idProperty": "email", "id": "p@x.com"})
        self.assertEqual((status, out["category"]), (400, "VALIDATION_ERROR"))
        status, _, out = self.upsert(up("obj@x.com", nested={"no": 1}))
        self.assertEqual(status, 400, out)
        status, _, out = self.client.request("POST", UPSERT, raw=b"{not json",
                                             headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual((status, out["category"]), (400, "VALIDATION_ERROR"))
        self.assertEqual(self.journal()[-1]["raw"], "{not json")
        self.assertEqual(self.records()["created_total"]["contacts"], 100)

    def test_property_values(self):
        status, _, out = self.upsert(up("v@x.com", n=5, flag=True, gone=None, empty=""))
        self.assertEqual(status, 200, out)
        self.assertEqual(self.by_email()["v@x.com"]["properties"],
                         {"email": "v@x.com", "n": "5", "flag": "true"})


class PartialFailureTest(HubSpotTestCase):
    def test_invalid_rule_207_with_trace_mapping(self):
        self.configure(invalid=[{"property": "email", "pattern": "^bad"}])
        status, _, out = self.upsert(up("good@x.com", "t-good", firstname="G"),
                                     up("bad@x.com", "t-bad"),
                                     up("bad2@x.com"))
        self.assertEqual(status, 207, out)
        self.assertEqual([r["properties"]["email"] for r in out["results"]], ["good@x.com"])
        self.assertEqual(out["numErrors"], 2)
        traced, untraced = out["errors"]
        self.assertEqual((traced["status"], traced["category"]), ("error", "VALIDATION_ERROR"))
        self.assertEqual(traced["context"], {"objectWriteTraceId": ["t-bad"]})
        prefix = "Property values were not valid: "
        self.assertTrue(traced["message"].startswith(prefix), traced["message"])
        [item] = json.loads(traced["message"][len(prefix):])
        self.assertEqual((item["isValid"], item["name"]), (False, "email"))
        self.assertEqual(untraced["context"], {"ids": ["bad2@x.com"]})
        self.assertEqual(sorted(self.by_email()), ["good@x.com"])

    def test_partial_requires_trace_id_rejects_whole_batch(self):
        self.upsert(up("keep@x.com", firstname="Old"))
        self.configure(invalid=[{"property": "email", "pattern": "^bad"}],
                       partial_requires_trace_id=True)
        status, _, out = self.upsert(up("good@x.com"), up("keep@x.com", firstname="New"),
                                     up("bad@x.com", "t1"))
        self.assertEqual(status, 400, out)
        self.assert_error(out, "VALIDATION_ERROR")
        self.assertTrue(out["message"].startswith("Property values were not valid: "))
        by_email = self.by_email()
        self.assertEqual(sorted(by_email), ["keep@x.com"])
        self.assertEqual((by_email["keep@x.com"]["properties"]["firstname"],
                          by_email["keep@x.com"]["writes"]), ("Old", 1))
        self.assertEqual(self.records()["created_total"]["contacts"], 1)
        # Every input traced: 207 as usual.
        status, _, out = self.upsert(up("good@x.com", "t0"), up("bad@x.com", "t1"))
        self.assertEqual((status, out["errors"][0]["context"]), (207, {"objectWriteTraceId": ["t1"]}))

    def test_update_unknown_id_207(self):
        _, _, out = self.upsert(up("ada@x.com", firstname="Ada", lastname="L"))
        rid = out["results"][0]["id"]
        status, _, out = self.api("update", {"inputs": [
            {"id": rid, "properties": {"firstname": "Ada2", "lastname": ""}},
            {"id": "99999", "properties": {"firstname": "Nobody"}}]})
        self.assertEqual(status, 207, out)
        self.assertEqual([r["id"] for r in out["results"]], [rid])
        self.assertNotIn("new", out["results"][0])
        self.assertEqual(out["numErrors"], 1)
        self.assertEqual(out["errors"], [{"status": "error", "category": "OBJECT_NOT_FOUND",
                                          "message": NOT_FOUND_MESSAGE,
                                          "context": {"ids": ["99999"]}}])
        rec = self.by_email()["ada@x.com"]
        self.assertEqual(rec["properties"], {"email": "ada@x.com", "firstname": "Ada2"})  # "" cleared
        self.assertEqual(rec["writes"], 2)
        # All inputs missing: still 207, empty results, one grouped error.
        status, _, out = self.api("update", {"inputs": [{"id": "99998", "properties": {}},
                                                        {"id": "99999", "properties": {}}]})
        self.assertEqual((status, out["results"], out["numErrors"]), (207, [], 1))
        self.assertEqual(out["errors"][0]["context"], {"ids": ["99998", "99999"]})
        # By idProperty, case-insensitively.
        status, _, out = self.api("update", {"inputs": [
            {"idProperty": "email", "id": "ADA@x.com", "properties": {"city": "London"}}]})
        self.assertEqual((status, out["results"][0]["id"]), (200, rid))

    def test_archive_204_then_upsert_creates_new(self):
        _, _, out = self.upsert(up("ada@x.com", firstname="Ada"))
        rid = out["results"][0]["id"]
        for _ in range(2):  # the second time the record is already archived
            status, resp, out = self.api("archive", {"inputs": [{"id": rid}, {"id": "424242"}]})
            self.assertEqual((status, out), (204, ""))
            self.assertEqual(resp.getheader("Content-Length"), "0")
            self.assertIsNone(resp.getheader("Content-Type"))
        [rec] = self.records()["records"]
        self.assertTrue(rec["archived"])
        self.assertIn("archivedAt", rec)
        status, _, out = self.api("update", {"inputs": [{"id": rid, "properties": {"a": "b"}}]})
        self.assertEqual((status, out["errors"][0]["category"]), (207, "OBJECT_NOT_FOUND"))
        status, _, out = self.upsert(up("ada@x.com", firstname="Again"))
        self.assertEqual(status, 200, out)
        self.assertTrue(out["results"][0]["new"])
        self.assertNotEqual(out["results"][0]["id"], rid)
        records = self.records()
        self.assertEqual(records["created_total"]["contacts"], 2)
        self.assertEqual([r["archived"] for r in records["records"]], [True, False])

    def test_create_201_and_conflict_207(self):
        _, _, out = self.upsert(up("ada@x.com"))
        existing = out["results"][0]["id"]
        status, _, out = self.api("create", {"inputs": [
            {"properties": {"email": "ADA@x.com"}, "objectWriteTraceId": "c1"},
            {"properties": {"email": "new@x.com"}, "objectWriteTraceId": "c2"}]})
        self.assertEqual(status, 207, out)
        self.assertEqual([r["properties"]["email"] for r in out["results"]], ["new@x.com"])
        self.assertNotIn("new", out["results"][0])
        self.assertEqual(out["errors"], [{
            "status": "error", "category": "CONFLICT",
            "message": f"Contact already exists. Existing ID: {existing}",
            "context": {"objectWriteTraceId": ["c1"], "existingId": [existing]}}])
        status, _, out = self.api("create", {"inputs": [{"properties": {"email": "c@x.com"}}]})
        self.assertEqual((status, out["numErrors"]), (201, 0))
        self.assertEqual(self.records()["created_total"]["contacts"], 3)

    def test_read(self):
        _, _, out = self.upsert(up("ada@x.com", firstname="Ada"))
        rid = out["results"][0]["id"]
        status, _, out = self.api("read", {"idProperty": "email",
                                           "properties": ["firstname", "lastname"],
                                           "inputs": [{"id": "ADA@x.com"}, {"id": "no@x.com"}]})
        self.assertEqual(status, 207, out)
        props = out["results"][0]["properties"]
        self.assertEqual((props["firstname"], props["lastname"], props["hs_object_id"]),
                         ("Ada", None, rid))
        self.assertEqual(out["errors"][0]["context"], {"ids": ["no@x.com"]})
        self.assertEqual(self.records()["records"][0]["writes"], 1)  # reads are not writes

    def test_companies_unique_properties(self):
        status, _, out = self.upsert({"idProperty": "domain", "id": "acme.com",
                                      "properties": {"name": "Acme"}}, obj="companies")
        self.assertEqual((status, out["results"][0]["new"]), (200, True), out)
        self.assertIn("hs_lastmodifieddate", out["results"][0]["properties"])
        ext = {"idProperty": "external_id", "id": "E-1", "properties": {"name": "Ext"}}
        status, _, out = self.upsert(ext, obj="companies")
        self.assertEqual(out["message"],
                         "Unable to perform update/upsert by non-unique 0-2 property external_id")
        self.configure(unique_properties={"companies": ["domain", "external_id"]})
        _, _, first = self.upsert(ext, obj="0-2")
        _, _, second = self.upsert(ext, obj="companies")
        self.assertEqual([first["results"][0]["new"], second["results"][0]["new"]], [True, False])
        self.assertEqual(first["results"][0]["id"], second["results"][0]["id"])
        self.assertEqual(self.records("companies")["created_total"]["companies"], 2)
        status, _, _ = self.client.request("POST", "/_mock/config",
                                           body={"unique_properties": {"contacts": ["phone"]}})
        self.assertEqual(status, 400)

    def test_shuffle_results(self):
        self.configure(shuffle_results=True, seed=3)
        emails = [f"s{i}@x.com" for i in range(20)]
        status, _, out = self.upsert(*[up(e) for e in emails])
        self.assertEqual(status, 200, out)
        got = [r["properties"]["email"] for r in out["results"]]
        self.assertEqual(sorted(got), sorted(emails))
        self.assertNotEqual(got, emails)


class AuthAndLimitsTest(HubSpotTestCase):
    def test_auth_401(self):
        for token in (None, "wrong"):
            status, resp, out = self.upsert(up("a@x.com"), token=token)
            self.assertEqual(status, 401, out)
            self.assert_error(out, "INVALID_AUTHENTICATION")
            self.assertTrue(out["message"].startswith("Authentication credentials not found"))
            self.assertIsNone(resp.getheader("X-HubSpot-RateLimit-Remaining"))
        self.assertEqual(self.records()["records"], [])
        self.assertEqual(self.stats()["daily_used"], 0)  # 401s use no budget
        self.configure(token="rotated")
        self.assertEqual(self.upsert(up("a@x.com"))[0], 401)
        self.assertEqual(self.upsert(up("a@x.com"), token="rotated")[0], 200)
        self.assertEqual([e["status"] for e in self.journal()], [401, 401, 401, 200])

    def test_ten_secondly_rate_limit(self):
        self.configure(rate_limit={"max": 5, "interval_ms": 1000})
        started = time.monotonic()
        remaining = []
        for i in range(5):
            status, resp, out = self.upsert(up(f"r{i}@x.com"))
            self.assertEqual(status, 200, out)
            remaining.append(resp.getheader("X-HubSpot-RateLimit-Remaining"))
        self.assertEqual(remaining, ["4", "3", "2", "1", "0"])
        status, resp, out = self.upsert(up("r5@x.com"))
        self.assertLess(time.monotonic() - started, 1.0, "too slow to test a 1 s window")
        self.assertEqual(status, 429, out)
        self.assertEqual({k: v for k, v in out.items() if k != "correlationId"}, {
            "status": "error", "message": "You have reached your ten secondly limit.",
            "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING",
            "category": "RATE_LIMITS"})
        self.assertIsInstance(out["correlationId"], str)
        self.assertEqual([resp.getheader(h) for h in RATE_HEADERS[:3]], ["1000", "5", "0"])
        self.assertIsNone(resp.getheader("Retry-After"))
        self.assertNotIn("r5@x.com", self.by_email())

        def admitted():
            return self.upsert(up("r5@x.com"))[0] == 200

        wait_for(admitted, "the rolling window to free a slot", timeout=5.0, interval=0.05)
        self.assertIn("r5@x.com", self.by_email())
        stats = self.stats()
        self.assertGreaterEqual(stats["rate_limited"], 1)
        self.assertEqual(stats["rate_limited"], stats["by_status"]["429"])

    def test_daily_limit_and_disabled_limits(self):
        self.configure(daily_limit=10, daily_used=9)
        status, resp, _ = self.upsert(up("d@x.com"))
        self.assertEqual((status, resp.getheader("X-HubSpot-RateLimit-Daily-Remaining")), (200, "0"))
        status, resp, out = self.upsert(up("d@x.com"))
        self.assertEqual(status, 429, out)
        self.assertEqual((out["policyName"], out["message"]),
                         ("DAILY", "You have reached your daily limit."))
        self.assertEqual(resp.getheader("X-HubSpot-RateLimit-Daily"), "10")
        self.configure(daily_limit=None, rate_limit=None)
        status, resp, _ = self.upsert(up("d@x.com"))
        self.assertEqual(status, 200)
        self.assertEqual([resp.getheader(h) for h in RATE_HEADERS], [None] * 5)


class FaultTest(HubSpotTestCase):
    def test_fault_queue_in_order(self):
        self.configure(faults=[{"status": 502, "body": {"message": "bad gateway"},
                                "headers": {"X-Fault": "1"}}])
        out = self.configure(faults=[{"status": 503}])
        self.assertEqual([f["status"] for f in out["faults"]], [502, 503])
        status, resp, out = self.upsert(up("f@x.com"))
        self.assertEqual((status, out, resp.getheader("X-Fault")),
                         (502, {"message": "bad gateway"}, "1"))
        self.assertIsNone(resp.getheader("X-HubSpot-RateLimit-Remaining"))
        status, _, out = self.upsert(up("f@x.com"))
        self.assertEqual(status, 503)
        self.assert_error(out, "MOCK_FAULT")
        self.assertEqual(self.records()["records"], [])  # faults leave the store alone
        status, resp, _ = self.upsert(up("f@x.com"))
        self.assertEqual(status, 200)
        self.assertEqual(resp.getheader("X-HubSpot-RateLimit-Remaining"), "99")  # faults are free
        journal = self.journal()
        self.assertEqual([e["status"] for e in journal], [502, 503, 200])
        self.assertEqual([e.get("fault") for e in journal], ["queue", "queue", None])
        self.assertEqual(self.configure()["faults"], [])

    def test_reset_fault(self):
        self.configure(faults=[{"reset": True}])
        with self.assertRaises(CONNECTION_LOST):
            self.upsert(up("lost@x.com"))
        status, _, out = self.upsert(up("kept@x.com"))  # the client reconnects
        self.assertEqual(status, 200, out)
        self.assertEqual(sorted(self.by_email()), ["kept@x.com"])
        journal = self.journal()
        self.assertEqual([(e["status"], e.get("fault")) for e in journal],
                         [(None, "queue"), (200, None)])
        self.assertEqual(self.stats()["resets"], 1)

    def test_random_faults_are_seeded(self):
        def statuses():
            return [self.upsert(up("seed@x.com"))[0] for _ in range(16)]

        self.configure(seed=7, fail_rate=0.5)
        first = statuses()
        self.assertTrue(set(first) <= {200, 500, 502, 503, 504}, first)
        self.assertIn(200, first)
        self.assertTrue(set(first) - {200}, first)
        self.configure(seed=7)  # re-seeding replays the same draws
        self.assertEqual(statuses(), first)
        self.configure(fail_rate=0, reset_rate=1.0)
        with self.assertRaises(CONNECTION_LOST):
            self.upsert(up("seed@x.com"))
        status, _, _ = self.client.request("POST", "/_mock/config",
                                           body={"fail_rate": 0.7, "reset_rate": 0.5})
        self.assertEqual(status, 400)
        self.assertEqual(self.configure()["reset_rate"], 1.0)  # a refused config changes nothing

    def test_timeout_fault_applies_the_write_late(self):
        self.configure(faults=[{"timeout": True, "delay_ms": 1500}])
        impatient = Client(self.mock.port, timeout=0.3)
        self.addCleanup(impatient.close)
        with self.assertRaises(TimeoutError):
            self.upsert(up("late@x.com"), client=impatient)
        rec = wait_for(lambda: self.by_email().get("late@x.com"), "the late write")
        self.assertEqual(rec["writes"], 1)
        self.assertEqual(self.journal()[-1]["fault"], "queue")
        self.assertEqual(self.stats()["timeouts"], 1)

    def test_timeout_rate_and_delay(self):
        self.configure(timeout_rate=1.0, timeout_delay_ms=200)
        started = time.monotonic()
        self.assertEqual(self.upsert(up("slow@x.com"))[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.configure(timeout_rate=0, delay_ms=150)
        started = time.monotonic()
        self.assertEqual(self.upsert(up("slow@x.com"))[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.15)

    def test_stats(self):
        self.configure(rate_limit={"max": 1, "interval_ms": 60000})
        self.assertEqual(self.upsert(up("s@x.com"))[0], 200)
        self.assertEqual(self.upsert(up("s@x.com"), token="bad")[0], 401)
        self.configure(faults=[{"status": 500}])
        self.assertEqual(self.upsert(up("s@x.com"))[0], 500)
        self.assertEqual(self.upsert(up("s@x.com"))[0], 429)
        self.configure(faults=[{"reset": True}])
        with self.assertRaises(CONNECTION_LOST):
            self.upsert(up("s@x.com"))
        expected = {"requests": 5, "rate_limited": 1, "resets": 1, "timeouts": 0, "faults": 2,
                    "contract_violations": 0, "by_status": {"200": 1, "401": 1, "500": 1, "429": 1}, "daily_used": 1}
        self.assertEqual(self.stats(), expected)
        self.client.request("DELETE", "/_mock/requests")  # stats survive a journal clear
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.stats(), expected)
        self.client.request("POST", "/_mock/reset")
        self.assertEqual(self.stats()["requests"], 0)


class ControlAndHttpTest(HubSpotTestCase):
    def test_routing_errors(self):
        status, _, out = self.upsert(up("a@x.com"), obj="deals")
        self.assertEqual(status, 404, out)
        self.assert_error(out, "OBJECT_NOT_FOUND", "Unable to infer object type from: deals")
        status, resp, out = self.api("upsert", None, method="GET")
        self.assertEqual((status, resp.getheader("Allow")), (405, "POST"))
        status, _, _ = self.client.request("POST", "/crm/v3/nothing",
                                           headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(status, 404)
        self.assertEqual([e["status"] for e in self.journal()], [404, 405, 404])

    def test_seeded_records_and_control_errors(self):
        status, _, out = self.client.request("POST", "/_mock/records", body={
            "object": "contacts", "records": [{"properties": {"email": "Pre@x.com"}},
                                              {"properties": {"email": "gone@x.com"},
                                               "archived": True}]})
        self.assertEqual(status, 200, out)
        status, _, out = self.upsert(up("pre@x.com", firstname="P"))
        self.assertFalse(out["results"][0]["new"])
        records = self.records()
        self.assertEqual(records["created_total"]["contacts"], 0)
        self.assertEqual([r["writes"] for r in records["records"]], [1, 0])
        self.assertEqual(self.client.request("GET", "/_mock/records?object=deals")[0], 400)
        status, _, out = self.client.request("GET", "/_mock/records")
        self.assertEqual((status, len(out["records"])), (200, 2))
        self.assertEqual(self.client.request("POST", "/_mock/config", body={"fautls": []})[0], 400)
        self.assertEqual(self.client.request("POST", "/_mock/config",
                                             body={"invalid": [{"property": "x",
                                                                "pattern": "("}]})[0], 400)
        self.assertEqual(self.client.request("POST", "/_mock/config",
                                             body={"faults": [{"status": 500,
                                                               "reset": True}]})[0], 400)
        status, _, out = self.client.request("GET", "/_mock/nope")
        self.assertEqual((status, out["code"]), (404, "NOT_FOUND"))
        status, resp, _ = self.client.request("POST", "/_mock/stats")
        self.assertEqual((status, resp.getheader("Allow")), (405, "GET"))
        self.assertEqual(len(self.journal()), 1)  # control calls are not journaled
        status, _, _ = self.client.request("DELETE", "/_mock/records")
        self.assertEqual((status, self.records()["records"]), (200, []))
        _, _, out = self.upsert(up("first@x.com"))
        self.assertEqual(out["results"][0]["id"], "512")  # ids restart

    def test_journal_entries(self):
        self.upsert(up("j@x.com", "t1"))
        [entry] = self.journal()
        self.assertEqual((entry["seq"], entry["method"], entry["path"], entry["status"]),
                         (1, "POST", UPSERT, 200))
        self.assertEqual(entry["headers"]["authorization"], f"Bearer {TOKEN}")
        self.assertEqual(entry["body"]["inputs"][0]["objectWriteTraceId"], "t1")
        self.assertIsInstance(entry["time"], float)
        self.assertNotIn("raw", entry)
        self.assertNotIn("fault", entry)

    def test_keep_alive(self):
        self.client.request("GET", "/_mock/health")
        sock = self.client.conn.sock
        self.assertIsNotNone(sock)
        self.upsert(up("k@x.com"))
        self.api("update", {"inputs": [{"id": "1", "properties": {}}]})   # 207
        self.api("archive", {"inputs": [{"id": "512"}]})                  # 204
        self.upsert(up("a@x.com"), up("a@x.com"))                         # 400
        self.upsert(up("k@x.com"), token="wrong")                         # 401
        self.client.request("GET", "/_mock/health")
        self.assertIs(self.client.conn.sock, sock)

    def test_oversized_body_413(self):
        for extra in ("", "Expect: 100-continue\r\n"):
            with socket.create_connection(("127.0.0.1", self.mock.port), timeout=TIMEOUT) as s:
                s.sendall((f"POST {UPSERT} HTTP/1.1\r\nHost: x\r\n{extra}"
                           f"Authorization: Bearer {TOKEN}\r\n"
                           f"Content-Length: {16 * 1024 * 1024 + 1}\r\n\r\n").encode())
                response = b""
                while chunk := s.recv(65536):  # server closes the connection
                    response += chunk
            self.assertTrue(response.startswith(b"HTTP/1.1 413"), response[:100])
            self.assertIn(b"Connection: close", response)
            self.assertNotIn(b"100 Continue", response)
        self.assertEqual([e["status"] for e in self.journal()], [413, 413])


OPENAPI = os.environ.get("REVETL_HUBSPOT_OPENAPI", "/work/shared/vendor-specs/hubspot/contacts.v3.json")


class ContractTest(HubSpotTestCase):
    """--openapi: bodies that break HubSpot's published contract are refused and counted."""

    mock_args = ("--openapi", OPENAPI)

    def test_create_without_associations_breaks_the_contract(self):
        status, _, out = self.api("create", {"inputs": [{"properties": {"email": "c@x.com"}}]})
        self.assertEqual(status, 400, out)
        self.assertEqual(out["category"], "VALIDATION_ERROR")
        self.assertIn("'associations' is a required property", out["message"])
        self.assertEqual(self.records()["records"], [])  # nothing applied
        status, _, out = self.api("create", {"inputs": [{"properties": {"email": "c@x.com"},
                                                         "associations": []}]}, obj="companies")
        self.assertEqual(status, 201, out)
        stats = self.client.request("GET", "/_mock/stats")[2]
        self.assertEqual(stats["contract_violations"], 1)
        journal = self.client.request("GET", "/_mock/requests")[2]["requests"]
        self.assertIn("contract_errors", journal[0])
        self.assertNotIn("contract_errors", journal[1])

    def test_property_values_must_be_strings(self):
        status, _, out = self.upsert(up("n@x.com", score=92.5))
        self.assertEqual(status, 400, out)
        self.assertIn("is not of type 'string'", out["message"])
        self.assertEqual(self.upsert(up("n@x.com", score="92.50"))[0], 200)


class PropertiesTest(HubSpotTestCase):
    def props(self, obj="contacts", query="?archived=false", token=TOKEN, method="GET"):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.request(method, f"/crm/v3/properties/{obj}{query}", headers=headers)

    def test_standard_custom_and_read_only(self):
        status, _, out = self.props()
        self.assertEqual(status, 200, out)
        by_name = {p["name"]: p for p in out["results"]}
        for name in ("hs_object_id", "createdate", "lastmodifieddate"):
            self.assertTrue(by_name[name]["modificationMetadata"]["readOnlyValue"], name)
        self.assertFalse(by_name["email"]["modificationMetadata"]["readOnlyValue"])
        stage = by_name["lifecyclestage"]
        self.assertEqual((stage["type"], stage["fieldType"]), ("enumeration", "radio"))
        self.assertIn({"label": "Lead", "value": "lead", "displayOrder": 1, "hidden": False},
                      stage["options"])
        self.assertEqual(by_name["interests"]["fieldType"], "checkbox")
        self.assertEqual(by_name["signup_date"]["type"], "date")
        self.assertEqual(by_name["last_seen"]["type"], "datetime")
        self.assertFalse(by_name["score"]["hubspotDefined"])
        status, _, out = self.props("0-2")
        self.assertEqual(status, 200, out)
        self.assertIn("hs_lastmodifieddate", {p["name"] for p in out["results"]})

    def test_configured_properties_replace_custom_ones(self):
        self.configure(properties={"contacts": [{"name": "tier", "type": "enumeration",
                                                 "fieldType": "select", "options": ["a", "b"]},
                                                {"name": "ro", "readOnly": True}]})
        names = [p["name"] for p in self.props()[2]["results"]]
        self.assertIn("tier", names)
        self.assertIn("ro", names)
        self.assertNotIn("score", names)
        self.assertIn("email", names)  # standard ones stay
        status, _, out = self.client.request("POST", "/_mock/config",
                                             body={"properties": {"contacts": [{"type": "x"}]}})
        self.assertEqual(status, 400, out)
        self.client.request("POST", "/_mock/reset")
        self.assertIn("score", [p["name"] for p in self.props()[2]["results"]])

    def test_errors_auth_and_contract(self):
        status, _, out = self.props(token=None)
        self.assertEqual(status, 401, out)
        self.assert_error(out, "INVALID_AUTHENTICATION")
        status, _, out = self.props("deals")
        self.assertEqual(status, 404, out)
        status, resp, out = self.props(method="POST")
        self.assertEqual(status, 405, out)
        status, _, out = self.props(query="?archived=false&limit=5")
        self.assertEqual(status, 400, out)
        self.assertIn("unknown query parameter 'limit'", out["message"])
        self.assertEqual(self.stats()["contract_violations"], 1)
        self.assertIn("contract_errors", self.journal()[-1])
        self.assertEqual(self.journal()[0]["method"], "GET")


class ProcessTest(unittest.TestCase):
    def test_token_flag_journal_file_and_sigterm_during_timeout(self):
        tmp = tempfile.TemporaryDirectory(prefix="mock_hubspot_journal_")
        self.addCleanup(tmp.cleanup)
        journal_path = os.path.join(tmp.name, "journal.jsonl")
        mock = MockProcess("--token", "s3cret", "--journal-file", journal_path)
        self.addCleanup(mock.cleanup)
        client = Client(mock.port)
        self.addCleanup(client.close)
        body = {"inputs": [up("p@x.com")]}
        self.assertEqual(client.request("POST", UPSERT, body=body,
                                        headers={"Authorization": f"Bearer {TOKEN}"})[0], 401)
        self.assertEqual(client.request("POST", UPSERT, body=body,
                                        headers={"Authorization": "Bearer s3cret"})[0], 200)

        def journal_lines():
            with open(journal_path, encoding="utf-8") as fh:
                lines = [json.loads(line) for line in fh]
            return lines if len(lines) == 2 else None

        self.assertEqual([e["status"] for e in wait_for(journal_lines, "2 journal lines")],
                         [401, 200])

        # A request sleeping in a 30 s simulated timeout must not hold up SIGTERM.
        status, _, _ = client.request("POST", "/_mock/config", body={"timeout_rate": 1.0})
        self.assertEqual(status, 200)
        outcome = {}

        def sleeper():
            other = Client(mock.port, timeout=60)
            try:
                outcome["status"] = other.request("POST", UPSERT, body=body,
                                                  headers={"Authorization": "Bearer s3cret"})[0]
            except Exception as exc:  # expected: connection closed without an answer
                outcome["error"] = exc
            finally:
                other.close()

        thread = threading.Thread(target=sleeper, daemon=True)
        thread.start()
        wait_for(lambda: client.request("GET", "/_mock/stats")[2]["timeouts"] == 1,
                 "the request to start sleeping")
        client.close()
        started = time.monotonic()
        self.assertEqual(mock.stop(), 0)
        self.assertLess(time.monotonic() - started, 5.0)
        thread.join(TIMEOUT)
        self.assertFalse(thread.is_alive())
        self.assertIsInstance(outcome.get("error"), CONNECTION_LOST, outcome)
        self.assertEqual(mock.stderr(), "")
        self.assertFalse(os.path.exists(mock.port_file))


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""Self-test for test/connectors/webhook/mock.py.

Run: python3 test/connectors/webhook/mock_selftest.py
Starts the mock as a subprocess (port chosen by the OS, read from --port-file),
exercises the webhook contract and the control API, then stops it with SIGTERM.
Waits are condition polls with a deadline, never fixed sleeps.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "mock.py")
TIMEOUT = 10.0


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
        self.tmp = tempfile.TemporaryDirectory(prefix="mock_webhook_test_")
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

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)

    def request(self, method, path, body=None, headers=None, raw=None):
        headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(payload) if ctype.startswith("application/json") else payload.decode()
        return resp.status, resp, parsed

    def close(self):
        self.conn.close()


def upsert(key_id, data, ikey):
    return {"op": "upsert", "key": {"id": key_id}, "data": data, "idempotency_key": ikey}


def delete(key_id, ikey):
    return {"op": "delete", "key": {"id": key_id}, "idempotency_key": ikey}


def batch(*records, batch_no=1):
    return {"sync": "users", "run_id": 7, "batch": batch_no, "records": list(records)}


class MockWebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockProcess()

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

    # helpers
    def post(self, body, path="/hooks/users", headers=None, raw=None):
        headers = dict(headers or {})
        headers.setdefault("Idempotency-Key", "req-1")
        return self.client.request("POST", path, body=body, headers=headers, raw=raw)

    def records(self):
        return self.client.request("GET", "/_mock/records")[2]

    def journal(self):
        return self.client.request("GET", "/_mock/requests")[2]["requests"]

    def configure(self, **config):
        status, _, out = self.client.request("POST", "/_mock/config", body=config)
        self.assertEqual(status, 200, out)
        return out

    # tests
    def test_port_file_and_health(self):
        with open(self.mock.port_file, encoding="ascii") as fh:
            self.assertEqual(int(fh.read()), self.mock.port)
        # Atomic write: no temp file left next to it.
        self.assertEqual(sorted(os.listdir(self.mock.tmp.name)), ["port", "stderr"])
        status, resp, out = self.client.request("GET", "/_mock/health")
        self.assertEqual((status, out), (200, {"ok": True, "in_flight": 0}))
        self.assertIsNotNone(resp.getheader("Content-Length"))

    def test_all_accepted(self):
        status, _, out = self.post(batch(upsert(1, {"email": "a@example.com"}, "u1-v1"),
                                         upsert(2, {"email": "b@example.com"}, "u2-v1")))
        self.assertEqual((status, out), (200, {"accepted": 2}))
        status, _, out = self.post(batch(upsert(1, {"email": "a2@example.com"}, "u1-v2")))
        self.assertEqual((status, out), (200, {"accepted": 1}))
        self.assertEqual(self.records(), {
            "records": [
                {"key": {"id": 1}, "data": {"email": "a2@example.com"}, "writes": 2},
                {"key": {"id": 2}, "data": {"email": "b@example.com"}, "writes": 1},
            ],
            "duplicates": 0,
        })
        journal = self.journal()
        self.assertEqual([e["status"] for e in journal], [200, 200])
        self.assertEqual([e["seq"] for e in journal], [1, 2])
        first = journal[0]
        self.assertEqual(first["method"], "POST")
        self.assertEqual(first["path"], "/hooks/users")
        self.assertEqual(first["headers"]["idempotency-key"], "req-1")
        self.assertEqual(first["body"]["records"][1]["key"], {"id": 2})
        self.assertNotIn("raw", first)
        self.assertIsInstance(first["time"], float)

    def test_partial_rejection_by_rule(self):
        self.configure(reject=[{"field": "email", "equals": "bad@example.com",
                                "reason": "invalid email", "code": "INVALID_EMAIL"}])
        self.post(batch(upsert(3, {"email": "c@example.com"}, "seed")))
        status, _, out = self.post(batch(upsert(1, {"email": "ok@example.com"}, "i1"),
                                         upsert(2, {"email": "bad@example.com"}, "i2"),
                                         delete(3, "i3")))
        self.assertEqual(status, 207)
        self.assertEqual(out, {"accepted": 2, "rejected": [
            {"index": 1, "reason": "invalid email", "code": "INVALID_EMAIL"}]})
        self.assertEqual([r["key"] for r in self.records()["records"]], [{"id": 1}])
        # The rejected record's idempotency key was not remembered: after the
        # rule is lifted the same record is applied, not counted as duplicate.
        self.configure(reject=[])
        status, _, out = self.post(batch(upsert(2, {"email": "bad@example.com"}, "i2")))
        self.assertEqual((status, out), (200, {"accepted": 1}))
        self.assertEqual(self.records()["duplicates"], 0)

    def test_whole_batch_400(self):
        status, _, out = self.post(None, raw=b"{not json")
        self.assertEqual((status, out["code"]), (400, "INVALID_JSON"))
        status, _, out = self.post({"sync": "users"})
        self.assertEqual((status, out["code"]), (400, "INVALID_RECORDS"))
        # A bad record refuses the whole batch, including the valid first record.
        status, _, out = self.post(batch(upsert(1, {"x": 1}, "a"), {"op": "upsert", "data": {}}))
        self.assertEqual((status, out["code"]), (400, "INVALID_RECORD"))
        self.assertEqual(self.records()["records"], [])
        journal = self.journal()
        self.assertEqual([e["status"] for e in journal], [400, 400, 400])
        self.assertIsNone(journal[0]["body"])
        self.assertEqual(journal[0]["raw"], "{not json")

    def test_fault_queue_in_order(self):
        self.configure(faults=[{"status": 503, "headers": {"Retry-After": "1"}}])
        out = self.configure(faults=[{"status": 429, "headers": {"Retry-After": "1"},
                                      "body": {"error": "slow down"}},
                                     {"status": 500, "body": "<html>oops</html>"}])
        self.assertEqual([f["status"] for f in out["faults"]], [503, 429, 500])
        body = batch(upsert(1, {"v": 1}, "k1"))
        status, resp, out = self.post(body)
        self.assertEqual((status, resp.getheader("Retry-After")), (503, "1"))
        self.assertEqual(out["code"], "FAULT")
        status, resp, out = self.post(body)
        self.assertEqual((status, resp.getheader("Retry-After"), out), (429, "1", {"error": "slow down"}))
        status, resp, out = self.post(body)
        self.assertEqual((status, out), (500, "<html>oops</html>"))
        self.assertEqual(self.records()["records"], [])  # faults leave the store alone
        status, _, out = self.post(body)
        self.assertEqual((status, out), (200, {"accepted": 1}))
        self.assertEqual([e["status"] for e in self.journal()], [503, 429, 500, 200])
        self.assertEqual(self.configure()["faults"], [])

    def test_clear_faults_drops_only_the_unconsumed_ones(self):
        self.configure(faults=[{"status": 503}, {"status": 500}])
        status, _, _ = self.post(batch(upsert(1, {"v": 1}, "k1")))
        self.assertEqual(status, 503)
        status, _, out = self.client.request("DELETE", "/_mock/faults")
        self.assertEqual((status, out), (200, {"cleared": 1}))
        status, _, _ = self.post(batch(upsert(1, {"v": 1}, "k1")))
        self.assertEqual(status, 200)

    def test_held_request_counts_in_flight_until_answered(self):
        self.configure(faults=[{"action": "hold"}])
        held = Client(self.mock.port)
        held.conn.timeout = 0.3
        with self.assertRaises(OSError):
            held.request("POST", "/hooks/users", body=batch(upsert(1, {"v": "old"}, "k-old")))
        held.close()
        self.assertEqual(self.client.request("GET", "/_mock/health")[2]["in_flight"], 1)
        self.client.request("POST", "/_mock/release")
        deadline = time.monotonic() + 5
        while self.client.request("GET", "/_mock/health")[2]["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(self.client.request("GET", "/_mock/health")[2]["in_flight"], 0)

    def test_hold_applies_late_on_release(self):
        self.configure(faults=[{"action": "hold"}])
        held = Client(self.mock.port)
        held.conn.timeout = 0.3
        body = batch(upsert(1, {"v": "old"}, "k-old"))
        with self.assertRaises(OSError):  # unanswered: the client gives up
            held.request("POST", "/hooks/users", body=body)
        held.close()
        self.assertEqual(self.configure()["held"], 1)
        status, _, _ = self.post(batch(upsert(1, {"v": "new"}, "k-new")))
        self.assertEqual(status, 200)
        self.assertEqual(self.records()["records"][0]["data"], {"v": "new"})
        status, _, out = self.client.request("POST", "/_mock/release")
        self.assertEqual((status, out), (200, {"released": 1}))
        # The old request lands after the new one.
        self.assertEqual(self.records()["records"][0]["data"], {"v": "old"})
        self.assertEqual(self.configure()["held"], 0)
        self.assertEqual([e["status"] for e in self.journal()], ["held", 200])

    def test_reset_after_applying_and_pass(self):
        self.configure(faults=[{"action": "pass"}, {"action": "reset", "apply": True},
                               {"status": 503, "apply": True}])
        status, _, _ = self.post(batch(upsert(1, {"v": 1}, "a")))
        self.assertEqual(status, 200)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.post(batch(upsert(2, {"v": 2}, "b")))
        self.client.close()
        self.client = Client(self.mock.port)
        status, _, _ = self.post(batch(upsert(3, {"v": 3}, "c")))
        self.assertEqual(status, 503)
        # Applied all the same: the client cannot tell.
        self.assertEqual([r["key"]["id"] for r in self.records()["records"]], [1, 2, 3])
        self.assertEqual([e["status"] for e in self.journal()], [200, "reset", 503])

    def test_plain_receiver_applies_repeated_keys(self):
        self.configure(dedupe=False)
        for _ in range(2):
            self.post(batch(upsert(1, {"v": 1}, "same")))
        records = self.records()
        self.assertEqual((records["duplicates"], records["records"][0]["writes"]), (0, 2))
        status, _, _ = self.client.request("POST", "/_mock/config", body={"dedupe": "no"})
        self.assertEqual(status, 400)
        status, _, _ = self.client.request("POST", "/_mock/config", body={"faults": [{"action": "drop"}]})
        self.assertEqual(status, 400)

    def test_reject_all_status_and_delay(self):
        self.configure(reject_all_status=500)
        status, _, out = self.post(batch(upsert(1, {"v": 1}, "k1")))
        self.assertEqual((status, out), (500, {"error": "configured", "code": "CONFIGURED"}))
        self.assertEqual(self.records()["records"], [])
        self.configure(reject_all_status=None, delay_ms=200)
        start = time.monotonic()
        status, _, _ = self.post(batch(upsert(1, {"v": 1}, "k1")))
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.2)

    def test_delete_removes(self):
        self.post(batch(upsert(1, {"v": 1}, "a"), upsert(2, {"v": 2}, "b")))
        status, _, out = self.post(batch(delete(1, "c"), delete(99, "d")))
        self.assertEqual((status, out), (200, {"accepted": 2}))
        self.assertEqual([r["key"] for r in self.records()["records"]], [{"id": 2}])

    def test_duplicate_idempotency_key(self):
        body = batch(upsert(1, {"v": 1}, "same"))
        for _ in range(2):
            status, _, out = self.post(body)
            self.assertEqual((status, out), (200, {"accepted": 1}))
        records = self.records()
        self.assertEqual(records["duplicates"], 1)
        self.assertEqual(records["records"][0]["writes"], 1)
        # DELETE /_mock/records forgets idempotency keys too.
        self.client.request("DELETE", "/_mock/records")
        self.post(body)
        self.assertEqual(self.records()["duplicates"], 0)

    def test_journal_clear_keeps_store(self):
        self.post(batch(upsert(1, {"v": 1}, "a")))
        status, _, _ = self.client.request("DELETE", "/_mock/requests")
        self.assertEqual(status, 200)
        self.assertEqual(self.journal(), [])
        self.assertEqual(len(self.records()["records"]), 1)

    def test_control_errors(self):
        status, _, out = self.client.request("GET", "/_mock/nope")
        self.assertEqual((status, out["code"]), (404, "NOT_FOUND"))
        status, resp, out = self.client.request("POST", "/_mock/records")
        self.assertEqual((status, resp.getheader("Allow")), (405, "DELETE, GET"))
        status, _, out = self.client.request("POST", "/_mock/config", body={"rejct": []})
        self.assertEqual(status, 400)
        status, _, _ = self.client.request("GET", "/hooks/users")
        self.assertEqual(status, 405)
        self.assertEqual([e["status"] for e in self.journal()], [405])  # control calls not journaled

    def test_keep_alive(self):
        self.client.request("GET", "/_mock/health")
        sock = self.client.conn.sock
        self.assertIsNotNone(sock)
        self.post(batch())
        self.client.request("GET", "/_mock/health")
        self.assertIs(self.client.conn.sock, sock)

    def test_oversized_body_413(self):
        for extra in ("", "Expect: 100-continue\r\n"):
            with socket.create_connection(("127.0.0.1", self.mock.port), timeout=TIMEOUT) as s:
                s.sendall((f"POST /hooks/big HTTP/1.1\r\nHost: x\r\n{extra}"
                           f"Content-Length: {16 * 1024 * 1024 + 1}\r\n\r\n").encode())
                response = b""
                while chunk := s.recv(65536):  # server closes the connection
                    response += chunk
            self.assertTrue(response.startswith(b"HTTP/1.1 413"), response[:100])
            self.assertIn(b"Connection: close", response)
            self.assertNotIn(b"100 Continue", response)
        self.assertEqual([e["status"] for e in self.journal()], [413, 413])


class TokenAndJournalFileTest(unittest.TestCase):
    def test_require_token_and_journal_file(self):
        tmp = tempfile.TemporaryDirectory(prefix="mock_webhook_journal_")
        self.addCleanup(tmp.cleanup)
        journal_path = os.path.join(tmp.name, "journal.jsonl")
        mock = MockProcess("--require-token", "s3cret", "--journal-file", journal_path)
        self.addCleanup(mock.cleanup)
        client = Client(mock.port)
        self.addCleanup(client.close)

        body = batch(upsert(1, {"v": 1}, "a"))
        status, resp, out = client.request("POST", "/hook", body=body)
        self.assertEqual((status, out), (401, {"error": "unauthorized"}))
        status, _, _ = client.request("POST", "/hook", body=body,
                                      headers={"Authorization": "Bearer wrong"})
        self.assertEqual(status, 401)
        status, _, out = client.request("POST", "/hook", body=body,
                                        headers={"Authorization": "Bearer s3cret"})
        self.assertEqual((status, out), (200, {"accepted": 1}))
        # The control API needs no token.
        status, _, out = client.request("GET", "/_mock/records")
        self.assertEqual((status, len(out["records"])), (200, 1))

        def journal_lines():
            with open(journal_path, encoding="utf-8") as fh:
                lines = [json.loads(line) for line in fh]
            return lines if len(lines) == 3 else None

        lines = wait_for(journal_lines, "3 journal lines")
        self.assertEqual([e["status"] for e in lines], [401, 401, 200])
        self.assertEqual(lines[2]["headers"]["authorization"], "Bearer s3cret")

        self.assertEqual(mock.stop(), 0)
        self.assertEqual(mock.stderr(), "")
        self.assertFalse(os.path.exists(mock.port_file))


if __name__ == "__main__":
    unittest.main(verbosity=2)

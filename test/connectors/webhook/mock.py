#!/usr/bin/env python3
"""Local mock webhook destination for revetl integration tests and demos.

Usage:
    python3 test/connectors/webhook/mock.py [--port N] [--port-file PATH]
                                 [--require-token TOKEN] [--journal-file PATH]

Behaviours emulated (Python 3.11 standard library only, binds 127.0.0.1 only):
  * HTTP/1.1 with keep-alive; every response carries Content-Length.
    Chunked request bodies and `Expect: 100-continue` are accepted.
  * Webhook endpoint: POST to any path not under /_mock/ with the revetl body
        {"sync", "run_id", "batch",
         "records": [{"op": "upsert", "key": {..}, "data": {..}, "idempotency_key": ".."},
                     {"op": "delete", "key": {..}, "idempotency_key": ".."}]}
    answered with
      - 200 {"accepted": n}                        every record accepted
      - 207 {"accepted": n, "rejected": [{"index", "reason", "code"}]}
                                                   some records refused by a reject rule
      - 400 {"error", "code"}                      whole request refused (invalid JSON,
                                                   body not an object, `records` missing
                                                   or not a list, record without a valid
                                                   op/key, upsert without a data object)
      - 401 {"error": "unauthorized"}              --require-token and no/wrong Bearer token
      - 405 {"error", "code"}                      method other than POST
      - 413 {"error", "code"}                      body larger than 16 MiB (connection closed)
      - any status from the fault queue or from reject_all_status (see below).
    Precedence: delay, auth, method, fault queue, reject_all_status, body validation,
    per-record processing.
  * Destination store: accepted upserts set store[canonical key] = data and count
    "writes" per key (a delete forgets the key, so a later upsert starts again at 1);
    accepted deletes remove the key (deleting a missing key is accepted, a no-op).
    Rejected records and non-2xx responses change nothing; a 400 is all-or-nothing.
  * Idempotency: the idempotency_key of every applied record is remembered. A record
    whose key was already applied is answered as accepted but not re-applied and
    is counted in "duplicates" instead of "writes" (like a replay-safe real API;
    this check comes before reject rules).
  * Journal of every non-/_mock request (including 401/405/413 and faults):
    {"seq", "method", "path", "headers" (lower-case names), "body" (parsed JSON or
    null), "raw" (text, only when the body is not JSON), "status", "time"}.
    With --journal-file each entry is also appended as one JSON line.
    "seq" keeps increasing across DELETE /_mock/requests; /_mock/reset restarts it.
  * Control API (JSON in and out; never needs the token, never journaled):
      GET    /_mock/health    -> {"ok": true, "in_flight": n}: n webhook requests
                                 arrived and not answered yet (slow, held)
      GET    /_mock/requests  -> {"requests": [...]}
      DELETE /_mock/requests  -> clear journal (store untouched)
      GET    /_mock/records   -> {"records": [{"key", "data", "writes"}], "duplicates": n}
      DELETE /_mock/records   -> clear store, idempotency memory and duplicate count
      GET    /_mock/config    -> current config
      POST   /_mock/config    -> any of
                "reject": [{"field", "equals", "reason"?, "code"?}]  (replaces the list;
                          matches upserts whose top-level data[field] == equals)
                "faults": [{"status", "headers"?, "body"?, "apply"?}  (appended to a queue;
                           or {"action": "reset" | "hold" | "pass", "apply"?}]  each following
                          webhook request consumes one; a string body is sent verbatim
                          as text/plain, anything else as JSON. "apply": true applies
                          the request's records first (a 503 after applying). "reset"
                          closes the connection with a TCP reset and no answer (after
                          applying, with "apply"). "hold" applies nothing and answers
                          nothing until POST /_mock/release: a request the client gave
                          up on that the destination applies late. "pass" handles the
                          request normally: it lets a later fault hit a later request.
                          "answer_delay_ms": N on any fault answers N ms after the
                          request was handled: a slow answer to an applied request)
                "dedupe": bool    (default true: skip records whose idempotency_key
                          was applied before; false: a plain receiver)
                "delay_ms": N     (every webhook request waits N ms before answering)
                "reject_batch_if": [{"field", "equals"}]  (a 400 for the whole request
                                       when any upsert matches; nothing applied)
                "reject_all_status": N | null  (every webhook request gets N with
                          {"error": "configured", "code": "CONFIGURED"})
              and returns the current config. Unknown keys or bad types -> 400.
      POST   /_mock/release   -> apply every held request now, in the order they
                                 arrived (answering each, if its client still
                                 listens); -> {"released": n}
      DELETE /_mock/faults    -> drop the faults not consumed yet -> {"cleared": n}
      POST   /_mock/reset     -> clear journal, store, config and fault queue
    Unknown /_mock paths -> 404, wrong method on a known one -> 405 (with Allow).
  * --port 0 (default) picks a free port; --port-file gets the actual port written
    atomically (tmp file + rename) once listening, and is removed on clean exit.
    One line "mock_webhook listening on http://127.0.0.1:PORT" goes to stdout;
    no per-request logging.
  * SIGTERM / SIGINT: stop serving and exit with status 0.
"""

import argparse
import collections
import json
import os
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import ClientGone, HttpError, StrictBodyReader, remove_quietly, serve  # noqa: E402
from mockserver import MockServer as SharedMockServer  # noqa: E402

HOST = "127.0.0.1"
MAX_BODY = 16 * 1024 * 1024
CONTROL_PREFIX = "/_mock"


def canonical(value):
    """Canonical JSON used as the store key (and to order GET /_mock/records)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def is_int(value):
    # bool is a subclass of int in Python; JSON true must not pass as a status.
    return isinstance(value, int) and not isinstance(value, bool)


def json_equal(a, b):
    """Equality for reject rules: like ==, but true/false never equal 1/0."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def default_fault_body(status):
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "injected fault"
    return {"error": phrase, "code": "FAULT"}


def validate_batch(body):
    """Check a webhook body; raise HttpError(400) if the whole batch is refused."""
    if not isinstance(body, dict):
        raise HttpError(400, "body must be a JSON object", "INVALID_BODY")
    records = body.get("records")
    if not isinstance(records, list):
        raise HttpError(400, "'records' must be a list", "INVALID_RECORDS")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise HttpError(400, f"records[{i}] is not an object", "INVALID_RECORD")
        op = rec.get("op")
        if op not in ("upsert", "insert", "update", "delete"):
            raise HttpError(400, f"records[{i}].op must be 'upsert', 'insert', 'update' or 'delete'",
                            "INVALID_RECORD")
        if not isinstance(rec.get("key"), dict):
            raise HttpError(400, f"records[{i}].key must be an object", "INVALID_RECORD")
        if op != "delete" and not isinstance(rec.get("data"), dict):
            raise HttpError(400, f"records[{i}].data must be an object", "INVALID_RECORD")
        ikey = rec.get("idempotency_key")
        if ikey is not None and not isinstance(ikey, str):
            raise HttpError(400, f"records[{i}].idempotency_key must be a string", "INVALID_RECORD")
    return records


def validate_config(update):
    """Check a POST /_mock/config body; raise HttpError(400) on any problem."""
    if not isinstance(update, dict):
        raise HttpError(400, "config must be a JSON object", "INVALID_CONFIG")
    unknown = set(update) - {"reject", "faults", "delay_ms", "reject_all_status", "reject_batch_if",
                             "dedupe"}
    if unknown:
        # Strict on purpose: a typo in a test's config should fail loudly.
        raise HttpError(400, f"unknown config keys: {sorted(unknown)}", "INVALID_CONFIG")
    if "reject" in update:
        rules = update["reject"]
        if not isinstance(rules, list):
            raise HttpError(400, "'reject' must be a list", "INVALID_CONFIG")
        for i, rule in enumerate(rules):
            if (not isinstance(rule, dict) or not isinstance(rule.get("field"), str)
                    or "equals" not in rule):
                raise HttpError(400, f"reject[{i}] needs 'field' (string) and 'equals'",
                                "INVALID_CONFIG")
    if "reject_batch_if" in update:
        rules = update["reject_batch_if"]
        if not isinstance(rules, list) or not all(
                isinstance(r, dict) and isinstance(r.get("field"), str) and "equals" in r for r in rules):
            raise HttpError(400, "'reject_batch_if' must be a list of {field, equals}", "INVALID_CONFIG")
    if "faults" in update:
        faults = update["faults"]
        if not isinstance(faults, list):
            raise HttpError(400, "'faults' must be a list", "INVALID_CONFIG")
        for i, fault in enumerate(faults):
            if isinstance(fault, dict) and "action" in fault:
                if fault["action"] not in ("reset", "hold", "pass"):
                    raise HttpError(400, f"faults[{i}].action must be 'reset', 'hold' or 'pass'",
                                    "INVALID_CONFIG")
            elif not isinstance(fault, dict) or not is_int(fault.get("status")) \
                    or not 200 <= fault["status"] <= 599:
                raise HttpError(400, f"faults[{i}] needs an integer 'status' in 200..599",
                                "INVALID_CONFIG")
            if not isinstance(fault.get("apply", False), bool):
                raise HttpError(400, f"faults[{i}].apply must be a boolean", "INVALID_CONFIG")
            if not is_int(fault.get("answer_delay_ms", 0)) or fault.get("answer_delay_ms", 0) < 0:
                raise HttpError(400, f"faults[{i}].answer_delay_ms must be a non-negative integer",
                                "INVALID_CONFIG")
            headers = fault.get("headers", {})
            if not isinstance(headers, dict) or not all(
                    isinstance(v, (str, int)) and not isinstance(v, bool)
                    for v in headers.values()):
                raise HttpError(400, f"faults[{i}].headers must map names to strings",
                                "INVALID_CONFIG")
    if "dedupe" in update and not isinstance(update["dedupe"], bool):
        raise HttpError(400, "'dedupe' must be a boolean", "INVALID_CONFIG")
    if "delay_ms" in update:
        delay = update["delay_ms"]
        if delay is not None and (not isinstance(delay, (int, float)) or isinstance(delay, bool)
                                  or delay < 0):
            raise HttpError(400, "'delay_ms' must be a number >= 0", "INVALID_CONFIG")
    if "reject_all_status" in update:
        status = update["reject_all_status"]
        if status is not None and (not is_int(status) or not 400 <= status <= 599):
            raise HttpError(400, "'reject_all_status' must be null or an integer in 400..599",
                            "INVALID_CONFIG")


class MockState:
    """Everything the mock remembers. One lock guards all of it."""

    def __init__(self, journal_file=None):
        self.lock = threading.Lock()
        self.journal_file = journal_file  # open text file or None
        self.reset()

    def reset(self):
        # Called at construction and by POST /_mock/reset (with the lock held).
        # Held requests are let go unapplied (answered 503) first.
        for entry in getattr(self, "held", []):
            entry["answer"] = (503, default_fault_body(503))
            entry["released"].set()
        self.journal = []
        self.seq = 0
        self.store = {}            # canonical key -> {"key", "data", "writes"}
        self.applied_keys = set()  # idempotency keys of applied records
        self.duplicates = 0
        self.reject_rules = []
        self.faults = collections.deque()
        self.delay_ms = 0
        self.reject_all_status = None
        self.in_flight = getattr(self, "in_flight", 0)  # webhook requests arrived and not yet answered
        # Whole-batch refusal (400) when any upsert matches: what APIs that
        # validate a request as a unit do (HubSpot without objectWriteTraceId).
        self.reject_batch_if = []
        self.dedupe = True
        # Held requests, in arrival order: [{"records", "released" (Event)}]
        self.held = []

    def clear_store(self):
        self.store.clear()
        self.applied_keys.clear()
        self.duplicates = 0

    def config(self):
        return {
            "reject": self.reject_rules,
            "faults": list(self.faults),
            "delay_ms": self.delay_ms,
            "reject_all_status": self.reject_all_status,
            "reject_batch_if": self.reject_batch_if,
            "dedupe": self.dedupe,
            "held": len(self.held),
        }

    def update_config(self, update):
        validate_config(update)
        if "reject" in update:
            self.reject_rules = update["reject"]
        if "faults" in update:
            self.faults.extend(update["faults"])
        if "delay_ms" in update:
            self.delay_ms = update["delay_ms"] or 0
        if "reject_all_status" in update:
            self.reject_all_status = update["reject_all_status"]
        if "reject_batch_if" in update:
            self.reject_batch_if = update["reject_batch_if"]
        if "dedupe" in update:
            self.dedupe = update["dedupe"]
        return self.config()

    def release(self):
        """Apply every held request in arrival order (lock held)."""
        held, self.held = self.held, []
        for entry in held:
            entry["answer"] = self.apply_batch(entry["records"])
            entry["released"].set()
        return {"released": len(held)}

    def records_snapshot(self):
        return {
            "records": [self.store[k] for k in sorted(self.store)],
            "duplicates": self.duplicates,
        }

    def add_journal(self, entry):
        """Append a journal entry (lock held); assigns its seq."""
        self.seq += 1
        entry = {"seq": self.seq, **entry}
        self.journal.append(entry)
        if self.journal_file is not None:
            self.journal_file.write(json.dumps(entry) + "\n")
            self.journal_file.flush()

    def _matching_rule(self, data):
        for rule in self.reject_rules:
            field = rule["field"]
            if field in data and json_equal(data[field], rule["equals"]):
                return rule
        return None

    def apply_batch(self, records):
        """Apply validated records (lock held); return (status, payload)."""
        accepted = 0
        rejected = []
        for index, rec in enumerate(records):
            ikey = rec.get("idempotency_key")
            if self.dedupe and ikey is not None and ikey in self.applied_keys:
                self.duplicates += 1
                accepted += 1
                continue
            store_key = canonical(rec["key"])
            if rec["op"] != "delete":
                # insert refuses an existing record, update a missing one,
                # as APIs with those operations do.
                exists = store_key in self.store
                if (rec["op"] == "insert" and exists) or (rec["op"] == "update" and not exists):
                    rejected.append({
                        "index": index,
                        "reason": "record exists" if exists else "record not found",
                        "code": "EXISTS" if exists else "NOT_FOUND",
                    })
                    continue
                rule = self._matching_rule(rec["data"])
                if rule is not None:
                    rejected.append({
                        "index": index,
                        "reason": rule.get("reason", "rejected by rule"),
                        "code": rule.get("code", "REJECTED"),
                    })
                    continue
                entry = self.store.get(store_key)
                if entry is None:
                    self.store[store_key] = {"key": rec["key"], "data": rec["data"], "writes": 1}
                else:
                    entry["data"] = rec["data"]
                    entry["writes"] += 1
            else:
                self.store.pop(store_key, None)
            if ikey is not None:
                self.applied_keys.add(ikey)
            accepted += 1
        if rejected:
            return 207, {"accepted": accepted, "rejected": rejected}
        return 200, {"accepted": accepted}


class MockServer(SharedMockServer):
    def __init__(self, address, state, token=None):
        self.state = state
        self.token = token
        super().__init__(address, MockHandler)


class MockHandler(StrictBodyReader, BaseHTTPRequestHandler):
    max_body = MAX_BODY
    protocol_version = "HTTP/1.1"
    server_version = "revetl-mock-webhook/1"
    timeout = 120  # free the thread of a client that stalls mid-request
    # Headers and body go out in two writes; with Nagle on, the client's delayed
    # ACK adds ~40 ms to every response. TCP_NODELAY avoids that.
    disable_nagle_algorithm = True

    # -- plumbing ---------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 (signature from base class)
        pass  # quiet: no per-request stderr lines

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _is_control(self):
        path = urlsplit(self.path).path
        return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")

    def _lower_headers(self):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    def _send(self, status, payload, headers=None):
        """Send a response. `payload` is a str (sent as text) or JSON-able."""
        if isinstance(payload, str):
            body = payload.encode("utf-8")
            out = {"Content-Type": "text/plain; charset=utf-8"}
        else:
            body = json.dumps(payload).encode("utf-8")
            out = {"Content-Type": "application/json"}
        if status in (204, 304):
            body = b""  # these statuses must not carry a body
        for name, value in (headers or {}).items():
            # Framing headers are ours to set; a fault may override the rest.
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            out = {k: v for k, v in out.items() if k.lower() != name.lower()}
            out[name] = str(value)
        out["Content-Length"] = str(len(body))
        if self.close_connection:
            out["Connection"] = "close"
        self.send_response(status)
        for name, value in out.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _refuse_unread(self, err, arrived):
        """Answer a request whose body we will not read; the connection must close."""
        self.close_connection = True
        if not self._is_control():
            with self.server.state.lock:
                self.server.state.add_journal(self._journal_entry(arrived, None, None, err.status))
        self._send(err.status, err.payload())

    def handle_expect_100(self):
        # Refuse oversized bodies before the client sends them (curl sends
        # `Expect: 100-continue` for large POSTs).
        try:
            self._declared_length()
        except HttpError as err:
            self._refuse_unread(err, time.time())
            return False
        return super().handle_expect_100()

    def _dispatch(self):
        arrived = time.time()
        try:
            raw = self._read_body()
        except HttpError as err:
            self._refuse_unread(err, arrived)
            return
        except ClientGone:
            self.close_connection = True
            return
        try:
            if self._is_control():
                self._handle_control(raw)
            else:
                self._handle_webhook(raw, arrived)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as exc:  # a bug in the mock: say so loudly, keep serving
            traceback.print_exc()
            self.close_connection = True
            self._send(500, {"error": f"mock internal error: {exc!r}", "code": "MOCK_BUG"})

    # -- webhook ------------------------------------------------------------------

    def _journal_entry(self, arrived, body, raw_text, status):
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": self._lower_headers(),
            "body": body,
            "status": status,
            "time": arrived,
        }
        if raw_text is not None:
            entry["raw"] = raw_text
        return entry

    def _handle_webhook(self, raw, arrived):
        state = self.server.state
        with state.lock:
            state.in_flight += 1
        try:
            self._handle_webhook_counted(raw, arrived)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _handle_webhook_counted(self, raw, arrived):
        state = self.server.state
        text = raw.decode("utf-8", errors="replace")
        try:
            body, raw_text = json.loads(text), None
        except ValueError:
            body, raw_text = None, text

        with state.lock:
            delay_ms = state.delay_ms
        if delay_ms:
            time.sleep(delay_ms / 1000.0)  # simulated slow endpoint (lock not held)

        token = self.server.token
        headers = {}
        answer_delay_ms = 0
        # Decide, apply and journal under one lock so journal order == apply order,
        # and journal before answering so a client that got a response always
        # finds its request in GET /_mock/requests.
        with state.lock:
            if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                status, payload = 401, {"error": "unauthorized"}
                headers = {"WWW-Authenticate": "Bearer"}
            elif self.command != "POST":
                status, payload = 405, {"error": "method not allowed", "code": "METHOD_NOT_ALLOWED"}
                headers = {"Allow": "POST"}
            elif state.faults:
                fault = state.faults.popleft()
                action = fault.get("action")
                answer_delay_ms = fault.get("answer_delay_ms", 0)
                try:
                    records = validate_batch(body) if raw_text is None else None
                except HttpError:
                    records = None
                if fault.get("apply") and records is not None:
                    state.apply_batch(records)
                if action == "pass" and records is not None:
                    status, payload = state.apply_batch(records)
                elif action == "hold" and records is not None:
                    held = {"records": records, "released": threading.Event()}
                    state.held.append(held)
                    status, payload = "held", None
                elif action == "reset":
                    status, payload = "reset", None
                else:
                    status = fault.get("status", 400)  # 400: a held or passed body that is not JSON
                    payload = fault["body"] if "body" in fault else default_fault_body(status)
                    headers = fault.get("headers", {})
            elif state.reject_all_status is not None:
                status = state.reject_all_status
                payload = {"error": "configured", "code": "CONFIGURED"}
            elif raw_text is not None:
                status, payload = 400, {"error": "body is not valid JSON", "code": "INVALID_JSON"}
            else:
                try:
                    records = validate_batch(body)
                except HttpError as err:
                    status, payload = err.status, err.payload()
                else:
                    bad = [r for r in records if r.get("op") != "delete" and any(
                        isinstance(r.get("data"), dict) and rule["field"] in r["data"]
                        and r["data"][rule["field"]] == rule["equals"] for rule in state.reject_batch_if)]
                    if bad:
                        status, payload = 400, {"error": "invalid record in batch", "code": "INVALID_BATCH"}
                    else:
                        status, payload = state.apply_batch(records)
            state.add_journal(self._journal_entry(arrived, body, raw_text, status))
        if answer_delay_ms:
            time.sleep(answer_delay_ms / 1000.0)  # applied (or refused) already; answered late
        if status == "reset":
            self._reset_connection()
            return
        if status == "held":
            # Answered only once released (the client has long given up).
            held["released"].wait()
            status, payload = held["answer"]
            self.close_connection = True
            try:
                self._send(status, payload)
            except OSError:
                pass
            return
        self._send(status, payload, headers)

    def _reset_connection(self):
        """Drop the connection with a TCP reset, answering nothing."""
        import socket
        import struct
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    # -- control API ----------------------------------------------------------------

    def _handle_control(self, raw):
        state = self.server.state
        path = urlsplit(self.path).path.rstrip("/")

        def json_body():
            if not raw.strip():
                return {}
            try:
                return json.loads(raw.decode("utf-8"))
            except ValueError:
                raise HttpError(400, "body is not valid JSON", "INVALID_JSON") from None

        def health():
            return {"ok": True, "in_flight": state.in_flight}

        def get_requests():
            return {"requests": state.journal}

        def clear_faults():
            cleared = len(state.faults)
            state.faults.clear()
            return {"cleared": cleared}

        def clear_requests():
            state.journal.clear()
            return {"ok": True}

        def get_records():
            return state.records_snapshot()

        def clear_records():
            state.clear_store()
            return {"ok": True}

        def get_config():
            return state.config()

        def post_config():
            return state.update_config(body)

        def reset():
            state.reset()
            return {"ok": True}

        routes = {
            "/_mock/health": {"GET": health},
            "/_mock/requests": {"GET": get_requests, "DELETE": clear_requests},
            "/_mock/faults": {"DELETE": clear_faults},
            "/_mock/records": {"GET": get_records, "DELETE": clear_records},
            "/_mock/config": {"GET": get_config, "POST": post_config},
            "/_mock/reset": {"POST": reset},
            "/_mock/release": {"POST": lambda: state.release()},
        }
        methods = routes.get(path)
        if methods is None:
            self._send(404, {"error": f"unknown control path {path}", "code": "NOT_FOUND"})
            return
        handler = methods.get(self.command)
        if handler is None:
            self._send(405, {"error": "method not allowed", "code": "METHOD_NOT_ALLOWED"},
                       {"Allow": ", ".join(sorted(methods))})
            return
        try:
            body = json_body() if self.command == "POST" else None
            with state.lock:
                # Serialize under the lock so the answer is a consistent snapshot.
                out = json.dumps(handler())
        except HttpError as err:
            self._send(err.status, err.payload())
            return
        self._send(200, json.loads(out))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mock webhook destination for revetl tests.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick a free one)")
    parser.add_argument("--port-file", help="write the actual port here once listening")
    parser.add_argument("--require-token", help="require 'Authorization: Bearer TOKEN' on webhook requests")
    parser.add_argument("--journal-file", help="append each journaled request as a JSON line")
    args = parser.parse_args(argv)

    if args.port_file:
        remove_quietly(args.port_file)  # never let a reader see a stale port
    journal_fh = open(args.journal_file, "a", encoding="utf-8") if args.journal_file else None
    state = MockState(journal_fh)
    try:
        server = MockServer((HOST, args.port), state, token=args.require_token)
    except OSError as exc:
        print(f"mock_webhook: cannot listen on {HOST}:{args.port}: {exc}", file=sys.stderr)
        return 1

    def close_journal():
        with state.lock:  # handler threads may still be journaling
            if journal_fh is not None:
                journal_fh.close()
                state.journal_file = None

    return serve(server, "mock_webhook", args.port_file, after_shutdown=close_journal)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A stateful mock of Segment's HTTP Tracking API (POST /v1/batch) for revetl's
`segment` destination.

Segment publishes no machine-readable contract for the Tracking API (see
/work/shared/vendor-specs/segment/SOURCE.md): this mock enforces the documented
shapes and limits itself and journals each request's `contract_errors`.

Usage:
    python3 test/connectors/segment/mock.py [--port N] [--port-file PATH] [--write-key K]

Python 3 standard library only; binds 127.0.0.1 only.

  * POST /v1/batch (also /v1/identify and /v1/track with one call): Basic auth with
    the write key as user and an empty password (else 401), `Content-Type:
    application/json`. A body over 500 KB, a call over 32 KB, or a body that is not
    JSON is answered 400 and nothing is taken. Otherwise 200 {"success": true}, as
    Segment does even for invalid calls: a call without `type`, without `userId` or
    `anonymousId`, a track without `event`, or a `messageId` over 100 characters is
    journaled as a contract error and dropped (Segment shows it only in its debugger).
  * Deduplication on messageId: a call whose messageId was seen is counted in
    stats()["duplicates"] and not applied again.
  * State: identify merges traits per userId; track appends {userId, event,
    properties, messageId} to the events list.
  * Faults: POST /_mock/config {"faults": [{"status": N, "body"?: ..., "headers"?: {...},
    "apply"?: bool}]} answers the next requests (with apply true the calls are taken
    first: an answer lost after Segment took the batch).
  * Control: GET /_mock/requests, GET /_mock/state, GET /_mock/stats,
    DELETE /_mock/requests, POST /_mock/reset.
"""

import argparse
import base64
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_CALL = 32 * 1024
MAX_BATCH = 500 * 1024
MAX_MESSAGE_ID = 100
TYPES = ("identify", "track", "page", "screen", "group", "alias")


class State:
    def __init__(self, write_key):
        self.write_key = write_key
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = []
        self.users = {}
        self.events = []
        self.message_ids = set()
        self.faults = []
        self.stats = {"batches": 0, "calls": 0, "duplicates": 0, "dropped": 0, "refused": 0}


class Handler(MockHandler):
    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.startswith("/_mock/"):
            return self.control(raw.decode())
        state = self.server.state
        with state.lock:
            entry = {"method": self.command, "path": self.path, "size": len(raw),
                     "headers": {k.lower(): v for k, v in self.headers.items()},
                     "body": raw.decode("utf-8", errors="replace"), "contract_errors": []}
            state.requests.append(entry)
            return self.api(state, entry, raw)

    def api(self, state, entry, raw):
        errors = entry["contract_errors"]
        if self.command != "POST" or self.path not in ("/v1/batch", "/v1/identify", "/v1/track"):
            return self.send(404, {"error": "not found"})
        expected = "Basic " + base64.b64encode(f"{state.write_key}:".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self.send(401, {"error": "invalid write key"})
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            errors.append("Content-Type is not application/json")
        fault = state.faults.pop(0) if state.faults else None
        if fault and not fault.get("apply"):
            return self.send(fault["status"], fault.get("body", {"error": "fault"}), fault.get("headers"))
        if len(raw) > MAX_BATCH:
            state.stats["refused"] += 1
            errors.append(f"batch of {len(raw)} bytes is over 500 KB")
            return self.send(400, {"error": "batch is too large"})
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            state.stats["refused"] += 1
            errors.append("invalid JSON")
            return self.send(400, {"error": "invalid JSON"})
        calls = body.get("batch") if self.path == "/v1/batch" and isinstance(body, dict) else [body]
        if not isinstance(calls, list):
            errors.append("batch must be an array")
            return self.send(400, {"error": "batch must be an array"})
        for call in calls:
            size = len(json.dumps(call, separators=(",", ":")).encode())
            if size > MAX_CALL:
                state.stats["refused"] += 1
                errors.append(f"a call of {size} bytes is over 32 KB")
                return self.send(400, {"error": "message is too large"})
        state.stats["batches"] += 1
        for i, call in enumerate(calls):
            self.apply(state, call, i, errors)
        if fault:
            return self.send(fault["status"], fault.get("body", {"error": "fault"}), fault.get("headers"))
        return self.send(200, {"success": True})

    def apply(self, state, call, i, errors):
        problem = None
        if not isinstance(call, dict) or call.get("type") not in TYPES:
            problem = "type must be one of " + ", ".join(TYPES)
        elif not call.get("userId") and not call.get("anonymousId"):
            problem = "userId or anonymousId is required"
        elif call["type"] == "track" and not call.get("event"):
            problem = "a track call needs event"
        elif len(str(call.get("messageId", ""))) > MAX_MESSAGE_ID:
            problem = "messageId is over 100 characters"
        if problem:
            errors.append(f"batch[{i}]: {problem}")
            state.stats["dropped"] += 1
            return
        state.stats["calls"] += 1
        mid = call.get("messageId")
        if mid is not None:
            if mid in state.message_ids:
                state.stats["duplicates"] += 1
                return
            state.message_ids.add(mid)
        if call["type"] == "identify":
            state.users.setdefault(call["userId"], {}).update(call.get("traits") or {})
        elif call["type"] == "track":
            state.events.append({"userId": call["userId"], "event": call["event"],
                                 "properties": call.get("properties") or {}, "messageId": mid})

    def control(self, text):
        state = self.server.state
        with state.lock:
            if self.path == "/_mock/requests" and self.command == "GET":
                return self.send(200, {"requests": state.requests})
            if self.path == "/_mock/requests" and self.command == "DELETE":
                state.requests = []
                return self.send(200, {"ok": True})
            if self.path == "/_mock/state" and self.command == "GET":
                return self.send(200, {"users": state.users, "events": state.events})
            if self.path == "/_mock/stats" and self.command == "GET":
                return self.send(200, state.stats)
            if self.path == "/_mock/reset" and self.command == "POST":
                state.reset()
                return self.send(200, {"ok": True})
            if self.path == "/_mock/config" and self.command == "POST":
                config = json.loads(text or "{}")
                for key in config:
                    if key != "faults":
                        return self.send(400, {"error": f"unknown option {key}"})
                state.faults.extend(config.get("faults", []))
                return self.send(200, {"ok": True})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mock Segment Tracking API for revetl's segment destination.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--write-key", default="test-write-key")
    args = parser.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.write_key)
    return serve(server, "mock_segment", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

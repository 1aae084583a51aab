#!/usr/bin/env python3
"""A stateful mock of Braze's REST API (/users/track, /users/delete) for revetl's
`braze` destination.

Braze publishes no machine-readable contract (see
/work/shared/vendor-specs/braze/SOURCE.md): this mock enforces the documented
shapes and limits itself and journals each request's `contract_errors`.

Usage:
    python3 test/connectors/braze/mock.py [--port N] [--port-file PATH] [--token T]

Python 3 standard library only; binds 127.0.0.1 only.

  * POST /users/track: `Authorization: Bearer <token>` (else 401), JSON body with
    optional `attributes`, `events`, `purchases` arrays; at most 75 objects in each
    array and 75 in all (else 400 {"message": ..., "errors": [...]}, nothing applied).
    Each object names its user by exactly one of external_id, braze_id, user_alias,
    email, phone; an object that does not, or that the reject switch refuses, gets an
    entry {"type", "input_array", "index"} in `errors` and is not applied; the others
    are. Answer: 201 {"message": "success", "attributes_processed": n, "errors"?: [...]}.
    `_update_existing_only: true` never creates a user. Values that look like dates but
    are not ISO 8601 date-times or YYYY-MM-DD dates are journaled as contract errors.
  * POST /users/delete: one identifier kind (external_ids or braze_ids), at most 50,
    strings; 201 {"deleted": n, "message": "success"}.
  * Rate limit: POST /_mock/config {"rate_limit": {"limit": N, "window_s": S}}: the
    N+1st request in a window is answered 429 with X-RateLimit-Limit/-Remaining/-Reset
    (unix seconds of the window's end). Requests sent before Reset are counted in
    stats()["early_after_429"].
  * Faults: {"faults": [{"status": N, "body"?: ..., "headers"?: {...}, "reset_in"?: s}]}
    answers the next requests (nothing applied; a 429 with reset_in gets the headers).
  * Refusals: {"reject_field": F, "reject_pattern": P} refuses an attributes object
    whose F matches P (re.search) with an `errors` entry carrying its index.
  * Control: GET /_mock/requests, GET /_mock/users, GET /_mock/stats,
    DELETE /_mock/requests, POST /_mock/reset.
"""

import argparse
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_PER_ARRAY = 75
MAX_OBJECTS = 75
MAX_DELETES = 50
MAX_BODY = 4 * 1024 * 1024
IDENTIFIERS = ("external_id", "braze_id", "user_alias", "email", "phone")
DATEISH = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


class State:
    def __init__(self, token):
        self.token = token
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = []
        self.users = {}  # identifier kind + ":" + value -> attributes
        self.faults = []
        self.reject_field = None
        self.reject_pattern = None
        self.rate_limit = None
        self.window_start = 0.0
        self.window_count = 0
        self.blocked_until = 0.0
        self.stats = {"track": 0, "delete": 0, "throttled": 0, "early_after_429": 0, "deleted": 0}


def identifier(obj):
    """(kind, value) of the one identifier of an object, or an error text."""
    found = [k for k in IDENTIFIERS if k in obj]
    if not found:
        return None, "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
    # email and phone are also profile attributes: only the id kinds exclude each other.
    ids = [k for k in found if k in ("external_id", "braze_id", "user_alias")]
    if len(ids) > 1:
        return None, f"only one of external_id, braze_id and user_alias may be given, got {', '.join(ids)}"
    kind = found[0]
    value = obj[kind]
    if kind == "user_alias":
        if not isinstance(value, dict) or set(value) != {"alias_name", "alias_label"}:
            return None, "user_alias must be {alias_name, alias_label}"
        value = f"{value['alias_name']}/{value['alias_label']}"
    elif not isinstance(value, str) or not value:
        return None, f"{kind} must be a non-empty string"
    return (kind, value), None


class Handler(MockHandler):
    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        if self.path.startswith("/_mock/"):
            return self.control(text)
        state = self.server.state
        with state.lock:
            entry = {"method": self.command, "path": self.path, "at": time.time(),
                     "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text,
                     "contract_errors": []}
            state.requests.append(entry)
            return self.api(state, entry, text)

    def throttle_headers(self, state, reset_at):
        return {"X-RateLimit-Limit": state.rate_limit["limit"] if state.rate_limit else 3000,
                "X-RateLimit-Remaining": 0, "X-RateLimit-Reset": int(reset_at)}

    def api(self, state, entry, text):
        errors = entry["contract_errors"]
        now = time.time()
        if now < state.blocked_until:
            state.stats["early_after_429"] += 1
        if self.command != "POST" or self.path not in ("/users/track", "/users/delete"):
            return self.send(404, {"message": "Not Found"})
        if self.headers.get("Authorization") != f"Bearer {state.token}":
            return self.send(401, {"message": "Invalid API key: a REST API key is required"})
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            errors.append("Content-Type is not application/json")
        if state.faults:
            fault = state.faults.pop(0)
            headers = dict(fault.get("headers") or {})
            if fault["status"] == 429 and "reset_in" in fault:
                reset_at = int(now + fault["reset_in"]) + 1
                state.blocked_until = reset_at
                headers.update(self.throttle_headers(state, reset_at))
                state.stats["throttled"] += 1
            return self.send(fault["status"], fault.get("body", {"message": "fault"}), headers)
        if state.rate_limit:
            window = state.rate_limit["window_s"]
            if now - state.window_start >= window:
                state.window_start, state.window_count = now, 0
            state.window_count += 1
            if state.window_count > state.rate_limit["limit"]:
                reset_at = int(state.window_start + window) + 1
                state.blocked_until = reset_at
                state.stats["throttled"] += 1
                return self.send(429, {"message": "Rate limit exceeded"}, self.throttle_headers(state, reset_at))
        if len(text.encode()) > MAX_BODY:
            return self.send(413, {"message": "Payload too large"})
        try:
            body = json.loads(text)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            errors.append(f"invalid JSON: {exc}")
            return self.send(400, {"message": "Invalid JSON", "errors": [str(exc)]})
        if self.path == "/users/track":
            return self.track(state, body, errors)
        return self.delete(state, body, errors)

    def track(self, state, body, errors):
        state.stats["track"] += 1
        fatal = []
        total = 0
        for name in body:
            if name not in ("attributes", "events", "purchases"):
                fatal.append(f"unknown field {name}")
        for name in ("attributes", "events", "purchases"):
            items = body.get(name, [])
            if not isinstance(items, list):
                fatal.append(f"{name} must be an array")
                continue
            if len(items) > MAX_PER_ARRAY:
                fatal.append(f"{name} holds {len(items)} objects, at most {MAX_PER_ARRAY} are allowed")
            total += len(items)
        if total > MAX_OBJECTS:
            fatal.append(f"{total} objects in one request, at most {MAX_OBJECTS} are allowed")
        if total == 0:
            fatal.append("no attributes, events or purchases were given")
        if fatal:
            errors.extend(fatal)
            return self.send(400, {"message": "Invalid request", "errors": fatal})
        out = []
        processed = 0
        for index, obj in enumerate(body.get("attributes", [])):
            if not isinstance(obj, dict):
                out.append({"type": "attributes must be objects", "input_array": "attributes", "index": index})
                continue
            ident, problem = identifier(obj)
            if problem:
                out.append({"type": problem, "input_array": "attributes", "index": index})
                continue
            if self.refused(state, obj):
                out.append({"type": f"Invalid value for {state.reject_field}",
                            "input_array": "attributes", "index": index})
                continue
            for k, v in obj.items():
                if isinstance(v, str) and DATEISH.match(v) and not ISO_DATETIME.match(v):
                    errors.append(f"attributes[{index}].{k}: date-time {v!r} is not ISO 8601")
            if "_update_existing_only" in obj and not isinstance(obj["_update_existing_only"], bool):
                errors.append(f"attributes[{index}]._update_existing_only must be a boolean")
            key = f"{ident[0]}:{ident[1]}"
            if obj.get("_update_existing_only") is True and key not in state.users:
                processed += 1
                continue
            user = state.users.setdefault(key, {})
            for k, v in obj.items():
                if k == "_update_existing_only":
                    continue
                if v is None:
                    user.pop(k, None)
                else:
                    user[k] = v
            processed += 1
        for index, obj in enumerate(body.get("events", [])):
            if not isinstance(obj, dict) or "name" not in obj or "time" not in obj:
                out.append({"type": "events need name and time", "input_array": "events", "index": index})
        answer = {"message": "success", "attributes_processed": processed}
        if out:
            answer["errors"] = out
        return self.send(201, answer)

    def refused(self, state, obj):
        if state.reject_field is None:
            return False
        value = obj.get(state.reject_field)
        return value is not None and re.search(state.reject_pattern, str(value)) is not None

    def delete(self, state, body, errors):
        state.stats["delete"] += 1
        kinds = [k for k in ("external_ids", "user_aliases", "braze_ids", "email_addresses", "phone_numbers")
                 if k in body]
        problem = None
        if len(kinds) != 1 or len(body) != 1:
            problem = "exactly one identifier kind must be given"
        elif not isinstance(body[kinds[0]], list) or not body[kinds[0]]:
            problem = f"{kinds[0]} must be a non-empty array"
        elif len(body[kinds[0]]) > MAX_DELETES:
            problem = f"at most {MAX_DELETES} identifiers per request"
        elif kinds[0] in ("external_ids", "braze_ids") and not all(isinstance(x, str) for x in body[kinds[0]]):
            problem = f"{kinds[0]} must hold strings"
        if problem:
            errors.append(problem)
            return self.send(400, {"message": problem, "errors": [problem]})
        prefix = {"external_ids": "external_id", "braze_ids": "braze_id"}.get(kinds[0], kinds[0])
        deleted = 0
        for value in body[kinds[0]]:
            if state.users.pop(f"{prefix}:{value}", None) is not None:
                deleted += 1
        state.stats["deleted"] += deleted
        return self.send(201, {"deleted": deleted, "message": "success"})

    def control(self, text):
        state = self.server.state
        path = self.path
        with state.lock:
            if path == "/_mock/requests" and self.command == "GET":
                return self.send(200, {"requests": state.requests})
            if path == "/_mock/requests" and self.command == "DELETE":
                state.requests = []
                return self.send(200, {"ok": True})
            if path == "/_mock/users" and self.command == "GET":
                return self.send(200, {"users": state.users})
            if path == "/_mock/stats" and self.command == "GET":
                return self.send(200, state.stats)
            if path == "/_mock/reset" and self.command == "POST":
                state.reset()
                return self.send(200, {"ok": True})
            if path == "/_mock/config" and self.command == "POST":
                config = json.loads(text or "{}")
                for key in config:
                    if key not in ("faults", "reject_field", "reject_pattern", "rate_limit"):
                        return self.send(400, {"error": f"unknown option {key}"})
                state.faults.extend(config.get("faults", []))
                if "reject_field" in config:
                    state.reject_field = config["reject_field"]
                    state.reject_pattern = config.get("reject_pattern", "")
                if "rate_limit" in config:
                    state.rate_limit = config["rate_limit"]
                    state.window_start, state.window_count = time.time(), 0
                return self.send(200, {"ok": True})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mock Braze REST API for revetl's braze destination.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--token", default="test-token")
    args = parser.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.token)
    return serve(server, "mock_braze", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

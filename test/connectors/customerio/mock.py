#!/usr/bin/env python3
"""Stateful mock of Customer.io's Track API (v2 batch, people), for revetl tests.

Usage:
    python3 test/connectors/customerio/mock.py [--port N] [--port-file PATH]
        [--site-id S] [--api-key K] [--openapi PATH]

Python standard library only (plus jsonschema with --openapi); binds 127.0.0.1.
Facts marked "ref" come from /work/shared/reference/destinations.md ("Customer.io Track
API") and the vendor's OpenAPI (/work/shared/vendor-specs/customerio/); "choice" marks
this mock's decisions where the sources are silent.

Customer.io behaviours emulated
  * Auth (ref): HTTP Basic "<site id>:<Track API key>" (--site-id, --api-key; default
    site-1 / test-key). Otherwise 401 {"meta": {"error": "Unauthorized request"}} (choice
    of body).
  * POST /api/v2/batch {"batch": [item, ...]} (ref): the request must be smaller than
    500 KB (else 400 {"meta": {"error": "batch request too large"}}, nothing applied,
    choice of status) and each item 32 KB or smaller (else that item is refused with
    reason "too_large", choice). Person items (ref): {"type": "person", "identifiers":
    exactly one of {id} | {email} | {cio_id}, "action": "identify" | "delete", ...}.
    identify merges "attributes" into the person (created when missing unless
    attributes._update is true; null removes an attribute, choice); delete removes the
    person (an unknown one is not an error, choice). People identified by email are found
    by their email attribute, case-insensitively (choice). Answers 200 {} when every item
    applied, 207 {"errors": [{"batch_index", "reason", "field", "message"}]} (ref) naming
    the refused items (the others applied).
  * Per-item refusals: an "email" attribute that is not an address (reason "invalid",
    field "email", choice), and config "reject": [{"field", "pattern", "reason"?,
    "message"?}] refuses identify items whose attribute or identifier matches (re.search).
  * Rate limit (ref: about 100 requests/s, 429 over it): config "rate_limit" requests per
    "rate_window_ms" (default none); over it 429 {"meta": {"error": "rate limit exceeded"}}
    with Retry-After (seconds until the window rolls) when config "retry_after_header" is
    true (default false: Customer.io documents no header). Requests sent before the
    window rolled after a 429 are counted in stats()["early_after_429"].
  * Contract (--openapi): each request body is checked against Customer.io's OpenAPI
    (test/lib/openapi.py); violations are kept in the journal ("contract_errors") and the
    request is refused with 400 {"meta": {"error": ...}} (choice).
  * Faults: config "faults": [{"status", "body"?, "headers"?}] queue; the next API request
    consumes one (nothing applied).
  * Journal: every API request {"seq", "method", "path", "headers", "body", "status",
    "contract_errors"?, "fault"?}.
  * Control API: GET /_mock/health, GET|DELETE /_mock/requests, GET /_mock/people,
    GET|POST /_mock/config, POST /_mock/reset, GET /_mock/stats. Unknown config keys -> 400.
"""

import argparse
import base64
import json
import os
import re
import sys
import threading
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, openapi_contract, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_REQUEST = 500 * 1000
MAX_ITEM = 32 * 1000
MAX_BODY = 16 * 1024 * 1024
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

DEFAULT_CONFIG = {
    "reject": [],
    "rate_limit": None,
    "rate_window_ms": 1000,
    "retry_after_header": False,
    "faults": [],
}


class State:
    def __init__(self, site_id, api_key):
        self.lock = threading.Lock()
        self.site_id, self.api_key = site_id, api_key
        self.reset()

    def reset(self):
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))
        self.people = {}  # cio_id -> {"id"?, "attributes"}
        self.next_cio = 1
        self.journal = []
        self.seq = 0
        self.window_start = time.monotonic()
        self.window_count = 0
        self.blocked_until = 0.0
        self.stats = {"requests": 0, "batches": 0, "items": 0, "rate_limited": 0, "early_after_429": 0,
                      "contract_violations": 0, "created": 0, "deleted": 0}

    def find(self, identifiers):
        if "cio_id" in identifiers:
            return self.people.get(str(identifiers["cio_id"]))
        for cio, p in self.people.items():
            if "id" in identifiers and p.get("id") == str(identifiers["id"]):
                return cio
            if "email" in identifiers and str(p["attributes"].get("email", "")).lower() == \
                    str(identifiers["email"]).lower():
                return cio
        return None

    def apply(self, index, item):
        """None when applied, else a 207 error entry."""
        def refused(reason, field, message):
            return {"batch_index": index, "reason": reason, "field": field, "message": message}
        if len(json.dumps(item, separators=(",", ":")).encode()) > MAX_ITEM:
            return refused("too_large", "", "each batch item must be 32kb or smaller")
        if not isinstance(item, dict) or item.get("type") != "person":
            return refused("invalid", "type", "only person items are supported by this mock")
        ids = item.get("identifiers")
        if not isinstance(ids, dict) or len(ids) != 1 or next(iter(ids)) not in ("id", "email", "cio_id"):
            return refused("invalid", "identifiers", "exactly one of id, email or cio_id is required")
        action = item.get("action")
        cio = self.find(ids)
        if action == "delete":
            if cio is not None:
                del self.people[cio]
                self.stats["deleted"] += 1
            return None
        if action != "identify":
            return refused("invalid", "action", f"unsupported action {action!r}")
        attrs = item.get("attributes") or {}
        for rule in self.config["reject"]:
            field = rule.get("field", "email")
            value = attrs.get(field, ids.get(field))
            if value is not None and re.search(rule["pattern"], str(value)):
                return refused(rule.get("reason", "invalid"), field, rule.get("message", f"invalid {field}"))
        email = attrs.get("email", ids.get("email"))
        if email is not None and not EMAIL_RE.match(str(email)):
            return refused("invalid", "email", "invalid email address")
        if cio is None:
            if attrs.get("_update"):
                return None  # update only: nobody is created (ref)
            cio = str(self.next_cio)
            self.next_cio += 1
            self.people[cio] = {"attributes": {}, "writes": 0}
            if "id" in ids:
                self.people[cio]["id"] = str(ids["id"])
            if "email" in ids:
                self.people[cio]["attributes"]["email"] = ids["email"]
            self.stats["created"] += 1
        person = self.people[cio]
        for k, v in attrs.items():
            if k == "_update":
                continue
            if v is None:
                person["attributes"].pop(k, None)
            else:
                person["attributes"][k] = v
        person["writes"] += 1
        return None


class Handler(MockHandler):
    json_content_type = "application/json; charset=utf-8"
    timeout = 120

    def handle_any(self):
        url = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            return self.send(413, {"meta": {"error": "request too large"}})
        raw = self.rfile.read(n) if n else b""
        if url.path.startswith("/_mock"):
            return self.control(url, raw)
        with self.server.state.lock:
            status, payload, headers = self.api(url, raw)
        self.send(status, payload, headers)

    def api(self, url, raw):
        state = self.server.state
        state.seq += 1
        state.stats["requests"] += 1
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        entry = {"seq": state.seq, "method": self.command, "path": url.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                 "bytes": len(raw), "status": None}
        state.journal.append(entry)

        def answer(status, payload, headers=None):
            entry["status"] = status
            return status, payload, headers or {}

        auth = self.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Basic "):
            try:
                ok = base64.b64decode(auth[6:]).decode() == f"{state.site_id}:{state.api_key}"
            except ValueError:
                ok = False
        if not ok:
            return answer(401, {"meta": {"error": "Unauthorized request"}})

        faults = state.config["faults"]
        if faults:
            f = faults.pop(0)
            entry["fault"] = True
            return answer(f["status"], f.get("body", {"meta": {"error": "mock fault"}}), f.get("headers"))

        now = time.monotonic()
        window_s = state.config["rate_window_ms"] / 1000.0
        if now - state.window_start >= window_s:
            state.window_start, state.window_count = now, 0
        limit = state.config["rate_limit"]
        if now < state.blocked_until:
            state.stats["early_after_429"] += 1
        if limit is not None and state.window_count >= limit:
            state.stats["rate_limited"] += 1
            retry = max(1, int(window_s - (now - state.window_start) + 0.999))
            state.blocked_until = state.window_start + window_s
            headers = {"Retry-After": retry} if state.config["retry_after_header"] else {}
            return answer(429, {"meta": {"error": "rate limit exceeded"}}, headers)
        state.window_count += 1

        if url.path != "/api/v2/batch":
            return answer(404, {"meta": {"error": "not found"}})
        if self.command != "POST":
            return answer(405, {"meta": {"error": "method not allowed"}})
        if self.server.contract is not None and body is not None:
            errors = self.server.contract.validate_request(self.command, url.path, body)
            if errors:
                entry["contract_errors"] = errors
                state.stats["contract_violations"] += 1
                return answer(400, {"meta": {"error": "; ".join(errors)[:1000]}})
        if len(raw) >= MAX_REQUEST:
            return answer(400, {"meta": {"error": "batch request too large"}})
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, list) or not batch:
            return answer(400, {"meta": {"error": "batch must be a non-empty array"}})
        state.stats["batches"] += 1
        errors = []
        for i, item in enumerate(batch):
            state.stats["items"] += 1
            e = state.apply(i, item)
            if e is not None:
                errors.append(e)
        if errors:
            return answer(207, {"errors": errors})
        return answer(200, {})

    def control(self, url, raw):
        state = self.server.state
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self.send(400, {"error": "invalid JSON"})
        with state.lock:
            p, c = url.path, self.command
            if p == "/_mock/health":
                return self.send(200, {"ok": True})
            if p == "/_mock/requests" and c == "GET":
                return self.send(200, {"requests": state.journal})
            if p == "/_mock/requests" and c == "DELETE":
                state.journal = []
                return self.send(200, {})
            if p == "/_mock/people":
                return self.send(200, {"people": [dict(v, cio_id=k) for k, v in state.people.items()]})
            if p == "/_mock/stats":
                return self.send(200, state.stats)
            if p == "/_mock/config" and c == "GET":
                return self.send(200, state.config)
            if p == "/_mock/config" and c == "POST":
                unknown = [k for k in body if k not in DEFAULT_CONFIG] if isinstance(body, dict) else ["?"]
                if unknown:
                    return self.send(400, {"error": f"unknown config keys: {unknown}"})
                for k, v in body.items():
                    if k == "faults":
                        state.config["faults"].extend(v)
                    else:
                        state.config[k] = v
                return self.send(200, state.config)
            if p == "/_mock/reset" and c == "POST":
                state.reset()
                return self.send(200, {})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock Customer.io Track API for revetl tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--site-id", default="site-1")
    ap.add_argument("--api-key", default="test-key")
    ap.add_argument("--openapi", help="validate request bodies against Customer.io's OpenAPI")
    args = ap.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.site_id, args.api_key)
    server.contract = openapi_contract(args.openapi)
    return serve(server, "mock_customerio", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

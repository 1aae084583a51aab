#!/usr/bin/env python3
"""Stateful mock of Marketo Engage's REST API (Identity token endpoint, Sync Leads, Delete Leads,
static list membership), for revetl tests.

Usage:
    python3 test/connectors/marketo/mock.py [--port N] [--port-file PATH] [--openapi PATH]

Python standard library only (plus jsonschema with --openapi); binds 127.0.0.1. Facts marked
"ref" come from /work/shared/reference/destinations.md sections 8 and 9 and the vendor's Swagger
contract (/work/shared/vendor-specs/marketo/); "choice" marks this mock's decisions where the
sources are silent.

Marketo behaviours emulated
  * GET|POST /identity/oauth/token (ref): grant_type=client_credentials, client_id,
    client_secret in the query or a form body (CLIENT_ID / CLIENT_SECRET below). Answers
    {access_token, token_type: "bearer", expires_in, scope}; asking again before expiry returns
    the same token with the remaining lifetime (ref). Bad credentials -> HTTP 401
    {"error": "unauthorized", "error_description": "Bad client credentials"} (ref status).
    Tokens live config "token_ttl_s" (default 3600, ref); POST /_mock/expire_tokens expires
    every token (the switch).
  * Every REST answer is HTTP 200 (ref) with {requestId, success, result?, errors?}:
    no or unknown token -> 601 "Access token invalid"; expired -> 602 "Access token expired"
    (ref codes); Content-Type other than application/json -> 612 (ref); body not JSON -> 609.
  * Limits (ref): "rate_limit" calls per "rate_window_ms" (default 100 per 20000), sliding ->
    606 "Max rate limit '100' exceeded with in '20' secs"; "daily_quota" calls (default 50000)
    -> 607 "Daily quota reached"; more than "max_concurrent" (default 10) calls at once -> 615
    "Concurrent access limit reached". Calls refused with 601/602 count against neither (ref).
    Config "delay_ms" holds every API answer that long (to make calls overlap).
  * POST /rest/v1/leads.json (ref): {action (createOrUpdate default | createOnly | updateOnly |
    createDuplicate), lookupField (default email), partitionName?, input: [1..300]} (more ->
    1003 "Batch size exceeds 300", choice of code). Results in input order: {id, status:
    created|updated} or {status: skipped, reasons: [{code, message}]}: 1004 "Lead not found"
    (updateOnly), 1005 "Lead already exists" (createOnly), 1006 "Field '<f>' not found" (a
    field in config "unknown_fields"), 1003 "Value for lookup field '<f>' missing" (choice of
    code), 1036 "Duplicate key in input" for a repeated lookup value in one call (ref code).
    lookupField "id" finds leads by their id (updateOnly only, ref). Email lookups are
    case-insensitive (choice). Lead ids from 1001 (choice). Config "invalid_emails": true
    makes an email without "@" skipped with 1003 "Invalid email" (choice of trigger).
  * POST /rest/v1/leads/delete.json {"input": [{"id"}]} (ref): <= 300; results {id, status:
    deleted} or {id, status: skipped, reasons: [{code: "1004", message: "Lead not found"}]}.
  * Static lists (ref paths and statuses): config "lists" names the static lists that exist
    (ids). POST /rest/v1/lists/{listId}/leads.json adds, DELETE on the same path removes,
    the lead ids given as repeated "id" query parameters and/or the ListOperationRequest body
    {"input": [{"id"}]} (when both are given they must name the same ids, else 1003: choice).
    At most 300 ids (more -> 1003 "Batch size exceeds 300", choice of code). A list not in
    "lists" -> request-level 1013 "Static list not found" (choice: the reference lists 1013 as
    object not found). Results {id, status: added|removed} or {id, status: skipped, reasons:
    [{code, message}]}: 1004 "Lead not found" (no such lead), 1015 "Lead not in list" (a
    removal of a non-member) (ref codes). Adding a member again answers added (choice).
    Deleting a lead takes it out of every list. GET /_mock/lists gives each list's member ids.
  * Contract (--openapi): each request body (and query) is checked against Marketo's Swagger
    contract (test/lib/openapi.py); violations are kept in the journal entry ("contract_errors") and the
    call is refused with 609 (choice).
  * Faults: config "faults": [{"code", "message"?, "path"?} | {"status", "body"?, "path"?} |
    {"reset": true, "path"?}] queue; the next REST call (whose path starts with "path", when
    given) consumes one: a request-level error code in an HTTP 200, an HTTP answer, or a
    dropped connection.
  * Journal: every request {"seq", "method", "path", "query", "headers", "body", "status",
    "code"? (the request-level error code), "contract_errors"?, "fault"?}.
  * Control API: GET /_mock/health, GET|DELETE /_mock/requests, GET /_mock/leads, GET /_mock/lists,
    GET|POST
    /_mock/config, POST /_mock/expire_tokens, POST /_mock/reset, GET /_mock/stats. Unknown
    config keys -> 400.
"""

import argparse
import json
import os
import sys
import threading
import time
import re
import uuid
from collections import deque
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, openapi_contract, serve  # noqa: E402


HOST = "127.0.0.1"
CLIENT_ID = "mkto-client-id"
CLIENT_SECRET = "mkto-client-secret"
MAX_LEADS = 300
FIRST_ID = 1001
MAX_BODY = 16 * 1024 * 1024
ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")

DEFAULT_CONFIG = {
    "token_ttl_s": 3600,
    "rate_limit": 100,
    "rate_window_ms": 20000,
    "daily_quota": 50000,
    "max_concurrent": 10,
    "delay_ms": 0,
    "unknown_fields": [],
    "invalid_emails": True,
    "lists": [],
    "faults": [],
}
LIST_PATH = re.compile(r"^/rest/v1/lists/([0-9]+)/leads\.json$")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))
        self.leads = {}  # id -> lead
        self.members = {}  # static list id -> set of lead ids
        self.next_id = FIRST_ID
        self.tokens = {}  # token -> expiry (monotonic)
        self.current = None
        self.journal = []
        self.seq = 0
        self.calls = deque()  # monotonic times of counted calls (sliding window)
        self.daily = 0
        self.in_flight = 0
        self.stats = {"requests": 0, "tokens_issued": 0, "token_expired": 0, "token_invalid": 0,
                      "rate_limited": 0, "quota_refused": 0, "concurrency_refused": 0, "created": 0,
                      "updated": 0, "deleted": 0, "skipped": 0, "added": 0, "removed": 0, "contract_violations": 0, "max_in_flight": 0}

    def token(self):
        now = time.monotonic()
        if self.current and self.tokens.get(self.current, 0) > now:
            return self.current, int(self.tokens[self.current] - now)
        self.current = uuid.uuid4().hex + ":ab"
        ttl = self.config["token_ttl_s"]
        self.tokens[self.current] = now + ttl
        self.stats["tokens_issued"] += 1
        return self.current, ttl

    def find(self, field, value):
        if value is None:
            return []
        if field == "id":
            lead = self.leads.get(int(value)) if str(value).isdigit() else None
            return [lead] if lead else []
        want = str(value).lower() if field == "email" else str(value)
        out = []
        for lead in self.leads.values():
            have = lead.get(field)
            if have is None:
                continue
            if (str(have).lower() if field == "email" else str(have)) == want:
                out.append(lead)
        return out

    def sync(self, body):
        action = body.get("action") or "createOrUpdate"
        field = body.get("lookupField") or "email"
        seen = set()
        results = []
        for rec in body["input"]:
            def skip(code, message):
                self.stats["skipped"] += 1
                results.append({"status": "skipped", "reasons": [{"code": code, "message": message}]})
            if not isinstance(rec, dict):
                skip("1003", "Invalid lead")
                continue
            unknown = [f for f in rec if f in self.config["unknown_fields"]]
            if unknown:
                skip("1006", f"Field '{unknown[0]}' not found")
                continue
            value = rec.get(field)
            if value in (None, "") and action != "createDuplicate":
                skip("1003", f"Value for lookup field '{field}' missing")
                continue
            k = str(value).lower() if field == "email" else str(value)
            if k in seen:
                skip("1036", "Duplicate key in input")
                continue
            seen.add(k)
            email = rec.get("email")
            if self.config["invalid_emails"] and email is not None and "@" not in str(email):
                skip("1003", "Invalid email")
                continue
            found = [] if action == "createDuplicate" else self.find(field, value)
            if len(found) > 1:
                skip("1007", "Multiple lead match lookup criteria")
                continue
            fields = {f: v for f, v in rec.items() if f != "id"}
            if found:
                if action == "createOnly":
                    skip("1005", "Lead already exists")
                    continue
                found[0].update(fields)
                self.stats["updated"] += 1
                results.append({"id": found[0]["id"], "status": "updated"})
                continue
            if action == "updateOnly":
                skip("1004", "Lead not found")
                continue
            lead = dict(fields, id=self.next_id)
            if body.get("partitionName"):
                lead["_partition"] = body["partitionName"]
            self.next_id += 1
            self.leads[lead["id"]] = lead
            self.stats["created"] += 1
            results.append({"id": lead["id"], "status": "created"})
        return results

    def delete(self, body):
        results = []
        for rec in body["input"]:
            lid = rec.get("id") if isinstance(rec, dict) else None
            if isinstance(lid, int) and self.leads.pop(lid, None) is not None:
                for members in self.members.values():
                    members.discard(lid)
                self.stats["deleted"] += 1
                results.append({"id": lid, "status": "deleted"})
            else:
                results.append({"id": lid, "status": "skipped",
                                "reasons": [{"code": "1004", "message": "Lead not found"}]})
        return results

    def membership(self, list_id, ids, add):
        members = self.members.setdefault(list_id, set())
        results = []
        for lid in ids:
            if lid not in self.leads:
                self.stats["skipped"] += 1
                results.append({"id": lid, "status": "skipped",
                                "reasons": [{"code": "1004", "message": "Lead not found"}]})
            elif add:
                members.add(lid)
                self.stats["added"] += 1
                results.append({"id": lid, "status": "added"})
            elif lid in members:
                members.discard(lid)
                self.stats["removed"] += 1
                results.append({"id": lid, "status": "removed"})
            else:
                self.stats["skipped"] += 1
                results.append({"id": lid, "status": "skipped",
                                "reasons": [{"code": "1015", "message": "Lead not in list"}]})
        return results


class Handler(MockHandler):
    timeout = 120

    def send(self, status, payload, headers=None):
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        url = urlsplit(self.path)
        raw = self.read_body()
        if url.path.startswith("/_mock"):
            return self.control(url, raw)
        state = self.server.state
        if url.path == "/identity/oauth/token":
            with state.lock:
                return self.identity(url, raw)
        with state.lock:
            state.in_flight += 1
            state.stats["max_in_flight"] = max(state.stats["max_in_flight"], state.in_flight)
            concurrent = state.in_flight
            delay = state.config["delay_ms"]
        try:
            if delay:
                time.sleep(delay / 1000.0)
            with state.lock:
                status, payload, entry = self.api(url, raw, concurrent)
        finally:
            with state.lock:
                state.in_flight -= 1
        if status is None:  # reset fault
            self.reset_connection()
            return
        self.send(status, payload)

    def identity(self, url, raw):
        state = self.server.state
        state.seq += 1
        params = parse_qs(url.query)
        ctype = self.headers.get("Content-Type", "")
        if raw and ctype.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qs(raw.decode()))
        p = {k: v[0] for k, v in params.items()}
        entry = {"seq": state.seq, "method": self.command, "path": url.path, "query": "",
                 "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"},
                 "body": {k: ("***" if k == "client_secret" else v) for k, v in p.items()}, "status": None}
        state.journal.append(entry)
        if p.get("grant_type") != "client_credentials" or p.get("client_id") != CLIENT_ID or \
                p.get("client_secret") != CLIENT_SECRET:
            entry["status"] = 401
            return self.send(401, {"error": "unauthorized", "error_description": "Bad client credentials"})
        token, ttl = state.token()
        entry["status"] = 200
        return self.send(200, {"access_token": token, "token_type": "bearer", "expires_in": ttl,
                               "scope": "apis@example.com"})

    def api(self, url, raw, concurrent):
        state = self.server.state
        state.seq += 1
        state.stats["requests"] += 1
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        entry = {"seq": state.seq, "method": self.command, "path": url.path, "query": url.query,
                 "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"},
                 "body": body, "status": None}
        state.journal.append(entry)
        request_id = f"{state.seq:x}#{uuid.uuid4().hex[:11]}"

        def ok(result):
            entry["status"] = 200
            return 200, {"requestId": request_id, "success": True, "result": result}, entry

        def error(code, message):
            entry["status"] = 200
            entry["code"] = code
            return 200, {"requestId": request_id, "success": False,
                         "errors": [{"code": code, "message": message}]}, entry

        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token is None or token not in state.tokens:
            state.stats["token_invalid"] += 1
            return error("601", "Access token invalid")
        if state.tokens[token] <= time.monotonic():
            state.stats["token_expired"] += 1
            return error("602", "Access token expired")

        faults = state.config["faults"]
        for i, f in enumerate(faults):
            if url.path.startswith(f.get("path", "")):
                del faults[i]
                entry["fault"] = True
                if f.get("reset"):
                    return None, None, entry
                if "code" in f:
                    return error(f["code"], f.get("message", "Mock fault"))
                entry["status"] = f["status"]
                return f["status"], f.get("body"), entry

        now = time.monotonic()
        window = state.config["rate_window_ms"] / 1000.0
        while state.calls and now - state.calls[0] >= window:
            state.calls.popleft()
        if concurrent > state.config["max_concurrent"]:
            state.stats["concurrency_refused"] += 1
            return error("615", "Concurrent access limit reached")
        if state.daily >= state.config["daily_quota"]:
            state.stats["quota_refused"] += 1
            return error("607", "Daily quota reached")
        if len(state.calls) >= state.config["rate_limit"]:
            state.stats["rate_limited"] += 1
            return error("606", f"Max rate limit '{state.config['rate_limit']}' exceeded with in "
                                f"'{int(window)}' secs")
        state.calls.append(now)
        state.daily += 1

        list_match = LIST_PATH.match(url.path)
        if self.command != "POST" and not (list_match and self.command == "DELETE"):
            return error("610", "Requested resource not found")
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return error("612", "Invalid Content Type")
        if not isinstance(body, dict) and not (list_match and body is None and not raw):
            return error("609", "Invalid JSON")
        if self.server.contract is not None:
            errors = []
            if body is not None or self.command == "DELETE":
                errors += self.server.contract.validate_request(self.command, url.path, body)
            if list_match:
                errors += self.server.contract.validate_query(self.command, url.path, url.query)
            if errors:
                entry["contract_errors"] = errors
                state.stats["contract_violations"] += 1
                return error("609", "; ".join(errors)[:1000])
        records = body.get("input")
        if url.path in ("/rest/v1/leads.json", "/rest/v1/leads/delete.json"):
            if not isinstance(records, list) or not records:
                return error("701", "'input' cannot be blank")
            if len(records) > MAX_LEADS:
                return error("1003", f"Batch size exceeds {MAX_LEADS}")
        if url.path == "/rest/v1/leads.json":
            action = body.get("action") or "createOrUpdate"
            if action not in ACTIONS:
                return error("1003", f"Invalid action '{action}'")
            if body.get("lookupField") == "id" and action != "updateOnly":
                return error("1003", "Lookup field 'id' is only allowed with updateOnly")
            return ok(state.sync(body))
        if url.path == "/rest/v1/leads/delete.json":
            return ok(state.delete(body))
        if list_match:
            list_id = int(list_match.group(1))
            if list_id not in state.config["lists"]:
                return error("1013", "Static list not found")
            try:
                from_query = [int(v) for part in parse_qs(url.query).get("id", []) for v in part.split(",")]
                from_body = [rec["id"] for rec in (body or {}).get("input", [])]
                if not all(isinstance(i, int) for i in from_body):
                    raise ValueError
            except (ValueError, TypeError, KeyError):
                return error("1003", "Invalid lead id")
            if from_query and from_body and from_query != from_body:
                return error("1003", "The ids of the query and of the body differ")
            ids = from_query or from_body
            if not ids:
                return error("701", "'id' cannot be blank")
            if len(ids) > MAX_LEADS:
                return error("1003", f"Batch size exceeds {MAX_LEADS}")
            return ok(state.membership(list_id, ids, self.command == "POST"))
        return error("610", "Requested resource not found")

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
            if p == "/_mock/leads":
                return self.send(200, {"leads": list(state.leads.values())})
            if p == "/_mock/lists":
                return self.send(200, {"lists": {str(k): sorted(v) for k, v in state.members.items()}})
            if p == "/_mock/stats":
                return self.send(200, dict(state.stats, daily=state.daily))
            if p == "/_mock/config" and c == "GET":
                return self.send(200, state.config)
            if p == "/_mock/config" and c == "POST":
                unknown = [k for k in body if k not in DEFAULT_CONFIG]
                if unknown or not isinstance(body, dict):
                    return self.send(400, {"error": f"unknown config keys: {unknown}"})
                for k, v in body.items():
                    if k == "faults":
                        state.config["faults"].extend(v)
                    else:
                        state.config[k] = v
                return self.send(200, state.config)
            if p == "/_mock/expire_tokens" and c == "POST":
                for t in state.tokens:
                    state.tokens[t] = 0
                return self.send(200, {"expired": len(state.tokens)})
            if p == "/_mock/reset" and c == "POST":
                state.reset()
                return self.send(200, {})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock Marketo REST API for revetl tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--openapi", help="validate request bodies against Marketo's Swagger contract")
    args = ap.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State()
    server.contract = openapi_contract(args.openapi)
    return serve(server, "mock_marketo", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Stateful mock of Pipedrive's API v2 persons and organizations, for revetl tests.

Usage:
    python3 test/connectors/pipedrive/mock.py [--port N] [--port-file PATH]
        [--token T] [--oauth-token T] [--openapi PATH]

Python standard library only (plus PyYAML and jsonschema with --openapi); binds 127.0.0.1.
Facts marked "ref" come from /work/shared/reference/destinations.md section 13 (Pipedrive)
and Pipedrive's OpenAPI v2 contract (/work/shared/vendor-specs/pipedrive/, SOURCE.md);
"choice" marks this mock's decisions where the sources are silent.

Pipedrive behaviours emulated
  * Auth (ref): header "x-api-token: <--token>" (default test-token) or "Authorization:
    Bearer <--oauth-token>" (default oauth-token); otherwise, or after POST /_mock/revoke,
    401 {"success": false, "error": "unauthorized access", "errorCode": 401, "error_info":
    "Please check developers.pipedrive.com for more information about Pipedrive API."}.
  * OAuth (ref: SDK configuration.ts; the endpoint lives on oauth.pipedrive.com, here on the
    mock itself, choice): POST /oauth/token, form grant_type=refresh_token&refresh_token=R,
    the client as Basic base64(client_id:client_secret) or in the form (client "pd-client",
    secret "pd-client-secret", refresh token "pd-refresh-token") -> {"access_token",
    "token_type": "Bearer", "expires_in", "refresh_token", "scope", "api_domain": the mock's
    own URL}; an unknown client -> 401 {"error": "invalid_client"}, another refresh token ->
    400 {"error": "invalid_grant"}. POST /_mock/expire_tokens ends every access token issued
    so far (a 401 until the client refreshes).
  * Envelope (ref): {"success": true, "data": {...}}; errors {"success": false, "error",
    "error_info", "data": null, "additional_data": null} with "code" where given.
  * Persons and organizations (ref): POST /api/v2/{persons|organizations} creates (integer
    ids from 1, choice); PATCH /api/v2/{object}/{id} updates (custom_fields merged, a null
    clears, ref); DELETE /api/v2/{object}/{id} marks deleted -> {"success": true, "data":
    {"id"}}; a deleted or unknown id -> 404 "Person not found" / "Organization not found"
    (choice for deleted). An organization needs a name (contract). custom_fields keys must
    be configured ("person_fields" / "organization_fields", 40-hex keys): another key ->
    400 code "ERR_UNKNOWN_CUSTOM_FIELD" (choice of code).
  * Search (ref): GET /api/v2/{object}/search?term=&fields=&exact_match= -> {"success":
    true, "data": {"items": [{"result_score", "item": {"id", "type", "name", "emails"?,
    ...}}]}, "additional_data": {"next_cursor": null}}; fields email, phone, name,
    custom_fields (persons), name, custom_fields (organizations); exact_match compares
    whole values without case, otherwise a substring (term >= 2 characters). Deleted records
    are not found. Eventually consistent (ref [?]): config "search_delay_ms" hides records
    created less than that long ago.
  * Per-record failures (choice of trigger): config "fail_records": [{"field", "pattern",
    "status"?, "error"?, "code"?}] for POST/PATCH bodies ("email" matches emails[].value).
  * Rate limit (ref): "rate_limit" requests per "rate_window_ms" (default 80 per 2000) and
    "search_rate_limit" searches per window (default 10, ref: Search API 10 per 2 s); every
    answer carries x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset (seconds to
    the window's end); over -> 429 {"success": false, "error": "Request over limit"}.
    "daily_budget" (default null: none) counts every request: each answer carries
    x-daily-requests-left, and when spent -> 429 "Daily request limit reached" with
    x-daily-requests-left 0 (choice of wording).
  * Contract (--openapi): request bodies and query parameters are checked against the v2
    contract (test/lib/openapi.py); violations are journaled ("contract_errors") and the
    request is refused with 400 (choice).
  * Faults: config "faults": [{"status", "body"?, "headers"?, "path"?} | {"reset": true,
    "path"?}] queue; the next API request (whose path starts with "path") consumes one.
  * Journal: every API request {"seq", "method", "path", "query", "headers", "body",
    "status", "contract_errors"?, "fault"?}.
  * Control API: GET /_mock/health, GET|DELETE /_mock/requests, GET /_mock/records?object=,
    GET|POST /_mock/config, POST /_mock/revoke, POST /_mock/reset, GET /_mock/stats.
"""

import argparse
import base64
import json
import math
import os
import re
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, openapi_contract, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_BODY = 4 * 1024 * 1024
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
KEY_A = "0123456789abcdef0123456789abcdef01234567"

DEFAULT_CONFIG = {
    "fail_records": [],
    "search_delay_ms": 0,
    "rate_limit": 80,
    "search_rate_limit": 10,
    "rate_window_ms": 2000,
    "daily_budget": None,
    "person_fields": [KEY_A],
    "organization_fields": [KEY_A],
    "faults": [],
}
SEARCH_FIELDS = {"persons": {"email", "phone", "name", "custom_fields", "notes"},
                 "organizations": {"name", "custom_fields", "address", "notes"}}


def failure(error, code=None):
    body = {"success": False, "error": error, "error_info": ERROR_INFO, "data": None, "additional_data": None}
    if code:
        body["code"] = code
    return body


class State:
    def __init__(self, token, oauth_token):
        self.lock = threading.Lock()
        self.token, self.oauth_token = token, oauth_token
        self.reset()

    def reset(self):
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))
        self.records = {"persons": {}, "organizations": {}}
        self.next_id = 1
        self.revoked = False
        self.journal = []
        self.seq = 0
        self.window_start = time.time()
        self.window_count = 0
        self.window_searches = 0
        self.daily_used = 0
        self.issued = set()  # access tokens from /oauth/token still valid
        self.token_requests = 0
        self.stats = {"requests": 0, "rate_limited": 0, "daily_refused": 0, "searches": 0, "creates": 0,
                      "updates": 0, "deletes": 0, "contract_violations": 0}


def values(record, field):
    if field == "email":
        return [e.get("value") for e in record.get("emails", []) if isinstance(e, dict)]
    if field == "phone":
        return [p.get("value") for p in record.get("phones", []) if isinstance(p, dict)]
    if field == "custom_fields":
        return list(record.get("custom_fields", {}).values())
    return [record.get(field)]


class Handler(MockHandler):
    json_content_type = "application/json; charset=utf-8"
    max_body = MAX_BODY
    timeout = 120

    def api(self, url, raw):
        state = self.server.state
        state.seq += 1
        state.stats["requests"] += 1
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        entry = {"seq": state.seq, "method": self.command, "path": url.path, "query": url.query,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "status": None}
        state.journal.append(entry)
        rate = {}

        def answer(status, payload, headers=None):
            entry["status"] = status
            return status, payload, {**rate, **(headers or {})}

        if url.path == "/oauth/token" and self.command == "POST":
            return self.token_endpoint(raw, answer)
        token_ok = self.headers.get("x-api-token") == state.token
        auth = self.headers.get("Authorization", "")
        bearer_ok = auth == f"Bearer {state.oauth_token}" or (auth.startswith("Bearer ") and auth[7:] in state.issued)
        if state.revoked or not (token_ok or bearer_ok):
            return answer(401, {**failure("unauthorized access"), "errorCode": 401})

        faults = state.config["faults"]
        for i, f in enumerate(faults):
            if url.path.startswith(f.get("path", "")):
                del faults[i]
                entry["fault"] = True
                if f.get("reset"):
                    return None, None, None
                return answer(f["status"], f.get("body", failure("Mock fault")), f.get("headers"))

        now = time.time()
        budget = state.config["daily_budget"]
        if budget is not None:
            if state.daily_used >= budget:
                state.stats["daily_refused"] += 1
                return answer(429, failure("Daily request limit reached"), {"x-daily-requests-left": 0})
            state.daily_used += 1
            rate["x-daily-requests-left"] = budget - state.daily_used
        window_s = state.config["rate_window_ms"] / 1000.0
        if now - state.window_start >= window_s:
            state.window_start, state.window_count, state.window_searches = now, 0, 0
        limit = state.config["rate_limit"]
        search = url.path.endswith("/search")
        if limit is not None:
            reset_in = max(1, int(math.ceil(state.window_start + window_s - now)))
            over = state.window_count >= limit or (search and state.window_searches >= state.config["search_rate_limit"])
            if over:
                state.stats["rate_limited"] += 1
                rate.update({"x-ratelimit-limit": limit, "x-ratelimit-remaining": 0, "x-ratelimit-reset": reset_in})
                return answer(429, failure("Request over limit"))
            state.window_count += 1
            state.window_searches += 1 if search else 0
            rate.update({"x-ratelimit-limit": limit, "x-ratelimit-remaining": max(0, limit - state.window_count),
                         "x-ratelimit-reset": reset_in})

        m = re.fullmatch(r"/api/v2/(persons|organizations)(?:/(search|[^/]+))?", url.path)
        if not m:
            return answer(404, failure("Not found"))
        obj, tail = m.group(1), m.group(2)
        contract = self.server.contract
        if contract is not None:
            path = url.path[len("/api/v2"):]
            errors = contract.validate_query(self.command, path, url.query)
            if body is not None:
                errors += contract.validate_request(self.command, path, body)
            if errors:
                entry["contract_errors"] = errors
                state.stats["contract_violations"] += 1
                return answer(400, failure("; ".join(errors)[:1000], "ERR_SCHEMA_VALIDATION_FAILED"))

        store = state.records[obj]
        noun = "Person" if obj == "persons" else "Organization"
        if tail == "search" and self.command == "GET":
            state.stats["searches"] += 1
            q = parse_qs(url.query)
            term = q.get("term", [""])[0]
            exact = q.get("exact_match", ["false"])[0] == "true"
            fields = q.get("fields", [",".join(SEARCH_FIELDS[obj])])[0].split(",")
            if len(term) < (1 if exact else 2):
                return answer(400, failure("Search term must be at least 2 characters long"))
            hidden_after = now - state.config["search_delay_ms"] / 1000.0
            items = []
            for r in store.values():
                if r.get("_deleted") or r["_created"] > hidden_after:
                    continue
                vals = [str(v) for f in fields for v in values(r, f) if v is not None]
                hit = any(v.lower() == term.lower() if exact else term.lower() in v.lower() for v in vals)
                if hit:
                    item = {"id": r["id"], "type": obj[:-1], "name": r.get("name")}
                    if obj == "persons":
                        item["emails"] = values(r, "email")
                        item["phones"] = values(r, "phone")
                    items.append({"result_score": 1.0, "item": item})
            return answer(200, {"success": True, "data": {"items": items}, "additional_data": {"next_cursor": None}})
        if tail is None and self.command == "POST":
            error = self.refused(obj, body)
            if error:
                return answer(*error)
            rid = state.next_id
            state.next_id += 1
            record = {"id": rid, "_created": now, "writes": 0, "custom_fields": {}}
            store[rid] = record
            self.apply(record, body)
            state.stats["creates"] += 1
            return answer(200, {"success": True, "data": self.view(record)})
        if tail is not None and tail != "search":
            record = store.get(int(tail)) if tail.isdigit() else None
            if record is None or record.get("_deleted"):
                return answer(404, failure(f"{noun} not found"))
            if self.command == "PATCH":
                error = self.refused(obj, body)
                if error:
                    return answer(*error)
                self.apply(record, body)
                state.stats["updates"] += 1
                return answer(200, {"success": True, "data": self.view(record)})
            if self.command == "DELETE":
                record["_deleted"] = True
                state.stats["deletes"] += 1
                return answer(200, {"success": True, "data": {"id": record["id"]}})
            if self.command == "GET":
                return answer(200, {"success": True, "data": self.view(record)})
        return answer(405, failure("Method not allowed"))

    def token_endpoint(self, raw, answer):
        state = self.server.state
        state.token_requests += 1
        form = {k: v[-1] for k, v in parse_qs(raw.decode(errors="replace")).items()}
        client, secret = form.get("client_id"), form.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                client, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                client = None
        if (client, secret) != ("pd-client", "pd-client-secret"):
            return answer(401, {"error": "invalid_client", "error_description": "Invalid client"})
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != "pd-refresh-token":
            return answer(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
        token = "pd-access-" + os.urandom(8).hex()
        state.issued.add(token)
        return answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3599,
                            "refresh_token": "pd-refresh-token", "scope": "base,contacts:full",
                            "api_domain": f"http://{HOST}:{self.server.server_address[1]}"})

    def refused(self, obj, body):
        state = self.server.state
        if not isinstance(body, dict):
            return 400, failure("Invalid JSON body")
        known = state.config["person_fields" if obj == "persons" else "organization_fields"]
        for k in (body.get("custom_fields") or {}):
            if k not in known:
                return 400, failure(f"Custom field '{k}' does not exist", "ERR_UNKNOWN_CUSTOM_FIELD")
        for rule in state.config["fail_records"]:
            field = rule.get("field", "email")
            vals = values(body, field) if field in ("email", "phone") else [body.get(field)]
            if any(v is not None and re.search(rule["pattern"], str(v)) for v in vals):
                return rule.get("status", 400), failure(rule.get("error", "Invalid value"), rule.get("code"))
        return None

    @staticmethod
    def apply(record, body):
        for k, v in body.items():
            if k == "custom_fields" and isinstance(v, dict):
                for ck, cv in v.items():
                    if cv is None:
                        record["custom_fields"].pop(ck, None)
                    else:
                        record["custom_fields"][ck] = cv
            elif k != "id":
                record[k] = v
        record["writes"] += 1

    @staticmethod
    def view(record):
        return {k: v for k, v in record.items() if not k.startswith("_")}

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
            if p == "/_mock/records":
                obj = parse_qs(url.query).get("object", ["persons"])[0]
                return self.send(200, {"records": [{**self.view(r), "deleted": bool(r.get("_deleted"))}
                                                   for r in state.records.get(obj, {}).values()]})
            if p == "/_mock/stats":
                return self.send(200, {**state.stats, "token_requests": state.token_requests})
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
                state.issued.clear()
                return self.send(200, {})
            if p == "/_mock/revoke" and c == "POST":
                state.revoked = bool(body.get("revoked", True))
                return self.send(200, {"revoked": state.revoked})
            if p == "/_mock/reset" and c == "POST":
                state.reset()
                return self.send(200, {})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock Pipedrive API v2 (persons, organizations) for revetl tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token", default="test-token")
    ap.add_argument("--oauth-token", default="oauth-token")
    ap.add_argument("--openapi", help="validate requests against Pipedrive's OpenAPI v2 contract")
    args = ap.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.token, args.oauth_token)
    server.contract = openapi_contract(args.openapi)
    return serve(server, "mock_pipedrive", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

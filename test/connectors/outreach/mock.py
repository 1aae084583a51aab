#!/usr/bin/env python3
"""Stateful mock of Outreach's API v2 (JSON:API) for prospects and accounts, with its OAuth token
endpoint, for revetl tests.

Usage:
    python3 test/connectors/outreach/mock.py [--port N] [--port-file PATH] [--openapi PATH]

Python standard library only (plus jsonschema with --openapi); binds 127.0.0.1. Facts marked
"ref" come from /work/shared/reference/destinations.md sections 8 and 10 and the vendor's OpenAPI
contract (/work/shared/vendor-specs/outreach/); "choice" marks this mock's decisions where the
sources are silent.

Outreach behaviours emulated
  * POST /oauth/token (ref): form grant_type=refresh_token, client_id, client_secret,
    refresh_token (redirect_uri accepted and ignored). Answers {access_token, token_type:
    "bearer", expires_in: config "token_ttl_s" (default 7200, ref ~2 h), refresh_token,
    created_at}. Refresh tokens rotate (choice, as Outreach's docs allow): each refresh returns
    a new one and the old one dies -> 400 {"error": "invalid_grant"}. Wrong client -> 401
    {"error": "invalid_client"}. POST /_mock/expire_tokens expires every access token.
  * API auth: "Authorization: Bearer <token>"; missing, unknown or expired -> 401
    {"errors": [{"id": "unauthorized", "title": "Unauthorized", "detail": ...}]} (choice of id).
  * A body with a Content-Type other than application/vnd.api+json -> 415 {"errors": [{"id":
    "unsupportedMediaType", "title": "Unsupported Media Type"}]} (ref).
  * Rate limit (ref): "rate_limit" requests per "rate_window_ms" (default 10000 per 3600000);
    every answer carries X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset (unix
    seconds when the window resets); over the limit -> 429 with Retry-After and {"errors":
    [{"id": "rateLimitExceeded", "title": ..., "detail": "You have exceeded your permitted rate
    limit of N; please try again at <time>."}]} (ref).
  * /prospects and /accounts (ref): POST {data: {type, attributes}} -> 201 {data: resource}
    (ids from 1, per type; choice); GET /{coll}/{id}; PATCH /{coll}/{id} {data: {type, id,
    attributes}} -> 200 (only sent attributes change; type or id not matching -> 409
    {"id": "typeMismatch"/"idMismatch"}, choice); DELETE /{coll}/{id} -> 204; unknown id ->
    404 {"errors": [{"id": "resourceNotFound", ...}]} (ref). GET /{coll}?filter[<attr>]=v ->
    {data: [...], meta: {count}} (ref): emails match any of a prospect's emails,
    case-insensitively (choice); other attributes as text; page[size] limits the list.
    data.type must be "prospect" / "account" (else 422 validationError, choice).
  * Validation (ref ids and shapes): a prospect whose email another prospect has -> 422
    validationError "Contact email hash has already been taken." pointer /data/attributes/emails
    (ref); an account created without name -> 422 "Name can't be blank." pointer
    /data/attributes/name (ref); an email without "@" -> 422 validationError "Emails is
    invalid" (choice of trigger); config "fail_attributes": [{"attribute", "pattern", "id",
    "detail"}] more of them.
  * Contract (--openapi): each request body is checked against Outreach's OpenAPI contract
    (test/lib/openapi.py, application/vnd.api+json); violations are kept in the journal entry
    ("contract_errors") and the request is refused with 422 (choice).
  * Faults: config "faults": [{"status", "body"?, "headers"?, "path"?} | {"reset": true,
    "path"?}] queue; the next API request (whose path starts with "path", when given) consumes
    one.
  * Journal: every request {"seq", "method", "path", "query", "headers" (no Authorization),
    "body", "status", "contract_errors"?, "fault"?}; the token endpoint's secrets are masked.
  * Control API: GET /_mock/health, GET|DELETE /_mock/requests, GET /_mock/records?type=
    prospects|accounts, POST /_mock/records {"type", "attributes"} (a record made in Outreach), GET|POST /_mock/config, POST /_mock/expire_tokens, POST /_mock/reset,
    GET /_mock/stats, GET /_mock/refresh_token (the live one). Unknown config keys -> 400.
"""

import argparse
import json
import os
import re
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, serve  # noqa: E402


HOST = "127.0.0.1"
CLIENT_ID = "or-client-id"
CLIENT_SECRET = "or-client-secret"
REFRESH_TOKEN = "or-refresh-token"
MAX_BODY = 16 * 1024 * 1024
MEDIA = "application/vnd.api+json"
TYPES = {"prospects": "prospect", "accounts": "account"}

DEFAULT_CONFIG = {
    "token_ttl_s": 7200,
    "rotate_refresh_tokens": True,
    "rate_limit": 10000,
    "rate_window_ms": 3600000,
    "fail_attributes": [],
    "faults": [],
}


def err(id_, title, detail=None, pointer=None):
    e = {"id": id_, "title": title}
    if detail:
        e["detail"] = detail
    if pointer:
        e["source"] = {"pointer": pointer}
    return {"errors": [e]}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))
        self.records = {"prospects": {}, "accounts": {}}
        self.next_id = {"prospects": 1, "accounts": 1}
        self.tokens = {}
        self.refresh_token = REFRESH_TOKEN
        self.journal = []
        self.seq = 0
        self.window_start = time.time()
        self.window_count = 0
        self.stats = {"requests": 0, "tokens_issued": 0, "unauthorized": 0, "rate_limited": 0,
                      "created": 0, "updated": 0, "deleted": 0, "lookups": 0, "contract_violations": 0}

    def emails_of(self, rec):
        return [str(e).lower() for e in (rec.get("emails") or [])]

    def matches(self, coll, field, value):
        out = []
        for rid, rec in sorted(self.records[coll].items()):
            attrs = rec["attributes"]
            if field == "emails" and coll == "prospects":
                if str(value).lower() in self.emails_of(attrs):
                    out.append(rec)
            elif field == "id":
                if str(rid) == str(value):
                    out.append(rec)
            elif attrs.get(field) is not None and str(attrs.get(field)) == str(value):
                out.append(rec)
        return out

    def validate(self, coll, attrs, current_id, creating):
        if coll == "prospects":
            emails = attrs.get("emails")
            if emails is not None:
                if not isinstance(emails, list):
                    return err("validationError", "Validation Error", "Emails must be an array.",
                               "/data/attributes/emails")
                for e in emails:
                    if "@" not in str(e):
                        return err("validationError", "Validation Error", "Emails is invalid.",
                                   "/data/attributes/emails")
                    for rid, rec in self.records[coll].items():
                        if rid != current_id and str(e).lower() in self.emails_of(rec["attributes"]):
                            return err("validationError", "Validation Error",
                                       "Contact email hash has already been taken.", "/data/attributes/emails")
        if coll == "accounts" and creating and not attrs.get("name"):
            return err("validationError", "Validation Error", "Name can't be blank.", "/data/attributes/name")
        for rule in self.config["fail_attributes"]:
            v = attrs.get(rule["attribute"])
            if v is not None and re.search(rule["pattern"], str(v)):
                return err(rule.get("id", "validationError"), "Validation Error", rule.get("detail", "invalid"),
                           "/data/attributes/" + rule["attribute"])
        return None

    def view(self, coll, rec, base):
        return {"type": TYPES[coll], "id": rec["id"], "attributes": dict(rec["attributes"]),
                "relationships": {}, "links": {"self": f"{base}/api/v2/{coll}/{rec['id']}"}}


class Handler(MockHandler):
    timeout = 120

    def send(self, status, payload, headers=None, media=MEDIA):
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", media)
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
        with state.lock:
            if url.path == "/oauth/token":
                return self.token(url, raw)
            status, payload, headers = self.api(url, raw)
        if status is None:  # reset fault
            self.reset_connection()
            return
        self.send(status, payload, headers)

    def token(self, url, raw):
        state = self.server.state
        state.seq += 1
        p = {k: v[0] for k, v in parse_qs(raw.decode() if raw else "").items()}
        masked = {k: ("***" if k in ("client_secret", "refresh_token") else v) for k, v in p.items()}
        entry = {"seq": state.seq, "method": self.command, "path": url.path, "query": url.query,
                 "headers": {}, "body": masked, "status": None}
        state.journal.append(entry)

        def answer(status, payload):
            entry["status"] = status
            return self.send(status, payload, media="application/json")
        if p.get("client_id") != CLIENT_ID or p.get("client_secret") != CLIENT_SECRET:
            return answer(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        if p.get("grant_type") != "refresh_token" or p.get("refresh_token") != state.refresh_token:
            return answer(400, {"error": "invalid_grant", "error_description": "The provided authorization grant "
                                "is invalid, expired, revoked, or was issued to another client."})
        if state.config["rotate_refresh_tokens"]:
            state.refresh_token = "or-refresh-" + uuid.uuid4().hex
        token = "or-access-" + uuid.uuid4().hex
        ttl = state.config["token_ttl_s"]
        state.tokens[token] = time.monotonic() + ttl
        state.stats["tokens_issued"] += 1
        return answer(200, {"access_token": token, "token_type": "bearer", "expires_in": ttl,
                            "refresh_token": state.refresh_token, "scope": "prospects.all accounts.all",
                            "created_at": int(time.time())})

    def api(self, url, raw):
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
        limit = state.config["rate_limit"]
        window = state.config["rate_window_ms"] / 1000.0
        now = time.time()
        if now - state.window_start >= window:
            state.window_start, state.window_count = now, 0
        reset_at = int(state.window_start + window + 0.999)

        def rate():
            return {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": max(0, limit - state.window_count),
                    "X-RateLimit-Reset": reset_at}

        def answer(status, payload, headers=None):
            entry["status"] = status
            return status, payload, dict(rate(), **(headers or {}))

        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token is None or state.tokens.get(token, 0) <= time.monotonic():
            state.stats["unauthorized"] += 1
            return answer(401, err("unauthorized", "Unauthorized", "The access token is invalid or expired."))

        faults = state.config["faults"]
        for i, f in enumerate(faults):
            if url.path.startswith(f.get("path", "")):
                del faults[i]
                entry["fault"] = True
                if f.get("reset"):
                    return None, None, None
                return answer(f["status"], f.get("body", err("mockFault", "Mock Fault")), f.get("headers"))

        if state.window_count >= limit:
            state.stats["rate_limited"] += 1
            retry = max(1, int(state.window_start + window - now + 0.999))
            at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(reset_at))
            return answer(429, err("rateLimitExceeded", "Rate Limit Exceeded",
                                   f"You have exceeded your permitted rate limit of {limit:,}; please try "
                                   f"again at {at}."), {"Retry-After": retry})
        state.window_count += 1

        if raw and not (self.headers.get("Content-Type") or "").startswith(MEDIA):
            return answer(415, err("unsupportedMediaType", "Unsupported Media Type",
                                   f"Content-Type must be {MEDIA}."))
        if self.server.contract is not None and body is not None:
            errors = self.server.contract.validate_request(self.command, url.path, body)
            if errors:
                entry["contract_errors"] = errors
                state.stats["contract_violations"] += 1
                return answer(422, err("validationError", "Validation Error", "; ".join(errors)[:1000]))

        m = re.fullmatch(r"/api/v2/(prospects|accounts)(?:/(\d+))?", url.path)
        if not m:
            return answer(404, err("resourceNotFound", "Resource Not Found", "No such endpoint."))
        coll, rid = m.group(1), int(m.group(2)) if m.group(2) else None
        base = f"http://{HOST}:{self.server.server_address[1]}"
        records = state.records[coll]
        if rid is None and self.command == "GET":
            state.stats["lookups"] += 1
            q = parse_qs(url.query)
            found = list(sorted(records.values(), key=lambda r: r["id"]))
            for k, vs in q.items():
                fm = re.fullmatch(r"filter\[(\w+)\]", k)
                if fm:
                    found = [r for r in found if r in state.matches(coll, fm.group(1), vs[0])]
            size = int(q.get("page[size]", ["50"])[0])
            return answer(200, {"data": [state.view(coll, r, base) for r in found[:size]],
                                "meta": {"count": len(found)}})
        if rid is None and self.command == "POST":
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict) or data.get("type") != TYPES[coll] or \
                    not isinstance(data.get("attributes", {}), dict):
                return answer(422, err("validationError", "Validation Error", f"data.type must be {TYPES[coll]}.",
                                       "/data/type"))
            attrs = data.get("attributes", {})
            problem = state.validate(coll, attrs, None, True)
            if problem:
                return answer(422, problem)
            new_id = state.next_id[coll]
            state.next_id[coll] += 1
            records[new_id] = {"id": new_id, "attributes": dict(attrs)}
            state.stats["created"] += 1
            return answer(201, {"data": state.view(coll, records[new_id], base)})
        if rid is None:
            return answer(405, err("methodNotAllowed", "Method Not Allowed"))
        rec = records.get(rid)
        if rec is None:
            return answer(404, err("resourceNotFound", "Resource Not Found",
                                   f"Could not find '{TYPES[coll]}' with ID '{rid}'."))
        if self.command == "GET":
            return answer(200, {"data": state.view(coll, rec, base)})
        if self.command == "DELETE":
            del records[rid]
            state.stats["deleted"] += 1
            return answer(204, None)
        if self.command == "PATCH":
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict) or data.get("type") != TYPES[coll]:
                return answer(409, err("typeMismatch", "Type Mismatch", f"data.type must be {TYPES[coll]}."))
            if str(data.get("id")) != str(rid):
                return answer(409, err("idMismatch", "ID Mismatch", "data.id must match the URL."))
            attrs = data.get("attributes", {})
            problem = state.validate(coll, attrs, rid, False)
            if problem:
                return answer(422, problem)
            rec["attributes"].update(attrs)
            state.stats["updated"] += 1
            return answer(200, {"data": state.view(coll, rec, base)})
        return answer(405, err("methodNotAllowed", "Method Not Allowed"))

    def control(self, url, raw):
        state = self.server.state
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self.send(400, {"error": "invalid JSON"}, media="application/json")

        def send(status, payload):
            return self.send(status, payload, media="application/json")
        with state.lock:
            p, c = url.path, self.command
            if p == "/_mock/health":
                return send(200, {"ok": True})
            if p == "/_mock/requests" and c == "GET":
                return send(200, {"requests": state.journal})
            if p == "/_mock/requests" and c == "DELETE":
                state.journal = []
                return send(200, {})
            if p == "/_mock/records" and c == "POST":
                coll = body.get("type", "prospects")
                new_id = state.next_id[coll]
                state.next_id[coll] += 1
                state.records[coll][new_id] = {"id": new_id, "attributes": dict(body.get("attributes", {}))}
                return send(200, {"id": new_id})
            if p == "/_mock/records":
                coll = parse_qs(url.query).get("type", ["prospects"])[0]
                return send(200, {"records": [dict(r["attributes"], id=r["id"])
                                             for r in state.records.get(coll, {}).values()]})
            if p == "/_mock/stats":
                return send(200, state.stats)
            if p == "/_mock/refresh_token":
                return send(200, {"refresh_token": state.refresh_token})
            if p == "/_mock/config" and c == "GET":
                return send(200, state.config)
            if p == "/_mock/config" and c == "POST":
                unknown = [k for k in body if k not in DEFAULT_CONFIG]
                if unknown or not isinstance(body, dict):
                    return send(400, {"error": f"unknown config keys: {unknown}"})
                for k, v in body.items():
                    if k == "faults":
                        state.config["faults"].extend(v)
                    else:
                        state.config[k] = v
                return send(200, state.config)
            if p == "/_mock/expire_tokens" and c == "POST":
                for t in state.tokens:
                    state.tokens[t] = 0
                return send(200, {"expired": len(state.tokens)})
            if p == "/_mock/reset" and c == "POST":
                state.reset()
                return send(200, {})
        return send(404, {"error": "unknown control path"})


class Contract:
    """Outreach's OpenAPI documents paths without the /api/v2 server prefix."""

    def __init__(self, path):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
        from openapi import OpenApi
        self.api = OpenApi(path, aliases=[(r"^/api/v2", "")])

    def validate_request(self, method, path, body):
        return self.api.validate_request(method, path, body)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock Outreach API v2 for revetl tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--openapi", help="validate request bodies against Outreach's OpenAPI contract")
    args = ap.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State()
    server.contract = Contract(args.openapi) if args.openapi else None
    return serve(server, "mock_outreach", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

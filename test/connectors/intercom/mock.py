#!/usr/bin/env python3
"""Stateful mock of Intercom's contacts and companies API, for revetl tests.

Usage:
    python3 test/connectors/intercom/mock.py [--port N] [--port-file PATH]
        [--token T] [--openapi PATH]

Python standard library only (plus PyYAML and jsonschema with --openapi); binds 127.0.0.1.
Facts marked "ref" come from /work/shared/reference/destinations.md ("Intercom contacts",
sections 4 and 7) and Intercom's OpenAPI contract (/work/shared/vendor-specs/intercom/,
SOURCE.md); "choice" marks this mock's decisions where the sources are silent.

Intercom behaviours emulated
  * Auth (ref): "Authorization: Bearer <--token>" (default test-token); otherwise, or after
    POST /_mock/revoke, 401 {"type": "error.list", "request_id", "errors": [{"code":
    "unauthorized", "message": "Access Token Invalid"}]}.
  * Intercom-Version (ref): journaled; a value outside the contract's intercom_version enum
    (with --openapi) -> 400 error.list code "intercom_version_invalid" (choice of code).
  * Contacts (ref): POST /contacts creates (ids: 24 hex digits, choice); a user whose email
    or external_id equals a live user's -> 409 {"errors": [{"code": "conflict", "message":
    "A contact matching those details already exists with id=<id>"}]} (ref); leads are not
    checked (choice). PUT /contacts/{id} updates (custom_attributes merged, choice); an
    unknown or archived id -> 404 code "not_found" "User Not Found" (choice for archived).
    POST /contacts/{id}/archive -> {"id", "object": "contact", "archived": true};
    DELETE /contacts/{id} -> {"id", "object": "contact", "deleted": true}; unknown -> 404.
  * Search (ref): POST /contacts/search with {"query": {"field", "operator", "value"}} or
    {"query": {"operator": "AND"|"OR", "value": [filters]}}; operators "=" and "!="
    (choice: the only ones emulated) on any top-level attribute; archived contacts are not
    found. Answers {"type": "list", "data": [...], "total_count", "pages": {...}}.
    Eventually consistent (ref for Intercom's search index, choice of mechanism): config
    "search_delay_ms" hides contacts created less than that long ago.
  * Companies (ref, SOURCE.md): POST /companies upserts by company_id (a body without one
    -> 400 code "parameter_not_found", choice); PUT /companies/{id} by Intercom's id;
    DELETE /companies/{id} -> {"id", "object": "company", "deleted": true}; unknown id ->
    404 code "company_not_found" "Company Not Found".
  * Per-record failures (choice of trigger): config "fail_records": [{"field", "pattern",
    "status"?, "code"?, "message"?}]: a POST or PUT whose body field matches gets that
    error list (default 400 "parameter_invalid").
  * Rate limit (ref): "rate_limit" requests per "rate_window_ms" (default 1000 per 10000);
    every admitted answer carries X-RateLimit-Limit, X-RateLimit-Remaining and
    X-RateLimit-Reset (unix seconds when the window resets); over the limit -> 429 error.list
    code "rate_limit_exceeded", "Exceeded rate limit of <n> in 10_seconds" with the same
    headers (Remaining 0).
  * Contract (--openapi): each request body is checked against Intercom's OpenAPI contract
    (test/lib/openapi.py); violations are kept in the journal entry ("contract_errors") and
    the request is refused with 400 (choice).
  * Faults: config "faults": [{"status", "body"?, "headers"?, "path"?} | {"reset": true,
    "path"?}] queue; the next API request (whose path starts with "path") consumes one.
  * Journal: every API request {"seq", "method", "path", "query", "headers", "body",
    "status", "contract_errors"?, "fault"?}.
  * Control API: GET /_mock/health, GET|DELETE /_mock/requests, GET /_mock/contacts,
    GET /_mock/companies, GET|POST /_mock/config, POST /_mock/revoke, POST /_mock/reset,
    GET /_mock/stats. Unknown config keys -> 400.
"""

import argparse
import json
import math
import os
import re
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, openapi_contract, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_BODY = 4 * 1024 * 1024

DEFAULT_CONFIG = {
    "fail_records": [],
    "search_delay_ms": 0,
    "rate_limit": 1000,
    "rate_window_ms": 10000,
    "faults": [],
}


def new_id():
    return uuid.uuid4().hex[:24]


class State:
    def __init__(self, token):
        self.lock = threading.Lock()
        self.token = token
        self.reset()

    def reset(self):
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))
        self.contacts = {}  # id -> contact
        self.companies = {}  # id -> company
        self.revoked = False
        self.journal = []
        self.seq = 0
        self.window_start = time.time()
        self.window_count = 0
        self.stats = {"requests": 0, "rate_limited": 0, "searches": 0, "creates": 0, "updates": 0,
                      "archives": 0, "deletes": 0, "conflicts": 0, "contract_violations": 0}


def error_list(code, message, field=None):
    e = {"code": code, "message": message}
    if field:
        e["field"] = field
    return {"type": "error.list", "request_id": str(uuid.uuid4()), "errors": [e]}


def matches(contact, flt):
    if not isinstance(flt, dict):
        return False
    op = flt.get("operator")
    if op in ("AND", "OR") and isinstance(flt.get("value"), list):
        results = [matches(contact, f) for f in flt["value"]]
        return all(results) if op == "AND" else any(results)
    value = contact.get(flt.get("field"))
    if flt.get("field") == "email" and isinstance(value, str) and isinstance(flt.get("value"), str):
        equal = value.lower() == flt["value"].lower()
    else:
        equal = value == flt.get("value")
    return equal if op == "=" else (not equal) if op == "!=" else False


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

        if state.revoked or self.headers.get("Authorization", "") != f"Bearer {state.token}":
            return answer(401, error_list("unauthorized", "Access Token Invalid"))

        faults = state.config["faults"]
        for i, f in enumerate(faults):
            if url.path.startswith(f.get("path", "")):
                del faults[i]
                entry["fault"] = True
                if f.get("reset"):
                    return None, None, None
                return answer(f["status"], f.get("body", error_list("server_error", "Mock fault")), f.get("headers"))

        now = time.time()
        window_s = state.config["rate_window_ms"] / 1000.0
        if now - state.window_start >= window_s:
            state.window_start, state.window_count = now, 0
        limit = state.config["rate_limit"]
        if limit is not None:
            reset_at = int(math.ceil(state.window_start + window_s))
            if state.window_count >= limit:
                state.stats["rate_limited"] += 1
                rate = {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": 0, "X-RateLimit-Reset": reset_at}
                return answer(429, error_list("rate_limit_exceeded", f"Exceeded rate limit of {limit} in 10_seconds"))
            state.window_count += 1
            rate = {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": max(0, limit - state.window_count),
                    "X-RateLimit-Reset": reset_at}

        contract = self.server.contract
        version = self.headers.get("Intercom-Version")
        if contract is not None and version is not None:
            allowed = contract.doc.get("components", {}).get("schemas", {}).get("intercom_version", {}).get("enum")
            if allowed and version not in allowed:
                return answer(400, error_list("intercom_version_invalid", f"Requested version {version} is invalid"))
        if contract is not None and body is not None:
            errors = contract.validate_request(self.command, url.path, body)
            if errors:
                entry["contract_errors"] = errors
                state.stats["contract_violations"] += 1
                return answer(400, error_list("parameter_invalid", "; ".join(errors)[:1000]))

        if self.command in ("POST", "PUT") and isinstance(body, dict) and not url.path.endswith("/search"):
            for rule in state.config["fail_records"]:
                value = body.get(rule.get("field", "email"))
                if value is not None and re.search(rule["pattern"], str(value)):
                    return answer(rule.get("status", 400),
                                  error_list(rule.get("code", "parameter_invalid"),
                                             rule.get("message", "Invalid value"), rule.get("field")))

        p, m = url.path, self.command
        if p == "/contacts/search" and m == "POST":
            state.stats["searches"] += 1
            query = (body or {}).get("query")
            hidden_after = now - state.config["search_delay_ms"] / 1000.0
            found = [c for c in state.contacts.values() if not c.get("archived") and c["_created"] <= hidden_after
                     and matches(c, query)]
            return answer(200, {"type": "list", "data": [self.view(c) for c in found], "total_count": len(found),
                                "pages": {"type": "pages", "page": 1, "per_page": 50, "total_pages": 1}})
        if p == "/contacts" and m == "POST":
            conflict = self.conflict(body, None)
            if conflict:
                return answer(409, conflict)
            cid = new_id()
            contact = {"type": "contact", "id": cid, "role": body.get("role", "user"), "_created": now,
                       "writes": 0, "custom_attributes": {}}
            state.contacts[cid] = contact
            self.apply(contact, body)
            state.stats["creates"] += 1
            return answer(200, self.view(contact))
        mm = re.fullmatch(r"/contacts/([^/]+)(/archive)?", p)
        if mm:
            contact = state.contacts.get(mm.group(1))
            if mm.group(2):
                if m != "POST":
                    return answer(405, error_list("method_not_allowed", "Method Not Allowed"))
                if contact is None:
                    return answer(404, error_list("not_found", "User Not Found"))
                contact["archived"] = True
                state.stats["archives"] += 1
                return answer(200, {"id": contact["id"], "object": "contact", "archived": True})
            if m == "DELETE":
                if contact is None:
                    return answer(404, error_list("not_found", "User Not Found"))
                del state.contacts[contact["id"]]
                state.stats["deletes"] += 1
                return answer(200, {"id": contact["id"], "object": "contact", "deleted": True})
            if m == "PUT":
                if contact is None or contact.get("archived"):
                    return answer(404, error_list("not_found", "User Not Found"))
                conflict = self.conflict({**contact, **body}, contact["id"])
                if conflict:
                    return answer(409, conflict)
                self.apply(contact, body)
                state.stats["updates"] += 1
                return answer(200, self.view(contact))
            if m == "GET":
                if contact is None:
                    return answer(404, error_list("not_found", "User Not Found"))
                return answer(200, self.view(contact))
        if p == "/companies" and m == "POST":
            company_id = (body or {}).get("company_id")
            if not company_id:
                return answer(400, error_list("parameter_not_found", "company_id not specified", "company_id"))
            company = next((c for c in state.companies.values() if c["company_id"] == company_id), None)
            if company is None:
                company = {"type": "company", "id": new_id(), "company_id": company_id, "writes": 0,
                           "custom_attributes": {}}
                state.companies[company["id"]] = company
                state.stats["creates"] += 1
            else:
                state.stats["updates"] += 1
            self.apply(company, body)
            return answer(200, self.view(company))
        mm = re.fullmatch(r"/companies/([^/]+)", p)
        if mm and m in ("PUT", "DELETE", "GET"):
            company = state.companies.get(mm.group(1))
            if company is None:
                return answer(404, error_list("company_not_found", "Company Not Found"))
            if m == "DELETE":
                del state.companies[company["id"]]
                state.stats["deletes"] += 1
                return answer(200, {"id": company["id"], "object": "company", "deleted": True})
            if m == "PUT":
                self.apply(company, {k: v for k, v in body.items() if k != "company_id"})
                state.stats["updates"] += 1
            return answer(200, self.view(company))
        return answer(404, error_list("not_found", "Resource Not Found"))

    def conflict(self, body, own_id):
        """The 409 Intercom answers when a user with this email or external_id exists."""
        state = self.server.state
        if body.get("role", "user") != "user":
            return None
        for c in state.contacts.values():
            if c["id"] == own_id or c.get("archived") or c.get("role") != "user":
                continue
            same_email = body.get("email") and str(c.get("email", "")).lower() == str(body["email"]).lower()
            same_ext = body.get("external_id") and c.get("external_id") == body["external_id"]
            if same_email or same_ext:
                state.stats["conflicts"] += 1
                return error_list("conflict", f"A contact matching those details already exists with id={c['id']}")
        return None

    @staticmethod
    def apply(record, body):
        for k, v in body.items():
            if k == "custom_attributes" and isinstance(v, dict):
                record["custom_attributes"].update(v)
            elif k not in ("id", "type"):
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
            if p == "/_mock/contacts":
                return self.send(200, {"contacts": [self.view(x) for x in state.contacts.values()]})
            if p == "/_mock/companies":
                return self.send(200, {"companies": [self.view(x) for x in state.companies.values()]})
            if p == "/_mock/stats":
                return self.send(200, state.stats)
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
            if p == "/_mock/revoke" and c == "POST":
                state.revoked = bool(body.get("revoked", True))
                return self.send(200, {"revoked": state.revoked})
            if p == "/_mock/reset" and c == "POST":
                state.reset()
                return self.send(200, {})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock Intercom contacts and companies API for revetl tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token", default="test-token")
    ap.add_argument("--openapi", help="validate request bodies against Intercom's OpenAPI contract")
    args = ap.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.token)
    server.contract = openapi_contract(args.openapi)
    return serve(server, "mock_intercom", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A stateful mock of Mailchimp's Marketing API 3.0 (audience members and tags)
for revetl's `mailchimp` destination.

Usage:
    python3 test/connectors/mailchimp/mock.py [--port N] [--port-file PATH] [--api-key K]
        [--token T] [--openapi PATH]

Python 3 standard library only (plus jsonschema and PyYAML with --openapi); binds
127.0.0.1 only.

  * Auth: HTTP Basic with any user name and the API key as password, or
    `Authorization: Bearer <token>` (an OAuth access token). Else 401 with an RFC 7807
    body (title "API Key Invalid"). Every error body is RFC 7807 problem JSON
    (type, title, status, detail, instance), Content-Type application/problem+json.
  * Audiences: configure lists=[id, ...]; any other list id gets 404 "Resource Not Found".
  * Members are kept per audience by subscriber hash (MD5 of the lower-cased email),
    each {email_address, status, merge_fields, tags, ...}; an archived member keeps its
    record with status "archived" and is not a member until it is written again.
  * POST /3.0/lists/{id} (batch subscribe): at most 500 members (else 400 "Invalid
    Resource", nothing applied). Answers 200 even when members fail: errors[]
    {email_address, error, error_code} names them, the others are applied:
      - a malformed email: ERROR_GENERIC "... looks fake or invalid ...";
      - a new member without status: ERROR_GENERIC;
      - an existing member when update_existing is not true: ERROR_CONTACT_EXISTS;
      - a merge field the reject switch refuses: ERROR_GENERIC "Your merge fields were
        invalid.";
      - an email listed in `compliance`: ERROR_CONTACT_EXISTS "... is in a compliance
        state ...".
    An archived member written again is active again.
  * PATCH /3.0/lists/{id}/members/{hash}: updates an existing member (404 otherwise).
  * DELETE /3.0/lists/{id}/members/{hash}: archives (204; 404 for an unknown or already
    archived member). POST .../actions/delete-permanent: forgets it (204).
  * POST /3.0/lists/{id}/members/{hash}/tags {"tags": [{name, status active|inactive}]}:
    204; 404 for a member the audience does not have (tags hold members only).
  * Concurrency: at most `max_connections` (default 10) API requests in flight at once;
    one more gets 429 "Too Many Requests" (Mailchimp sends no rate-limit headers).
    `hold_s` keeps each API request that long (so that requests overlap).
  * Faults: {"faults": [{"status": N, "body"?: ..., "bare"?: true, "delay_s"?: s}]}
    answer the next API requests (nothing applied); `bare` sends no body at all (the
    403 Mailchimp answers under heavy load).
  * Refusals: {"reject_field": F, "reject_pattern": P} refuses a member whose merge
    field F matches P (re.search); {"compliance": [email, ...]}.
  * Contract (--openapi): each body and query string is validated against the derived
    Mailchimp OpenAPI (test/lib/openapi.py); violations are kept in the journal
    ("contract_errors").
  * Control: GET /_mock/requests, /_mock/members?list=ID, /_mock/tags, /_mock/stats;
    DELETE /_mock/requests; POST /_mock/reset, /_mock/config.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, openapi_contract, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_MEMBERS = 500
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
DOCS = "https://mailchimp.com/developer/marketing/docs/errors/"


def subscriber_hash(email):
    return hashlib.md5(email.lower().encode()).hexdigest()


class State:
    def __init__(self, api_key, token):
        self.api_key = api_key
        self.token = token
        # Reentrant: an answer sent under the lock releases its slot first.
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        self.requests = []
        self.lists = {}  # list id -> {hash: member}
        self.faults = []
        self.reject_field = None
        self.reject_pattern = None
        self.compliance = set()
        self.max_connections = 10
        self.hold_s = 0
        self.in_flight = 0
        self.stats = {"batch": 0, "patch": 0, "archive": 0, "tags": 0, "throttled": 0, "max_in_flight": 0,
                      "max_members_per_call": 0, "contract_violations": 0}


def problem(status, title, detail):
    return {"type": DOCS, "title": title, "status": status, "detail": detail, "instance": str(uuid.uuid4())}


class Handler(MockHandler):
    def release(self):
        """Frees this request's connection slot: before its answer is
        written, so that a client sending its next request on receiving the
        answer never finds the slot still taken."""
        if getattr(self, "holding", False):
            self.holding = False
            with self.server.state.lock:
                self.server.state.in_flight -= 1

    def send(self, status, payload=None, content_type="application/json"):
        self.release()
        data = b"" if payload is None else json.dumps(payload).encode()
        if payload is not None and status >= 400:
            content_type = "application/problem+json"
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self, state):
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                _, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
            return password == state.api_key
        return state.token is not None and auth == f"Bearer {state.token}"

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        if self.path.startswith("/_mock/"):
            return self.control(text)
        state = self.server.state
        fault = None
        with state.lock:
            entry = {"method": self.command, "path": self.path, "at": time.time(),
                     "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text,
                     "contract_errors": []}
            state.requests.append(entry)
            # The concurrency limit comes first: Mailchimp refuses the
            # connection before it reads the request.
            if state.in_flight >= state.max_connections:
                state.stats["throttled"] += 1
                entry["throttled"] = True
                return self.send(429, problem(429, "Too Many Requests",
                                              f"You have exceeded the limit of {state.max_connections} "
                                              "simultaneous connections."))
            state.in_flight += 1
            self.holding = True
            state.stats["max_in_flight"] = max(state.stats["max_in_flight"], state.in_flight)
            if state.faults and self.authorized(state):
                fault = state.faults.pop(0)
                entry["fault"] = fault["status"]
            hold = state.hold_s
        try:
            # Outside the lock: a slow answer must not hold up the others.
            if fault:
                if fault.get("delay_s"):
                    time.sleep(fault["delay_s"])
                if fault.get("bare"):
                    return self.send(fault["status"])
                return self.send(fault["status"], fault.get("body", problem(fault["status"], "Fault", "fault")))
            if hold:
                time.sleep(hold)
            with state.lock:
                return self.api(state, entry, text)
        finally:
            self.release()

    def api(self, state, entry, text):
        errors = entry["contract_errors"]
        parsed = urllib.parse.urlsplit(self.path)
        parts = parsed.path.split("/")
        # ["", "3.0", "lists", id, ("members", hash, ("tags" | "actions", "delete-permanent"))]
        if len(parts) < 4 or parts[1] != "3.0" or parts[2] != "lists":
            return self.send(404, problem(404, "Resource Not Found", "The requested resource could not be found."))
        if not self.authorized(state):
            return self.send(401, problem(401, "API Key Invalid",
                                          "Your API key may be invalid, or you've attempted to access the wrong "
                                          "datacenter."))
        list_id, rest = parts[3], parts[4:]
        route = None
        if not rest and self.command == "POST":
            route = "batch"
        elif len(rest) == 2 and rest[0] == "members" and self.command in ("PATCH", "DELETE"):
            route = self.command.lower()
        elif len(rest) == 3 and rest[0] == "members" and rest[2] == "tags" and self.command == "POST":
            route = "tags"
        elif rest[:1] == ["members"] and rest[2:] == ["actions", "delete-permanent"] and self.command == "POST":
            route = "delete_permanent"
        if route is None:
            return self.send(405, problem(405, "Method Not Allowed", f"{self.command} {parsed.path}"))
        if list_id not in state.lists:
            return self.send(404, problem(404, "Resource Not Found", "The requested resource could not be found."))
        body = None
        if route in ("batch", "patch", "tags"):
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                errors.append("Content-Type is not application/json")
            try:
                body = json.loads(text)
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
            except ValueError as exc:
                errors.append(f"invalid JSON: {exc}")
                return self.send(400, problem(400, "JSON Schema Validation Failed", str(exc)))
        elif text:
            errors.append(f"{self.command} with a body")
        contract = self.server.contract
        if contract is not None:
            path = parsed.path
            errors.extend(contract.validate_query(self.command, path, parsed.query))
            if body is not None:
                errors.extend(contract.validate_request(self.command, path, body))
            elif contract.operation(self.command, path)[1] is None:
                errors.append(f"{self.command} {path}: no such operation in the contract")
        if errors:
            state.stats["contract_violations"] += 1
        members = state.lists[list_id]
        if route == "batch":
            return self.batch(state, members, body)
        key = urllib.parse.unquote(rest[1])
        member = members.get(key)
        live = member is not None and member["status"] != "archived"
        if route == "patch":
            state.stats["patch"] += 1
            if not live:
                return self.send(404, problem(404, "Resource Not Found", "The requested resource could not be found."))
            refusal = self.refusal(state, member["email_address"], body.get("merge_fields") or {})
            if refusal:
                return self.send(400, problem(400, "Invalid Resource", refusal[0]))
            self.apply(member, body)
            return self.send(200, self.public(key, member))
        if route == "delete":
            state.stats["archive"] += 1
            if not live:
                return self.send(404, problem(404, "Resource Not Found", "The requested resource could not be found."))
            member["status"] = "archived"
            return self.send(204)
        if route == "delete_permanent":
            if member is None:
                return self.send(404, problem(404, "Resource Not Found", "The requested resource could not be found."))
            del members[key]
            return self.send(204)
        state.stats["tags"] += 1
        if not live:
            return self.send(404, problem(404, "Resource Not Found", "The requested resource could not be found."))
        tags = body.get("tags")
        if not isinstance(tags, list):
            return self.send(400, problem(400, "Invalid Resource", "tags must be an array"))
        for tag in tags:
            if not isinstance(tag, dict) or tag.get("status") not in ("active", "inactive") or not tag.get("name"):
                return self.send(400, problem(400, "Invalid Resource", "each tag needs a name and a status"))
        for tag in tags:
            if tag["status"] == "active":
                member["tags"].add(tag["name"])
            else:
                member["tags"].discard(tag["name"])
        return self.send(204)

    @staticmethod
    def public(key, member):
        out = {k: v for k, v in member.items() if k != "tags"}
        out["id"] = key
        out["tags"] = [{"name": t} for t in sorted(member["tags"])]
        return out

    @staticmethod
    def apply(member, m):
        for k in ("status", "email_type", "language", "vip"):
            if k in m:
                member[k] = m[k]
        for k, v in (m.get("merge_fields") or {}).items():
            member["merge_fields"][k] = v

    def refusal(self, state, email, merge_fields):
        if email.lower() in state.compliance:
            return (f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review and "
                    "cannot be subscribed.", "ERROR_CONTACT_EXISTS")
        if state.reject_field is not None:
            v = merge_fields.get(state.reject_field)
            if v is not None and re.search(state.reject_pattern, str(v)):
                return "Your merge fields were invalid.", "ERROR_GENERIC"
        return None

    def batch(self, state, members, body):
        state.stats["batch"] += 1
        batch = body.get("members")
        if not isinstance(batch, list):
            return self.send(400, problem(400, "Invalid Resource", "members must be an array"))
        if len(batch) > MAX_MEMBERS:
            return self.send(400, problem(400, "Invalid Resource",
                                          f"You may only add or update up to {MAX_MEMBERS} members at a time."))
        state.stats["max_members_per_call"] = max(state.stats["max_members_per_call"], len(batch))
        update = body.get("update_existing") is True
        created, updated, failed = [], [], []
        for m in batch:
            email = m.get("email_address") if isinstance(m, dict) else None
            if not isinstance(email, str) or not EMAIL.match(email):
                failed.append({"email_address": email if isinstance(email, str) else "",
                               "error": f"{email} looks fake or invalid, please enter a real email address.",
                               "error_code": "ERROR_GENERIC", "field": "email_address", "field_message": ""})
                continue
            key = subscriber_hash(email)
            member = members.get(key)
            live = member is not None and member["status"] != "archived"
            if live and not update:
                failed.append({"email_address": email, "error": f"{email} is already a list member. Use PUT to "
                               "insert or update list members.", "error_code": "ERROR_CONTACT_EXISTS",
                               "field": "", "field_message": ""})
                continue
            if not live and m.get("status") not in STATUSES:
                failed.append({"email_address": email, "error": "Invalid Resource: status is required for a new "
                               "member", "error_code": "ERROR_GENERIC", "field": "status", "field_message": ""})
                continue
            refusal = self.refusal(state, email, m.get("merge_fields") or {})
            if refusal:
                failed.append({"email_address": email, "error": refusal[0], "error_code": refusal[1],
                               "field": "", "field_message": ""})
                continue
            if member is None:
                member = members[key] = {"email_address": email, "status": m["status"], "merge_fields": {},
                                         "tags": set()}
                created.append(key)
            else:
                if member["status"] == "archived":
                    member["status"] = m["status"]
                    created.append(key)
                else:
                    updated.append(key)
                member["email_address"] = email
            self.apply(member, m)
        return self.send(200, {"new_members": [self.public(k, members[k]) for k in created],
                               "updated_members": [self.public(k, members[k]) for k in updated],
                               "errors": failed, "total_created": len(created), "total_updated": len(updated),
                               "error_count": len(failed)})

    def control(self, text):
        state = self.server.state
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        with state.lock:
            if path == "/_mock/requests" and self.command == "GET":
                return self.send(200, {"requests": state.requests})
            if path == "/_mock/requests" and self.command == "DELETE":
                state.requests = []
                return self.send(200, {"ok": True})
            if path == "/_mock/members" and self.command == "GET":
                list_id = urllib.parse.parse_qs(parsed.query).get("list", [""])[0]
                members = state.lists.get(list_id, {})
                return self.send(200, {"members": {k: self.public(k, m) for k, m in members.items()}})
            if path == "/_mock/tags" and self.command == "GET":
                out = {}
                for list_id, members in state.lists.items():
                    tags = out.setdefault(list_id, {})
                    for m in members.values():
                        if m["status"] == "archived":
                            continue
                        for t in m["tags"]:
                            tags.setdefault(t, []).append(m["email_address"].lower())
                    for t in tags:
                        tags[t].sort()
                return self.send(200, {"tags": out})
            if path == "/_mock/stats" and self.command == "GET":
                return self.send(200, state.stats)
            if path == "/_mock/reset" and self.command == "POST":
                state.reset()
                return self.send(200, {"ok": True})
            if path == "/_mock/config" and self.command == "POST":
                config = json.loads(text or "{}")
                for key in config:
                    if key not in ("faults", "reject_field", "reject_pattern", "lists", "compliance",
                                   "max_connections", "hold_s"):
                        return self.send(400, {"error": f"unknown option {key}"})
                state.faults.extend(config.get("faults", []))
                if "reject_field" in config:
                    state.reject_field = config["reject_field"]
                    state.reject_pattern = config.get("reject_pattern", "")
                if "compliance" in config:
                    state.compliance = {e.lower() for e in config["compliance"]}
                if "max_connections" in config:
                    state.max_connections = int(config["max_connections"])
                if "hold_s" in config:
                    state.hold_s = float(config["hold_s"])
                for list_id in config.get("lists", []):
                    state.lists.setdefault(str(list_id), {})
                return self.send(200, {"ok": True})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mock Mailchimp Marketing API for revetl's mailchimp destination.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--api-key", default="test-key-us6")
    parser.add_argument("--token", default="test-oauth-token")
    parser.add_argument("--openapi", help="validate requests against the (derived) Mailchimp OpenAPI")
    args = parser.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.api_key, args.token)
    # The contract documents paths below its basePath, /3.0.
    server.contract = openapi_contract(args.openapi, aliases=[(r"^/3\.0/", "/")])
    return serve(server, "mock_mailchimp", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A stateful mock of Iterable's REST API (users and lists) for revetl's
`iterable` destination, as an email-based Iterable project behaves.

Usage:
    python3 test/connectors/iterable/mock.py [--port N] [--port-file PATH] [--api-key K]
        [--openapi PATH]

Python 3 standard library only (plus jsonschema with --openapi); binds 127.0.0.1 only.

  * Auth: header `Api-Key: <key>` (else 401 {"msg", "code": "BadApiKey"}); a request
    carrying an Authorization header instead is journaled as a contract error.
  * POST /api/users/bulkUpdate {"users": [{email | userId, dataFields, preferUserId}]}:
    body at most 4 MB (else 400 code BatchTooLarge, nothing applied). Each user is
    merged into the project (dataFields overwrite top-level fields, leave the others);
    a user that fails is named in the 200 answer's failedUpdates and not applied:
      - invalidEmails / invalidUserIds: no identifier, or a malformed one;
      - invalidDataEmails / invalidDataUserIds: a field whose JSON type differs from
        the type it was first sent with (project-wide, as Iterable does), or a value the
        reject switch refuses.
    A userId that no user has makes a user only with preferUserId (else notFoundUserIds).
    Answer: 200 {"successCount", "failCount", "failedUpdates": {...}, "createdFields": []}.
  * DELETE /api/users/{email} and /api/users/byUserId/{userId} (URL-encoded): 200
    {"msg", "code": "Success"}; an unknown user gets 400 code UnknownEmailError /
    UnknownUserIdError. The user leaves every list.
  * POST /api/lists/subscribe {"listId": int, "subscribers": [...]}: the list must exist
    (configure lists; else 400 BadParams). An unknown email makes a user; an unknown
    userId without preferUserId is notFoundUserIds. POST /api/lists/unsubscribe: a
    subscriber not on the list (or unknown) is named in notFoundEmails / notFoundUserIds.
    Both answer 200 with the bulkUpdate answer's shape.
  * Rate limit: POST /_mock/config {"rate_limit": {"limit": N, "window_s": S}}: the N+1st
    request in a window gets 429 {"msg", "code": "RateLimitExceeded"} (no headers, as
    Iterable sends none).
  * Faults: {"faults": [{"status": N, "body"?: ..., "delay_s"?: s}]} answers the next API
    requests (nothing applied; delay_s sleeps first, for timeouts and crashes mid-call).
  * Refusals: {"reject_field": F, "reject_pattern": P} refuses a user whose dataFields F
    matches P (re.search), as invalidData*.
  * Lists: {"lists": [id, ...]} makes lists (members kept across config calls).
  * Contract (--openapi): each body is validated against Iterable's Swagger document
    (test/lib/openapi.py); violations are kept in the journal ("contract_errors").
  * Control: GET /_mock/requests, /_mock/users, /_mock/lists, /_mock/stats;
    DELETE /_mock/requests; POST /_mock/reset, /_mock/config.
"""

import argparse
import json
import os
import re
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, openapi_contract, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_BODY = 4 * 1024 * 1024
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class State:
    def __init__(self, api_key):
        self.api_key = api_key
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = []
        self.users = {}  # "email:x" or "userId:x" -> dataFields
        self.field_types = {}  # field -> JSON type name, fixed by its first value
        self.lists = {}  # list id -> set of user keys
        self.faults = []
        self.reject_field = None
        self.reject_pattern = None
        self.rate_limit = None
        self.window_start = 0.0
        self.window_count = 0
        self.stats = {"bulk_update": 0, "delete": 0, "subscribe": 0, "unsubscribe": 0, "throttled": 0,
                      "contract_violations": 0, "max_users_per_call": 0}


def json_type(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return None


def outcome(failed):
    """The answer of bulkUpdate and the list calls."""
    lists = {k: v for k, v in failed.items() if v}
    fail = sum(len(v) for v in lists.values())
    return lists, fail


class Handler(MockHandler):
    def send(self, status, payload=None):
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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
            if state.faults and self.headers.get("Api-Key") == state.api_key:
                fault = state.faults.pop(0)
                entry["fault"] = fault["status"]
        if fault:
            # Outside the lock: a slow answer must not hold up the control API.
            if fault.get("delay_s"):
                time.sleep(fault["delay_s"])
            return self.send(fault["status"], fault.get("body", {"msg": "fault", "code": "GenericError"}))
        with state.lock:
            return self.api(state, entry, text)

    def api(self, state, entry, text):
        errors = entry["contract_errors"]
        path = self.path.split("?", 1)[0]
        route = None
        if self.command == "POST" and path in ("/api/users/bulkUpdate", "/api/lists/subscribe",
                                               "/api/lists/unsubscribe"):
            route = path
        elif self.command == "DELETE" and path.startswith("/api/users/byUserId/") and path.count("/") == 4:
            route = "delete_user_id"
        elif self.command == "DELETE" and path.startswith("/api/users/") and path.count("/") == 3:
            route = "delete_email"
        if route is None:
            return self.send(404, {"msg": "Not Found", "code": "NotFound"})
        if "authorization" in entry["headers"]:
            errors.append("Authorization header sent: Iterable takes the key in Api-Key")
        if self.headers.get("Api-Key") != state.api_key:
            return self.send(401, {"msg": "Invalid API key", "code": "BadApiKey", "params": None})
        if state.rate_limit:
            now = time.time()
            window = state.rate_limit["window_s"]
            if now - state.window_start >= window:
                state.window_start, state.window_count = now, 0
            state.window_count += 1
            if state.window_count > state.rate_limit["limit"]:
                state.stats["throttled"] += 1
                return self.send(429, {"msg": "Rate limit exceeded", "code": "RateLimitExceeded", "params": None})
        body = None
        if route.startswith("/api/"):
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                errors.append("Content-Type is not application/json")
            if len(text.encode()) > MAX_BODY:
                return self.send(400, {"msg": "Request body too large", "code": "BatchTooLarge", "params": None})
            try:
                body = json.loads(text)
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
            except ValueError as exc:
                errors.append(f"invalid JSON: {exc}")
                return self.send(400, {"msg": f"Invalid JSON: {exc}", "code": "BadJsonBody", "params": None})
            contract = self.server.contract
            if contract is not None:
                errors.extend(contract.validate_request(self.command, path, body))
        if errors:
            state.stats["contract_violations"] += 1
        if route == "/api/users/bulkUpdate":
            return self.bulk_update(state, body)
        if route == "/api/lists/subscribe":
            return self.subscribe(state, body)
        if route == "/api/lists/unsubscribe":
            return self.unsubscribe(state, body)
        return self.delete(state, route, urllib.parse.unquote(path.rsplit("/", 1)[1]))

    @staticmethod
    def ident(user):
        """("email", x) or ("userId", x), or (kind, None) for a malformed one."""
        if "email" in user:
            email = user["email"]
            return "email", email if isinstance(email, str) and EMAIL.match(email) else None
        if "userId" in user:
            uid = user["userId"]
            ok = isinstance(uid, str) and uid and uid == uid.strip() and uid.isprintable() and len(uid) <= 512
            return "userId", uid if ok else None
        return "email", None

    def find(self, state, kind, value):
        key = f"{kind}:{value}"
        if key in state.users:
            return key
        if kind == "userId":
            for k, fields in state.users.items():
                if fields.get("userId") == value:
                    return k
        return None

    def bulk_update(self, state, body):
        state.stats["bulk_update"] += 1
        users = body.get("users")
        if not isinstance(users, list):
            return self.send(400, {"msg": "users must be an array", "code": "BadParams", "params": None})
        state.stats["max_users_per_call"] = max(state.stats["max_users_per_call"], len(users))
        failed = {n: [] for n in ("invalidEmails", "invalidUserIds", "invalidDataEmails", "invalidDataUserIds",
                                  "notFoundUserIds")}
        success = 0
        created = []
        for user in users:
            if not isinstance(user, dict):
                continue
            kind, value = self.ident(user)
            raw = user.get(kind)
            if value is None:
                failed["invalidEmails" if kind == "email" else "invalidUserIds"].append(
                    raw if isinstance(raw, str) else json.dumps(raw))
                continue
            data = user.get("dataFields") or {}
            bad = False
            for k, v in data.items():
                t = json_type(v)
                if t is not None and state.field_types.get(k, t) != t:
                    bad = True
            if state.reject_field is not None:
                v = data.get(state.reject_field)
                if v is not None and re.search(state.reject_pattern, str(v)):
                    bad = True
            if bad:
                failed["invalidDataEmails" if kind == "email" else "invalidDataUserIds"].append(value)
                continue
            key = self.find(state, kind, value)
            if key is None:
                if kind == "userId" and not user.get("preferUserId"):
                    failed["notFoundUserIds"].append(value)
                    continue
                key = f"{kind}:{value}"
                state.users[key] = {kind: value}
            for k, v in data.items():
                t = json_type(v)
                if t is not None and k not in state.field_types:
                    state.field_types[k] = t
                    created.append(k)
                state.users[key][k] = v
            success += 1
        lists, fail = outcome(failed)
        return self.send(200, {"successCount": success, "failCount": fail, "failedUpdates": lists,
                               "createdFields": created, "filteredOutFields": []})

    def the_list(self, state, body):
        list_id = body.get("listId")
        if not isinstance(list_id, int) or isinstance(list_id, bool) or list_id not in state.lists:
            self.send(400, {"msg": f"List {list_id} does not exist", "code": "BadParams", "params": None})
            return None
        subs = body.get("subscribers")
        if not isinstance(subs, list):
            self.send(400, {"msg": "subscribers must be an array", "code": "BadParams", "params": None})
            return None
        state.stats["max_users_per_call"] = max(state.stats["max_users_per_call"], len(subs))
        return list_id

    def subscribe(self, state, body):
        state.stats["subscribe"] += 1
        list_id = self.the_list(state, body)
        if list_id is None:
            return None
        failed = {n: [] for n in ("invalidEmails", "invalidUserIds", "notFoundUserIds")}
        success = 0
        for sub in body["subscribers"]:
            kind, value = self.ident(sub if isinstance(sub, dict) else {})
            if value is None:
                failed["invalidEmails" if kind == "email" else "invalidUserIds"].append(str(sub.get(kind)))
                continue
            key = self.find(state, kind, value)
            if key is None:
                if kind == "userId" and not sub.get("preferUserId"):
                    failed["notFoundUserIds"].append(value)
                    continue
                key = f"{kind}:{value}"
                state.users[key] = {kind: value}
            state.lists[list_id].add(key)
            success += 1
        lists, fail = outcome(failed)
        return self.send(200, {"successCount": success, "failCount": fail, "failedUpdates": lists})

    def unsubscribe(self, state, body):
        state.stats["unsubscribe"] += 1
        list_id = self.the_list(state, body)
        if list_id is None:
            return None
        failed = {n: [] for n in ("invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds")}
        success = 0
        for sub in body["subscribers"]:
            kind, value = self.ident(sub if isinstance(sub, dict) else {})
            if value is None:
                failed["invalidEmails" if kind == "email" else "invalidUserIds"].append(str(sub.get(kind)))
                continue
            key = self.find(state, kind, value)
            if key is None or key not in state.lists[list_id]:
                failed["notFoundEmails" if kind == "email" else "notFoundUserIds"].append(value)
                continue
            state.lists[list_id].discard(key)
            success += 1
        lists, fail = outcome(failed)
        return self.send(200, {"successCount": success, "failCount": fail, "failedUpdates": lists})

    def delete(self, state, route, value):
        state.stats["delete"] += 1
        kind = "userId" if route == "delete_user_id" else "email"
        key = self.find(state, kind, value)
        if key is None:
            code = "UnknownUserIdError" if kind == "userId" else "UnknownEmailError"
            return self.send(400, {"msg": f"No user with {kind} {value}", "code": code, "params": None})
        del state.users[key]
        for members in state.lists.values():
            members.discard(key)
        return self.send(200, {"msg": "User deletion queued", "code": "Success", "params": None})

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
            if path == "/_mock/lists" and self.command == "GET":
                return self.send(200, {"lists": {str(k): sorted(v) for k, v in state.lists.items()}})
            if path == "/_mock/stats" and self.command == "GET":
                return self.send(200, state.stats)
            if path == "/_mock/reset" and self.command == "POST":
                state.reset()
                return self.send(200, {"ok": True})
            if path == "/_mock/config" and self.command == "POST":
                config = json.loads(text or "{}")
                for key in config:
                    if key not in ("faults", "reject_field", "reject_pattern", "rate_limit", "lists"):
                        return self.send(400, {"error": f"unknown option {key}"})
                state.faults.extend(config.get("faults", []))
                if "reject_field" in config:
                    state.reject_field = config["reject_field"]
                    state.reject_pattern = config.get("reject_pattern", "")
                if "rate_limit" in config:
                    state.rate_limit = config["rate_limit"]
                    state.window_start, state.window_count = time.time(), 0
                for list_id in config.get("lists", []):
                    state.lists.setdefault(int(list_id), set())
                return self.send(200, {"ok": True})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mock Iterable API for revetl's iterable destination.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--openapi", help="validate request bodies against Iterable's Swagger document")
    args = parser.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.api_key)
    server.contract = openapi_contract(args.openapi)
    return serve(server, "mock_iterable", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

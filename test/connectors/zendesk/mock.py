#!/usr/bin/env python3
"""Stateful mock of Zendesk Support's bulk user API and job statuses, for revetl tests.

Usage:
    python3 test/connectors/zendesk/mock.py [--port N] [--port-file PATH]
        [--email E] [--token T] [--oauth-token T] [--openapi PATH]

Python standard library only (plus PyYAML and jsonschema with --openapi); binds 127.0.0.1.
Facts marked "ref" come from /work/shared/reference/destinations.md section 3 (Zendesk) and
the vendor's OpenAPI contract (/work/shared/vendor-specs/zendesk/); "choice" marks this
mock's decisions where the sources are silent.

Zendesk behaviours emulated
  * Auth (ref): Basic "{email}/token:{api token}" (--email, --token; default
    agent@example.com / test-token) or "Bearer <--oauth-token>" (default oauth-token).
    Otherwise 401 {"error": "Couldn't authenticate you"}.
  * POST /api/v2/users/create_or_update_many {"users": [...]} (ref): 1..100 users, else
    400 {"error": "InvalidValue", ...} (choice of shape). Answers 200 {"job_status":
    {id, url, job_type, status: "queued", total, progress: 0, message: null, results:
    null}}: the users are applied when the job completes. Users are matched (ref) on
    external_id when given, else on email (lower-cased, choice); an existing user is
    updated (status "Updated"), else created ("Created", ids from 9000, choice). A user
    with neither -> result Failed "InvalidValue"; a new user without a name -> Failed
    "InvalidValue" "Name: is too short (minimum one character)" (choice, Zendesk's wording
    for the field); an email without "@" or a dot after it -> Failed "InvalidValue"
    "Email: <e> is not properly formatted" (choice).
    Results are in request order (ref): {"index", "id", "status", "action", "success",
    "email"?, "external_id"?} and for failures {"index", "id": null, "status": "Failed",
    "action", "success": false, "error", "details", "email"?}.
  * Bulk import disabled (ref): config "bulk_import_enabled": false -> 403 {"error":
    "Forbidden", "description": "You do not have access to this page. Please contact the
    account owner of this help desk for further help."} for create_or_update_many.
  * RecordInvalid (ref shape): a user whose email matches config "record_invalid"
    (regex) makes the whole call 422 {"error": "RecordInvalid", "description": "Record
    validation errors", "details": {"email": [{"description": "Email: <e> is invalid",
    "error": "InvalidFormat"}]}}; nothing is queued (choice: which calls Zendesk refuses
    synchronously is not documented).
  * Per-record failures (choice of trigger): config "fail_users": [{"field", "pattern",
    "error", "details"}] -> that user's result is Failed with that error and details.
  * DELETE /api/v2/users/destroy_many?ids=1,2 | ?external_ids=a,b (ref: <= 100, a job):
    results {"id", "action": "delete", "success": true, "status": "Deleted"} for each
    user deleted; unknown ids are skipped without a result (choice).
  * GET /api/v2/job_statuses/{id} (ref): each poll moves the job on: "queued" on the first
    poll, "working" until poll number "polls_to_complete" (config, default 3), which
    completes it (applies the writes, fills results, progress = total). Config
    "fail_next_job": "<message>" makes the next job that completes end "failed" with that
    message and nothing applied. Only the last 100 jobs are kept (ref, the stricter rule),
    jobs expire "job_ttl_s" (default 3600) after creation (ref: within an hour), and
    POST /_mock/expire {"id"?} expires one job (or all): a poll of an unknown or expired
    job -> 404 {"error": "RecordNotFound", "description": "Not found"}.
  * Rate limit (ref): "rate_limit" requests per "rate_window_ms" (default 200 per 60000)
    over every authenticated API request; every admitted answer carries X-Rate-Limit and
    X-Rate-Limit-Remaining; over the limit -> 429 with Retry-After (seconds until the
    window rolls, at least 1) and {"error": "APIRateLimitExceeded", ...} (choice of body).
  * Contract (--openapi): each request body is checked against Zendesk's OpenAPI contract
    (test/lib/openapi.py); violations are kept in the journal entry ("contract_errors") and
    the request is refused with 400 (choice).
  * Faults: config "faults": [{"status", "body"?, "headers"?, "path"?} | {"reset": true,
    "path"?}] queue; the next API request (whose path starts with "path", when given)
    consumes one.
  * Journal: every API request {"seq", "method", "path", "query", "headers", "body",
    "status", "contract_errors"?, "fault"?, "job_id"?}.
  * Control API: GET /_mock/health, GET|DELETE /_mock/requests, GET /_mock/users,
    GET /_mock/jobs, GET|POST /_mock/config, POST /_mock/expire, POST /_mock/reset,
    GET /_mock/stats. Unknown config keys -> 400.
"""

import argparse
import base64
import json
import os
import re
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, openapi_contract, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_USERS = 100
KEPT_JOBS = 100
FIRST_ID = 9000
MAX_BODY = 16 * 1024 * 1024

DEFAULT_CONFIG = {
    "bulk_import_enabled": True,
    "record_invalid": None,
    "fail_users": [],
    "polls_to_complete": 3,
    "fail_next_job": None,
    "job_ttl_s": 3600,
    "rate_limit": 200,
    "rate_window_ms": 60000,
    "faults": [],
}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class State:
    def __init__(self, email, token, oauth_token):
        self.lock = threading.Lock()
        self.email, self.token, self.oauth_token = email, token, oauth_token
        self.reset()

    def reset(self):
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))
        self.users = {}  # id -> user
        self.next_id = FIRST_ID
        self.jobs = {}  # id -> job (insertion order = age)
        self.journal = []
        self.seq = 0
        self.window_start = time.monotonic()
        self.window_count = 0
        self.stats = {"requests": 0, "rate_limited": 0, "jobs_created": 0, "jobs_expired": 0,
                      "polls": 0, "contract_violations": 0}

    # -- users ------------------------------------------------------------------
    def find(self, external_id=None, email=None):
        for u in self.users.values():
            if external_id is not None and u.get("external_id") == external_id:
                return u
        if external_id is None and email is not None:
            for u in self.users.values():
                if (u.get("email") or "").lower() == email.lower():
                    return u
        return None

    def upsert(self, index, user):
        out = {"index": index}
        email = user.get("email")
        external_id = user.get("external_id")
        if email is not None:
            out["email"] = email
        if external_id is not None:
            out["external_id"] = external_id
        def failed(error, details):
            out.update({"id": None, "status": "Failed", "action": "create_or_update", "success": False,
                        "error": error, "details": details})
            return out
        if email is None and external_id is None:
            return failed("InvalidValue", "A user needs an email or an external_id")
        for rule in self.config["fail_users"]:
            value = user.get(rule.get("field", "email"))
            if value is not None and re.search(rule["pattern"], str(value)):
                return failed(rule.get("error", "InvalidValue"), rule.get("details", "Invalid value"))
        if email is not None and not EMAIL_RE.match(str(email)):
            return failed("InvalidValue", f"Email: {email} is not properly formatted")
        existing = self.find(external_id=external_id, email=email if external_id is None else None)
        if existing is None and not user.get("name"):
            return failed("InvalidValue", "Name: is too short (minimum one character)")
        if existing is None:
            uid = self.next_id
            self.next_id += 1
            existing = {"id": uid, "writes": 0}
            self.users[uid] = existing
            status = "Created"
        else:
            status = "Updated"
        for k, v in user.items():
            if k == "user_fields" and isinstance(v, dict):
                existing.setdefault("user_fields", {}).update(v)
            elif k != "id":
                existing[k] = v
        if isinstance(existing.get("email"), str):
            existing["email"] = existing["email"].lower()
        existing["writes"] += 1
        out.update({"id": existing["id"], "status": status, "action": "create_or_update", "success": True})
        return out

    # -- jobs -------------------------------------------------------------------
    def new_job(self, kind, payload, base_url):
        jid = uuid.uuid4().hex
        job = {"id": jid, "kind": kind, "payload": payload, "polls": 0, "status": "queued",
               "created": time.monotonic(), "results": None, "message": None,
               "total": len(payload), "url": f"{base_url}/api/v2/job_statuses/{jid}.json"}
        self.jobs[jid] = job
        self.stats["jobs_created"] += 1
        while len(self.jobs) > KEPT_JOBS:  # only the last 100 jobs are kept (ref)
            del self.jobs[next(iter(self.jobs))]
            self.stats["jobs_expired"] += 1
        return job

    def job_view(self, job):
        return {"job_status": {
            "id": job["id"], "url": job["url"],
            "job_type": "Bulk Create or Update Users" if job["kind"] == "upsert" else "Bulk Delete Users",
            "status": job["status"], "total": job["total"],
            "progress": job["total"] if job["status"] == "completed" else 0,
            "message": job["message"], "results": job["results"]}}

    def expire_old(self):
        now = time.monotonic()
        for jid in [j for j, job in self.jobs.items() if now - job["created"] > self.config["job_ttl_s"]]:
            del self.jobs[jid]
            self.stats["jobs_expired"] += 1

    def advance(self, job):
        if job["status"] in ("completed", "failed"):
            return
        job["polls"] += 1
        if job["polls"] < self.config["polls_to_complete"]:
            job["status"] = "queued" if job["polls"] == 1 else "working"
            return
        if self.config["fail_next_job"]:
            job["status"], job["message"] = "failed", self.config["fail_next_job"]
            self.config["fail_next_job"] = None
            return
        if job["kind"] == "upsert":
            job["results"] = [self.upsert(i, u) for i, u in enumerate(job["payload"])]
        else:
            results = []
            field, values = job["payload_field"], job["payload"]
            for v in values:
                victim = None
                for u in self.users.values():
                    if str(u["id"] if field == "ids" else u.get("external_id")) == str(v):
                        victim = u
                if victim is not None:
                    del self.users[victim["id"]]
                    results.append({"id": victim["id"], "action": "delete", "success": True, "status": "Deleted"})
            job["results"] = results
        job["status"] = "completed"
        job["message"] = "Completed at " + time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime())


class Handler(MockHandler):
    json_content_type = "application/json; charset=utf-8"
    timeout = 120

    def handle_any(self):
        url = urlsplit(self.path)
        raw = self.read_body()
        if url.path.startswith("/_mock"):
            return self.control(url, raw)
        state = self.server.state
        with state.lock:
            status, payload, headers, entry = self.api(url, raw)
        if status is None:  # reset fault
            self.reset_connection()
            return
        self.send(status, payload, headers)

    def api(self, url, raw):
        state = self.server.state
        state.seq += 1
        state.stats["requests"] += 1
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        entry = {"seq": state.seq, "method": self.command, "path": url.path, "query": url.query,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                 "status": None}
        state.journal.append(entry)

        def answer(status, payload, headers=None):
            entry["status"] = status
            return status, payload, headers or {}, entry

        auth = self.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Basic "):
            try:
                ok = base64.b64decode(auth[6:]).decode() == f"{state.email}/token:{state.token}"
            except ValueError:
                ok = False
        elif auth == f"Bearer {state.oauth_token}":
            ok = True
        if not ok:
            return answer(401, {"error": "Couldn't authenticate you"})

        faults = state.config["faults"]
        for i, f in enumerate(faults):
            if url.path.startswith(f.get("path", "")):
                del faults[i]
                entry["fault"] = True
                if f.get("reset"):
                    return None, None, None, entry
                return answer(f["status"], f.get("body", {"error": "MockFault"}), f.get("headers"))

        now = time.monotonic()
        window_s = state.config["rate_window_ms"] / 1000.0
        if now - state.window_start >= window_s:
            state.window_start, state.window_count = now, 0
        limit = state.config["rate_limit"]
        if limit is not None and state.window_count >= limit:
            state.stats["rate_limited"] += 1
            retry = max(1, int(window_s - (now - state.window_start) + 0.999))
            return answer(429, {"error": "APIRateLimitExceeded",
                                "description": "Number of allowed API requests per minute exceeded"},
                          {"Retry-After": retry, "X-Rate-Limit": limit, "X-Rate-Limit-Remaining": 0})
        state.window_count += 1
        rate = {} if limit is None else {"X-Rate-Limit": limit,
                                         "X-Rate-Limit-Remaining": max(0, limit - state.window_count)}

        if self.server.contract is not None and body is not None:
            errors = self.server.contract.validate_request(self.command, url.path, body)
            if errors:
                entry["contract_errors"] = errors
                state.stats["contract_violations"] += 1
                return answer(400, {"error": "InvalidValue", "description": "; ".join(errors)[:1000]}, rate)

        base = f"http://{HOST}:{self.server.server_address[1]}"
        if url.path == "/api/v2/users/create_or_update_many":
            if self.command != "POST":
                return answer(405, {"error": "MethodNotAllowed"}, rate)
            if not state.config["bulk_import_enabled"]:
                return answer(403, {"error": "Forbidden", "description": "You do not have access to this page. "
                                    "Please contact the account owner of this help desk for further help."}, rate)
            users = body.get("users") if isinstance(body, dict) else None
            if not isinstance(users, list) or not users or len(users) > MAX_USERS or \
                    not all(isinstance(u, dict) for u in users):
                return answer(400, {"error": "InvalidValue",
                                    "description": f"users must be a list of 1 to {MAX_USERS} objects"}, rate)
            pattern = state.config["record_invalid"]
            if pattern:
                for u in users:
                    if u.get("email") and re.search(pattern, str(u["email"])):
                        return answer(422, {"error": "RecordInvalid", "description": "Record validation errors",
                                            "details": {"email": [{"description": f"Email: {u['email']} is invalid",
                                                                   "error": "InvalidFormat"}]}}, rate)
            job = state.new_job("upsert", users, base)
            entry["job_id"] = job["id"]
            return answer(200, state.job_view(job), rate)
        if url.path == "/api/v2/users/destroy_many":
            if self.command != "DELETE":
                return answer(405, {"error": "MethodNotAllowed"}, rate)
            q = parse_qs(url.query)
            field = "ids" if "ids" in q else "external_ids" if "external_ids" in q else None
            values = q[field][0].split(",") if field else []
            if not values or len(values) > MAX_USERS:
                return answer(400, {"error": "InvalidValue",
                                    "description": f"ids or external_ids: 1 to {MAX_USERS} values"}, rate)
            job = state.new_job("destroy", values, base)
            job["payload_field"] = field
            entry["job_id"] = job["id"]
            return answer(200, state.job_view(job), rate)
        m = re.fullmatch(r"/api/v2/job_statuses/([^/]+?)(\.json)?", url.path)
        if m and self.command == "GET":
            state.stats["polls"] += 1
            state.expire_old()
            job = state.jobs.get(m.group(1))
            entry["job_id"] = m.group(1)
            if job is None:
                return answer(404, {"error": "RecordNotFound", "description": "Not found"}, rate)
            state.advance(job)
            return answer(200, state.job_view(job), rate)
        return answer(404, {"error": "InvalidEndpoint", "description": "Not found"}, rate)

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
            if p == "/_mock/users":
                return self.send(200, {"users": list(state.users.values())})
            if p == "/_mock/jobs":
                return self.send(200, {"jobs": [{k: v for k, v in j.items() if k != "payload"}
                                                 for j in state.jobs.values()]})
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
            if p == "/_mock/expire" and c == "POST":
                ids = [body["id"]] if body.get("id") else list(state.jobs)
                for jid in ids:
                    if state.jobs.pop(jid, None) is not None:
                        state.stats["jobs_expired"] += 1
                return self.send(200, {"expired": ids})
            if p == "/_mock/reset" and c == "POST":
                state.reset()
                return self.send(200, {})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock Zendesk bulk user API for revetl tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--email", default="agent@example.com")
    ap.add_argument("--token", default="test-token")
    ap.add_argument("--oauth-token", default="oauth-token")
    ap.add_argument("--openapi", help="validate request bodies against Zendesk's OpenAPI contract")
    args = ap.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.email, args.token, args.oauth_token)
    server.contract = openapi_contract(args.openapi)
    return serve(server, "mock_zendesk", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

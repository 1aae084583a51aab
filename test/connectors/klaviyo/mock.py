#!/usr/bin/env python3
"""Stateful mock of Klaviyo's profile bulk import jobs, data privacy deletions and list membership,
for revetl tests.

Usage:
    python3 test/connectors/klaviyo/mock.py [--port N] [--port-file PATH] [--api-key K] [--openapi PATH]

Python standard library only (plus jsonschema with --openapi); binds 127.0.0.1.
Facts marked "ref" come from /work/shared/reference/destinations.md section 12 (Klaviyo)
and the vendor's OpenAPI (/work/shared/vendor-specs/klaviyo/stable.json); "choice" marks
this mock's decisions where the sources are silent.

Klaviyo behaviours emulated
  * Auth (ref): `Authorization: Klaviyo-API-Key <--api-key>` (default pk_test); otherwise
    401 {"errors": [{"id", "status": 401, "code": "not_authenticated", "title", "detail"}]}.
  * `revision` header (ref: required on every call, YYYY-MM-DD[.suffix]): missing or
    malformed -> 400 with code "invalid_revision"; each request's revision is journaled.
  * POST /api/profile-bulk-import-jobs (ref): JSON:API body (content type
    application/vnd.api+json, else 415, choice), 1..10,000 profiles, at most 5 MB, else 400;
    answers 202 {"data": {"type": "profile-bulk-import-job", "id", "attributes": {status:
    "queued", created_at, total_count, completed_count: 0, failed_count: 0, started_at,
    completed_at, expires_at}, "links": {"self"}}}. Nothing applies until the job completes.
  * GET /api/profile-bulk-import-jobs/{id} (ref statuses): each poll moves the job on:
    "queued", then "processing" until poll number "polls_to_complete" (config, default 2),
    which completes it: each profile is upserted (matched on external_id, then email
    case-insensitively, then phone_number, choice), null attributes ignored (ref: bulk
    import cannot clear a field), properties merged. A profile fails (import error) when its
    email is not an address (code "invalid", choice) or a config "reject" rule [{"field",
    "pattern", "code"?, "detail"?}] matches an attribute or property. failed_count counts
    them. Config "cancel_next_job": true ends the next completing job "cancelled", nothing
    applied. POST /_mock/expire {"id"?} forgets a job (or all): polls then answer 404.
  * GET /api/profile-bulk-import-jobs/{id}/import-errors (ref): pages of
    "errors_page_size" (config, default 20, ref) import-error objects {type, id, attributes:
    {code, title, detail, source: {pointer}, original_payload}} with original_payload the
    submitted profile resource object (choice: ref does not say which shape) and
    links.next carrying page[cursor] while more remain.
  * Lists (ref paths, bodies and the 1,000-a-call limit from the OpenAPI): config "lists" names
    the lists that exist (ids such as "Y6nRLr"). A job whose relationships.lists names a list
    not in it -> 400 "invalid" (choice); on completion every imported profile joins the job's
    lists. GET /api/profile-bulk-import-jobs/{id}/profiles: the profiles a complete job
    imported, pages of page[size] (default 20, at most 100, ref) with links.next carrying
    page[cursor] (choice of cursor), fields[profile] honoured; nothing while the job is not
    complete (choice). POST / DELETE /api/lists/{id}/relationships/profiles {"data": [{"type":
    "profile", "id"}]}: 1..1000 ids (else 400), an unknown list -> 404, an unknown profile id
    -> 400 (choice), else 204 with no body; removing a non-member is a no-op (choice). A
    deleted profile leaves every list. GET /_mock/lists: each list's members by email.
  * POST /api/data-privacy-deletion-jobs (ref): exactly one of email, phone_number (or a
    profile id) -> 202 with no body; the profile is deleted (an unknown one too: 202).
  * Rate limit (ref): "rate_limit" requests per "rate_window_ms" (default none) over every
    API call; answers carry RateLimit-Limit/-Remaining/-Reset, except the 429, which carries
    Retry-After (seconds) and {"errors": [{"code": "throttled", ...}]}.
  * Contract (--openapi): each POST and DELETE body is checked against Klaviyo's OpenAPI
    (test/lib/openapi.py); violations are journaled ("contract_errors") and refused with 400.
  * Faults: config "faults": [{"status", "body"?, "headers"?, "path"?}] queue; the next API
    request (whose path starts with "path") consumes one.
  * Journal: every API request {"seq", "method", "path", "query", "headers", "body",
    "status", "contract_errors"?, "fault"?, "job_id"?}.
  * Control API: GET /_mock/health, GET|DELETE /_mock/requests, GET /_mock/profiles,
    GET /_mock/jobs, GET /_mock/lists, GET|POST /_mock/config, POST /_mock/expire, POST /_mock/reset,
    GET /_mock/stats. Unknown config keys -> 400.
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
from mockserver import MockHandler, MockServer, openapi_contract, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_PROFILES = 10000
MAX_REQUEST = 5 * 1000 * 1000
MAX_BODY = 16 * 1024 * 1024
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
REVISION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z0-9]+)?$")
JOBS = "/api/profile-bulk-import-jobs"

DEFAULT_CONFIG = {
    "polls_to_complete": 2,
    "reject": [],
    "cancel_next_job": False,
    "errors_page_size": 20,
    "rate_limit": None,
    "rate_window_ms": 1000,
    "lists": [],
    "faults": [],
}
MAX_LIST_PROFILES = 1000
LIST_RELATIONSHIP = re.compile(r"/api/lists/([^/]+)/relationships/profiles")


def error(status, code, title, detail, pointer=None):
    e = {"id": uuid.uuid4().hex, "status": status, "code": code, "title": title, "detail": detail}
    if pointer:
        e["source"] = {"pointer": pointer}
    return {"errors": [e]}


class State:
    def __init__(self, api_key):
        self.lock = threading.Lock()
        self.api_key = api_key
        self.reset()

    def reset(self):
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))
        self.profiles = {}  # klaviyo id -> attributes
        self.members = {}  # list id -> set of profile ids
        self.jobs = {}
        self.journal = []
        self.seq = 0
        self.window_start = time.monotonic()
        self.window_count = 0
        self.stats = {"requests": 0, "jobs_created": 0, "polls": 0, "rate_limited": 0, "deleted": 0,
                      "contract_violations": 0, "import_errors": 0, "list_added": 0, "list_removed": 0}

    def find(self, attrs):
        for key in ("external_id", "email", "phone_number"):
            value = attrs.get(key)
            if value is None:
                continue
            for pid, p in self.profiles.items():
                have = p.get(key)
                if have is not None and (str(have).lower() == str(value).lower() if key == "email"
                                         else str(have) == str(value)):
                    return pid
        return None

    def upsert(self, index, resource):
        attrs = resource.get("attributes") or {}
        props = attrs.get("properties") or {}

        def failed(code, detail, field):
            return {"type": "import-error", "id": uuid.uuid4().hex,
                    "attributes": {"code": code, "title": "Invalid input", "detail": detail,
                                   "source": {"pointer": f"/data/attributes/profiles/data/{index}/attributes/{field}"},
                                   "original_payload": resource}}
        for rule in self.config["reject"]:
            field = rule.get("field", "email")
            value = attrs.get(field, props.get(field))
            if value is not None and re.search(rule["pattern"], str(value)):
                return failed(rule.get("code", "invalid"), rule.get("detail", f"Invalid {field}"), field)
        email = attrs.get("email")
        if email is not None and not EMAIL_RE.match(str(email)):
            return failed("invalid", "Invalid email address", "email")
        if all(attrs.get(k) is None for k in ("email", "phone_number", "external_id")):
            return failed("invalid", "A profile needs an email, phone_number or external_id", "email")
        pid = self.find(attrs)
        if pid is None:
            pid = "01" + uuid.uuid4().hex[:24].upper()
            self.profiles[pid] = {"properties": {}}
        p = self.profiles[pid]
        for k, v in attrs.items():
            if v is None:
                continue  # nulls are ignored by bulk import (ref)
            if k == "properties":
                p["properties"].update({pk: pv for pk, pv in v.items() if pv is not None})
            else:
                p[k] = v
        self.last_upserted = pid
        return None

    def view(self, job, base):
        done = job["status"] == "complete"
        return {"data": {"type": "profile-bulk-import-job", "id": job["id"], "attributes": {
            "status": job["status"], "created_at": job["created_at"], "total_count": len(job["profiles"]),
            "completed_count": len(job["profiles"]) - len(job["errors"]) if done else 0,
            "failed_count": len(job["errors"]) if done else 0,
            "started_at": job["created_at"] if job["polls"] > 1 else None,
            "completed_at": job["created_at"] if done else None,
            "expires_at": "2099-01-01T00:00:00+00:00"},
            "links": {"self": f"{base}{JOBS}/{job['id']}"}}}

    def advance(self, job):
        if job["status"] in ("complete", "cancelled"):
            return
        job["polls"] += 1
        if job["polls"] < self.config["polls_to_complete"]:
            job["status"] = "queued" if job["polls"] == 1 else "processing"
            return
        if self.config["cancel_next_job"]:
            self.config["cancel_next_job"] = False
            job["status"] = "cancelled"
            return
        for i, resource in enumerate(job["profiles"]):
            e = self.upsert(i, resource)
            if e is not None:
                job["errors"].append(e)
                self.stats["import_errors"] += 1
                continue
            if self.last_upserted not in job["imported"]:
                job["imported"].append(self.last_upserted)
            for list_id in job["lists"]:
                self.members.setdefault(list_id, set()).add(self.last_upserted)
                self.stats["list_added"] += 1
        job["status"] = "complete"


class Handler(MockHandler):
    timeout = 120

    def send(self, status, payload, headers=None):
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.api+json")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        url = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            return self.send(413, error(413, "too_large", "Payload too large", "The request is too large."))
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
        entry = {"seq": state.seq, "method": self.command, "path": url.path, "query": url.query,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "status": None}
        state.journal.append(entry)

        def answer(status, payload, headers=None):
            entry["status"] = status
            return status, payload, headers or {}

        if self.headers.get("Authorization", "") != f"Klaviyo-API-Key {state.api_key}":
            return answer(401, error(401, "not_authenticated", "Authentication credentials were not provided.",
                                     "Missing or invalid private key."))
        revision = self.headers.get("revision")
        if not revision or not REVISION_RE.match(revision):
            return answer(400, error(400, "invalid_revision", "Invalid revision",
                                     "The revision header is required (YYYY-MM-DD)."))

        faults = state.config["faults"]
        for i, f in enumerate(faults):
            if url.path.startswith(f.get("path", "")):
                del faults[i]
                entry["fault"] = True
                return answer(f["status"], f.get("body", error(f["status"], "mock_fault", "Fault", "mock fault")),
                              f.get("headers"))

        now = time.monotonic()
        window_s = state.config["rate_window_ms"] / 1000.0
        if now - state.window_start >= window_s:
            state.window_start, state.window_count = now, 0
        limit = state.config["rate_limit"]
        if limit is not None and state.window_count >= limit:
            state.stats["rate_limited"] += 1
            retry = max(1, int(window_s - (now - state.window_start) + 0.999))
            return answer(429, error(429, "throttled", "Request was throttled.",
                                     f"Request was throttled. Expected available in {retry} second."),
                          {"Retry-After": retry})
        state.window_count += 1
        rate = {} if limit is None else {"RateLimit-Limit": limit,
                                         "RateLimit-Remaining": max(0, limit - state.window_count),
                                         "RateLimit-Reset": max(1, int(window_s))}

        if self.command in ("POST", "DELETE"):
            if not (self.headers.get("Content-Type") or "").startswith("application/vnd.api+json"):
                return answer(415, error(415, "unsupported_media_type", "Unsupported media type",
                                         "Use application/vnd.api+json."), rate)
            if self.server.contract is not None:
                errors = self.server.contract.validate_request(self.command, url.path, body)
                if errors:
                    entry["contract_errors"] = errors
                    state.stats["contract_violations"] += 1
                    return answer(400, error(400, "invalid", "Invalid input", "; ".join(errors)[:1000]), rate)

        base = f"http://{HOST}:{self.server.server_address[1]}"
        if url.path == JOBS and self.command == "POST":
            try:
                profiles = body["data"]["attributes"]["profiles"]["data"]
            except (KeyError, TypeError):
                profiles = None
            if not isinstance(profiles, list) or not profiles or len(profiles) > MAX_PROFILES or len(raw) > MAX_REQUEST:
                return answer(400, error(400, "invalid", "Invalid input",
                                         f"profiles: 1 to {MAX_PROFILES}, at most 5 MB",
                                         "/data/attributes/profiles/data"), rate)
            lists = [r.get("id") for r in
                     ((body["data"].get("relationships") or {}).get("lists") or {}).get("data") or []]
            unknown = [x for x in lists if x not in state.config["lists"]]
            if unknown:
                return answer(400, error(400, "invalid", "Invalid input", f"List {unknown[0]} does not exist",
                                         "/data/relationships/lists/data"), rate)
            jid = uuid.uuid4().hex
            job = {"id": jid, "profiles": profiles, "status": "queued", "polls": 0, "errors": [],
                   "lists": lists, "imported": [],
                   "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
            state.jobs[jid] = job
            state.stats["jobs_created"] += 1
            entry["job_id"] = jid
            return answer(202, state.view(job, base), rate)
        m = re.fullmatch(JOBS + r"/([^/]+)/profiles", url.path)
        if m and self.command == "GET":
            job = state.jobs.get(m.group(1))
            entry["job_id"] = m.group(1)
            if job is None:
                return answer(404, error(404, "not_found", "Not found.", "No such job."), rate)
            q = parse_qs(url.query)
            try:
                size = int((q.get("page[size]") or ["20"])[0])
                start = int((q.get("page[cursor]") or ["0"])[0] or 0)
            except ValueError:
                return answer(400, error(400, "invalid", "Invalid input", "Bad page parameters"), rate)
            if not 1 <= size <= 100:
                return answer(400, error(400, "invalid", "Invalid input", "page[size] must be 1 to 100"), rate)
            fields = (q.get("fields[profile]") or [""])[0]
            ids = job["imported"] if job["status"] == "complete" else []
            data = []
            for pid in ids[start:start + size]:
                p = state.profiles.get(pid, {})
                attrs = {k: v for k, v in p.items() if not fields or k in fields.split(",")}
                data.append({"type": "profile", "id": pid, "attributes": attrs})
            more = start + size < len(ids)
            nxt = f"{base}{url.path}?page%5Bsize%5D={size}&page%5Bcursor%5D={start + size}" if more else None
            return answer(200, {"data": data, "links": {"self": f"{base}{url.path}", "next": nxt}}, rate)
        m = LIST_RELATIONSHIP.fullmatch(url.path)
        if m and self.command in ("POST", "DELETE"):
            list_id = m.group(1)
            if list_id not in state.config["lists"]:
                return answer(404, error(404, "not_found", "Not found.", f"A list with id {list_id} does not exist."),
                              rate)
            try:
                ids = [r["id"] for r in body["data"] if r.get("type") == "profile"]
            except (KeyError, TypeError, AttributeError):
                ids = None
            if not ids or len(ids) > MAX_LIST_PROFILES:
                return answer(400, error(400, "invalid", "Invalid input", f"1 to {MAX_LIST_PROFILES} profiles",
                                         "/data"), rate)
            unknown = [pid for pid in ids if pid not in state.profiles]
            if unknown:
                return answer(400, error(400, "invalid", "Invalid input", f"Profile {unknown[0]} does not exist",
                                         "/data"), rate)
            members = state.members.setdefault(list_id, set())
            for pid in ids:
                if self.command == "POST":
                    members.add(pid)
                    state.stats["list_added"] += 1
                elif pid in members:
                    members.discard(pid)
                    state.stats["list_removed"] += 1
            return answer(204, None, rate)
        m = re.fullmatch(JOBS + r"/([^/]+)(/import-errors)?", url.path)
        if m and self.command == "GET":
            jid = m.group(1)
            entry["job_id"] = jid
            job = state.jobs.get(jid)
            if job is None:
                return answer(404, error(404, "not_found", "Not found.", f"A job with id {jid} does not exist."),
                              rate)
            if m.group(2) is None:
                state.stats["polls"] += 1
                state.advance(job)
                return answer(200, state.view(job, base), rate)
            q = parse_qs(url.query)
            start = int((q.get("page[cursor]") or ["0"])[0] or 0)
            size = state.config["errors_page_size"]
            page = job["errors"][start:start + size]
            more = start + size < len(job["errors"])
            links = {"self": f"{base}{url.path}", "next": (f"{base}{url.path}?page%5Bcursor%5D={start + size}"
                                                           if more else None)}
            return answer(200, {"data": page, "links": links}, rate)
        if url.path == "/api/data-privacy-deletion-jobs" and self.command == "POST":
            try:
                attrs = body["data"]["attributes"]["profile"]["data"].get("attributes") or {}
            except (KeyError, TypeError, AttributeError):
                attrs = None
            given = [k for k in ("email", "phone_number") if attrs and attrs.get(k) is not None]
            if attrs is None or len(given) != 1:
                return answer(400, error(400, "invalid", "Invalid input",
                                         "Exactly one of email, phone_number or id is required."), rate)
            pid = state.find({given[0]: attrs[given[0]]})
            if pid is not None:
                del state.profiles[pid]
                for members in state.members.values():
                    members.discard(pid)
                state.stats["deleted"] += 1
            return answer(202, None, rate)
        return answer(404, error(404, "not_found", "Not found.", "Not found."), rate)

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
            if p == "/_mock/profiles":
                return self.send(200, {"profiles": [dict(v, id=k) for k, v in state.profiles.items()]})
            if p == "/_mock/lists":
                return self.send(200, {"lists": {k: sorted(str(state.profiles.get(pid, {}).get("email"))
                                                           for pid in v) for k, v in state.members.items()}})
            if p == "/_mock/jobs":
                return self.send(200, {"jobs": [{k: v for k, v in j.items() if k not in ("profiles", "imported")}
                                                 for j in state.jobs.values()]})
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
            if p == "/_mock/expire" and c == "POST":
                ids = [body["id"]] if body.get("id") else list(state.jobs)
                for jid in ids:
                    state.jobs.pop(jid, None)
                return self.send(200, {"expired": ids})
            if p == "/_mock/reset" and c == "POST":
                state.reset()
                return self.send(200, {})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock Klaviyo bulk profile import API for revetl tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--api-key", default="pk_test")
    ap.add_argument("--openapi", help="validate request bodies against Klaviyo's OpenAPI")
    args = ap.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.api_key)
    server.contract = openapi_contract(args.openapi)
    return serve(server, "mock_klaviyo", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

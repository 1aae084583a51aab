#!/usr/bin/env python3
"""Stateful mock of Salesforce's REST API (OAuth token endpoint, sObject Collections, Bulk API 2.0
ingest jobs), for revetl tests.

Usage:
    python3 test/connectors/salesforce/mock.py [--port N] [--port-file PATH] [--postman DIR]

Python standard library only; binds 127.0.0.1. Facts marked "ref" come from
/work/shared/reference/destinations.md sections 2 and 8 and /work/shared/vendor-specs/salesforce/
SOURCE.md; "choice" marks this mock's decisions where the sources are silent.

Salesforce behaviours emulated
  * POST /services/oauth2/token (ref): form grant_type=refresh_token, client_id, client_secret,
    refresh_token (CLIENT_ID / CLIENT_SECRET / REFRESH_TOKEN below). Answers {access_token,
    instance_url, id, token_type: "Bearer", issued_at, signature} and no expires_in (ref);
    instance_url is this mock's own URL unless config "instance_url" says otherwise. Wrong
    refresh token -> 400 {"error": "invalid_grant", "error_description": "expired access/refresh
    token"}; wrong client -> 400 invalid_client.
  * Access tokens live config "token_ttl_s" (default 3600, choice); POST /_mock/expire_tokens
    expires every issued token (the switch). An API call with an unknown or expired token ->
    401 [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}] (ref).
  * Every API answer carries Sforce-Limit-Info: api-usage=N/M (ref), N counting API calls,
    M = config "api_limit" (default 15000). Over the limit, or with config
    "request_limit_exceeded": true -> 403 [{"message": "TotalRequests Limit exceeded.",
    "errorCode": "REQUEST_LIMIT_EXCEEDED"}] (ref).
  * PATCH /services/data/vXX.X/composite/sobjects/{object}/{externalIdField} (ref): {allOrNone?,
    records: [...]}, 1..200 records (else 400 [{"errorCode": "EXCEEDED_ID_LIMIT"}], choice of
    code); every record needs attributes.type == object (else that record fails
    INVALID_TYPE, choice) and no Id (else INVALID_FIELD, choice); records matched on the external
    id field: updated, else created. Results in request order: {id, success, errors, created}.
    allOrNone true rolls back all on any failure (ref).
  * PATCH .../composite/sobjects (update by Id in each record; unknown id -> ENTITY_IS_DELETED,
    choice) and POST .../composite/sobjects (create) (ref).
  * Record rules (choice of trigger, Salesforce's codes): a Lead or Contact created without
    LastName -> REQUIRED_FIELD_MISSING "Required fields are missing: [LastName]" fields
    ["LastName"]; an Email without "@" and a dot after it -> INVALID_EMAIL_ADDRESS "Email:
    invalid email address: <e>" fields ["Email"]; config "rules": [{"field", "pattern",
    "statusCode", "message"}] more of them.
  * DELETE .../composite/sobjects?ids=a,b&allOrNone=false (ref): <= 200 ids; results in order of
    ids {id, success: true, errors: []} or ENTITY_IS_DELETED for an unknown id (ref code).
  * Bulk API 2.0 (ref): POST .../jobs/ingest {object, operation (insert|upsert|update|delete),
    externalIdFieldName (required for upsert), contentType, columnDelimiter, lineEnding} ->
    200 job info (state Open); PUT .../jobs/ingest/{id}/batches (Content-Type text/csv, only while
    Open) -> 201 no body; PATCH .../jobs/ingest/{id} {"state": "UploadComplete" | "Aborted"};
    GET .../jobs/ingest/{id}: each poll moves the job on (UploadComplete -> InProgress), the
    poll number config "polls_to_complete" (default 3) processes it (the same record rules) and
    answers JobComplete with numberRecordsProcessed/Failed; config "fail_next_job": "<msg>"
    ends the next job Failed with that errorMessage, nothing applied. GET .../successfulResults/
    CSV "sf__Id","sf__Created",<uploaded columns>; .../failedResults/ CSV "sf__Id","sf__Error"
    (STATUS_CODE:message:fields --),<columns> (ref layout). CSV values "#N/A" set null (ref).
    A job unknown -> 404 [{"errorCode": "NOT_FOUND"}].
  * Contract (--postman DIR): every request is checked with test/lib/postman.py against
    Salesforce's Postman collection plus the documented requests SOURCE.md lists that the
    collection lacks (upsert) or gets wrong (delete); violations are kept in the journal entry
    ("contract_errors") and the request is refused with 400 (choice).
  * Faults: config "faults": [{"status", "body"?, "path"?} | {"reset": true, "path"?}] queue; the
    next API request (whose path contains "path", when given) consumes one.
  * Journal: every request {"seq", "method", "path", "query", "headers", "body" (JSON) or
    "text" (CSV / form), "status", "contract_errors"?, "fault"?, "job_id"?}.
  * Control API: GET /_mock/health, GET|DELETE /_mock/requests, GET /_mock/records?object=X,
    GET /_mock/jobs, GET|POST /_mock/config, POST /_mock/expire_tokens, POST /_mock/reset,
    GET /_mock/stats. Unknown config keys -> 400.
"""

import argparse
import csv
import io
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
CLIENT_ID = "sf-client-id"
CLIENT_SECRET = "sf-client-secret"
REFRESH_TOKEN = "sf-refresh-token"
MAX_RECORDS = 200
MAX_BODY = 64 * 1024 * 1024
PREFIX = {"Lead": "00Q", "Contact": "003", "Account": "001"}

DEFAULT_CONFIG = {
    "instance_url": None,
    "token_ttl_s": 3600,
    "api_limit": 15000,
    "request_limit_exceeded": False,
    "rules": [],
    "polls_to_complete": 3,
    "fail_next_job": None,
    "faults": [],
}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATA = re.compile(r"^/services/data/v(\d+\.\d)(/.*)$")

# What the collection lacks or gets wrong, from the documentation (SOURCE.md rows 1 and 2).
EXTRA = [
    {"_name": "docs:sobject_collections_upsert", "method": "PATCH",
     "url": "{{_endpoint}}/services/data/v{{version}}/composite/sobjects/<SOBJECT>/<EXTERNAL_ID_FIELD>",
     "headerData": [{"key": "Content-Type", "value": "application/json"}], "dataMode": "raw",
     "rawModeData": '{"records": "SObject[]"}'},
    {"_name": "docs:sobject_collections_update", "method": "PATCH",
     "url": "{{_endpoint}}/services/data/v{{version}}/composite/sobjects",
     "headerData": [{"key": "Content-Type", "value": "application/json"}], "dataMode": "raw",
     "rawModeData": '{"records": "SObject[]"}'},
    {"_name": "docs:sobject_collections_delete", "method": "DELETE",
     "url": "{{_endpoint}}/services/data/v{{version}}/composite/sobjects",
     "queryParams": [{"key": "ids", "description": "Required. Up to 200 ids."}]},
]


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.url = ""
        self.reset()

    def reset(self):
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))
        self.records = {}  # object -> {id: record}
        # (object, field) -> {str(value): id}: finds a record by an external
        # id without a scan (a 100k-record upsert was quadratic). Entries may
        # be stale (a record changed or deleted since): find() checks them.
        self.index = {}
        self.next_id = 1
        self.tokens = {}  # access token -> issued (monotonic)
        self.jobs = {}
        self.next_job = 1
        self.journal = []
        self.seq = 0
        self.api_usage = 0
        self.stats = {"requests": 0, "tokens_issued": 0, "invalid_session": 0, "limit_exceeded": 0,
                      "jobs_created": 0, "polls": 0, "contract_violations": 0}

    def new_id(self, obj):
        rid = (PREFIX.get(obj, "a00") + str(self.next_id).rjust(12, "0") + "AAA")
        self.next_id += 1
        return rid

    def check(self, obj, record, creating):
        """Salesforce's validation of one record: None or an error dict."""
        email = record.get("Email")
        if email is not None and not EMAIL_RE.match(str(email)):
            return {"statusCode": "INVALID_EMAIL_ADDRESS", "message": f"Email: invalid email address: {email}",
                    "fields": ["Email"]}
        if creating and obj in ("Lead", "Contact") and not record.get("LastName"):
            return {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]",
                    "fields": ["LastName"]}
        for rule in self.config["rules"]:
            v = record.get(rule["field"])
            if v is not None and re.search(rule["pattern"], str(v)):
                return {"statusCode": rule["statusCode"], "message": rule["message"], "fields": [rule["field"]]}
        return None

    def find(self, obj, field, value):
        table = self.records.get(obj, {})
        index = self.index.get((obj, field))
        if index is None:
            index = self.index[(obj, field)] = {str(r[field]): rid for rid, r in table.items() if field in r}
        rid = index.get(str(value))
        if rid is not None and rid in table and str(table[rid].get(field)) == str(value):
            return rid
        if rid is not None:  # stale: the record changed or went; look again
            del self.index[(obj, field)]
            for rid, r in table.items():
                if field in r and str(r[field]) == str(value):
                    return rid
        return None

    def note_values(self, obj, rid, fields):
        """Keeps the external-id indexes current after a write."""
        for (o, f), index in self.index.items():
            if o == obj and f in fields:
                index[str(fields[f])] = rid

    def write(self, obj, op, record, field=None):
        """Applies one record; returns (result dict, undo)."""
        def fail(err):
            return {"success": False, "errors": [err]}, None
        fields = {k: v for k, v in record.items() if k != "attributes"}
        table = self.records.setdefault(obj, {})
        if op == "upsert":
            if "Id" in fields:
                return fail({"statusCode": "INVALID_FIELD", "message": "Id not allowed in an upsert by external id",
                             "fields": ["Id"]})
            value = fields.get(field)
            if value in (None, ""):
                return fail({"statusCode": "MISSING_ARGUMENT", "message": f"{field} not specified", "fields": []})
            rid = self.find(obj, field, value)
        elif op == "update":
            rid = fields.pop("Id", None)
            if rid not in table:
                return fail({"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []})
        else:
            rid = None
        creating = rid is None
        err = self.check(obj, dict(table.get(rid, {}), **fields), creating)
        if err:
            return fail(err)
        before = json.loads(json.dumps(table[rid])) if rid in table else None
        if creating:
            rid = self.new_id(obj)
            table[rid] = {"Id": rid}
        table[rid].update(fields)
        self.note_values(obj, rid, fields)

        def undo():
            # A value restored may have no index entry: indexes are rebuilt.
            self.index.clear()
            if before is None:
                table.pop(rid, None)
            else:
                table[rid] = before
        return {"id": rid, "success": True, "errors": [], "created": creating}, undo

    def job_view(self, job):
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def process(self, job):
        if self.config["fail_next_job"]:
            job["state"] = "Failed"
            job["errorMessage"] = self.config["fail_next_job"]
            self.config["fail_next_job"] = None
            return
        rows = list(csv.reader(io.StringIO(job["_csv"], newline="")))
        header, data = (rows[0], rows[1:]) if rows else ([], [])
        ok, failed = [], []
        for row in data:
            record = {}
            for name, value in zip(header, row):
                if value == "":
                    continue  # empty: left as it is (ref)
                record[name] = None if value == "#N/A" else value
            result, _ = self.write(job["object"], job["operation"], record, job.get("externalIdFieldName"))
            if result["success"]:
                ok.append([result["id"], "true" if result["created"] else "false"] + row)
            else:
                e = result["errors"][0]
                failed.append(["", f"{e['statusCode']}:{e['message']}:{','.join(e['fields'])} --"] + row)
        job["_ok"] = (["sf__Id", "sf__Created"] + header, ok)
        job["_failed"] = (["sf__Id", "sf__Error"] + header, failed)
        job["numberRecordsProcessed"] = len(data)
        job["numberRecordsFailed"] = len(failed)
        job["state"] = "JobComplete"


def csv_text(header, rows):
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


class Handler(MockHandler):
    max_body = MAX_BODY
    timeout = 120

    def send(self, status, payload, headers=None, text=None, ctype="application/json;charset=UTF-8"):
        if text is not None:
            body = text.encode()
        else:
            body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if body:
            self.send_header("Content-Type", ctype)
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
            status, payload, headers, text = self.api(url, raw)
        if status is None:  # reset fault
            self.reset_connection()
            return
        if text is not None:
            return self.send(status, None, headers, text=text, ctype="text/csv")
        self.send(status, payload, headers)

    def api(self, url, raw):
        state = self.server.state
        state.seq += 1
        state.stats["requests"] += 1
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = None
        if ctype == "application/json" and raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        entry = {"seq": state.seq, "method": self.command, "path": url.path, "query": url.query,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "status": None}
        if body is None and raw:
            entry["text"] = raw.decode(errors="replace")
        state.journal.append(entry)
        extra = {}

        def answer(status, payload, text=None):
            entry["status"] = status
            return status, payload, extra, text

        if self.server.contract:
            errors = self.server.contract.validate(self.command, url.path, url.query, entry["headers"], raw)
            if errors:
                entry["contract_errors"] = errors
                state.stats["contract_violations"] += 1
                return answer(400, [{"message": "; ".join(errors), "errorCode": "CONTRACT_VIOLATION"}])
        for i, f in enumerate(state.config["faults"]):
            if f.get("path") and f["path"] not in url.path:
                continue
            state.config["faults"].pop(i)
            entry["fault"] = f
            if f.get("reset"):
                entry["status"] = "reset"
                return None, None, {}, None
            return answer(f["status"], f.get("body"))

        if url.path == "/services/oauth2/token" and self.command == "POST":
            return answer(*self.token(raw))
        m = DATA.match(url.path)
        if not m:
            return answer(404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
        rest = m.group(2)
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        issued = state.tokens.get(token)
        if issued is None or time.monotonic() - issued > state.config["token_ttl_s"]:
            state.stats["invalid_session"] += 1
            return answer(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        state.api_usage += 1
        extra["Sforce-Limit-Info"] = f"api-usage={state.api_usage}/{state.config['api_limit']}"
        if state.config["request_limit_exceeded"] or state.api_usage > state.config["api_limit"]:
            state.stats["limit_exceeded"] += 1
            return answer(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
        return answer(*self.data(rest, url, body, raw, ctype, entry))

    def token(self, raw):
        state = self.server.state
        form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 400, {"error": "invalid_client", "error_description": "invalid client credentials"}
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != REFRESH_TOKEN:
            return 400, {"error": "invalid_grant", "error_description": "expired access/refresh token"}
        tok = "00D000000000001!" + uuid.uuid4().hex
        state.tokens[tok] = time.monotonic()
        state.stats["tokens_issued"] += 1
        return 200, {"access_token": tok, "instance_url": state.config["instance_url"] or state.url,
                     "id": "https://login.salesforce.com/id/00D000000000001/005000000000001",
                     "token_type": "Bearer", "issued_at": str(int(time.time() * 1000)),
                     "signature": "c2lnbmF0dXJl"}

    def data(self, rest, url, body, raw, ctype, entry):
        state = self.server.state
        c = self.command
        bad = [{"message": "malformed request", "errorCode": "JSON_PARSER_ERROR"}]
        m = re.fullmatch(r"/composite/sobjects(?:/([A-Za-z0-9_]+)(?:/([A-Za-z0-9_]+))?)?", rest)
        if m and c == "DELETE" and not m.group(1):
            ids = [i for i in (parse_qs(url.query).get("ids", [""])[0]).split(",") if i]
            if not ids or len(ids) > MAX_RECORDS:
                return 400, [{"message": "ids: 1 to 200", "errorCode": "EXCEEDED_ID_LIMIT"}]
            out = []
            for rid in ids:
                table = next((t for t in state.records.values() if rid in t), None)
                if table is None:
                    out.append({"id": rid, "success": False, "errors": [
                        {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]})
                else:
                    del table[rid]
                    out.append({"id": rid, "success": True, "errors": []})
            return 200, out
        if m and c in ("PATCH", "POST") and (c == "POST") == (m.group(1) is None and c == "POST"):
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                return 400, bad
            records = body["records"]
            if not records or len(records) > MAX_RECORDS:
                return 400, [{"message": "record limit reached. cannot submit more than 200 records into this call",
                              "errorCode": "EXCEEDED_ID_LIMIT"}]
            obj, field = m.group(1), m.group(2)
            if c == "PATCH" and obj and not field:
                return 404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
            op = "upsert" if field else ("update" if c == "PATCH" else "insert")
            out, undos = [], []
            for r in records:
                t = (r.get("attributes") or {}).get("type") if isinstance(r, dict) else None
                if not t or (obj and t != obj):
                    out.append({"success": False, "errors": [{"statusCode": "INVALID_TYPE",
                                                              "message": "attributes.type missing or not " + str(obj),
                                                              "fields": []}]})
                    continue
                result, undo = state.write(t, op, r, field)
                out.append(result)
                if undo:
                    undos.append(undo)
            if body.get("allOrNone") and any(not r["success"] for r in out):
                for u in reversed(undos):
                    u()
                out = [r if not r["success"] else {"success": False, "errors": [
                    {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back",
                     "fields": []}]} for r in out]
            return 200, out
        if rest == "/jobs/ingest" and c == "POST":
            if not isinstance(body, dict) or not body.get("object") or \
                    body.get("operation") not in ("insert", "upsert", "update", "delete"):
                return 400, [{"message": "object and operation required", "errorCode": "INVALIDJOB"}]
            if body["operation"] == "upsert" and not body.get("externalIdFieldName"):
                return 400, [{"message": "externalIdFieldName required for upsert", "errorCode": "INVALIDJOB"}]
            jid = "750" + str(state.next_job).rjust(12, "0") + "AAA"
            state.next_job += 1
            v = m.group(1) if (m := DATA.match(urlsplit(self.path).path)) else "60.0"
            job = {"id": jid, "operation": body["operation"], "object": body["object"],
                   "externalIdFieldName": body.get("externalIdFieldName"), "state": "Open",
                   "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "LF",
                   "contentUrl": f"services/data/v{v}/jobs/ingest/{jid}/batches", "apiVersion": float(v),
                   "_csv": None, "_polls": 0}
            state.jobs[jid] = job
            state.stats["jobs_created"] += 1
            entry["job_id"] = jid
            return 200, state.job_view(job)
        m = re.fullmatch(r"/jobs/ingest/([A-Za-z0-9]+)(/batches|/successfulResults/?|/failedResults/?)?", rest)
        if m:
            job = state.jobs.get(m.group(1))
            entry["job_id"] = m.group(1)
            if job is None:
                return 404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
            sub = (m.group(2) or "").rstrip("/")
            if sub == "/batches" and c == "PUT":
                if job["state"] != "Open" or ctype != "text/csv":
                    return 400, [{"message": "job not open or not CSV", "errorCode": "INVALIDJOBSTATE"}]
                job["_csv"] = raw.decode()
                return 201, None
            if not sub and c == "PATCH":
                want = (body or {}).get("state")
                if want == "UploadComplete" and job["state"] == "Open" and job["_csv"] is not None:
                    job["state"] = "UploadComplete"
                elif want == "Aborted" and job["state"] in ("Open", "UploadComplete", "InProgress"):
                    job["state"] = "Aborted"
                else:
                    return 400, [{"message": f"cannot move a job from {job['state']} to {want}",
                                  "errorCode": "INVALIDJOBSTATE"}]
                return 200, state.job_view(job)
            if not sub and c == "GET":
                state.stats["polls"] += 1
                if job["state"] in ("UploadComplete", "InProgress"):
                    job["_polls"] += 1
                    job["state"] = "InProgress"
                    if job["_polls"] >= state.config["polls_to_complete"]:
                        state.process(job)
                return 200, state.job_view(job)
            if sub in ("/successfulResults", "/failedResults") and c == "GET":
                if job["state"] != "JobComplete":
                    return 400, [{"message": "job not complete", "errorCode": "INVALIDJOBSTATE"}]
                header, rows = job["_ok"] if sub == "/successfulResults" else job["_failed"]
                return 200, None, csv_text(header, rows)
        return 404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]

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
                obj = parse_qs(url.query).get("object", [""])[0]
                return self.send(200, {"records": list(state.records.get(obj, {}).values())})
            if p == "/_mock/jobs":
                return self.send(200, {"jobs": [state.job_view(j) for j in state.jobs.values()]})
            if p == "/_mock/stats":
                return self.send(200, dict(state.stats, api_usage=state.api_usage))
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
                n = len(state.tokens)
                state.tokens = {}
                return self.send(200, {"expired": n})
            if p == "/_mock/reset" and c == "POST":
                state.reset()
                return self.send(200, {})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mock Salesforce REST API for revetl tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--postman", help="validate requests against Salesforce's Postman collection (a directory)")
    args = ap.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State()
    server.contract = None
    if args.postman:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
        from postman import Postman
        server.contract = Postman(args.postman, EXTRA)
    port = server.server_address[1]
    server.state.url = f"http://{HOST}:{port}"
    return serve(server, "mock_salesforce", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

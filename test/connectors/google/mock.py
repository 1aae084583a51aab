#!/usr/bin/env python3
"""A stateful mock of Google Customer Match for revetl's `google` destination: the Data
Manager API (audienceMembers:ingest / :remove, requestStatus:retrieve) and the Google Ads
API's offline user data jobs (create, addOperations, run, googleAds:search), as
../shared/reference/destinations.md sections 6, 8 and 11 and
../shared/vendor-specs/google/SOURCE.md describe them, with Google's OAuth token endpoint.

Usage:
    python3 test/connectors/google/mock.py [--port N] [--port-file PATH] [--no-contract]

Python 3 standard library only; binds 127.0.0.1 only.

  * OAuth (Google's token endpoint, section 8): POST /token, form grant_type=refresh_token
    &refresh_token=R&client_id=C&client_secret=S -> {"access_token": "ya29.<n>", "expires_in",
    "scope", "token_type": "Bearer"}; a wrong client is 401 invalid_client, an unknown refresh
    token 400 invalid_grant. API calls need "Authorization: Bearer <issued token>" (or the
    static --token); else, or after {"expire_tokens": true} (every token issued so far dies),
    401 {"error": {"code": 401, "status": "UNAUTHENTICATED"}}.
  * Data Manager: POST /v1/audienceMembers:ingest and :remove (JSON, Google's error envelope);
    at most 10,000 members; members whose email hash is in {"reject_members": [...]} make the
    whole call 400 INVALID_ARGUMENT with a google.rpc.BadRequest fieldViolation naming
    audience_members[i] (nothing applied). Accepted calls apply at once and answer
    {"requestId"}; GET /v1/requestStatus:retrieve?requestId= answers PROCESSING for
    {"polls": N} polls, then SUCCESS ({"fail_requests": N}: the next N requests end FAILED and
    apply nothing; {"partial_requests": N}: PARTIAL_SUCCESS with errorCounts).
  * Google Ads (v25): create a job (PENDING), addOperations (create or remove, never both in
    one job; with enablePartialFailure a member in reject_members is refused with a
    GoogleAdsFailure whose fieldPathElements name operations[i]), run (RUNNING for N polls,
    then SUCCESS, applied at run; {"finish_all": true} ends every wait now; {"fail_jobs": N} ends the next N runs FAILED), search
    with the job's resource name. Every call needs the developer-token header and, with
    {"login_customer_id": "..."} configured, that login-customer-id.
  * Throttling: {"throttle": {"next": N, "retry_delay": "1s"}} answers the next N API calls 429
    RESOURCE_EXHAUSTED with the retryDelay (QuotaErrorDetails for Ads, RetryInfo for Data
    Manager); {"concurrent": N}: the next N Ads calls 409 ABORTED CONCURRENT_MODIFICATION.
  * Faults: {"faults": [{"status": N, "body"?: ..., "delay_s"?: s, "after"?: k, "path"?: substr}]}
    answers the next matching API calls (nothing applied).
  * Contract (on unless --no-contract): each write body is checked against revetl's own
    description of Google's request messages (test/lib/googlespec.py); errors are journaled
    ("contract_errors").
  * Control: GET /_mock/requests, /_mock/lists, /_mock/jobs, /_mock/stats; DELETE
    /_mock/requests; POST /_mock/reset, /_mock/config.
"""

import argparse
import itertools
import json
import os
import re
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, serve  # noqa: E402


HOST = "127.0.0.1"
CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN = "google-client", "google-secret", "google-refresh"
MAX_MEMBERS = 10000
JOB = re.compile(r"^/(v[0-9]+)/customers/([0-9]+)/offlineUserDataJobs/([0-9]+):(addOperations|run)$")
CREATE = re.compile(r"^/(v[0-9]+)/customers/([0-9]+)/offlineUserDataJobs:create$")
SEARCH = re.compile(r"^/(v[0-9]+)/customers/([0-9]+)/googleAds:search$")
QUERY_RES = re.compile(r"offline_user_data_job\.resource_name = '(customers/[0-9]+/offlineUserDataJobs/[0-9]+)'")
CONFIG_KEYS = ("faults", "throttle", "concurrent", "reject_members", "polls", "fail_requests", "partial_requests",
               "fail_jobs", "expire_tokens", "login_customer_id", "expires_in", "finish_all")


def status_error(code, status, message, details=None):
    return {"error": {"code": code, "message": message, "status": status, "details": details or []}}


def ads_failure(errors):
    return {"@type": "type.googleapis.com/google.ads.googleads.v25.errors.GoogleAdsFailure",
            "errors": errors, "requestId": "req-" + str(int(time.time() * 1000))}


def member_of(identifiers, dm):
    """A member as a frozenset of (revetl key, value) from a userIdentifiers list."""
    pairs = []
    for ident in identifiers:
        if "emailAddress" in ident or "hashedEmail" in ident:
            pairs.append(("email", ident.get("emailAddress") or ident.get("hashedEmail")))
        if "phoneNumber" in ident or "hashedPhoneNumber" in ident:
            pairs.append(("phone", ident.get("phoneNumber") or ident.get("hashedPhoneNumber")))
        a = ident.get("address") if dm else ident.get("addressInfo")
        if a:
            pairs += [("first_name", a.get("givenName") or a.get("hashedFirstName")),
                      ("last_name", a.get("familyName") or a.get("hashedLastName")),
                      ("country_code", a.get("regionCode") or a.get("countryCode")),
                      ("postal_code", a.get("postalCode"))]
        if "thirdPartyUserId" in ident:
            pairs.append(("user_id", ident["thirdPartyUserId"]))
    return frozenset(pairs)


class State:
    def __init__(self, token):
        self.token = token
        self.lock = threading.Lock()
        self.counter = itertools.count(1000)
        self.reset()

    def reset(self):
        self.requests = []
        self.lists = {}  # user list id (str) -> set of members
        self.dm_requests = {}  # request id -> {"polls_left", "status", "kind", "count"}
        self.jobs = {}  # resource name -> {"status", "kind", "members", "polls_left", "list"}
        self.tokens = set()
        self.expires_in = 3599
        self.faults = []
        self.throttle = None
        self.concurrent = 0
        self.reject = set()
        self.polls = 1
        self.fail_requests = self.partial_requests = self.fail_jobs = 0
        self.login_customer_id = None
        self.stats = {"ingest": 0, "remove": 0, "status_polls": 0, "jobs_created": 0, "add_operations": 0,
                      "runs": 0, "job_polls": 0, "throttled": 0, "concurrent": 0, "tokens": 0,
                      "unauthenticated": 0, "contract_violations": 0, "max_members_per_call": 0}


class Handler(MockHandler):
    def send(self, status, payload=None):
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
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
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        if path == "/token":
            with state.lock:
                return self.token_endpoint(state, text)
        fault = None
        with state.lock:
            entry = {"method": self.command, "path": path, "query": split.query, "at": time.time(),
                     "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text,
                     "contract_errors": []}
            try:
                entry["json"] = json.loads(text) if text else None
            except ValueError:
                entry["json"] = None
            state.requests.append(entry)
            for f in state.faults:
                if f.get("path") and f["path"] not in path:
                    continue
                if f.get("after", 0) > 0:
                    f["after"] -= 1
                    break
                fault = f
                state.faults.remove(f)
                entry["fault"] = f["status"]
                break
        if fault:
            if fault.get("delay_s"):
                time.sleep(fault["delay_s"])
            return self.send(fault["status"], fault.get("body", status_error(
                503, "UNAVAILABLE", "The service is currently unavailable.")))
        with state.lock:
            return self.api(state, entry, path, urllib.parse.parse_qs(split.query))

    def token_endpoint(self, state, text):
        form = {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return self.send(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
        if form.get("grant_type") != "refresh_token":
            return self.send(400, {"error": "unsupported_grant_type"})
        if form.get("refresh_token") != REFRESH_TOKEN:
            return self.send(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
        token = f"ya29.mock-{next(state.counter)}"
        state.tokens.add(token)
        state.stats["tokens"] += 1
        return self.send(200, {"access_token": token, "expires_in": state.expires_in, "token_type": "Bearer",
                               "scope": "https://www.googleapis.com/auth/datamanager "
                                        "https://www.googleapis.com/auth/adwords"})

    def api(self, state, entry, path, query):
        errors = entry["contract_errors"]
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token is None or (token != state.token and token not in state.tokens):
            state.stats["unauthenticated"] += 1
            return self.send(401, status_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential."))
        ads = not path.startswith("/v1/")
        if self.server.spec is not None and self.command == "POST" and not SEARCH.match(path):
            errors.extend(self.server.spec.validate(self.command, path, entry["body"]))
        if ads:
            if not self.headers.get("developer-token"):
                errors.append("no developer-token header")
            if state.login_customer_id and self.headers.get("login-customer-id") != state.login_customer_id:
                errors.append("login-customer-id header missing or wrong")
        if self.command == "POST" and not (self.headers.get("Content-Type") or "").startswith("application/json"):
            errors.append("Content-Type is not application/json")
        if errors:
            state.stats["contract_violations"] += 1
        if state.throttle and state.throttle.get("next", 0) > 0:
            state.throttle["next"] -= 1
            state.stats["throttled"] += 1
            delay = state.throttle.get("retry_delay", "1s")
            if ads:
                details = [ads_failure([{"errorCode": {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"},
                                         "message": "Too many requests. Retry in " + delay + ".",
                                         "details": {"quotaErrorDetails": {"rateScope": "DEVELOPER",
                                                                           "rateName": "Requests per developer "
                                                                           "per minute", "retryDelay": delay}}}])]
            else:
                details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]
            return self.send(429, status_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check "
                                               "quota).", details))
        if ads and state.concurrent > 0:
            state.concurrent -= 1
            state.stats["concurrent"] += 1
            return self.send(409, status_error(409, "ABORTED", "Multiple requests were attempting to modify the "
                                               "same resource at once. Retry the request.", [ads_failure([{
                                                   "errorCode": {"databaseError": "CONCURRENT_MODIFICATION"},
                                                   "message": "Multiple requests were attempting to modify the "
                                                   "same resource at once. Retry the request."}])]))
        body = entry["json"] if isinstance(entry["json"], dict) else {}
        if path in ("/v1/audienceMembers:ingest", "/v1/audienceMembers:remove") and self.command == "POST":
            return self.dm_write(state, body, "ingest" if path.endswith("ingest") else "remove")
        if path == "/v1/requestStatus:retrieve" and self.command == "GET":
            return self.dm_status(state, (query.get("requestId") or query.get("request_id") or [""])[0])
        m = CREATE.match(path)
        if m and self.command == "POST":
            return self.ads_create(state, m.group(2), body)
        m = JOB.match(path)
        if m and self.command == "POST":
            resource = f"customers/{m.group(2)}/offlineUserDataJobs/{m.group(3)}"
            return self.ads_operations(state, resource, body) if m.group(4) == "addOperations" \
                else self.ads_run(state, resource)
        m = SEARCH.match(path)
        if m and self.command == "POST":
            return self.ads_search(state, body)
        return self.send(404, status_error(404, "NOT_FOUND", f"The requested URL {path} was not found."))

    # --- Data Manager -------------------------------------------------------------------

    def dm_write(self, state, body, kind):
        members = body.get("audienceMembers") or []
        dests = body.get("destinations") or []
        if not dests or not dests[0].get("productDestinationId"):
            return self.send(400, status_error(400, "INVALID_ARGUMENT", "destinations is required."))
        if len(members) > MAX_MEMBERS:
            return self.send(400, status_error(400, "INVALID_ARGUMENT", f"Too many audience members: "
                                               f"{len(members)} (at most {MAX_MEMBERS})."))
        violations = []
        for i, m in enumerate(members):
            ids = (m.get("userData") or {}).get("userIdentifiers") or []
            if any(ident.get("emailAddress") in state.reject for ident in ids) or \
                    (m.get("userIdData") or {}).get("userId") in state.reject:
                violations.append({"field": f"audience_members[{i}].user_data.user_identifiers[0]",
                                   "description": "The user identifier is not a valid SHA-256 hash.",
                                   "reason": "INVALID_HEX_ENCODING"})
        if violations:
            return self.send(400, status_error(400, "INVALID_ARGUMENT", "There was a problem with the request.",
                                               [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                                 "fieldViolations": violations}]))
        rid = f"dm-{next(state.counter)}-{int(time.time())}"
        status = "SUCCESS"
        if state.fail_requests > 0:
            state.fail_requests -= 1
            status = "FAILED"
        elif state.partial_requests > 0:
            state.partial_requests -= 1
            status = "PARTIAL_SUCCESS"
        if status != "FAILED":
            store = state.lists.setdefault(dests[0]["productDestinationId"], set())
            for m in members:
                if "userIdData" in m:
                    member = frozenset([("user_id", m["userIdData"].get("userId"))])
                else:
                    member = member_of((m.get("userData") or {}).get("userIdentifiers") or [], True)
                (store.add if kind == "ingest" else store.discard)(member)
        state.dm_requests[rid] = {"polls_left": state.polls, "status": status, "kind": kind,
                                  "count": len(members), "destination": dests[0]}
        state.stats[kind] += 1
        state.stats["max_members_per_call"] = max(state.stats["max_members_per_call"], len(members))
        return self.send(200, {"requestId": rid})

    def dm_status(self, state, rid):
        state.stats["status_polls"] += 1
        r = state.dm_requests.get(rid)
        if r is None:
            return self.send(404, status_error(404, "NOT_FOUND", f"Request {rid} was not found."))
        per = {"destination": r["destination"]}
        if r["polls_left"] > 0:
            r["polls_left"] -= 1
            per["requestStatus"] = "PROCESSING"
        else:
            per["requestStatus"] = r["status"]
            key = "audienceMembersIngestionStatus" if r["kind"] == "ingest" else "audienceMembersRemovalStatus"
            inner = {"recordCount": str(r["count"]), "userIdentifierCount": str(r["count"])}
            if r["kind"] == "ingest":
                inner["uploadMatchRateRange"] = "MATCH_RATE_RANGE_51_TO_60"
            per[key] = {"userDataIngestionStatus" if r["kind"] == "ingest" else "userDataRemovalStatus": inner}
            if r["status"] == "FAILED":
                per["errorInfo"] = {"errorCounts": [{"recordCount": str(r["count"]),
                                                     "reason": "PROCESSING_ERROR_REASON_NO_CONSENT"}]}
            elif r["status"] == "PARTIAL_SUCCESS":
                per["errorInfo"] = {"errorCounts": [{"recordCount": "1",
                                                     "reason": "PROCESSING_ERROR_REASON_INVALID_FORMAT"}]}
        return self.send(200, {"requestStatusPerDestination": [per]})

    # --- Google Ads ---------------------------------------------------------------------

    def ads_create(self, state, customer, body):
        job = body.get("job") or {}
        user_list = (job.get("customerMatchUserListMetadata") or {}).get("userList", "")
        m = re.match(r"^customers/([0-9]+)/userLists/([0-9]+)$", user_list)
        if not m or m.group(1) != customer:
            return self.send(400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                               [ads_failure([{"errorCode": {"offlineUserDataJobError":
                                                                            "INVALID_USER_LIST_ID"},
                                                              "message": "The user list id is not valid."}])]))
        resource = f"customers/{customer}/offlineUserDataJobs/{next(state.counter)}"
        state.jobs[resource] = {"status": "PENDING", "kind": None, "members": [], "polls_left": 0,
                                "list": m.group(2), "consent": (job.get("customerMatchUserListMetadata") or {})
                                .get("consent")}
        state.stats["jobs_created"] += 1
        return self.send(200, {"resourceName": resource})

    def ads_operations(self, state, resource, body):
        job = state.jobs.get(resource)
        if job is None:
            return self.send(404, status_error(404, "NOT_FOUND", f"Resource {resource} was not found."))
        if job["status"] != "PENDING":
            return self.send(400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                               [ads_failure([{"errorCode": {"offlineUserDataJobError":
                                                                            "JOB_NOT_PENDING"},
                                                              "message": "The job is not pending."}])]))
        ops = body.get("operations") or []
        failures = []
        accepted = []
        for i, op in enumerate(ops):
            kind = "create" if "create" in op else "remove" if "remove" in op else None
            if kind is None:
                continue
            if job["kind"] not in (None, kind):
                return self.send(400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                                   [ads_failure([{"errorCode": {"offlineUserDataJobError":
                                                                                "CANNOT_MIX_CREATE_AND_REMOVE"},
                                                                  "message": "Create and remove operations cannot "
                                                                  "be mixed in one job."}])]))
            job["kind"] = kind
            ids = op[kind].get("userIdentifiers") or []
            bad = [n for n, ident in enumerate(ids) if ident.get("hashedEmail") in state.reject or
                   ident.get("thirdPartyUserId") in state.reject]
            if bad:
                failures.append({"errorCode": {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"},
                                 "message": "The SHA256 encoded value is malformed.",
                                 "location": {"fieldPathElements": [
                                     {"fieldName": "operations", "index": i}, {"fieldName": kind},
                                     {"fieldName": "user_identifiers", "index": bad[0]},
                                     {"fieldName": "hashed_email"}]}})
                continue
            accepted.append(member_of(ids, False))
        if failures and not body.get("enablePartialFailure"):
            return self.send(400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                               [ads_failure(failures)]))
        job["members"].extend(accepted)
        state.stats["add_operations"] += 1
        state.stats["max_members_per_call"] = max(state.stats["max_members_per_call"], len(ops))
        answer = {}
        if failures:
            answer["partialFailureError"] = {"code": 3, "message": f"{len(failures)} operations failed.",
                                             "details": [ads_failure(failures)]}
        return self.send(200, answer)

    def ads_run(self, state, resource):
        job = state.jobs.get(resource)
        if job is None:
            return self.send(404, status_error(404, "NOT_FOUND", f"Resource {resource} was not found."))
        if job["status"] != "PENDING":
            return self.send(400, status_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                               [ads_failure([{"errorCode": {"offlineUserDataJobError":
                                                                            "JOB_NOT_PENDING"},
                                                              "message": "The job was run already."}])]))
        state.stats["runs"] += 1
        job["polls_left"] = state.polls
        if state.fail_jobs > 0:
            state.fail_jobs -= 1
            job["status"] = "FAILED"
            job["failure"] = "PROCESSING_FAILURE"
        else:
            job["status"] = "RUNNING"
            store = state.lists.setdefault(job["list"], set())
            for member in job["members"]:
                (store.add if job["kind"] == "create" else store.discard)(member)
        return self.send(200, {"name": resource.replace("offlineUserDataJobs", "operations")})

    def ads_search(self, state, body):
        state.stats["job_polls"] += 1
        m = QUERY_RES.search(body.get("query") or "")
        if not m:
            return self.send(400, status_error(400, "INVALID_ARGUMENT", "Error in query."))
        job = state.jobs.get(m.group(1))
        if job is None:
            return self.send(200, {"results": [], "fieldMask": "offlineUserDataJob.status"})
        status = job["status"]
        if status == "RUNNING":
            if job["polls_left"] > 0:
                job["polls_left"] -= 1
            else:
                job["status"] = status = "SUCCESS"
        row = {"resourceName": m.group(1), "id": m.group(1).rsplit("/", 1)[1], "status": status}
        if status == "FAILED":
            row["failureReason"] = job.get("failure", "UNSPECIFIED")
        return self.send(200, {"results": [{"offlineUserDataJob": row}],
                               "fieldMask": "offlineUserDataJob.resourceName,offlineUserDataJob.status"})

    def control(self, text):
        state = self.server.state
        path = self.path
        with state.lock:
            if path == "/_mock/requests" and self.command == "GET":
                return self.send(200, {"requests": state.requests})
            if path == "/_mock/requests" and self.command == "DELETE":
                state.requests = []
                return self.send(200, {"ok": True})
            if path == "/_mock/lists" and self.command == "GET":
                return self.send(200, {"lists": {
                    k: sorted((dict(sorted(m)) for m in v), key=lambda d: json.dumps(d, sort_keys=True))
                    for k, v in state.lists.items()}})
            if path == "/_mock/jobs" and self.command == "GET":
                return self.send(200, {"jobs": {k: {x: y for x, y in v.items() if x != "members"}
                                                for k, v in state.jobs.items()},
                                       "requests": state.dm_requests})
            if path == "/_mock/stats" and self.command == "GET":
                return self.send(200, state.stats)
            if path == "/_mock/reset" and self.command == "POST":
                state.reset()
                return self.send(200, {"ok": True})
            if path == "/_mock/config" and self.command == "POST":
                config = json.loads(text or "{}")
                for key in config:
                    if key not in CONFIG_KEYS:
                        return self.send(400, {"error": f"unknown option {key}"})
                state.faults.extend(config.get("faults", []))
                if "throttle" in config:
                    state.throttle = config["throttle"]
                for key in ("concurrent", "polls", "fail_requests", "partial_requests", "fail_jobs",
                            "expires_in"):
                    if key in config:
                        setattr(state, key, int(config[key]))
                if "reject_members" in config:
                    state.reject = set(config["reject_members"])
                if "login_customer_id" in config:
                    state.login_customer_id = config["login_customer_id"]
                if config.get("finish_all"):
                    # Google is done with every request and job it holds.
                    for r in list(state.dm_requests.values()) + list(state.jobs.values()):
                        r["polls_left"] = 0
                if config.get("expire_tokens"):
                    state.tokens = set()
                return self.send(200, {"ok": True})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mock Google Customer Match (Data Manager and Ads APIs).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--token", default="test-token", help="a static bearer token also accepted")
    parser.add_argument("--no-contract", action="store_true",
                        help="do not check bodies against test/lib/googlespec.py")
    args = parser.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.token)
    server.spec = None
    if not args.no_contract:
        from googlespec import GoogleSpec  # test/lib, on sys.path since the imports above

        server.spec = GoogleSpec()
    return serve(server, "mock_google", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

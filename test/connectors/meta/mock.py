#!/usr/bin/env python3
"""A stateful mock of Meta's Graph API Custom Audience users edge for revetl's
`meta` destination, as ../shared/reference/destinations.md section 6 and
../shared/vendor-specs/meta/SOURCE.md describe it.

Usage:
    python3 test/connectors/meta/mock.py [--port N] [--port-file PATH] [--token T]
        [--version v25.0] [--spec DIR]

Python 3 standard library only; binds 127.0.0.1 only.

  * Auth: `Authorization: Bearer <token>` or the `access_token` form/query field; anything
    else is 400 {"error": {"message", "type": "OAuthException", "code": 190, "fbtrace_id"}}.
    Switch {"expire_token": true}: the token is refused as expired (190, subcode 463).
  * POST /{version}/{audience_id}/users and DELETE on the same path, form-encoded
    payload={"schema": [...], "data": [[...], ...]} (and session={...}): adds (removes) each
    row as a member. A member is the set of its (key, value) pairs. A hashed key whose value
    is not 64 lower-case hex characters (EXTERN_ID and MADID go unhashed) is an invalid
    entry: counted in num_invalid_entries, not applied. Answer 200 {"audience_id",
    "session_id", "num_received", "num_invalid_entries", "invalid_entry_samples"}.
  * Limits: more than 10,000 rows is 400 code 100 (nothing applied); an audience that is
    not configured is 400 code 100 subcode 33; another version than --version is 400
    code 2635; {"locked": [id]} flags an audience (operation_status 471): 400 code 2650
    subcode 1713230.
  * Sessions: the mock keeps each session_id's calls (kind, batch_seq, last_batch_flag,
    estimated_num_total); a session used for both adds and removals, a batch_seq of 0,
    or a new batch_seq after the one flagged last is a contract error.
  * Throttling: {"throttle": {"next": N, "code": C, "subcode"?: S, "regain_minutes"?: M}}
    answers the next N calls with the Graph envelope of code C (nothing applied);
    {"rate_limit": {"limit": N, "window_s": S}} throttles (code 80003, subcode 2446079) the
    N+1st call of a window. Every answer carries X-Business-Use-Case-Usage.
  * Faults: {"faults": [{"status": N, "body"?: ..., "delay_s"?: s, "after"?: k}]} answers the
    next API calls (nothing applied; delay_s sleeps first, for timeouts and crashes mid-call;
    after lets k calls through first, to hang the middle of an upload).
  * Contract (--spec): each call is checked against Meta's spec files
    (test/lib/metaspec.py); errors are journaled ("contract_errors").
  * Control: GET /_mock/requests, /_mock/audiences, /_mock/sessions, /_mock/stats;
    DELETE /_mock/requests; POST /_mock/reset, /_mock/config ({"audiences": [id, ...]}
    makes audiences).
"""

import argparse
import json
import os
import random
import re
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, serve  # noqa: E402


HOST = "127.0.0.1"
MAX_ROWS = 10000
HEX64 = re.compile(r"^[0-9a-f]{64}$")
UNHASHED = {"EXTERN_ID", "MADID"}
PATH = re.compile(r"^/(v[0-9]+\.[0-9]+)/([0-9]+)/users$")


def trace():
    return "A" + "".join(random.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                         for _ in range(10))


def graph_error(message, code, subcode=None, type_="OAuthException", transient=False):
    err = {"message": message, "type": type_, "code": code, "fbtrace_id": trace()}
    if subcode:
        err["error_subcode"] = subcode
    if transient:
        err["is_transient"] = True
    return {"error": err}


class State:
    def __init__(self, token, version):
        self.token = token
        self.version = version
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = []
        self.audiences = {}  # id -> set of frozenset((key, value), ...)
        self.sessions = {}  # session_id -> {"kind", "calls": [...], "last_seq"}
        self.locked = set()
        self.faults = []
        self.throttle = None
        self.rate_limit = None
        self.window_start = 0.0
        self.window_count = 0
        self.expired = False
        self.stats = {"add": 0, "remove": 0, "throttled": 0, "invalid_entries": 0, "contract_violations": 0,
                      "max_rows_per_call": 0}

    def usage(self):
        pct = 0
        if self.rate_limit:
            pct = min(100, int(self.window_count * 100 / max(1, self.rate_limit["limit"])))
        regain = self.throttle.get("regain_minutes", 0) if self.throttle else 0
        return json.dumps({"1234567890": [{"type": "custom_audience", "call_count": pct, "total_cputime": 1,
                                           "total_time": 1, "estimated_time_to_regain_access": regain}]})


class Handler(MockHandler):
    def send(self, status, payload=None, usage=None):
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        if usage:
            self.send_header("X-Business-Use-Case-Usage", usage)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        if self.path.startswith("/_mock/"):
            return self.control(text)
        state = self.server.state
        form = {k: v[0] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}
        query = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}
        fault = None
        with state.lock:
            entry = {"method": self.command, "path": self.path.split("?", 1)[0], "at": time.time(),
                     "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text,
                     "form": form, "contract_errors": []}
            for name in ("payload", "session"):
                try:
                    entry[name] = json.loads(form[name]) if name in form else None
                except ValueError:
                    entry[name] = None
            state.requests.append(entry)
            if state.faults and state.faults[0].get("after", 0) > 0:
                state.faults[0]["after"] -= 1
            elif state.faults:
                fault = state.faults.pop(0)
                entry["fault"] = fault["status"]
        if fault:
            if fault.get("delay_s"):
                time.sleep(fault["delay_s"])
            return self.send(fault["status"], fault.get("body", graph_error(
                "An unknown error occurred", 1, type_="OAuthException", transient=True)))
        with state.lock:
            return self.api(state, entry, form, query)

    def token(self, form, query):
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            return auth[7:]
        return form.get("access_token") or query.get("access_token")

    def api(self, state, entry, form, query):
        errors = entry["contract_errors"]
        path = entry["path"]
        m = PATH.match(path)
        if not m or self.command not in ("POST", "DELETE"):
            return self.send(400, graph_error(f"Unknown path components: {path}", 2500))
        version, audience = m.group(1), int(m.group(2))
        if "access_token" in query:
            errors.append("access_token in the URL (it belongs in Authorization or the body)")
        if self.server.spec is not None:
            errors.extend(self.server.spec.validate_request(self.command, "users", form))
        if not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            errors.append("Content-Type is not application/x-www-form-urlencoded")
        usage = state.usage()
        token = self.token(form, query)
        if token != state.token:
            return self.send(400, graph_error("Invalid OAuth access token - Cannot parse access token", 190),
                             usage)
        if state.expired:
            return self.send(400, graph_error(
                "Error validating access token: Session has expired on Sunday, 06-Dec-26 09:00:00 PST.",
                190, 463), usage)
        if version != state.version:
            return self.send(400, graph_error(f"(#2635) You are calling a deprecated version of the Ads API. "
                                              f"Please update to the latest version: {state.version}.", 2635),
                             usage)
        if state.throttle and state.throttle.get("next", 0) > 0:
            state.throttle["next"] -= 1
            state.stats["throttled"] += 1
            t = state.throttle
            return self.send(400, graph_error("(#80003) There have been too many calls to this ad-account.",
                                              t.get("code", 80003), t.get("subcode")), usage)
        if state.rate_limit:
            now = time.time()
            if now - state.window_start >= state.rate_limit["window_s"]:
                state.window_start, state.window_count = now, 0
            state.window_count += 1
            usage = state.usage()
            if state.window_count > state.rate_limit["limit"]:
                state.stats["throttled"] += 1
                return self.send(400, graph_error("(#80003) There have been too many calls to this ad-account.",
                                                  80003, 2446079), usage)
        if audience not in state.audiences:
            return self.send(400, graph_error(
                f"Unsupported post request. Object with ID '{audience}' does not exist, cannot be loaded due "
                f"to missing permissions, or does not support this operation.", 100, 33, "GraphMethodException"),
                usage)
        if audience in state.locked:
            return self.send(400, graph_error("Audience is not available for editing (operation_status 471).",
                                              2650, 1713230), usage)
        payload = entry["payload"]
        if not isinstance(payload, dict) or not isinstance(payload.get("schema"), list) \
                or not isinstance(payload.get("data"), list):
            return self.send(400, graph_error("(#100) Invalid parameter: payload", 100), usage)
        schema, data = payload["schema"], payload["data"]
        if len(data) > MAX_ROWS:
            return self.send(400, graph_error(
                f"(#100) The number of users in a single request exceeds the limit of {MAX_ROWS}", 100), usage)
        kind = "add" if self.command == "POST" else "remove"
        session = entry["session"]
        sid = None
        if isinstance(session, dict) and isinstance(session.get("session_id"), int):
            sid = session["session_id"]
            s = state.sessions.setdefault(sid, {"kind": kind, "calls": [], "last_seq": None})
            seq = session.get("batch_seq")
            if s["kind"] != kind:
                errors.append(f"session {sid} is used for both adds and removals")
            if s["last_seq"] is not None and isinstance(seq, int) and seq > s["last_seq"]:
                errors.append(f"session {sid}: batch_seq {seq} after the last batch ({s['last_seq']})")
            if session.get("last_batch_flag") is True:
                s["last_seq"] = seq if s["last_seq"] is None else max(s["last_seq"], seq)
            s["calls"].append({"batch_seq": seq, "last_batch_flag": session.get("last_batch_flag"),
                               "estimated_num_total": session.get("estimated_num_total"), "rows": len(data)})
        if errors:
            state.stats["contract_violations"] += 1
        members = state.audiences[audience]
        invalid = 0
        samples = {}
        for row in data:
            if not isinstance(row, list) or len(row) != len(schema):
                invalid += 1
                continue
            bad = [k for k, v in zip(schema, row)
                   if not isinstance(v, str) or (k not in UNHASHED and not HEX64.match(v))]
            if bad:
                invalid += 1
                if len(samples) < 5:
                    samples[str(row[schema.index(bad[0])])[:80]] = f"invalid {bad[0]}"
                continue
            member = frozenset(zip(schema, row))
            if kind == "add":
                members.add(member)
            else:
                members.discard(member)
        state.stats[kind] += 1
        state.stats["invalid_entries"] += invalid
        state.stats["max_rows_per_call"] = max(state.stats["max_rows_per_call"], len(data))
        answer = {"audience_id": str(audience), "num_received": len(data), "num_invalid_entries": invalid,
                  "invalid_entry_samples": samples}
        if sid is not None:
            answer["session_id"] = str(sid)
        return self.send(200, answer, usage)

    def control(self, text):
        state = self.server.state
        path = self.path
        with state.lock:
            if path == "/_mock/requests" and self.command == "GET":
                return self.send(200, {"requests": state.requests})
            if path == "/_mock/requests" and self.command == "DELETE":
                state.requests = []
                return self.send(200, {"ok": True})
            if path == "/_mock/audiences" and self.command == "GET":
                return self.send(200, {"audiences": {
                    str(k): sorted((dict(sorted(m)) for m in v), key=lambda d: json.dumps(d, sort_keys=True))
                    for k, v in state.audiences.items()}})
            if path == "/_mock/sessions" and self.command == "GET":
                return self.send(200, {"sessions": {str(k): v for k, v in state.sessions.items()}})
            if path == "/_mock/stats" and self.command == "GET":
                return self.send(200, state.stats)
            if path == "/_mock/reset" and self.command == "POST":
                state.reset()
                return self.send(200, {"ok": True})
            if path == "/_mock/config" and self.command == "POST":
                config = json.loads(text or "{}")
                for key in config:
                    if key not in ("faults", "throttle", "rate_limit", "audiences", "locked", "expire_token"):
                        return self.send(400, {"error": f"unknown option {key}"})
                state.faults.extend(config.get("faults", []))
                if "throttle" in config:
                    state.throttle = config["throttle"]
                if "rate_limit" in config:
                    state.rate_limit = config["rate_limit"]
                    state.window_start, state.window_count = time.time(), 0
                for a in config.get("audiences", []):
                    state.audiences.setdefault(int(a), set())
                if "locked" in config:
                    state.locked = {int(a) for a in config["locked"]}
                if "expire_token" in config:
                    state.expired = bool(config["expire_token"])
                return self.send(200, {"ok": True})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mock Meta Graph API (custom audience users) for revetl.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--version", default="v25.0")
    parser.add_argument("--spec", help="check calls against Meta's spec files in this folder")
    args = parser.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State(args.token, args.version)
    server.spec = None
    if args.spec:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
        from metaspec import MetaSpec
        server.spec = MetaSpec(args.spec)
    return serve(server, "mock_meta", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

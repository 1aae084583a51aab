#!/usr/bin/env python3
"""A stateful OAuth 2.0 token endpoint with a protected API, for testing
revetl's shared OAuth auth scheme (docs/destinations.md, "OAuth 2.0").

Usage:
    python3 test/connectors/oauth/mock.py [--port N] [--port-file PATH]

Python 3 standard library only; binds 127.0.0.1 only. It behaves as
destinations.md section 8 describes the vendors' token endpoints:

  * POST /oauth/token, form-encoded (client credentials in the body or as HTTP Basic):
      grant_type=refresh_token&refresh_token=R&client_id=C&client_secret=S[&scope=...]
      grant_type=client_credentials&client_id=C&client_secret=S[&scope=...]
    -> 200 {"access_token", "token_type": "bearer", "expires_in", ["refresh_token"], ["instance_url"]}
    An unknown client is 401 {"error": "invalid_client"}; an unknown, revoked or rotated-away
    refresh token is 400 {"error": "invalid_grant", "error_description": ...} (as Salesforce,
    Google and HubSpot answer); another grant_type is 400 unsupported_grant_type.
  * Every other path outside /_mock/ is the protected API: it needs "Authorization: Bearer T"
    with a token this mock issued that has not expired nor been revoked, else 401
    {"status": "error", "category": "EXPIRED_AUTHENTICATION", "message": ...} (HubSpot's
    shape). PUT/POST/PATCH store like the generic http mock: a JSON object at the path, a
    JSON array (or {"records": [...]}) item by item at "<path>#<id>", answered 200
    {"errors": [null, ...]}.
  * Configuration: POST /_mock/config with any of
      clients {id: secret}            accepted clients (default {"revetl-client": "client-secret-1"})
      refresh_tokens [..]             refresh tokens that are valid (added to the valid set)
      expires_in N                    lifetime of new access tokens in seconds (default 1800)
      omit_expires_in true            answer without expires_in (Salesforce)
      camel_case true                 answer accessToken/expiresIn/refreshToken (HubSpot's v3 API)
      rotate true                     every refresh returns a new refresh token; the old one dies
      instance_url U                  add instance_url to answers (Salesforce)
      token_faults [{"status": N, "body"?: {...}} | {"delay": seconds}]
                                      answers (or delays) for the next token requests, in order
      token_delay seconds             delay every token answer (a slow endpoint)
  * Faults: POST /_mock/revoke_access_tokens (every access token issued so far stops working
    early), POST /_mock/revoke_refresh_tokens (every refresh token answers invalid_grant).
  * Journal: GET /_mock/requests -> {"requests": [{"method", "path", "headers", "body",
    "status"}]}; GET /_mock/state -> {"grants": {grant_type: count of tokens issued},
    "refresh_tokens": [valid ones], "token_requests": n}; GET /_mock/records; POST /_mock/reset.
"""

import argparse
import base64
import json
import os
import secrets
import sys
import threading
import time
from urllib.parse import parse_qsl, unquote, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, serve  # noqa: E402


HOST = "127.0.0.1"
CONFIG_KEYS = ("clients", "refresh_tokens", "expires_in", "omit_expires_in", "camel_case", "rotate",
               "instance_url", "token_faults", "token_delay")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = []
        self.records = {}
        self.clients = {"revetl-client": "client-secret-1"}
        self.refresh_tokens = set()
        self.access_tokens = {}  # token -> expiry (time.monotonic())
        self.grants = {}
        self.token_requests = 0
        self.expires_in = 1800
        self.omit_expires_in = False
        self.camel_case = False
        self.rotate = False
        self.instance_url = None
        self.token_faults = []
        self.token_delay = 0

    def issue(self, grant, form):
        token = "at-" + secrets.token_hex(12)
        self.access_tokens[token] = time.monotonic() + self.expires_in
        self.grants[grant] = self.grants.get(grant, 0) + 1
        answer = {"access_token": token, "token_type": "bearer"}
        if not self.omit_expires_in:
            answer["expires_in"] = self.expires_in
        if grant == "refresh_token" and self.rotate:
            self.refresh_tokens.discard(form["refresh_token"])
            new = "rt-" + secrets.token_hex(12)
            self.refresh_tokens.add(new)
            answer["refresh_token"] = new
        if self.instance_url:
            answer["instance_url"] = self.instance_url
        if form.get("scope"):
            answer["scope"] = form["scope"]
        if self.camel_case:
            names = {"access_token": "accessToken", "token_type": "tokenType", "expires_in": "expiresIn",
                     "refresh_token": "refreshToken", "instance_url": "instanceUrl"}
            answer = {names.get(k, k): v for k, v in answer.items()}
        return answer


def batch_items(text):
    body = json.loads(text) if text else None
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("records"), list):
        return body["records"]
    return None


class Handler(MockHandler):
    def send(self, status, payload=None, headers=None):
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return status

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode("utf-8") if length else ""
        path = self.path
        if path.startswith("/_mock/"):
            return self.control(path, text)
        entry = {"method": self.command, "path": path,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text}
        with self.server.state.lock:
            self.server.state.requests.append(entry)
        if urlsplit(path).path == "/oauth/token":
            entry["status"] = self.token(text)
        else:
            entry["status"] = self.api(path, text)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

    def token(self, text):
        state = self.server.state
        delay = 0
        with state.lock:
            state.token_requests += 1
            fault = state.token_faults.pop(0) if state.token_faults else None
            delay = state.token_delay
        if fault and "delay" in fault:
            time.sleep(fault["delay"])
            fault = None
        if delay:
            time.sleep(delay)
        if fault:
            return self.send(fault["status"], fault.get("body"), fault.get("headers"))
        if self.command != "POST":
            return self.send(405, {"error": "invalid_request", "error_description": "POST only"})
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self.send(400, {"error": "invalid_request", "error_description": "form-encoded body expected"})
        form = dict(parse_qsl(text, keep_blank_values=True))
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            form.setdefault("client_id", unquote(client_id))
            form.setdefault("client_secret", unquote(client_secret))
        with state.lock:
            if state.clients.get(form.get("client_id")) != form.get("client_secret") or not form.get("client_id"):
                return self.send(401, {"error": "invalid_client", "error_description": "client authentication failed"})
            grant = form.get("grant_type")
            if grant == "refresh_token":
                if form.get("refresh_token") not in state.refresh_tokens:
                    return self.send(400, {"error": "invalid_grant",
                                           "error_description": "Token has been expired or revoked."})
            elif grant != "client_credentials":
                return self.send(400, {"error": "unsupported_grant_type"})
            answer = state.issue(grant, form)
        return self.send(200, answer)

    def api(self, path, text):
        state = self.server.state
        auth = self.headers.get("Authorization", "")
        with state.lock:
            token = auth[7:] if auth.startswith("Bearer ") else None
            expiry = state.access_tokens.get(token)
            if expiry is None or expiry <= time.monotonic():
                return self.send(401, {"status": "error", "category": "EXPIRED_AUTHENTICATION",
                                       "message": "The OAuth token used to make this call expired or is invalid."})
            resource = urlsplit(path).path
            if self.command == "DELETE":
                return self.send(204 if state.records.pop(resource, None) is not None else 404)
            if self.command not in ("PUT", "POST", "PATCH"):
                return self.send(405, {"error": "method not allowed"})
            try:
                items = batch_items(text)
                item = None if items is not None else json.loads(text)
            except ValueError as exc:
                return self.send(400, {"error": f"invalid body: {exc}"})
            if items is None:
                state.records[resource] = item
                return self.send(200, {"ok": True})
            for i, it in enumerate(items):
                ident = it.get("id", i) if isinstance(it, dict) else i
                state.records[f"{resource}#{ident}"] = it
            return self.send(200, {"errors": [None] * len(items)})

    def control(self, path, text):
        state = self.server.state
        with state.lock:
            if path == "/_mock/requests" and self.command == "GET":
                return self.send(200, {"requests": state.requests})
            if path == "/_mock/records" and self.command == "GET":
                return self.send(200, {"records": state.records})
            if path == "/_mock/state" and self.command == "GET":
                return self.send(200, {"grants": state.grants, "refresh_tokens": sorted(state.refresh_tokens),
                                       "token_requests": state.token_requests})
            if path == "/_mock/reset" and self.command == "POST":
                state.reset()
                return self.send(200, {"ok": True})
            if path == "/_mock/revoke_access_tokens" and self.command == "POST":
                state.access_tokens.clear()
                return self.send(200, {"ok": True})
            if path == "/_mock/revoke_refresh_tokens" and self.command == "POST":
                state.refresh_tokens.clear()
                return self.send(200, {"ok": True})
            if path == "/_mock/config" and self.command == "POST":
                config = json.loads(text or "{}")
                for key in config:
                    if key not in CONFIG_KEYS:
                        return self.send(400, {"error": f"unknown option {key}"})
                if "clients" in config:
                    state.clients = dict(config["clients"])
                state.refresh_tokens.update(config.get("refresh_tokens", []))
                state.token_faults.extend(config.get("token_faults", []))
                for key in ("expires_in", "omit_expires_in", "camel_case", "rotate", "instance_url", "token_delay"):
                    if key in config:
                        setattr(state, key, config[key])
                return self.send(200, {"ok": True})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mock OAuth 2.0 token endpoint and protected API.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State()
    return serve(server, "mock_oauth", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

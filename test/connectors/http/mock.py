#!/usr/bin/env python3
"""A small stateful HTTP API for testing revetl's generic `http` destination.

Usage:
    python3 test/connectors/http/mock.py [--port N] [--port-file PATH]

Python 3 standard library only; binds 127.0.0.1 only.

  * Resources (any path outside /_mock/): PUT, POST or PATCH with a JSON object body
    stores it at the path (PATCH merges); DELETE removes the path (204; 404 when absent).
    A JSON array body, or an object whose "records" member is an array, or NDJSON lines,
    or a form-encoded body, is a batch: each item is stored at "<path>#<item id>" (the
    item's "id" member, else its position), and the answer is 200 {"errors": [...]}, one
    entry per item in order: null when stored, a message when refused.
  * Refusals: POST /_mock/config {"reject_field": F, "reject_pattern": P} refuses an item
    whose F matches P (re.search): in a batch its "errors" entry holds the message; a single
    object is answered 422 {"error": message, "code": "REJECTED"}.
  * Faults: POST /_mock/config {"faults": [{"status": N, "body"?: ..., "headers"?: {...}}]}
    queues answers for the next requests (nothing is stored for them).
  * Control: GET /_mock/requests -> {"requests": [{"method","path","headers","body"}]} (body
    as text); GET /_mock/records -> {"records": {path: item}}; POST /_mock/reset.
"""

import argparse
import json
import os
import re
import sys
import threading
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from mockserver import MockHandler, MockServer, serve  # noqa: E402


HOST = "127.0.0.1"


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = []
        self.records = {}
        self.faults = []
        self.reject_field = None
        self.reject_pattern = None

    def refusal(self, item):
        if self.reject_field is None or not isinstance(item, dict):
            return None
        value = item.get(self.reject_field)
        if value is not None and re.search(self.reject_pattern, str(value)):
            return f"{self.reject_field} {value!r} is refused"
        return None


def batch_items(ctype, text):
    """The items of a batch body, or None when the body is one JSON object."""
    if ctype.startswith("application/x-ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if ctype.startswith("application/x-www-form-urlencoded"):
        return None
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

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode("utf-8") if length else ""
        path = self.path
        state = self.server.state
        if path.startswith("/_mock/"):
            return self.control(path, text)
        ctype = self.headers.get("Content-Type", "")
        with state.lock:
            state.requests.append({"method": self.command, "path": path,
                                   "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text})
            if state.faults:
                fault = state.faults.pop(0)
                return self.send(fault["status"], fault.get("body"), fault.get("headers"))
            resource = urlsplit(path).path
            if self.command == "DELETE":
                if resource in state.records:
                    del state.records[resource]
                    return self.send(204)
                return self.send(404, {"error": "not found"})
            if self.command not in ("PUT", "POST", "PATCH"):
                return self.send(405, {"error": "method not allowed"})
            try:
                items = batch_items(ctype, text)
                if items is None:
                    if ctype.startswith("application/x-www-form-urlencoded"):
                        item = dict(parse_qsl(text, keep_blank_values=True))
                    else:
                        item = json.loads(text)
                    if not isinstance(item, dict):
                        raise ValueError("a JSON object was expected")
            except ValueError as exc:
                return self.send(400, {"error": f"invalid body: {exc}"})
            if items is None:
                refused = state.refusal(item)
                if refused:
                    return self.send(422, {"error": refused, "code": "REJECTED"})
                if self.command == "PATCH" and resource in state.records:
                    state.records[resource].update(item)
                else:
                    state.records[resource] = item
                return self.send(200, {"ok": True})
            errors = []
            for i, item in enumerate(items):
                refused = state.refusal(item)
                errors.append(refused)
                if not refused:
                    ident = item.get("id", i) if isinstance(item, dict) else i
                    state.records[f"{resource}#{ident}"] = item
            return self.send(200, {"errors": errors})

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

    def control(self, path, text):
        state = self.server.state
        with state.lock:
            if path == "/_mock/requests" and self.command == "GET":
                return self.send(200, {"requests": state.requests})
            if path == "/_mock/records" and self.command == "GET":
                return self.send(200, {"records": state.records})
            if path == "/_mock/reset" and self.command == "POST":
                state.reset()
                return self.send(200, {"ok": True})
            if path == "/_mock/config" and self.command == "POST":
                config = json.loads(text or "{}")
                for key in config:
                    if key not in ("faults", "reject_field", "reject_pattern"):
                        return self.send(400, {"error": f"unknown option {key}"})
                state.faults.extend(config.get("faults", []))
                if "reject_field" in config:
                    state.reject_field = config["reject_field"]
                    state.reject_pattern = config.get("reject_pattern", "")
                return self.send(200, {"ok": True})
        return self.send(404, {"error": "unknown control path"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mock HTTP API for revetl's generic http destination.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args(argv)
    server = MockServer((HOST, args.port), Handler)
    server.state = State()
    return serve(server, "mock_http", args.port_file)


if __name__ == "__main__":
    sys.exit(main())

"""What every vendor mock under test/connectors/ shares: the threaded HTTP
server, the request handler's plumbing, and the process around them (port
file, signals, shutdown). Each mock keeps only what makes it that vendor:
its state, its routes, its errors and its limits.

A mock is started by test/lib/pgcluster.py as `python3 mock.py --port-file F
...`; it writes its port to F (atomically, so a reader never sees half a
number), serves until SIGTERM or SIGINT, then removes F.
"""

import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOST = "127.0.0.1"


class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    # revetl opens up to max_in_flight connections at once; the default
    # backlog of 5 would refuse some under a burst, which no vendor does.
    request_queue_size = 128

    def server_bind(self):
        # No reverse DNS lookup of 127.0.0.1 (slow where no resolver answers).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # A client that hung up (a run killed mid-request) is part of the
        # tests, not an error worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class MockHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 with every method routed to handle_any(), which
    each mock defines."""

    protocol_version = "HTTP/1.1"
    # Answers go out at once, not after the delayed ACK of the next packet.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def do_GET(self):
        try:
            self.handle_any()
        except (ConnectionError, TimeoutError):
            pass

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # Bodies above this are refused (each mock sets its vendor's bound).
    max_body = 16 * 1024 * 1024
    json_content_type = "application/json"

    def handle_any(self):
        """The usual route: /_mock/... to control(url, raw), anything else to
        api(url, raw) under the state's lock, which answers (status,
        payload, headers), or a status of None for the `reset` fault."""
        url = urlsplit(self.path)
        raw = self.read_body()
        if url.path.startswith("/_mock"):
            return self.control(url, raw)
        with self.server.state.lock:
            status, payload, headers = self.api(url, raw)
        if status is None:
            return self.reset_connection()
        self.send(status, payload, headers)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > self.max_body:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def send(self, status, payload=None, headers=None):
        """Answers `payload` as JSON (no body for None) with `headers`."""
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", self.json_content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reset_connection(self):
        """Drops the connection with a TCP reset and no answer (the `reset`
        fault: the client cannot know whether the request was applied)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()


class HttpError(Exception):
    """An error answered as {"error": message, "code": code} with `status`."""

    def __init__(self, status, message, code):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    def payload(self):
        return {"error": self.message, "code": self.code}


class ClientGone(Exception):
    """The client closed the connection before sending the whole body."""


class StrictBodyReader:
    """Request bodies read as a careful server reads them, for the mocks that
    test revetl's own HTTP (webhook, HubSpot): Content-Length or chunked
    transfer encoding, a bad length or chunk refused with 400, a body above
    `max_body` with 413 (HttpError), a client that hangs up mid-body noticed
    (ClientGone)."""

    max_body = 16 * 1024 * 1024

    def _declared_length(self):
        """Content-Length as int (None if absent); raise HttpError if bad/too big."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        try:
            length = int(value)
            if length < 0:
                raise ValueError
        except ValueError:
            raise HttpError(400, "invalid Content-Length", "BAD_CONTENT_LENGTH") from None
        if length > self.max_body:
            raise HttpError(413, "request body too large", "PAYLOAD_TOO_LARGE")
        return length

    def _read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) < n:
            raise ClientGone()
        return data

    def _read_chunked(self):
        chunks = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ClientGone()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "invalid chunked encoding", "BAD_CHUNKED") from None
            if size == 0:
                break
            total += size
            if total > self.max_body:
                raise HttpError(413, "request body too large", "PAYLOAD_TOO_LARGE")
            chunks.append(self._read_exact(size))
            self._read_exact(2)  # CRLF after each chunk
        while True:  # trailers, up to the empty line
            line = self.rfile.readline(8192)
            if not line:
                raise ClientGone()
            if line in (b"\r\n", b"\n"):
                break
        return b"".join(chunks)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self._declared_length()
        return self._read_exact(length) if length else b""


def openapi_contract(path, **kwargs):
    """The vendor's OpenAPI contract at `path` (test/lib/openapi.py), or
    None when the mock was started without one."""
    if not path:
        return None
    from openapi import OpenApi  # test/lib is on sys.path beside this module

    return OpenApi(path, **kwargs)


def remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def serve(server, name, port_file=None, before_shutdown=None, after_shutdown=None):
    """Serves until SIGTERM or SIGINT, with the port written to
    `port_file`; returns the process's exit status. `before_shutdown` runs
    first when a signal came (e.g. to end a mock's delays early),
    `after_shutdown` once no request is served any more (e.g. to close a
    journal)."""
    stop = threading.Event()
    # The main thread only waits for this event: shutdown() must not be
    # called from the thread running serve_forever().
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, name=f"{name}-serve", daemon=True).start()
    host, port = server.server_address[:2]
    if port_file:
        tmp = f"{port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, port_file)
    print(f"{name} listening on http://{host}:{port}", flush=True)
    try:
        stop.wait()
    finally:
        if before_shutdown:
            before_shutdown()
        server.shutdown()
        server.server_close()
        if after_shutdown:
            after_shutdown()
        if port_file:
            remove_quietly(port_file)
    return 0

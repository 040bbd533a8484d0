"""A small HTTP backend in a thread (http.server), for --connect-url,
--rpc-url and --webhook-url tests: every request is recorded; each path
answers with what the test set (a status and a JSON body, or a function)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorded:
    def __init__(self, path, headers, body):
        self.path = path
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None
        self.at = time.monotonic()

    def signature_ok(self, secret: str) -> bool:
        want = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-switchboard-signature", ""), want)

    def __repr__(self):
        return f"Recorded({self.path}, {self.json!r})"


class Backend:
    """`routes[path] = (status, body)` or `routes[path] = fn(recorded) -> (status, body)`;
    `delay[path] = seconds` before answering. Unknown paths: 404."""

    def __init__(self):
        self.requests: list[Recorded] = []
        self.routes: dict = {}
        self.delay: dict = {}
        self._cond = threading.Condition()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                rec = Recorded(self.path, dict(self.headers), body)
                with backend._cond:
                    backend.requests.append(rec)
                    backend._cond.notify_all()
                route = backend.routes.get(self.path.split("?")[0], (404, {"error": "no route"}))
                if callable(route):
                    route = route(rec)
                status, payload = route
                d = backend.delay.get(self.path.split("?")[0])
                if d:
                    time.sleep(d)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str, status: int = 200, body=None):
        self.routes[path] = (status, {} if body is None else body)

    def recorded(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    def wait_for(self, path: str, pred=lambda r: True, n: int = 1, timeout: float = 5.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.recorded(path) if pred(r)]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"backend: {n} request(s) to {path} expected, got {self.requests}")
                self._cond.wait(left)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url(path: str = "/") -> str:
    """A URL nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}{path}"

"""Behind a real nginx configured from docs/operations.md ("Behind nginx").

The configuration is the fenced block that starts with
`# /etc/nginx/conf.d/switchboard.conf`, read from the document at test time
(so the doc and the test cannot drift apart), with only these changes:

- the upstream address -> the test's switchboard;
- `listen 80` / `listen 443 ssl` -> free ports on 127.0.0.1;
- `ssl_certificate` / `ssl_certificate_key` -> a self-signed certificate;
- `proxy_read_timeout` -> 5s, so that 30 s of idleness would cut any
  connection that the heartbeats did not keep busy.

It is a conf.d file (its directives belong in `http {}`), so it is wrapped
in the least nginx.conf would give: `events {}`, `http {}`, and temp paths
inside the test's prefix. Each substitution must match exactly: when the
doc's block changes shape, the test says what it could not find.

nginx runs as a foreground subprocess
(`nginx -p DIR -c CONF -e stderr -g 'daemon off; pid DIR/nginx.pid; error_log stderr;'`);
its log is `$OUT_DIR/native-py/<test>-nginx-<name>.log`. Missing nginx fails
the test (install the Debian package `nginx`, or set NGINX to the binary).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import log_dir
from sb_client import API_KEY, Admin, Native, Sio
from sb_tls import make_cert

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
MARKER = "# /etc/nginx/conf.d/switchboard.conf"
READ_TIMEOUT = "5s"
IDLE = float(os.environ.get("SB_NGINX_IDLE", "30"))


def nginx_binary() -> str | None:
    return os.environ.get("NGINX") or shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def doc_config() -> str:
    """The nginx block of docs/operations.md, from its first line (the marker)."""
    text = DOC.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"{DOC}: expected one `{MARKER}` line"
    at = text.index(MARKER)
    fence = text.rindex("```", 0, at)
    assert text[fence:at].strip() == "```nginx", f"{DOC}: `{MARKER}` is not the first line of an ```nginx block"
    return text[at : text.index("```", at)]


def substitute(conf: str, pattern: str, replacement: str, what: str, count: int = 1) -> str:
    out, n = re.subn(pattern, replacement, conf)
    assert n == count, (
        f"docs/operations.md, Behind nginx: expected {count} match(es) for {what} ({pattern!r}), found {n}"
    )
    return out


def nginx_config(upstream: str, http_port: int, https_port: int, cert, read_timeout: str = READ_TIMEOUT) -> str:
    """The doc's block with the test's addresses, certificate and timeout."""
    conf = doc_config()
    conf = substitute(
        conf, r"(upstream\s+switchboard\s*\{[^}]*?\bserver\s+)[^;\s]+", rf"\g<1>{upstream}", "the upstream server"
    )
    for pattern, replacement, what in (
        (r"\blisten\s+80\s*;", f"listen 127.0.0.1:{http_port};", "listen 80"),
        (r"\blisten\s+443\s+ssl\s*;", f"listen 127.0.0.1:{https_port} ssl;", "listen 443 ssl"),
        (r"\bssl_certificate\s+[^;]+;", f"ssl_certificate {cert.cert};", "ssl_certificate"),
        (r"\bssl_certificate_key\s+[^;]+;", f"ssl_certificate_key {cert.key};", "ssl_certificate_key"),
        (r"\bproxy_read_timeout\s+[^;]+;", f"proxy_read_timeout {read_timeout};", "proxy_read_timeout"),
    ):
        conf = substitute(conf, pattern, replacement, what)
    return conf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, prefix: Path, conf_d: str, log: Path):
        self.prefix = prefix
        self.log_path = log
        prefix.mkdir(parents=True, exist_ok=True)
        temps = "\n".join(
            f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(
            "# Wrapper: what nginx.conf gives a conf.d file (tests/native-py/test_nginx.py).\n"
            "worker_processes 1;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    access_log {prefix / 'access.log'};\n"
            f"{temps}\n\n"
            f"{conf_d}\n"
            "}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self, ports: list[int], timeout: float = 10.0):
        exe = nginx_binary()
        self._log = open(self.log_path, "w")
        self._log.write(self.conf.read_text() + "\n# ---- nginx output ----\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            [
                exe, "-p", str(self.prefix), "-c", str(self.conf), "-e", "stderr",
                "-g", f"daemon off; pid {self.prefix / 'nginx.pid'}; error_log stderr;",
            ],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        for port in ports:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"nginx exited ({self.proc.returncode}):\n{self.log_path.read_text()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"nginx not listening on {port}:\n{self.log_path.read_text()}")
                    time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()


class Proxied:
    """A switchboard server behind an nginx from the doc."""

    def __init__(self, srv, nginx: Nginx, https_port: int, http_port: int, cert):
        self.srv, self.nginx, self.cert = srv, nginx, cert
        self.https = f"https://127.0.0.1:{https_port}"
        self.wss = f"wss://127.0.0.1:{https_port}"
        self.http_port = http_port

    def ssl(self):
        return self.cert.client_context()

    async def sio(self, transports) -> Sio:
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl()))
        try:
            s = await Sio.open(self.https, transports=transports, http_session=session)
        except BaseException:
            await session.close()
            raise
        s.session = session
        return s

    def requests(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.cert.cert)
        return s


@pytest.fixture
def proxied(server_factory, tmp_path, request):
    """`proxied(*serve_flags, name=...)`: a switchboard with those flags behind
    its own nginx from the doc."""
    if nginx_binary() is None:
        pytest.fail("nginx not found: install the Debian package `nginx` (or set NGINX)", pytrace=False)
    cert = make_cert(tmp_path / "tls")
    started: list[Nginx] = []

    def make(*flags: str, name: str = "nginx") -> Proxied:
        srv = server_factory(*flags)
        http_port, https_port = free_port(), free_port()
        conf = nginx_config(srv.addr, http_port, https_port, cert)
        test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60]
        ng = Nginx(tmp_path / name, conf, log_dir() / f"{test}-{name}.log")
        started.append(ng)
        ng.start([http_port, https_port])
        return Proxied(srv, ng, https_port, http_port, cert)

    yield make
    for ng in started:
        ng.stop()


HEARTBEAT = ("--ping-interval", "2s", "--ping-timeout", "2s")


async def test_doc_config_routes_and_keeps_the_admin_api_internal(proxied):
    """The doc's promises: port 80 redirects to https, health checks and the
    protocols pass, the admin API and /metrics are not public (allow
    10.0.0.0/8 only: 127.0.0.1 is denied)."""
    p = proxied(*HEARTBEAT)

    def run():
        s = p.requests()
        r = s.get(f"http://127.0.0.1:{p.http_port}/healthz", allow_redirects=False, timeout=5)
        assert r.status_code == 301 and r.headers["Location"].startswith("https://"), (r.status_code, r.headers)
        r = s.get(f"{p.https}/healthz", timeout=5)
        assert (r.status_code, r.text.strip()) == (200, "ok")
        r = s.get(f"{p.https}/socket.io/?EIO=4&transport=polling", timeout=5)
        assert r.status_code == 200 and r.text.startswith("0{"), r.text
        sid = json.loads(r.text[1:])["sid"]
        r = s.post(f"{p.https}/socket.io/?EIO=4&transport=polling&sid={sid}", data="1", timeout=5)
        assert r.status_code == 200, r.text  # closed (a drain would wait for it)
        r = s.get(f"{p.https}/api/v1/stats", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
        assert r.status_code == 403, (r.status_code, r.text)
        assert s.get(f"{p.https}/metrics", timeout=5).status_code == 403

    await asyncio.to_thread(run)
    c = await Native.open(p.wss, ssl=p.ssl())
    try:
        await c.ok("join", room="through-nginx")
        await c.ok("publish", room="through-nginx", event="e", data=1)
        await c.next(lambda m: m.get("op") == "message" and m["room"] == "through-nginx")
    finally:
        await c.close()


async def test_idle_connections_stay_open_behind_nginx(proxied):
    """proxy_read_timeout 5s, 30 s of idleness: the server's heartbeats (every
    2 s) keep a native WebSocket, a Socket.IO WebSocket and a Socket.IO
    long-polling session open. Control, in the same window: behind the same
    config, a server pinging every 25 s (the default) loses its idle native
    connection to nginx's timeout — the timeout is live."""
    p = proxied(*HEARTBEAT, name="heartbeat")
    control = proxied(name="control")
    native = await Native.open(p.wss, ssl=p.ssl())
    sio_ws = await p.sio(["websocket"])
    sio_poll = await p.sio(["polling"])
    cut = await Native.open(control.wss, ssl=control.ssl())
    cut_opened = time.monotonic()
    sids = (sio_ws.sid, sio_poll.sid)
    try:
        assert sio_poll.client.transport() == "polling"
        start = time.monotonic()
        await asyncio.sleep(IDLE)
        problems = []
        if not native.is_open:
            problems.append(f"native WebSocket closed ({native.close_code}) after {native.closed_at - start:.1f}s")
        for name, s in (("Socket.IO WebSocket", sio_ws), ("Socket.IO polling", sio_poll)):
            if s.disconnected.is_set():
                problems.append(f"{name} disconnected: {s.disconnect_reason}")
        assert not problems, f"after {IDLE:.0f}s idle behind nginx: {problems}"
        # Still the same connections, and they work.
        await native.roundtrip()
        assert (sio_ws.sid, sio_poll.sid) == sids
        assert sio_poll.client.transport() == "polling"
        for s in (sio_ws, sio_poll):
            assert isinstance(await s.call("presence", "idle-room"), list)
        st = await Admin(p.srv.http).aok("GET", "/stats")  # direct, not through nginx
        assert st["connections"] == {"native": 1, "socketio": 2, "total": 3}, st
        # The control was cut by nginx (no heartbeat within 5 s).
        assert not cut.is_open, "the control connection survived: proxy_read_timeout was not in force"
        took = cut.closed_at - cut_opened
        assert 4.0 <= took <= 15.0, f"the control was cut after {took:.1f}s (proxy_read_timeout {READ_TIMEOUT})"
    finally:
        await native.close()
        await cut.close()
        for s in (sio_ws, sio_poll):
            await s.close()
            await s.session.close()

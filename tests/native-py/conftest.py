"""Fixtures: `switchboard serve` as a subprocess.

* `server_factory` — start servers with a test's own flags (`start(*flags)`),
  stop / kill / restart them; all are stopped at teardown.
* `jwt_server` — one shared server with `--jwt-secret` (users from tokens).
* `anon_server` — one shared server without `--jwt-secret` (anonymous users).

The binary is `$SB_BIN_DIR/switchboard` (default
`$CARGO_TARGET_DIR/release/switchboard`, CARGO_TARGET_DIR defaulting to
`~/.cache/switchboard-target`). Server logs go to `$OUT_DIR/native-py/`
(OUT_DIR defaults to `./out`).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sb_client import API_KEY, JWT_SECRET

ADDRESS = re.compile(r"on (https?)://([0-9.:]+)")


def binary() -> Path:
    bin_dir = os.environ.get("SB_BIN_DIR")
    if not bin_dir:
        target = os.environ.get("CARGO_TARGET_DIR") or str(
            Path.home() / ".cache" / "switchboard-target"
        )
        bin_dir = str(Path(target) / "release")
    return Path(bin_dir) / "switchboard"


def log_dir() -> Path:
    d = Path(os.environ.get("OUT_DIR", "./out")) / "native-py"
    d.mkdir(parents=True, exist_ok=True)
    return d


_counter = itertools.count(1)


class Server:
    """One `switchboard serve` process (restartable with the same flags)."""

    def __init__(self, args: list[str], env: dict | None, name: str, api_key: str | None):
        self.args = list(args)
        self.env = env
        self.name = name
        self.api_key = api_key
        self.proc: subprocess.Popen | None = None
        self.addr: str | None = None
        self.tls = False  # it said `on https://…` (--tls-cert)
        self.log_path: Path | None = None
        self.starts = 0
        self._log = None
        self._pump: threading.Thread | None = None
        self.stderr_lines: list[str] = []

    # -- addresses ---------------------------------------------------------
    @property
    def http(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.addr}"

    @property
    def ws(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.addr}"

    @property
    def host(self) -> str:
        return self.addr.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "Server":
        assert self.proc is None, "already running"
        exe = binary()
        if not exe.exists():
            raise RuntimeError(
                f"switchboard binary not found at {exe} (set SB_BIN_DIR or CARGO_TARGET_DIR; "
                "build it with `cargo build --release`)"
            )
        self.starts += 1
        suffix = "" if self.starts == 1 else f"-restart{self.starts - 1}"
        self.log_path = log_dir() / f"{self.name}{suffix}.log"
        self._log = open(self.log_path, "w", encoding="utf-8", errors="replace")
        self._log.write(f"$ {exe} {' '.join(self.args)}\n")
        self._log.flush()
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        if self.env:
            env.update(self.env)
        self.stderr_lines = []
        self.addr = None
        self.proc = subprocess.Popen(
            [str(exe), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.PIPE,
            env=env,
        )
        found = threading.Event()

        def pump(proc=self.proc, log=self._log):
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace")
                self.stderr_lines.append(line)
                try:
                    log.write(line)
                    log.flush()
                except ValueError:  # log closed at teardown
                    pass
                if self.addr is None:
                    m = ADDRESS.search(line)
                    if m:
                        self.tls = m.group(1) == "https"
                        self.addr = m.group(2)
                        found.set()
            found.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        found.wait(timeout)
        if self.addr is None:
            code = self.proc.poll()
            self.kill()
            raise RuntimeError(
                f"server did not print its address (exit {code}); log {self.log_path}:\n"
                + "".join(self.stderr_lines[-40:])
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _reap(self) -> int | None:
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        if self._pump is not None:
            self._pump.join(timeout=2)
        if self._log is not None:
            try:
                self._log.write(f"# exit {code}\n")
            finally:
                self._log.close()
        self.proc, self._pump, self._log = None, None, None
        return code

    def stop(self, grace: float = 3.0) -> int | None:
        """SIGTERM (the server drains), SIGKILL after `grace` seconds."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self._reap()

    def kill(self) -> int | None:
        """SIGKILL: no drain, no flush."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        return self._reap()

    def restart(self, hard: bool = False) -> "Server":
        """Stops (SIGKILL with `hard`) and starts again with the same flags.
        The port changes (`--listen 127.0.0.1:0`)."""
        self.kill() if hard else self.stop()
        return self.start()

    def log_text(self) -> str:
        return "".join(self.stderr_lines)


def _test_name(request) -> str:
    name = request.node.nodeid.split("::", 1)[-1] if request.node else "server"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


class Factory:
    def __init__(self, name: str):
        self.name = name
        self.servers: list[Server] = []

    def __call__(
        self,
        *flags: str,
        env: dict | None = None,
        api_key: str | None = API_KEY,
        defaults: bool = True,
        start: bool = True,
    ) -> Server:
        """A server with `serve --listen 127.0.0.1:0 --api-key KEY FLAGS...`.

        `defaults=False` passes `serve FLAGS...` alone (config-file tests);
        `api_key=None` omits `--api-key`; `start=False` returns it unstarted.
        """
        args = ["serve"]
        if defaults:
            args += ["--listen", "127.0.0.1:0"]
            if api_key is not None:
                args += ["--api-key", api_key]
        args += [str(f) for f in flags]
        srv = Server(args, env, f"{self.name}-{next(_counter)}", api_key)
        self.servers.append(srv)
        if start:
            srv.start()
        return srv

    def close(self):
        for s in self.servers:
            try:
                s.stop()
            except Exception:  # noqa: BLE001 — teardown goes on
                s.kill()


@pytest.fixture
def server_factory(request):
    f = Factory(_test_name(request))
    yield f
    f.close()


@pytest.fixture(scope="session")
def jwt_server():
    f = Factory("shared-jwt")
    srv = f("--jwt-secret", JWT_SECRET)
    yield srv
    f.close()


@pytest.fixture(scope="session")
def anon_server():
    f = Factory("shared-anon")
    srv = f()
    yield srv
    f.close()


@pytest.fixture
def wait_until():
    """Polls `cond()` until true (or fails after `timeout` seconds)."""

    def wait(cond, timeout=5.0, every=0.05, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(every)

    return wait


@pytest.fixture
async def clients():
    """Native and Socket.IO clients a test opens; closed at teardown."""
    from sb_client import Clients

    c = Clients()
    yield c
    await c.close()


@pytest.fixture
def admin(jwt_server):
    from sb_client import Admin

    a = Admin(jwt_server.http)
    yield a
    a.session.close()


@pytest.fixture
def redis_server(request, tmp_path):
    """A real `redis-server` (sb_redis.py) on a free port with its own data
    dir, already answering PING; `stop()` / `start()` restart it on the same
    port and dir. Its log is `$OUT_DIR/native-py/<test>-redis.log`. Fails
    (not skips) when redis-server is not installed."""
    from sb_redis import RedisServer, redis_binary

    if redis_binary() is None:
        pytest.fail(
            "redis-server not found: install the Debian package `redis-server` "
            "(or set REDIS_SERVER to the binary); the cluster tests need a real Redis",
            pytrace=False,
        )
    r = RedisServer(tmp_path / "redis", log_dir() / f"{_test_name(request)}-redis.log")
    r.log_path.write_text("")
    r.start()
    yield r
    r.close()

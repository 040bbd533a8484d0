"""A real `redis-server` for the cluster tests, as a subprocess.

`RedisServer(dir, log)` picks a free port, `start()` runs

    redis-server --port P --bind 127.0.0.1 --dir DIR --save '' \
        --appendonly yes --appendfsync always

and waits until it answers `PING` (RESP over a raw socket: no client library
needed); `stop()` sends SIGTERM and waits (Redis flushes its append-only
file and exits); `start()` again is a restart on the same port and dir, so
what was acknowledged before is still there; `kill()` is SIGKILL. The
`redis_server` fixture (conftest.py) makes one per test and stops it at
teardown.

`redis-server` comes from `$REDIS_SERVER`, else the PATH (Debian package
`redis-server`: /usr/bin/redis-server).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PING = b"*1\r\n$4\r\nPING\r\n"


def redis_binary() -> str | None:
    exe = os.environ.get("REDIS_SERVER")
    if exe:
        return exe if Path(exe).exists() else None
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bytes | None:
    """Sends one RESP `PING`: the first reply line (`b"+PONG"`, or an error
    such as `b"-LOADING ..."`), None when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(PING)
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(1024)
                if not chunk:
                    return None
                buf += chunk
            return buf.split(b"\r\n", 1)[0]
    except OSError:
        return None


class RedisServer:
    """One `redis-server`, restartable on the same port and data dir."""

    def __init__(self, dir: Path, log_path: Path, port: int | None = None):
        exe = redis_binary()
        if exe is None:
            raise RuntimeError(
                "redis-server not found (install the Debian package `redis-server`, "
                "or set REDIS_SERVER to the binary): the cluster tests need a real Redis"
            )
        self.exe = exe
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def args(self) -> list[str]:
        return [
            self.exe,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", "",
        ]

    def start(self, timeout: float = 10.0) -> "RedisServer":
        assert self.proc is None, "redis-server already running"
        self.starts += 1
        self._log = open(self.log_path, "a", encoding="utf-8", errors="replace")
        self._log.write(f"# start {self.starts}: {' '.join(repr(a) if a == '' else a for a in self.args())}\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            self.args(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._close_log(code)
                self.proc = None
                raise RuntimeError(
                    f"redis-server exited ({code}) before answering PING; log {self.log_path}:\n"
                    + self.log_tail()
                )
            last = ping(self.port)
            if last == b"+PONG":
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"redis-server on port {self.port} did not answer PING within {timeout}s "
                    f"(last answer {last!r}); log {self.log_path}:\n" + self.log_tail()
                )
            time.sleep(0.05)

    def _close_log(self, code):
        if self._log is not None:
            try:
                self._log.write(f"# exit {code}\n")
            finally:
                self._log.close()
            self._log = None

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM (Redis syncs its append-only file and exits), SIGKILL after `grace`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait()
        self._close_log(code)
        self.proc = None
        return code

    def kill(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self._close_log(code)
        self.proc = None
        return code

    def restart(self) -> "RedisServer":
        self.stop()
        return self.start()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "".join(self.log_path.read_text(errors="replace").splitlines(True)[-n:])
        except OSError:
            return ""

    def close(self):
        try:
            self.stop()
        except Exception:  # noqa: BLE001 — teardown goes on
            self.kill()

"""Clients for the tests: the native protocol (`websockets`), the admin API
(`requests`), Socket.IO (`python-socketio`) and a hand-made WebSocket over a
raw TCP socket (for clients that misbehave on purpose)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
import uuid
from typing import Any, Callable
from urllib.parse import quote

import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import sb_jwt

API_KEY = "test-key"
JWT_SECRET = "test-jwt-secret"

# How long to wait for something that should come (generous: a loaded CI box).
WAIT = 5.0


def unique(prefix: str = "room") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def token(user: str, ttl: float | None = 3600, secret: str = JWT_SECRET, **claims) -> str:
    return sb_jwt.token(user, secret, ttl, **claims)


# --------------------------------------------------------------------------
# Native protocol
# --------------------------------------------------------------------------


class Native:
    """A native-protocol client: JSON requests with ids; everything the
    server sends is recorded in `received` (replies, pushes, the text
    `"pong"` as `{"pong": True}`, binary frames as `{"binary": ...}`)."""

    def __init__(self, ws):
        self.ws = ws
        self.received: list[dict] = []
        self._cond = asyncio.Condition()
        self._ids = 0
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = asyncio.Event()
        self.closed_at: float | None = None
        self.welcome: dict | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls,
        base: str,
        token: str | None = None,
        *,
        path: str = "/ws",
        query: str | None = None,
        origin: str | None = None,
        headers: dict | None = None,
        welcome: bool = True,
        **kwargs,
    ) -> "Native":
        """Connects to `base` (`ws://host:port`) and, unless `welcome=False`,
        waits for the welcome push."""
        url = base + path
        params = []
        if token is not None:
            params.append(f"token={quote(token, safe='')}")
        if query:
            params.append(query)
        if params:
            url += "?" + "&".join(params)
        kwargs.setdefault("ping_interval", None)  # only the server pings
        kwargs.setdefault("compression", None)
        kwargs.setdefault("max_size", None)
        kwargs.setdefault("proxy", None)
        kwargs.setdefault("open_timeout", WAIT)
        kwargs.setdefault("close_timeout", 2)
        ws = await connect(url, origin=origin, additional_headers=headers, **kwargs)
        client = cls(ws)
        if welcome:
            client.welcome = await client.next(lambda m: m.get("op") == "welcome")
        return client

    async def _read(self):
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    msg = {"binary": frame}
                elif frame == "pong":
                    msg = {"pong": True}
                else:
                    try:
                        msg = json.loads(frame)
                    except ValueError:
                        msg = {"text": frame}
                async with self._cond:
                    self.received.append(msg)
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed_at = time.monotonic()
            rcvd = getattr(self.ws.protocol, "close_rcvd", None)
            self.close_code = rcvd.code if rcvd is not None else 1006
            self.close_reason = rcvd.reason if rcvd is not None else None
            self.closed.set()
            async with self._cond:
                self._cond.notify_all()

    def find(self, pred: Callable[[dict], bool]) -> dict | None:
        return next((m for m in self.received if _safe(pred, m)), None)

    async def next(self, pred: Callable[[dict], bool], timeout: float = WAIT) -> dict:
        """The first message (already received or coming) that `pred` accepts."""

        def check():
            return self.find(pred) is not None or self.closed.is_set()

        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    await self._cond.wait_for(check)
        except TimeoutError:
            raise AssertionError(
                f"timed out after {timeout}s waiting for a message; got {self.received[-10:]}"
            ) from None
        found = self.find(pred)
        if found is None:
            raise AssertionError(
                f"connection closed ({self.close_code}) before the message came; got {self.received[-10:]}"
            )
        return found

    async def send(self, frame: str | bytes | dict):
        if isinstance(frame, dict):
            frame = json.dumps(frame)
        await self.ws.send(frame)

    async def request(self, op: str, timeout: float = WAIT, **fields) -> dict:
        """Sends `{op, id, **fields}` and returns the reply with that id."""
        self._ids += 1
        rid = self._ids
        await self.send({"op": op, "id": rid, **fields})
        return await self.next(lambda m: "op" not in m and m.get("id") == rid, timeout)

    async def ok(self, op: str, **fields) -> dict:
        """`request`, asserting `ok: true`."""
        r = await self.request(op, **fields)
        assert r.get("ok") is True, f"{op} {fields} -> {r}"
        return r

    async def roundtrip(self, timeout: float = WAIT):
        """Text ping -> pong: proves the connection is open and in order."""
        before = sum(1 for m in self.received if m.get("pong"))
        await self.ws.send("ping")
        await self.next_count(lambda m: m.get("pong"), before + 1, timeout)

    async def next_count(self, pred, n: int, timeout: float = WAIT) -> list[dict]:
        """Waits until `n` messages match `pred`; returns them."""
        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    await self._cond.wait_for(
                        lambda: self.closed.is_set()
                        or sum(1 for m in self.received if _safe(pred, m)) >= n
                    )
        except TimeoutError:
            pass
        got = [m for m in self.received if _safe(pred, m)]
        assert len(got) >= n, f"wanted {n} messages, got {len(got)}: {self.received[-10:]}"
        return got

    def messages(self, room: str) -> list[dict]:
        return [m for m in self.received if m.get("op") == "message" and m.get("room") == room]

    def pushes(self, op: str) -> list[dict]:
        return [m for m in self.received if m.get("op") == op]

    async def wait_closed(self, timeout: float = WAIT) -> int:
        try:
            async with asyncio.timeout(timeout):
                await self.closed.wait()
        except TimeoutError:
            raise AssertionError(f"connection still open after {timeout}s") from None
        return self.close_code

    @property
    def is_open(self) -> bool:
        return not self.closed.is_set()

    async def close(self):
        if not self.closed.is_set():
            try:
                await asyncio.wait_for(self.ws.close(), 2)
            except Exception:  # noqa: BLE001
                pass
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass


def _safe(pred, m):
    try:
        return pred(m)
    except (KeyError, TypeError, AttributeError):
        return False


async def refused_status(base: str, path: str = "/ws", **kwargs) -> int:
    """Opens a WebSocket that the server is expected to refuse: its HTTP status."""
    kwargs.setdefault("proxy", None)
    kwargs.setdefault("open_timeout", WAIT)
    try:
        ws = await connect(base + path, **kwargs)
    except InvalidStatus as e:
        return e.response.status_code
    await ws.close()
    raise AssertionError(f"{path}: the upgrade was accepted")


class Clients:
    """Closes what a test opened."""

    def __init__(self):
        self.natives: list[Native] = []
        self.sios: list = []

    async def native(self, base: str, token: str | None = None, **kw) -> Native:
        c = await Native.open(base, token, **kw)
        self.natives.append(c)
        return c

    async def sio(self, base: str, token: str | None = None, **kw) -> "Sio":
        c = await Sio.open(base, token, **kw)
        self.sios.append(c)
        return c

    async def close(self):
        for c in self.natives:
            await c.close()
        for s in self.sios:
            await s.close()


# --------------------------------------------------------------------------
# Socket.IO (python-socketio's asyncio client)
# --------------------------------------------------------------------------


class Sio:
    """A Socket.IO client recording every event it receives as (event, args)."""

    def __init__(self, http_session=None):
        import socketio

        # `http_session`: an aiohttp.ClientSession of the caller's (e.g. with
        # an SSL context trusting a test certificate); it closes it.
        extra = {"http_session": http_session} if http_session is not None else {}
        self.client = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False, **extra)
        self.events: list[tuple[str, tuple]] = []
        self.disconnect_reason: str | None = None
        self.disconnected = asyncio.Event()
        self._cond = asyncio.Condition()

        async def any_event(event, *args):
            async with self._cond:
                self.events.append((event, args))
                self._cond.notify_all()

        async def on_disconnect(reason=None):
            self.disconnect_reason = reason
            self.disconnected.set()
            async with self._cond:
                self._cond.notify_all()

        self.client.on("*", any_event)
        self.client.on("disconnect", on_disconnect)

    @classmethod
    async def open(
        cls, base: str, token: str | None = None, transports=("websocket",), headers=None, http_session=None
    ):
        """Connects to `base` (`http://host:port`, or `https://`)."""
        s = cls(http_session)
        auth = {"token": token} if token is not None else None
        await s.client.connect(
            base,
            auth=auth,
            transports=list(transports),
            headers=headers or {},
            wait_timeout=WAIT,
        )
        return s

    async def call(self, event: str, *args, timeout: float = WAIT):
        """emit with an ack; returns the ack's (first) argument."""
        data = args[0] if len(args) == 1 else tuple(args) if args else None
        return await self.client.call(event, data, timeout=timeout)

    async def next(self, event: str, pred=lambda args: True, timeout: float = WAIT) -> tuple:
        def find():
            return next((a for e, a in self.events if e == event and _safe(pred, a)), None)

        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    await self._cond.wait_for(lambda: find() is not None)
        except TimeoutError:
            raise AssertionError(f"no {event!r} event in {timeout}s; got {self.events[-10:]}") from None
        return find()

    @property
    def sid(self) -> str:
        return self.client.get_sid()

    async def close(self):
        try:
            await asyncio.wait_for(self.client.disconnect(), 3)
        except Exception:  # noqa: BLE001
            pass


# --------------------------------------------------------------------------
# Admin API
# --------------------------------------------------------------------------


class Admin:
    """The admin API under /api/v1 with the bearer key."""

    def __init__(self, base: str, key: str | None = API_KEY):
        self.base = base.rstrip("/") + "/api/v1"
        self.key = key
        self.session = requests.Session()
        self.session.trust_env = False

    def _headers(self, key, headers):
        h = {}
        key = self.key if key is ... else key
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        h.update(headers or {})
        return h

    def request(self, method: str, path: str, *, key=..., headers=None, **kw) -> requests.Response:
        return self.session.request(
            method, self.base + path, headers=self._headers(key, headers), timeout=WAIT, **kw
        )

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw) -> requests.Response:
        if body is not None and "data" not in kw:
            kw["json"] = body
        return self.request("POST", path, **kw)

    def ok(self, method: str, path: str, body: Any = None, **kw) -> Any:
        if body is not None:
            kw["json"] = body
        r = self.request(method, path, **kw)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    # async wrappers (so the event loop keeps reading WebSockets meanwhile)
    async def aok(self, method: str, path: str, body: Any = None, **kw) -> Any:
        return await asyncio.to_thread(self.ok, method, path, body, **kw)

    async def arequest(self, method: str, path: str, **kw) -> requests.Response:
        return await asyncio.to_thread(self.request, method, path, **kw)


def api_error(r: requests.Response, status: int, code: str):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str), body
    return body


# --------------------------------------------------------------------------
# A WebSocket by hand over a raw TCP socket
# --------------------------------------------------------------------------


class RawWs:
    """The client side of RFC 6455 written out by hand: the handshake, masked
    frames, and reading frames. It never answers pings unless told to."""

    def __init__(self, host: str, port: int, path: str = "/ws", headers: dict | None = None, timeout=WAIT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status_line = head.split(b"\r\n", 1)[0].decode()
        self.status = int(self.status_line.split()[1])
        self.opened_at = time.monotonic()

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True):
        mask = os.urandom(4)
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", b0, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_text(self, text: str):
        self.send_frame(0x1, text.encode())

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self) -> tuple[int, bytes]:
        """(opcode, payload); EOFError when the server closed the TCP connection."""
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8))
        if b1 & 0x80:
            mask = self._read_exact(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read_exact(n)))
        else:
            data = self._read_exact(n)
        return b0 & 0x0F, data

    def read_until_eof(self, deadline: float, on_frame=None) -> float | None:
        """Reads frames until the server drops the connection (returns when,
        `time.monotonic()`) or `deadline` passes (returns None)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                op, data = self.read_frame()
            except (EOFError, ConnectionResetError, BrokenPipeError):
                return time.monotonic()
            except (socket.timeout, TimeoutError):
                return None
            if on_frame:
                on_frame(op, data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def slow_reader(srv, path):
    """A WebSocket that reads nothing once open: tiny receive buffer."""
    raw = RawWs.__new__(RawWs)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((srv.host, srv.port))
    sock.settimeout(5)
    # RawWs's handshake, on a socket with a small receive buffer.
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert b" 101 " in head.split(b"\r\n")[0]
    raw.sock, raw.buf = sock, rest
    raw.opened_at = time.monotonic()
    return raw

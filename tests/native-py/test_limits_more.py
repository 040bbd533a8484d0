"""Connections per IP (429), request header limits
(431), the new --max-payload default (64 KiB), slow consumers (volatile
drops above --send-queue, close 4008 above 4x)."""

import asyncio
import json
import socket
import time

import requests

from sb_client import Admin, slow_reader, token, unique


def raw_http(host, port, request: bytes, timeout=5.0) -> tuple[int, dict, bytes]:
    """Sends `request` on a fresh TCP connection; (status, headers, body)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, body = data.split(b"\r\n\r\n", 1)
                n = next(
                    (int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")),
                    None,
                )
                if n is not None and len(body) >= n:
                    break
    finally:
        s.close()
    assert data, "no answer"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    return status, headers, body


def get(path, host, port, extra: list[str] = ()) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- connections per IP ----------------------------------------------------


async def test_max_connections_per_ip_plain_http(server_factory):
    srv = server_factory("--max-connections-per-ip", "3")
    held = [socket.create_connection((srv.host, srv.port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        status, headers, body = raw_http(srv.host, srv.port, get("/healthz", srv.host, srv.port))
        assert status == 429
        assert headers.get("content-type", "").startswith("application/json")
        assert json.loads(body)["error"]["code"] == "too_many_connections"
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while True:
        status = raw_http(srv.host, srv.port, get("/healthz", srv.host, srv.port))[0]
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200, "connections that closed still count"


async def test_max_connections_per_ip_counts_websockets(server_factory, clients):
    """Open WebSockets are TCP connections too (native and Socket.IO)."""
    srv = server_factory("--max-connections-per-ip", "3")
    held = [await clients.native(srv.ws) for _ in range(2)]
    await clients.sio(srv.http)
    status, _, body = await asyncio.to_thread(raw_http, srv.host, srv.port, get("/healthz", srv.host, srv.port))
    assert status == 429, "3 open WebSockets did not count towards --max-connections-per-ip"
    assert json.loads(body)["error"]["code"] == "too_many_connections"
    from sb_client import refused_status

    assert await refused_status(srv.ws) == 429
    await held[0].close()
    deadline = time.monotonic() + 5
    while True:
        status, _, _ = await asyncio.to_thread(raw_http, srv.host, srv.port, get("/healthz", srv.host, srv.port))
        if status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert status == 200


# -- headers ---------------------------------------------------------------


def test_header_limits(server_factory):
    srv = server_factory()
    ok = [f"X-H{i}: v" for i in range(90)]  # + Host + Connection: under 100
    assert raw_http(srv.host, srv.port, get("/healthz", srv.host, srv.port, ok))[0] == 200
    many = [f"X-H{i}: v" for i in range(120)]
    assert raw_http(srv.host, srv.port, get("/healthz", srv.host, srv.port, many))[0] == 431
    big = ["X-Big: " + "b" * (17 * 1024)]
    assert raw_http(srv.host, srv.port, get("/healthz", srv.host, srv.port, big))[0] == 431
    some = ["X-Some: " + "s" * (8 * 1024)]
    assert raw_http(srv.host, srv.port, get("/healthz", srv.host, srv.port, some))[0] == 200


# -- the new --max-payload default -----------------------------------------


async def test_default_max_payload_is_64k(server_factory, clients):
    srv = server_factory()
    s = requests.Session()
    s.trust_env = False
    r = s.get(f"{srv.http}/socket.io/?EIO=4&transport=polling", timeout=5)
    handshake = json.loads(r.text[1:])
    assert handshake["maxPayload"] == 65536
    c = await clients.native(srv.ws)
    room = unique()
    await c.ok("publish", room=room, event="e", data="x" * 60000)
    await c.send('{"op":"publish","room":"r","event":"e","data":"%s"}' % ("y" * 66000))
    assert await c.wait_closed() == 1009


# -- slow consumers --------------------------------------------------------

SEND_QUEUE = 64 * 1024


async def test_slow_consumer_is_closed_4008(server_factory):
    srv = server_factory("--send-queue", str(SEND_QUEUE), "--jwt-secret", "slow")
    raw = await asyncio.to_thread(slow_reader, srv, f"/ws?token={token('slow-user', secret='slow')}")
    try:
        admin = Admin(srv.http)
        blob = "x" * 200_000
        gone = False
        for _ in range(200):  # up to 40 MB: kernel buffers first, then the queue
            await admin.aok("POST", "/publish", {"room": "user:slow-user", "event": "fill", "data": blob})
            rows = await admin.aok("GET", "/sockets")
            if not rows:
                gone = True
                break
        assert gone, "a client that does not read was never disconnected"

        def drain():
            raw.sock.settimeout(10)
            while True:
                op, data = raw.read_frame()
                if op == 0x8:
                    return int.from_bytes(data[:2], "big"), data[2:].decode()

        code, reason = await asyncio.to_thread(drain)
        assert code == 4008 and reason == "slow consumer"
    finally:
        raw.close()


async def test_slow_consumer_volatile_messages_dropped_first(server_factory, clients):
    """Between --send-queue and 4x it: volatile publishes are dropped, the
    others are kept, the connection stays."""
    srv = server_factory("--send-queue", str(256 * 1024), "--rate", "100000", "--rate-burst", "100000")
    room = unique("vol")
    raw = await asyncio.to_thread(slow_reader, srv, "/ws")
    pub = await clients.native(srv.ws)
    try:
        # The slow client joins (one request, read the reply later).
        raw.send_text(json.dumps({"id": 1, "op": "join", "room": room}))
        await asyncio.sleep(0.2)

        def drops():
            s = requests.Session()
            s.trust_env = False
            text = s.get(f"{srv.http}/metrics", timeout=5).text
            return sum(
                float(l.rsplit(" ", 1)[1])
                for l in text.splitlines()
                if l.startswith("switchboard_queue_drops_total") and 'protocol="native"' in l
            )

        filler = "f" * 16_000
        admin = Admin(srv.http)
        sent_volatile = []
        n = 0
        # Fill until a volatile drop is counted; the connection must not be
        # ended before (that takes 4x --send-queue; each step adds 16 KB).
        while True:
            n += 1
            assert n < 1000, "no volatile drop after 16 MB"
            await pub.ok("publish", room=room, event="fill", data={"n": n, "pad": filler})
            await pub.ok("publish", room=room, event="vol", data=n, volatile=True)
            sent_volatile.append(n)
            connected = len(await admin.aok("GET", f"/sockets?room={room}")) == 1
            assert connected, (
                f"the slow client was ended after {n} steps before any volatile drop was counted "
                "in switchboard_queue_drops_total"
            )
            if await asyncio.to_thread(drops) > 0:
                break

        def read_all():
            raw.sock.settimeout(2)
            got = []
            try:
                while True:
                    op, data = raw.read_frame()
                    if op == 0x1:
                        got.append(json.loads(data))
                    if op == 0x8:
                        break
                    if sum(1 for g in got if g.get("event") == "fill") == n:
                        break
            except (TimeoutError, socket.timeout):
                pass
            return got

        got = await asyncio.to_thread(read_all)
        fills = [g["data"]["n"] for g in got if g.get("event") == "fill"]
        vols = [g["data"] for g in got if g.get("event") == "vol"]
        assert fills == list(range(1, n + 1)), "non-volatile messages are all delivered, in order"
        assert len(vols) < len(sent_volatile), "some volatile ones were dropped"
    finally:
        raw.close()

"""`serve --tls-cert --tls-key` (docs/operations.md, TLS): wss:// and https://
end to end with a self-signed certificate for 127.0.0.1 / localhost
(sb_tls.py), clients trusting exactly that certificate."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import aiohttp
import pytest
import requests
from websockets.asyncio.client import connect

from sb_client import API_KEY, Sio, unique
from sb_tls import make_cert


@pytest.fixture
def tls_server(server_factory, tmp_path):
    cert = make_cert(tmp_path / "tls")
    srv = server_factory("--tls-cert", str(cert.cert), "--tls-key", str(cert.key))
    assert srv.tls, "the server did not say `on https://…`"
    srv.cert = cert
    return srv


async def test_native_over_wss(tls_server, clients):
    srv = tls_server
    assert srv.ws.startswith("wss://")
    ctx = srv.cert.client_context()
    a = await clients.native(srv.ws, ssl=ctx)
    # By name too: the certificate names localhost.
    b = await clients.native(f"wss://localhost:{srv.port}", ssl=ctx)
    room = unique("tls")
    await a.ok("join", room=room)
    await b.ok("join", room=room)
    r = await b.ok("publish", room=room, event="hello", data={"over": "wss"})
    for c in (a, b):
        m = await c.next(lambda m: m.get("op") == "message" and m["room"] == room)
        assert (m["event"], m["data"], m["offset"]) == ("hello", {"over": "wss"}, r["offset"])
    assert isinstance(a.ws.transport.get_extra_info("ssl_object"), ssl.SSLObject)


async def test_socketio_over_https_and_wss(tls_server):
    srv = tls_server
    room = unique("tls-sio")
    sessions, sios = [], []
    try:
        for transports in (["websocket"], ["polling"]):
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=srv.cert.client_context()))
            sessions.append(session)
            sios.append(await Sio.open(srv.http, transports=transports, http_session=session))
        ws, poll = sios
        assert poll.client.transport() == "polling"
        assert ws.client.transport() == "websocket"
        for s in sios:
            assert (await s.call("join", room))["ok"] is True
        ack = await ws.call("publish", room, "hello", {"over": "wss"})
        assert ack["ok"] is True, ack
        for s in sios:
            args = await s.next("hello")
            assert args[0] == {"over": "wss"} and args[1]["room"] == room
    finally:
        for s in sios:
            await s.close()
        for session in sessions:
            await session.close()


def https_session(srv) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(srv.cert.cert)
    return s


def test_admin_api_over_https(tls_server):
    srv = tls_server
    s = https_session(srv)
    r = s.get(f"{srv.http}/api/v1/stats", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
    assert r.status_code == 200 and "connections" in r.json(), r.text
    assert s.get(f"{srv.http}/healthz", timeout=5).text.strip() == "ok"


async def test_untrusted_certificate_is_refused_by_the_client(tls_server):
    """The clients above really verify: one that trusts only the system CAs
    refuses this self-signed certificate."""
    with pytest.raises(ssl.SSLCertVerificationError):
        ws = await connect(tls_server.ws + "/ws", ssl=ssl.create_default_context(), proxy=None, open_timeout=5)
        await ws.close()


async def test_plain_ws_to_the_tls_port_fails_cleanly(tls_server, clients):
    """`ws://` (plain HTTP) to the TLS port: the client gets an error at once
    (no hang, no upgrade), and the server goes on serving wss clients."""
    srv = tls_server
    plain = f"ws://{srv.addr}/ws"
    start = time.monotonic()
    with pytest.raises(Exception) as e:
        ws = await connect(plain, proxy=None, open_timeout=5)
        await ws.close()
    assert time.monotonic() - start < 5, f"took {time.monotonic() - start:.1f}s"
    assert not isinstance(e.value, TimeoutError), f"timed out instead of failing: {e.value!r}"

    def raw():
        s = socket.create_connection((srv.host, srv.port), timeout=5)
        try:
            s.sendall(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            data = b""
            while True:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
            return data
        finally:
            s.close()

    # The server answers plain HTTP with a TLS alert record (type 0x15) and
    # closes, or just closes: never an HTTP answer, never a hang.
    data = await asyncio.to_thread(raw)
    assert data == b"" or data[0] == 0x15, data[:100]
    # Still serving TLS clients.
    c = await clients.native(srv.ws, ssl=srv.cert.client_context())
    await c.roundtrip()
    stats = await asyncio.to_thread(lambda: https_session(srv).get(
        f"{srv.http}/api/v1/stats", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5
    ).json())  # fmt: skip
    assert stats["connections"]["native"] == 1, stats

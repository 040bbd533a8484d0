"""--connect-url (allow / deny /
unavailable, both protocols), --rpc-url (native `rpc` op, Socket.IO unknown
events), --webhook-url (online / offline) and the X-Switchboard-Signature
HMAC, against a small http.server backend in a thread."""

import asyncio
import re
import time

import pytest
import socketio

from sb_backend import Backend, closed_port_url
from sb_client import WAIT, Admin, refused_status, token, unique

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.close()


async def sio_refusal(srv, auth_token="t") -> dict:
    """Connects with python-socketio expecting connect_error; its data."""
    client = socketio.AsyncClient(reconnection=False)
    errors = []
    client.on("connect_error", lambda data: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(srv.http, auth={"token": auth_token}, transports=["websocket"], wait_timeout=WAIT)
    await client.disconnect()
    assert errors, "no connect_error"
    return errors[0]


# -- --connect-url ---------------------------------------------------------


async def test_connect_allows_native_with_user_info_and_rooms(server_factory, backend, clients):
    backend.on("/connect", 200, {"user": "be-alice", "info": {"plan": "pro"}, "rooms": ["auto-1", "auto-2"]})
    srv = server_factory("--connect-url", backend.url("/connect"))
    c = await clients.native(srv.ws, "opaque-token", headers={"X-Test": "yes"})
    assert c.welcome["user"] == "be-alice"
    (req,) = backend.wait_for("/connect")
    body = req.json
    assert set(body) == {"protocol", "token", "headers", "remote"}
    assert body["protocol"] == "native" and body["token"] == "opaque-token"
    assert body["headers"].get("x-test") == "yes"
    assert all(k == k.lower() for k in body["headers"]), body["headers"]
    assert re.match(r"^127\.0\.0\.1:\d+$", body["remote"]), body["remote"]
    # Auto-joined to the rooms the backend named.
    admin = Admin(srv.http)
    for room in ("auto-1", "auto-2"):
        await admin.aok("POST", "/publish", {"room": room, "event": "e", "data": room})
        m = await c.next(lambda m, room=room: m.get("op") == "message" and m["room"] == room)
        assert m["data"] == room
    members = await admin.aok("GET", "/presence/auto-1")
    assert members[0]["user"] == "be-alice" and members[0]["info"] == {"plan": "pro"}


async def test_connect_native_without_token_sends_null(server_factory, backend, clients):
    backend.on("/connect", 200, {"user": "be-anon"})
    srv = server_factory("--connect-url", backend.url("/connect"))
    c = await clients.native(srv.ws)
    assert c.welcome["user"] == "be-anon"
    assert backend.wait_for("/connect")[0].json["token"] is None


async def test_connect_allows_socketio(server_factory, backend, clients):
    backend.on("/connect", 200, {"user": "be-sio", "rooms": ["auto-s"]})
    srv = server_factory("--connect-url", backend.url("/connect"))
    s = await clients.sio(srv.http, "sio-token")
    (req,) = backend.wait_for("/connect")
    assert req.json["protocol"] == "socketio" and req.json["token"] == "sio-token"
    rows = await Admin(srv.http).aok("GET", "/sockets")
    assert [(r["user"], r["protocol"]) for r in rows] == [("be-sio", "socketio")]
    await Admin(srv.http).aok("POST", "/publish", {"room": "auto-s", "event": "hello", "data": 1})
    assert (await s.next("hello"))[0] == 1


@pytest.mark.parametrize(
    "status, body",
    [(401, {}), (403, {}), (200, {"deny": True, "reason": "banned"})],
    ids=["401", "403", "deny"],
)
async def test_connect_denied(server_factory, backend, status, body):
    backend.on("/connect", status, body)
    srv = server_factory("--connect-url", backend.url("/connect"))
    assert await refused_status(srv.ws, "/ws?token=t") == 403
    assert (await sio_refusal(srv))["message"] == "forbidden"


@pytest.mark.parametrize("how", ["500", "503", "unreachable", "not-json"])
async def test_connect_backend_unavailable(server_factory, backend, how):
    if how == "unreachable":
        url = closed_port_url("/connect")
    else:
        url = backend.url("/connect")
        backend.routes["/connect"] = (int(how), {}) if how != "not-json" else (200, b"<html>")
    srv = server_factory("--connect-url", url)
    if how == "not-json":
        # A 2xx that is not the expected JSON: refused one way or the other.
        assert await refused_status(srv.ws, "/ws?token=t") in (403, 503)
        return
    assert await refused_status(srv.ws, "/ws?token=t") == 503
    assert (await sio_refusal(srv))["message"] == "unavailable"


async def test_connect_backend_timeout(server_factory, backend):
    backend.on("/connect", 200, {"user": "late"})
    backend.delay["/connect"] = 4
    srv = server_factory("--connect-url", backend.url("/connect"), "--backend-timeout", "1s")
    start = time.monotonic()
    assert await refused_status(srv.ws, "/ws?token=t", open_timeout=10) == 503
    assert time.monotonic() - start < 3.5, "--backend-timeout not applied"


async def test_connect_denied_with_the_auth_op_closes_4401(server_factory, backend, clients):
    backend.on("/connect", 403, {})
    srv = server_factory("--jwt-secret", "be-secret", "--connect-url", backend.url("/connect"))
    c = await clients.native(srv.ws, welcome=False)
    await c.send({"id": 1, "op": "auth", "token": token("be-u", secret="be-secret")})
    assert await c.wait_closed() == 4401


# -- --rpc-url -------------------------------------------------------------


def rpc_route(rec):
    data = rec.json["data"]
    if rec.json["event"] == "fail":
        return 422, {"error": "nope"}
    if rec.json["event"] == "fail5":
        return 500, {"error": "broken"}
    if rec.json["event"] == "sum":
        return 200, {"sum": sum(data)}
    return 200, data


async def test_rpc_native(server_factory, backend, clients):
    backend.routes["/rpc"] = rpc_route
    srv = server_factory("--rpc-url", backend.url("/rpc"))
    c = await clients.native(srv.ws)
    r = await c.request("rpc", event="sum", data=[1, 2, 3])
    assert r == {"id": r["id"], "ok": True, "result": {"sum": 6}}
    (req,) = backend.wait_for("/rpc")
    assert req.json == {"user": c.welcome["user"], "socket": c.welcome["socket"], "event": "sum", "data": [1, 2, 3]}
    for data in ("text", [1, None], None, 5):
        r = await c.request("rpc", event="echo", data=data)
        assert r["ok"] is True and r["result"] == data
    e = await c.request("rpc", event="fail", data=1)
    assert e["ok"] is False and e["error"]["code"] == "rpc_failed"
    await c.roundtrip()


async def test_rpc_5xx_is_rpc_failed(server_factory, backend, clients):
    """docs/protocol.md: any non-2xx answer is rpc_failed (5xx included)."""
    backend.routes["/rpc"] = rpc_route
    srv = server_factory("--rpc-url", backend.url("/rpc"))
    c = await clients.native(srv.ws)
    e = await c.request("rpc", event="fail5", data=1)
    assert e["ok"] is False and e["error"]["code"] == "rpc_failed", e
    s = await clients.sio(srv.http)
    r = await s.call("fail5", 1)
    assert r["ok"] is False and r["error"]["code"] == "rpc_failed", r


async def test_rpc_native_backend_down(server_factory, clients):
    """an unreachable RPC backend is an error, the connection stays."""
    srv = server_factory("--rpc-url", closed_port_url("/rpc"))
    c = await clients.native(srv.ws)
    e = await c.request("rpc", event="x", data=1)
    assert e["ok"] is False and e["error"]["code"] in ("rpc_failed", "unavailable"), e
    await c.roundtrip()


async def test_rpc_socketio_unknown_event(server_factory, backend, clients):
    backend.routes["/rpc"] = rpc_route
    srv = server_factory("--rpc-url", backend.url("/rpc"))
    s = await clients.sio(srv.http)
    assert await s.call("sum", [4, 5]) == {"ok": True, "result": {"sum": 9}}
    (req,) = backend.wait_for("/rpc")
    rows = await Admin(srv.http).aok("GET", "/sockets")
    assert req.json == {"user": rows[0]["user"], "socket": s.sid, "event": "sum", "data": [4, 5]}
    r = await s.call("fail", 1)
    assert r["ok"] is False and r["error"]["code"] == "rpc_failed"
    # Relay events are not forwarded.
    assert "epoch" in await s.call("history", "r", {})
    assert len(backend.recorded("/rpc")) == 2


async def test_without_rpc_url(anon_server, clients):
    c = await clients.native(anon_server.ws)
    e = await c.request("rpc", event="sum", data=[1])
    assert e["ok"] is False and e["error"]["code"] == "unknown_op"
    s = await clients.sio(anon_server.http)
    r = await s.call("sum", [1])
    assert r["ok"] is False and r["error"]["code"] == "unknown_event"


# -- --webhook-url and signatures ------------------------------------------


async def test_webhooks_online_offline_signed(server_factory, backend, clients):
    backend.on("/hook", 200, {})
    srv = server_factory(
        "--jwt-secret", "wh-secret",
        "--webhook-url", backend.url("/hook"),
        "--webhook-secret", "hook-key",
    )
    user = unique("wh-user")
    a = await clients.native(srv.ws, token(user, secret="wh-secret"))
    b = await clients.native(srv.ws, token(user, secret="wh-secret"))
    s = await clients.sio(srv.http, token(user, secret="wh-secret"))
    (online,) = backend.wait_for("/hook", lambda r: r.json["type"] == "online")
    assert set(online.json) == {"type", "user", "at"}
    assert online.json["user"] == user and RFC3339.match(online.json["at"])
    assert online.signature_ok("hook-key"), online.headers
    await a.close()
    await s.close()
    await asyncio.sleep(0.5)
    assert [r.json["type"] for r in backend.recorded("/hook")] == ["online"], "one online per user"
    await b.close()
    (offline,) = backend.wait_for("/hook", lambda r: r.json["type"] == "offline")
    assert offline.json["user"] == user and offline.signature_ok("hook-key")
    assert not offline.signature_ok("another-key")


async def test_every_backend_request_is_signed(server_factory, backend, clients):
    backend.on("/connect", 200, {"user": "signed-user"})
    backend.routes["/rpc"] = rpc_route
    srv = server_factory(
        "--connect-url", backend.url("/connect"),
        "--rpc-url", backend.url("/rpc"),
        "--webhook-secret", "sig-key",
    )
    c = await clients.native(srv.ws)
    await c.ok("rpc", event="sum", data=[1])
    assert backend.recorded("/connect") and backend.recorded("/rpc")
    for rec in backend.recorded("/connect") + backend.recorded("/rpc"):
        assert rec.signature_ok("sig-key"), (rec.path, rec.headers)


async def test_no_signature_without_a_secret(server_factory, backend, clients):
    backend.on("/connect", 200, {"user": "unsigned-user"})
    srv = server_factory("--connect-url", backend.url("/connect"))
    await clients.native(srv.ws)
    (rec,) = backend.wait_for("/connect")
    assert "x-switchboard-signature" not in rec.headers

"""The `auth` op when /ws is opened without
`?token=` (HS256 and RS256 via --jwt-public-key), its deadline
(--auth-timeout, close 4401), ops before auth."""

import asyncio
import time

import pytest

from sb_client import refused_status, token, unique
from sb_jwt import Rs256Key

SECRET = "authop-secret"


@pytest.fixture(scope="module")
def auth_server():
    from conftest import Factory

    f = Factory("auth-op")
    srv = f("--jwt-secret", SECRET, "--auth-timeout", "3s")
    yield srv
    f.close()


@pytest.fixture(scope="module")
def rsa_key():
    return Rs256Key()


async def test_no_token_upgrades_without_a_welcome(jwt_server, clients):
    """Without ?token= the upgrade succeeds and the auth op is awaited (docs/protocol.md)."""
    c = await clients.native(jwt_server.ws, welcome=False)
    await asyncio.sleep(0.3)
    assert c.is_open and c.pushes("welcome") == []


async def test_auth_op_then_welcome(auth_server, clients):
    c = await clients.native(auth_server.ws, welcome=False)
    await asyncio.sleep(0.2)
    assert c.pushes("welcome") == [], "no welcome before auth"
    await c.send({"id": 1, "op": "auth", "token": token("ao-alice", secret=SECRET)})
    r = await c.next(lambda m: m.get("id") == 1)
    assert set(r) == {"id", "ok", "user", "socket"}
    assert r["ok"] is True and r["user"] == "ao-alice" and isinstance(r["socket"], str)
    w = await c.next(lambda m: m.get("op") == "welcome")
    assert w["user"] == "ao-alice" and w["socket"] == r["socket"]
    assert c.received.index(r) < c.received.index(w), "the reply, then the welcome"
    room = unique("ao")
    await c.ok("join", room=room)
    await c.ok("publish", room=room, event="e", data=1)
    assert (await c.next(lambda m: m.get("op") == "message"))["from"] == "ao-alice"


@pytest.mark.parametrize(
    "bad",
    ["garbage", "", None, "expired", "wrong-secret"],
)
async def test_auth_op_bad_token_closes_4401(auth_server, clients, bad):
    tok = {
        "expired": token("ao-x", ttl=-10, secret=SECRET),
        "wrong-secret": token("ao-x", secret="other"),
    }.get(bad, bad)
    c = await clients.native(auth_server.ws, welcome=False)
    await c.send({"id": 7, "op": "auth", "token": tok})
    r = await c.next(lambda m: m.get("id") == 7)
    assert r["ok"] is False and r["error"]["code"] == "unauthorized"
    assert await c.wait_closed() == 4401
    assert c.pushes("welcome") == []


async def test_ops_before_auth_are_unauthorized_and_the_connection_stays(auth_server, clients):
    c = await clients.native(auth_server.ws, welcome=False)
    for op, fields in (("join", {"room": "r"}), ("publish", {"room": "r", "event": "e"}), ("history", {"room": "r"})):
        e = await c.request(op, **fields)
        assert e["ok"] is False and e["error"]["code"] == "unauthorized", (op, e)
    assert c.is_open
    await c.send({"id": 99, "op": "auth", "token": token("ao-late", secret=SECRET)})
    assert (await c.next(lambda m: m.get("id") == 99))["ok"] is True
    await c.next(lambda m: m.get("op") == "welcome")
    await c.ok("join", room="r")


async def test_auth_deadline_closes_4401(server_factory, clients):
    srv = server_factory("--jwt-secret", SECRET, "--auth-timeout", "1s")
    c = await clients.native(srv.ws, welcome=False)
    start = time.monotonic()
    assert await c.wait_closed(timeout=6) == 4401
    took = time.monotonic() - start
    assert 0.8 <= took <= 4, f"closed after {took:.2f}s with --auth-timeout 1s"
    assert c.close_reason == "authentication timeout"


async def test_query_token_still_works_and_bad_one_is_401(auth_server, clients):
    c = await clients.native(auth_server.ws, token("ao-query", secret=SECRET))
    assert c.welcome["user"] == "ao-query"
    assert await refused_status(auth_server.ws, "/ws?token=garbage") == 401


# -- RS256 -----------------------------------------------------------------


@pytest.fixture(scope="module")
def rs_server(rsa_key, tmp_path_factory):
    from conftest import Factory

    pem = tmp_path_factory.mktemp("rsa") / "public.pem"
    pem.write_bytes(rsa_key.pem_public)
    f = Factory("rs256")
    srv = f("--jwt-public-key", str(pem))
    yield srv
    f.close()


async def test_rs256_query_token(rs_server, rsa_key, clients):
    c = await clients.native(rs_server.ws, rsa_key.token("rs-alice"))
    assert c.welcome["user"] == "rs-alice"


async def test_rs256_auth_op(rs_server, rsa_key, clients):
    c = await clients.native(rs_server.ws, welcome=False)
    await c.send({"id": 1, "op": "auth", "token": rsa_key.token("rs-bob")})
    assert (await c.next(lambda m: m.get("id") == 1))["user"] == "rs-bob"
    await c.next(lambda m: m.get("op") == "welcome")


async def test_rs256_refuses_other_keys_and_hs256(rs_server, rsa_key):
    other = Rs256Key()
    for bad in (
        other.token("rs-x"),
        token("rs-x", secret="anything"),
        rsa_key.token("rs-x", ttl=-10),
    ):
        assert await refused_status(rs_server.ws, f"/ws?token={bad}") == 401


async def test_rs256_hs256_with_the_public_key_as_secret_is_refused(rs_server, rsa_key):
    """The classic algorithm-confusion attack: HS256 keyed with the PEM."""
    from sb_jwt import claims_for, sign_hs256

    forged = sign_hs256(claims_for("rs-mallory"), rsa_key.pem_public.decode())
    assert await refused_status(rs_server.ws, f"/ws?token={forged}") == 401


async def test_rs256_socketio(rs_server, rsa_key, clients):
    s = await clients.sio(rs_server.http, rsa_key.token("rs-sio"))
    assert (await s.call("join", "rs-room"))["ok"] is True

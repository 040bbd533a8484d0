"""JWT authentication of native connections (`?token=`): accepted and
refused tokens (401 before the upgrade), token expiry with the `refresh`
push, the `refresh` op, close 4003."""

import asyncio
import time

import pytest
import socketio

from sb_client import JWT_SECRET, WAIT, Native, refused_status, token, unique
from sb_jwt import b64url, sign_hs256, unsigned_token


def now() -> int:
    return int(time.time())


BAD_TOKENS = {
    "garbage": lambda: "not-a-jwt",
    "empty": lambda: "",
    "wrong-secret": lambda: token("u", secret="another-secret"),
    "expired": lambda: sign_hs256({"sub": "u", "iat": now() - 100, "exp": now() - 10}, JWT_SECRET),
    "alg-none": lambda: unsigned_token("u"),
    "no-sub": lambda: sign_hs256({"iat": now(), "exp": now() + 3600}, JWT_SECRET),
    "empty-sub": lambda: sign_hs256({"sub": "", "exp": now() + 3600}, JWT_SECRET),
    "sub-not-string": lambda: sign_hs256({"sub": 42, "exp": now() + 3600}, JWT_SECRET),
    "hs512": lambda: _hs512({"sub": "u", "exp": now() + 3600}, JWT_SECRET),
    "tampered": lambda: _tamper(token("u")),
}


def _hs512(claims, secret):
    import hashlib
    import hmac

    signing_input = f"{b64url({'alg': 'HS512', 'typ': 'JWT'})}.{b64url(claims)}"
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha512).digest()
    return f"{signing_input}.{b64url(sig)}"


def _tamper(tok: str) -> str:
    head, _, sig = tok.split(".")
    return f"{head}.{b64url({'sub': 'admin', 'exp': now() + 3600})}.{sig}"


async def test_valid_token_is_the_user(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("auth-ok"))
    assert c.welcome["user"] == "auth-ok"
    # A token without exp is accepted (and never expires).
    c2 = await clients.native(jwt_server.ws, token("auth-noexp", ttl=None))
    assert c2.welcome["user"] == "auth-noexp"


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_bad_token_is_401_before_the_upgrade(jwt_server, kind):
    tok = BAD_TOKENS[kind]()
    from urllib.parse import quote

    assert await refused_status(jwt_server.ws, f"/ws?token={quote(tok, safe='')}") == 401


async def test_bad_token_refused_on_socketio_too(jwt_server):
    client = socketio.AsyncClient(reconnection=False)
    errors = []
    client.on("connect_error", lambda data: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            jwt_server.http, auth={"token": "garbage"}, transports=["websocket"], wait_timeout=WAIT
        )
    assert errors and errors[0]["message"] == "unauthorized", errors
    await client.disconnect()


async def test_token_other_query_params_are_ignored(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("auth-q"), query="foo=bar&x")
    assert c.welcome["user"] == "auth-q"


async def test_expiring_token_refresh_push_then_4003_without_refresh(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("exp-stale", ttl=3))
    push = await c.next(lambda m: m.get("op") == "refresh", timeout=3)
    assert push == {"op": "refresh"}
    code = await c.wait_closed(timeout=8)
    assert code == 4003
    kick = c.find(lambda m: m.get("op") == "kick")
    assert kick == {"op": "kick", "reason": "token_expired", "reconnect": False}
    assert c.received.index(push) < c.received.index(kick)


async def test_refresh_with_a_new_token_keeps_the_connection(jwt_server, clients):
    first = token("exp-fresh", ttl=3)
    c = await clients.native(jwt_server.ws, first)
    await c.next(lambda m: m.get("op") == "refresh", timeout=3)
    fresh = token("exp-fresh", ttl=3600)
    r = await c.request("refresh", token=fresh)
    assert r["ok"] is True and r["expires_at"] > now() + 3000
    # Another user's token is refused, and changes nothing.
    wrong = await c.request("refresh", token=token("exp-someone-else"))
    assert wrong["ok"] is False and wrong["error"]["code"] == "unauthorized"
    # Past the first token's exp (+ the 1 s check) the connection is open.
    await asyncio.sleep(4.2)
    await c.roundtrip()
    assert c.is_open
    assert c.pushes("kick") == []
    room = unique("exp-room")
    await c.ok("join", room=room)


async def test_refresh_push_comes_again_for_a_refreshed_short_token(jwt_server, clients):
    """A refreshed token that is itself short gets its own refresh push."""
    c = await clients.native(jwt_server.ws, token("exp-twice", ttl=20))
    await c.next(lambda m: m.get("op") == "refresh", timeout=3)
    r = await c.request("refresh", token=token("exp-twice", ttl=25))
    assert r["ok"] is True
    await c.next_count(lambda m: m.get("op") == "refresh", 2, timeout=3)


async def test_anonymous_server_has_no_401(anon_server):
    c = await Native.open(anon_server.ws, "garbage")
    assert c.welcome["user"].startswith("anon-")
    await c.close()

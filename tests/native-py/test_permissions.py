"""[[rooms]] rules in the TOML config
(first match wins; join/publish = anyone | users | none), token claims
`rooms` / `publish` granting more, personal rooms."""

import pytest

from sb_client import token

SECRET = "perm-secret"

RULES = """
[[rooms]]
pattern = "public:special"
join = "none"
publish = "none"

[[rooms]]
pattern = "public:*"
join = "anyone"
publish = "users"

[[rooms]]
pattern = "news:*"
join = "users"
publish = "none"

[[rooms]]
pattern = "closed:*"
join = "none"
publish = "none"

[[rooms]]
pattern = "*:open:*"
join = "anyone"
publish = "anyone"
"""


def tok(user, **claims):
    return token(user, secret=SECRET, **claims)


@pytest.fixture(scope="module")
def perm_server(tmp_path_factory):
    from conftest import Factory

    cfg = tmp_path_factory.mktemp("perm") / "rules.toml"
    cfg.write_text(RULES)
    f = Factory("permissions-jwt")
    srv = f("--config", str(cfg), "--jwt-secret", SECRET)
    yield srv
    f.close()


@pytest.fixture(scope="module")
def perm_anon_server(tmp_path_factory):
    from conftest import Factory

    cfg = tmp_path_factory.mktemp("perm-anon") / "rules.toml"
    cfg.write_text(RULES)
    f = Factory("permissions-anon")
    srv = f("--config", str(cfg))
    yield srv
    f.close()


async def outcome(c, op, room):
    fields = {"event": "e", "data": 1} if op == "publish" else {}
    r = await c.request(op, room=room, **fields)
    return "ok" if r["ok"] else r["error"]["code"]


@pytest.mark.parametrize(
    "room, join, publish",
    [
        ("public:lobby", "ok", "ok"),
        ("public:special", "forbidden", "forbidden"),  # first match wins
        ("news:today", "ok", "forbidden"),
        ("closed:x", "forbidden", "forbidden"),
        ("a:open:b", "ok", "ok"),
        ("unmatched", "forbidden", "forbidden"),  # rules exist, none matches
    ],
)
async def test_rules_for_an_authenticated_user(perm_server, clients, room, join, publish):
    c = await clients.native(perm_server.ws, tok("perm-user"))
    assert await outcome(c, "join", room) == join
    assert await outcome(c, "publish", room) == publish


@pytest.mark.parametrize(
    "room, join, publish",
    [
        ("public:lobby", "ok", "forbidden"),  # publish = users: not anonymous ones
        ("news:today", "forbidden", "forbidden"),
        ("a:open:b", "ok", "ok"),
    ],
)
async def test_rules_for_an_anonymous_user(perm_anon_server, clients, room, join, publish):
    c = await clients.native(perm_anon_server.ws)
    assert await outcome(c, "join", room) == join
    assert await outcome(c, "publish", room) == publish


async def test_token_claims_grant_more(perm_server, clients):
    c = await clients.native(
        perm_server.ws, tok("perm-claims", rooms=["team:red", "closed:vip-*"], publish=["news:*"])
    )
    assert await outcome(c, "join", "team:red") == "ok"
    assert await outcome(c, "join", "team:blue") == "forbidden"
    assert await outcome(c, "join", "closed:vip-1") == "ok"
    assert await outcome(c, "publish", "news:today") == "ok"
    assert await outcome(c, "publish", "team:red") == "forbidden", "rooms grants join, not publish"


async def test_rules_apply_to_socketio_too(perm_server, clients):
    s = await clients.sio(perm_server.http, tok("perm-sio"))
    assert (await s.call("join", "public:lobby"))["ok"] is True
    r = await s.call("join", "closed:x")
    assert r["ok"] is False and r["error"]["code"] == "forbidden"
    r = await s.call("publish", "news:today", "e", 1)
    assert r["ok"] is False and r["error"]["code"] == "forbidden"


async def test_personal_rooms(perm_server, clients):
    me = await clients.native(perm_server.ws, tok("perm-me"))
    assert await outcome(me, "join", "user:perm-me") == "ok"
    assert await outcome(me, "join", "user:perm-other") == "forbidden"
    # No rule allows publishing to personal rooms here.
    assert await outcome(me, "publish", "user:perm-other") == "forbidden"


async def test_personal_room_publish_allowed_by_a_rule(server_factory, tmp_path, clients):
    cfg = tmp_path / "rules.toml"
    cfg.write_text('[[rooms]]\npattern = "user:*"\njoin = "users"\npublish = "users"\n')
    srv = server_factory("--config", str(cfg), "--jwt-secret", SECRET)
    alice = await clients.native(srv.ws, tok("perm-alice"))
    bob = await clients.native(srv.ws, tok("perm-bob"))
    assert await outcome(alice, "publish", "user:perm-bob") == "ok"
    m = await bob.next(lambda m: m.get("op") == "message" and m["room"] == "user:perm-bob")
    assert m["from"] == "perm-alice"
    assert await outcome(alice, "join", "user:perm-bob") == "forbidden", "only that user may join"


async def test_no_rules_everything_allowed(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("perm-free"))
    for room in ("closed:x", "news:today", "unmatched"):
        assert await outcome(c, "join", room) == "ok"
        assert await outcome(c, "publish", room) == "ok"

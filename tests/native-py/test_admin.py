"""The admin API under /api/v1 (docs/protocol.md, "Admin API"): every
endpoint, its answers and its errors."""

import asyncio
import re
from urllib.parse import quote

import pytest

from sb_client import API_KEY, Admin, api_error, token, unique

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

ENDPOINTS = [
    ("POST", "/publish"),
    ("POST", "/disconnect"),
    ("GET", "/presence/some-room"),
    ("GET", "/users/some-user"),
    ("GET", "/rooms"),
    ("GET", "/sockets"),
    ("GET", "/history/some-room"),
    ("GET", "/stats"),
]


# -- authorization ---------------------------------------------------------


@pytest.mark.parametrize("method, path", ENDPOINTS)
@pytest.mark.parametrize(
    "auth",
    [None, "Bearer wrong-key", "Bearer ", f"Basic {API_KEY}", API_KEY, f"Bearer {API_KEY}x", f"Bearer{API_KEY}"],
)
def test_missing_or_wrong_key_is_401(jwt_server, method, path, auth):
    a = Admin(jwt_server.http, key=None)
    headers = {"Authorization": auth} if auth is not None else {}
    r = a.request(method, path, headers=headers, json={"room": "r", "event": "e", "data": 1})
    api_error(r, 401, "unauthorized")
    assert r.headers.get("WWW-Authenticate") == "Bearer"
    assert r.headers["Content-Type"].startswith("application/json")


def test_unknown_path_without_key_is_401_not_404(jwt_server):
    r = Admin(jwt_server.http, key=None).get("/nothing-here")
    assert r.status_code == 401


def test_openapi_needs_no_key(jwt_server):
    a = Admin(jwt_server.http, key=None)
    r = a.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert str(doc["openapi"]).startswith("3.")
    paths = set(doc["paths"])
    for p in ("/publish", "/disconnect", "/rooms", "/sockets", "/stats"):
        assert any(x.endswith(p) for x in paths), (p, paths)
    for p in ("presence", "users", "history"):
        assert any(f"/{p}/" in x for x in paths), (p, paths)
    # With a key it is the same document.
    assert Admin(jwt_server.http).get("/openapi.json").json() == doc


# -- 404 / 405 / 400 / 413 -------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/nothing"),
        ("GET", "/presence"),
        ("GET", "/presence/a/b"),
        ("GET", "/users"),
        ("GET", "/history"),
        ("POST", "/publish/extra"),
        ("GET", "/stats/x"),
    ],
)
def test_unknown_endpoints_are_404(admin, method, path):
    api_error(admin.request(method, path), 404, "not_found")


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("GET", "/publish", "POST"),
        ("PUT", "/publish", "POST"),
        ("GET", "/disconnect", "POST"),
        ("DELETE", "/disconnect", "POST"),
        ("POST", "/rooms", "GET"),
        ("POST", "/sockets", "GET"),
        ("POST", "/stats", "GET"),
        ("PUT", "/stats", "GET"),
        ("POST", "/presence/r", "GET"),
        ("DELETE", "/users/u", "GET"),
        ("PATCH", "/history/r", "GET"),
        ("POST", "/openapi.json", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(admin, method, path, allow):
    r = admin.request(method, path)
    api_error(r, 405, "method_not_allowed")
    assert r.headers.get("Allow") == allow


@pytest.mark.parametrize(
    "path, body",
    [
        ("/publish", "{not json"),
        ("/publish", ""),
        ("/publish", "[1, 2]"),
        ("/publish", '"room"'),
        ("/publish", "{}"),
        ("/publish", '{"room": "r"}'),
        ("/publish", '{"event": "e", "data": 1}'),
        ("/publish", '{"room": "", "event": "e"}'),
        ("/publish", '{"room": 5, "event": "e"}'),
        ("/publish", '{"room": "r", "event": 5}'),
        ("/publish", '{"room": "r", "event": ""}'),
        ("/publish", '{"room": "r", "event": "kick"}'),
        ("/publish", '{"room": "r", "event": "connect"}'),
        ("/publish", '{"room": "a\\u0000b", "event": "e"}'),
        ("/disconnect", "{not json"),
        ("/disconnect", "{}"),
        ("/disconnect", '{"reconnect": true}'),
        ("/disconnect", '{"user": "u", "socket": "s"}'),
        ("/disconnect", '{"user": null}'),
        ("/disconnect", '{"user": 5}'),
        ("/disconnect", '{"user": "u", "reconnect": "yes"}'),
    ],
)
def test_bad_bodies_are_400(admin, path, body):
    r = admin.post(path, data=body.encode(), headers={"Content-Type": "application/json"})
    api_error(r, 400, "bad_request")


@pytest.mark.parametrize("query", ["since=abc", "limit=-1", "since=1.5", f"since={2**53}", "limit=x"])
def test_bad_history_query_is_400(admin, query):
    api_error(admin.get(f"/history/r?{query}"), 400, "bad_request")


def test_body_over_1mib_is_413(admin):
    big = '{"room":"r","event":"e","data":"' + "x" * (1 << 20) + '"}'
    api_error(admin.post("/publish", data=big.encode()), 413, "too_large")


# -- POST /publish ---------------------------------------------------------


async def test_publish_reaches_members_with_from_null(jwt_server, clients):
    admin = Admin(jwt_server.http)
    room = unique("a-pub")
    c = await clients.native(jwt_server.ws, token("a-pub"))
    epoch = (await c.ok("join", room=room))["epoch"]
    r = await admin.aok("POST", "/publish", {"room": room, "event": "news", "data": {"n": 1}})
    assert r == {"offset": 1}
    msg = await c.next(lambda m: m.get("op") == "message" and m["room"] == room)
    assert msg["from"] is None and msg["data"] == {"n": 1} and msg["event"] == "news"
    assert msg["epoch"] == epoch and msg["offset"] == 1
    assert await admin.aok("POST", "/publish", {"room": room, "event": "news"}) == {"offset": 2}
    msg = await c.next(lambda m: m.get("op") == "message" and m["offset"] == 2)
    assert msg["data"] is None, "data defaults to null"


# -- POST /disconnect ------------------------------------------------------


@pytest.mark.parametrize("reconnect, code", [(False, 4001), (True, 4000)])
async def test_disconnect_user(jwt_server, clients, reconnect, code):
    admin = Admin(jwt_server.http)
    user = unique("a-kick-user")
    c1 = await clients.native(jwt_server.ws, token(user))
    c2 = await clients.native(jwt_server.ws, token(user))
    bystander = await clients.native(jwt_server.ws, token(unique("a-bystander")))
    r = await admin.aok("POST", "/disconnect", {"user": user, "reason": "bye", "reconnect": reconnect})
    assert r == {"disconnected": 2}
    for c in (c1, c2):
        kick = await c.next(lambda m: m.get("op") == "kick")
        assert kick == {"op": "kick", "reason": "bye", "reconnect": reconnect}
        assert await c.wait_closed() == code
    await bystander.roundtrip()


@pytest.mark.parametrize("reconnect, code", [(False, 4001), (True, 4000)])
async def test_disconnect_socket(jwt_server, clients, reconnect, code):
    admin = Admin(jwt_server.http)
    user = unique("a-kick-sock")
    target = await clients.native(jwt_server.ws, token(user))
    sibling = await clients.native(jwt_server.ws, token(user))
    r = await admin.aok("POST", "/disconnect", {"socket": target.welcome["socket"], "reconnect": reconnect})
    assert r == {"disconnected": 1}
    kick = await target.next(lambda m: m.get("op") == "kick")
    assert kick == {"op": "kick", "reconnect": reconnect}, "no reason given: none in the kick"
    assert await target.wait_closed() == code
    await sibling.roundtrip()
    assert sibling.is_open


async def test_disconnect_reconnect_defaults_to_false(jwt_server, clients):
    admin = Admin(jwt_server.http)
    c = await clients.native(jwt_server.ws, token(unique("a-kick-default")))
    assert await admin.aok("POST", "/disconnect", {"socket": c.welcome["socket"]}) == {"disconnected": 1}
    assert (await c.next(lambda m: m.get("op") == "kick"))["reconnect"] is False
    assert await c.wait_closed() == 4001


def test_disconnect_nobody(admin):
    assert admin.ok("POST", "/disconnect", {"user": unique("nobody")}) == {"disconnected": 0}
    assert admin.ok("POST", "/disconnect", {"socket": "no-such-socket", "reconnect": True}) == {"disconnected": 0}


# -- GET /presence/{room} --------------------------------------------------


async def test_presence_endpoint(jwt_server, clients):
    admin = Admin(jwt_server.http)
    room = unique("a pres/ü?#%")
    a = await clients.native(jwt_server.ws, token("ap-alice", info={"role": "admin"}))
    b = await clients.native(jwt_server.ws, token("ap-bob"))
    await a.ok("join", room=room)
    await b.ok("join", room=room)
    got = await admin.aok("GET", f"/presence/{quote(room, safe='')}")
    assert isinstance(got, list)
    by_user = {m["user"]: m for m in got}
    assert set(by_user) == {"ap-alice", "ap-bob"}
    assert by_user["ap-alice"]["info"] == {"role": "admin"}
    assert by_user["ap-alice"]["connections"] == 1
    for m in got:
        assert set(m) == {"user", "info", "connections", "since"}
        assert RFC3339.match(m["since"])
    assert await admin.aok("GET", f"/presence/{unique('empty')}") == []


# -- GET /users/{user} -----------------------------------------------------


async def test_users_endpoint(jwt_server, clients):
    admin = Admin(jwt_server.http)
    user = unique("a-user")
    c1 = await clients.native(jwt_server.ws, token(user))
    c2 = await clients.native(jwt_server.ws, token(user))
    u = await admin.aok("GET", f"/users/{user}")
    assert set(u) == {"user", "online", "connections", "last_seen"}
    assert u["user"] == user and u["online"] is True and u["connections"] == 2
    assert RFC3339.match(u["last_seen"])
    await c1.close()
    await c2.close()

    async def offline():
        while True:
            u = await admin.aok("GET", f"/users/{user}")
            if not u["online"]:
                return u
            await asyncio.sleep(0.05)

    u = await asyncio.wait_for(offline(), 5)
    assert u["connections"] == 0 and RFC3339.match(u["last_seen"])


def test_users_never_seen_is_404(admin):
    api_error(admin.get(f"/users/{unique('never-seen')}"), 404, "not_found")


async def test_users_percent_encoded(jwt_server, clients):
    admin = Admin(jwt_server.http)
    user = unique("a user/ü")
    await clients.native(jwt_server.ws, token(user))
    u = await admin.aok("GET", f"/users/{quote(user, safe='')}")
    assert u["user"] == user and u["online"] is True


async def test_anonymous_users_are_forgotten_when_they_leave(anon_server, clients):
    admin = Admin(anon_server.http)
    c = await clients.native(anon_server.ws)
    user = c.welcome["user"]
    u = await admin.aok("GET", f"/users/{user}")
    assert u["online"] is True and u["connections"] == 1
    await c.close()

    async def forgotten():
        while True:
            r = await admin.arequest("GET", f"/users/{user}")
            if r.status_code == 404:
                return r
            await asyncio.sleep(0.05)

    api_error(await asyncio.wait_for(forgotten(), 5), 404, "not_found")


# -- GET /rooms ------------------------------------------------------------


async def test_rooms_endpoint(jwt_server, clients):
    admin = Admin(jwt_server.http)
    room = unique("a-rooms")
    a = await clients.native(jwt_server.ws, token("ar-a"))
    a2 = await clients.native(jwt_server.ws, token("ar-a"))
    b = await clients.native(jwt_server.ws, token("ar-b"))
    epoch = (await a.ok("join", room=room))["epoch"]
    await a2.ok("join", room=room)
    await b.ok("join", room=room)
    await a.ok("publish", room=room, event="e", data=1)
    await a.ok("publish", room=room, event="e", data=2)
    rooms = await admin.aok("GET", "/rooms")
    assert isinstance(rooms, list)
    mine = [r for r in rooms if r["room"] == room]
    assert mine == [{"room": room, "epoch": epoch, "offset": 2, "users": 2, "connections": 3}]
    for r in rooms:
        assert set(r) == {"room", "epoch", "offset", "users", "connections"}
    names = [r["room"] for r in rooms]
    assert names == sorted(names)


# -- GET /sockets ----------------------------------------------------------


async def test_sockets_endpoint(jwt_server, clients):
    admin = Admin(jwt_server.http)
    room = unique("a-sockets")
    n1 = await clients.native(jwt_server.ws, token("as-n1"))
    n2 = await clients.native(jwt_server.ws, token("as-n2"))
    outside = await clients.native(jwt_server.ws, token("as-out"))
    s = await clients.sio(jwt_server.http, token("as-sio"))
    await n1.ok("join", room=room)
    await n2.ok("join", room=room)
    assert (await s.call("join", room))["ok"] is True
    got = await admin.aok("GET", f"/sockets?room={quote(room, safe='')}")
    for x in got:
        assert set(x) == {"socket", "user", "protocol", "transport"}
    by_socket = {x["socket"]: x for x in got}
    assert by_socket[n1.welcome["socket"]] == {
        "socket": n1.welcome["socket"],
        "user": "as-n1",
        "protocol": "native",
        "transport": "websocket",
    }
    assert by_socket[n2.welcome["socket"]]["user"] == "as-n2"
    sio_rows = [x for x in got if x["protocol"] == "socketio"]
    assert sio_rows == [{"socket": s.sid, "user": "as-sio", "protocol": "socketio", "transport": "websocket"}]
    assert outside.welcome["socket"] not in by_socket
    assert len(got) == 3

    limited = await admin.aok("GET", f"/sockets?room={quote(room, safe='')}&limit=1")
    assert len(limited) == 1
    everyone = await admin.aok("GET", "/sockets")
    ids = {x["socket"] for x in everyone}
    assert {n1.welcome["socket"], n2.welcome["socket"], outside.welcome["socket"], s.sid} <= ids
    assert await admin.aok("GET", f"/sockets?room={unique('empty')}") == []
    # A personal room lists the user's connections.
    personal = await admin.aok("GET", "/sockets?room=user:as-n1")
    assert [x["socket"] for x in personal] == [n1.welcome["socket"]]


# -- GET /history/{room} ---------------------------------------------------


async def test_history_endpoint(jwt_server, clients):
    admin = Admin(jwt_server.http)
    room = unique("a hist/ü")
    enc = quote(room, safe="")
    c = await clients.native(jwt_server.ws, token("ah-user"))
    epoch = (await c.ok("join", room=room))["epoch"]
    for i in range(1, 6):
        await c.ok("publish", room=room, event="h", data=i)
    h = await admin.aok("GET", f"/history/{enc}")
    assert set(h) == {"epoch", "messages"} and h["epoch"] == epoch
    assert [m["offset"] for m in h["messages"]] == [1, 2, 3, 4, 5]
    m = h["messages"][0]
    assert set(m) == {"offset", "event", "data", "from", "at"}
    assert m["from"] == "ah-user" and m["event"] == "h" and m["data"] == 1 and RFC3339.match(m["at"])

    def offsets(q):
        return [m["offset"] for m in admin.ok("GET", f"/history/{enc}?{q}")["messages"]]

    assert await asyncio.to_thread(offsets, "limit=2") == [4, 5]
    assert await asyncio.to_thread(offsets, "since=3") == [4, 5]
    assert await asyncio.to_thread(offsets, "since=1&limit=2") == [2, 3]
    assert await asyncio.to_thread(offsets, "since=5") == []
    assert await asyncio.to_thread(offsets, "unknown=1") == [1, 2, 3, 4, 5]
    empty = await admin.aok("GET", f"/history/{unique('none')}")
    assert empty["messages"] == [] and isinstance(empty["epoch"], str)


# -- GET /stats ------------------------------------------------------------


async def test_stats_endpoint(server_factory, clients):
    srv = server_factory("--jwt-secret", "stats-secret")
    admin = Admin(srv.http)
    s0 = await admin.aok("GET", "/stats")
    assert set(s0) == {"nodes", "connections", "users_online", "rooms", "uptime_s"}
    assert s0["nodes"] == 1, "a standalone server is one node"
    assert s0["connections"] == {"socketio": 0, "native": 0, "total": 0}
    assert s0["users_online"] == 0 and s0["rooms"] == 0
    assert isinstance(s0["uptime_s"], int) and s0["uptime_s"] >= 0

    n1 = await clients.native(srv.ws, token("st-a", secret="stats-secret"))
    await clients.native(srv.ws, token("st-a", secret="stats-secret"))
    s = await clients.sio(srv.http, token("st-b", secret="stats-secret"))
    await n1.ok("join", room="st-room")
    await s.call("join", "st-room")
    await n1.ok("publish", room="st-room2", event="e", data=1)
    s1 = await admin.aok("GET", "/stats")
    assert s1["connections"] == {"socketio": 1, "native": 2, "total": 3}
    assert s1["users_online"] == 2
    assert s1["rooms"] >= 2, s1  # st-room, st-room2 (personal rooms may count too)

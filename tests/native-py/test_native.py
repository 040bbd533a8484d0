"""The native protocol at /ws (docs/protocol.md, "Native protocol"): every
op, the welcome push, pushes, text ping, malformed requests."""

import asyncio
import json
import re

import pytest

from sb_client import Admin, token, unique

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
RESERVED = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "presence",
    "kick",
    "refresh",
    "file",
]


# -- welcome ---------------------------------------------------------------


async def test_welcome_names_socket_user_and_ping_interval(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("w-alice"))
    assert set(c.welcome) == {"op", "socket", "user", "ping_interval"}
    assert c.welcome["user"] == "w-alice"
    assert c.welcome["ping_interval"] == 25000  # the default --ping-interval
    assert isinstance(c.welcome["socket"], str) and c.welcome["socket"]
    assert c.received[0] is c.welcome, "the welcome is the first frame"
    other = await clients.native(jwt_server.ws, token("w-alice"))
    assert other.welcome["socket"] != c.welcome["socket"]


async def test_welcome_anonymous_user_and_token_ignored(anon_server, clients):
    a = await clients.native(anon_server.ws)
    assert a.welcome["user"].startswith("anon-")
    b = await clients.native(anon_server.ws, token("someone"))
    assert b.welcome["user"].startswith("anon-"), "without --jwt-secret a token is ignored"
    assert a.welcome["user"] != b.welcome["user"]


# -- join / publish / leave ------------------------------------------------


async def test_join_publish_message_push_and_self_delivery(jwt_server, clients):
    room = unique("n-room")
    a = await clients.native(jwt_server.ws, token("n-pub"))
    b = await clients.native(jwt_server.ws, token("n-sub"))
    joined = await b.request("join", room=room)
    assert set(joined) == {"id", "ok", "epoch", "offset", "recovered"}
    assert joined["ok"] is True and joined["offset"] == 0 and joined["recovered"] is False
    assert isinstance(joined["epoch"], str) and joined["epoch"]
    await a.ok("join", room=room)

    pub = await a.request("publish", room=room, event="chat", data={"text": "hi"})
    assert pub == {"id": pub["id"], "ok": True, "offset": 1}

    for client in (a, b):  # the sender gets its own publish too
        msg = await client.next(lambda m: m.get("op") == "message" and m["room"] == room)
        assert set(msg) == {"op", "room", "epoch", "offset", "event", "data", "from", "at"}
        assert msg["epoch"] == joined["epoch"]
        assert msg["offset"] == 1
        assert msg["event"] == "chat"
        assert msg["data"] == {"text": "hi"}
        assert msg["from"] == "n-pub"
        assert RFC3339.match(msg["at"]), msg["at"]

    second = await b.ok("publish", room=room, event="chat", data=[1, "two", None])
    assert second["offset"] == 2
    msgs = await a.next_count(lambda m: m.get("op") == "message" and m["room"] == room, 2)
    assert [m["offset"] for m in msgs] == [1, 2]
    assert msgs[1]["data"] == [1, "two", None] and msgs[1]["from"] == "n-sub"


@pytest.mark.parametrize("data", [None, 0, 3.5, "text", True, {"nested": {"a": [1, 2]}}, "ünïcødé ✓"])
async def test_publish_data_round_trips(jwt_server, clients, data):
    room = unique("n-data")
    c = await clients.native(jwt_server.ws, token("n-data"))
    await c.ok("join", room=room)
    await c.ok("publish", room=room, event="e", data=data)
    msg = await c.next(lambda m: m.get("op") == "message" and m["room"] == room)
    assert msg["data"] == data


async def test_publish_without_data_is_null(jwt_server, clients):
    room = unique("n-nodata")
    c = await clients.native(jwt_server.ws, token("n-nodata"))
    await c.ok("join", room=room)
    await c.ok("publish", room=room, event="e")
    msg = await c.next(lambda m: m.get("op") == "message" and m["room"] == room)
    assert msg["data"] is None


async def test_publish_needs_no_membership_and_non_members_get_nothing(jwt_server, clients):
    room = unique("n-outside")
    member = await clients.native(jwt_server.ws, token("n-member"))
    outsider = await clients.native(jwt_server.ws, token("n-outsider"))
    await member.ok("join", room=room)
    assert (await outsider.ok("publish", room=room, event="e", data=1))["offset"] == 1
    await member.next(lambda m: m.get("op") == "message" and m["room"] == room)
    await outsider.roundtrip()
    assert outsider.messages(room) == []


async def test_leave_stops_delivery(jwt_server, clients):
    room = unique("n-leave")
    a = await clients.native(jwt_server.ws, token("n-leaver"))
    b = await clients.native(jwt_server.ws, token("n-stayer"))
    await a.ok("join", room=room)
    await b.ok("join", room=room)
    await b.ok("publish", room=room, event="e", data=1)
    await a.next(lambda m: m.get("op") == "message" and m["room"] == room)
    left = await a.request("leave", room=room)
    assert left == {"id": left["id"], "ok": True}
    await b.ok("publish", room=room, event="e", data=2)
    await b.next_count(lambda m: m.get("op") == "message" and m["room"] == room, 2)
    await a.roundtrip()
    assert [m["data"] for m in a.messages(room)] == [1]
    # Leaving a room never joined is fine.
    assert (await a.request("leave", room=unique("never")))["ok"] is True


async def test_leaves_from_the_middle_of_a_room_keep_everyone_else(jwt_server, clients):
    # A room keeps its members in join order; a leave moves the last member
    # into the gap. Whoever stays gets every message once, whoever left none.
    room = unique("n-middle")
    members = [await clients.native(jwt_server.ws, token(f"n-mid{i}")) for i in range(6)]
    for m in members:
        await m.ok("join", room=room)
    for gone in (members[1], members[3], members[0]):
        await gone.ok("leave", room=room)
    stay = [members[2], members[4], members[5]]
    for n in range(3):
        await stay[n].ok("publish", room=room, event="e", data=n)
    for m in stay:
        await m.next_count(lambda x: x.get("op") == "message" and x["room"] == room, 3)
    for m in members:
        await m.roundtrip()
    for m in stay:
        assert sorted(x["data"] for x in m.messages(room)) == [0, 1, 2]
    for m in (members[0], members[1], members[3]):
        assert m.messages(room) == []
    # One that left joins again: it gets the next message, once.
    await members[3].ok("join", room=room)
    await members[3].ok("publish", room=room, event="e", data=3)
    for m in stay + [members[3]]:
        await m.next(lambda x: x.get("op") == "message" and x["room"] == room and x["data"] == 3)
        await m.roundtrip()
        assert [x["data"] for x in m.messages(room)].count(3) == 1


async def test_rejoin_after_leave_delivers_again(jwt_server, clients):
    room = unique("n-rejoin")
    a = await clients.native(jwt_server.ws, token("n-rejoiner"))
    await a.ok("join", room=room)
    await a.ok("leave", room=room)
    await a.ok("join", room=room)
    await a.ok("publish", room=room, event="e", data="back")
    msg = await a.next(lambda m: m.get("op") == "message" and m["room"] == room)
    assert msg["data"] == "back"
    assert len(a.messages(room)) == 1, "joined once: delivered once"


async def test_join_twice_delivers_once(jwt_server, clients):
    room = unique("n-twice")
    a = await clients.native(jwt_server.ws, token("n-twice"))
    await a.ok("join", room=room)
    await a.ok("join", room=room)
    await a.ok("publish", room=room, event="e", data=1)
    await a.next(lambda m: m.get("op") == "message" and m["room"] == room)
    await a.roundtrip()
    assert len(a.messages(room)) == 1


# -- join with since -------------------------------------------------------


async def test_join_since_recovers_missed_messages(jwt_server, clients):
    room = unique("n-since")
    a = await clients.native(jwt_server.ws, token("n-since-a"))
    epoch = (await a.ok("join", room=room))["epoch"]
    for i in (1, 2, 3):
        await a.ok("publish", room=room, event="m", data=i)
    b = await clients.native(jwt_server.ws, token("n-since-b"))
    r = await b.request("join", room=room, since={"epoch": epoch, "offset": 1})
    assert r["ok"] is True and r["recovered"] is True
    assert r["epoch"] == epoch and r["offset"] == 3
    assert [(m["offset"], m["data"], m["event"], m["from"]) for m in r["missed"]] == [
        (2, 2, "m", "n-since-a"),
        (3, 3, "m", "n-since-a"),
    ]
    for m in r["missed"]:
        assert set(m) == {"offset", "event", "data", "from", "at"}
        assert RFC3339.match(m["at"])
    # Up to date: recovered with nothing missed.
    r2 = await b.request("join", room=room, since={"epoch": epoch, "offset": 3})
    assert r2["recovered"] is True and r2["missed"] == []
    # And it is a member: the next publish arrives.
    await a.ok("publish", room=room, event="m", data=4)
    msg = await b.next(lambda m: m.get("op") == "message" and m["room"] == room)
    assert msg["offset"] == 4


async def test_join_since_foreign_epoch_is_not_recovered(jwt_server, clients):
    room = unique("n-epoch")
    a = await clients.native(jwt_server.ws, token("n-epoch"))
    epoch = (await a.ok("join", room=room))["epoch"]
    for i in (1, 2, 3):
        await a.ok("publish", room=room, event="m", data=i)
    b = await clients.native(jwt_server.ws, token("n-epoch-b"))
    wrong = await b.request("join", room=room, since={"epoch": epoch + "x", "offset": 1})
    assert wrong["ok"] is True
    assert wrong["recovered"] is False
    assert "missed" not in wrong
    assert wrong["offset"] == 3 and wrong["epoch"] == epoch


async def test_join_since_of_a_room_that_did_not_exist_is_not_recovered(jwt_server, clients):
    room = unique("n-none")
    c = await clients.native(jwt_server.ws, token("n-none"))
    hist = await c.ok("history", room=room)
    assert hist["messages"] == [] and isinstance(hist["epoch"], str)
    r = await c.ok("join", room=room, since={"epoch": hist["epoch"], "offset": 0})
    assert r["recovered"] is False, "the epoch of a nonexistent room's history is no room's epoch"
    assert r["epoch"] != hist["epoch"]


@pytest.mark.parametrize(
    "since",
    ["x", 3, {"epoch": "e"}, {"offset": 1}, {"epoch": 1, "offset": 1}, {"epoch": "e", "offset": -1}],
)
async def test_join_bad_since_is_bad_request(jwt_server, clients, since):
    c = await clients.native(jwt_server.ws, token("n-badsince"))
    r = await c.request("join", room=unique(), since=since)
    assert r["ok"] is False and r["error"]["code"] == "bad_request", r


async def test_join_missed_over_2mib_answers_not_recovered(server_factory, clients):
    srv = server_factory("--max-payload", "1000000")  # the default is smaller (64 KiB)
    room = unique("n-big")
    c = await clients.native(srv.ws)
    epoch = (await c.ok("join", room=room))["epoch"]
    await c.ok("leave", room=room)
    blob = "x" * 800_000
    for i in range(3):
        await c.ok("publish", room=room, event="big", data=blob)
    r = await c.ok("join", room=room, since={"epoch": epoch, "offset": 0})
    assert r["recovered"] is False and "missed" not in r, "2.4 MB missed > 2 MiB"
    # History pages: with since the oldest that fit, without the newest.
    h = await c.ok("history", room=room, since=0)
    assert [m["offset"] for m in h["messages"]] == [1, 2]
    h = await c.ok("history", room=room, since=2)
    assert [m["offset"] for m in h["messages"]] == [3]
    h = await c.ok("history", room=room)
    assert [m["offset"] for m in h["messages"]] == [2, 3]


# -- presence --------------------------------------------------------------


async def test_presence_members(jwt_server, clients):
    room = unique("n-pres")
    a1 = await clients.native(jwt_server.ws, token("p-alice", info={"name": "Alice"}))
    a2 = await clients.native(jwt_server.ws, token("p-alice", info={"name": "Alice"}))
    b = await clients.native(jwt_server.ws, token("p-bob"))
    for c in (a1, a2, b):
        await c.ok("join", room=room)
    r = await b.request("presence", room=room)
    assert set(r) == {"id", "ok", "members"}
    members = {m["user"]: m for m in r["members"]}
    assert set(members) == {"p-alice", "p-bob"}
    assert members["p-alice"]["connections"] == 2
    assert members["p-alice"]["info"] == {"name": "Alice"}
    assert members["p-bob"]["connections"] == 1
    assert members["p-bob"]["info"] is None
    for m in members.values():
        assert set(m) == {"user", "info", "connections", "since"}
        assert RFC3339.match(m["since"])
    await a2.ok("leave", room=room)
    r = await b.ok("presence", room=room)
    assert {m["user"]: m["connections"] for m in r["members"]} == {"p-alice": 1, "p-bob": 1}
    await a1.close()

    async def gone():
        while True:
            r = await b.ok("presence", room=room)
            if {m["user"] for m in r["members"]} == {"p-bob"}:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(gone(), 5)
    # A room nobody is in.
    assert (await b.ok("presence", room=unique("empty")))["members"] == []


async def test_presence_pushes_only_to_members_who_asked(jwt_server, clients):
    room = unique("n-ppush")
    watcher = await clients.native(jwt_server.ws, token("pp-watcher"))
    quiet = await clients.native(jwt_server.ws, token("pp-quiet"))
    await watcher.ok("join", room=room, presence=True)
    await quiet.ok("join", room=room)
    ev = await watcher.next(lambda m: m.get("op") == "presence")
    assert ev == {"op": "presence", "room": room, "user": "pp-quiet", "action": "join"}
    v1 = await clients.native(jwt_server.ws, token("pp-visitor"))
    v2 = await clients.native(jwt_server.ws, token("pp-visitor"))
    await v1.ok("join", room=room)
    await v2.ok("join", room=room)  # the same user again: no second join event
    await v1.close()  # still one connection left: no leave
    await v2.ok("leave", room=room)
    left = await watcher.next(lambda m: m.get("op") == "presence" and m["action"] == "leave")
    assert left == {"op": "presence", "room": room, "user": "pp-visitor", "action": "leave"}
    await watcher.roundtrip()
    events = [(m["user"], m["action"]) for m in watcher.pushes("presence")]
    assert events == [("pp-quiet", "join"), ("pp-visitor", "join"), ("pp-visitor", "leave")]
    assert all(m["user"] != "pp-watcher" for m in watcher.pushes("presence")), "never about itself"
    await quiet.roundtrip()
    assert quiet.pushes("presence") == [], "joined without presence: no events"


# -- history ---------------------------------------------------------------


async def test_history_since_and_limit(jwt_server, clients):
    room = unique("n-hist")
    c = await clients.native(jwt_server.ws, token("n-hist"))
    epoch = (await c.ok("join", room=room))["epoch"]
    for i in range(1, 6):
        await c.ok("publish", room=room, event="h", data=i)

    h = await c.request("history", room=room)
    assert set(h) == {"id", "ok", "epoch", "messages"}
    assert h["epoch"] == epoch
    assert [m["offset"] for m in h["messages"]] == [1, 2, 3, 4, 5], "oldest first"
    for m in h["messages"]:
        assert set(m) == {"offset", "event", "data", "from", "at"}
        assert m["from"] == "n-hist" and m["event"] == "h" and m["data"] == m["offset"]

    def offsets(r):
        return [m["offset"] for m in r["messages"]]

    assert offsets(await c.ok("history", room=room, limit=2)) == [4, 5], "limit alone: the newest"
    assert offsets(await c.ok("history", room=room, since=2)) == [3, 4, 5]
    assert offsets(await c.ok("history", room=room, since=2, limit=2)) == [3, 4], "since + limit: page on"
    assert offsets(await c.ok("history", room=room, since=5)) == []
    assert offsets(await c.ok("history", room=room, since={"epoch": epoch, "offset": 3})) == [4, 5]
    assert offsets(await c.ok("history", room=room, since={"epoch": "other", "offset": 3})) == [
        1,
        2,
        3,
        4,
        5,
    ], "another epoch: everything held"
    assert offsets(await c.ok("history", room=room, limit=0)) == []


async def test_history_of_a_room_that_does_not_exist(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("n-hist-none"))
    h1 = await c.ok("history", room=unique("nothing"))
    assert h1["messages"] == [] and isinstance(h1["epoch"], str) and h1["epoch"]


async def test_history_is_readable_without_joining(jwt_server, clients):
    room = unique("n-hist-out")
    a = await clients.native(jwt_server.ws, token("n-hist-a"))
    await a.ok("publish", room=room, event="e", data="x")
    b = await clients.native(jwt_server.ws, token("n-hist-b"))
    h = await b.ok("history", room=room)
    assert [m["data"] for m in h["messages"]] == ["x"]


# -- refresh op (the expiry flow is in test_auth.py) -----------------------


async def test_refresh_op(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("r-user", ttl=600))
    new = token("r-user", ttl=7200)
    exp = json.loads(__import__("base64").urlsafe_b64decode(new.split(".")[1] + "==="))["exp"]
    r = await c.request("refresh", token=new)
    assert r == {"id": r["id"], "ok": True, "expires_at": exp}
    no_exp = await c.request("refresh", token=token("r-user", ttl=None))
    assert no_exp["ok"] is True and no_exp["expires_at"] is None
    for bad in (token("r-other"), "garbage", token("r-user", secret="wrong-secret"), token("r-user", ttl=-10)):
        e = await c.request("refresh", token=bad)
        assert e["ok"] is False and e["error"]["code"] == "unauthorized", (bad, e)
    e = await c.request("refresh")
    assert e["ok"] is False and e["error"]["code"] == "unauthorized"
    await c.roundtrip()
    assert c.is_open


# -- text ping, malformed frames, unknown ops ------------------------------


async def test_text_ping_gets_text_pong(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("n-ping"))
    for _ in range(3):
        await c.ws.send("ping")
    await c.next_count(lambda m: m.get("pong"), 3)
    assert "pong" not in [m.get("text") for m in c.received], "pong is a bare text frame"


@pytest.mark.parametrize(
    "frame",
    ["{not json", "[1, 2]", "42", '"join"', "null", "", "pong", "PING", "{}", '{"op": 5}', '{"id": 9}'],
)
async def test_unreadable_frames_get_bad_request_and_the_connection_stays(jwt_server, clients, frame):
    c = await clients.native(jwt_server.ws, token("n-bad"))
    await c.ws.send(frame)
    e = await c.next(lambda m: m.get("ok") is False)
    assert e["error"]["code"] == "bad_request", e
    assert isinstance(e["error"]["message"], str)
    assert "op" not in e
    if frame == '{"id": 9}':
        assert e["id"] == 9
    await c.roundtrip()
    await c.ok("join", room=unique())


async def test_binary_frame_is_bad_request(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("n-binary"))
    await c.ws.send(b'{"op":"join","room":"r"}')
    e = await c.next(lambda m: m.get("ok") is False)
    assert e["error"]["code"] == "bad_request"
    await c.roundtrip()


async def test_request_ids_are_echoed(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("n-ids"))
    for rid in (0, 17, -3, 1.5, "abc", "", "with \"quotes\""):
        await c.send({"op": "history", "room": "ids", "id": rid})
        r = await c.next(lambda m, rid=rid: "op" not in m and m.get("id") == rid)
        assert r["ok"] is True
    # No id (or one that is not a number or string): replies carry none.
    await c.send({"op": "presence", "room": "ids"})
    await c.send({"op": "presence", "room": "ids", "id": {"x": 1}})
    await c.send({"op": "presence", "room": "ids", "id": [1]})
    replies = await c.next_count(lambda m: "members" in m, 3)
    assert all("id" not in r for r in replies), replies


async def test_unknown_op(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("n-unknown"))
    for op in ("frobnicate", "JOIN", "welcome", "message", "auth-x"):
        e = await c.request(op, room="r")
        assert e["ok"] is False and e["error"]["code"] == "unknown_op", (op, e)
        assert isinstance(e["error"]["message"], str)
    await c.roundtrip()


@pytest.mark.parametrize(
    "op, fields",
    [
        ("join", {}),
        ("join", {"room": ""}),
        ("join", {"room": 5}),
        ("join", {"room": None}),
        ("join", {"room": ["a"]}),
        ("join", {"room": "a\nb"}),
        ("join", {"room": "x" * 257}),
        ("leave", {}),
        ("leave", {"room": 1}),
        ("publish", {"event": "e", "data": 1}),
        ("publish", {"room": "r", "data": 1}),
        ("publish", {"room": "r", "event": ""}),
        ("publish", {"room": "r", "event": 3}),
        ("publish", {"room": "r", "event": "x" * 129}),
        ("presence", {}),
        ("presence", {"room": ""}),
        ("history", {}),
        ("history", {"room": 3}),
        ("history", {"room": "r", "since": {"epoch": "e"}}),
    ],
)
async def test_bad_arguments_get_bad_request(jwt_server, clients, op, fields):
    c = await clients.native(jwt_server.ws, token("n-badargs"))
    e = await c.request(op, **fields)
    assert e["ok"] is False and e["error"]["code"] == "bad_request", (op, fields, e)
    await c.roundtrip()


async def test_room_name_limits_accepted(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("n-roomnames"))
    for room in ("x" * 256, "ü" * 256, "with space/and?query#hash", "📦"):
        await c.ok("join", room=room)
        await c.ok("publish", room=room, event="e" * 128, data=1)


@pytest.mark.parametrize("event", RESERVED)
async def test_reserved_event_names_cannot_be_published(jwt_server, clients, event):
    c = await clients.native(jwt_server.ws, token("n-reserved"))
    e = await c.request("publish", room=unique(), event=event, data=1)
    assert e["ok"] is False and e["error"]["code"] == "bad_request"
    await c.roundtrip()


# -- personal rooms --------------------------------------------------------


@pytest.mark.parametrize(
    "op, fields",
    [
        ("join", {}),
        ("publish", {"event": "e", "data": 1}),
        ("presence", {}),
        ("history", {}),
    ],
)
async def test_other_users_personal_room_is_forbidden(jwt_server, clients, op, fields):
    c = await clients.native(jwt_server.ws, token("pr-alice"))
    e = await c.request(op, room="user:pr-bob", **fields)
    assert e["ok"] is False and e["error"]["code"] == "forbidden", e
    await c.roundtrip()


async def test_own_personal_room(jwt_server, clients):
    admin = Admin(jwt_server.http)
    c1 = await clients.native(jwt_server.ws, token("pr-own"))
    c2 = await clients.native(jwt_server.ws, token("pr-own"))
    # Every connection is in its personal room without joining it.
    first = await admin.aok("POST", "/publish", {"room": "user:pr-own", "event": "note", "data": 1})
    for c in (c1, c2):
        m = await c.next(lambda m: m.get("op") == "message" and m["room"] == "user:pr-own")
        assert m["data"] == 1 and m["from"] is None and m["offset"] == first["offset"]
    # It may join it with since (to recover what the backend sent) and read its history.
    r = await c1.ok("join", room="user:pr-own", since={"epoch": m["epoch"], "offset": 0})
    assert r["recovered"] is True and [x["data"] for x in r["missed"]] == [1]
    h = await c1.ok("history", room="user:pr-own")
    assert [x["data"] for x in h["messages"]] == [1]
    # Leaving the personal room does not stop delivery there.
    await c1.ok("leave", room="user:pr-own")
    await admin.aok("POST", "/publish", {"room": "user:pr-own", "event": "note", "data": 2})
    await c1.next(lambda m: m.get("op") == "message" and m.get("data") == 2)
    await c2.next(lambda m: m.get("op") == "message" and m.get("data") == 2)


async def test_leave_of_other_users_personal_room_is_forbidden(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("pr-leaver"))
    e = await c.request("leave", room="user:pr-someone")
    assert e["ok"] is False and e["error"]["code"] == "forbidden", e


@pytest.mark.parametrize(
    "fields",
    [{"since": "3"}, {"since": -1}, {"since": 1.5}, {"since": [1]}, {"limit": "2"}, {"limit": -1}],
    ids=["since-str", "since-neg", "since-float", "since-list", "limit-str", "limit-neg"],
)
async def test_history_bad_since_or_limit_is_bad_request(jwt_server, clients, fields):
    room = unique("n-hist-bad")
    c = await clients.native(jwt_server.ws, token("n-hist-bad"))
    for i in range(5):
        await c.ok("publish", room=room, event="e", data=i)
    r = await c.request("history", room=room, **fields)
    assert r["ok"] is False and r["error"]["code"] == "bad_request", r

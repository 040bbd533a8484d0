"""Per-connection limits on /ws: request rate (`rate_limited`), rooms per
connection (`too_many_rooms`), message size (close 1009)."""

import asyncio

import pytest

from sb_client import Admin, RawWs, unique


async def test_rate_limited_then_allowed_again(server_factory, clients):
    srv = server_factory("--rate", "2", "--rate-burst", "3")
    c = await clients.native(srv.ws)
    codes = []
    for _ in range(5):
        r = await c.request("presence", room="rl")
        codes.append("ok" if r["ok"] else r["error"]["code"])
    assert codes[:3] == ["ok", "ok", "ok"], codes
    assert codes[-1] == "rate_limited", codes
    limited = await c.request("history", room="rl")
    if limited["ok"] is False:
        assert set(limited) == {"id", "ok", "error"} and isinstance(limited["error"]["message"], str)
    # Refused, not disconnected; the bucket refills at --rate per second.
    await c.roundtrip()
    assert c.is_open
    await asyncio.sleep(1.2)
    assert (await c.request("presence", room="rl"))["ok"] is True


async def test_rate_is_per_connection(server_factory, clients):
    srv = server_factory("--rate", "0.1", "--rate-burst", "2")
    a = await clients.native(srv.ws)
    b = await clients.native(srv.ws)
    for _ in range(2):
        await a.ok("presence", room="r")
    assert (await a.request("presence", room="r"))["error"]["code"] == "rate_limited"
    await b.ok("presence", room="r")


async def test_rate_limited_on_socketio(server_factory, clients):
    srv = server_factory("--rate", "0.1", "--rate-burst", "2")
    s = await clients.sio(srv.http)
    assert isinstance(await s.call("presence", "r"), list)
    assert isinstance(await s.call("presence", "r"), list)
    r = await s.call("presence", "r")
    assert r["ok"] is False and r["error"]["code"] == "rate_limited"


async def test_max_rooms(server_factory, clients):
    srv = server_factory("--max-rooms", "2")
    c = await clients.native(srv.ws)
    await c.ok("join", room="m1")
    await c.ok("join", room="m2")
    e = await c.request("join", room="m3")
    assert e["ok"] is False and e["error"]["code"] == "too_many_rooms"
    assert isinstance(e["error"]["message"], str) and "id" in e
    await c.ok("join", room="m1")  # rejoining is not a new room
    await c.roundtrip()
    await c.ok("leave", room="m1")
    await c.ok("join", room="m3")
    # The limit is per connection.
    other = await clients.native(srv.ws)
    for r in ("m1", "m2"):
        await other.ok("join", room=r)


async def test_max_rooms_does_not_count_the_personal_room(server_factory, clients):
    """docs/protocol.md: `--max-rooms` counts rooms "its personal room not
    counted"; a client may join its personal room with `since`."""
    srv = server_factory("--max-rooms", "2")
    c = await clients.native(srv.ws)
    personal = f"user:{c.welcome['user']}"
    await c.ok("join", room="p1")
    await c.ok("join", room="p2")
    r = await c.request("join", room=personal)
    assert r["ok"] is True, f"joining the personal room at the limit: {r}"


async def test_max_rooms_personal_room_first(server_factory, clients):
    srv = server_factory("--max-rooms", "2")
    c = await clients.native(srv.ws)
    await c.ok("join", room=f"user:{c.welcome['user']}")
    await c.ok("join", room="q1")
    r = await c.request("join", room="q2")
    assert r["ok"] is True, f"the personal room used up a slot: {r}"


async def test_max_rooms_on_socketio(server_factory, clients):
    srv = server_factory("--max-rooms", "2")
    s = await clients.sio(srv.http)
    assert (await s.call("join", "s1"))["ok"] is True
    assert (await s.call("join", "s2"))["ok"] is True
    assert (await s.call("join", "s3"))["error"]["code"] == "too_many_rooms"


async def test_max_rooms_personal_room_on_socketio_is_not_counted(server_factory, clients):
    """The relay's behaviour, which the native protocol should match."""
    srv = server_factory("--max-rooms", "2")
    s = await clients.sio(srv.http)
    sockets = await Admin(srv.http).aok("GET", "/sockets")  # the anonymous user's id
    personal = f"user:{sockets[0]['user']}"
    assert (await s.call("join", personal))["ok"] is True
    assert (await s.call("join", "s1"))["ok"] is True
    assert (await s.call("join", "s2"))["ok"] is True
    assert (await s.call("join", "s3"))["error"]["code"] == "too_many_rooms"


async def test_message_over_max_payload_closes_1009(server_factory, clients):
    srv = server_factory("--max-payload", "2000")
    c = await clients.native(srv.ws)
    room = unique()
    await c.ok("join", room=room)
    # Exactly at the limit: fine.
    fits = '{"op":"publish","room":"%s","event":"e","data":"%s"}' % (room, "x" * 100)
    fits = fits.replace("x" * 100, "x" * (100 + 2000 - len(fits)))
    assert len(fits) == 2000
    await c.send(fits)
    await c.next(lambda m: m.get("op") == "message" and m["room"] == room)
    await c.send('{"op":"publish","room":"r","event":"e","data":"%s"}' % ("y" * 2001))
    assert await c.wait_closed() == 1009


async def test_max_payload_counts_the_whole_message_not_frames(server_factory):
    """A message split into small fragments is still one message."""
    srv = server_factory("--max-payload", "2000")
    raw = RawWs(srv.host, srv.port)
    try:
        assert raw.status == 101
        raw.read_frame()  # welcome
        chunk = b"z" * 800
        raw.send_frame(0x1, chunk, fin=False)
        raw.send_frame(0x0, chunk, fin=False)
        raw.send_frame(0x0, chunk, fin=True)
        while True:
            op, data = raw.read_frame()
            if op == 0x8:
                break
        assert int.from_bytes(data[:2], "big") == 1009
    finally:
        raw.close()


async def test_history_size_bounds_the_log_and_recovery(server_factory, clients):
    srv = server_factory("--history-size", "3")
    c = await clients.native(srv.ws)
    room = unique("hs")
    epoch = (await c.ok("join", room=room))["epoch"]
    for i in range(1, 6):
        await c.ok("publish", room=room, event="e", data=i)
    h = await c.ok("history", room=room)
    assert [m["offset"] for m in h["messages"]] == [3, 4, 5]
    # Offsets go on; the log no longer holds offset 2: not recoverable from 1.
    r = await c.ok("join", room=room, since={"epoch": epoch, "offset": 1})
    assert r["recovered"] is False and r["offset"] == 5
    r = await c.ok("join", room=room, since={"epoch": epoch, "offset": 2})
    assert r["recovered"] is True and [m["offset"] for m in r["missed"]] == [3, 4, 5]


async def test_history_ttl_drops_old_messages(server_factory, clients):
    # 1 s (a bare number would be milliseconds: "new" would expire before
    # the history request whenever its round trip took over 1 ms).
    srv = server_factory("--history-ttl", "1s")
    c = await clients.native(srv.ws)
    room = unique("ttl")
    epoch = (await c.ok("join", room=room))["epoch"]
    await c.ok("publish", room=room, event="e", data="old")
    await asyncio.sleep(2.1)
    await c.ok("publish", room=room, event="e", data="new")
    h = await c.ok("history", room=room)
    assert [m["data"] for m in h["messages"]] == ["new"]
    r = await c.ok("join", room=room, since={"epoch": epoch, "offset": 0})
    assert r["recovered"] is False, "offset 1 expired: not everything after 0 is held"

"""A room's publish is written straight to the socket of every idle member
and left to the connection's own task when the socket cannot take it: each
member gets every message once, in offset order, interleaved correctly with
the replies to its own requests, whether it reads at once or late. Native
members and Socket.IO members (the relay's broadcast) alike."""

import asyncio
import json

from sb_client import Admin, slow_reader, unique

N = 300


async def publish_large(srv, room):
    """N publishes of ~8 KB through the admin API: ~2.4 MB, more than the
    socket buffers hold, so a member that reads late has most of it wait on
    the server and go out through its connection's task."""
    admin = Admin(srv.http)
    pad = "p" * 8000
    for n in range(1, N + 1):
        await admin.aok("POST", "/publish", {"room": room, "event": "n", "data": {"n": n, "pad": pad}})


async def publish_numbers(pub, room):
    """N publishes of 1..N from a native client, not waiting for the replies
    (they cross the members' own requests)."""
    for n in range(1, N + 1):
        await pub.send({"id": 1000 + n, "op": "publish", "room": room, "event": "n", "data": n})


async def test_members_get_every_message_in_order_between_their_own_replies(server_factory, clients):
    srv = server_factory("--rate", "100000", "--rate-burst", "100000")
    room = unique("order")
    subs = [await clients.native(srv.ws) for _ in range(3)]
    for s in subs:
        await s.ok("join", room=room)
    pub = await clients.native(srv.ws)


    async def ask(s):
        for _ in range(5):
            await s.roundtrip()
            await asyncio.sleep(0.01)

    # The members' own requests and their replies cross the burst.
    await asyncio.gather(publish_numbers(pub, room), *(ask(s) for s in subs))
    for s in subs:
        got = await s.next_count(lambda m: m.get("op") == "message" and m.get("room") == room, N)
        assert [m["data"] for m in got] == list(range(1, N + 1))
        assert [m["offset"] for m in got] == list(range(1, N + 1))


async def test_a_member_that_reads_late_gets_everything_in_order(server_factory, clients):
    # A send queue large enough that the late reader is not a slow consumer.
    srv = server_factory("--send-queue", str(8 << 20), "--rate", "100000", "--rate-burst", "100000")
    room = unique("late")
    raw = await asyncio.to_thread(slow_reader, srv, "/ws")
    try:
        raw.send_text(json.dumps({"id": 1, "op": "join", "room": room}))
        await asyncio.sleep(0.3)
        await publish_large(srv, room)

        def read_all():
            raw.sock.settimeout(5)
            got = []
            while len(got) < N:
                op, data = raw.read_frame()
                if op == 0x1:
                    m = json.loads(data)
                    if m.get("op") == "message":
                        got.append((m["offset"], m["data"]["n"]))
            return got

        got = await asyncio.to_thread(read_all)
        assert got == [(n, n) for n in range(1, N + 1)]
    finally:
        raw.close()


async def test_socketio_members_get_every_message_in_order_between_their_own_acks(server_factory, clients):
    srv = server_factory("--rate", "100000", "--rate-burst", "100000")
    room = unique("sio-order")
    subs = [await clients.sio(srv.http) for _ in range(3)]
    for s in subs:
        assert (await s.call("join", room))["ok"] is True
    pub = await clients.native(srv.ws)

    async def ask(s):
        for _ in range(5):
            assert (await s.call("history", room, {"limit": 1}))["epoch"]
            await asyncio.sleep(0.01)

    # The members' own emits and their acks cross the burst.
    await asyncio.gather(publish_numbers(pub, room), *(ask(s) for s in subs))
    for s in subs:
        await s.next("n", lambda a: a[1]["offset"] == N)
        got = [a for e, a in s.events if e == "n"]
        assert [a[0] for a in got] == list(range(1, N + 1))
        assert [a[1]["offset"] for a in got] == list(range(1, N + 1))


async def test_a_socketio_member_that_reads_late_gets_everything_in_order(server_factory, clients):
    srv = server_factory("--rate", "100000", "--rate-burst", "100000")
    room = unique("sio-late")
    raw = await asyncio.to_thread(slow_reader, srv, "/socket.io/?EIO=4&transport=websocket")
    try:

        def text():
            while True:
                op, data = raw.read_frame()
                if op == 0x1:
                    return data.decode()

        # Engine.IO open, Socket.IO CONNECT to "/", join with an ack.
        assert text().startswith("0{")
        raw.send_text("40")
        assert text().startswith("40")
        raw.send_text("420" + json.dumps(["join", room, {}]))
        assert json.loads(text()[3:])[0]["ok"] is True
        await publish_large(srv, room)

        def read_all():
            raw.sock.settimeout(5)
            got = []
            while len(got) < N:
                t = text()
                if t == "2":
                    raw.send_text("3")
                elif t.startswith("42"):
                    args = json.loads(t[2:])
                    assert args[0] == "n", t[:200]
                    got.append((args[2]["offset"], args[1]["n"]))
            return got

        got = await asyncio.to_thread(read_all)
        assert got == [(n, n) for n in range(1, N + 1)]
    finally:
        raw.close()

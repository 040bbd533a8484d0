"""`--data-dir DIR` keeps room histories in
DIR/history.redb across restarts, even after SIGKILL: same epoch, offsets go
on, `since` positions from before the restart recover, the admin history
keeps the old messages. A publish is durable once acked."""

import asyncio

import pytest

from sb_client import Admin, Native, token, unique

SECRET = "datadir-secret"


def tok(user):
    return token(user, secret=SECRET)


@pytest.fixture
def data_server(server_factory, tmp_path):
    return server_factory("--jwt-secret", SECRET, "--data-dir", str(tmp_path / "data"))


@pytest.mark.parametrize("hard", [True, False], ids=["sigkill", "sigterm"])
async def test_history_survives_a_restart(data_server, tmp_path, hard):
    room = unique("dd")
    c = await Native.open(data_server.ws, tok("dd-a"))
    epoch = (await c.ok("join", room=room))["epoch"]
    for i in range(1, 4):
        assert (await c.ok("publish", room=room, event="e", data={"i": i}))["offset"] == i
    before = await Admin(data_server.http).aok("GET", f"/history/{room}")
    await c.close()
    assert (tmp_path / "data" / "history.redb").exists()

    await asyncio.to_thread(data_server.restart, hard)

    admin = Admin(data_server.http)
    after = await admin.aok("GET", f"/history/{room}")
    assert after["epoch"] == epoch, "the room keeps its epoch"
    assert after["messages"] == before["messages"], "same offsets, data, from, at"
    # Offsets go on.
    c2 = await Native.open(data_server.ws, tok("dd-b"))
    try:
        j = await c2.ok("join", room=room)
        assert j["epoch"] == epoch and j["offset"] == 3
        assert (await c2.ok("publish", room=room, event="e", data={"i": 4}))["offset"] == 4
        assert (await admin.aok("POST", "/publish", {"room": room, "event": "e", "data": 5})) == {"offset": 5}
    finally:
        await c2.close()


async def test_since_from_before_the_restart_recovers(data_server, clients):
    room = unique("dd-since")
    a = await clients.native(data_server.ws, tok("dds-a"))
    epoch = (await a.ok("join", room=room))["epoch"]
    await a.ok("publish", room=room, event="e", data=1)
    seen = (await a.next(lambda m: m.get("op") == "message" and m["room"] == room))["offset"]
    # Published after the client last saw something, before the crash.
    admin = Admin(data_server.http)
    await admin.aok("POST", "/publish", {"room": room, "event": "e", "data": 2})
    await admin.aok("POST", "/publish", {"room": room, "event": "e", "data": 3})

    await asyncio.to_thread(data_server.restart, True)
    admin = Admin(data_server.http)
    await admin.aok("POST", "/publish", {"room": room, "event": "e", "data": 4})

    b = await clients.native(data_server.ws, tok("dds-a"))
    r = await b.ok("join", room=room, since={"epoch": epoch, "offset": seen})
    assert r["recovered"] is True
    assert [(m["offset"], m["data"]) for m in r["missed"]] == [(2, 2), (3, 3), (4, 4)]
    assert r["missed"][0]["from"] is None
    h = await b.ok("history", room=room, since={"epoch": epoch, "offset": 0})
    assert [m["data"] for m in h["messages"]] == [1, 2, 3, 4]
    assert h["messages"][0]["from"] == "dds-a"


async def test_acked_publish_is_durable_under_sigkill(data_server):
    """Kill right after the ack: nothing acked is lost."""
    room = unique("dd-durable")
    admin = Admin(data_server.http)
    offsets = [(await admin.aok("POST", "/publish", {"room": room, "event": "e", "data": i}))["offset"] for i in range(20)]
    assert offsets == list(range(1, 21))
    await asyncio.to_thread(data_server.kill)
    await asyncio.to_thread(data_server.start)
    h = await Admin(data_server.http).aok("GET", f"/history/{room}")
    assert [m["offset"] for m in h["messages"]] == offsets
    assert [m["data"] for m in h["messages"]] == list(range(20))


async def test_many_rooms_and_the_rooms_listing(data_server):
    admin = Admin(data_server.http)
    rooms = [unique("dd-many") for _ in range(5)]
    epochs = {}
    for n, room in enumerate(rooms, 1):
        for i in range(n):
            await admin.aok("POST", "/publish", {"room": room, "event": "e", "data": i})
        epochs[room] = (await admin.aok("GET", f"/history/{room}"))["epoch"]
    await asyncio.to_thread(data_server.restart, True)
    admin = Admin(data_server.http)
    for n, room in enumerate(rooms, 1):
        h = await admin.aok("GET", f"/history/{room}")
        assert h["epoch"] == epochs[room] and len(h["messages"]) == n
    listed = {r["room"]: r for r in await admin.aok("GET", "/rooms")}
    for n, room in enumerate(rooms, 1):
        assert listed[room]["epoch"] == epochs[room] and listed[room]["offset"] == n


async def test_without_data_dir_nothing_survives(server_factory):
    srv = server_factory()
    room = unique("dd-mem")
    admin = Admin(srv.http)
    await admin.aok("POST", "/publish", {"room": room, "event": "e", "data": 1})
    epoch = (await admin.aok("GET", f"/history/{room}"))["epoch"]
    await asyncio.to_thread(srv.restart, True)
    h = await Admin(srv.http).aok("GET", f"/history/{room}")
    assert h["messages"] == [] and h["epoch"] != epoch


async def test_two_data_dirs_are_independent(server_factory, tmp_path):
    a = server_factory("--data-dir", str(tmp_path / "a"))
    b = server_factory("--data-dir", str(tmp_path / "b"))
    room = unique("dd-two")
    await Admin(a.http).aok("POST", "/publish", {"room": room, "event": "e", "data": "a"})
    assert (await Admin(b.http).aok("GET", f"/history/{room}"))["messages"] == []

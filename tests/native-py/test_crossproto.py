"""One hub, two protocols: a native client and a Socket.IO client
(python-socketio) in the same room see each other's publishes, presence
counts both, the admin API reaches both."""

import asyncio

from sb_client import Admin, token, unique


async def test_native_and_socketio_see_each_others_publishes(jwt_server, clients):
    room = unique("x-both")
    n = await clients.native(jwt_server.ws, token("x-native"))
    s = await clients.sio(jwt_server.http, token("x-sio"))
    epoch = (await n.ok("join", room=room))["epoch"]
    j = await s.call("join", room)
    assert j == {"ok": True, "epoch": epoch, "offset": 0, "recovered": False}

    await n.ok("publish", room=room, event="chat", data={"text": "from native"})
    args = await s.next("chat")
    data, meta = args[0], args[1]
    assert data == {"text": "from native"}
    assert meta["room"] == room and meta["offset"] == 1 and meta["epoch"] == epoch
    assert meta["from"] == "x-native" and isinstance(meta["at"], str)

    ack = await s.call("publish", room, "chat", "from socket.io")
    assert ack == {"ok": True, "offset": 2}
    m = await n.next(lambda m: m.get("op") == "message" and m.get("data") == "from socket.io")
    assert m["from"] == "x-sio" and m["offset"] == 2 and m["epoch"] == epoch and m["event"] == "chat"
    # Each sees its own publish too.
    await n.next(lambda m: m.get("op") == "message" and m["offset"] == 1)
    await s.next("chat", lambda a: a[0] == "from socket.io")
    # The history has both, in order.
    h = await s.call("history", room, {})
    assert [(x["offset"], x["from"]) for x in h["messages"]] == [(1, "x-native"), (2, "x-sio")]


async def test_presence_counts_both_protocols(jwt_server, clients):
    admin = Admin(jwt_server.http)
    room = unique("x-pres")
    watcher = await clients.native(jwt_server.ws, token("x-watcher"))
    await watcher.ok("join", room=room, presence=True)
    n = await clients.native(jwt_server.ws, token("x-dual"))
    s = await clients.sio(jwt_server.http, token("x-dual"))
    await n.ok("join", room=room)
    assert (await s.call("join", room))["ok"] is True
    members = {m["user"]: m for m in (await watcher.ok("presence", room=room))["members"]}
    assert members["x-dual"]["connections"] == 2
    sio_view = {m["user"]: m["connections"] for m in await s.call("presence", room)}
    assert sio_view == {"x-watcher": 1, "x-dual": 2}
    u = await admin.aok("GET", "/users/x-dual")
    assert u["online"] is True and u["connections"] == 2
    # One join event for the user, a leave only when the last connection goes.
    await n.close()
    await s.close()
    left = await watcher.next(lambda m: m.get("op") == "presence" and m["action"] == "leave")
    assert left["user"] == "x-dual"
    events = [(m["user"], m["action"]) for m in watcher.pushes("presence")]
    assert events == [("x-dual", "join"), ("x-dual", "leave")]


async def test_socketio_presence_event_for_a_native_member(jwt_server, clients):
    room = unique("x-spres")
    s = await clients.sio(jwt_server.http, token("x-sio-watcher"))
    assert (await s.call("join", room, {"presence": True}))["ok"] is True
    n = await clients.native(jwt_server.ws, token("x-native-visitor"))
    await n.ok("join", room=room)
    ev = (await s.next("presence"))[0]  # (+ Socket.IO's recovery offset)
    assert ev == {"room": room, "user": "x-native-visitor", "action": "join"}


async def test_admin_publish_reaches_both(jwt_server, clients):
    admin = Admin(jwt_server.http)
    room = unique("x-admin")
    n = await clients.native(jwt_server.ws, token("x-an"))
    s = await clients.sio(jwt_server.http, token("x-as"))
    await n.ok("join", room=room)
    await s.call("join", room)
    assert await admin.aok("POST", "/publish", {"room": room, "event": "news", "data": 7}) == {"offset": 1}
    m = await n.next(lambda m: m.get("op") == "message" and m["room"] == room)
    assert m["from"] is None and m["data"] == 7
    args = await s.next("news")
    assert args[0] == 7 and args[1]["from"] is None


async def test_admin_disconnect_user_on_both_protocols(jwt_server, clients):
    admin = Admin(jwt_server.http)
    user = unique("x-kicked")
    n = await clients.native(jwt_server.ws, token(user))
    s = await clients.sio(jwt_server.http, token(user))
    r = await admin.aok("POST", "/disconnect", {"user": user, "reason": "ban", "reconnect": False})
    assert r == {"disconnected": 2}
    assert await n.wait_closed() == 4001
    kick = (await s.next("kick"))[0]
    assert kick == {"reconnect": False, "reason": "ban"}
    await asyncio.wait_for(s.disconnected.wait(), 5)


async def test_admin_disconnect_socketio_socket_by_id(jwt_server, clients):
    admin = Admin(jwt_server.http)
    s = await clients.sio(jwt_server.http, token(unique("x-sio-kick")))
    r = await admin.aok("POST", "/disconnect", {"socket": s.sid, "reconnect": True})
    assert r == {"disconnected": 1}
    kick = (await s.next("kick"))[0]
    assert kick == {"reconnect": True}
    await asyncio.wait_for(s.disconnected.wait(), 5)


async def test_native_recovers_what_socketio_published(jwt_server, clients):
    room = unique("x-recover")
    n = await clients.native(jwt_server.ws, token("x-rn"))
    epoch = (await n.ok("join", room=room))["epoch"]
    await n.ok("publish", room=room, event="e", data="mine")  # the room keeps a log
    await n.ok("leave", room=room)
    s = await clients.sio(jwt_server.http, token("x-rs"))
    for i in range(3):
        assert (await s.call("publish", room, "e", i))["ok"] is True
    r = await n.ok("join", room=room, since={"epoch": epoch, "offset": 1})
    assert r["recovered"] is True
    assert [(m["offset"], m["data"], m["from"]) for m in r["missed"]] == [
        (2, 0, "x-rs"),
        (3, 1, "x-rs"),
        (4, 2, "x-rs"),
    ]


async def test_relay_errors_match_native(jwt_server, clients):
    s = await clients.sio(jwt_server.http, token("x-relay-errors"))
    r = await s.call("frobnicate", 1)
    assert r["ok"] is False and r["error"]["code"] == "unknown_event"
    r = await s.call("publish", "r", "kick", 1)
    assert r["ok"] is False and r["error"]["code"] == "bad_request"
    r = await s.call("join", "user:somebody-else")
    assert r["ok"] is False and r["error"]["code"] == "forbidden"
    r = await s.call("join", "")
    assert r["ok"] is False and r["error"]["code"] == "bad_request"

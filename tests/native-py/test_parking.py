"""Quiet connections hold no runtime task: `switchboard_runtime_tasks` does not grow
with idle connections (native, and Socket.IO over WebSocket), and a parked
connection still gets and does everything: publishes, requests, heartbeats,
kicks."""

import asyncio

from sb_client import Admin, unique
from test_metrics import exact, scrape

N = 30
PING = 0.3  # seconds: several pings reach every parked connection below


async def tasks(srv) -> float:
    n = exact(await asyncio.to_thread(scrape, srv), "switchboard_runtime_tasks")
    assert n is not None, "no switchboard_runtime_tasks gauge"
    return n


async def detached(srv) -> float:
    n = exact(await asyncio.to_thread(scrape, srv), "switchboard_detached_sockets")
    assert n is not None, "no switchboard_detached_sockets gauge"
    return n


async def until(probe, ok, what: str, within: float = 10.0) -> float:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not ok(n := await probe()):
        assert loop.time() < deadline, f"{what}: {n}"
        await asyncio.sleep(0.05)
    return n


async def settle(srv, at_most: float, within: float = 10.0) -> float:
    """Waits until the runtime holds at most `at_most` tasks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (n := await tasks(srv)) > at_most:
        assert loop.time() < deadline, f"{n} tasks alive, expected at most {at_most}"
        await asyncio.sleep(0.05)
    return n


async def test_idle_connections_hold_no_task_and_still_get_everything(server_factory, clients):
    srv = server_factory("--ping-interval", f"{int(PING * 1000)}ms", "--ping-timeout", "5s")
    admin = Admin(srv.http)
    room = unique("parked")
    # One of each starts the server's timers.
    await clients.native(srv.ws)
    await clients.sio(srv.http)
    await asyncio.sleep(0.5)
    base = await tasks(srv)

    natives = [await clients.native(srv.ws) for _ in range(N)]
    sios = [await clients.sio(srv.http) for _ in range(N)]
    for n in natives:
        await n.ok("join", room=room)
    for s in sios:
        assert (await s.call("join", room))["ok"] is True
    # 2 N more connections, and a handful of tasks at most (those still
    # winding down, the scrape's own).
    await settle(srv, base + 5)
    # Their sockets left the runtime's reactor for the shared watcher.
    await until(lambda: detached(srv), lambda n: n >= 2 * N, "detached sockets")

    # Pings keep reaching them while they are parked.
    await asyncio.sleep(PING * 5)
    assert all(n.is_open for n in natives)
    assert all(s.client.connected for s in sios)

    # A publish reaches every parked member, once.
    await admin.aok("POST", "/publish", {"room": room, "event": "news", "data": "to everyone"})
    for n in natives:
        await n.next(lambda m: m.get("op") == "message" and m.get("data") == "to everyone")
    for s in sios:
        await s.next("news", lambda a: a[0] == "to everyone")
    assert all(len(n.messages(room)) == 1 for n in natives)
    assert all(len([e for e, _ in s.events if e == "news"]) == 1 for s in sios)

    # Requests from parked connections are answered.
    for n in natives[:5]:
        await n.roundtrip()
    for s in sios[:5]:
        assert (await s.call("presence", room)) is not None

    # A kick reaches a parked connection.
    victim = natives[-1]
    await admin.aok("POST", "/disconnect", {"socket": victim.welcome["socket"], "reconnect": False})
    await victim.wait_closed()
    await settle(srv, base + 5)

    # Closed connections give their watcher slot back.
    before = await detached(srv)
    for n in natives[:10]:
        await n.close()
    for s in sios[:10]:
        await s.close()
    await until(lambda: detached(srv), lambda n: n <= before - 20, "detached sockets after closing 20")

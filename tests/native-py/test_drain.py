"""SIGTERM: native clients get `kick` going_away (reconnect elsewhere) and
close 1001; the process exits 0 once they are gone."""

import asyncio

from sb_client import token


async def test_sigterm_drains_native_clients(server_factory, clients):
    srv = server_factory("--jwt-secret", "drain-secret", "--drain-timeout", "5s")
    a = await clients.native(srv.ws, token("drain-a", secret="drain-secret"))
    b = await clients.native(srv.ws, token("drain-b", secret="drain-secret"))
    s = await clients.sio(srv.http, token("drain-s", secret="drain-secret"))
    code = asyncio.create_task(asyncio.to_thread(srv.stop, 8.0))
    for c in (a, b):
        assert await c.wait_closed(8) == 1001
        assert c.find(lambda m: m.get("op") == "kick") == {
            "op": "kick",
            "reason": "going_away",
            "reconnect": True,
        }
    kick = (await s.next("kick", timeout=8))[0]
    assert kick == {"reason": "going_away", "reconnect": True}
    assert await code == 0
    assert "stopped" in srv.log_text()

"""Heartbeat on /ws with short intervals: the server pings, any bytes from
the client count as liveness, a client silent for interval + timeout is
dropped (no close handshake). Bounds are generous (3x the window + slack):
this is about detection, not about timing precision."""

import asyncio
import time

import pytest

from sb_client import Admin, RawWs

INTERVAL = 0.2
TIMEOUT = 0.3
WINDOW = INTERVAL + TIMEOUT
UPPER = 3 * WINDOW + 1.0  # generous: a loaded 2-core box
STAY = 3 * WINDOW  # how long a live client is watched


@pytest.fixture(scope="module")
def hb_server():
    from conftest import Factory

    f = Factory("heartbeat")
    srv = f("--ping-interval", "200ms", "--ping-timeout", "300ms")
    yield srv
    f.close()


async def test_welcome_tells_the_ping_interval(hb_server, clients):
    c = await clients.native(hb_server.ws)
    assert c.welcome["ping_interval"] == 200


def test_silent_client_is_dropped_without_close_handshake(hb_server):
    raw = RawWs(hb_server.host, hb_server.port)
    try:
        assert raw.status == 101
        frames = []
        dropped = raw.read_until_eof(raw.opened_at + UPPER + 2, lambda op, d: frames.append(op))
        assert dropped is not None, f"still open after {UPPER + 2:.1f}s"
        took = dropped - raw.opened_at
        assert took >= WINDOW - 0.15, f"dropped after {took:.3f}s: before interval + timeout"
        assert took <= UPPER, f"dropped after {took:.3f}s (bound {UPPER:.1f}s)"
        assert 0x9 in frames, f"no ping frame before the drop: {frames}"
        assert 0x8 not in frames, "a dead peer is dropped without a close frame"
    finally:
        raw.close()


def test_server_pings_every_interval(hb_server):
    raw = RawWs(hb_server.host, hb_server.port)
    try:
        pings = []
        deadline = time.monotonic() + 1.0

        def on_frame(op, data):
            if op == 0x9:
                pings.append(time.monotonic())
                raw.send_frame(0xA, data)  # pong: keeps it alive

        assert raw.read_until_eof(deadline, on_frame) is None, "dropped while answering pings"
        # ~5 in one second at 200 ms; at least 2 even on a slow box.
        assert len(pings) >= 2, pings
    finally:
        raw.close()


def test_client_answering_pings_stays(hb_server):
    raw = RawWs(hb_server.host, hb_server.port)
    try:

        def on_frame(op, data):
            if op == 0x9:
                raw.send_frame(0xA, data)

        assert raw.read_until_eof(time.monotonic() + STAY, on_frame) is None
    finally:
        raw.close()


def test_client_sending_text_stays_even_without_pongs(hb_server):
    """Any bytes count: text `ping` every 100 ms, ping frames never answered."""
    raw = RawWs(hb_server.host, hb_server.port)
    try:
        pongs = 0
        start = time.monotonic()
        while time.monotonic() - start < STAY:
            raw.send_text("ping")
            end = time.monotonic() + 0.1
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                raw.sock.settimeout(left)
                try:
                    op, data = raw.read_frame()
                except TimeoutError:
                    break
                except EOFError:
                    raise AssertionError(f"dropped after {time.monotonic() - start:.2f}s while sending")
                if op == 0x1 and data == b"pong":
                    pongs += 1
        assert pongs >= 3
        # Then silence: dropped.
        silent_from = time.monotonic()
        dropped = raw.read_until_eof(silent_from + UPPER + 2)
        assert dropped is not None and dropped - silent_from <= UPPER
    finally:
        raw.close()


async def test_idle_websocket_client_answering_pings_stays(hb_server, clients):
    c = await clients.native(hb_server.ws)  # websockets answers ping frames by itself
    await asyncio.sleep(STAY)
    assert c.is_open
    await c.roundtrip()


async def test_paused_client_is_dropped_and_leaves_everything(hb_server, clients):
    admin = Admin(hb_server.http)
    watcher = await clients.native(hb_server.ws)
    await watcher.ok("join", room="hb-room", presence=True)
    c = await clients.native(hb_server.ws)
    await c.ok("join", room="hb-room")
    await watcher.next(lambda m: m.get("op") == "presence" and m["action"] == "join")
    sock = c.welcome["socket"]
    c.ws.transport.pause_reading()  # no more reading: no pongs, nothing sent
    start = time.monotonic()

    async def gone():
        while True:
            rows = await admin.aok("GET", "/sockets")
            if sock not in {r["socket"] for r in rows}:
                return time.monotonic()
            await asyncio.sleep(0.05)

    when = await asyncio.wait_for(gone(), UPPER + 2)
    assert when - start <= UPPER, f"dropped after {when - start:.2f}s"
    left = await watcher.next(lambda m: m.get("op") == "presence" and m["action"] == "leave")
    assert left["user"] == c.welcome["user"]
    members = await watcher.ok("presence", room="hb-room")
    assert [m["user"] for m in members["members"]] == [watcher.welcome["user"]]
    # The watcher, which answered pings all along, is still there.
    await watcher.roundtrip()


def test_a_wave_of_connections_is_pinged_spread_over_the_interval(server_factory):
    """Connections opened together are pinged first at phases of their own
    within one interval (docs/operations.md, heartbeat), not all in one sweep:
    a wave of reconnects does not turn into a wave of pings every interval."""
    from concurrent.futures import ThreadPoolExecutor

    interval = 2.0
    srv = server_factory("--ping-interval", "2s", "--ping-timeout", "2s")
    raws = [RawWs(srv.host, srv.port) for _ in range(24)]
    try:
        def first_ping(raw):
            got = []

            def on_frame(op, data):
                if op == 0x9 and not got:
                    got.append(time.monotonic())
                    raise StopIteration

            try:
                raw.read_until_eof(raw.opened_at + interval + 1.5, on_frame)
            except StopIteration:
                pass
            return got[0] if got else None

        with ThreadPoolExecutor(len(raws)) as pool:
            firsts = list(pool.map(first_ping, raws))
        assert all(f is not None for f in firsts), "a connection was not pinged within the interval"
        late = [f - r.opened_at for f, r in zip(firsts, raws) if f - r.opened_at > interval + 1.0]
        assert not late, f"first pings later than the interval: {late}"
        opened = max(r.opened_at for r in raws) - min(r.opened_at for r in raws)
        spread = max(firsts) - min(firsts)
        assert spread > opened + 0.6, f"first pings within {spread:.2f}s of each other (opened within {opened:.2f}s)"
    finally:
        for r in raws:
            r.close()

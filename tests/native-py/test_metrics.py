"""`GET /metrics` (Prometheus text, no auth); the
named series move when the matching traffic happens."""

import asyncio
import re
import time

import pytest
import requests

from sb_client import RawWs, refused_status, token, unique

SECRET = "metrics-secret"
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(srv) -> dict:
    """{(name, frozenset(labels)): value}; also checks the format."""
    s = requests.Session()
    s.trust_env = False
    r = s.get(f"{srv.http}/metrics", timeout=5)
    assert r.status_code == 200, r.text
    # Prometheus text (text/plain; version=0.0.4) or OpenMetrics text: a
    # Prometheus server scrapes both.
    ctype = r.headers["Content-Type"]
    assert ctype.startswith("text/plain") or ctype.startswith("application/openmetrics-text"), ctype
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not Prometheus text: {line!r}"
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    out["__text__"] = r.text
    return out


def value(metrics, name, **labels) -> float:
    """The series `name` with (at least) these labels; 0 when absent."""
    want = set(labels.items())
    total = 0.0
    for key, v in metrics.items():
        if key == "__text__":
            continue
        n, ls = key
        if n == name and want <= set(ls):
            total += v
    return total


def exact(metrics, name, **labels) -> float | None:
    """The sum of the series with these labels (others, e.g. `transport`,
    allowed); None when there is none."""
    want = set(labels.items())
    found = [v for k, v in metrics.items() if k != "__text__" and k[0] == name and want <= set(k[1])]
    return sum(found) if found else None


def declared(text, family, kind) -> bool:
    """`# TYPE` for `family` (OpenMetrics names counters without `_total`)."""
    base = family.removesuffix("_total")
    return bool(re.search(rf"^# TYPE ({re.escape(family)}|{re.escape(base)}) {kind}$", text, re.M))


@pytest.fixture
def msrv(server_factory):
    return server_factory(
        "--jwt-secret", SECRET,
        "--ping-interval", "200ms", "--ping-timeout", "300ms",
        "--rate", "1", "--rate-burst", "5",
        "--max-rooms", "1", "--max-payload", "2000",
        "--allowed-origins", "https://ok.example",
    )


def tok(user):
    return token(user, secret=SECRET)


def test_metrics_needs_no_key_and_declares_types(msrv):
    m = scrape(msrv)
    text = m["__text__"]
    assert declared(text, "switchboard_connections", "gauge")
    for counter in (
        "switchboard_messages_received_total",
        "switchboard_messages_sent_total",
        "switchboard_bytes_received_total",
        "switchboard_bytes_sent_total",
        "switchboard_publishes_total",
        "switchboard_deliveries_total",
        "switchboard_heartbeat_timeouts_total",
        "switchboard_recoveries_total",
        "switchboard_queue_drops_total",
        "switchboard_limit_rejections_total",
    ):
        assert declared(text, counter, "counter"), counter


async def test_connection_gauges(msrv, clients):
    m0 = scrape(msrv)
    assert (exact(m0, "switchboard_connections", protocol="native") or 0) == 0
    a = await clients.native(msrv.ws, tok("m-a"))
    await clients.native(msrv.ws, tok("m-b"))
    s = await clients.sio(msrv.http, tok("m-s"))
    m1 = scrape(msrv)
    assert exact(m1, "switchboard_connections", protocol="native") == 2
    assert exact(m1, "switchboard_connections", protocol="socketio") == 1
    await a.close()
    await s.close()
    for _ in range(50):
        m2 = scrape(msrv)
        if exact(m2, "switchboard_connections", protocol="native") == 1 and (
            exact(m2, "switchboard_connections", protocol="socketio") or 0
        ) == 0:
            break
        await asyncio.sleep(0.05)
    assert exact(m2, "switchboard_connections", protocol="native") == 1
    assert (exact(m2, "switchboard_connections", protocol="socketio") or 0) == 0


async def test_messages_bytes_publishes_deliveries(msrv, clients):
    room = unique("m-room")
    m0 = scrape(msrv)
    a = await clients.native(msrv.ws, tok("m-pub"))
    b = await clients.native(msrv.ws, tok("m-sub"))
    s = await clients.sio(msrv.http, tok("m-sio"))
    await a.ok("join", room=room)
    await b.ok("join", room=room)
    await s.call("join", room)
    await a.ok("publish", room=room, event="e", data="x" * 100)
    await b.next(lambda m: m.get("op") == "message")
    await s.next("e")
    await asyncio.sleep(0.2)
    m1 = scrape(msrv)
    for name in (
        "switchboard_messages_received_total",
        "switchboard_messages_sent_total",
        "switchboard_bytes_received_total",
        "switchboard_bytes_sent_total",
    ):
        assert value(m1, name, protocol="native") > value(m0, name, protocol="native"), name
        assert value(m1, name, protocol="socketio") > value(m0, name, protocol="socketio"), name
    assert value(m1, "switchboard_bytes_received_total", protocol="native") - value(
        m0, "switchboard_bytes_received_total", protocol="native"
    ) >= 100
    assert value(m1, "switchboard_publishes_total") - value(m0, "switchboard_publishes_total") == 1
    # One publish, three members (two native, one Socket.IO).
    assert value(m1, "switchboard_deliveries_total") - value(m0, "switchboard_deliveries_total") >= 3


async def test_recoveries(msrv, clients):
    room = unique("m-rec")
    c = await clients.native(msrv.ws, tok("m-rec"))
    epoch = (await c.ok("join", room=room))["epoch"]
    await c.ok("publish", room=room, event="e", data=1)
    m0 = scrape(msrv)
    d = await clients.native(msrv.ws, tok("m-rec2"))
    assert (await d.ok("join", room=room, since={"epoch": epoch, "offset": 0}))["recovered"] is True
    e = await clients.native(msrv.ws, tok("m-rec3"))
    assert (await e.ok("join", room=room, since={"epoch": "other", "offset": 0}))["recovered"] is False
    m1 = scrape(msrv)
    k = "switchboard_recoveries_total"
    assert value(m1, k, protocol="native", result="recovered") == value(m0, k, protocol="native", result="recovered") + 1
    assert value(m1, k, protocol="native", result="not_recovered") == value(
        m0, k, protocol="native", result="not_recovered"
    ) + 1


def test_heartbeat_timeouts(msrv):
    m0 = scrape(msrv)
    raw = RawWs(msrv.host, msrv.port, f"/ws?token={tok('m-silent')}")
    try:
        assert raw.read_until_eof(time.monotonic() + 5) is not None
    finally:
        raw.close()
    time.sleep(0.1)
    m1 = scrape(msrv)
    k = "switchboard_heartbeat_timeouts_total"
    assert value(m1, k, protocol="native") == value(m0, k, protocol="native") + 1


async def test_limit_rejections(msrv, clients):
    k = "switchboard_limit_rejections_total"
    m0 = scrape(msrv)
    c = await clients.native(msrv.ws, tok("m-limits"))
    await c.ok("join", room="one")
    assert (await c.request("join", room="two"))["error"]["code"] == "too_many_rooms"
    codes = [((await c.request("history", room="one")).get("error") or {}).get("code") for _ in range(6)]
    assert "rate_limited" in codes
    assert await refused_status(msrv.ws, f"/ws?token={tok('o')}", additional_headers={"Origin": "https://bad.example"}) == 403
    assert await refused_status(msrv.ws, "/ws?token=garbage") == 401
    big = await clients.native(msrv.ws, tok("m-big"))
    await big.send('{"op":"publish","room":"r","event":"e","data":"%s"}' % ("z" * 3000))
    assert await big.wait_closed() == 1009
    await asyncio.sleep(0.1)
    m1 = scrape(msrv)
    for limit in ("rooms", "rate", "origin", "auth", "payload"):
        assert value(m1, k, limit=limit) > value(m0, k, limit=limit), limit

"""`switchboard record` / `switchboard replay` and the server's captures
(`POST /api/v1/record`): a session recorded against `serve` plays back to a
fresh client with the same events, in order, with the recorded timing.

Timing: each event's time since the first event, on replay, must be within
10 % of the recording's (divided by `--speed`). Gaps of a few tens of
milliseconds cannot be measured to 10 % through two processes, an event
loop and the network stack, so each comparison also allows an absolute
slack of 30 ms (`SLACK`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from websockets.asyncio.client import connect

from conftest import binary, log_dir
from sb_client import WAIT, Admin, Native, Sio, api_error, unique

# Irregular gaps between the published events (seconds): ~3 s in all.
GAPS = [0.0, 0.35, 0.05, 0.42, 0.12, 0.03, 0.28, 0.5, 0.08, 0.21, 0.33, 0.02, 0.15, 0.4, 0.06]
PAYLOADS = [
    "plain",
    "ünïcödé ✓ — 日本語 🚀",
    {"nested": {"list": [1, 2.5, None, True], "s": "x\ny\t\"q\""}},
    42,
    -0.125,
    [],
    {},
    "",
    None,
    True,
    ["a", {"b": ["c"]}],
    "emoji 👩‍👩‍👧 and \\u escapes \u0001",
    {"long": "z" * 3000},
    "Ελληνικά, русский, עברית, العربية",
    {"last": True},
]
assert len(GAPS) == len(PAYLOADS) == 15

SLACK = 0.030  # seconds, see the module's docstring
ADDR = re.compile(r"on (ws|http)://([0-9.:]+)")


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


class Proc:
    """A `switchboard` subprocess whose stderr is collected (and logged)."""

    def __init__(self, name: str, *args: str, stdin=subprocess.DEVNULL):
        self.log = open(log_dir() / f"record-{name}.log", "w", encoding="utf-8")
        self.log.write(f"$ switchboard {' '.join(args)}\n")
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [str(binary()), *args], stdin=stdin, stdout=self.log, stderr=subprocess.PIPE
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            try:
                self.log.write(line)
                self.log.flush()
            except ValueError:
                pass
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append("")  # EOF marker
            self.cond.notify_all()

    def wait_line(self, pattern: str, timeout: float = 10.0) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                if "" in self.lines:
                    raise AssertionError(f"exited ({self.proc.poll()}) without {pattern!r}: {self.lines}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {pattern!r} in {timeout}s: {self.lines}")
                self.cond.wait(left)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        time.sleep(0.05)
        self.log.close()
        return code


class Replay(Proc):
    """`switchboard replay FILE --listen 127.0.0.1:0 …`; `url` is what it printed."""

    def __init__(self, name: str, file: Path, *flags: str):
        super().__init__(name, "replay", str(file), "--listen", "127.0.0.1:0", *flags)
        m = self.wait_line(ADDR.pattern)
        self.url = f"{m.group(1)}://{m.group(2)}"


def publish_schedule(admin: Admin, room: str, event: str = "tick") -> list[float]:
    """Publishes the 15 payloads at the irregular GAPS; returns when each was sent."""
    sent = []
    for gap, data in zip(GAPS, PAYLOADS):
        time.sleep(gap)
        sent.append(time.monotonic())
        admin.ok("POST", "/publish", {"room": room, "event": event, "data": data})
    return sent


def read_capture(path: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[0], lines[1:]


def native_messages(frames: list[dict], event: str = "tick") -> list[tuple[float, object]]:
    """(t in seconds, data) of the room messages a native capture holds."""
    out = []
    for f in frames:
        if f["dir"] == "in" and f["type"] == "text":
            try:
                m = json.loads(f["data"])
            except ValueError:
                continue
            if isinstance(m, dict) and m.get("op") == "message" and m.get("event") == event:
                out.append((f["t"] / 1000, m["data"]))
    return out


def socketio_events(frames: list[dict], event: str = "tick") -> list[tuple[float, object]]:
    out = []
    for f in frames:
        if f["dir"] == "in" and f["type"] == "text" and f["data"].startswith("42"):
            body = f["data"][2:]
            packet = json.loads(body[body.index("[") :])
            if packet[0] == event:
                out.append((f["t"] / 1000, packet[1]))
    return out


def assert_timing(recorded: list[float], replayed: list[float], speed: float = 1.0):
    """Each event's time since the first, replayed vs recorded / speed:
    within 10 %, or SLACK for gaps too small to measure to 10 %."""
    assert len(recorded) == len(replayed)
    worst = 0.0
    for i in range(1, len(recorded)):
        want = (recorded[i] - recorded[0]) / speed
        got = replayed[i] - replayed[0]
        allowed = max(0.10 * want, SLACK)
        worst = max(worst, abs(got - want))
        assert abs(got - want) <= allowed, (
            f"event {i}: {got * 1000:.1f} ms after the first, expected {want * 1000:.1f} ms "
            f"(±{allowed * 1000:.1f})"
        )
    print(f"timing: worst deviation {worst * 1000:.1f} ms over {len(recorded)} events (speed {speed})")


async def native_replay_events(url: str, count: int, timeout: float, event: str = "tick") -> list[tuple[float, object]]:
    """Connects a plain WebSocket client to a replay and collects `count`
    room messages with their arrival times."""
    got = []
    async with connect(url, ping_interval=None, compression=None, max_size=None, proxy=None) as ws:
        async with asyncio.timeout(timeout):
            while len(got) < count:
                frame = await ws.recv()
                now = time.monotonic()
                m = json.loads(frame)
                if m.get("op") == "message" and m.get("event") == event:
                    got.append((now, m["data"]))
    return got


async def socketio_replay_events(url: str, count: int, timeout: float, event: str = "tick") -> list[tuple[float, object]]:
    import socketio

    got: list[tuple[float, object]] = []
    done = asyncio.Event()
    client = socketio.AsyncClient(reconnection=False)

    @client.on(event)
    async def on_event(*args):
        got.append((time.monotonic(), args[0]))
        if len(got) >= count:
            done.set()

    await client.connect(url, wait_timeout=WAIT)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        await client.disconnect()
    # A looping stream goes on while the client disconnects.
    return got[:count]


# --------------------------------------------------------------------------
# Recordings made once per module against the shared server
# --------------------------------------------------------------------------


def record_session(server, tmp: Path, protocol: str) -> tuple[Path, list[float]]:
    room = unique(f"rec-{protocol}")
    out = tmp / f"{protocol}.ndjson"
    admin = Admin(server.http)
    if protocol == "native":
        rec = Proc("native", "record", f"{server.ws}/ws", "-o", str(out), "--room", room)
        rec.wait_line(rf"joined {room}")
    elif protocol == "socketio":
        rec = Proc("socketio", "record", server.http, "--protocol", "socketio", "-o", str(out), "--room", room)
        rec.wait_line(rf"joined {room}")
    else:
        # Raw: the join is typed on stdin, like a wscat session.
        rec = Proc("raw", "record", f"{server.ws}/ws", "--protocol", "raw", "-o", str(out), stdin=subprocess.PIPE)
        rec.wait_line("recording")
        rec.proc.stdin.write((json.dumps({"id": 1, "op": "join", "room": room}) + "\n").encode())
        rec.proc.stdin.flush()
        deadline = time.monotonic() + WAIT
        while not any(r["room"] == room and r["connections"] >= 1 for r in admin.ok("GET", "/rooms")):
            assert time.monotonic() < deadline, "the raw recorder did not join"
            time.sleep(0.05)
    publish_schedule(admin, room)
    time.sleep(0.3)
    assert rec.stop() == 0
    admin.session.close()
    return out, GAPS


@pytest.fixture(scope="module")
def captures(anon_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("captures")
    return {p: record_session(anon_server, tmp, p)[0] for p in ("native", "socketio", "raw")}


# --------------------------------------------------------------------------
# The capture files
# --------------------------------------------------------------------------


def test_native_capture_has_a_header_and_every_frame_both_ways(captures):
    header, frames = read_capture(captures["native"])
    assert header["capture"] == "switchboard" and header["version"] == 1
    assert header["protocol"] == "native" and header["url"].endswith("/ws")
    assert len(header["rooms"]) == 1 and header["started_at"].endswith("Z")
    assert json.loads(frames[0]["data"])["op"] == "welcome"
    outs = [f for f in frames if f["dir"] == "out"]
    assert json.loads(outs[0]["data"])["op"] == "join"
    assert outs[-1] == {**outs[-1], "type": "close", "code": 1000}, "the recorder's close, recorded"
    times = [f["t"] for f in frames]
    assert times == sorted(times)
    assert [d for _, d in native_messages(frames)] == PAYLOADS


def test_socketio_capture_holds_engineio_packets(captures):
    header, frames = read_capture(captures["socketio"])
    assert header["protocol"] == "socketio"
    texts = [(f["dir"], f["data"]) for f in frames if f["type"] == "text"]
    assert texts[0][0] == "in" and texts[0][1].startswith("0{")
    assert ("out", "40") in texts
    assert any(d == "in" and t.startswith("40{") for d, t in texts)
    assert any(d == "out" and t.startswith('421["join"') for d, t in texts)
    assert [d for _, d in socketio_events(frames)] == PAYLOADS


def test_raw_capture_records_what_was_typed(captures):
    header, frames = read_capture(captures["raw"])
    assert header["protocol"] == "raw" and header["rooms"] == []
    assert json.loads([f for f in frames if f["dir"] == "out"][0]["data"])["op"] == "join"
    assert [d for _, d in native_messages(frames)] == PAYLOADS


# --------------------------------------------------------------------------
# Replays
# --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["native", "raw"])
async def test_replay_plays_the_events_in_order_with_their_timing(captures, protocol):
    _, frames = read_capture(captures[protocol])
    recorded = native_messages(frames)
    r = Replay(f"replay-{protocol}", captures[protocol])
    try:
        assert r.url.startswith("ws://")
        # Any path works for raw and native.
        got = await native_replay_events(r.url + ("/ws" if protocol == "native" else "/any/path"), 15, 15)
    finally:
        r.stop()
    assert [d for _, d in got] == PAYLOADS
    assert_timing([t for t, _ in recorded], [t for t, _ in got])


async def test_replay_socketio_with_a_real_socketio_client(captures):
    _, frames = read_capture(captures["socketio"])
    recorded = socketio_events(frames)
    r = Replay("replay-socketio", captures["socketio"])
    try:
        assert r.url.startswith("http://")
        # python-socketio starts on polling and upgrades: both are live.
        got = await socketio_replay_events(r.url, 15, 15)
    finally:
        r.stop()
    assert [d for _, d in got] == PAYLOADS
    assert_timing([t for t, _ in recorded], [t for t, _ in got])


async def test_replay_at_double_speed_halves_the_times(captures):
    _, frames = read_capture(captures["native"])
    recorded = native_messages(frames)
    r = Replay("replay-speed", captures["native"], "--speed", "2")
    try:
        got = await native_replay_events(r.url + "/ws", 15, 10)
    finally:
        r.stop()
    assert [d for _, d in got] == PAYLOADS
    assert_timing([t for t, _ in recorded], [t for t, _ in got], speed=2)


async def test_replay_socketio_at_double_speed(captures):
    _, frames = read_capture(captures["socketio"])
    recorded = socketio_events(frames)
    r = Replay("replay-sio-speed", captures["socketio"], "--speed", "2")
    try:
        got = await socketio_replay_events(r.url, 15, 10)
    finally:
        r.stop()
    assert [d for _, d in got] == PAYLOADS
    assert_timing([t for t, _ in recorded], [t for t, _ in got], speed=2)


async def test_replay_loop_plays_the_stream_again(captures):
    r = Replay("replay-loop", captures["native"], "--loop", "--speed", "4")
    try:
        got = await native_replay_events(r.url + "/ws", 30, 15)
    finally:
        r.stop()
    assert [d for _, d in got] == PAYLOADS + PAYLOADS


async def test_replay_socketio_loop(captures):
    r = Replay("replay-sio-loop", captures["socketio"], "--loop", "--speed", "4")
    try:
        got = await socketio_replay_events(r.url, 30, 15)
    finally:
        r.stop()
    assert [d for _, d in got] == PAYLOADS + PAYLOADS


async def test_native_replay_answers_ping_live_and_stays_open_after_the_end(captures, tmp_path):
    # A short capture: the welcome, a recorded pong (not replayed), a message.
    header = {"capture": "switchboard", "version": 1, "protocol": "native", "started_at": "2026-01-01T00:00:00.000Z", "rooms": []}
    lines = [
        header,
        {"t": 1.0, "dir": "in", "type": "text", "data": '{"op":"welcome","socket":"s","user":"u","ping_interval":25000}'},
        {"t": 50.0, "dir": "out", "type": "text", "data": "ping"},
        {"t": 51.0, "dir": "in", "type": "text", "data": "pong"},
        {"t": 80.0, "dir": "in", "type": "binary", "data": base64.b64encode(b"\x00\x01\xff").decode()},
        {"t": 100.0, "dir": "in", "type": "text", "data": '{"op":"message","event":"e","data":1}'},
    ]
    path = tmp_path / "short.ndjson"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"t": 120, "dir": "in", "ty')  # cut short
    r = Replay("replay-ping", path)
    try:
        async with connect(r.url + "/ws", ping_interval=None, proxy=None) as ws:
            got = [await asyncio.wait_for(ws.recv(), WAIT) for _ in range(3)]
            assert json.loads(got[0])["op"] == "welcome"
            assert got[1] == b"\x00\x01\xff"
            assert json.loads(got[2])["data"] == 1
            await ws.send("ping")
            assert await asyncio.wait_for(ws.recv(), WAIT) == "pong"
            pong = await ws.ping()
            await asyncio.wait_for(pong, WAIT)
    finally:
        r.stop()


async def test_a_recorded_close_is_replayed_as_the_close(tmp_path):
    header = {"capture": "switchboard", "version": 1, "protocol": "raw", "started_at": "2026-01-01T00:00:00.000Z", "rooms": []}
    lines = [
        header,
        {"t": 5.0, "dir": "in", "type": "text", "data": "hello"},
        {"t": 20.0, "dir": "in", "type": "close", "code": 4001, "reason": "kicked"},
    ]
    path = tmp_path / "close.ndjson"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = Replay("replay-close", path)
    try:
        ws = await connect(r.url, ping_interval=None, proxy=None)
        assert await asyncio.wait_for(ws.recv(), WAIT) == "hello"
        await asyncio.wait_for(ws.wait_closed(), WAIT)
        assert ws.close_code == 4001 and ws.close_reason == "kicked"
    finally:
        r.stop()


def test_replay_refuses_a_file_that_is_not_a_capture(tmp_path):
    path = tmp_path / "not.ndjson"
    path.write_text('{"hello": 1}\n')
    p = subprocess.run([str(binary()), "replay", str(path), "--listen", "127.0.0.1:0"], capture_output=True, timeout=10)
    assert p.returncode != 0 and b"not a switchboard capture" in p.stderr


def test_record_stops_after_its_duration(anon_server, tmp_path):
    out = tmp_path / "d.ndjson"
    rec = Proc("duration", "record", f"{anon_server.ws}/ws", "-o", str(out), "--duration", "300ms")
    assert rec.proc.wait(timeout=10) == 0
    rec.stop()
    header, frames = read_capture(out)
    assert header["protocol"] == "native"
    assert frames[-1]["type"] == "close" and frames[-1]["dir"] == "out"


# --------------------------------------------------------------------------
# Server-side captures: POST /api/v1/record
# --------------------------------------------------------------------------


def wait_done(admin: Admin, cid: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        entry = next(c for c in admin.ok("GET", "/record") if c["id"] == cid)
        if entry["state"] == "done":
            return entry
        assert time.monotonic() < deadline, f"capture {cid} still {entry['state']}"
        time.sleep(0.1)


def download(admin: Admin, cid: str, path: Path) -> tuple[dict, list[dict]]:
    r = admin.get(f"/record/{cid}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    path.write_bytes(r.content)
    return read_capture(path)


async def test_server_records_a_room_as_a_native_member_sees_it(anon_server, clients, tmp_path):
    admin = Admin(anon_server.http)
    room = unique("srv-room")
    r = await admin.arequest("POST", "/record", json={"room": room, "duration": 2.5})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["target"] == {"room": room} and started["protocol"] == "native"
    assert started["state"] == "running" and started["ends_at"] > started["started_at"]
    cid = started["id"]
    member = await clients.native(anon_server.ws)
    await member.ok("join", room=room)
    for data in PAYLOADS[:5]:
        await admin.aok("POST", "/publish", {"room": room, "event": "tick", "data": data})
        await asyncio.sleep(0.1)
    # A running capture downloads as far as it got.
    _, partial = await asyncio.to_thread(download, admin, cid, tmp_path / "partial.ndjson")
    assert [d for _, d in native_messages(partial)] == PAYLOADS[:5]
    await member.close()
    entry = await asyncio.to_thread(wait_done, admin, cid)
    assert entry["bytes"] > 0
    header, frames = await asyncio.to_thread(download, admin, cid, tmp_path / "room.ndjson")
    assert header["target"] == {"room": room} and header["rooms"] == [room]
    assert all(f["dir"] == "in" for f in frames)
    pushes = [json.loads(f["data"]) for f in frames]
    assert [p["action"] for p in pushes if p["op"] == "presence"] == ["join", "leave"]
    messages = [p for p in pushes if p["op"] == "message"]
    assert [m["data"] for m in messages] == PAYLOADS[:5]
    assert all(m["room"] == room and m["from"] is None for m in messages)
    # It plays back like any native capture.
    rp = Replay("replay-server-room", tmp_path / "room.ndjson")
    try:
        got = await native_replay_events(rp.url + "/ws", 5, 10)
    finally:
        rp.stop()
    assert [d for _, d in got] == PAYLOADS[:5]


async def test_server_records_a_native_socket_both_ways(anon_server, clients, tmp_path):
    admin = Admin(anon_server.http)
    room = unique("srv-sock")
    c = await clients.native(anon_server.ws)
    await c.ok("join", room=room)
    r = await admin.arequest("POST", "/record", json={"socket": c.welcome["socket"], "duration": 30})
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    assert r.json()["target"] == {"socket": c.welcome["socket"]}
    await c.send("ping")
    await c.next(lambda m: m.get("pong"))
    for data in PAYLOADS[:4]:
        await admin.aok("POST", "/publish", {"room": room, "event": "tick", "data": data})
    await c.next_count(lambda m: m.get("op") == "message", 4)
    await c.close()
    # The connection's end ends the capture (long before its 30 s).
    await asyncio.to_thread(wait_done, admin, cid)
    header, frames = await asyncio.to_thread(download, admin, cid, tmp_path / "sock.ndjson")
    assert header["protocol"] == "native" and header["target"] == {"socket": c.welcome["socket"]}
    assert {"dir": "out", "type": "text", "data": "ping"}.items() <= frames[0].items()
    assert ("in", "pong") in [(f["dir"], f.get("data")) for f in frames]
    assert frames[-1]["type"] == "close" and frames[-1]["dir"] == "out"
    assert [d for _, d in native_messages(frames)] == PAYLOADS[:4]
    rp = Replay("replay-server-socket", tmp_path / "sock.ndjson")
    try:
        got = await native_replay_events(rp.url, 4, 10)
    finally:
        rp.stop()
    assert [d for _, d in got] == PAYLOADS[:4]


async def test_server_records_a_socketio_socket(anon_server, tmp_path):
    admin = Admin(anon_server.http)
    room = unique("srv-sio")
    s = await Sio.open(anon_server.http, transports=("polling", "websocket"))
    try:
        assert (await s.call("join", room, {}))["ok"] is True
        r = await admin.arequest("POST", "/record", json={"socket": s.sid, "duration": 30})
        assert r.status_code == 202, r.text
        assert r.json()["protocol"] == "socketio"
        cid = r.json()["id"]
        for data in PAYLOADS[:4]:
            await admin.aok("POST", "/publish", {"room": room, "event": "tick", "data": data})
        await s.next("tick", lambda a: a[0] == PAYLOADS[3])
        assert (await s.call("presence", room))[0]["connections"] == 1
    finally:
        await s.close()
    await asyncio.to_thread(wait_done, admin, cid)
    header, frames = await asyncio.to_thread(download, admin, cid, tmp_path / "sio.ndjson")
    assert header["protocol"] == "socketio"
    texts = [(f["dir"], f["data"]) for f in frames if f["type"] == "text"]
    assert any(d == "out" and t.startswith('42') and '"presence"' in t for d, t in texts), texts
    assert any(d == "in" and t.startswith("43") for d, t in texts), "the ack, recorded"
    assert [d for _, d in socketio_events(frames)] == PAYLOADS[:4]
    rp = Replay("replay-server-sio", tmp_path / "sio.ndjson")
    try:
        got = await socketio_replay_events(rp.url, 4, 10)
    finally:
        rp.stop()
    assert [d for _, d in got] == PAYLOADS[:4]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        [],
        {},
        {"room": "a", "socket": "b"},
        {"room": ""},
        {"room": 5},
        {"socket": ""},
        {"socket": None},
        {"room": "a", "duration": 0},
        {"room": "a", "duration": -1},
        {"room": "a", "duration": 3601},
        {"room": "a", "duration": "10"},
        {"room": "a", "duration": None},
    ],
)
def test_record_bad_requests_are_400(anon_server, body):
    admin = Admin(anon_server.http)
    if isinstance(body, str):
        r = admin.post("/record", data=body, headers={"content-type": "application/json"})
    else:
        r = admin.post("/record", json=body)
    api_error(r, 400, "bad_request")


def test_record_unknown_things_are_404_and_the_key_is_required(anon_server):
    admin = Admin(anon_server.http)
    api_error(admin.post("/record", {"socket": "no-such-socket"}), 404, "not_found")
    api_error(admin.get("/record/0123456789abcdef"), 404, "not_found")
    api_error(admin.get("/record/..%2F..%2Fetc%2Fpasswd"), 404, "not_found")
    api_error(admin.get("/record/x/y"), 404, "not_found")
    api_error(admin.request("DELETE", "/record"), 405, "method_not_allowed")
    api_error(admin.get("/record", key=None), 401, "unauthorized")
    api_error(admin.get("/record/0123456789abcdef", key="wrong"), 401, "unauthorized")
    listing = admin.ok("GET", "/record")
    assert isinstance(listing, list)


def test_captures_go_to_the_data_dir_and_survive_a_restart(server_factory, tmp_path):
    data = tmp_path / "data"
    srv = server_factory("--data-dir", str(data))
    admin = Admin(srv.http)
    r = admin.post("/record", {"room": "kept", "duration": 0.3})
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    wait_done(admin, cid)
    assert (data / "records" / f"{cid}.ndjson").exists()
    srv.restart()
    admin = Admin(srv.http)
    entry = next(c for c in admin.ok("GET", "/record") if c["id"] == cid)
    assert entry["state"] == "done" and entry["target"] == {"room": "kept"}
    assert admin.get(f"/record/{cid}").status_code == 200


def test_without_a_data_dir_captures_are_in_a_temporary_dir_removed_at_exit(server_factory):
    srv = server_factory()
    admin = Admin(srv.http)
    r = admin.post("/record", {"room": "tmp", "duration": 0.2})
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    wait_done(admin, cid)
    found = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob(f"switchboard-records-*/{cid}.ndjson")]
    assert len(found) == 1, found
    assert srv.stop() == 0
    assert not found[0].parent.exists()

"""Cluster mode: several `serve --redis URL --node-id NAME` nodes on one real
Redis (sb_redis.py) share rooms, offsets, history and presence.

* three nodes: publishes from any node (native op, admin API) reach every
  node's members in one order with the same offsets; presence, stats,
  sockets and disconnect are cluster-wide;
* SIGKILL of a node during 1,000 messages: `switchboard connect` clients
  fail over to a backup and end with exactly 1..1000, in order, once; the
  dead node's users go offline within the presence TTL (+ a refresh);
* Redis stopped and started again mid-run: publishes are refused (503
  `unavailable`) meanwhile, connections stay, `/readyz` says `degraded`,
  then everything acknowledged reaches every subscriber and the history.

Conditions are polled with deadlines; nothing sleeps in place of one."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time

import pytest
import requests

from conftest import binary, log_dir
from sb_client import JWT_SECRET, Admin, Native, token, unique

TTL = 2.0  # --presence-ttl
NODE_FLAGS = (
    "--jwt-secret", JWT_SECRET,
    "--presence-ttl", "2s",
    "--ping-interval", "500ms",
    "--ping-timeout", "1s",
)


@pytest.fixture(scope="module", autouse=True)
def _binary_has_redis():
    exe = binary()
    if not exe.exists():
        pytest.fail(f"switchboard binary not found at {exe} (set SB_BIN_DIR)", pytrace=False)
    out = subprocess.run([str(exe), "serve", "--help"], capture_output=True, text=True, timeout=30)
    if "--redis" not in out.stdout:
        pytest.fail(f"{exe} serve has no --redis option (cluster mode not built in)", pytrace=False)


def start_node(server_factory, redis, name: str, *extra: str):
    srv = server_factory(*NODE_FLAGS, "--redis", redis.url, "--node-id", name, *extra, start=False)
    srv.name += f"-node-{name}"
    return srv.start()


def excerpt(*servers, n: int = 25) -> str:
    """The last log lines of each server, for failure messages."""
    out = []
    for s in servers:
        lines = s.log_text().splitlines()[-n:]
        out.append(f"--- {s.name} ({s.log_path}):\n" + "\n".join(lines))
    return "\n".join(out)


class Miss:
    """A falsy answer of a poll condition that keeps what was seen (shown
    when the deadline passes)."""

    def __init__(self, seen):
        self.seen = seen

    def __bool__(self):
        return False

    def __repr__(self):
        return repr(self.seen)


async def poll(fn, timeout: float, what: str, every: float = 0.1):
    """Runs the blocking `fn()` in a thread until it returns a truthy value;
    fails after `timeout` s with the last value seen (return `Miss(seen)`
    to show it)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = await asyncio.to_thread(fn)
        except requests.RequestException as e:
            last = e
        else:
            if last and not isinstance(last, Exception):
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(every)


def presence_users(admin: Admin, room: str) -> set[str]:
    r = admin.get(f"/presence/{room}")
    assert r.status_code == 200, f"presence: {r.status_code} {r.text}"
    return {m["user"] for m in r.json()}


def readyz(srv) -> tuple[int, str]:
    r = requests.get(srv.http + "/readyz", timeout=5, proxies={"http": None, "https": None})
    return r.status_code, r.text


# --------------------------------------------------------------------------
# `switchboard connect` as a subprocess
# --------------------------------------------------------------------------


class Connect:
    """`switchboard connect URL ARGS…`: stdout JSON lines parsed into
    `lines`, stderr (connection states) into `states`; both copied to
    `$OUT_DIR/native-py/<name>.log`. stdin stays open (end of input would
    end the client)."""

    def __init__(self, name: str, url: str, *args: str):
        self.name = name
        self.log_path = log_dir() / f"{name}.log"
        self._log = open(self.log_path, "w", encoding="utf-8", errors="replace")
        cmd = [str(binary()), "connect", url, *args]
        self._log.write("$ " + " ".join(cmd) + "\n")
        self._log.flush()
        self.lines: list[dict] = []
        self.states: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream, is_stdout: bool):
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                try:
                    self._log.write(("out: " if is_stdout else "err: ") + line + "\n")
                    self._log.flush()
                except ValueError:
                    pass
                if is_stdout:
                    try:
                        self.lines.append(json.loads(line))
                    except ValueError:
                        self.lines.append({"text": line})
                else:
                    self.states.append(line)

    def joined(self, room: str) -> bool:
        with self._lock:
            return any(s.endswith(f"joined {room}") or f"joined {room} at " in s for s in self.states)

    def messages(self, room: str) -> list[dict]:
        with self._lock:
            return [m for m in self.lines if m.get("op") == "message" and m.get("room") == room]

    def numbers(self, room: str) -> list:
        return [(m.get("data") or {}).get("n") for m in self.messages(room)]

    def sio_events(self, room: str) -> list[tuple[int | None, int | None]]:
        """Socket.IO relay events of `room` as (n, offset): args are
        `[data, meta]`, plus the Socket.IO recovery offset when the server
        keeps sessions (the reference client passes it on too)."""
        with self._lock:
            out = []
            for m in self.lines:
                args = m.get("args") if "event" in m else None
                if isinstance(args, list) and len(args) >= 2 and isinstance(args[1], dict) and args[1].get("room") == room:
                    out.append(((args[0] or {}).get("n"), args[1].get("offset")))
            return out

    def gaps(self) -> list[dict]:
        with self._lock:
            return [m for m in self.lines if m.get("op") == "gap"]

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        with self._lock:
            return "\n".join(self.states[-n:])

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=2)
        with self._lock:
            self._log.write(f"# exit {self.proc.returncode}\n")
            self._log.close()


@pytest.fixture
def connects(request):
    made: list[Connect] = []
    test = request.node.name.replace("[", "_").replace("]", "")

    def make(name: str, url: str, *args: str) -> Connect:
        c = Connect(f"{test}-connect-{name}", url, *args)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# --------------------------------------------------------------------------
# a. three nodes
# --------------------------------------------------------------------------


async def test_three_nodes_share_rooms_presence_stats_and_disconnect(redis_server, server_factory, clients):
    nodes = [start_node(server_factory, redis_server, n) for n in ("one", "two", "three")]
    admins = [Admin(n.http) for n in nodes]
    room = unique("r")
    users = [unique(f"cl-u{i}") for i in (1, 2, 3)]
    cs = [await clients.native(n.ws, token(u)) for n, u in zip(nodes, users)]
    joins = [await c.ok("join", room=room, presence=True) for c in cs]
    epochs = {j["epoch"] for j in joins}
    assert len(epochs) == 1, f"the nodes disagree on the room's epoch: {joins}\n{excerpt(*nodes)}"
    epoch = epochs.pop()

    # A native publish on node one, then an admin publish on node two.
    o1 = (await cs[0].ok("publish", room=room, event="chat", data={"via": "native"}))["offset"]
    r = await admins[1].arequest("POST", "/publish", json={"room": room, "event": "news", "data": {"via": "admin"}})
    assert r.status_code == 200, f"admin publish on node two: {r.status_code} {r.text}\n{excerpt(nodes[1])}"
    o2 = r.json()["offset"]
    assert o2 == o1 + 1, f"offsets are shared: native got {o1}, then admin on another node got {o2}"

    want = [
        (epoch, o1, "chat", {"via": "native"}, users[0]),
        (epoch, o2, "news", {"via": "admin"}, None),
    ]
    for c, n in zip(cs, nodes):
        try:
            await c.next_count(lambda m: m.get("op") == "message" and m["room"] == room, 2)
        except AssertionError as e:
            raise AssertionError(f"client on node {n.name}: {e}\n{excerpt(*nodes)}") from None
        got = [(m["epoch"], m["offset"], m["event"], m["data"], m["from"]) for m in c.messages(room)]
        assert got == want, f"client on {n.name} got {got}, wanted {want}"

    # Presence: the same three users on every node (eventually).
    expected = set(users)

    def presence_everywhere():
        seen = [presence_users(a, room) for a in admins]
        return seen if all(s == expected for s in seen) else Miss(seen)

    try:
        await poll(presence_everywhere, 3 * TTL + 1, f"presence {sorted(expected)} on all three nodes")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{excerpt(*nodes)}") from None
    for a in admins:
        for u in users:
            r = a.get(f"/users/{u}")
            assert r.status_code == 200 and r.json()["online"] is True, f"{a.base} users/{u}: {r.status_code} {r.text}"

    # Stats and sockets on node one count all three nodes.
    def stats_total():
        s = admins[0].ok("GET", "/stats")
        c = s["connections"]
        return s if (c["total"], c["native"], s["users_online"]) == (3, 3, 3) else Miss(s)

    await poll(stats_total, 3 * TTL + 1, "stats on node one: connections total 3, native 3, users_online 3")
    sockets = {c.welcome["socket"] for c in cs}

    def sockets_listed():
        listed = admins[0].ok("GET", f"/sockets?room={room}")
        return listed if {s["socket"] for s in listed} == sockets else Miss(listed)

    await poll(sockets_listed, 3 * TTL + 1, f"GET /sockets?room= on node one listing {sorted(sockets)}")

    # Disconnect through node one kicks the user connected to node three.
    r = await admins[0].arequest("POST", "/disconnect", json={"user": users[2], "reason": "bye", "reconnect": False})
    assert r.status_code == 200, f"disconnect on node one: {r.status_code} {r.text}"
    try:
        kick = await cs[2].next(lambda m: m.get("op") == "kick")
    except AssertionError as e:
        raise AssertionError(f"node three's client was not kicked: {e}\n{excerpt(nodes[0], nodes[2])}") from None
    assert kick == {"op": "kick", "reason": "bye", "reconnect": False}
    assert await cs[2].wait_closed() == 4001
    assert r.json() == {"disconnected": 1}, f"the answer counts the connection on node three: {r.json()}"
    for c in cs[:2]:
        await c.roundtrip()
        assert c.is_open

    # Its user leaves the room's presence on every node.
    remaining = set(users[:2])

    def gone_everywhere():
        seen = [presence_users(a, room) for a in admins]
        return seen if all(s == remaining for s in seen) else Miss(seen)

    await poll(gone_everywhere, 3 * TTL + 1, f"presence {sorted(remaining)} after the kick, on all nodes")


# --------------------------------------------------------------------------
# b. SIGKILL of a node during 1,000 messages
# --------------------------------------------------------------------------

TOTAL_B = 1000
KILL_AFTER = 300
# After this many, the publisher waits until C's subscribers are on A again,
# so that some messages are recovered with `since` and the rest come live.
LIVE_AFTER = 650


async def test_sigkill_a_node_during_1000_messages(redis_server, server_factory, clients, connects):
    a, b, c = (start_node(server_factory, redis_server, n) for n in ("a", "b", "c"))
    room = unique("r")
    admin_a = Admin(a.http)
    sub_users = [unique(f"sub-c{i}") for i in (1, 2, 3)]
    subs = [
        connects(f"c{i}", c.ws + "/ws", "--backup", a.ws + "/ws", "--room", room, "--token", token(u))
        for i, u in enumerate(sub_users, 1)
    ]
    b_user = unique("sub-b")
    subs.append(connects("b", b.ws + "/ws", "--room", room, "--token", token(b_user)))
    # A Socket.IO client of the relay on C, with A as its backup: on A its
    # session is new (Socket.IO recovery is per node), so it rejoins with
    # `since` and gets what it missed from the shared log.
    sio_user = unique("sio-c")
    sio = connects("sio-c", c.http, "--protocol", "socketio", "--backup", a.http,
                   "--room", room, "--token", token(sio_user))
    only_c_user = unique("only-c")
    only_c = await clients.native(c.ws, token(only_c_user))
    await only_c.ok("join", room=room)

    for s in [*subs, sio]:
        try:
            await poll(lambda s=s: s.joined(room), 10, f"{s.name} to join {room}")
        except AssertionError as e:
            raise AssertionError(f"{e}; its stderr:\n{s.tail()}") from None
    everyone = set(sub_users) | {b_user, only_c_user, sio_user}

    def present_on_a():
        seen = presence_users(admin_a, room)
        return seen if seen == everyone else Miss(seen)

    await poll(present_on_a, 3 * TTL + 1, f"presence on A of {sorted(everyone)}")
    r = admin_a.get(f"/users/{only_c_user}")
    assert r.status_code == 200 and r.json()["online"] is True, f"A sees {only_c_user} online: {r.status_code} {r.text}"

    acked: dict[int, int] = {}
    refused: list[tuple[int, str]] = []
    problems: list[str] = []

    def on_a(s: Connect) -> bool:
        with s._lock:
            return any(f"connected to {a.ws}/ws" in line for line in s.states)

    killed = threading.Event()
    killed_at: list[float] = []

    def publisher():
        session = Admin(a.http)
        started = time.monotonic()
        for n in range(1, TOTAL_B + 1):
            deadline = time.monotonic() + 15
            while True:
                try:
                    r = session.post("/publish", {"room": room, "event": "n", "data": {"n": n}})
                except requests.RequestException as e:
                    problems.append(f"publish {n}: {e!r}")
                    return
                if r.status_code == 200:
                    acked[n] = r.json()["offset"]
                    break
                if r.status_code == 503 and time.monotonic() < deadline:
                    refused.append((n, r.text))
                    time.sleep(0.05)
                    continue
                problems.append(f"publish {n}: {r.status_code} {r.text}")
                return
            if n == KILL_AFTER:
                print(f"publishes 1..{n} took {time.monotonic() - started:.2f}s; SIGKILL C")
                c.kill()
                killed_at.append(time.monotonic())
                killed.set()
            if n == LIVE_AFTER:
                until = time.monotonic() + 15
                while not all(on_a(s) for s in subs[:3]):
                    if time.monotonic() > until:
                        problems.append(f"C's subscribers not on A 15s after the kill: {[s.tail(3) for s in subs[:3]]}")
                        return
                    time.sleep(0.05)
                print(f"C's subscribers on A {time.monotonic() - killed_at[0]:.2f}s after the kill")

    pub = threading.Thread(target=publisher, daemon=True)
    pub.start()

    # The dead node's user goes offline (A keeps answering meanwhile).
    await poll(lambda: killed.is_set() or not pub.is_alive(), 30, "node C to be killed")
    assert killed.is_set(), f"the publisher stopped before the kill: {problems}\n{excerpt(a)}"
    assert not c.running
    offline_by = killed_at[0] + TTL + 3.0

    last = None
    while True:
        r = await asyncio.to_thread(admin_a.get, f"/users/{only_c_user}")
        last = (r.status_code, r.text)
        if r.status_code == 200 and r.json()["online"] is False and r.json()["connections"] == 0:
            print(f"{only_c_user} offline on A {time.monotonic() - killed_at[0]:.2f}s after the SIGKILL of C")
            break
        if time.monotonic() > offline_by:
            hint = " (A forgot the user: 404 instead of online:false)" if r.status_code == 404 else ""
            raise AssertionError(
                f"{only_c_user} (connected only to the killed node C) still not offline on A "
                f"{TTL + 3:.0f}s after the SIGKILL{hint}; last GET /users: {last}\n{excerpt(a)}"
            )
        await asyncio.sleep(0.1)

    def only_c_gone():
        seen = [presence_users(admin_a, room), presence_users(Admin(b.http), room)]
        return seen if all(only_c_user not in s for s in seen) else Miss(seen)

    left = max(0.5, offline_by - time.monotonic())
    await poll(only_c_gone, left, f"{only_c_user} gone from presence/{room} on A and B")

    await poll(lambda: not pub.is_alive(), 40, "the publisher to finish")
    assert problems == [], f"publisher: {problems}\n{excerpt(a)}"
    assert sorted(acked) == list(range(1, TOTAL_B + 1))
    offsets = [acked[n] for n in range(1, TOTAL_B + 1)]
    assert offsets == sorted(offsets) and len(set(offsets)) == TOTAL_B, "offsets grow with n"

    # Every subscriber ends with exactly 1..1000, in order, once.
    want = list(range(1, TOTAL_B + 1))

    def all_complete():
        return all(len(s.messages(room)) >= TOTAL_B for s in subs) and len(sio.sio_events(room)) >= TOTAL_B

    try:
        await poll(all_complete, 20, "every subscriber to hold 1000 messages")
    except AssertionError as e:
        counts = {s.name: len(s.messages(room)) for s in subs}
        raise AssertionError(f"{e}; counts {counts}; gaps {[s.gaps() for s in subs]}\n"
                             + "\n".join(f"{s.name}:\n{s.tail()}" for s in subs) + f"\n{excerpt(a, b)}") from None
    for s in subs:
        got = s.numbers(room)
        if got != want:
            dup = sorted({n for n in got if got.count(n) > 1})[:10]
            missing = sorted(set(want) - set(got))[:10]
            out_of_order = next((i for i in range(1, len(got)) if got[i] is not None and got[i - 1] is not None and got[i] < got[i - 1]), None)
            raise AssertionError(
                f"{s.name}: {len(got)} messages, duplicates {dup}, missing {missing}, "
                f"first out of order at index {out_of_order}; gaps {s.gaps()}\n{s.tail()}"
            )
        assert [m["offset"] for m in s.messages(room)] == offsets, f"{s.name}: offsets differ from the acks"
        assert s.running, f"{s.name} exited: {s.tail()}"
    for s in subs[:3]:
        assert on_a(s), f"{s.name} should have failed over to A: {s.tail()}"
    got = sio.sio_events(room)
    assert [n for n, _ in got] == want, (
        f"Socket.IO subscriber: {len(got)} events, missing {sorted(set(want) - {n for n, _ in got})[:10]}\n{sio.tail()}")
    assert [o for _, o in got] == offsets, "Socket.IO subscriber: offsets differ from the acks"
    assert any(f"{a.http}" in line and "Open" in line for line in sio.states), f"Socket.IO subscriber on A: {sio.tail()}"

    # After the failover: presence on A is the five connect users, not the dead node's.
    final = set(sub_users) | {b_user, sio_user}

    def final_presence():
        seen = presence_users(admin_a, room)
        return seen if seen == final else Miss(seen)

    await poll(final_presence, 3 * TTL + 1, f"presence on A {sorted(final)}")
    assert a.running and b.running


# --------------------------------------------------------------------------
# c. Redis stopped and started again mid-run
# --------------------------------------------------------------------------

TOTAL_C = 200
HALF_C = 100
OUTAGE = 2.0


async def test_redis_restart_mid_run(redis_server, server_factory, clients):
    x, y = (start_node(server_factory, redis_server, n) for n in ("x", "y"))
    room = unique("r")
    sx = await clients.native(x.ws, token(unique("sub-x")))
    sy = await clients.native(y.ws, token(unique("sub-y")))
    jx = await sx.ok("join", room=room)
    jy = await sy.ok("join", room=room)
    assert jx["epoch"] == jy["epoch"], f"{jx} {jy}"
    epoch = jx["epoch"]
    for srv in (x, y):
        code, body = await asyncio.to_thread(readyz, srv)
        assert code == 200 and body.startswith("ready"), (srv.name, code, body)

    acked: dict[int, int] = {}
    acked_at: dict[int, float] = {}
    refused: list[tuple[int, int, str]] = []
    ambiguous: list[str] = []
    problems: list[str] = []
    half = threading.Event()
    resume = threading.Event()
    quit_ = threading.Event()

    def publisher():
        session = Admin(x.http)
        n = 0
        while len(acked) < TOTAL_C and not quit_.is_set():
            n += 1
            deadline = time.monotonic() + 20
            while not quit_.is_set():
                try:
                    r = session.post("/publish", {"room": room, "event": "n", "data": {"n": n}})
                except requests.RequestException as e:
                    ambiguous.append(f"publish {n}: {e!r}")  # may or may not be stored
                    break
                if 200 <= r.status_code < 300:
                    acked[n] = r.json()["offset"]
                    acked_at[n] = time.monotonic()
                    break
                if r.status_code == 503:
                    refused.append((n, r.status_code, r.text))
                    if time.monotonic() > deadline:
                        problems.append(f"publish {n}: still 503 after 20s: {r.text}")
                        return
                    time.sleep(0.05)
                    continue
                problems.append(f"publish {n}: {r.status_code} {r.text}")
                return
            if len(acked) == HALF_C and not half.is_set():
                half.set()
                resume.wait(30)

    pub = threading.Thread(target=publisher, daemon=True)
    pub.start()
    try:
        await poll(lambda: half.is_set() or not pub.is_alive(), 30, f"{HALF_C} acknowledged publishes")
        assert half.is_set(), f"publisher stopped early: {problems} {ambiguous}\n{excerpt(x)}"

        await asyncio.to_thread(redis_server.stop)
        down_at = time.monotonic()
        resume.set()

        # While Redis is down: nodes up, /readyz degraded, publishes refused.
        def degraded():
            got = [readyz(s) for s in (x, y)]
            return got if all(code == 200 and body.startswith("degraded") for code, body in got) else Miss(got)

        try:
            await poll(degraded, 5, "/readyz on both nodes to answer 200 `degraded…`")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{excerpt(x, y)}") from None
        assert x.running and y.running, f"a node exited while Redis was down\n{excerpt(x, y)}"
        r = await sy.request("publish", room=room, event="n", data={"native": 1})
        assert r.get("ok") is False and r["error"]["code"] == "unavailable", (
            f"a native publish on y while Redis is down: {r}")
        await poll(lambda: len(refused) > 0 or not pub.is_alive(), 5, "an admin publish refused with 503")
        assert refused, f"no admin publish was refused while Redis was down: {problems} {ambiguous}\n{excerpt(x)}"
        _, _, body = refused[0]
        assert json.loads(body)["error"]["code"] == "unavailable", f"503 body: {body}"
        assert sx.is_open and sy.is_open, "connections stay open while Redis is down"
        await sx.roundtrip()
        await sy.roundtrip()

        # The outage lasts OUTAGE seconds (the scenario, not a wait for a condition).
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
        assert x.running and y.running, f"a node exited while Redis was down\n{excerpt(x, y)}"
        assert (await asyncio.to_thread(readyz, x))[1].startswith("degraded")
        await asyncio.to_thread(redis_server.start)
        up_at = time.monotonic()

        await poll(lambda: not pub.is_alive(), 40, f"{TOTAL_C} acknowledged publishes")
    finally:
        quit_.set()
        resume.set()

    assert problems == [], f"publisher: {problems}\n{excerpt(x)}"
    assert len(acked) == TOTAL_C
    first_after = min((n for n in acked if n > max(k for k, _, _ in refused)), default=None)
    ns = sorted(acked)
    offsets = [acked[n] for n in ns]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), f"acked offsets: {offsets}"
    assert first_after is not None, "publishes succeed again after the restart"
    back_after = acked_at[first_after] - up_at
    assert back_after < 10, f"the first publish acknowledged after Redis came back took {back_after:.1f}s"

    # Every acknowledged message reached both subscribers (and once).
    def has_all(c: Native):
        got = {(m["data"] or {}).get("n") for m in c.messages(room) if isinstance(m.get("data"), dict)}
        return set(acked) <= got

    for c, srv in ((sx, x), (sy, y)):
        try:
            await poll(lambda c=c: has_all(c), 10, f"every acknowledged message on the subscriber of {srv.name}")
        except AssertionError as e:
            got = {(m["data"] or {}).get("n") for m in c.messages(room) if isinstance(m.get("data"), dict)}
            missing = sorted(set(acked) - got)
            raise AssertionError(
                f"{e}\nsubscriber on {srv.name} misses {len(missing)} acknowledged messages: {missing[:20]} "
                f"(acked offsets {[acked[n] for n in missing[:20]]}); outage began after publish {HALF_C}\n"
                f"{excerpt(x, y)}"
            ) from None
        msgs = [m for m in c.messages(room) if isinstance(m.get("data"), dict) and "n" in m["data"]]
        seen_n = [m["data"]["n"] for m in msgs]
        assert len(seen_n) == len(set(seen_n)), f"duplicates on {srv.name}: {seen_n}"
        for m in msgs:
            if m["data"]["n"] in acked:
                assert m["offset"] == acked[m["data"]["n"]] and m["epoch"] == epoch, (srv.name, m)
        got_offsets = [m["offset"] for m in c.messages(room)]
        assert got_offsets == sorted(set(got_offsets)), f"{srv.name}: out of order or twice: {got_offsets}"
        assert c.is_open, f"the subscriber on {srv.name} was disconnected ({c.close_code})"

    # And it is in the other node's history, with the same epoch.
    h = await Admin(y.http).aok("GET", f"/history/{room}?limit=1000")
    assert h["epoch"] == epoch, f"the epoch changed across the Redis restart: {epoch} -> {h['epoch']}"
    in_history = {m["offset"]: m["data"] for m in h["messages"]}
    missing = [(n, o) for n, o in acked.items() if in_history.get(o) != {"n": n}]
    assert missing == [], f"acknowledged but not in y's history (n, offset): {missing[:20]}"

    assert x.running and y.running

    def ready_again():
        got = [readyz(s) for s in (x, y)]
        return got if all(code == 200 and body.startswith("ready") for code, body in got) else Miss(got)

    await poll(ready_again, 10, "/readyz `ready` on both nodes after Redis came back")
    assert ambiguous == [], (
        f"publishes that got no answer within 5 s while Redis was down/back (should be refused fast): {ambiguous[:5]}")
    assert time.monotonic() - up_at < 40

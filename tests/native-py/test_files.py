"""File transfer on the native protocol (docs/protocol.md, "File transfer").

* The wire contract, over a bare `websockets` client: offers, chunk frames,
  per-chunk acks, resume, SHA-256 check, downloads with a window, errors.
* `switchboard send-file` / `recv-file`: a 200 MB file through a TCP proxy
  that cuts the sender's connection twice and the receiver's once; it
  arrives with the right SHA-256 and no acknowledged chunk is sent again.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import binary, log_dir
from sb_client import token, unique

CHUNK = 1024


def frame(transfer: str, index: int, data: bytes) -> bytes:
    return b"\x01" + bytes.fromhex(transfer) + struct.pack(">I", index) + data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunks_of(data: bytes, size: int = CHUNK) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def offer(c, to: dict, data: bytes, **extra) -> dict:
    return await c.request(
        "file_offer", to=to, name="f.bin", size=len(data), sha256=sha(data), chunk_size=CHUNK, **extra
    )


def acks(c, transfer: str) -> list[int]:
    return [m["chunk"] for m in c.pushes("file_ack") if m["transfer"] == transfer]


async def upload(c, transfer: str, data: bytes, start: int = 0, stop: int | None = None):
    parts = chunks_of(data)
    stop = len(parts) if stop is None else stop
    for i in range(start, stop):
        await c.send(frame(transfer, i, parts[i]))
    last = stop - 1
    await c.next(lambda m: m.get("op") == "file_ack" and m["transfer"] == transfer and m["chunk"] == last)


# -- the wire contract -------------------------------------------------------


async def test_upload_acks_each_chunk_then_announces_and_downloads(jwt_server, clients):
    room = unique()
    sender = await clients.native(jwt_server.ws, token("f-alice"))
    member = await clients.native(jwt_server.ws, token("f-bob"))
    await member.ok("join", room=room)
    data = os.urandom(10 * CHUNK + 17)
    o = await offer(sender, {"room": room}, data)
    assert o["ok"] is True
    assert (o["chunks"], o["next"], o["chunk_size"], o["complete"]) == (11, 0, CHUNK, False)
    assert o["window"] >= 1
    t = o["transfer"]
    assert len(t) == 32 and int(t, 16) >= 0
    await upload(sender, t, data)
    assert acks(sender, t) == list(range(11))
    done = await sender.next(lambda m: m.get("op") == "file_complete")
    assert done == {"op": "file_complete", "transfer": t, "received": 11, "duplicates": 0}
    # The room hears of it as a message (in history too), sent by the sender.
    note = await member.next(lambda m: m.get("op") == "message" and m.get("event") == "file")
    assert note["from"] == "f-alice"
    assert note["data"] == {"transfer": t, "name": "f.bin", "size": len(data), "sha256": sha(data)}
    listed = await member.ok("files")
    assert [f["transfer"] for f in listed["files"]] == [t]
    assert listed["files"][0]["to"] == {"room": room} and listed["files"][0]["from"] == "f-alice"
    got = await member.ok("file_get", transfer=t, **{"from": 3})
    assert (got["from"], got["chunks"], got["sha256"]) == (3, 11, sha(data))
    window = got["window"]
    received: dict[int, bytes] = {}
    while len(received) < 8:
        await member.next_count(lambda m: "binary" in m, len(received) + 1)
        for m in member.received:
            if "binary" in m:
                f = m["binary"]
                assert f[0] == 1 and f[1:17].hex() == t
                received[struct.unpack(">I", f[17:21])[0]] = f[21:]
        # Never more than a window beyond what was acknowledged.
        assert max(received) - 3 < window + (len(received) - 1)
        await member.send({"op": "file_ack", "transfer": t, "chunk": max(received)})
    assert sorted(received) == list(range(3, 11))
    assert b"".join(received[i] for i in range(3, 11)) == data[3 * CHUNK :]
    # `file_ack` gets no reply; the connection is in order.
    await member.roundtrip()
    assert not [m for m in member.received if m.get("ok") is False]


async def test_a_file_for_a_user_reaches_only_that_user(jwt_server, clients):
    sender = await clients.native(jwt_server.ws, token("u-alice"))
    bob = await clients.native(jwt_server.ws, token("u-bob"))
    eve = await clients.native(jwt_server.ws, token("u-eve"))
    data = b"hello bob" * 300
    o = await offer(sender, {"user": "u-bob"}, data)
    await upload(sender, o["transfer"], data)
    note = await bob.next(lambda m: m.get("event") == "file")
    assert note["room"] == "user:u-bob" and note["data"]["transfer"] == o["transfer"]
    assert (await eve.request("file_get", transfer=o["transfer"]))["error"]["code"] == "forbidden"
    assert (await eve.ok("files"))["files"] == []
    assert (await bob.ok("file_get", transfer=o["transfer"]))["size"] == len(data)
    # A client cannot forge the announcement: `file` is a reserved event.
    r = await eve.request("publish", room=unique(), event="file", data={})
    assert r["error"]["code"] == "bad_request"


async def test_resume_goes_on_from_next_and_duplicates_are_counted(jwt_server, clients):
    room = unique()
    data = os.urandom(6 * CHUNK)
    first = await clients.native(jwt_server.ws, token("r-alice"))
    o = await offer(first, {"room": room}, data)
    t = o["transfer"]
    await upload(first, t, data, 0, 4)
    await first.close()
    again = await clients.native(jwt_server.ws, token("r-alice"))
    r = await offer(again, {"room": room}, data, transfer=t)
    assert (r["transfer"], r["next"], r["complete"]) == (t, 4, False)
    # A held chunk is acknowledged again and not written; one too far is
    # refused with where to resume.
    await again.send(frame(t, 1, chunks_of(data)[1]))
    await again.next(lambda m: m.get("op") == "file_ack" and m["chunk"] == 1)
    await again.send(frame(t, 5, chunks_of(data)[5]))
    err = await again.next(lambda m: m.get("op") == "file_error")
    assert (err["code"], err["next"], err["transfer"]) == ("out_of_order", 4, t)
    await upload(again, t, data, 4, 6)
    done = await again.next(lambda m: m.get("op") == "file_complete")
    assert done["duplicates"] == 1
    # Resuming a complete transfer says so.
    assert (await offer(again, {"room": room}, data, transfer=t))["complete"] is True
    mismatch = await offer(again, {"room": room}, data + b"x", transfer=t)
    assert mismatch["error"]["code"] == "bad_request"


async def test_a_wrong_sha256_deletes_the_transfer(jwt_server, clients):
    c = await clients.native(jwt_server.ws, token("s-alice"))
    data = os.urandom(2 * CHUNK)
    o = await c.request(
        "file_offer", to={"room": unique()}, name="x", size=len(data), sha256=sha(b"other"), chunk_size=CHUNK
    )
    t = o["transfer"]
    for i, part in enumerate(chunks_of(data)):
        await c.send(frame(t, i, part))
    err = await c.next(lambda m: m.get("op") == "file_error")
    assert (err["code"], err["transfer"]) == ("checksum_mismatch", t)
    assert (await c.request("file_get", transfer=t))["error"]["code"] == "not_found"
    assert not c.pushes("file_complete")


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"to": {"room": "r"}, "name": "n", "size": 1}, "bad_request"),  # no sha256
        ({"to": {"room": "r", "user": "u"}, "name": "n", "size": 1, "sha256": "0" * 64}, "bad_request"),
        ({"to": {"room": "r"}, "name": "", "size": 1, "sha256": "0" * 64}, "bad_request"),
        ({"to": {"room": "r"}, "name": "n", "size": -5, "sha256": "0" * 64}, "bad_request"),
        ({"to": {"room": "r"}, "name": "n", "size": 1, "sha256": "0" * 64, "chunk_size": 10}, "bad_request"),
        ({"to": {"room": "r"}, "name": "n", "size": 1, "sha256": "0" * 64, "chunk_size": 1 << 20}, "bad_request"),
        ({"to": {"room": "r"}, "name": "n", "size": 1, "sha256": "0" * 64, "transfer": "0" * 32}, "not_found"),
        ({"to": {"room": "user:someone"}, "name": "n", "size": 1, "sha256": "0" * 64}, "forbidden"),
        ({"to": {"room": "r"}, "name": "n", "size": (1 << 30) + 1, "sha256": "0" * 64}, "too_large"),
    ],
)
async def test_bad_offers_are_refused_with_their_code(jwt_server, clients, fields, code):
    c = await clients.native(jwt_server.ws, token("o-alice"))
    r = await c.request("file_offer", **fields)
    assert r["ok"] is False and r["error"]["code"] == code, r
    await c.roundtrip()


async def test_chunk_and_download_errors(jwt_server, anon_server, clients):
    c = await clients.native(jwt_server.ws, token("e-alice"))
    # Not a chunk frame: a bad request, the connection stays.
    await c.send(b"\x02" + b"\x00" * 30)
    bad = await c.next(lambda m: m.get("ok") is False)
    assert bad["error"]["code"] == "bad_request"
    # An unknown transfer.
    await c.send(frame("ab" * 16, 0, b"x"))
    err = await c.next(lambda m: m.get("op") == "file_error")
    assert (err["code"], err["transfer"]) == ("not_found", "ab" * 16)
    # The wrong length for a chunk.
    data = os.urandom(3 * CHUNK)
    o = await offer(c, {"room": unique()}, data)
    await c.send(frame(o["transfer"], 0, data[:100]))
    err = await c.next(lambda m: m.get("op") == "file_error" and m["transfer"] == o["transfer"])
    assert err["code"] == "bad_chunk"
    # Not downloadable before it is complete.
    assert (await c.request("file_get", transfer=o["transfer"]))["error"]["code"] == "not_ready"
    assert (await c.ok("file_cancel", transfer=o["transfer"])) is not None
    assert (await c.request("file_get", transfer=o["transfer"]))["error"]["code"] == "not_found"
    # Anonymous connections send to rooms only.
    anon = await clients.native(anon_server.ws)
    r = await anon.request("file_offer", to={"user": "x"}, name="n", size=1, sha256="0" * 64)
    assert r["error"]["code"] == "forbidden"
    assert c.is_open and anon.is_open


async def test_an_empty_file_completes_at_its_offer(jwt_server, clients):
    room = unique()
    c = await clients.native(jwt_server.ws, token("z-alice"))
    await c.ok("join", room=room)
    o = await c.ok("file_offer", to={"room": room}, name="empty", size=0, sha256=sha(b""))
    assert (o["chunks"], o["complete"]) == (0, True)
    await c.next(lambda m: m.get("op") == "file_complete")
    note = await c.next(lambda m: m.get("event") == "file")
    assert note["data"]["size"] == 0


async def test_limits_from_the_command_line(server_factory, clients):
    s = server_factory("--max-file-size", "5000", "--file-storage", "8000")
    c = await clients.native(s.ws)
    room = unique()
    assert (await c.request("file_offer", to={"room": room}, name="n", size=5001, sha256="0" * 64))[
        "error"
    ]["code"] == "too_large"
    await c.ok("file_offer", to={"room": room}, name="n", size=5000, sha256="0" * 64)
    r = await c.request("file_offer", to={"room": room}, name="n", size=5000, sha256="0" * 64)
    assert r["error"]["code"] == "unavailable"


# -- 200 MB with the connection killed --------------------------------------


class CuttingProxy:
    """Forwards TCP to `target`; `cut()` resets every open connection.
    Counts the bytes each way (`up`: client to server)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.up = 0
        self.down = 0
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
                with self.lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        """Resets both sides of every connection (no close handshake)."""
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass

    def close(self):
        self.stopped = True
        self.lsock.close()
        self.cut()


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_200_mb_survives_two_kills_of_the_sender_and_one_of_the_receiver(server_factory, tmp_path):
    server = server_factory()
    host, port = server.addr.rsplit(":", 1)
    up_proxy = CuttingProxy((host, int(port)))
    down_proxy = CuttingProxy((host, int(port)))
    size = 200 * 1000 * 1000
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(src, "wb") as f:
        block = os.urandom(1 << 20)
        written = 0
        while written < size:
            part = block[: min(len(block), size - written)]
            # Varied content: a block differs from the last by its counter.
            part = struct.pack(">Q", written) + part[8:]
            f.write(part)
            digest.update(part)
            written += len(part)
    room = unique("files")
    out = tmp_path / "out"
    logs = log_dir()
    exe = str(binary())
    recv_log = open(logs / "files-recv.log", "w")
    send_log = open(logs / "files-send.log", "w")
    receiver = subprocess.Popen(
        [exe, "recv-file", f"ws://127.0.0.1:{down_proxy.port}/ws", "--room", room, "-o", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=recv_log,
        text=True,
    )
    sender = None
    try:
        wait_for(lambda: down_proxy.down > 0, 10, "the receiver to connect")
        time.sleep(0.5)
        sender = subprocess.Popen(
            [exe, "send-file", f"ws://127.0.0.1:{up_proxy.port}/ws", str(src), "--room", room, "-q"],
            stdout=subprocess.PIPE,
            stderr=send_log,
            text=True,
        )
        wait_for(lambda: up_proxy.up > 60_000_000, 120, "60 MB uploaded")
        up_proxy.cut()
        wait_for(lambda: up_proxy.up > 140_000_000, 120, "140 MB uploaded")
        up_proxy.cut()
        wait_for(lambda: down_proxy.down > 100_000_000, 120, "100 MB downloaded")
        down_proxy.cut()
        sent_out, _ = sender.communicate(timeout=180)
        assert sender.returncode == 0, f"send-file failed; see {logs / 'files-send.log'}"
        got_out, _ = receiver.communicate(timeout=180)
        assert receiver.returncode == 0, f"recv-file failed; see {logs / 'files-recv.log'}"
    finally:
        for p in (sender, receiver):
            if p is not None and p.poll() is None:
                p.kill()
        up_proxy.close()
        down_proxy.close()
        recv_log.close()
        send_log.close()
    sent = json.loads(sent_out.strip().splitlines()[-1])
    got = json.loads(got_out.strip().splitlines()[-1])
    print("send-file:", sent, "\nrecv-file:", got)
    assert sent["sha256"] == digest.hexdigest() == got["sha256"]
    assert sent["size"] == size == got["size"]
    # Two cuts, two resumes, each from where the server was: no chunk the
    # server acknowledged was sent again, and the server saw no chunk twice.
    assert len(sent["resumed_at"]) == 2, sent
    assert 0 < sent["resumed_at"][0] < sent["resumed_at"][1] < sent["chunks"], sent
    assert sent["resent_acknowledged"] == 0, sent
    assert sent["server_duplicates"] == 0, sent
    # What was sent more than once is what a cut lost in flight (at most a
    # window per cut).
    assert sent["frames_sent"] - sent["chunks"] == sent["resent"] <= 2 * 16, sent
    assert len(got["resumed_at"]) >= 1 and 0 < got["resumed_at"][0], got
    h = hashlib.sha256()
    with open(got["path"], "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    assert h.hexdigest() == digest.hexdigest()

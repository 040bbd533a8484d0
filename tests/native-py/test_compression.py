"""permessage-deflate on the native endpoint (docs/operations.md, `deflate`
and `deflate_threshold`): accepted when offered, messages from the threshold
(1024 B by default) up compressed and smaller ones sent as they are,
`--deflate false` declines the offer. Read from the raw frames, where the
RSV1 bit says whether a message was compressed."""

import base64
import json
import os
import socket
import zlib

OFFER = "permessage-deflate; client_max_window_bits"


class Raw:
    """A native client on a plain socket that sees each frame's RSV1 bit."""

    def __init__(self, srv, offer: str | None = OFFER):
        self.sock = socket.create_connection((srv.host, srv.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        ext = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {srv.addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), lines[0]
        self.headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        assert self.message()[1]["op"] == "welcome"

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self) -> tuple[bool, int, bytes]:
        """(RSV1, opcode, payload) of the next frame from the server."""
        b0, b1 = self._need(2)
        assert not b1 & 0x80, "a server frame is never masked"
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._need(2), "big")
        elif n == 127:
            n = int.from_bytes(self._need(8), "big")
        assert b0 & 0x80, "fragmented messages are not expected here"
        return bool(b0 & 0x40), b0 & 0x0F, self._need(n)

    def message(self) -> tuple[bool, dict]:
        """(compressed, JSON) of the next text message, pongs skipped."""
        while True:
            rsv1, op, data = self.frame()
            if op == 0x1:
                break
        if rsv1:
            data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
        return rsv1, json.loads(data)

    def send(self, msg: dict):
        payload = json.dumps(msg).encode()
        mask = os.urandom(4)
        n = len(payload)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        self.sock.sendall(bytes([0x81]) + size + mask + masked)

    def reply(self, id_: int) -> dict:
        while True:
            _, m = self.message()
            if m.get("id") == id_:
                return m

    def close(self):
        self.sock.close()


def deliveries(srv, sizes, offer=OFFER):
    """Publishes one message per size of `data` to a room and returns the
    subscriber's handshake headers and (compressed, frame JSON) per message."""
    sub, pub = Raw(srv, offer), Raw(srv)
    try:
        sub.send({"op": "join", "room": "z", "id": 1})
        assert sub.reply(1).get("op") != "error"
        got = []
        for i, size in enumerate(sizes):
            # Repetitive text: well worth compressing from any size up.
            pub.send({"op": "publish", "room": "z", "event": "e", "data": "ab" * (size // 2), "id": 10 + i})
            assert "offset" in json.dumps(pub.reply(10 + i))
            while True:
                compressed, m = sub.message()
                if m.get("op") == "message":
                    break
            assert len(m["data"]) == size // 2 * 2
            got.append((compressed, m))
        return sub.headers, got
    finally:
        sub.close()
        pub.close()


def test_messages_from_the_threshold_up_are_compressed(server_factory):
    headers, got = deliveries(server_factory(), [200, 700, 1200, 8000])
    assert headers["sec-websocket-extensions"].startswith("permessage-deflate"), headers
    # The frames carry under 200 B of JSON around the data: 200 and 700
    # stay under 1024 B, 1200 and 8000 are over it.
    assert [c for c, _ in got] == [False, False, True, True]


def test_the_threshold_is_a_setting(server_factory):
    _, got = deliveries(server_factory("--deflate-threshold", "0"), [200])
    assert got[0][0] is True


def test_deflate_false_declines_the_offer(server_factory):
    headers, got = deliveries(server_factory("--deflate", "false"), [200, 8000])
    assert "sec-websocket-extensions" not in headers, headers
    assert [c for c, _ in got] == [False, False]


def test_a_client_that_offers_nothing_gets_plain_frames(server_factory):
    headers, got = deliveries(server_factory(), [8000], offer=None)
    assert "sec-websocket-extensions" not in headers, headers
    assert got[0][0] is False

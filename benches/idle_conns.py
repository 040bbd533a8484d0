#!/usr/bin/env python3
"""Open many idle WebSocket connections to one server and hold them open.

Dependency-free (stdlib asyncio + raw sockets): does the HTTP/1.1 Upgrade
handshake itself, checks the 101 and Sec-WebSocket-Accept, then keeps every
socket open, answering pings with pongs (so servers with keep-alive pings do not
drop the connection) and never sending data otherwise.

Used by benches/echo.sh for the idle-memory row:

    idle_conns.py --url ws://127.0.0.1:9001/ --count 10000 [--sources 4]

and, with --socketio, by benches/sio_idle.sh: each connection is then an idle
Socket.IO client over the WebSocket transport (default path
/socket.io/?EIO=4&transport=websocket when the URL's path is "/"): it reads the
Engine.IO open packet (text "0{...}"), sends the Socket.IO CONNECT "40" for the
main namespace (or "40<json>" with --auth), and counts as opened once the
server's "40{...}" CONNECT reply arrives (a CONNECT_ERROR "44..." is a failure).
Idle, it answers every Engine.IO ping (text "2") with a pong (text "3") as well
as WebSocket pings, so the server's heartbeat does not drop it:

    idle_conns.py --socketio --url ws://127.0.0.1:3000/ --count 10000

Protocol with the caller (stdout, one line each, flushed):
    READY opened=N failed=M elapsed_s=T     once every attempt has finished
    FINAL alive=K opened=N failed=M         on exit (SIGTERM/SIGINT, stdin EOF
                                            with --stdin, or --hold expiry)
Everything else goes to stderr. Exit status 0 unless nothing could be opened.

Connections are spread over source addresses 127.0.0.1 .. 127.0.0.<sources>
(IP_BIND_ADDRESS_NO_PORT, so each source address gets the whole ephemeral port
range per destination). The process raises its own RLIMIT_NOFILE soft limit to
the hard limit; the caller must make sure the hard limit (and the server's) is
large enough (`ulimit -n`).
"""

import argparse
import asyncio
import base64
import hashlib
import os
import resource
import signal
import socket
import struct
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SIO_DEFAULT_PATH = "/socket.io/?EIO=4&transport=websocket"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def log(*a):
    print("idle_conns:", *a, file=sys.stderr, flush=True)


def parse_url(url):
    if not url.startswith("ws://"):
        raise SystemExit("only ws:// URLs are supported")
    rest = url[len("ws://"):]
    hostport, _, path = rest.partition("/")
    path = "/" + path
    host, _, port = hostport.rpartition(":")
    if not host:
        raise SystemExit(f"URL needs host:port: {url}")
    return host.strip("[]"), int(port), hostport, path


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(need, soft)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError) as e:
            log(f"could not raise RLIMIT_NOFILE to {want}: {e}")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        log(f"warning: RLIMIT_NOFILE is {soft}, below the {need} needed; raise `ulimit -n`")


def mask_frame(opcode, payload):
    """A masked client frame (payloads < 126 bytes only: control frames)."""
    key = os.urandom(4)
    body = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


class Conn:
    __slots__ = ("sock", "alive")

    def __init__(self, sock):
        self.sock = sock
        self.alive = True


class Opener:
    def __init__(self, args):
        self.args = args
        self.host, self.port, self.hostport, self.path = parse_url(args.url)
        if args.socketio and self.path == "/":
            self.path = SIO_DEFAULT_PATH
        self.sio_connect = b"40" + (args.auth.encode() if args.auth else b"")
        self.conns = []
        self.failed = 0
        self.errors = {}
        self.readers = set()

    def sources(self):
        n = max(1, self.args.sources)
        return [f"127.0.0.{i}" for i in range(1, n + 1)]

    async def handshake(self, src):
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if src is not None:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((src, 0))
            await loop.sock_connect(sock, (self.host, self.port))
            key = base64.b64encode(os.urandom(16))
            req = (
                f"GET {self.path} HTTP/1.1\r\n"
                f"Host: {self.hostport}\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key.decode()}\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "\r\n"
            ).encode()
            await loop.sock_sendall(sock, req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    raise ConnectionError("closed during handshake")
                buf += chunk
                if len(buf) > 16384:
                    raise ConnectionError("oversized handshake response")
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = lines[0].split(b" ", 2)
            if len(status) < 2 or status[1] != b"101":
                raise ConnectionError(f"status {lines[0][:60]!r}")
            headers = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(b":")
                headers[k.strip().lower()] = v.strip()
            expect = base64.b64encode(hashlib.sha1(key + GUID).digest())
            if headers.get(b"sec-websocket-accept") != expect:
                raise ConnectionError("bad Sec-WebSocket-Accept")
            if headers.get(b"sec-websocket-extensions"):
                raise ConnectionError("server negotiated an extension we did not offer")
            if self.args.socketio:
                rest = await self.sio_handshake(sock, rest)
            return sock, rest
        except BaseException:
            sock.close()
            raise

    async def sio_handshake(self, sock, buf):
        """Engine.IO open packet, then Socket.IO CONNECT to "/" and its reply.

        Returns the bytes received after the CONNECT reply."""
        loop = asyncio.get_running_loop()
        state = "open"  # waiting for the Engine.IO open packet, then "connect"
        while True:
            fr = parse_frame(buf)
            if fr is None:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    raise ConnectionError(f"closed during Socket.IO handshake ({state})")
                buf += chunk
                if len(buf) > 65536:
                    raise ConnectionError("oversized frame during Socket.IO handshake")
                continue
            opcode, payload, used = fr
            buf = buf[used:]
            if opcode == 0x9:
                await loop.sock_sendall(sock, mask_frame(0xA, payload[:125]))
                continue
            if opcode == 0x8:
                raise ConnectionError(f"close frame during Socket.IO handshake ({state})")
            if opcode != 0x1:
                continue
            if payload == b"2":  # Engine.IO ping
                await loop.sock_sendall(sock, mask_frame(0x1, b"3"))
                continue
            if state == "open":
                if not payload.startswith(b"0"):
                    raise ConnectionError(f"expected an Engine.IO open packet, got {payload[:40]!r}")
                await loop.sock_sendall(sock, mask_frame(0x1, self.sio_connect))
                state = "connect"
            elif payload.startswith(b"40"):
                return buf
            elif payload.startswith(b"44"):
                raise ConnectionError("Socket.IO CONNECT_ERROR")
            else:
                raise ConnectionError(f"expected a Socket.IO CONNECT reply, got {payload[:40]!r}")

    async def open_one(self, idx, sem):
        srcs = self.sources()
        src = srcs[idx % len(srcs)] if self.args.sources > 0 else None
        async with sem:
            for attempt in range(self.args.retries + 1):
                try:
                    sock, rest = await asyncio.wait_for(self.handshake(src), self.args.timeout)
                except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                    name = type(e).__name__
                    if isinstance(e, OSError) and e.errno:
                        name = os.strerror(e.errno)
                    self.errors[name] = self.errors.get(name, 0) + 1
                    if attempt < self.args.retries:
                        await asyncio.sleep(0.05 * (attempt + 1))
                        continue
                    self.failed += 1
                    return
                c = Conn(sock)
                self.conns.append(c)
                t = asyncio.ensure_future(self.reader(c, rest))
                self.readers.add(t)
                t.add_done_callback(self.readers.discard)
                return

    async def reader(self, c, buf):
        """Answer pings, notice closes; otherwise sit idle in the kernel."""
        loop = asyncio.get_running_loop()
        sio = self.args.socketio
        try:
            while True:
                while True:
                    fr = parse_frame(buf)
                    if fr is None:
                        break
                    opcode, payload, used = fr
                    buf = buf[used:]
                    if opcode == 0x9:  # ping -> pong
                        await loop.sock_sendall(c.sock, mask_frame(0xA, payload[:125]))
                    elif opcode == 0x1 and payload == b"2" and sio:  # Engine.IO ping -> pong
                        await loop.sock_sendall(c.sock, mask_frame(0x1, b"3"))
                    elif opcode == 0x8:  # close -> echo close, done
                        try:
                            await loop.sock_sendall(c.sock, mask_frame(0x8, payload[:125]))
                        except OSError:
                            pass
                        raise ConnectionError("server closed")
                chunk = await loop.sock_recv(c.sock, 4096)
                if not chunk:
                    raise ConnectionError("eof")
                buf += chunk
        except (OSError, ConnectionError):
            c.alive = False
        except asyncio.CancelledError:
            pass

    async def run(self, stop):
        n = self.args.count
        raise_nofile(n + 256)
        sem = asyncio.Semaphore(self.args.concurrency)
        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(self.open_one(i, sem)) for i in range(n)]
        done, pending = await asyncio.wait(tasks, timeout=self.args.open_timeout)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            self.failed += len(pending)
            self.errors["open-timeout"] = self.errors.get("open-timeout", 0) + len(pending)
        el = time.monotonic() - t0
        opened = len(self.conns)
        if self.errors:
            log("errors (incl. retried):", ", ".join(f"{k}={v}" for k, v in sorted(self.errors.items())))
        print(f"READY opened={opened} failed={self.failed} elapsed_s={el:.2f}", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), self.args.hold)
        except asyncio.TimeoutError:
            log(f"hold time of {self.args.hold}s reached")
        alive = sum(1 for c in self.conns if c.alive)
        print(f"FINAL alive={alive} opened={opened} failed={self.failed}", flush=True)
        for t in list(self.readers):
            t.cancel()
        for c in self.conns:
            try:
                # RST rather than FIN: closing 10k sockets politely is not what is measured.
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.sock.close()
            except OSError:
                pass
        return 0 if opened > 0 else 1


def parse_frame(buf):
    """(opcode, payload, bytes_used) for one complete server frame, or None."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n = b1 & 0x7F
    off = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack_from("!H", buf, 2)[0]
        off = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack_from("!Q", buf, 2)[0]
        off = 10
    if b1 & 0x80:
        off += 4  # a server must not mask, but skip the key if it does
    if len(buf) < off + n:
        return None
    return b0 & 0x0F, buf[off:off + n], off + n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="ws://HOST:PORT/PATH (loopback only)")
    ap.add_argument("--count", type=int, default=10000, help="connections to open (max 100000)")
    ap.add_argument("--sources", type=int, default=0,
                    help="spread over source addresses 127.0.0.1..127.0.0.N (0: let the kernel pick)")
    ap.add_argument("--concurrency", type=int, default=256, help="handshakes in flight at once")
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per handshake attempt")
    ap.add_argument("--open-timeout", type=float, default=120.0, help="seconds for all handshakes")
    ap.add_argument("--hold", type=float, default=300.0, help="max seconds to hold after READY")
    ap.add_argument("--stdin", action="store_true", help="also stop when stdin reaches EOF")
    ap.add_argument("--socketio", action="store_true",
                    help="idle Socket.IO clients (EIO=4, WebSocket transport, namespace \"/\"); "
                         f"a URL path of \"/\" becomes {SIO_DEFAULT_PATH}")
    ap.add_argument("--auth", default="",
                    help="with --socketio: JSON object sent as the CONNECT payload (40<json>)")
    args = ap.parse_args()
    if args.auth:
        if not args.socketio:
            raise SystemExit("--auth needs --socketio")
        if not args.auth.startswith("{") or len(args.auth) > 100:
            raise SystemExit("--auth must be a JSON object of at most 100 bytes")
    host = parse_url(args.url)[0]
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise SystemExit("refusing a non-loopback target")
    if not 1 <= args.count <= 100000:
        raise SystemExit("--count must be in 1..100000")
    args.sources = max(0, min(args.sources, 254))

    async def amain():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.stdin:
            def on_stdin():
                if not os.read(sys.stdin.fileno(), 4096):
                    loop.remove_reader(sys.stdin.fileno())
                    stop.set()
            loop.add_reader(sys.stdin.fileno(), on_stdin)
        return await Opener(args).run(stop)

    sys.exit(asyncio.run(amain()))


if __name__ == "__main__":
    main()

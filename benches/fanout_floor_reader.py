#!/usr/bin/env python3
"""The subscribers of benches/fanout_floor.sh: N connections to the
fanout-floor writer, read through one epoll until SECONDS pass. Prints the
bytes read as JSON."""
import json
import os
import select
import socket
import sys
import time

port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ep = select.epoll()
conns = []
deadline = time.monotonic() + 10
while True:  # the writer may not listen yet
    try:
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        break
    except ConnectionRefusedError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
for i in range(n):
    s = first if i == 0 else socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setblocking(False)
    ep.register(s.fileno(), select.EPOLLIN)
    conns.append(s)
got = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for fd, _ in ep.poll(0.2):
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            continue
        got += len(data)
print(json.dumps({"connections": n, "bytes_read": got}))

#!/usr/bin/env bash
# What a wave of connections costs everyone else at every heartbeat:
# CONNS connections opened together (`switchboard bench idle`, pings
# answered) to a server with a short ping interval, and meanwhile a probe
# (`switchboard bench fanout`, one subscriber, RATE msg/s for DURATION s)
# measuring publish-to-delivery latency. A server that pings the whole wave
# in one sweep holds the probe's messages for as long as those pings and
# their pongs take, once per interval; the probe's p99, p99.9 and max show it.
#
#   benches/ping_wave.sh BINARY...        (each a switchboard binary; runs alternate)
#
# Environment: PROTOCOL native|socketio (native), CONNS (10000), ROUNDS (2),
# INTERVAL ping interval and timeout in s (5), RATE (200), DURATION (25).
# Server pinned to SERVER_CPU (0), both clients to CLIENT_CPU (1). Prints
# one line per run: binary, p50, p99, p99.9, max (ms) and messages lost.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in -h|--help|"") sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
PROTOCOL="${PROTOCOL:-native}"; CONNS="${CONNS:-10000}"; ROUNDS="${ROUNDS:-2}"
INTERVAL="${INTERVAL:-5}"; RATE="${RATE:-200}"; DURATION="${DURATION:-25}"
SERVER_CPU="${SERVER_CPU:-0}"; CLIENT_CPU="${CLIENT_CPU:-1}"
BENCH_NAME=ping_wave.sh
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
case "$PROTOCOL" in native|socketio) ;; *) echo "ping_wave.sh: PROTOCOL is native or socketio" >&2; exit 2 ;; esac
int_in CONNS "$CONNS" 1 100000
int_in ROUNDS "$ROUNDS" 1 20
int_in INTERVAL "$INTERVAL" 1 3600
int_in RATE "$RATE" 1 10000
int_in DURATION "$DURATION" 1 3600
for b in "$@"; do [ -x "$b" ] || die "not an executable: $b"; done
raise_nofile $((CONNS + 1024)) || die "open-file limit $SOFT_FDS is below the $((CONNS + 1024)) needed"
for _ in $(seq "$ROUNDS"); do
  for b in "$@"; do
    port="$(free_port)"
    taskset -c "$SERVER_CPU" "$b" serve --listen "127.0.0.1:$port" --api-key x --max-connections-per-ip 0 \
      --rate 1000000 --rate-burst 1000000 --ping-interval "${INTERVAL}s" --ping-timeout "${INTERVAL}s" >/dev/null 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    for _ in $(seq 1 100); do port_open "$port" && break; sleep 0.1; done
    port_open "$port" || die "$b did not start"
    if [ "$PROTOCOL" = native ]; then url="ws://127.0.0.1:$port/ws"; else url="http://127.0.0.1:$port"; fi
    # Held past the probe's end: the wave opens in a few seconds.
    taskset -c "$CLIENT_CPU" "$b" bench idle --url "$url" --pid "$pid" --protocol "$PROTOCOL" \
      --connections "$CONNS" --settle $((DURATION + 15)) --json >/dev/null 2>&1 &
    idle=$!
    STARTED_PIDS+=("$idle")
    sleep $((CONNS / 2000 + 2))
    out="$(taskset -c "$CLIENT_CPU" timeout $((DURATION + 60)) "$b" bench fanout --url "$url" --protocol "$PROTOCOL" \
      --subscribers 1 --rate "$RATE" --duration "$DURATION" --json 2>/dev/null | tail -n 1)"
    stop_pid "$idle"
    stop_pid "$pid"
    python3 - "$b" "$out" <<'PY'
import json, sys
name, out = sys.argv[1], sys.argv[2]
try:
    d = json.loads(out)
    print(f"{name}: p50 {d['p50_us'] / 1000:.1f} ms, p99 {d['p99_us'] / 1000:.1f} ms, "
          f"p99.9 {d['p999_us'] / 1000:.1f} ms, max {d['max_us'] / 1000:.1f} ms, lost {d['lost']}")
except (ValueError, KeyError):
    print(f"{name}: no result")
PY
  done
done

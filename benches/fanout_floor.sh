#!/usr/bin/env bash
# The kernel's floor under a room fan-out on this machine: the time one core
# needs to write one message to each of N loopback sockets with nothing else
# in the way (peers/rust fanout-floor: a plain write loop, no runtime, no
# framing), the N subscribers read through one epoll with plain reads on the
# other core (peers/rust fanout-floor-reader). Each message carries its round's
# start time, so the reader measures the latency `bench fanout` measures, with
# no server and no generator work on either side (benches/README.md: what
# this floor is and is not).
# Compare with benches/fanout.sh: `server CPU µs/delivery` against
# cpu_us_per_write, and p50/p99 against the floor's.
#
#   benches/fanout_floor.sh [N] [SIZE] [ROUNDS] [PERIOD_MS]   (default 10000 256 100 100)
#
# Writer pinned to SERVER_CPU (0), reader to CLIENT_CPU (1). Prints one JSON
# object with the fields of `switchboard bench fanout --json` that apply
# (deliveries_per_sec, p50_us … max_us over every message, expected, delivered,
# lost, setup_s, server_cpu_us_per_delivery = the writer's CPU per write), and
# under "writer" its own figures: loop_median_ms (one message to all N),
# us_per_write, cpu_us_per_write. benches/fanout.sh runs it as the server
# "floor", beside the real ones.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
N="${1:-10000}"; SIZE="${2:-256}"; ROUNDS="${3:-100}"; PERIOD_MS="${4:-100}"
SERVER_CPU="${SERVER_CPU:-0}"; CLIENT_CPU="${CLIENT_CPU:-1}"
PEERS_TARGET_DIR="${PEERS_TARGET_DIR:-$HOME/.cache/switchboard-peers-target}"
BENCH_NAME=fanout_floor.sh
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
int_in N "$N" 1 100000
int_in SIZE "$SIZE" 8 65536
int_in ROUNDS "$ROUNDS" 1 100000
int_in PERIOD_MS "$PERIOD_MS" 1 60000
raise_nofile $((N + 256)) || die "open-file limit $SOFT_FDS is below the $((N + 256)) needed"
(cd "$HERE/peers/rust" && CARGO_TARGET_DIR="$PEERS_TARGET_DIR" cargo build --release --locked -q --bin fanout-floor --bin fanout-floor-reader) \
  || die "cannot build fanout-floor"
port="$(free_port)"
reader_out="$(mktemp)"
taskset -c "$SERVER_CPU" "$PEERS_TARGET_DIR/release/fanout-floor" "$port" "$N" "$ROUNDS" "$SIZE" "$PERIOD_MS" > "$reader_out.writer" &
writer=$!
STARTED_PIDS+=("$writer")
# No probe connection here: the writer counts every connection it accepts
# (the reader retries its first connect until the writer listens).
# The reader stops once every message came, or at the latest some time after
# the writer's last round: its 1 s pause, every round and a margin.
taskset -c "$CLIENT_CPU" "$PEERS_TARGET_DIR/release/fanout-floor-reader" "$port" "$N" "$SIZE" "$ROUNDS" \
  "$(awk -v r="$ROUNDS" -v p="$PERIOD_MS" 'BEGIN { print r * p / 1000 * 2 + 10 }')" > "$reader_out" &
reader=$!
STARTED_PIDS+=("$reader")
wait "$writer" || die "fanout-floor failed"
wait "$reader" || die "fanout-floor-reader failed"
python3 - "$reader_out.writer" "$reader_out" <<'PY'
import json, sys
writer = json.load(open(sys.argv[1]))
out = json.load(open(sys.argv[2]))
out["server_cpu_us_per_delivery"] = writer["cpu_us_per_write"]
out["writer"] = writer
print(json.dumps(out))
PY
rm -f "$reader_out" "$reader_out.writer"

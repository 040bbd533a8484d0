#!/usr/bin/env bash
# The kernel's floor under a room fan-out on this machine: the time one core
# needs to write one message to each of N loopback sockets with nothing else
# in the way (peers/rust fanout-floor: a plain write loop, no runtime, no
# framing), the N subscribers read through one epoll on the other core
# (fanout_floor_reader.py). Compare its time per write with `server CPU
# µs/delivery` of benches/fanout.sh: what is above the floor is the server's.
#
#   benches/fanout_floor.sh [N] [SIZE] [ROUNDS]     (default 10000 256 100)
#
# Writer pinned to SERVER_CPU (0), reader to CLIENT_CPU (1). Prints one JSON
# object: loop_median_ms (one message to all N), us_per_write, cpu_us_per_write.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
N="${1:-10000}"; SIZE="${2:-256}"; ROUNDS="${3:-100}"
SERVER_CPU="${SERVER_CPU:-0}"; CLIENT_CPU="${CLIENT_CPU:-1}"
PEERS_TARGET_DIR="${PEERS_TARGET_DIR:-$HOME/.cache/switchboard-peers-target}"
BENCH_NAME=fanout_floor.sh
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
int_in N "$N" 1 100000
int_in SIZE "$SIZE" 1 65536
int_in ROUNDS "$ROUNDS" 1 10000
raise_nofile $((N + 256)) || die "open-file limit $SOFT_FDS is below the $((N + 256)) needed"
(cd "$HERE/peers/rust" && CARGO_TARGET_DIR="$PEERS_TARGET_DIR" cargo build --release --locked -q --bin fanout-floor) \
  || die "cannot build fanout-floor"
port="$(free_port)"
taskset -c "$SERVER_CPU" "$PEERS_TARGET_DIR/release/fanout-floor" "$port" "$N" "$ROUNDS" "$SIZE" &
writer=$!
STARTED_PIDS+=("$writer")
# No probe connection here: the writer counts every connection it accepts
# (the reader retries its first connect until the writer listens).
# Long enough for the connections, the writer's 1 s pause and every round.
taskset -c "$CLIENT_CPU" timeout $((ROUNDS / 10 + 60)) python3 "$HERE/fanout_floor_reader.py" "$port" "$N" $((ROUNDS / 10 + 5)) >/dev/null &
reader=$!
STARTED_PIDS+=("$reader")
wait "$writer" || die "fanout-floor failed"
# the reader is stopped by lib.sh's exit trap

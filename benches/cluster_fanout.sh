#!/usr/bin/env bash
# Room fan-out on 1 node against 3 nodes over one Redis, alternating, in one
# run: `switchboard bench fanout` with SUBS subscribers in one room (spread
# over the nodes in turn), a publisher on the first node at RATE msg/s for
# DURATION s. Also 1 node without Redis (memory store) as the reference.
# Prints one JSON line per run and a median summary.
#
#   benches/cluster_fanout.sh [SUBS] [RATE] [DURATION] [ROUNDS]
#
# Server, Redis and load generator share this machine: on 2 cores, three
# nodes compete with each other for the same CPUs, so this measures the cost
# of the cluster path, not the capacity of three machines.
set -euo pipefail
SUBS=${1:-3000}
RATE=${2:-20}
DURATION=${3:-10}
ROUNDS=${4:-2}
BIN=${SB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release/switchboard}
OUT=${OUT_DIR:-./out}/bench
mkdir -p "$OUT"
RESULTS="$OUT/cluster_fanout.jsonl"
: > "$RESULTS"
REDIS_PORT=6399
DIR=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

redis-server --port $REDIS_PORT --save '' --appendonly no --dir "$DIR" --daemonize yes >/dev/null
until redis-cli -p $REDIS_PORT ping >/dev/null 2>&1; do sleep 0.1; done

start_nodes() { # N REDIS(yes|no)
    pids=()
    urls=()
    prefix="bench$RANDOM:"
    for i in $(seq 1 "$1"); do
        port=$((9300 + i))
        extra=()
        [ "$2" = yes ] && extra=(--redis "redis://127.0.0.1:$REDIS_PORT/" --node-id "n$i" --redis-prefix "$prefix")
        "$BIN" serve --listen "127.0.0.1:$port" --api-key k --max-connections-per-ip 0 \
            --rate 100000 --rate-burst 100000 "${extra[@]}" >"$OUT/node$i.log" 2>&1 &
        pids+=($!)
        urls+=(--url "ws://127.0.0.1:$port/ws")
        until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
    done
}

stop_nodes() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
}

run() { # LABEL N REDIS
    start_nodes "$2" "$3"
    line=$("$BIN" bench fanout "${urls[@]}" --subscribers "$SUBS" --rate "$RATE" \
        --duration "$DURATION" --json)
    stop_nodes
    echo "{\"setup\":\"$1\",\"result\":$line}" | tee -a "$RESULTS"
}

for _ in $(seq 1 "$ROUNDS"); do
    run "1 node, memory" 1 no
    run "1 node, redis" 1 yes
    run "3 nodes, redis" 3 yes
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["setup"], []).append(r["result"])
base = None
for setup, rs in by.items():
    rate = statistics.median(r["deliveries_per_sec"] for r in rs)
    p99 = statistics.median(r["p99_us"] for r in rs) / 1000
    lost = sum(r["expected"] - r["delivered"] for r in rs)
    base = base or rate
    print(f"{setup:16} deliveries/s {rate:>9.0f} ({rate / base:.2f}x)  p99 {p99:.1f} ms  undelivered {lost}  runs {[r['deliveries_per_sec'] for r in rs]}")
EOF

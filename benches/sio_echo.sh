#!/usr/bin/env bash
# Socket.IO emit-with-ack round trips, side by side in one run:
# `switchboard echo --socketio` against the official Node `socket.io` server
# (peers/node/sio-echo.js) and socketioxide (peers/rust socketioxide-echo).
# Each server acks `echo` with its arguments; `switchboard bench sio-echo`
# drives N clients (WebSocket transport opened directly), each keeping K
# emits in flight (K = 1: a closed loop, one emit then its ack).
#
#   benches/sio_echo.sh [ROUNDS] [DURATION]
#   ROWS="100x20x1 10x1024x1 100x20x4 100x20x16"  (clients x bytes x in flight)
#
# Server pinned to core 0, load generator to core 1 (taskset), servers
# alternating in rotated order each round; medians per row and server, and
# ratios to Node, are printed and written to $OUT_DIR/bench/sio_echo.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DURATION=${2:-10}
ROWS=${ROWS:-"100x20x1 10x1024x1 100x20x4 100x20x16"}
BIN=${SB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release/switchboard}
PEERS_TARGET=${PEERS_TARGET:-$HOME/.cache/switchboard-peers-target}
OUT=${OUT_DIR:-./out}/bench
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
mkdir -p "$OUT"
RESULTS="$OUT/sio_echo.jsonl"
: > "$RESULTS"

(cd benches/peers/rust && CARGO_TARGET_DIR=$PEERS_TARGET cargo build --release --locked -q --bin socketioxide-echo)
[ -d benches/peers/node/node_modules ] || (cd benches/peers/node && npm ci --silent --no-audit --no-fund)

server_cmd() { # NAME PORT
    case $1 in
        switchboard) echo "$BIN echo --socketio --listen 127.0.0.1:$2 --workers 1" ;;
        node) echo "node benches/peers/node/sio-echo.js 127.0.0.1:$2" ;;
        socketioxide) echo "$PEERS_TARGET/release/socketioxide-echo 127.0.0.1:$2" ;;
    esac
}

SERVERS=(switchboard node socketioxide)
port=9400
for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round.
    order=("${SERVERS[@]:$((round % 3))}" "${SERVERS[@]:0:$((round % 3))}")
    for row in $ROWS; do
        IFS=x read -r conns size in_flight <<<"$row"
        in_flight=${in_flight:-1}
        for name in "${order[@]}"; do
            port=$((port + 1))
            # shellcheck disable=SC2046
            taskset -c "$SERVER_CPU" $(server_cmd "$name" $port) 2>"$OUT/sio-$name.log" &
            pid=$!
            for _ in $(seq 1 100); do
                curl -s -o /dev/null "http://127.0.0.1:$port/socket.io/?EIO=4&transport=polling" && break
                sleep 0.1
            done
            cpu0=$(awk '{print $14 + $15}' /proc/$pid/stat)
            if line=$(/usr/bin/time -f '%U %S' -o "$OUT/sio-client-time" taskset -c "$CLIENT_CPU" \
                "$BIN" bench sio-echo --url "http://127.0.0.1:$port" --connections "$conns" \
                --in-flight "$in_flight" --size "$size" --duration "$DURATION" --json); then
                cpu1=$(awk '{print $14 + $15}' /proc/$pid/stat)
                client_s=$(awk '{print $1 + $2}' "$OUT/sio-client-time")
                echo "{\"round\":$round,\"row\":\"$row\",\"server\":\"$name\",\"cpu_ticks\":$((cpu1 - cpu0)),\"client_cpu_s\":$client_s,\"result\":$line}" | tee -a "$RESULTS"
            else
                echo "{\"round\":$round,\"row\":\"$row\",\"server\":\"$name\",\"error\":true}" | tee -a "$RESULTS"
            fi
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        done
    done
done

python3 - "$RESULTS" "$OUT/sio_echo.md" <<'EOF'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hz = os.sysconf("SC_CLK_TCK")
cells = {}
for r in rows:
    if r.get("error"):
        continue
    x = r["result"]
    # CPU over the warm-up and the measured time, against the round trips of
    # the measured time scaled to both (the rate is steady).
    span = x["duration_s"] + 1.0
    trips = x["messages"] * span / x["duration_s"]
    us_per_msg = r["cpu_ticks"] / hz * 1e6 / trips if trips else 0
    client_us = r.get("client_cpu_s", 0) * 1e6 / trips if trips else 0
    cells.setdefault((r["row"], r["server"]), []).append((x["msgs_per_sec"], x["p99_us"], us_per_msg, client_us))
out = ["| clients × bytes × in flight | server | round trips/s (runs) | vs Node | vs socketioxide | p99 | server CPU µs/round trip | load generator CPU µs/round trip |", "|---|---|---|---|---|---|---|---|"]
for row in dict.fromkeys(k[0] for k in cells):
    med = {s: [statistics.median(v[i] for v in cells[(row, s)]) for i in range(4)] for (r_, s) in cells if r_ == row}
    for s, (rate, p99, cpu, client) in med.items():
        node = med.get("node", [0])[0] or float("nan")
        sx = med.get("socketioxide", [0])[0] or float("nan")
        runs = " · ".join(f"{v[0]:,.0f}" for v in cells[(row, s)])
        label = " × ".join(row.split("x"))
        out.append(f"| {label} | {s} | {rate:,.0f} ({runs}) | {rate / node:.2f}× | {rate / sx:.2f}× | {p99 / 1000:.1f} ms | {cpu:.2f} | {client:.2f} |")
text = "\n".join(out)
print(text)
open(sys.argv[2], "w").write(text + "\n")
with open(sys.argv[2].replace(".md", "_chart.jsonl"), "w") as f:
    for (row, server), v in cells.items():
        for rate, *_ in v:
            f.write(json.dumps({"group": row, "series": server, "value": rate}) + "\n")
EOF
"$BIN" bench chart "$OUT/sio_echo_chart.jsonl" -o "$OUT/sio_echo.svg" \
    --title "Socket.IO emit-with-ack round trips/s (clients x bytes x in flight)" --y-label "round trips/s"

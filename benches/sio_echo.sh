#!/usr/bin/env bash
# Socket.IO emit-with-ack round trips, side by side in one run:
# `switchboard echo --socketio` against the official Node `socket.io` server
# (peers/node/sio-echo.js) and socketioxide (peers/rust socketioxide-echo).
# Each server acks `echo` with its arguments; `switchboard bench sio-echo`
# drives N clients (WebSocket transport), each with one emit in flight.
#
#   benches/sio_echo.sh [ROUNDS] [DURATION]
#
# Server pinned to core 0, load generator to core 1 (taskset), servers
# alternating in rotated order each round; medians per row and server, and
# ratios to Node, are printed and written to $OUT_DIR/bench/sio_echo.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DURATION=${2:-10}
ROWS=${ROWS:-"100x20 10x1024"}
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
        conns=${row%x*}
        size=${row#*x}
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
            if line=$(taskset -c "$CLIENT_CPU" "$BIN" bench sio-echo --url "http://127.0.0.1:$port" \
                --connections "$conns" --size "$size" --duration "$DURATION" --json); then
                cpu1=$(awk '{print $14 + $15}' /proc/$pid/stat)
                echo "{\"round\":$round,\"row\":\"$row\",\"server\":\"$name\",\"cpu_ticks\":$((cpu1 - cpu0)),\"result\":$line}" | tee -a "$RESULTS"
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
    us_per_msg = r["cpu_ticks"] / hz * 1e6 / max(1, x["messages"]) if x["messages"] else 0
    cells.setdefault((r["row"], r["server"]), []).append((x["msgs_per_sec"], x["p99_us"], us_per_msg))
out = ["| row | server | round trips/s | vs Node | vs socketioxide | p99 | server CPU µs/round trip |", "|---|---|---|---|---|---|---|"]
for row in dict.fromkeys(k[0] for k in cells):
    med = {s: [statistics.median(v[i] for v in cells[(row, s)]) for i in range(3)] for (r_, s) in cells if r_ == row}
    for s, (rate, p99, cpu) in med.items():
        node = med.get("node", [0])[0] or float("nan")
        sx = med.get("socketioxide", [0])[0] or float("nan")
        runs = " · ".join(f"{v[0]:.0f}" for v in cells[(row, s)])
        out.append(f"| {row} | {s} | {rate:,.0f} ({runs}) | {rate / node:.2f}× | {rate / sx:.2f}× | {p99 / 1000:.1f} ms | {cpu:.1f} |")
text = "\n".join(out)
print(text)
open(sys.argv[2], "w").write(text + "\n")
with open(sys.argv[2].replace(".md", "_chart.jsonl"), "w") as f:
    for (row, server), v in cells.items():
        for rate, _, _ in v:
            f.write(json.dumps({"group": row, "series": server, "value": rate}) + "\n")
EOF
"$BIN" bench chart "$OUT/sio_echo_chart.jsonl" -o "$OUT/sio_echo.svg" \
    --title "Socket.IO emit-with-ack round trips/s (connections x bytes)" --y-label "round trips/s"

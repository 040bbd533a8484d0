#!/usr/bin/env bash
# Room fan-out, side by side in one run: SUBSCRIBERS subscribers in one room,
# one publisher at RATE msg/s (each rate of RATES), on four servers:
#   switchboard-native    switchboard serve, native protocol at /ws
#   switchboard-socketio  switchboard serve, the Socket.IO relay at /socket.io/
#   node                  node benches/peers/node/sio-relay.js: the official
#                         `socket.io` server with the relay subset of DESIGN §3
#                         (join / leave / publish, members get event(data, meta))
#   socketioxide          benches/peers/rust socketioxide-relay: the same relay
#                         in socketioxide (built into PEERS_TARGET)
#   floor                 not a server: benches/fanout_floor.sh, a plain write loop
#                         over SUBSCRIBERS loopback sockets read by one plain epoll
#                         loop (no runtime, framing, JSON or inflating on either
#                         side), messages the size of an uncompressed native
#                         delivery, RATE rounds a second. What is left of the
#                         latencies and CPU when every server and generator cost
#                         is taken away: a server within noise of it is at
#                         this machine's limit.
# Load: `switchboard bench fanout --protocol native|socketio --pid SERVER_PID`
# (subscribers join with an ack; the publisher stamps each message; latency
# is from that stamp to each delivery, same clock; losses and duplicates are
# counted per subscriber).
#
#   benches/fanout.sh                                  # 10,000 subscribers, 10 msg/s
#   SUBSCRIBERS=10000 RATES=1,2,5,10 DURATION=20 ROUNDS=3 benches/fanout.sh   # a sweep
#   SUBSCRIBERS=500 RATES=5 DURATION=3 ROUNDS=1 benches/fanout.sh             # smoke run
#
# Environment:
#   SUBSCRIBERS    subscribers in the room (default 10000)
#   RATES          comma list of publish rates, msg/s (default 10)
#   DURATION       measured seconds of publishing per run, integer (default 10)
#   ROUNDS         rounds; the server order is rotated each round (default 3)
#   P99_MS         latency bound for the capacity line (default 50)
#   SIZE           padding bytes per message (default 64)
#   SERVERS        comma list from switchboard-native,switchboard-socketio,node,socketioxide,floor
#                  (default all)
#   PEERS_TARGET   cargo target directory of benches/peers/rust
#                  (default ~/.cache/switchboard-peers-target)
#   SB_BIN_DIR     default ${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release
#   SWITCHBOARD    default $SB_BIN_DIR/switchboard (the servers and the load generator)
#   SB_SERVE_ARGS  extra arguments for `switchboard serve` (split on spaces)
#   BENCH_ARGS     extra arguments for `switchboard bench fanout` (split on spaces),
#                  e.g. --no-deflate: native subscribers do not offer compression
#   NODE_ARGS      extra arguments for sio-relay.js (e.g. --recovery)
#   SERVER_CPU / CLIENT_CPU  cores for the server and the load generator (default 0 / 1)
#   OUT_DIR        results directory (default out/fanout-<timestamp> at the repository root)
#
# Method: for each round, rate and server (order rotated each round) a fresh
# server is started on a fresh loopback port, pinned to SERVER_CPU with
# taskset; the load generator (one thread, pinned to CLIENT_CPU) connects
# and joins every subscriber, then publishes for DURATION s and waits for the
# last deliveries (until none came for 3 s). Deliveries/s = deliveries / time
# from the first publish to the last delivery (at least DURATION). Server CPU
# µs per delivery = utime+stime of the server process (/proc/PID/stat, read
# by the generator at the first publish and after the last delivery) /
# deliveries. Cells are medians over rounds; ratios are to node and to
# socketioxide. Capacity:
# per server, the highest median deliveries/s among the rates whose median
# p99 is under P99_MS and where no run lost a message.
# switchboard serve runs with --max-connections-per-ip 0 --rate 1000000
# --rate-burst 1000000 (the publisher would otherwise meet the 100 req/s
# limit); sio-relay.js with socket.io's defaults. Output: results.json
# (runs, cells, capacity, versions), results.md (tables), runs.jsonl, logs/.
# Traffic goes to 127.0.0.1 only; every wait is bounded.

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

case "${1:-}" in -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -eq 0 ] || { echo "usage: benches/fanout.sh (settings in the environment; --help)" >&2; exit 2; }

SUBSCRIBERS="${SUBSCRIBERS:-10000}"
RATES="${RATES:-10}"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
P99_MS="${P99_MS:-50}"
SIZE="${SIZE:-64}"
SERVERS="${SERVERS:-switchboard-native,switchboard-socketio,node,socketioxide,floor}"
PEERS_TARGET="${PEERS_TARGET:-$HOME/.cache/switchboard-peers-target}"
SB_BIN_DIR="${SB_BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release}"
SWITCHBOARD="${SWITCHBOARD:-$SB_BIN_DIR/switchboard}"
SB_SERVE_ARGS="${SB_SERVE_ARGS:-}"
BENCH_ARGS="${BENCH_ARGS:-}"
read -ra bench_args <<<"$BENCH_ARGS"
NODE_ARGS="${NODE_ARGS:-}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
OUT_DIR="${OUT_DIR:-$ROOT/out/fanout-$(date +%Y%m%d-%H%M%S)}"

BENCH_NAME=fanout.sh
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
int_in SUBSCRIBERS "$SUBSCRIBERS" 1 100000
int_in DURATION "$DURATION" 1 3600
int_in ROUNDS "$ROUNDS" 1 20
int_in SIZE "$SIZE" 0 60000
[[ "$P99_MS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "fanout.sh: P99_MS must be a number of milliseconds (got '$P99_MS')" >&2; exit 2; }
IFS=',' read -ra RATE_LIST <<<"$RATES"
[ "${#RATE_LIST[@]}" -gt 0 ] || { echo "fanout.sh: RATES is empty" >&2; exit 2; }
for r in "${RATE_LIST[@]}"; do
  [[ "$r" =~ ^[0-9]+(\.[0-9]+)?$ ]] && [ "$(awk -v r="$r" 'BEGIN{print (r > 0 && r <= 100000)}')" = 1 ] \
    || { echo "fanout.sh: RATES must be a comma list of rates in (0, 100000] msg/s (got '$r')" >&2; exit 2; }
done

command -v python3 >/dev/null || die "python3 not found"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v timeout >/dev/null || die "timeout not found (coreutils)"
[ -x "$SWITCHBOARD" ] || die "switchboard binary '$SWITCHBOARD' not found (cargo build --release -p switchboard-cli, or set SB_BIN_DIR / SWITCHBOARD)"
NCPU="$(nproc)"
[ "$SERVER_CPU" -lt "$NCPU" ] && [ "$CLIENT_CPU" -lt "$NCPU" ] || die "need cores $SERVER_CPU and $CLIENT_CPU, have $NCPU"

mkdir -p "$OUT_DIR/logs" || die "cannot create $OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
LOGS="$OUT_DIR/logs"
RUNS="$OUT_DIR/runs.jsonl"
: >"$RUNS"


# ---------------------------------------------------------------- file limits
# SUBSCRIBERS descriptors in the server and in the generator (both inherit
# this limit).
NEED_FDS=$((SUBSCRIBERS + 1024))
raise_nofile "$NEED_FDS" \
  || log "warning: open-file limit is $SOFT_FDS (hard $HARD_FDS), below the $NEED_FDS needed; connections will fail"

# ---------------------------------------------------------------- servers
NODE_DIR="$HERE/peers/node"
available() {
  case "$1" in
    switchboard-native|switchboard-socketio) ;;
    node)
      command -v node >/dev/null || { log "node not found: skipping the Node peer"; return 1; }
      if [ ! -f "$NODE_DIR/node_modules/socket.io/package.json" ]; then
        log "installing the Node peer's dependencies (npm ci in benches/peers/node)"
        (cd "$NODE_DIR" && npm ci --no-audit --no-fund) >"$LOGS/npm-ci.log" 2>&1 \
          || { log "npm ci failed (see $LOGS/npm-ci.log): skipping the Node peer"; return 1; }
      fi ;;
    socketioxide)
      command -v cargo >/dev/null || { log "cargo not found: skipping the socketioxide peer"; return 1; }
      (cd "$HERE/peers/rust" && CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release --locked -q --bin socketioxide-relay) \
        >"$LOGS/peers-build.log" 2>&1 \
        || { log "building socketioxide-relay failed (see $LOGS/peers-build.log): skipping it"; return 1; } ;;
    floor)
      command -v cargo >/dev/null || { log "cargo not found: skipping the floor"; return 1; }
      (cd "$HERE/peers/rust" && CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release --locked -q --bin fanout-floor --bin fanout-floor-reader) \
        >"$LOGS/floor-build.log" 2>&1 \
        || { log "building the floor failed (see $LOGS/floor-build.log): skipping it"; return 1; } ;;
    *) log "unknown server '$1' (switchboard-native, switchboard-socketio, node, socketioxide or floor)"; return 1 ;;
  esac
}
server_cmd() {  # NAME PORT -> one word per line
  case "$1" in
    switchboard-*) local extra=(); read -ra extra <<<"$SB_SERVE_ARGS"
                   printf '%s\n' "$SWITCHBOARD" serve --listen "127.0.0.1:$2" --api-key x \
                     --max-connections-per-ip 0 --rate 1000000 --rate-burst 1000000 "${extra[@]}" ;;
    node) local extra=(); read -ra extra <<<"$NODE_ARGS"
          printf '%s\n' node "$NODE_DIR/sio-relay.js" "127.0.0.1:$2" "${extra[@]}" ;;
    socketioxide) printf '%s\n' "$PEERS_TARGET/release/socketioxide-relay" "127.0.0.1:$2" ;;
  esac
}
protocol_of() { [ "$1" = switchboard-native ] && echo native || echo socketio; }
url_of() {  # NAME PORT
  if [ "$1" = switchboard-native ]; then echo "ws://127.0.0.1:$2/ws"; else echo "http://127.0.0.1:$2"; fi
}

IFS=',' read -ra WANT <<<"$SERVERS"
SERVER_LIST=()
for s in "${WANT[@]}"; do available "$s" && SERVER_LIST+=("$s"); done
[ "${#SERVER_LIST[@]}" -gt 0 ] || die "no server available"

# ---------------------------------------------------------------- helpers
# record ROUND RATE SERVER RESULT_JSON_OR_EMPTY ERROR
record() {
  python3 - "$@" >>"$RUNS" <<'EOF'
import json, sys
round_, rate, server, result, error = sys.argv[1:6]
d = {"round": int(round_), "rate": float(rate), "server": server}
if result:
    try:
        d["result"] = json.loads(result)
    except ValueError:
        error = (error + "; " if error else "") + "unreadable generator output"
if error:
    d["error"] = error
print(json.dumps(d))
EOF
}

# ---------------------------------------------------------------- one run
# Setup (SUBSCRIBERS connections and joins), DURATION s of publishing, the
# 3 s drain and the publish acks: bounded generously.
RUN_TIMEOUT=$((DURATION + 90 + SUBSCRIBERS / 50))

# One run of the floor: its own script, the same cores, as many messages.
# A native delivery of SIZE padding bytes is SIZE + 91 B of JSON in a 4-byte
# frame header. Sets line and err.
run_floor() {
  local round="$1" rate="$2" glog="$LOGS/floor-r$round-$rate.log" rounds period
  rounds="$(awk -v d="$DURATION" -v r="$rate" 'BEGIN { n = int(d * r + 0.5); print (n < 1 ? 1 : n) }')"
  period="$(awk -v r="$rate" 'BEGIN { p = int(1000 / r + 0.5); print (p < 1 ? 1 : p) }')"
  line="$(SERVER_CPU="$SERVER_CPU" CLIENT_CPU="$CLIENT_CPU" PEERS_TARGET_DIR="$PEERS_TARGET" \
    timeout "$RUN_TIMEOUT" "$HERE/fanout_floor.sh" "$SUBSCRIBERS" $((SIZE + 95)) "$rounds" "$period" 2>"$glog")"
  local rc=$?
  [ $rc -eq 0 ] || err="fanout_floor.sh failed (exit $rc, see $glog)"
}

# One run of a server: started fresh, pinned, then the load generator. Sets
# line and err.
run_server() {
  local round="$1" rate="$2" name="$3" port slog glog pid
  port="$(free_port)"
  slog="$LOGS/server-$name-r$round-$rate.log"
  glog="$LOGS/bench-$name-r$round-$rate.log"
  local cmd; mapfile -t cmd < <(server_cmd "$name" "$port")
  taskset -c "$SERVER_CPU" "${cmd[@]}" >"$slog" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  for _ in $(seq 1 150); do   # <= 15 s
    port_open "$port" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! port_open "$port"; then
    stop_pid "$pid"
    log "  $name: server did not start; its log ($slog):"
    tail -n 5 "$slog" >&2
    err="server did not start (see $slog)"
    return
  fi
  sleep 0.5
  line="$(taskset -c "$CLIENT_CPU" timeout "$RUN_TIMEOUT" "$SWITCHBOARD" bench fanout \
    --protocol "$(protocol_of "$name")" --url "$(url_of "$name" "$port")" \
    --subscribers "$SUBSCRIBERS" --rate "$rate" --duration "$DURATION" --size "$SIZE" \
    "${bench_args[@]}" --pid "$pid" --json 2>"$glog")"
  local rc=$?
  [ $rc -eq 0 ] || err="load generator failed (exit $rc, see $glog)"
  kill -0 "$pid" 2>/dev/null || err="${err:+$err; }server exited (see $slog)"
  stop_pid "$pid"
}

run_one() {
  local round="$1" rate="$2" name="$3" line="" err=""
  if [ "$name" = floor ]; then run_floor "$round" "$rate"; else run_server "$round" "$rate" "$name"; fi
  record "$round" "$rate" "$name" "$line" "$err"
  python3 - "$name" "$rate" "$line" "$err" >&2 <<'EOF'
import json, sys
name, rate, line, err = sys.argv[1:5]
try:
    x = json.loads(line)
    print(f"  {name} @ {rate}/s: {x['deliveries_per_sec']:,.0f} deliveries/s, p50 {x['p50_us']/1000:.1f} ms, "
          f"p99 {x['p99_us']/1000:.1f} ms, max {x['max_us']/1000:.1f} ms, lost {x['lost']}, dup {x['duplicates']}, "
          f"CPU {x['server_cpu_us_per_delivery'] or 0:.2f} µs/delivery, setup {x['setup_s']:.1f} s"
          + (f" [{err}]" if err else ""))
except (ValueError, KeyError, TypeError):
    print(f"  {name} @ {rate}/s: no result [{err}]")
EOF
}

# ---------------------------------------------------------------- rounds
log "$SUBSCRIBERS subscribers, rates ${RATES} msg/s, ${DURATION} s each, ${#SERVER_LIST[@]} server(s) (${SERVER_LIST[*]}), $ROUNDS round(s) -> $OUT_DIR"
n=${#SERVER_LIST[@]}
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS"
  for rate in "${RATE_LIST[@]}"; do
    for k in $(seq 0 $((n - 1))); do
      run_one "$round" "$rate" "${SERVER_LIST[$(( (k + round - 1) % n ))]}"
      sleep 1
    done
  done
done

# ---------------------------------------------------------------- summary
SB_VERSION="$(timeout 5 "$SWITCHBOARD" --version 2>/dev/null | head -n1)"
NODE_VERSION="$(node --version 2>/dev/null || true)"
SIO_VERSION="$(cd "$NODE_DIR" && node -p 'require("socket.io/package.json").version' 2>/dev/null || true)"
SIOX_VERSION="$(awk '/^name = "socketioxide"$/ {getline; gsub(/"/, "", $3); print $3}' "$HERE/peers/rust/Cargo.lock" 2>/dev/null)"
GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)"
[ -n "$GIT_REV" ] && [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -n1)" ] && GIT_REV="$GIT_REV-dirty"
SUBSCRIBERS="$SUBSCRIBERS" RATES="$RATES" DURATION="$DURATION" ROUNDS="$ROUNDS" P99_MS="$P99_MS" SIZE="$SIZE" \
SWITCHBOARD="$SWITCHBOARD" SB_VERSION="$SB_VERSION" SB_SERVE_ARGS="$SB_SERVE_ARGS" NODE_ARGS="$NODE_ARGS" \
BENCH_ARGS="$BENCH_ARGS" \
NODE_VERSION="$NODE_VERSION" SIO_VERSION="$SIO_VERSION" SIOX_VERSION="$SIOX_VERSION" GIT_REV="$GIT_REV" SERVER_CPU="$SERVER_CPU" \
CLIENT_CPU="$CLIENT_CPU" SOFT_FDS="$SOFT_FDS" \
python3 - "$RUNS" "$OUT_DIR/results.json" "$OUT_DIR/results.md" <<'EOF'
import json, os, platform, statistics, sys
E = os.environ
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bound_us = float(E["P99_MS"]) * 1000
servers = list(dict.fromkeys(r["server"] for r in runs))
rates = sorted({r["rate"] for r in runs})
med = lambda v: statistics.median(v) if v else None

cells = []
for rate in rates:
    for s in servers:
        rs = [r for r in runs if r["server"] == s and r["rate"] == rate]
        ok = [r["result"] for r in rs if "result" in r and not r.get("error")]
        cell = {"server": s, "rate": rate, "runs": len(rs), "ok_runs": len(ok),
                "errors": [f"round {r['round']}: {r['error']}" for r in rs if r.get("error")]}
        if ok:
            cell.update({
                "deliveries_per_sec": med([x["deliveries_per_sec"] for x in ok]),
                "deliveries_per_sec_runs": [x["deliveries_per_sec"] for x in ok],
                "p50_us": med([x["p50_us"] for x in ok]),
                "p99_us": med([x["p99_us"] for x in ok]),
                "p999_us": med([x["p999_us"] for x in ok]),
                "max_us": med([x["max_us"] for x in ok]),
                "cpu_us_per_delivery": med([x["server_cpu_us_per_delivery"] for x in ok
                                            if x.get("server_cpu_us_per_delivery") is not None]),
                "lost": sum(x["lost"] for x in ok),
                "duplicates": sum(x["duplicates"] for x in ok),
                "expected": sum(x["expected"] for x in ok),
                "setup_s": med([x["setup_s"] for x in ok]),
            })
        cells.append(cell)

def cell(s, rate):
    return next((c for c in cells if c["server"] == s and c["rate"] == rate), None)

def ratio(a, b, lower_is_better=False):
    if not a or not b:
        return None
    return round(b / a if lower_is_better else a / b, 2)

for c in cells:
    for peer, key in (("node", "node"), ("socketioxide", "socketioxide")):
        p = cell(peer, c["rate"])
        if p and p.get("deliveries_per_sec") and c.get("deliveries_per_sec") is not None:
            c[f"vs_{key}_deliveries"] = ratio(c["deliveries_per_sec"], p["deliveries_per_sec"])
            c[f"vs_{key}_cpu"] = ratio(c["cpu_us_per_delivery"], p.get("cpu_us_per_delivery"), lower_is_better=True)

# Capacity: the highest median deliveries/s whose median p99 is under the
# bound, among rates where every run succeeded and nothing was lost.
capacity = {}
for s in servers:
    good = [c for c in cells if c["server"] == s and c.get("ok_runs") and c["ok_runs"] == c["runs"]
            and c["lost"] == 0 and c["duplicates"] == 0 and c["p99_us"] < bound_us]
    best = max(good, key=lambda c: c["deliveries_per_sec"], default=None)
    capacity[s] = ({"rate": best["rate"], "deliveries_per_sec": best["deliveries_per_sec"],
                    "p99_us": best["p99_us"]} if best else None)
node_cap = (capacity.get("node") or {}).get("deliveries_per_sec")
siox_cap = (capacity.get("socketioxide") or {}).get("deliveries_per_sec")
for s, c in capacity.items():
    if c:
        c["vs_node"] = ratio(c["deliveries_per_sec"], node_cap)
        c["vs_socketioxide"] = ratio(c["deliveries_per_sec"], siox_cap)

summary = {
    "benchmark": "room fan-out: SUBSCRIBERS subscribers in one room, one publisher at RATE msg/s",
    "subscribers": int(E["SUBSCRIBERS"]), "rates": rates, "duration_s": int(E["DURATION"]),
    "rounds": int(E["ROUNDS"]), "size": int(E["SIZE"]), "p99_bound_ms": float(E["P99_MS"]),
    "method": "medians over rounds; deliveries/s from the first publish to the last delivery; "
              "server CPU = utime+stime (/proc/PID/stat) over that window / deliveries; "
              "capacity = highest median deliveries/s with median p99 under the bound and no loss",
    "cells": cells, "capacity": capacity,
    "meta": {
        "switchboard": E["SWITCHBOARD"], "switchboard_version": E["SB_VERSION"],
        "switchboard_args": ("serve --listen 127.0.0.1:PORT --api-key x --max-connections-per-ip 0 "
                             "--rate 1000000 --rate-burst 1000000 " + E["SB_SERVE_ARGS"]).strip(),
        "bench_args": E["BENCH_ARGS"], "node_args": E["NODE_ARGS"], "node": E["NODE_VERSION"], "socket.io": E["SIO_VERSION"],
        "socketioxide": E["SIOX_VERSION"],
        "git_rev": E["GIT_REV"], "server_cpu": int(E["SERVER_CPU"]), "client_cpu": int(E["CLIENT_CPU"]),
        "nofile": E["SOFT_FDS"], "kernel": platform.release(), "cpus": os.cpu_count(),
    },
    "runs": runs,
}
with open(sys.argv[2], "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")

ms = lambda us: "n/a" if us is None else f"{us / 1000:.1f}"
x = lambda r: "n/a" if r is None else f"{r:.2f}×"
out = [f"Fan-out: {summary['subscribers']:,} subscribers in one room, {summary['duration_s']} s per run, "
       f"{summary['rounds']} round(s), {summary['size']} B padding; medians over rounds "
       f"(switchboard {E['SB_VERSION'] or '?'} {E['GIT_REV']}, node {E['NODE_VERSION'] or '?'}, socket.io {E['SIO_VERSION'] or '?'}, socketioxide {E['SIOX_VERSION'] or '?'}).",
       "",
       "| msg/s | server | deliveries/s (runs) | vs node | vs socketioxide | p50 ms | p99 ms | p99.9 ms | max ms | server CPU µs/delivery | node CPU ÷ this | socketioxide CPU ÷ this | lost / dup |",
       "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for c in cells:
    if c.get("deliveries_per_sec") is None:
        out.append(f"| {c['rate']:g} | {c['server']} | error: {'; '.join(c['errors']) or 'no result'} | | | | | | | | | | |")
        continue
    runs_ = " · ".join(f"{v:,.0f}" for v in c["deliveries_per_sec_runs"])
    cpu = "n/a" if c["cpu_us_per_delivery"] is None else f"{c['cpu_us_per_delivery']:.2f}"
    err = f" ({len(c['errors'])} failed)" if c["errors"] else ""
    out.append(f"| {c['rate']:g} | {c['server']} | {c['deliveries_per_sec']:,.0f} ({runs_}){err} | {x(c.get('vs_node_deliveries'))} "
               f"| {x(c.get('vs_socketioxide_deliveries'))} | {ms(c['p50_us'])} | {ms(c['p99_us'])} | {ms(c['p999_us'])} "
               f"| {ms(c['max_us'])} | {cpu} | {x(c.get('vs_node_cpu'))} | {x(c.get('vs_socketioxide_cpu'))} "
               f"| {c['lost']} / {c['duplicates']} |")
if "floor" in servers:
    out += ["", "floor is not a server: benches/fanout_floor.sh, a plain write loop over the sockets read by one plain "
            "epoll loop, with messages the size of an uncompressed native delivery; its CPU column is the writer's "
            "CPU per write. A server within this VM's noise of it is at the machine's limit."]
out += ["", f"Capacity: the highest median deliveries/s with median p99 < {E['P99_MS']} ms and nothing lost, over rates {', '.join(f'{r:g}' for r in rates)} msg/s.", "",
        "| server | deliveries/s | at msg/s | p99 ms | vs node | vs socketioxide |", "|---|---|---|---|---|---|"]
for s, c in capacity.items():
    if c:
        out.append(f"| {s} | {c['deliveries_per_sec']:,.0f} | {c['rate']:g} | {ms(c['p99_us'])} | {x(c.get('vs_node'))} "
                   f"| {x(c.get('vs_socketioxide'))} |")
    else:
        out.append(f"| {s} | none under the bound | | | | |")
text = "\n".join(out)
open(sys.argv[3], "w").write(text + "\n")
print()
print(text)
print()
print(f"results: {sys.argv[2]}, {sys.argv[3]}")
sys.exit(0 if any(c.get("deliveries_per_sec") is not None for c in cells) else 1)
EOF

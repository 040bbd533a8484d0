#!/usr/bin/env bash
# Idle Socket.IO memory: server RSS per idle Socket.IO connection (WebSocket
# transport): switchboard's relay against the official Node `socket.io`
# server doing the same job, and the echo servers of benches/sio_echo.sh.
#
#   benches/sio_idle.sh [COUNT]          COUNT idle connections (default 10000)
#
# Servers:
#   switchboard       $SWITCHBOARD serve --listen 127.0.0.1:PORT --api-key x --max-connections-per-ip 0 $SB_SERVE_ARGS
#   node              node benches/peers/node/sio-relay.js 127.0.0.1:PORT  (socket.io, pinned
#                     in benches/peers/node/package-lock.json; default options)
#   switchboard-echo  $SWITCHBOARD echo --socketio --workers 1 --listen 127.0.0.1:PORT
#   socketioxide      benches/peers/rust socketioxide-echo (built into $PEERS_TARGET)
#   socketioxide-relay  benches/peers/rust socketioxide-relay: the relay of sio-relay.js
#                     in socketioxide (built into $PEERS_TARGET)
#   node-echo         node benches/peers/node/sio-echo.js 127.0.0.1:PORT
# A server that is not available (binary missing, node_modules missing and
# npm ci failing) is skipped with a message; a server that does not start is
# recorded as an error and the run goes on.
#
# Environment:
#   SB_BIN_DIR     default ${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release
#   SWITCHBOARD    default $SB_BIN_DIR/switchboard
#   SB_SERVE_ARGS  extra arguments for `switchboard serve` (split on spaces)
#   SERVERS        comma list of the servers above (default switchboard,node)
#   PEERS_TARGET   cargo target directory of benches/peers/rust
#                  (default ~/.cache/switchboard-peers-target)
#   ROUNDS         rounds, server order alternating each round (default 2)
#   SETTLE_S       seconds between the last handshake and the RSS reading (default 5)
#   MORE           then open MORE further connections (a second opener) and
#                  report their own growth per connection too, the marginal
#                  cost without the process's fixed costs (code pages first
#                  touched, the first handshakes' freed memory); default 0: off
#   SIO_AUTH       JSON object sent as the CONNECT payload (40<json>), default none
#   SERVER_CPU / CLIENT_CPU  cores for the server and the opener (default 0 / 1)
#   OUT_DIR        results directory (default out/ at the repository root):
#                  sio_idle.json (summary), sio_idle-runs.jsonl, logs/sio_idle/
#
# Method: for each round and server, start the server pinned to SERVER_CPU,
# wait until it listens, wait 1 s and read its VmRSS (/proc/PID/status) as the
# baseline; benches/idle_conns.py --socketio (pinned to CLIENT_CPU) opens COUNT
# connections to /socket.io/?EIO=4&transport=websocket, each doing the Engine.IO
# open + Socket.IO CONNECT to "/" and then idling (answering Engine.IO pings);
# SETTLE_S after the last handshake read VmRSS again; bytes per connection =
# (rss - baseline) / connections opened. Then the opener closes everything and
# the server is stopped. Medians over rounds; ratio = node / switchboard, and
# each server's median against the smallest.
# Traffic goes to 127.0.0.x only; every wait is bounded.

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

case "${1:-}" in -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
COUNT="${1:-10000}"
[ $# -le 1 ] || { echo "usage: benches/sio_idle.sh [COUNT]" >&2; exit 2; }
SB_BIN_DIR="${SB_BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release}"
SWITCHBOARD="${SWITCHBOARD:-$SB_BIN_DIR/switchboard}"
SB_SERVE_ARGS="${SB_SERVE_ARGS:-}"
SERVERS="${SERVERS:-switchboard,node}"
PEERS_TARGET="${PEERS_TARGET:-$HOME/.cache/switchboard-peers-target}"
ROUNDS="${ROUNDS:-2}"
SETTLE_S="${SETTLE_S:-5}"
MORE="${MORE:-0}"
SIO_AUTH="${SIO_AUTH:-}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
OUT_DIR="${OUT_DIR:-$ROOT/out}"

BENCH_NAME=sio_idle.sh
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
int_in COUNT "$COUNT" 1 100000
int_in ROUNDS "$ROUNDS" 1 10
int_in SETTLE_S "$SETTLE_S" 0 120
int_in MORE "$MORE" 0 100000

command -v python3 >/dev/null || die "python3 not found"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
NCPU="$(nproc)"
[ "$SERVER_CPU" -lt "$NCPU" ] && [ "$CLIENT_CPU" -lt "$NCPU" ] || die "need cores $SERVER_CPU and $CLIENT_CPU, have $NCPU"

mkdir -p "$OUT_DIR/logs/sio_idle" || die "cannot create $OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
LOGS="$OUT_DIR/logs/sio_idle"
RUNS="$OUT_DIR/sio_idle-runs.jsonl"
SUMMARY="$OUT_DIR/sio_idle.json"
: >"$RUNS"


# ---------------------------------------------------------------- file limits
# COUNT descriptors in the server and in the opener (both inherit this limit).
NEED_FDS=$((COUNT + MORE + 1024))
raise_nofile "$NEED_FDS" \
  || log "warning: open-file limit is $SOFT_FDS (hard $HARD_FDS), below the $NEED_FDS needed; connections will fail"

# ---------------------------------------------------------------- servers
NODE_DIR="$HERE/peers/node"
available() {
  case "$1" in
    switchboard|switchboard-echo)
      [ -x "$SWITCHBOARD" ] || { log "switchboard binary '$SWITCHBOARD' not found: skipping it (build it, or set SB_BIN_DIR / SWITCHBOARD)"; return 1; } ;;
    socketioxide|socketioxide-relay)
      local bin=socketioxide-echo; [ "$1" = socketioxide-relay ] && bin=socketioxide-relay
      (cd "$HERE/peers/rust" && CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release --locked -q --bin "$bin") \
        >"$LOGS/peers-build.log" 2>&1 \
        || { log "building $bin failed (see $LOGS/peers-build.log): skipping it"; return 1; } ;;
    node|node-echo)
      command -v node >/dev/null || { log "node not found: skipping the Node peer"; return 1; }
      if [ ! -f "$NODE_DIR/node_modules/socket.io/package.json" ]; then
        log "installing the Node peer's dependencies (npm ci in benches/peers/node)"
        (cd "$NODE_DIR" && npm ci --no-audit --no-fund) >"$LOGS/npm-ci.log" 2>&1 \
          || { log "npm ci failed (see $LOGS/npm-ci.log): skipping the Node peer"; return 1; }
      fi ;;
    *) log "unknown server '$1' (switchboard, node, switchboard-echo, socketioxide, socketioxide-relay, node-echo)"; return 1 ;;
  esac
}
server_cmd() {  # NAME PORT -> one word per line
  case "$1" in
    switchboard) local extra=(); read -ra extra <<<"$SB_SERVE_ARGS"
                 printf '%s\n' "$SWITCHBOARD" serve --listen "127.0.0.1:$2" --api-key x --max-connections-per-ip 0 "${extra[@]}" ;;
    node) printf '%s\n' node "$NODE_DIR/sio-relay.js" "127.0.0.1:$2" ;;
    switchboard-echo) printf '%s\n' "$SWITCHBOARD" echo --socketio --workers 1 --listen "127.0.0.1:$2" ;;
    socketioxide) printf '%s\n' "$PEERS_TARGET/release/socketioxide-echo" "127.0.0.1:$2" ;;
    socketioxide-relay) printf '%s\n' "$PEERS_TARGET/release/socketioxide-relay" "127.0.0.1:$2" ;;
    node-echo) printf '%s\n' node "$NODE_DIR/sio-echo.js" "127.0.0.1:$2" ;;
  esac
}

IFS=',' read -ra WANT <<<"$SERVERS"
SERVER_LIST=()
for s in "${WANT[@]}"; do available "$s" && SERVER_LIST+=("$s"); done
[ "${#SERVER_LIST[@]}" -gt 0 ] || die "no server available"

# ---------------------------------------------------------------- helpers

# record KEY=VALUE... -> one JSON line in RUNS (numbers stay numbers when they look like one)
record() {
  python3 - "$@" >>"$RUNS" <<'EOF'
import json, re, sys
d = {}
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    d[k] = int(v) if re.fullmatch(r"-?\d+", v) else (float(v) if re.fullmatch(r"-?\d+\.\d+", v) else v)
print(json.dumps(d))
EOF
}

# ---------------------------------------------------------------- one run
run_one() {
  local round="$1" name="$2" port slog olog oout pid opid before after hwm ready="" final="" err=""
  port="$(free_port)"
  slog="$LOGS/server-$name-r$round.log"
  olog="$LOGS/opener-$name-r$round.log"
  oout="$LOGS/opener-$name-r$round.out"
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
    record round="$round" server="$name" error="server did not start (see $slog)"
    return
  fi
  sleep 1
  before="$(rss_kb "$pid")"
  local sources=$(( (COUNT + 19999) / 20000 ))
  local auth=(); [ -n "$SIO_AUTH" ] && auth=(--auth "$SIO_AUTH")
  : >"$oout"
  taskset -c "$CLIENT_CPU" python3 "$HERE/idle_conns.py" --socketio --url "ws://127.0.0.1:$port/" \
    --count "$COUNT" --sources "$sources" "${auth[@]}" --hold 900 --open-timeout 300 >"$oout" 2>"$olog" &
  opid=$!
  STARTED_PIDS+=("$opid")
  for _ in $(seq 1 3200); do   # <= 320 s
    ready="$(grep -m1 '^READY' "$oout" 2>/dev/null)"
    [ -n "$ready" ] && break
    kill -0 "$opid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$ready" ] || err="opener did not report READY (see $olog)"
  sleep "$SETTLE_S"
  after="$(rss_kb "$pid")"
  local more_ready="" more_after="" more_opened="" marginal="" mpid
  if [ "$MORE" -gt 0 ] && [ -n "$ready" ]; then
    taskset -c "$CLIENT_CPU" python3 "$HERE/idle_conns.py" --socketio --url "ws://127.0.0.1:$port/" \
      --count "$MORE" --sources "$(( (MORE + 19999) / 20000 ))" "${auth[@]}" --hold 900 --open-timeout 300 \
      >"$oout.more" 2>"$olog.more" &
    mpid=$!
    STARTED_PIDS+=("$mpid")
    for _ in $(seq 1 3200); do
      more_ready="$(grep -m1 '^READY' "$oout.more" 2>/dev/null)"
      [ -n "$more_ready" ] && break
      kill -0 "$mpid" 2>/dev/null || break
      sleep 0.1
    done
    sleep "$SETTLE_S"
    more_after="$(rss_kb "$pid")"
    stop_pid "$mpid"
    more_opened="$(sed -n 's/.*opened=\([0-9]*\).*/\1/p' <<<"$more_ready")"
    if [ -n "$more_opened" ] && [ "$more_opened" -gt 0 ] && [ -n "$more_after" ] && [ -n "$after" ]; then
      marginal=$(( (more_after - after) * 1024 / more_opened ))
    fi
    [ -n "$more_ready" ] || err="${err:+$err; }second opener did not report READY (see $olog.more)"
  fi
  hwm="$(hwm_kb "$pid")"
  kill -0 "$pid" 2>/dev/null || err="${err:+$err; }server exited (see $slog)"
  stop_pid "$opid"
  final="$(grep -m1 '^FINAL' "$oout" 2>/dev/null)"
  stop_pid "$pid"
  local opened failed alive elapsed per=""
  opened="$(sed -n 's/.*opened=\([0-9]*\).*/\1/p' <<<"$ready")"
  failed="$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$ready")"
  elapsed="$(sed -n 's/.*elapsed_s=\([0-9.]*\).*/\1/p' <<<"$ready")"
  alive="$(sed -n 's/.*alive=\([0-9]*\).*/\1/p' <<<"$final")"
  if [ -n "$opened" ] && [ "$opened" -gt 0 ] && [ -n "$before" ] && [ -n "$after" ]; then
    per=$(( (after - before) * 1024 / opened ))
  fi
  [ -z "$opened" ] || [ "$opened" = "$COUNT" ] || err="${err:+$err; }only $opened of $COUNT connections opened (see $olog)"
  [ -z "$alive" ] || [ -z "$opened" ] || [ "$alive" = "$opened" ] || err="${err:+$err; }only $alive of $opened still open at the end"
  record round="$round" server="$name" count="$COUNT" opened="${opened:-}" failed="${failed:-}" \
    alive_at_end="${alive:-}" open_elapsed_s="${elapsed:-}" rss_before_kb="${before:-}" \
    rss_after_kb="${after:-}" hwm_kb="${hwm:-}" bytes_per_conn="$per" \
    more_opened="${more_opened:-}" rss_after_more_kb="${more_after:-}" marginal_bytes_per_conn="$marginal" error="$err"
  log "  $name: baseline ${before:-?} KiB, with ${opened:-?} conns ${after:-?} KiB -> ${per:-?} B/conn${marginal:+; $more_opened more -> $marginal B/conn}${err:+ [$err]}"
}

# ---------------------------------------------------------------- rounds
log "$COUNT idle Socket.IO connections, ${#SERVER_LIST[@]} server(s) (${SERVER_LIST[*]}), $ROUNDS round(s), settle ${SETTLE_S}s"
n=${#SERVER_LIST[@]}
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS"
  for k in $(seq 0 $((n - 1))); do
    name="${SERVER_LIST[$(( (k + round - 1) % n ))]}"
    run_one "$round" "$name"
    sleep 1
  done
done

# ---------------------------------------------------------------- summary
SB_VERSION=""; [ -x "$SWITCHBOARD" ] && SB_VERSION="$(timeout 5 "$SWITCHBOARD" --version 2>/dev/null | head -n1)"
NODE_VERSION="$(node --version 2>/dev/null || true)"
SIO_VERSION="$(cd "$NODE_DIR" && node -p 'require("socket.io/package.json").version' 2>/dev/null || true)"
GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)"
[ -n "$GIT_REV" ] && [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -n1)" ] && GIT_REV="$GIT_REV-dirty"
COUNT="$COUNT" MORE="$MORE" ROUNDS="$ROUNDS" SETTLE_S="$SETTLE_S" SWITCHBOARD="$SWITCHBOARD" SB_VERSION="$SB_VERSION" \
SB_SERVE_ARGS="$SB_SERVE_ARGS" NODE_VERSION="$NODE_VERSION" SIO_VERSION="$SIO_VERSION" GIT_REV="$GIT_REV" \
SERVER_CPU="$SERVER_CPU" CLIENT_CPU="$CLIENT_CPU" SOFT_FDS="$SOFT_FDS" \
python3 - "$RUNS" "$SUMMARY" <<'EOF'
import json, os, platform, statistics, sys
E = os.environ
count, rounds, settle = int(E["COUNT"]), int(E["ROUNDS"]), int(E["SETTLE_S"])
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
servers = {}
for r in runs:
    s = servers.setdefault(r["server"], {"bytes_per_conn": [], "marginal_bytes_per_conn": [], "errors": []})
    if r.get("error"):
        s["errors"].append(f"round {r['round']}: {r['error']}")
    if isinstance(r.get("bytes_per_conn"), int) and not r.get("error"):
        s["bytes_per_conn"].append(r["bytes_per_conn"])
    if isinstance(r.get("marginal_bytes_per_conn"), int) and not r.get("error"):
        s["marginal_bytes_per_conn"].append(r["marginal_bytes_per_conn"])
for s in servers.values():
    v = s["bytes_per_conn"]
    s["median_bytes_per_conn"] = statistics.median(v) if v else None
    m = s["marginal_bytes_per_conn"]
    s["median_marginal_bytes_per_conn"] = statistics.median(m) if m else None
sb = servers.get("switchboard", {}).get("median_bytes_per_conn")
nd = servers.get("node", {}).get("median_bytes_per_conn")
ratio = round(nd / sb, 2) if sb and nd and sb > 0 else None
summary = {
    "benchmark": "idle Socket.IO connections (EIO=4, WebSocket transport, namespace /)",
    "count": count, "more": int(E["MORE"]), "rounds": rounds, "settle_s": settle,
    "method": "(VmRSS after COUNT connections + settle - VmRSS baseline) / connections opened; median over rounds",
    "servers": servers,
    "ratio_node_over_switchboard": ratio,
    "meta": {
        "switchboard": E["SWITCHBOARD"], "switchboard_version": E["SB_VERSION"],
        "switchboard_args": ("serve --listen 127.0.0.1:PORT --api-key x " + E["SB_SERVE_ARGS"]).strip(),
        "node": E["NODE_VERSION"], "socket.io": E["SIO_VERSION"], "git_rev": E["GIT_REV"],
        "server_cpu": int(E["SERVER_CPU"]), "client_cpu": int(E["CLIENT_CPU"]), "nofile": E["SOFT_FDS"],
        "kernel": platform.release(), "cpus": os.cpu_count(),
    },
    "runs": runs,
}
with open(sys.argv[2], "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")
print()
print(f"idle Socket.IO memory, {count} connections, {rounds} round(s)")
print(f"{'server':<17} {'median B/conn':>14}  runs")
for name, s in servers.items():
    m = s["median_bytes_per_conn"]
    print(f"{name:<17} {('%.0f' % m) if m is not None else 'n/a':>14}  {s['bytes_per_conn']}")
    mm = s["median_marginal_bytes_per_conn"]
    if mm is not None:
        print(f"{'  next ' + str(E['MORE']):<17} {'%.0f' % mm:>14}  {s['marginal_bytes_per_conn']}")
    for e in s["errors"]:
        print(f"  error: {e}")
print(f"ratio node/switchboard: {ratio if ratio is not None else 'n/a'}")
medians = {n: s["median_bytes_per_conn"] for n, s in servers.items() if s["median_bytes_per_conn"]}
if len(medians) > 2:
    least = min(medians.values())
    print("against the smallest: " + ", ".join(f"{n} {m / least:.2f}x" for n, m in sorted(medians.items(), key=lambda kv: kv[1])))
print(f"summary: {sys.argv[2]}")
sys.exit(0 if any(s["bytes_per_conn"] for s in servers.values()) else 1)
EOF

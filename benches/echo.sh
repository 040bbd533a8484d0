#!/usr/bin/env bash
# Side-by-side WebSocket echo benchmark: switchboard vs tokio-tungstenite,
# fastwebsockets, Node's ws and uWebSockets (C++).
#
#   benches/echo.sh [--switchboard PATH] [--duration S] [--rounds N]
#                   [--servers LIST] [--rows LIST] [--idle-conns N] [--out DIR]
#                   [--no-load] [--no-idle] [--no-build]
#
# Every option has an environment twin (the flag wins):
#   SWITCHBOARD   path to the switchboard binary      (default: $CARGO_TARGET_DIR or
#                 target/, then release/switchboard)
#   SB_SERVER_ARGS  extra arguments for `switchboard echo` (default: none)
#   DURATION      seconds per measured run             (default: 10)
#   WARMUP        unmeasured seconds before each run   (default: 2; 0 disables)
#   ROUNDS        rounds over all rows x servers       (default: 3)
#   SERVERS       comma list from switchboard,tungstenite,fastwebsockets,node-ws,uws
#                 (default: all; uws is skipped unless built, see UWS_DIR)
#   UWS_DIR       a local uWebSockets checkout (with uSockets), outside this repo:
#                 benches/peers/uws/build.sh builds the uws-echo peer from it
#   ROWS          comma list of CONNSxBYTES[xIN_FLIGHT] (default: 100x20,10x1024,1x65536);
#                 IN_FLIGHT > 1 passes --in-flight (messages each connection keeps out)
#   IDLE_CONNS    idle connections for the memory row  (default: 10000)
#   IDLE_ROUNDS   rounds of the idle row               (default: 1)
#   OUT_DIR       results directory                    (default: out/echo-<timestamp>)
#   LOADGEN       load generator command prefix, called as
#                 $LOADGEN --url ws://ADDR --connections N --size B --duration S --json
#                 (default: "$SWITCHBOARD bench echo"). It must print one JSON object
#                 with at least messages, msgs_per_sec, p50_us, p99_us, max_us. If its
#                 --help mentions --warmup, it is given --warmup 0: the harness does
#                 its own warm-up, so the measured run and the server CPU window match.
#   SERVER_CPU / CLIENT_CPU   cores for server and load generator (default: 0 / 1)
#   PEERS_TARGET_DIR  cargo target dir of the peers (default: ~/.cache/switchboard-peers-target)
#
# Method. For each round, each row and each server (server order rotated every
# round so drift and noise hit everyone alike) a fresh server is started pinned to
# SERVER_CPU with `taskset`, the load generator pinned to CLIENT_CPU runs WARMUP
# then DURATION seconds of closed-loop echo, and we record the generator's msgs/s
# and latencies plus the server's CPU time (utime+stime from /proc/PID/stat, all
# threads) over the measured run, divided by the messages echoed: server CPU
# µs/msg. The idle row starts each server, opens IDLE_CONNS idle WebSocket
# connections from benches/idle_conns.py (on CLIENT_CPU) and reports the growth
# of the server's VmRSS per connection. Medians over rounds; ratios are
# peer / switchboard.
#
# Output in OUT_DIR: runs.jsonl (raw), results.json (meta + runs + summary),
# results.md (tables for docs/BENCHMARKS.md), logs/ (server and tool stderr).
# Traffic goes to 127.0.0.1 only. Every wait is bounded.

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

SWITCHBOARD="${SWITCHBOARD:-${CARGO_TARGET_DIR:-$ROOT/target}/release/switchboard}"
SB_SERVER_ARGS="${SB_SERVER_ARGS:-}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-3}"
SERVERS="${SERVERS:-switchboard,tungstenite,fastwebsockets,node-ws,uws}"
UWS_DIR="${UWS_DIR:-}"
ROWS="${ROWS:-100x20,10x1024,1x65536}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
IDLE_ROUNDS="${IDLE_ROUNDS:-1}"
OUT_DIR="${OUT_DIR:-}"
LOADGEN="${LOADGEN:-}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
PEERS_TARGET_DIR="${PEERS_TARGET_DIR:-$HOME/.cache/switchboard-peers-target}"
DO_LOAD=1
DO_IDLE=1
DO_BUILD=1

usage() { sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --switchboard) SWITCHBOARD="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --servers) SERVERS="$2"; shift 2 ;;
    --rows) ROWS="$2"; shift 2 ;;
    --idle-conns) IDLE_CONNS="$2"; shift 2 ;;
    --idle-rounds) IDLE_ROUNDS="$2"; shift 2 ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    --loadgen) LOADGEN="$2"; shift 2 ;;
    --no-load) DO_LOAD=0; shift ;;
    --no-idle) DO_IDLE=0; shift ;;
    --no-build) DO_BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "echo.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Hard caps so a typo cannot make an unbounded run.
BENCH_NAME=echo.sh
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
int_in DURATION "$DURATION" 1 600
int_in WARMUP "$WARMUP" 0 60
int_in ROUNDS "$ROUNDS" 1 20
int_in IDLE_CONNS "$IDLE_CONNS" 1 100000
int_in IDLE_ROUNDS "$IDLE_ROUNDS" 0 10


command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v python3 >/dev/null || die "python3 not found"
NCPU="$(nproc)"
[ "$SERVER_CPU" -lt "$NCPU" ] && [ "$CLIENT_CPU" -lt "$NCPU" ] || die "need cores $SERVER_CPU and $CLIENT_CPU, have $NCPU"
[ "$SERVER_CPU" != "$CLIENT_CPU" ] || log "warning: server and load generator share core $SERVER_CPU"

[ -n "$OUT_DIR" ] || OUT_DIR="$ROOT/out/echo-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR/logs" || die "cannot create $OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
RUNS="$OUT_DIR/runs.jsonl"
: > "$RUNS"
REPORT=(python3 "$HERE/echo_report.py")
CLK_TCK="$(getconf CLK_TCK)"


# ---------------------------------------------------------------- file limits
# The idle row needs IDLE_CONNS descriptors in the server and in the opener.
NEED_FDS=$((IDLE_CONNS + 1024))
raise_nofile "$NEED_FDS" || true
if [ "$DO_IDLE" = 1 ] && [ "$IDLE_ROUNDS" -gt 0 ] && [ "$SOFT_FDS" != unlimited ] && [ "$SOFT_FDS" -lt "$NEED_FDS" ]; then
  log "warning: open-file limit is $SOFT_FDS (hard $HARD_FDS), below the $NEED_FDS the idle row needs; it will report failures"
fi

# ---------------------------------------------------------------- peers
PEERS_BIN="$PEERS_TARGET_DIR/release"
build_peers() {
  if [ "$DO_BUILD" = 1 ]; then
    if [[ ",$SERVERS," == *,tungstenite,* || ",$SERVERS," == *,fastwebsockets,* ]]; then
      log "building Rust peers (cargo build --release --locked -j1, target $PEERS_TARGET_DIR)"
      (cd "$HERE/peers/rust" && CARGO_TARGET_DIR="$PEERS_TARGET_DIR" \
        cargo build --release --locked -j1 -q) >"$OUT_DIR/logs/build-peers.log" 2>&1 \
        || log "warning: peer build failed, see $OUT_DIR/logs/build-peers.log"
    fi
    if [[ ",$SERVERS," == *,uws,* ]] && [ -n "$UWS_DIR" ]; then
      log "building the uWebSockets peer from $UWS_DIR"
      PEERS_TARGET_DIR="$PEERS_TARGET_DIR" "$HERE/peers/uws/build.sh" >"$OUT_DIR/logs/build-uws.log" 2>&1 \
        || log "warning: uws-echo build failed, see $OUT_DIR/logs/build-uws.log"
    fi
    if [[ ",$SERVERS," == *,node-ws,* ]] && [ ! -f "$HERE/peers/node/node_modules/ws/package.json" ]; then
      log "installing node peer dependencies (npm ci)"
      (cd "$HERE/peers/node" && npm ci --no-audit --no-fund) >"$OUT_DIR/logs/npm-ci.log" 2>&1 \
        || log "warning: npm ci failed, see $OUT_DIR/logs/npm-ci.log"
    fi
  fi
}
build_peers

# Prints the server command for NAME listening on ADDR; fails if unavailable.
server_cmd() {
  local name="$1" addr="$2"
  case "$name" in
    switchboard) [ -x "$SWITCHBOARD" ] || return 1
                 local extra=(); read -ra extra <<<"$SB_SERVER_ARGS"
                 printf '%s\n' "$SWITCHBOARD" echo --listen "$addr" "${extra[@]}" ;;
    tungstenite) [ -x "$PEERS_BIN/tungstenite-echo" ] || return 1; printf '%s\n' "$PEERS_BIN/tungstenite-echo" --listen "$addr" ;;
    fastwebsockets) [ -x "$PEERS_BIN/fastwebsockets-echo" ] || return 1; printf '%s\n' "$PEERS_BIN/fastwebsockets-echo" --listen "$addr" ;;
    uws) [ -x "$PEERS_BIN/uws-echo" ] || return 1; printf '%s\n' "$PEERS_BIN/uws-echo" --listen "$addr" ;;
    node-ws) command -v node >/dev/null && [ -f "$HERE/peers/node/node_modules/ws/package.json" ] || return 1
             printf '%s\n' node "$HERE/peers/node/ws-echo.js" --listen "$addr" ;;
    *) return 1 ;;
  esac
}

IFS=',' read -ra WANT_SERVERS <<<"$SERVERS"
SERVER_LIST=()
for s in "${WANT_SERVERS[@]}"; do
  if server_cmd "$s" 127.0.0.1:1 >/dev/null; then SERVER_LIST+=("$s")
  else log "warning: server '$s' is not available, skipping it"; fi
done
[ "${#SERVER_LIST[@]}" -gt 0 ] || die "no server available"
HAVE_SB=0; [[ " ${SERVER_LIST[*]} " == *" switchboard "* ]] && HAVE_SB=1
[ "$HAVE_SB" = 1 ] || log "warning: switchboard binary '$SWITCHBOARD' not available: no ratios"

# ---------------------------------------------------------------- load generator
LOADGEN_EXTRA=()
if [ -n "$LOADGEN" ]; then
  read -ra LOADGEN_CMD <<<"$LOADGEN"
else
  LOADGEN_CMD=("$SWITCHBOARD" bench echo)
fi
if [ "$DO_LOAD" = 1 ]; then
  if ! [ -x "${LOADGEN_CMD[0]}" ] && ! command -v "${LOADGEN_CMD[0]}" >/dev/null; then
    log "warning: load generator '${LOADGEN_CMD[0]}' not found: skipping load rows (set LOADGEN=...)"
    DO_LOAD=0
  elif ! LOADGEN_HELP="$(timeout 10 "${LOADGEN_CMD[@]}" --help 2>&1)"; then
    log "warning: '${LOADGEN_CMD[*]} --help' failed: the load generator may not exist yet; load runs will record errors"
  elif [[ "$LOADGEN_HELP" == *--warmup* ]]; then
    LOADGEN_EXTRA=(--warmup 0)
  fi
fi

# ---------------------------------------------------------------- helpers
NEXT_PORT=$((20000 + RANDOM % 20000))
next_port() { NEXT_PORT=$((NEXT_PORT + 1)); [ "$NEXT_PORT" -lt 60000 ] || NEXT_PORT=20001; }


SERVER_PID=""
# start_server NAME PORT LOGFILE -> sets SERVER_PID; returns non-zero if it never listens
start_server() {
  local name="$1" port="$2" logf="$3" cmd i
  mapfile -t cmd < <(server_cmd "$name" "127.0.0.1:$port")
  taskset -c "$SERVER_CPU" "${cmd[@]}" >>"$logf" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  for i in $(seq 1 100); do   # <= 10 s
    port_open "$port" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- load rows
IFS=',' read -ra ROW_LIST <<<"$ROWS"
for row in "${ROW_LIST[@]}"; do
  [[ "$row" =~ ^[0-9]+x[0-9]+(x[0-9]+)?$ ]] || die "bad row '$row' (want CONNSxBYTES[xIN_FLIGHT])"
done

run_load() {
  local round="$1" row="$2" name="$3"
  local conns size in_flight port logf t0 t1 c0 c1 out rc err="" alive=1 genlog
  IFS=x read -r conns size in_flight <<<"$row"
  local pipelined=()
  [ "${in_flight:-1}" -gt 1 ] && pipelined=(--in-flight "$in_flight")
  next_port; port="$NEXT_PORT"
  logf="$OUT_DIR/logs/server-$name-$row-r$round.log"
  genlog="$OUT_DIR/logs/loadgen-$name-$row-r$round.log"
  if ! start_server "$name" "$port" "$logf"; then
    stop_pid "$SERVER_PID"
    "${REPORT[@]}" record-load --round "$round" --row "$row" --server "$name" --error="server did not start (see $logf)" >>"$RUNS"
    log "  $name: server did not start"
    return
  fi
  local url="ws://127.0.0.1:$port"
  if [ "$WARMUP" -gt 0 ]; then
    timeout $((WARMUP + 30)) taskset -c "$CLIENT_CPU" "${LOADGEN_CMD[@]}" --url "$url" \
      --connections "$conns" --size "$size" --duration "$WARMUP" "${pipelined[@]}" "${LOADGEN_EXTRA[@]}" --json >/dev/null 2>>"$genlog"
  fi
  c0="$(cpu_ticks "$SERVER_PID")"
  t0="$(date +%s.%N)"
  out="$(timeout $((DURATION + 60)) taskset -c "$CLIENT_CPU" "${LOADGEN_CMD[@]}" --url "$url" \
      --connections "$conns" --size "$size" --duration "$DURATION" "${pipelined[@]}" "${LOADGEN_EXTRA[@]}" --json 2>>"$genlog")"
  rc=$?
  t1="$(date +%s.%N)"
  c1="$(cpu_ticks "$SERVER_PID")"
  kill -0 "$SERVER_PID" 2>/dev/null || { alive=0; err="server exited during the run"; }
  local rss; rss="$(rss_kb "$SERVER_PID")"
  stop_pid "$SERVER_PID"
  [ "$rc" = 0 ] || err="${err:+$err; }load generator exit status $rc (see $genlog)"
  printf '%s\n' "$out" >>"$genlog"
  "${REPORT[@]}" record-load --round "$round" --row "$row" --server "$name" \
    --conns "$conns" --size "$size" --duration "$DURATION" --clk-tck "$CLK_TCK" \
    --ticks-before "${c0:-}" --ticks-after "${c1:-}" --wall-before "$t0" --wall-after "$t1" \
    --rss-kb "${rss:-}" --gen-output="$out" --error="$err" >>"$RUNS"
  tail -n1 "$RUNS" | "${REPORT[@]}" brief >&2
}

if [ "$DO_LOAD" = 1 ]; then
  total=$(( ROUNDS * ${#ROW_LIST[@]} * ${#SERVER_LIST[@]} ))
  log "load rows: $ROUNDS rounds x ${#ROW_LIST[@]} rows x ${#SERVER_LIST[@]} servers = $total runs of ${WARMUP}+${DURATION} s"
  n=${#SERVER_LIST[@]}
  for round in $(seq 1 "$ROUNDS"); do
    for row in "${ROW_LIST[@]}"; do
      log "round $round/$ROUNDS, row $row"
      for k in $(seq 0 $((n - 1))); do
        name="${SERVER_LIST[$(( (k + round - 1) % n ))]}"
        run_load "$round" "$row" "$name"
        sleep 0.5
      done
    done
  done
fi

# ---------------------------------------------------------------- idle row
run_idle() {
  local round="$1" name="$2" port logf ologf ofile before after hwm ready="" final="" err="" i sources
  next_port; port="$NEXT_PORT"
  logf="$OUT_DIR/logs/server-$name-idle-r$round.log"
  ologf="$OUT_DIR/logs/idle-opener-$name-r$round.log"
  ofile="$OUT_DIR/logs/idle-opener-$name-r$round.out"
  if ! start_server "$name" "$port" "$logf"; then
    stop_pid "$SERVER_PID"
    "${REPORT[@]}" record-idle --round "$round" --server "$name" --error="server did not start (see $logf)" >>"$RUNS"
    return
  fi
  sleep 1
  before="$(rss_kb "$SERVER_PID")"
  # one source address per 20k connections (the ephemeral port range is ~28k)
  sources=$(( (IDLE_CONNS + 19999) / 20000 ))
  : >"$ofile"
  taskset -c "$CLIENT_CPU" python3 "$HERE/idle_conns.py" --url "ws://127.0.0.1:$port/" \
    --count "$IDLE_CONNS" --sources "$sources" --hold 300 --open-timeout 180 >"$ofile" 2>"$ologf" &
  local opid=$!
  STARTED_PIDS+=("$opid")
  for i in $(seq 1 2000); do   # <= 200 s
    ready="$(grep -m1 '^READY' "$ofile" 2>/dev/null)"
    [ -n "$ready" ] && break
    kill -0 "$opid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$ready" ] || err="idle opener did not report READY (see $ologf)"
  sleep 2   # let the server settle (lazy allocations, deferred frees)
  after="$(rss_kb "$SERVER_PID")"
  hwm="$(hwm_kb "$SERVER_PID")"
  kill -0 "$SERVER_PID" 2>/dev/null || err="${err:+$err; }server exited"
  kill -TERM "$opid" 2>/dev/null
  for i in $(seq 1 300); do kill -0 "$opid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$opid" 2>/dev/null
  wait "$opid" 2>/dev/null
  final="$(grep -m1 '^FINAL' "$ofile" 2>/dev/null)"
  stop_pid "$SERVER_PID"
  "${REPORT[@]}" record-idle --round "$round" --server "$name" --target "$IDLE_CONNS" \
    --rss-before-kb "${before:-}" --rss-after-kb "${after:-}" --hwm-kb "${hwm:-}" \
    --ready="$ready" --final="$final" --error="$err" >>"$RUNS"
  tail -n1 "$RUNS" | "${REPORT[@]}" brief >&2
}

if [ "$DO_IDLE" = 1 ] && [ "$IDLE_ROUNDS" -gt 0 ]; then
  log "idle row: $IDLE_CONNS connections, $IDLE_ROUNDS round(s) x ${#SERVER_LIST[@]} servers"
  n=${#SERVER_LIST[@]}
  for round in $(seq 1 "$IDLE_ROUNDS"); do
    for k in $(seq 0 $((n - 1))); do
      name="${SERVER_LIST[$(( (k + round - 1) % n ))]}"
      run_idle "$round" "$name"
      sleep 1
    done
  done
fi

# ---------------------------------------------------------------- report
SB_VERSION=""
[ -x "$SWITCHBOARD" ] && SB_VERSION="$(timeout 5 "$SWITCHBOARD" --version 2>/dev/null | head -n1)"
GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)"
[ -n "$GIT_REV" ] && [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -n1)" ] && GIT_REV="$GIT_REV-dirty"
"${REPORT[@]}" summarize --runs "$RUNS" --out-dir "$OUT_DIR" \
  --peers-lock "$HERE/peers/rust/Cargo.lock" --node-dir "$HERE/peers/node" \
  --switchboard "$SWITCHBOARD" --switchboard-version="$SB_VERSION" --git-rev="$GIT_REV" \
  --loadgen="${LOADGEN_CMD[*]}${LOADGEN_EXTRA[*]:+ ${LOADGEN_EXTRA[*]}}" --servers "$(IFS=,; echo "${SERVER_LIST[*]}")" \
  --rows "$ROWS" --rounds "$ROUNDS" --duration "$DURATION" --warmup "$WARMUP" \
  --idle-conns "$IDLE_CONNS" --idle-rounds "$IDLE_ROUNDS" \
  --server-cpu "$SERVER_CPU" --client-cpu "$CLIENT_CPU" --clk-tck "$CLK_TCK" \
  --nofile "$SOFT_FDS" --uws-version="$(cat "$PEERS_BIN/uws-echo.version" 2>/dev/null)" || die "report failed"
log "results: $OUT_DIR/results.json, $OUT_DIR/results.md"
cat "$OUT_DIR/results.md"

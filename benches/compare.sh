#!/usr/bin/env bash
# Every side-by-side comparison of issue 8 in one run, then the section
# "Latest side-by-side run" of docs/BENCHMARKS.md (medians, ratios, each
# target against this run's figures, versions, machine) and its charts in
# docs/img/ — written by benches/compare_report.py.
#
#   benches/compare.sh                 # the full run, ~45 min on 2 cores
#   QUICK=1 DOC=0 benches/compare.sh   # a smoke run of every part, ~6 min, docs untouched
#
# Parts, in this order (PARTS picks some):
#   echo      benches/echo.sh: raw WebSocket echo against tokio-tungstenite,
#             fastwebsockets, Node ws and uWebSockets (when built, see UWS_DIR),
#             closed loop and pipelined rows, and the idle-connection row
#   sio-echo  benches/sio_echo.sh: Socket.IO emit-with-ack round trips against
#             Node socket.io and socketioxide
#   sio-idle  benches/sio_idle.sh: idle Socket.IO memory, switchboard's relay and
#             echo server against Node socket.io and socketioxide (relay and echo each)
#   fanout    benches/fanout.sh: room fan-out, switchboard serve (native and
#             Socket.IO) against the Node socket.io and socketioxide relays,
#             and the floor (benches/fanout_floor.sh) that no server goes below
#
# Environment:
#   PARTS        comma list of the parts above (default all four)
#   ROUNDS       rounds of every part (default 3; QUICK: 1)
#   DURATION     measured seconds per run of echo and sio-echo (default 10; QUICK: 2)
#   ECHO_ROWS    echo rows (default 100x20,10x1024,1x65536,100x20x4,100x20x16)
#   IDLE_CONNS   idle connections of echo and sio-idle (default 10000; QUICK: 1000)
#   SUBSCRIBERS  fan-out subscribers (default 10000; QUICK: 1000)
#   FANOUT_RATES fan-out publish rates, msg/s (default 10)
#   FANOUT_DURATION  measured seconds per fan-out run (default 10; QUICK: 3)
#   UWS_DIR      a local uWebSockets checkout outside this repository (see
#                benches/peers/uws/build.sh); without it and without a built
#                uws-echo, the uWebSockets peer is skipped and the report says so
#   DOC          1 (default): rewrite the section in docs/BENCHMARKS.md and the
#                charts in docs/img/; 0: write them only into OUT_DIR
#   OUT_DIR      results directory (default out/compare-<timestamp>)
#   SWITCHBOARD  the binary (default $CARGO_TARGET_DIR/release/switchboard, built if missing)
#
# Each part keeps its own method (see its --help and benches/README.md): a
# fresh server per run pinned to core 0, the load generator pinned to core 1,
# servers alternating in rotated order every round, medians over rounds. A
# part that fails is reported as missing; the others still run and report.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
case "${1:-}" in -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -eq 0 ] || { echo "usage: benches/compare.sh (settings in the environment; --help)" >&2; exit 2; }

QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then q_rounds=1 q_dur=2 q_idle=1000 q_subs=1000 q_fdur=3; else q_rounds=3 q_dur=10 q_idle=10000 q_subs=10000 q_fdur=10; fi
PARTS="${PARTS:-echo,sio-echo,sio-idle,fanout}"
ROUNDS="${ROUNDS:-$q_rounds}"
DURATION="${DURATION:-$q_dur}"
ECHO_ROWS="${ECHO_ROWS:-100x20,10x1024,1x65536,100x20x4,100x20x16}"
IDLE_CONNS="${IDLE_CONNS:-$q_idle}"
SUBSCRIBERS="${SUBSCRIBERS:-$q_subs}"
FANOUT_RATES="${FANOUT_RATES:-10}"
FANOUT_DURATION="${FANOUT_DURATION:-$q_fdur}"
DOC="${DOC:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
SWITCHBOARD="${SWITCHBOARD:-$CARGO_TARGET_DIR/release/switchboard}"
OUT_DIR="${OUT_DIR:-$ROOT/out/compare-$(date +%Y%m%d-%H%M%S)}"

BENCH_NAME=compare.sh
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
int_in ROUNDS "$ROUNDS" 1 20
int_in DURATION "$DURATION" 1 600
int_in IDLE_CONNS "$IDLE_CONNS" 1 100000
int_in SUBSCRIBERS "$SUBSCRIBERS" 1 100000
int_in FANOUT_DURATION "$FANOUT_DURATION" 1 3600
IFS=',' read -ra PART_LIST <<<"$PARTS"
for p in "${PART_LIST[@]}"; do
  case "$p" in echo|sio-echo|sio-idle|fanout) ;; *) echo "compare.sh: unknown part '$p' (echo, sio-echo, sio-idle, fanout)" >&2; exit 2 ;; esac
done
case "$DOC" in 0|1) ;; *) echo "compare.sh: DOC must be 0 or 1 (got '$DOC')" >&2; exit 2 ;; esac
command -v python3 >/dev/null || die "python3 not found"

if [ ! -x "$SWITCHBOARD" ]; then
  log "building $SWITCHBOARD"
  (cd "$ROOT" && cargo build --release --locked -q -p switchboard-cli) || die "cargo build failed"
fi
mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
log "parts ${PARTS}, $ROUNDS round(s) -> $OUT_DIR"

started=$(date +%s)
part() {  # NAME COMMAND... : runs one part, its output in OUT_DIR/NAME.log
  local name="$1"; shift
  log "part $name"
  if "$@" >"$OUT_DIR/$name.log" 2>&1; then
    log "part $name done ($(( $(date +%s) - started )) s so far)"
  else
    log "part $name failed (exit $?): see $OUT_DIR/$name.log; the report marks it missing"
  fi
}

for p in "${PART_LIST[@]}"; do
  case "$p" in
    echo)
      part echo env SWITCHBOARD="$SWITCHBOARD" SB_SERVER_ARGS="--no-deflate --workers 1" \
        DURATION="$DURATION" ROUNDS="$ROUNDS" ROWS="$ECHO_ROWS" IDLE_CONNS="$IDLE_CONNS" \
        OUT_DIR="$OUT_DIR/echo" "$HERE/echo.sh" ;;
    sio-echo)
      part sio-echo env SB_BIN="$SWITCHBOARD" OUT_DIR="$OUT_DIR/sio-echo" \
        "$HERE/sio_echo.sh" "$ROUNDS" "$DURATION" ;;
    sio-idle)
      part sio-idle env SWITCHBOARD="$SWITCHBOARD" ROUNDS="$ROUNDS" OUT_DIR="$OUT_DIR/sio-idle" \
        SERVERS=switchboard,switchboard-echo,socketioxide-relay,socketioxide,node,node-echo \
        "$HERE/sio_idle.sh" "$IDLE_CONNS" ;;
    fanout)
      part fanout env SWITCHBOARD="$SWITCHBOARD" ROUNDS="$ROUNDS" SUBSCRIBERS="$SUBSCRIBERS" \
        RATES="$FANOUT_RATES" DURATION="$FANOUT_DURATION" OUT_DIR="$OUT_DIR/fanout" \
        "$HERE/fanout.sh" ;;
  esac
done

report=(python3 "$HERE/compare_report.py" "$OUT_DIR" --chart-bin "$SWITCHBOARD")
[ "$DOC" = 1 ] && report+=(--doc "$ROOT/docs/BENCHMARKS.md" --img "$ROOT/docs/img")
"${report[@]}" || die "the report failed"
log "done in $(( $(date +%s) - started )) s: $OUT_DIR/section.md"

#!/usr/bin/env bash
# Run the official Socket.IO protocol test suites against switchboard.
#
#   tests/protocol-suites/run.sh SOCKETIO_CHECKOUT [engine|socketio|all]
#
# SOCKETIO_CHECKOUT is a copy of the socket.io repository (github.com/socketio/
# socket.io) OUTSIDE this repository: either a normal checkout (a directory with
# docs/engine.io-protocol/v4-test-suite/) or a git directory without a work tree
# (a bare clone / mirror), from which the two suite folders are exported with
# `git archive`. The suites are the Socket.IO project's code: they are copied
# into a work directory outside this repository and run there, never committed.
#
#   engine    docs/engine.io-protocol/v4-test-suite  vs  examples/engineio-test-server 3000
#   socketio  docs/socket.io-protocol/v5-test-suite  vs  examples/socketio-test-server 3000
#   all       both (default)
#
# Both suites hard-code http://localhost:3000, so port 3000 must be free.
# For each suite: `npm ci` in its folder (skipped when node_modules already
# matches package-lock.json), start the server, wait for the port, run
# `mocha test-suite.js --reporter json --exit`, stop the server, print
# `<suite>: P passing, F failing` and the failing tests. The last line is
# `protocol-suites: N passed, M failed`. Exit status 0 only if every selected
# suite ran and nothing failed.
#
# Environment:
#   SB_BIN_DIR          where our binaries are (default
#                       ${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release)
#   ENGINE_SERVER_CMD   server command for the engine suite, the port is appended
#                       (default "$SB_BIN_DIR/examples/engineio-test-server")
#   SOCKETIO_SERVER_CMD same for the socketio suite
#                       (default "$SB_BIN_DIR/examples/socketio-test-server")
#                       Both are split on spaces (no quoting); use them to run the
#                       suites against a reference server for a baseline.
#   SUITES_WORK_DIR     work directory (default ~/.cache/switchboard-suites); must be
#                       outside this repository
#   SUITES_REV          revision to export from a git directory (default HEAD)
#   NPM_CI              "always" to run npm ci even when node_modules is current
#   MOCHA_ARGS          extra mocha arguments, e.g. "--grep heartbeat"
#   SUITE_TIMEOUT_S     limit for one mocha run (default 300)

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PORT=3000   # hard-coded in both test-suite.js files

usage() { sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; }
log() { printf '[protocol-suites] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
SRC="$1"
WHICH="${2:-all}"
case "$WHICH" in
  engine) SUITES=(engine) ;;
  socketio) SUITES=(socketio) ;;
  all) SUITES=(engine socketio) ;;
  *) die "unknown suite '$WHICH' (engine, socketio or all)" ;;
esac
[ $# -le 2 ] || die "too many arguments (see --help)"

SB_BIN_DIR="${SB_BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release}"
ENGINE_SERVER_CMD="${ENGINE_SERVER_CMD:-$SB_BIN_DIR/examples/engineio-test-server}"
SOCKETIO_SERVER_CMD="${SOCKETIO_SERVER_CMD:-$SB_BIN_DIR/examples/socketio-test-server}"
WORK="${SUITES_WORK_DIR:-$HOME/.cache/switchboard-suites}"
SUITES_REV="${SUITES_REV:-HEAD}"
SUITE_TIMEOUT_S="${SUITE_TIMEOUT_S:-300}"
[[ "$SUITE_TIMEOUT_S" =~ ^[0-9]+$ ]] && [ "$SUITE_TIMEOUT_S" -ge 10 ] && [ "$SUITE_TIMEOUT_S" -le 3600 ] \
  || die "SUITE_TIMEOUT_S must be an integer in 10..3600"

command -v node >/dev/null || die "node not found (Node.js >= 18 is needed)"
command -v npm >/dev/null || die "npm not found"
command -v tar >/dev/null || die "tar not found"

suite_dir() {
  case "$1" in
    engine) echo docs/engine.io-protocol/v4-test-suite ;;
    socketio) echo docs/socket.io-protocol/v5-test-suite ;;
  esac
}
server_cmd() {
  case "$1" in
    engine) echo "$ENGINE_SERVER_CMD" ;;
    socketio) echo "$SOCKETIO_SERVER_CMD" ;;
  esac
}

# ---------------------------------------------------------------- work dir
# Absolute path without requiring it to exist (realpath -m).
abspath() { realpath -m -- "$1"; }
inside() { case "$1/" in "$2"/*) return 0 ;; *) return 1 ;; esac; }

WORK="$(abspath "$WORK")"
ROOT_REAL="$(abspath "$ROOT")"
inside "$WORK" "$ROOT_REAL" && die "SUITES_WORK_DIR ($WORK) is inside this repository: the suites must stay outside it"
mkdir -p "$WORK" || die "cannot create $WORK"
[ -e "$SRC" ] || die "$SRC does not exist"
SRC="$(abspath "$SRC")"
inside "$SRC" "$ROOT_REAL" && die "$SRC is inside this repository: keep the socket.io copy outside it"
LOGS="$WORK/logs"
RESULTS="$WORK/results"
mkdir -p "$LOGS" "$RESULTS" || die "cannot create $LOGS"

# ---------------------------------------------------------------- cleanup
SERVER_PID=""
stop_server() {
  local pid="$SERVER_PID"
  SERVER_PID=""
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}
trap stop_server EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- export suites
# Replace everything of a suite folder except node_modules (kept for npm ci's
# skip check below), then copy the suite in.
export_suites() {
  local paths=() s d
  for s in "${SUITES[@]}"; do paths+=("$(suite_dir "$s")"); done
  for d in "${paths[@]}"; do
    mkdir -p "$WORK/$d" || die "cannot create $WORK/$d"
    find "$WORK/$d" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
  done
  if [ -f "$SRC/${paths[0]}/test-suite.js" ]; then
    log "copying ${paths[*]} from the checkout $SRC"
    for d in "${paths[@]}"; do
      [ -f "$SRC/$d/test-suite.js" ] || die "$SRC/$d/test-suite.js not found"
    done
    tar -C "$SRC" --exclude=node_modules -cf - "${paths[@]}" | tar -xf - -C "$WORK" \
      || die "copying the suites from $SRC failed"
    SRC_DESC="checkout $SRC ($(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo 'not a git work tree'))"
  elif git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    local rev
    rev="$(git -C "$SRC" rev-parse --verify -q "$SUITES_REV^{commit}")" || die "$SUITES_REV is not a commit in $SRC"
    log "exporting ${paths[*]} from git directory $SRC at ${rev:0:12}"
    # stderr to a log: on a partial mirror (large blobs absent) git archive warns
    # about blobs outside the requested paths and still succeeds.
    if ! git -C "$SRC" archive "$rev" "${paths[@]}" 2>"$LOGS/git-archive.log" | tar -xf - -C "$WORK"; then
      cat "$LOGS/git-archive.log" >&2
      die "git archive of the suites from $SRC failed"
    fi
    SRC_DESC="git $SRC at ${rev:0:12}"
  else
    die "$SRC is neither a socket.io checkout (no ${paths[0]}/test-suite.js) nor a git directory"
  fi
  for d in "${paths[@]}"; do
    [ -f "$WORK/$d/test-suite.js" ] && [ -f "$WORK/$d/package-lock.json" ] \
      || die "$WORK/$d lacks test-suite.js or package-lock.json"
  done
}

# npm ci unless node_modules was installed from this very package-lock.json.
install_suite() {
  local dir="$1" name="$2" sum stamp
  sum="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  stamp="$dir/node_modules/.switchboard-lock.sha256"
  if [ "${NPM_CI:-}" != always ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] \
     && [ -x "$dir/node_modules/.bin/mocha" ]; then
    log "$name: node_modules is current, skipping npm ci"
    return 0
  fi
  log "$name: npm ci"
  if ! (cd "$dir" && npm ci --silent --no-audit --no-fund) >"$LOGS/$name-npm-ci.log" 2>&1; then
    log "$name: npm ci failed:"
    tail -n 30 "$LOGS/$name-npm-ci.log" >&2
    return 1
  fi
  echo "$sum" >"$stamp"
}

# ---------------------------------------------------------------- server
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || (exec 3<>"/dev/tcp/::1/$1") 2>/dev/null
}

# start_server NAME LOGFILE: sets SERVER_PID, returns non-zero unless port 3000 listens.
start_server() {
  local name="$1" logf="$2" cmd
  read -ra cmd <<<"$(server_cmd "$name")"
  if ! [ -x "${cmd[0]}" ] && ! command -v "${cmd[0]}" >/dev/null 2>&1; then
    log "$name: server '${cmd[0]}' not found (build it, or set SB_BIN_DIR / ${name^^}_SERVER_CMD)"
    return 1
  fi
  log "$name: starting ${cmd[*]} $PORT"
  "${cmd[@]}" "$PORT" >"$logf" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 150); do   # <= 15 s
    port_open "$PORT" && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "$name: server exited before listening on port $PORT; its log:"
      tail -n 30 "$logf" >&2
      return 1
    fi
    sleep 0.1
  done
  log "$name: server did not listen on port $PORT within 15 s; its log:"
  tail -n 30 "$logf" >&2
  return 1
}

# ---------------------------------------------------------------- report
# summarize NAME JSON -> prints "<name>: P passing, F failing" and failing titles;
# last stdout line "P F" for the caller.
summarize() {
  node - "$1" "$2" <<'EOF'
const fs = require("fs");
const [name, file] = process.argv.slice(2);
let r;
try {
  const text = fs.readFileSync(file, "utf8");
  // mocha's json reporter prints one object; tolerate stray lines before it.
  r = JSON.parse(text.slice(text.indexOf("{")));
} catch (e) {
  console.error(`${name}: no mocha JSON report in ${file} (${e.message})`);
  console.log("ERR");
  process.exit(0);
}
const s = r.stats || {};
const passing = s.passes || 0;
const failing = s.failures || 0;
const pending = s.pending || 0;
console.error(`${name}: ${passing} passing, ${failing} failing${pending ? `, ${pending} pending` : ""}`);
for (const f of r.failures || []) {
  const msg = ((f.err && f.err.message) || "").split("\n")[0].slice(0, 200);
  console.error(`  FAIL ${f.fullTitle}${msg ? `\n       ${msg}` : ""}`);
}
console.log(`${passing} ${failing}`);
EOF
}

# ---------------------------------------------------------------- run
if port_open "$PORT"; then
  die "something already listens on port $PORT; the suites need it (they hard-code http://localhost:$PORT)"
fi

SRC_DESC=""
export_suites
log "suites from $SRC_DESC, work dir $WORK"

# Node >= 17 returns addresses in resolver order: on a host whose /etc/hosts
# maps localhost to ::1 first, the suites would miss a server that listens on
# 127.0.0.1 only. Prefer IPv4 for localhost.
export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--dns-result-order=ipv4first"

TOTAL_P=0
TOTAL_F=0
BROKEN=0
LINES=()
for s in "${SUITES[@]}"; do
  dir="$WORK/$(suite_dir "$s")"
  json="$RESULTS/$s.json"
  rm -f "$json"
  if ! install_suite "$dir" "$s"; then
    LINES+=("$s: not run (npm ci failed, see $LOGS/$s-npm-ci.log)"); BROKEN=1; continue
  fi
  if port_open "$PORT"; then
    LINES+=("$s: not run (port $PORT is busy)"); BROKEN=1; continue
  fi
  if ! start_server "$s" "$LOGS/$s-server.log"; then
    stop_server
    LINES+=("$s: not run (server did not start)"); BROKEN=1; continue
  fi
  extra=(); read -ra extra <<<"${MOCHA_ARGS:-}"
  log "$s: mocha test-suite.js"
  t0=$SECONDS
  (cd "$dir" && timeout -k 5 "$SUITE_TIMEOUT_S" node_modules/.bin/mocha test-suite.js \
      --reporter json --exit "${extra[@]}") >"$json" 2>"$LOGS/$s-mocha.log"
  rc=$?
  [ "$rc" = 124 ] && log "$s: mocha did not finish within ${SUITE_TIMEOUT_S}s"
  server_alive=1; kill -0 "$SERVER_PID" 2>/dev/null || server_alive=0
  stop_server
  res="$(summarize "$s" "$json" 2>"$LOGS/$s-summary.txt")"
  cat "$LOGS/$s-summary.txt"
  [ "$server_alive" = 1 ] || echo "  (the server had exited before the suite finished; see $LOGS/$s-server.log)"
  if [ "$res" = ERR ] || [ -z "$res" ]; then
    log "$s: mocha exit status $rc; its stderr:"
    tail -n 30 "$LOGS/$s-mocha.log" >&2
    LINES+=("$s: no result (mocha exit status $rc)"); BROKEN=1; continue
  fi
  read -r p f <<<"$res"
  TOTAL_P=$((TOTAL_P + p)); TOTAL_F=$((TOTAL_F + f))
  LINES+=("$s: $p passing, $f failing (in $((SECONDS - t0)) s)")
done

echo
for l in "${LINES[@]}"; do echo "$l"; done
echo "reports: $RESULTS/<suite>.json, logs: $LOGS/"
echo "protocol-suites: $TOTAL_P passed, $TOTAL_F failed"
[ "$TOTAL_F" = 0 ] && [ "$BROKEN" = 0 ]

#!/usr/bin/env bash
# Autobahn conformance run against our WebSocket server.
#
#   tests/autobahn/server.sh BIN [EXTRA_SERVER_ARGS...]
#
# Starts `BIN echo --listen 127.0.0.1:PORT [EXTRA_SERVER_ARGS...]` on a free
# port, drives it with `kosoku 127.0.0.1:PORT` (Autobahn fuzzingclient mode,
# whole suite 1-13 incl. permessage-deflate 12.x/13.x), stops it and judges
# the report with check_report.py. Exit status 0 only if every case passed.
#
# Environment:
#   OUT_DIR                 reports go to $OUT_DIR/autobahn/server (default $PWD/out)
#   AUTOBAHN_CASES          space-separated kosoku -i patterns, e.g. "1.* 9.7.*"
#   AUTOBAHN_EXCLUDE        space-separated kosoku -x patterns
#   AUTOBAHN_PARALLELISM    kosoku -p (default 2)
#   AUTOBAHN_STARTUP_TIMEOUT seconds to wait for BIN to listen (default 30)
#   KOSOKU, PYTHON          commands to use (default kosoku, python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
    exit 2
fi
bin=$1
shift
if [[ "$bin" == */* && ! -x "$bin" ]]; then
    echo "autobahn-server: $bin is not an executable file" >&2
    exit 2
fi

out_root="${OUT_DIR:-$PWD/out}/autobahn"
report_dir="$out_root/server"
sut_log="$out_root/server-sut.log"
kosoku_log="$out_root/server-kosoku.log"
parallelism="${AUTOBAHN_PARALLELISM:-2}"
build_select_args

mkdir -p "$out_root"
rm -rf "$report_dir"
: >"$sut_log"
: >"$kosoku_log"

sut_pid=""
kosoku_pid=""
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$kosoku_pid" ]] && stop_group "$kosoku_pid" 2
    [[ -n "$sut_pid" ]] && stop_group "$sut_pid" 5
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$(now_s)
port=$(free_port)

# setsid: the server gets its own process group, so a wrapper (e.g. a script
# that runs the real binary) is stopped together with its children.
setsid "$bin" echo --listen "127.0.0.1:$port" "$@" >"$sut_log" 2>&1 </dev/null &
sut_pid=$!
if ! wait_for_port "$port" "$sut_pid" "${AUTOBAHN_STARTUP_TIMEOUT:-30}" "server ($bin)"; then
    show_log "$sut_log" "server output"
    echo "autobahn-server: 0 passed, 1 failed"
    exit 1
fi

t1=$(now_s)
# kosoku exits 1 whenever any case is not a pass (including its own runner
# faults), so its status is not the verdict: check_report.py is.
set +e
setsid "$KOSOKU" "127.0.0.1:$port" -p "$parallelism" -o "$report_dir" \
    "${SELECT_ARGS[@]}" >"$kosoku_log" 2>&1 </dev/null &
kosoku_pid=$!
wait "$kosoku_pid"
kosoku_rc=$?
kosoku_pid=""
set -e
t2=$(now_s)

sut_crashed=0
if ! kill -0 "$sut_pid" 2>/dev/null; then
    sut_crashed=1
    wait "$sut_pid" 2>/dev/null && sut_rc=0 || sut_rc=$?
    sut_pid=""
    echo "autobahn-server: FAIL: the server under test exited during the run (status $sut_rc)"
else
    stop_group "$sut_pid" 5
    sut_pid=""
fi

set +e
"$PYTHON" "$here/check_report.py" "$report_dir" --name autobahn-server "${SELECT_ARGS[@]}" \
    >"$out_root/server-summary.txt" 2>&1
check_rc=$?
set -e

if [[ $check_rc -ne 0 || $sut_crashed -ne 0 ]]; then
    [[ $kosoku_rc -gt 1 ]] && echo "autobahn-server: kosoku itself exited with status $kosoku_rc"
    show_log "$kosoku_log" "kosoku output" 30
    show_log "$sut_log" "server output" 40
fi
echo "autobahn-server: server startup $((t1 - t0))s, kosoku run $((t2 - t1))s (-p $parallelism), total $(($(now_s) - t0))s; report: $report_dir/index.html"
# Summary last, so its closing `autobahn-server: N passed, M failed` line ends the output.
if [[ $sut_crashed -ne 0 && $check_rc -eq 0 ]]; then
    sed '$d' "$out_root/server-summary.txt"
    # Every case passed, yet the server died: count the crash as one failure.
    tail -n 1 "$out_root/server-summary.txt" | sed -E 's/([0-9]+) failed/1 failed/'
    exit 1
fi
cat "$out_root/server-summary.txt"
exit "$check_rc"

#!/usr/bin/env bash
# Autobahn conformance run against our WebSocket client.
#
#   tests/autobahn/client.sh CLIENT_CMD [ARGS...]
#
# Starts `kosoku -m fuzzingserver 127.0.0.1:PORT` (whole suite 1-13) on a free
# port, runs `CLIENT_CMD ARGS... ws://127.0.0.1:PORT` (the URL is appended as
# the last argument), which must speak the Autobahn client protocol:
#   GET /getCaseCount                  -> one text message: the case count N
#   GET /runCase?case=I&agent=NAME     for I in 1..N: echo every message back
#   GET /updateReports?agent=NAME      kosoku writes the report and exits
# then makes sure the report is written (sending /updateReports itself if the
# client did not) and judges it with check_report.py.
# Exit status 0 only if every case passed and the client exited 0.
#
# Example:
#   tests/autobahn/client.sh target/release/examples/autobahn-client
#   tests/autobahn/client.sh cargo run --release --example autobahn-client --
#
# Environment:
#   OUT_DIR                  reports go to $OUT_DIR/autobahn/client (default $PWD/out)
#   AUTOBAHN_CASES           space-separated kosoku -i patterns, e.g. "1.* 9.7.*"
#   AUTOBAHN_EXCLUDE         space-separated kosoku -x patterns
#   AUTOBAHN_CLIENT_TIMEOUT  seconds the client command may run (default 2400)
#   KOSOKU, PYTHON           commands to use (default kosoku, python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
    exit 2
fi

out_root="${OUT_DIR:-$PWD/out}/autobahn"
report_dir="$out_root/client"
fuzz_log="$out_root/client-kosoku.log"
client_log="$out_root/client-cmd.log"
client_timeout="${AUTOBAHN_CLIENT_TIMEOUT:-2400}"
build_select_args

mkdir -p "$out_root"
rm -rf "$report_dir"
: >"$fuzz_log"
: >"$client_log"

fuzz_pid=""
client_pid=""
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$client_pid" ]] && stop_group "$client_pid" 5
    [[ -n "$fuzz_pid" ]] && stop_group "$fuzz_pid" 2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Ask the fuzzing server to write its report and exit, as a finished client
# would: a bare WebSocket handshake on /updateReports (stdlib only).
send_update_reports() {
    "$PYTHON" - "$1" <<'EOF'
import base64, os, socket, sys
port = int(sys.argv[1])
key = base64.b64encode(os.urandom(16)).decode()
req = (f"GET /updateReports?agent=client.sh HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
       f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
try:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(req.encode())
        while s.recv(65536):  # kosoku drops the connection once it is done
            pass
except OSError as e:
    print(f"updateReports: {e}", file=sys.stderr)
EOF
}

# wait_exit PID SECONDS: true once PID has exited (reaped), false on timeout.
wait_exit() {
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

t0=$(now_s)
port=$(free_port)
url="ws://127.0.0.1:$port"

setsid "$KOSOKU" -m fuzzingserver "127.0.0.1:$port" -o "$report_dir" "${SELECT_ARGS[@]}" \
    >"$fuzz_log" 2>&1 </dev/null &
fuzz_pid=$!
if ! wait_for_port "$port" "$fuzz_pid" 30 "kosoku fuzzingserver"; then
    show_log "$fuzz_log" "kosoku output"
    echo "autobahn-client: 0 passed, 1 failed"
    exit 1
fi

t1=$(now_s)
set +e
setsid timeout -k 10 "$client_timeout" "$@" "$url" >"$client_log" 2>&1 </dev/null &
client_pid=$!
wait "$client_pid"
client_rc=$?
client_pid=""
set -e
t2=$(now_s)

problems=()
[[ $client_rc -eq 124 ]] && problems+=("client command timed out after ${client_timeout}s")
[[ $client_rc -ne 0 && $client_rc -ne 124 ]] && problems+=("client command exited with status $client_rc")

# A finished client sends /updateReports, after which kosoku writes the report
# and exits by itself. kosoku ignores SIGINT and a SIGTERM kills it without a
# report, so if it is still up, end the run the protocol way.
if ! wait_exit "$fuzz_pid" 15; then
    echo "autobahn-client: note: kosoku still running after the client exited (no /updateReports?); sending it"
    send_update_reports "$port" || true
    if ! wait_exit "$fuzz_pid" 60; then
        problems+=("kosoku fuzzingserver did not finish after /updateReports; killed (no report)")
        stop_group "$fuzz_pid" 2
    fi
fi
if [[ -n "$fuzz_pid" ]]; then
    wait "$fuzz_pid" 2>/dev/null && fuzz_rc=0 || fuzz_rc=$?
    fuzz_pid=""
fi

set +e
"$PYTHON" "$here/check_report.py" "$report_dir" --name autobahn-client "${SELECT_ARGS[@]}" \
    >"$out_root/client-summary.txt" 2>&1
check_rc=$?
set -e

if [[ $check_rc -ne 0 || ${#problems[@]} -ne 0 ]]; then
    for p in "${problems[@]}"; do echo "autobahn-client: FAIL: $p"; done
    [[ ${fuzz_rc:-0} -gt 1 ]] && echo "autobahn-client: kosoku itself exited with status $fuzz_rc"
    show_log "$fuzz_log" "kosoku output" 30
    show_log "$client_log" "client output" 40
fi
echo "autobahn-client: kosoku startup $((t1 - t0))s, client run $((t2 - t1))s, total $(($(now_s) - t0))s; report: $report_dir/index.html"
# Summary last, so its closing `autobahn-client: N passed, M failed` line ends the output.
if [[ ${#problems[@]} -ne 0 && $check_rc -eq 0 ]]; then
    sed '$d' "$out_root/client-summary.txt"
    # Every reported case passed, but the client misbehaved: count that as one failure.
    tail -n 1 "$out_root/client-summary.txt" | sed -E 's/([0-9]+) failed/1 failed/'
    exit 1
fi
cat "$out_root/client-summary.txt"
exit "$check_rc"

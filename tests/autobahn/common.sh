# Shared helpers for server.sh and client.sh. Source it; do not run it.
# shellcheck shell=bash

PYTHON="${PYTHON:-python3}"
KOSOKU="${KOSOKU:-kosoku}"

# kosoku -i/-x arguments from AUTOBAHN_CASES / AUTOBAHN_EXCLUDE (space-separated
# case ids or `*` globs, kosoku syntax: "1.* 9.7.*"). Empty = whole suite.
# Sets the array SELECT_ARGS, passed identically to kosoku and check_report.py.
build_select_args() {
    SELECT_ARGS=()
    local p
    set -f  # the patterns contain `*`: no pathname expansion
    for p in ${AUTOBAHN_CASES:-}; do SELECT_ARGS+=(-i "$p"); done
    for p in ${AUTOBAHN_EXCLUDE:-}; do SELECT_ARGS+=(-x "$p"); done
    set +f
}

# Print a TCP port on 127.0.0.1 that is free right now.
free_port() {
    "$PYTHON" - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for_port PORT PID TIMEOUT_S WHAT: wait until PORT accepts, failing early
# if PID exits.
wait_for_port() {
    local port=$1 pid=$2 timeout=$3 what=$4 waited=0
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$what exited before listening on 127.0.0.1:$port" >&2
            return 1
        fi
        if (( waited >= timeout * 10 )); then
            echo "$what did not listen on 127.0.0.1:$port within ${timeout}s" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# stop_group PID [GRACE_S]: SIGTERM the process group led by PID (started
# with setsid), then SIGKILL it after GRACE_S seconds (default 5).
stop_group() {
    local pid=$1 grace=${2:-5} i
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# show_log FILE WHAT [LINES]: print the tail of a log, indented.
show_log() {
    local file=$1 what=$2 lines=${3:-40}
    [[ -s "$file" ]] || { echo "--- $what: (empty log $file)"; return 0; }
    echo "--- $what (last $lines lines of $file):"
    tail -n "$lines" "$file" | sed 's/^/    /'
}

now_s() { date +%s; }

#!/usr/bin/env bash
# Heap allocations of `switchboard serve` per delivery and per publish of a
# room fan-out: glibc's malloc and realloc counted by perf uprobes on the
# server's process over a window in the middle of `switchboard bench
# fanout` (no sampling: every call is counted). Needs root (uprobes) and
# perf.
#
#   benches/alloc_count.sh [native|socketio] [SUBSCRIBERS] [RATE]   (default native 2000 10)
#
# Server pinned to SERVER_CPU (0), load to CLIENT_CPU (1). SWITCHBOARD
# picks the binary (default $CARGO_TARGET_DIR/release/switchboard). With
# SUBSCRIBERS 1 and a high RATE the figure is the publish path's own (the
# server is started with --rate and --rate-burst high enough for it).
# Prints one JSON object: malloc, realloc, deliveries and publishes in the
# window, and the calls per delivery and per publish.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
PROTOCOL="${1:-native}"; SUBSCRIBERS="${2:-2000}"; RATE="${3:-10}"
SERVER_CPU="${SERVER_CPU:-0}"; CLIENT_CPU="${CLIENT_CPU:-1}"
BIN="${SWITCHBOARD:-${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release/switchboard}"
BENCH_NAME=alloc_count.sh
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
case "$PROTOCOL" in native|socketio) ;; *) die "protocol must be native or socketio" ;; esac
int_in SUBSCRIBERS "$SUBSCRIBERS" 1 100000
int_in RATE "$RATE" 1 100000
command -v perf >/dev/null || die "perf is needed"
[ -x "$BIN" ] || die "no switchboard binary at $BIN"
raise_nofile $((2 * SUBSCRIBERS + 256)) || die "open-file limit $SOFT_FDS is too low"
LIBC="$(ldd "$BIN" | awk '/libc\.so/{print $3}')"
[ -n "$LIBC" ] || die "cannot find the C library of $BIN"
for fn in malloc realloc; do
  perf probe -q -x "$LIBC" --add "$fn" 2>/dev/null || perf probe -l 2>/dev/null | grep -q "probe_libc:$fn" \
    || die "cannot add a uprobe on $fn (root needed)"
done

WINDOW=4
port="$(free_port)"
taskset -c "$SERVER_CPU" "$BIN" serve --listen "127.0.0.1:$port" --api-key bench \
  --max-connections-per-ip 0 --rate 1000000 --rate-burst 1000000 >/dev/null 2>&1 &
server=$!; STARTED_PIDS+=("$server")
for _ in $(seq 1 50); do port_open "$port" && break; sleep 0.1; done
url="http://127.0.0.1:$port"; [ "$PROTOCOL" = native ] && url="ws://127.0.0.1:$port/ws"
out="$(mktemp)"
taskset -c "$CLIENT_CPU" "$BIN" bench fanout --url "$url" --protocol "$PROTOCOL" \
  --subscribers "$SUBSCRIBERS" --rate "$RATE" --duration $((WINDOW + 6)) --json >"$out" 2>/dev/null &
load=$!; STARTED_PIDS+=("$load")
sleep 4
counts="$(perf stat -x, -e probe_libc:malloc,probe_libc:realloc -p "$server" -- sleep "$WINDOW" 2>&1)"
wait "$load" || die "bench fanout failed"
stop_pid "$server"
python3 - "$counts" "$out" "$WINDOW" "$RATE" "$SUBSCRIBERS" <<'EOF'
import json, sys
counts, out, window, rate, subs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
calls = {}
for line in counts.splitlines():
    f = line.split(',')
    if len(f) > 2 and f[2].startswith('probe_libc:'):
        calls[f[2].split(':')[1]] = int(f[0])
run = json.load(open(out))
publishes = rate * window
deliveries = publishes * subs
total = calls.get('malloc', 0) + calls.get('realloc', 0)
print(json.dumps({
    'protocol': run['protocol'], 'subscribers': subs, 'rate': rate, 'window_s': window,
    'malloc': calls.get('malloc'), 'realloc': calls.get('realloc'),
    'publishes': publishes, 'deliveries': deliveries, 'lost': run['lost'],
    'per_delivery': round(total / deliveries, 3), 'per_publish': round(total / publishes, 1),
}))
EOF
rm -f "$out"

#!/usr/bin/env bash
# Soak (not in CI): CONNS idle native connections held with heartbeats plus
# a fan-out load (SUBS subscribers in one room, RATE msg/s) for MINUTES
# against one `switchboard serve`, sampling every 10 s the server's RSS,
# open file descriptors and runtime tasks (/metrics). After WARMUP minutes
# each must stay flat: the script fails when the last sample exceeds the
# first post-warm-up one by more than TOLERANCE percent (RSS, tasks) or by
# more than 1% (fds).
#
#   benches/soak.sh [CONNS] [MINUTES] [SUBS] [RATE]
#   NODES=6 benches/soak.sh …   # CONNS spread over 6 servers
#
# Defaults: 100,000 connections for 30 minutes, 1,000 subscribers at 50
# msg/s. The server and each load generator need file descriptors: one per
# connection (raise `ulimit -n`, see docs/operations.md); connections are
# spread over 127.0.0.1-127.0.0.8 to get past one address's ephemeral ports.
# Where the hard fd limit is below CONNS, NODES servers (standalone, ports
# PORT+1…) each hold CONNS/NODES, with one idle generator each; the fan-out
# runs on the first. Samples are then the sums over the servers. On a host
# whose hard fd limit is below one server's share the script says so and
# stops.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-100000}
MINUTES=${2:-30}
SUBS=${3:-1000}
RATE=${4:-50}
WARMUP=${WARMUP:-5}
TOLERANCE=${TOLERANCE:-5}
BIN=${SB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release/switchboard}
OUT=${OUT_DIR:-./out}/soak
PORT=${PORT:-9700}
mkdir -p "$OUT"

NODES=${NODES:-1}
PER=$(( (CONNS + NODES - 1) / NODES ))
need=$((PER + SUBS + 1000))
ulimit -n "$need" 2>/dev/null || true
if [ "$(ulimit -n)" -lt "$need" ]; then
    echo "soak: needs $need file descriptors per process, the hard limit here is $(ulimit -Hn)" >&2
    echo "soak: raise it (LimitNOFILE= / limits.conf / prlimit) or run fewer connections" >&2
    exit 2
fi

servers=()
idles=()
FANOUT=
trap 'kill ${servers[*]} ${idles[*]} $FANOUT 2>/dev/null || true' EXIT
for i in $(seq 1 "$NODES"); do
    "$BIN" serve --listen "127.0.0.1:$((PORT + i))" --api-key soak --max-connections-per-ip 0 \
        --rate 100000 --rate-burst 100000 >"$OUT/serve$i.log" 2>&1 &
    servers+=($!)
    until curl -sf "http://127.0.0.1:$((PORT + i))/healthz" >/dev/null; do sleep 0.2; done
done

seconds=$((MINUTES * 60))
left=$CONNS
for i in $(seq 1 "$NODES"); do
    n=$(( left < PER ? left : PER ))
    left=$(( left - n ))
    "$BIN" bench idle --url "ws://127.0.0.1:$((PORT + i))/ws" --protocol native \
        --pid "${servers[$((i - 1))]}" --connections "$n" --source-ips 8 --threads 2 \
        --settle "$seconds" --json >"$OUT/idle$i.json" 2>"$OUT/idle$i.log" &
    idles+=($!)
done
"$BIN" bench fanout --url "ws://127.0.0.1:$((PORT + 1))/ws" --subscribers "$SUBS" --rate "$RATE" \
    --duration "$seconds" --room soak-traffic --json >"$OUT/fanout.json" 2>"$OUT/fanout.log" &
FANOUT=$!

samples="$OUT/samples.csv"
echo "elapsed_s,rss_kib,fds,tasks,connections" >"$samples"
start=$(date +%s)
while kill -0 "${idles[0]}" 2>/dev/null && [ $(( $(date +%s) - start )) -lt "$seconds" ]; do
    rss=0 fds=0 tasks=0 conns=0
    for i in $(seq 1 "$NODES"); do
        pid=${servers[$((i - 1))]}
        rss=$(( rss + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status") ))
        fds=$(( fds + $(ls "/proc/$pid/fd" | wc -l) ))
        metrics=$(curl -s -m 20 "http://127.0.0.1:$((PORT + i))/metrics")
        tasks=$(( tasks + $(awk '/^switchboard_runtime_tasks / {print $2}' <<<"$metrics") ))
        conns=$(( conns + $(awk '/^switchboard_connections\{/ {s += $2} END {print s}' <<<"$metrics") ))
    done
    echo "$(( $(date +%s) - start )),$rss,$fds,$tasks,$conns" | tee -a "$samples"
    sleep 10
done
wait "$FANOUT" || true
for p in "${idles[@]}"; do wait "$p" || true; done

python3 - "$samples" "$WARMUP" "$TOLERANCE" <<'EOF'
import csv, sys
rows = [{k: float(v or 0) for k, v in r.items()} for r in csv.DictReader(open(sys.argv[1]))]
warm = float(sys.argv[2]) * 60
tol = float(sys.argv[3])
after = [r for r in rows if r["elapsed_s"] >= warm]
if len(after) < 2:
    sys.exit("soak: not enough samples after the warm-up")
first, last = after[0], after[-1]
ok = True
for key, limit in (("rss_kib", tol), ("tasks", tol), ("fds", 1.0)):
    growth = (last[key] - first[key]) / max(first[key], 1) * 100
    peak = max(r[key] for r in after)
    print(f"{key:8} after warm-up {first[key]:>10.0f} -> {last[key]:>10.0f} ({growth:+.2f}%), peak {peak:.0f}")
    ok &= growth <= limit
print(f"connections held: {last['connections']:.0f}")
sys.exit(0 if ok else 1)
EOF

#!/usr/bin/env bash
# TOTAL idle native connections held at once on this machine, with
# heartbeats running, by several switchboard nodes.
#
#   benches/scale.sh [TOTAL] [PER_NODE] [HOLD_S]
#   CLUSTER=1 benches/scale.sh …   # the nodes form a cluster over one Redis
#
# One process may hold at most its `nofile` limit of descriptors (20,000 as
# a hard limit on the development VM, see docs/operations.md "The path to
# 1,000,000 connections"), so TOTAL is spread over ceil(TOTAL / PER_NODE)
# nodes, each with its own `switchboard bench idle` load generator (also one
# process per PER_NODE connections, spread over 127.0.0.1..=100 so that
# 127.0.0.1 keeps free ports for the script's own requests). Every
# connection joins the room `idle` (native protocol, anonymous users) and
# answers pings; the nodes ping every 10 s and drop a silent client after
# 20 s.
#
# Half-way through the hold, one message is published to `idle` through
# the admin API (of node 1 in a cluster, which fans it out to every node; of
# each node otherwise): the deliveries counted by all nodes must equal the
# connections open. At the end it checks on every node that all its
# connections are still open and none was dropped by the heartbeat (`lost`:
# opened but not open at the end). Prints the median growth of the nodes'
# RSS per connection and the totals.
#
# In a cluster every join of the shared room is a Redis round trip under the
# room's lock, and each node merges the others' presence (18,000 users
# each): on 2 cores, opening 200,000 that way took ~290 s (standalone: see
# docs/BENCHMARKS.md).
set -euo pipefail
TOTAL=${1:-200000}
PER_NODE=${2:-18000}
HOLD=${3:-60}
BIN=${SB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}/release/switchboard}
OUT=${OUT_DIR:-./out}/bench/scale
mkdir -p "$OUT"
REDIS_PORT=6398
DIR=$(mktemp -d)
NODES=$(( (TOTAL + PER_NODE - 1) / PER_NODE ))
node_pids=()
gen_pids=()
cleanup() {
    for p in "${gen_pids[@]}" "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

metric() { # PORT PREFIX: the sum of the series whose line starts with PREFIX
    curl -sSf -m 20 "http://127.0.0.1:$1/metrics" | awk -v p="$2" 'index($0, p) == 1 {s += $NF} END {printf "%d\n", s}'
}

cluster=()
if [ "${CLUSTER:-0}" = 1 ]; then
    redis-server --port $REDIS_PORT --save '' --appendonly no --dir "$DIR" --daemonize yes >/dev/null
    until redis-cli -p $REDIS_PORT ping >/dev/null 2>&1; do sleep 0.1; done
    cluster=(--presence-ttl 30s --redis "redis://127.0.0.1:$REDIS_PORT/" --redis-prefix "scale$$:")
fi

echo "scale: $TOTAL connections over $NODES nodes (at most $PER_NODE each), hold ${HOLD}s" >&2
for i in $(seq 1 "$NODES"); do
    port=$((9400 + i))
    "$BIN" serve --listen "127.0.0.1:$port" --api-key k --max-connections-per-ip 0 \
        --ping-interval 10s --ping-timeout 10s ${cluster[@]+"${cluster[@]}"} --node-id "n$i" \
        --log-level warn >"$OUT/node$i.log" 2>&1 &
    node_pids+=($!)
    until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
done
# Each node's RSS before its connections (the baseline of its growth).
node_rss0=()
for p in "${node_pids[@]}"; do node_rss0+=($(awk '/VmRSS/ {print $2 * 1024}' "/proc/$p/status")); done

left=$TOTAL
started=$(date +%s)
per_node=()
for i in $(seq 1 "$NODES"); do
    port=$((9400 + i))
    n=$(( left < PER_NODE ? left : PER_NODE ))
    left=$(( left - n ))
    per_node+=("$n")
    # Held until the script stops it, after the checks at the end of the
    # hold (a generator's own `--settle` would start when *its* connections
    # are open: a small node's would end early, before the checks).
    "$BIN" bench idle --url "ws://127.0.0.1:$port/ws" --protocol native --room idle \
        --pid "${node_pids[$((i - 1))]}" --connections "$n" --concurrency 200 --source-ips 100 \
        --settle 1000000 >"$OUT/gen$i.log" 2>&1 &
    gen_pids+=($!)
done

# All open: every node's connection gauge adds up to TOTAL.
open=0
until [ "$open" -ge "$TOTAL" ]; do
    sleep 2
    open=0
    for i in $(seq 1 "$NODES"); do
        open=$(( open + $(metric $((9400 + i)) 'switchboard_connections{protocol="native"') ))
    done
    echo "scale: $open open after $(( $(date +%s) - started ))s" >&2
    if [ $(( $(date +%s) - started )) -gt 600 ]; then
        echo "scale: not all open after 600 s" >&2
        exit 1
    fi
done
opened_s=$(( $(date +%s) - started ))
all_open=$(date +%s)
sleep $(( HOLD / 2 ))

# Mid-hold: one publish reaches every connection on every node.
before=0
for i in $(seq 1 "$NODES"); do before=$(( before + $(metric $((9400 + i)) switchboard_deliveries_total) )); done
publish_on=(1)
[ "${CLUSTER:-0}" = 1 ] || publish_on=($(seq 1 "$NODES"))
for i in "${publish_on[@]}"; do
    curl -sf -m 20 -X POST -H 'authorization: Bearer k' -H 'content-type: application/json' \
        -d '{"room":"idle","event":"hello","data":1}' "http://127.0.0.1:$((9400 + i))/api/v1/publish" >/dev/null
done
sleep 5
after=0
for i in $(seq 1 "$NODES"); do after=$(( after + $(metric $((9400 + i)) switchboard_deliveries_total) )); done
# The rest of the hold, then the checks (every generator still holds).
rest=$(( all_open + HOLD - $(date +%s) ))
[ "$rest" -le 0 ] || sleep "$rest"

rss_total=0
timeouts=0
still=0
for i in $(seq 1 "$NODES"); do
    pid=${node_pids[$((i - 1))]}
    rss=$(awk '/VmRSS/ {print $2 * 1024}' "/proc/$pid/status")
    rss_total=$(( rss_total + rss ))
    timeouts=$(( timeouts + $(metric $((9400 + i)) switchboard_heartbeat_timeouts_total) ))
    still=$(( still + $(metric $((9400 + i)) 'switchboard_connections{protocol="native"') ))
done
gen_rss=0
for p in "${gen_pids[@]}"; do
    gen_rss=$(( gen_rss + $(awk '/VmRSS/ {print $2 * 1024}' "/proc/$p/status" 2>/dev/null || echo 0) ))
done
# Growth of each node's RSS per connection it holds.
growth=$(for i in $(seq 0 $(( NODES - 1 ))); do
    rss=$(awk '/VmRSS/ {print $2 * 1024}' "/proc/${node_pids[$i]}/status")
    echo $(( (rss - node_rss0[i]) / per_node[i] ))
done)
median=$(echo "$growth" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
for p in "${gen_pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${gen_pids[@]}"; do wait "$p" 2>/dev/null || true; done
gen_pids=()
lost=$(( TOTAL - still ))
printf '{"total":%d,"nodes":%d,"opened_s":%d,"held_s":%d,"open_at_end":%d,"heartbeat_timeouts":%d,"lost":%d,"deliveries_of_one_publish":%d,"nodes_rss_bytes":%d,"generators_rss_bytes":%d,"median_node_bytes_per_conn":%d}\n' \
    "$TOTAL" "$NODES" "$opened_s" "$HOLD" "$still" "$timeouts" "$lost" $(( after - before )) "$rss_total" "$gen_rss" "$median"

#!/usr/bin/env bash
# Builds and runs every fuzz target, one after another, for SECONDS_PER_TARGET
# each (default 60). Prints per target the executions and whether it crashed;
# exits 1 if any target crashed (2 if the build failed).
#
#   fuzz/run-all.sh [SECONDS_PER_TARGET] [extra libFuzzer args...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The toolchain is stable, so
# RUSTC_BOOTSTRAP=1 is set to let cargo-fuzz pass its -Z sanitizer flags.
# Corpora live in fuzz/corpus/<target> (seeded from fuzz/seeds/<target>),
# crash inputs land in fuzz/artifacts/<target>, logs in fuzz/artifacts/logs;
# fuzz/dicts/<target>.dict is passed as a libFuzzer dictionary when present.
set -uo pipefail

secs=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null; then
    echo "cargo-fuzz not found: cargo install cargo-fuzz" >&2
    exit 2
fi

echo "== building fuzz targets (release, debug assertions, AddressSanitizer)"
cargo fuzz build || exit 2

# Longest input per target (libFuzzer's default is 4096).
max_len() {
    case "$1" in
        frame_decoder | inflater) echo 16384 ;;
        *) echo 8192 ;;
    esac
}

mkdir -p fuzz/artifacts/logs
summary=()
failed=0
for t in $(cargo fuzz list); do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    if [ -d "fuzz/seeds/$t" ]; then
        cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t"/ 2>/dev/null || true
    fi
    dict=()
    if [ -f "fuzz/dicts/$t.dict" ]; then
        dict=(-dict="fuzz/dicts/$t.dict")
    fi
    log="fuzz/artifacts/logs/$t.log"
    echo "== fuzzing $t for ${secs}s (log: $log)"
    start=$(date +%s)
    cargo fuzz run "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -max_len="$(max_len "$t")" -print_final_stats=1 "${dict[@]}" "$@" >"$log" 2>&1
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | awk '{print $2}')
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | tail -1 | awk '{print $2}')
    rss=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$log" | tail -1 | awk '{print $2}')
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    if [ "$rc" -ne 0 ] || grep -qE '^==[0-9]+==ERROR|deadly signal|panicked at' "$log"; then
        result="CRASH (rc=$rc)"
        failed=1
        grep -E 'panicked at|^==[0-9]+==ERROR|SUMMARY|Test unit written' "$log" | head -5 | sed 's/^/    /'
    else
        result="ok"
    fi
    summary+=("$(printf '%-14s %6ss %12s execs %8s exec/s %6s MB rss %6s corpus  %s' \
        "$t" "$elapsed" "${execs:-?}" "${rate:-?}" "${rss:-?}" "$corpus" "$result")")
done

echo
echo "== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"

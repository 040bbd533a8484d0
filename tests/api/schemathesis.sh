#!/usr/bin/env bash
# Fuzzes the admin API of `switchboard serve` from its own OpenAPI document
# with schemathesis (PyPI): every check (no 5xx, responses match the schema,
# schema-valid requests accepted, invalid ones refused, 405 with Allow, …).
#
#   tests/api/schemathesis.sh path/to/switchboard [EXAMPLES]
#
# A fixed seed keeps runs reproducible; the last line is
# `schemathesis: N cases, all passed` or the failures above it.
set -euo pipefail
bin="$1"
examples="${2:-100}"
out="${OUT_DIR:-out}/schemathesis"
mkdir -p "$out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key="schemathesis-$RANDOM$RANDOM"
"$bin" serve --listen "127.0.0.1:$port" --api-key "$key" >"$out/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
base="http://127.0.0.1:$port/api/v1"
schemathesis run "$base/openapi.json" --url "$base" \
    -H "Authorization: Bearer $key" --checks all --max-examples "$examples" \
    --seed 20261121 --no-color >"$out/report.txt" 2>&1 || {
    cat "$out/report.txt"
    echo "schemathesis: failures (report: $out/report.txt)"
    exit 1
}
cases=$(grep -oE '[0-9]+ generated' "$out/report.txt" | grep -oE '[0-9]+' | head -1)
echo "schemathesis: ${cases:-?} cases, all passed"

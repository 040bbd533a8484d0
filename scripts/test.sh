#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine:
#   formatting, clippy, unit and integration tests, the Autobahn TestSuite
#   (via kosoku) against our server and our client, and the official
#   socket.io-client / engine.io-client (npm, pinned) against our Socket.IO
#   servers and `switchboard serve`, Python's `websockets` client against
#   `switchboard serve` (tests/native-py, including clusters over a real
#   redis-server), schemathesis against the admin API.
# It installs what the tests need (kosoku and schemathesis from PyPI, the npm
# clients) quietly and idempotently.
# Build output goes to $CARGO_TARGET_DIR (default ~/.cache/switchboard-target).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
export OUT_DIR="${OUT_DIR:-$PWD/out}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$OUT_DIR"
started=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$1" "$(( $(date +%s) - started ))"; }

step "dependencies"
# pip puts console scripts next to the interpreter; make sure they are on PATH.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
export PATH
for tool in kosoku schemathesis; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$tool"
    fi
    command -v "$tool" >/dev/null
done
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r tests/native-py/requirements.txt
command -v node >/dev/null || { echo "node (>= 20) is required for the interop tests" >&2; exit 1; }
(cd tests/interop && npm ci --silent --no-audit --no-fund >/dev/null)
(cd clients/js && npm ci --silent --no-audit --no-fund >/dev/null)
(cd tests/browser && npm ci --silent --no-audit --no-fund >/dev/null)
# Debian packages the tests start themselves: chromium (driven by
# playwright-core), redis-server (cluster tests), nginx (proxy tests).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v chromium >/dev/null
command -v redis-server >/dev/null

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
# Doc links: the public docs link no private item, and the private ones
# resolve (the crate docs are the model's map).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --locked --quiet

step "unit and integration tests"
cargo test --workspace --locked

step "release build"
cargo build --release --locked --workspace --bins --examples
bin="$CARGO_TARGET_DIR/release/switchboard"
client="$CARGO_TARGET_DIR/release/examples/autobahn-client"

step "autobahn: server (switchboard echo)"
bash tests/autobahn/server.sh "$bin"

step "autobahn: client (autobahn-client example)"
bash tests/autobahn/client.sh "$client"

step "interop: official socket.io-client and engine.io-client"
SB_BIN_DIR="$CARGO_TARGET_DIR/release" node --test --test-concurrency=1 tests/interop/

step "clients/js: unit tests and tests against switchboard serve"
(cd clients/js && SB_BIN_DIR="$CARGO_TARGET_DIR/release" node --test --test-concurrency=1 test/)

step "browser: the demo chat in chromium (playwright-core)"
SB_BIN_DIR="$CARGO_TARGET_DIR/release" node --test --test-concurrency=1 tests/browser/

step "benches: the comparison report (benches/compare_report.py)"
python3 -m pytest -q -p no:cacheprovider benches/tests

step "serve: Python websockets integration tests"
SB_BIN_DIR="$CARGO_TARGET_DIR/release" python3 -m pytest -q -p no:cacheprovider tests/native-py

step "admin API: schemathesis against /api/v1/openapi.json"
bash tests/api/schemathesis.sh "$bin"

step "all passed"

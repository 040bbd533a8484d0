#!/usr/bin/env bash
# Builds benches/peers/uws/uws-echo.cpp against a local copy of uWebSockets
# (with its uSockets submodule) that lives OUTSIDE this repository; none of
# its code is ever committed here.
#
#   UWS_DIR=/path/to/uWebSockets benches/peers/uws/build.sh [OUT]
#
# UWS_DIR must contain src/App.h and uSockets/src (a recursive clone of
# https://github.com/uNetworking/uWebSockets). OUT defaults to
# ~/.cache/switchboard-peers-target/release/uws-echo, next to the Rust peers,
# where benches/echo.sh looks for it. Built like uWebSockets' own examples:
# -O3 -march=native -flto, no TLS, zlib off (the peers do not compress).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${UWS_DIR:?set UWS_DIR to a local uWebSockets checkout (with uSockets)}"
OUT="${1:-${PEERS_TARGET_DIR:-$HOME/.cache/switchboard-peers-target}/release/uws-echo}"
[ -f "$UWS_DIR/src/App.h" ] && [ -d "$UWS_DIR/uSockets/src" ] \
  || { echo "build.sh: $UWS_DIR is not a uWebSockets checkout with uSockets" >&2; exit 2; }
BUILD="$(mktemp -d)"
trap 'rm -rf "$BUILD"' EXIT
CC="${CC:-cc}"
CXX="${CXX:-g++}"
for c in "$UWS_DIR"/uSockets/src/*.c "$UWS_DIR"/uSockets/src/eventing/*.c "$UWS_DIR"/uSockets/src/crypto/*.c; do
  "$CC" -DLIBUS_NO_SSL -std=c11 -O3 -march=native -flto -I"$UWS_DIR/uSockets/src" \
    -c "$c" -o "$BUILD/$(basename "$c" .c).o"
done
mkdir -p "$(dirname "$OUT")"
"$CXX" -std=c++20 -O3 -march=native -flto -DUWS_NO_ZLIB -DLIBUS_NO_SSL \
  -I"$UWS_DIR/src" -I"$UWS_DIR/uSockets/src" \
  -w "$HERE/uws-echo.cpp" "$BUILD"/*.o -o "$OUT"
# What was built, for the report: UWS_VERSION if given, else the checkout's commit.
VERSION="${UWS_VERSION:-$(git -C "$UWS_DIR" rev-parse --short HEAD 2>/dev/null || echo 'local copy')}"
printf '%s\n' "$VERSION" >"$OUT.version"
echo "built $OUT (uWebSockets $VERSION)"

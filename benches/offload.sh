#!/usr/bin/env bash
# Origin offload, side by side in one run: VIEWERS (200) FLV viewers of one live
# stream (KBPS, 2000) through livegate with fan-out, livegate with fan-out off,
# nginx secure_link + proxy_pass, and a bare Pingora proxy (the framework floor).
# Prints origin connections, RSS and CPU per viewer, and the ratio to nginx.
#
#   bash benches/offload.sh          # VIEWERS=200 KBPS=2000 SECONDS=10
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential protoc:protobuf-compiler protoc:protobuf-compiler nginx:nginx-light \
  python3:python3 taskset:util-linux
ulimit -n 65536 2>/dev/null || true
cargo build --release --quiet --bin livegate --example bare_proxy
exec python3 benches/offload.py "$PWD/target/release/livegate" "$PWD/target/release/examples/bare_proxy"

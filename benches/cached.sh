#!/usr/bin/env bash
# Cached HLS objects (a playlist, 1 MB and 4 MB segments) served from livegate's
# micro-cache against nginx proxy_cache with sendfile, side by side in one run.
#
#   bash benches/cached.sh        # DURATION=8 ROUNDS=2 CONNS="20 200"; VARIANT_BIN=… for a lever
#
# Each edge: one worker pinned to core 0. wrk and the origin (nginx, static
# files) share core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential protoc:protobuf-compiler wrk:wrk nginx:nginx-light python3:python3 taskset:util-linux
cargo build --release --quiet --bin livegate
exec python3 benches/cached.py "$PWD/target/release/livegate"

#!/usr/bin/env bash
# Where a fan-out FLV viewer's memory goes: valgrind massif on a system-allocator
# build, one viewer against VIEWERS viewers of one stream, split by the first
# livegate, Pingora or tokio frame above each allocation.
#
#   bash benches/heap_viewer.sh       # VIEWERS=200
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential protoc:protobuf-compiler valgrind:valgrind python3:python3
# Its own target directory: the default build keeps mimalloc.
CARGO_TARGET_DIR=target/system-alloc cargo build --release --quiet --features system-alloc --bin livegate
exec python3 benches/heap_viewer.py "$PWD/target/system-alloc/release/livegate"

#!/usr/bin/env bash
# LL-HLS through livegate under load; see benches/llhls.rs.
#   bash benches/llhls.sh        # PLAYERS=500 DURATION=10
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential protoc:protobuf-compiler ffmpeg:ffmpeg taskset:util-linux
ulimit -n 65536 2>/dev/null || true
# The players, the origin and ffmpeg on core 1; the edge moves itself to core 0.
exec taskset -c 1 cargo bench --quiet --bench llhls

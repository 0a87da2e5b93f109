#!/usr/bin/env bash
# RTMP through the gate, side by side in one run: PUBLISHERS (20) publishers of a
# KBPS (4000) stream straight to nginx-rtmp and through livegate to it (CPU,
# RSS per publisher, first frame at a player), then PLAYERS (200) rtmpdump
# players served by nginx-rtmp and through livegate (CPU per player).
#
#   bash benches/rtmp.sh          # PUBLISHERS=20 PLAYERS=200 KBPS=4000 SECONDS=10
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential protoc:protobuf-compiler protoc:protobuf-compiler nginx:nginx \
  /usr/lib/nginx/modules/ngx_rtmp_module.so:libnginx-mod-rtmp ffmpeg:ffmpeg \
  rtmpdump:rtmpdump python3:python3 taskset:util-linux
ulimit -n 65536 2>/dev/null || true
cargo build --release --quiet --bin livegate
exec python3 benches/rtmp.py "$PWD/target/release/livegate"

#!/usr/bin/env bash
# livegate against nginx doing the same job (secure_link_md5 + proxy_pass with
# keep-alive upstream), side by side in one run. Prints a table with ratios.
#
#   bash benches/vs_nginx.sh          # DURATION=10 ROUNDS=2 by default
#
# Each edge: one worker pinned to core 0. wrk, the origin (nginx static files,
# plus livegate's demo origin for endless FLV) and the clients share core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential protoc:protobuf-compiler wrk:wrk nginx:nginx-light python3:python3 taskset:util-linux
cargo build --release --quiet --bin livegate --example bare_proxy
exec python3 benches/vs_nginx.py "$PWD/target/release/livegate" "$PWD/target/release/examples/bare_proxy"

#!/usr/bin/env bash
# HTTP/2 against HTTP/1.1 on the same TLS listener, livegate beside nginx doing
# the same job (secure_link + proxy_pass; `listen … ssl http2`, as Debian 12's
# nginx 1.22 predates `http2 on`), in one run: 1 KB signed requests and 1 MB
# responses, requests/s per busy edge core and p99, printed as a table.
#
#   bash benches/h2.sh          # DURATION=10 by default
#
# Each edge: one worker pinned to core 0; h2load (nghttp2) and the origin on core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential protoc:protobuf-compiler h2load:nghttp2-client nginx:nginx-light \
  openssl:openssl python3:python3 taskset:util-linux
cargo build --release --quiet
exec python3 benches/h2.py "$PWD/target/release/livegate"

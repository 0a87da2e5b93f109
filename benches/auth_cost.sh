#!/usr/bin/env bash
# The cost of livegate's own auth in instructions per request (callgrind):
# a secure_link rule against the same livegate with the rule disabled, and
# livegate proxying 1 KB against a bare Pingora proxy (the framework floor).
#
#   bash benches/auth_cost.sh        # N1=500 N2=2500 requests by default
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential protoc:protobuf-compiler valgrind:valgrind python3:python3
cargo build --release --quiet --bin livegate --example bare_proxy
exec python3 benches/auth_cost.py "$PWD/target/release/livegate" "$PWD/target/release/examples/bare_proxy"

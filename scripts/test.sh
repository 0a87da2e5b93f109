#!/usr/bin/env bash
# The whole test suite: installs what the build and tests need, then format,
# lint and every test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
# cmake: Pingora's zlib-ng build; openssl, md5sum: the README's signing examples.
# systemd-analyze: the unit check. curl: the README's management API recipes.
# ffmpeg, ffprobe: players and publishers; nginx with the RTMP module: a real live
# origin; chromium, node and npm: hls.js in a browser (tests/browser).
# etcd: the fleet tests' store; protoc: etcd-client's build (its gRPC API).
# rtmpdump: a second RTMP client implementation (tests/rtmp.rs).
# certutil: a test CA the browser trusts, for h2 over TLS (tests/http2.rs).
# promtool: the shipped Prometheus rules and their unit tests (tests/dashboards.rs).
ensure_packages cmake:cmake cc:build-essential openssl:openssl md5sum:coreutils \
  systemd-analyze:systemd curl:curl ffmpeg:ffmpeg ffprobe:ffmpeg nginx:nginx \
  /usr/lib/nginx/modules/ngx_rtmp_module.so:libnginx-mod-rtmp chromium:chromium \
  node:nodejs npm:npm etcd:etcd-server protoc:protobuf-compiler rtmpdump:rtmpdump \
  certutil:libnss3-tools promtool:prometheus
echo "== npm install (tests/browser: hls.js, Shaka, mpegts.js, playwright-core)"
npm install --prefix tests/browser --no-audit --no-fund --no-package-lock --loglevel=error

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets

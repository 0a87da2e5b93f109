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
# python3: the vendors' token libraries (tests/cdn_tokens.rs), installed below.
# strace: counts the sendfile calls of a cached segment hit (tests/cache.rs).
ensure_packages cmake:cmake cc:build-essential openssl:openssl md5sum:coreutils \
  systemd-analyze:systemd curl:curl ffmpeg:ffmpeg ffprobe:ffmpeg nginx:nginx \
  /usr/lib/nginx/modules/ngx_rtmp_module.so:libnginx-mod-rtmp chromium:chromium \
  node:nodejs npm:npm etcd:etcd-server protoc:protobuf-compiler rtmpdump:rtmpdump \
  certutil:libnss3-tools promtool:prometheus python3:python3 strace:strace
echo "== npm install (tests/browser: hls.js, Shaka, mpegts.js, playwright-core)"
npm install --prefix tests/browser --no-audit --no-fund --no-package-lock --loglevel=error

echo "== pip install (tests/cdn: the vendors' token libraries, into a private directory)"
python3 -m pip --version > /dev/null 2>&1 || ensure_packages pip3:python3-pip
python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore --target tests/cdn/pyref --upgrade \
  akamai-edgeauth==0.3.2 botocore pyjwt cryptography

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets

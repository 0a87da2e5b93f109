#!/usr/bin/env bash
# The whole test suite: installs what the build and tests need, then format,
# lint and every test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
# cmake: Pingora's zlib-ng build; openssl, md5sum: the README's signing examples.
# systemd-analyze: the unit check. curl: the README's management API recipes.
# ffmpeg, ffprobe: decoding the demo origin's media.
ensure_packages cmake:cmake cc:build-essential openssl:openssl md5sum:coreutils systemd-analyze:systemd curl:curl ffmpeg:ffmpeg ffprobe:ffmpeg

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets

#!/usr/bin/env bash
# Starts livegate on conf/livegate.yaml in front of a synthetic live origin, and
# prints a signed URL with the curl lines that fetch it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential curl:curl

cargo build --release --quiet
bin=target/release/livegate
conf=conf/livegate.yaml
$bin -t -c "$conf"

$bin demo-origin --listen 127.0.0.1:8081 2>/tmp/livegate-demo-origin.log &
origin=$!
trap 'kill $origin 2>/dev/null' EXIT

flv=$($bin sign -c "$conf" --url http://localhost:8080/live/cam1.flv --ttl 3600)
m3u8=$($bin sign -c "$conf" --url http://localhost:8080/live/cam1.m3u8 --ttl 3600)
cat <<TXT

livegate on http://127.0.0.1:8080 (config $conf), demo origin on 127.0.0.1:8081.

Signed, valid for an hour:
  $flv

Try, in another terminal:
  curl -s '$flv' | head -c 1000000 | wc -c     # endless FLV: 1000000 bytes, then stop
  curl -s '$m3u8'                                # live playlist (same Tencent signature)
  curl -s -o /dev/null -w '%{http_code}\n' http://localhost:8080/live/cam1.flv   # unsigned: 403
  $bin check -c $conf --url '$flv'

TXT
$bin -c "$conf"

#!/usr/bin/env bash
# The edge's workload against nginx, and the bare-Pingora floor, in one run (#25):
# signed proxied requests with the bare-Pingora floor, and idle connections
# (vs_nginx.sh), cached playlists and segments (cached.sh), 200 FLV viewers of
# one stream with the framework floor (offload.sh), and thousands of FLV
# viewers of 20 streams (benches/viewers.rs).
# Each part prints its markdown table; the knobs of each part pass through
# (DURATION, ROUNDS, VIEWERS, SECONDS, …).
#
#   bash benches/edge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# livegate against nginx: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo
echo "## Requests: signed and proxied, cached, idle connections (benches/vs_nginx.sh)"
bash benches/vs_nginx.sh
echo
echo "## Cached HLS objects against nginx proxy_cache with sendfile (benches/cached.sh)"
PERF="${PERF:-seg4m.ts}" bash benches/cached.sh
echo
echo "## FLV viewers of one stream, with the bare-Pingora floor (benches/offload.sh)"
bash benches/offload.sh
echo
echo "## FLV viewers at scale (benches/viewers.rs)"
# The scale run's own viewer count (offload.sh's VIEWERS is for one stream).
VIEWERS="${SCALE_VIEWERS:-2000}" cargo bench --quiet --bench viewers 2>/dev/null | sed -n '/FLV viewers of/,$p'

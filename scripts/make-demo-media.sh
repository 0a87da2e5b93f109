#!/usr/bin/env bash
# Regenerates the demo origin's media (assets/): a 4-second 320x180 test pattern
# with a 440 Hz tone, H.264 baseline (a keyframe every 2 s, no B-frames) and AAC at
# 32 kHz, as one FLV file and as two 2-second MPEG-TS segments. The tone is 3.968 s
# so that with the encoder's priming frame the audio is exactly 125 AAC frames
# (4.000 s): loops then join without a gap or an overlap.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages ffmpeg:ffmpeg
src=(-f lavfi -i testsrc2=size=320x180:rate=25 -f lavfi -i sine=frequency=440:sample_rate=32000:duration=3.968)
enc=(-t 4 -c:v libx264 -profile:v baseline -preset veryfast -g 50 -keyint_min 50 -sc_threshold 0 -bf 0
     -b:v 150k -maxrate 200k -bufsize 200k -pix_fmt yuv420p -c:a aac -b:a 48k -ar 32000 -ac 1
     -map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact)
ffmpeg -v error -y "${src[@]}" "${enc[@]}" -f flv assets/demo.flv
tmp=$(mktemp -d)
ffmpeg -v error -y "${src[@]}" "${enc[@]}" -f hls -hls_time 2 -hls_list_size 0 \
  -hls_segment_filename assets/demo-%d.ts "$tmp/demo.m3u8"
rm -rf "$tmp"
ls -l assets/

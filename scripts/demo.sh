#!/usr/bin/env bash
# Starts livegate on the shipped example config (conf/livegate.yaml) in front of a
# live demo origin (a decodable H.264/AAC test pattern over HTTP-FLV and HLS) and
# of nginx-rtmp (its RTMP origin), and prints signed URLs with the lines that play,
# fetch and publish them. Ctrl-C stops everything.
#
#   PORT=8080 ORIGIN_PORT=8081 METRICS_PORT=9181 RTMP_PORT=1935 RTMP_ORIGIN_PORT=1936 ADMIN_PORT=9180 bash scripts/demo.sh
#   LIVEGATE_BIN=target/debug/livegate bash scripts/demo.sh   # skip the build
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

PORT=${PORT:-8080}
ORIGIN_PORT=${ORIGIN_PORT:-8081}
METRICS_PORT=${METRICS_PORT:-9181}
RTMP_PORT=${RTMP_PORT:-1935}
RTMP_ORIGIN_PORT=${RTMP_ORIGIN_PORT:-1936}
ADMIN_PORT=${ADMIN_PORT:-9180}
# A taken port is one line and exit 1, before anything is built or started.
for var in PORT ORIGIN_PORT METRICS_PORT RTMP_PORT RTMP_ORIGIN_PORT ADMIN_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/${!var}") 2>/dev/null; then
    echo "demo: port ${!var} ($var) is taken; choose another, e.g. $var=$(( ${!var} + 10000 )) bash scripts/demo.sh" >&2
    exit 1
  fi
done
# nginx with the RTMP module: the demo's RTMP origin.
ensure_packages nginx:nginx /usr/lib/nginx/modules/ngx_rtmp_module.so:libnginx-mod-rtmp

if [ -z "${LIVEGATE_BIN:-}" ]; then
  ensure_packages cmake:cmake cc:build-essential curl:curl protoc:protobuf-compiler
  echo "== building livegate (release): the first build takes several minutes"
  cargo build --release
  LIVEGATE_BIN=target/release/livegate
fi
bin=$(realpath "$LIVEGATE_BIN")

# This run's own config, logs and sockets: two demos on other ports never collide.
run=$(mktemp -d "${TMPDIR:-/tmp}/livegate-demo.XXXXXX")
conf=$run/livegate.yaml
sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$PORT/" \
    -e "s/127\.0\.0\.1:8081/127.0.0.1:$ORIGIN_PORT/" \
    -e "s/127\.0\.0\.1:9181/127.0.0.1:$METRICS_PORT/" \
    -e "s/127\.0\.0\.1:1935/127.0.0.1:$RTMP_PORT/" \
    -e "s/127\.0\.0\.1:1936/127.0.0.1:$RTMP_ORIGIN_PORT/" \
    -e "s/127\.0\.0\.1:9180/127.0.0.1:$ADMIN_PORT/" \
    -e "s#/tmp/livegate.pid#$run/livegate.pid#" \
    -e "s#/tmp/livegate_upgrade.sock#$run/upgrade.sock#" \
    conf/livegate.yaml > "$conf"
# This run's own state and management API key: nothing shared with other runs.
echo "state_dir: $run/state" >> "$conf"
(umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$run/admin.key")
"$bin" -t -c "$conf"

pids=()
stop() {
  trap - INT TERM EXIT
  # SIGINT: both exit at once (SIGTERM would drain open streams first).
  kill -INT "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped; logs are in $run"
}
trap stop INT TERM EXIT

"$bin" demo-origin --listen "127.0.0.1:$ORIGIN_PORT" 2>"$run/origin.log" &
pids+=($!)
mkdir -p "$run/nginx"
cat > "$run/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; worker_processes 1;
error_log $run/nginx/error.log; pid $run/nginx/nginx.pid;
events { worker_connections 256; }
rtmp { server { listen 127.0.0.1:$RTMP_ORIGIN_PORT; application live { live on; wait_key on; } } }
CONF
nginx -p "$run/nginx" -c "$run/nginx/nginx.conf" 2>"$run/nginx/stderr.log" &
pids+=($!)
"$bin" -c "$conf" 2>"$run/livegate.log" &
pids+=($!)

for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$ORIGIN_PORT") 2>/dev/null \
    && (exec 3<>"/dev/tcp/127.0.0.1/$RTMP_ORIGIN_PORT") 2>/dev/null; then
    break
  fi
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "a process exited; see $run/livegate.log, $run/origin.log and $run/nginx/" >&2; exit 1; }
  done
  sleep 0.1
done

flv=$("$bin" sign -c "$conf" --url "http://localhost:$PORT/live/cam1.flv" --ttl 3600)
hls=$("$bin" sign -c "$conf" --url "http://localhost:$PORT/live/cam1.m3u8" --ttl 3600)
push=$("$bin" sign -c "$conf" --scene push --url "rtmp://localhost:$RTMP_PORT/live/mycam" --ttl 3600)
watch=$("$bin" sign -c "$conf" --url "rtmp://localhost:$RTMP_PORT/live/mycam" --ttl 3600)
cat <<TXT

livegate on http://127.0.0.1:$PORT and rtmp://127.0.0.1:$RTMP_PORT (config $conf),
demo origin on 127.0.0.1:$ORIGIN_PORT, nginx-rtmp (RTMP origin) on 127.0.0.1:$RTMP_ORIGIN_PORT,
metrics on http://127.0.0.1:$METRICS_PORT/metrics, logs in $run.

Signed, valid for an hour (FLV and HLS):
  $flv
  $hls

Try, in another terminal:
  ffplay '$flv'                                              # watch it (or open it in VLC)
  ffplay '$hls'                                              # the same over HLS
  curl -s --max-time 10 '$flv' | head -c 1000000 | wc -c     # endless FLV: 1000000 bytes, then stop
  curl -s -o /dev/null -w '%{http_code}\n' http://localhost:$PORT/live/cam1.flv   # unsigned: 403
  $bin check -c $conf --url '$flv'
  $bin api -c $conf online                                   # who is watching (management API)

Publish over RTMP through livegate (signed for an hour), then watch what you publish:
  ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine=frequency=440 -c:v libx264 -preset veryfast -g 50 -c:a aac -f flv '$push'
  ffplay '$watch'

Ctrl-C stops everything.
TXT
wait "${pids[@]}"

#!/usr/bin/env bash
# Throughput with remote auth and a warm cache against the same setup without
# remote auth, measured side by side in one run; prints the ratio (target >= 0.9).
#
#   bash benches/remote_auth.sh            # DURATION=10 ROUNDS=2 by default
#
# Each livegate runs one worker pinned to core 0; wrk and the origin share core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ensure_packages cmake:cmake cc:build-essential protoc:protobuf-compiler wrk:wrk python3:python3 taskset:util-linux curl:curl
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}

cargo build --release --quiet
bin=$PWD/target/release/livegate
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin=$(port); auth=$(port); plain=$(port); remote=$(port)

taskset -c 1 "$bin" demo-origin --listen "127.0.0.1:$origin" 2>"$dir/origin.log" &
# A minimal auth server: 200 to everything, counting calls.
cat >"$dir/auth.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        print("call", self.path, file=sys.stderr, flush=True)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
taskset -c 1 python3 "$dir/auth.py" "$auth" 2>"$dir/auth.log" &

config() { # $1 port, $2 extra domain keys
  cat <<YAML
server: { threads: 1, pid_file: $dir/$1.pid, upgrade_sock: $dir/$1.sock }
listen: ["127.0.0.1:$1"]
domains:
  - name: localhost
    origin: { peers: ["127.0.0.1:$origin"] }
    auth: [ { scene: pull, scheme: tencent, keys: [benchKey1] } ]
$2
YAML
}
config "$plain" "" >"$dir/plain.yaml"
config "$remote" "    remote_auth: { url: \"http://127.0.0.1:$auth\", cache: { allow_ttl_ms: 5000 } }" >"$dir/remote.yaml"
RUST_LOG=warn taskset -c 0 "$bin" -c "$dir/plain.yaml" 2>"$dir/plain.log" &
RUST_LOG=warn taskset -c 0 "$bin" -c "$dir/remote.yaml" 2>"$dir/remote.log" &

signed=$("$bin" sign -c "$dir/plain.yaml" --url http://localhost/live/bench.m3u8 --ttl 3600)
path=${signed#http://localhost}
for p in "$plain" "$remote"; do
  for _ in $(seq 50); do curl -sf -o /dev/null "http://localhost:$p$path" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://localhost:$p$path" || { echo "livegate on $p does not answer" >&2; exit 1; }
done

rps() { taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" "http://localhost:$1$path" | awk '/Requests\/sec/ {print $2}'; }
best_plain=0; best_remote=0
for round in $(seq "$ROUNDS"); do
  a=$(rps "$plain"); b=$(rps "$remote")
  echo "round $round: without remote auth $a req/s, with remote auth (warm cache) $b req/s"
  best_plain=$(python3 -c "print(max($best_plain, $a))"); best_remote=$(python3 -c "print(max($best_remote, $b))")
done
calls=$(grep -c '^call' "$dir/auth.log" || true)
python3 - "$best_plain" "$best_remote" "$calls" "$DURATION" "$ROUNDS" <<'PY'
import sys
a, b, calls, d, r = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
print(f"\n| setup (best of {r} x {d}s, 1 core) | req/s |\n| --- | --- |")
print(f"| signed URL only | {a:,.0f} |\n| signed URL + remote auth, warm cache | {b:,.0f} |")
print(f"\nratio remote/plain: {b/a:.3f} (target >= 0.9); auth server calls: {calls}")
PY

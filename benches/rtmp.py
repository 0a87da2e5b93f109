"""RTMP through the gate, side by side in one run (see rtmp.sh):

1. PUBLISHERS (20) ffmpeg publishers of a KBPS (4000) stream straight to
   nginx-rtmp (HLS off), then the same through livegate to that nginx-rtmp:
   livegate's CPU for relaying against nginx-rtmp's own CPU for receiving them,
   livegate's RSS per publisher, and the first keyframe at a player (ffmpeg,
   time to its first decoded frame) direct and through livegate. PERF=1 prints
   where livegate's relaying time goes (perf, after the measurement).
2. PLAYERS (200) rtmpdump players of one stream, served by nginx-rtmp
   directly, then through livegate: CPU per player of each.

The edges run on one core, the load on the other. Prints a markdown table."""
import hashlib, os, signal, statistics, subprocess, sys, tempfile, time

from common import port, procs, rss_kb, start, wait_port

LIVEGATE = sys.argv[1]
PUBLISHERS = int(os.environ.get("PUBLISHERS", "20"))
PLAYERS = int(os.environ.get("PLAYERS", "200"))
KBPS = int(os.environ.get("KBPS", "4000"))
SECONDS = int(os.environ.get("SECONDS", "10"))
EDGE_CORE, LOAD_CORE = "0", "1"
PUSH_KEY, PULL_KEY = "benchPushKey2026", "benchPullKey2026"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid, seconds):
    """CPU seconds `pid` used over the next `seconds`."""
    a = ticks(pid)
    time.sleep(seconds)
    return (ticks(pid) - a) / os.sysconf("SC_CLK_TCK")


def signed(key, stream):
    t = format(int(time.time()) + 3600, "X")
    return f"{stream}?txSecret={hashlib.md5((key + stream + t).encode()).hexdigest()}&txTime={t}"


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGQUIT if "nginx" in " ".join(p.args) else signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    procs.clear()


def nginx(d):
    rtmp, http = port(), port()
    os.makedirs(f"{d}/n", exist_ok=True)
    with open(f"{d}/n/nginx.conf", "w") as f:
        f.write(f"""load_module {RTMP_MODULE};
daemon off; master_process off; worker_processes 1; error_log {d}/n/error.log; pid {d}/n/nginx.pid;
events {{ worker_connections 4096; }}
rtmp {{ server {{ listen 127.0.0.1:{rtmp}; application live {{ live on; wait_key on; }} }} }}
http {{ access_log off; server {{ listen 127.0.0.1:{http}; return 404; }} }}
""")
    p = start(["nginx", "-p", f"{d}/n", "-c", f"{d}/n/nginx.conf"], EDGE_CORE)
    wait_port(rtmp, "nginx", p)
    return p, rtmp


def livegate(d, origin_rtmp):
    rtmp, http = port(), port()
    with open(f"{d}/lg.yaml", "w") as f:
        f.write(f"""server: {{ threads: 1, pid_file: {d}/lg.pid, upgrade_sock: {d}/lg.sock }}
listen: ["127.0.0.1:{http}"]
state_dir: {d}/state
rtmp: {{ listen: ["127.0.0.1:{rtmp}"] }}
domains:
  - name: "127.0.0.1"
    origin: {{ peers: ["127.0.0.1:1"], rtmp_peers: ["127.0.0.1:{origin_rtmp}"] }}
    auth:
      - {{ scene: push, scheme: tencent, keys: [{PUSH_KEY}] }}
      - {{ scene: pull, scheme: tencent, keys: [{PULL_KEY}] }}
""")
    p = start([LIVEGATE, "-c", f"{d}/lg.yaml"], EDGE_CORE)
    wait_port(rtmp, "livegate", p)
    return p, rtmp


def source(d):
    """A 30 s clip at KBPS (H.264 keyframe a second, AAC), looped by publishers."""
    path = f"{d}/source.flv"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "30", "-c:v", "libx264", "-preset", "ultrafast",
                    "-b:v", f"{KBPS}k", "-maxrate", f"{KBPS}k", "-bufsize", f"{KBPS}k", "-g", "30",
                    "-c:a", "aac", "-b:a", "64k", "-f", "flv", path], check=True)
    return path


def publishers(src, url_of, n):
    return [start(["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", src, "-c", "copy",
                   "-f", "flv", url_of(i)], LOAD_CORE) for i in range(n)]


def first_frame(url):
    """Seconds until ffmpeg decoded its first frame of `url` (median of 5)."""
    runs = []
    for _ in range(5):
        t = time.time()
        subprocess.run(["taskset", "-c", LOAD_CORE, "ffmpeg", "-nostdin", "-v", "error", "-i", url,
                        "-frames:v", "1", "-f", "null", "-"], check=False, timeout=30)
        runs.append(time.time() - t)
    return statistics.median(runs)


def players(url, n):
    return [start(["rtmpdump", "-q", "-r", url, "-o", "/dev/null"], LOAD_CORE) for _ in range(n)]


def main():
    d = tempfile.mkdtemp(prefix="livegate-rtmp-bench-")
    src = source(d)
    rows = []
    # 1. Publishers: straight to nginx-rtmp, then through livegate.
    ng, ng_rtmp = nginx(d)
    publishers(src, lambda i: f"rtmp://127.0.0.1:{ng_rtmp}/live/direct{i}", PUBLISHERS)
    time.sleep(3)
    direct = cpu_seconds(ng.pid, SECONDS)
    direct_first = first_frame(f"rtmp://127.0.0.1:{ng_rtmp}/live/direct0")
    stop_all()
    ng, ng_rtmp = nginx(d)
    lg, lg_rtmp = livegate(d, ng_rtmp)
    base = rss_kb(lg.pid)
    publishers(src, lambda i: f"rtmp://127.0.0.1:{lg_rtmp}/live/{signed(PUSH_KEY, f'cam{i}')}", PUBLISHERS)
    time.sleep(3)
    t0_lg, t0_ng = ticks(lg.pid), ticks(ng.pid)
    time.sleep(SECONDS)
    hz = os.sysconf("SC_CLK_TCK")
    relay = (ticks(lg.pid) - t0_lg) / hz
    behind = (ticks(ng.pid) - t0_ng) / hz
    per_publisher = (rss_kb(lg.pid) - base) / PUBLISHERS
    if os.environ.get("PERF"):
        # After the measurement: where livegate's relaying time goes.
        subprocess.run(["perf", "record", "-q", "-F", "2999", "-g", "-o", f"{d}/perf.data", "-p", str(lg.pid),
                        "--", "sleep", "5"], check=False)
        report = subprocess.run(["perf", "report", "-i", f"{d}/perf.data", "--no-children", "--stdio",
                                 "--percent-limit", "1.5", "-g", "none"], capture_output=True, text=True)
        print(report.stdout)
    gate_first = first_frame(f"rtmp://127.0.0.1:{lg_rtmp}/live/{signed(PULL_KEY, 'cam0')}")
    rows.append(("nginx-rtmp receiving (direct)", f"{direct / SECONDS:.3f}", "-", f"{direct_first * 1000:.0f}", "1.00"))
    rows.append(("livegate relaying to nginx-rtmp", f"{relay / SECONDS:.3f}", f"{per_publisher:.0f}",
                 f"{gate_first * 1000:.0f}", f"{relay / direct:.2f}"))
    rows.append(("(nginx-rtmp behind livegate)", f"{behind / SECONDS:.3f}", "-", "-", f"{behind / direct:.2f}"))
    stop_all()
    # 2. Players of one stream: nginx-rtmp serving them, then livegate relaying.
    ng, ng_rtmp = nginx(d)
    publishers(src, lambda i: f"rtmp://127.0.0.1:{ng_rtmp}/live/cam0", 1)
    time.sleep(2)
    players(f"rtmp://127.0.0.1:{ng_rtmp}/live/cam0", PLAYERS)
    time.sleep(3)
    ng_play = cpu_seconds(ng.pid, SECONDS)
    stop_all()
    ng, ng_rtmp = nginx(d)
    lg, lg_rtmp = livegate(d, ng_rtmp)
    publishers(src, lambda i: f"rtmp://127.0.0.1:{ng_rtmp}/live/cam0", 1)
    time.sleep(2)
    base = rss_kb(lg.pid)
    players(f"rtmp://127.0.0.1:{lg_rtmp}/live/{signed(PULL_KEY, 'cam0')}", PLAYERS)
    time.sleep(3)
    t0_lg, t0_ng = ticks(lg.pid), ticks(ng.pid)
    time.sleep(SECONDS)
    lg_play = (ticks(lg.pid) - t0_lg) / hz
    ng_behind = (ticks(ng.pid) - t0_ng) / hz
    per_player = (rss_kb(lg.pid) - base) / PLAYERS
    stop_all()
    print(f"\n{PUBLISHERS} publishers of a {KBPS} kbit/s stream, {SECONDS} s ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print("| edge | CPU (cores) | RSS per publisher (KB) | first frame at a player (ms) | ÷ nginx-rtmp |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\n{PLAYERS} RTMP players (rtmpdump) of one {KBPS} kbit/s stream\n")
    print("| edge | CPU (cores) | CPU per player (ms/s) | RSS per player (KB) |")
    print("| --- | --- | --- | --- |")
    print(f"| nginx-rtmp serving them | {ng_play / SECONDS:.3f} | {ng_play / SECONDS / PLAYERS * 1000:.2f} | - |")
    print(f"| livegate relaying each to nginx-rtmp | {lg_play / SECONDS:.3f} | {lg_play / SECONDS / PLAYERS * 1000:.2f} | {per_player:.0f} |")
    print(f"| (nginx-rtmp behind livegate) | {ng_behind / SECONDS:.3f} | {ng_behind / SECONDS / PLAYERS * 1000:.2f} | - |")


try:
    main()
finally:
    stop_all()

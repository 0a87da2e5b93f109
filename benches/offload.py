"""Origin offload: N FLV viewers of one live stream through each edge, side by
side in one run: livegate (fan-out, the default), livegate with fan-out off,
nginx (secure_link + proxy_pass, proxy_buffering off) and a bare Pingora proxy
(the framework floor). See offload.sh. Prints a markdown table."""
import asyncio, os, re, signal, subprocess, sys, tempfile, time

from common import children, livegate_conf, port, procs, rss_kb, start, wait_port

LIVEGATE, BARE = sys.argv[1], sys.argv[2]
VIEWERS = int(os.environ.get("VIEWERS", "200"))
SECONDS = int(os.environ.get("SECONDS", "10"))
KBPS = int(os.environ.get("KBPS", "2000"))
KEY = "benchKey2026"
HOST = "bench.example.com"
EDGE_CORE, LOAD_CORE = "0", "1"

def stop(p):
    p.send_signal(signal.SIGQUIT if "nginx" in p.args else signal.SIGINT)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def cpu_ticks(pid):
    """utime + stime of a process, all threads (clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# --- the origin: an endless live FLV at KBPS, counting its connections --------
def tag(kind, ts, payload):
    size = len(payload)
    t = ts.to_bytes(4, "big")
    head = bytes([kind]) + size.to_bytes(4, "big")[1:] + t[1:] + t[:1] + b"\0\0\0"
    return head + payload + (size + 11).to_bytes(4, "big")


class Origin:
    """25 video tags/s (a keyframe every 2 s) and 43 audio tags/s, paced in real
    time at KBPS. Enough FLV for the edges to parse and fan out; the bytes are
    not a decodable picture (ffmpeg checks use the demo origin)."""

    def __init__(self):
        self.connections = 0
        self.open = 0

    async def serve(self, reader, writer):
        self.connections += 1
        self.open += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\n")
            writer.write(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
            writer.write(tag(9, 0, b"\x17\x00\x00\x00\x00" + b"\x01" * 40))   # AVC sequence header
            writer.write(tag(8, 0, b"\xaf\x00\x12\x10"))                       # AAC sequence header
            per_s = KBPS * 1000 // 8
            video = max(64, (per_s - 43 * 200) // 25)
            t0 = time.monotonic()
            n = 0
            while True:
                ts = n * 40
                first = b"\x17\x01" if n % 50 == 0 else b"\x27\x01"
                writer.write(tag(9, ts, first + b"\0\0\0" + b"\x55" * (video - 5)))
                writer.write(tag(8, ts, b"\xaf\x01" + b"\x21" * 198))
                writer.write(tag(8, ts + 20, b"\xaf\x01" + b"\x21" * 198))
                await writer.drain()
                n += 1
                delay = t0 + n * 0.04 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()


# --- an HLS origin: a live playlist, a new 2 s segment every 2 s, counting ----------
class HlsOrigin:
    SEGMENT = 2.0

    def __init__(self):
        self.t0 = time.monotonic()
        self.playlists = 0
        self.segments = {}

    def live(self):
        return int((time.monotonic() - self.t0) / self.SEGMENT)

    async def serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].decode().split("?")[0]
                if path.endswith(".m3u8"):
                    self.playlists += 1
                    n = self.live()
                    first = max(0, n - 3)
                    body = (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
                            + "".join(f"#EXTINF:2.0,\nhls-{i}.ts\n" for i in range(first, n + 1))).encode()
                    ctype = b"application/vnd.apple.mpegurl"
                else:
                    self.segments[path] = self.segments.get(path, 0) + 1
                    body, ctype = b"\x47" * 50_000, b"video/mp2t"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype +
                             f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def hls_viewers(p, playlist, n, seconds):
    """n players: each polls the playlist every second (half the target
    duration) and fetches every segment it has not fetched, on one keep-alive
    connection. Returns (playlist polls, segment fetches, failures)."""
    stats = {"polls": 0, "segments": 0, "failed": 0}

    async def get(r, w, path):
        w.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head = await r.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if length:
            body = await r.readexactly(int(length.group(1)))
        else:  # chunked (a request that followed another's fill)
            body = b""
            while True:
                size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
                body += await r.readexactly(size + 2)
                if size == 0:
                    break
        if status != 200:
            stats["failed"] += 1
        return body

    async def player(i):
        await asyncio.sleep(i * 2.0 / n)  # viewers arrive over two seconds
        r, w = await asyncio.open_connection("127.0.0.1", p)
        seen = set()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            text = (await get(r, w, playlist)).decode()
            stats["polls"] += 1
            for line in text.splitlines():
                if line and not line.startswith("#") and line.split("?")[0] not in seen:
                    seen.add(line.split("?")[0])
                    await get(r, w, "/live/" + line)
                    stats["segments"] += 1
            await asyncio.sleep(1.0)
        w.close()

    await asyncio.gather(*(player(i) for i in range(n)))
    return stats


# --- viewers ---------------------------------------------------------------------
async def viewers(p, path, n, seconds, ramp=3):
    """n viewers read the stream; returns (bytes per viewer over the measured
    window, viewers still open at the end)."""
    counts = [0] * n
    alive = [True] * n

    async def view(i):
        r, w = await asyncio.open_connection("127.0.0.1", p)
        w.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                counts[i] += len(data)
        finally:
            alive[i] = False

    tasks = [asyncio.ensure_future(view(i)) for i in range(n)]
    await asyncio.sleep(ramp)
    return tasks, counts, alive


def run_edge(name, cmd, p, path, origin, worker_of=None):
    """Starts an edge alone, puts the viewers on it, measures, stops it."""
    proc = start(cmd, EDGE_CORE, env=dict(os.environ, RUST_LOG="warn"))
    wait_port(p, name, proc)
    time.sleep(1)
    pid = worker_of(proc.pid) if worker_of else proc.pid
    base = rss_kb(pid)
    before_conns = origin.connections
    loop = asyncio.get_event_loop()
    tasks, counts, alive = loop.run_until_complete(viewers(p, path, VIEWERS, SECONDS))
    c0, t0, b0 = cpu_ticks(pid), time.monotonic(), sum(counts)
    loop.run_until_complete(asyncio.sleep(SECONDS))
    c1, t1, b1 = cpu_ticks(pid), time.monotonic(), sum(counts)
    rss = rss_kb(pid)
    still = sum(alive)
    conns = origin.connections - before_conns
    for t in tasks:
        t.cancel()
    loop.run_until_complete(asyncio.sleep(0.5))
    stop(proc)
    hz = os.sysconf("SC_CLK_TCK")
    cpu_pct = 100 * (c1 - c0) / hz / (t1 - t0)
    got_kbps = (b1 - b0) * 8 / 1000 / (t1 - t0) / VIEWERS
    return {
        "conns": conns,
        "rss_per_viewer": (rss - base) * 1024 / VIEWERS,
        "cpu_per_viewer": cpu_pct / VIEWERS,
        "kbps": got_kbps,
        "alive": still,
    }


NGINX_COMMON = ("worker_rlimit_nofile 65536; error_log {d}/nginx-error.log; pid {d}/{name}.pid; daemon off; "
                "master_process on; events {{ worker_connections 16384; }}\n")
NGINX_TEMP = ("client_body_temp_path {d}/cb; proxy_temp_path {d}/pt; fastcgi_temp_path {d}/ft; "
              "uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st; access_log off;")
HLS_VIEWERS = int(os.environ.get("HLS_VIEWERS", "500"))
HLS_SECONDS = int(os.environ.get("HLS_SECONDS", "30"))


def run_hls(d, on_conf):
    """HLS_VIEWERS players polling one live playlist, through livegate (with its
    micro-cache) and through nginx secure_link + proxy_pass, one after the other."""
    rows = {}
    loop = asyncio.get_event_loop()
    for name in ("nginx proxy_pass", "livegate (micro-cache)"):
        origin = HlsOrigin()
        o_port, e_port = port(), port()
        server = loop.run_until_complete(asyncio.start_server(origin.serve, "127.0.0.1", o_port, backlog=4096))
        conf = livegate_conf(d, "hls", e_port, HOST, o_port, KEY, True)
        signed = subprocess.run([LIVEGATE, "sign", "-c", conf, "--url", f"http://{HOST}/live/hls.m3u8",
                                 "--ttl", "86400"], capture_output=True, text=True, check=True).stdout.strip()
        if name.startswith("nginx"):
            with open(f"{d}/hls.conf", "w") as f:
                f.write(NGINX_COMMON.format(d=d, name="hls") + f"""worker_processes 1;
http {{ {NGINX_TEMP.format(d=d)}
  upstream origin {{ server 127.0.0.1:{o_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{e_port} backlog=4096;
    location ~ \\.m3u8$ {{
      secure_link $arg_md5,$arg_expires;
      secure_link_md5 "$secure_link_expires$uri {KEY}";
      if ($secure_link = "") {{ return 403; }}
      if ($secure_link = "0") {{ return 403; }}
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    location /live/ {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
            proc = start(["nginx", "-p", d, "-c", f"{d}/hls.conf"], EDGE_CORE)
        else:
            proc = start([LIVEGATE, "-c", conf], EDGE_CORE, env=dict(os.environ, RUST_LOG="warn"))
        wait_port(e_port, name, proc)
        t0 = time.monotonic()
        stats = loop.run_until_complete(hls_viewers(e_port, signed[len(f"http://{HOST}"):], HLS_VIEWERS, HLS_SECONDS))
        elapsed = time.monotonic() - t0
        stop(proc)
        server.close()
        counts = list(origin.segments.values())
        rows[name] = {
            "per_segment": sum(counts) / max(1, len(counts)),
            "max_segment": max(counts, default=0),
            "playlists_per_s": origin.playlists / elapsed,
            "polls": stats["polls"],
            "fetched": stats["segments"],
            "failed": stats["failed"],
        }
    return rows


def decodable(d):
    """ffmpeg decodes a sample of fan-out viewers of a real H.264/AAC stream (the
    demo origin) while 50 others watch: how many of the sample decoded cleanly."""
    demo, lg_port = port(), port()
    start([LIVEGATE, "demo-origin", "--listen", f"127.0.0.1:{demo}"], LOAD_CORE)
    wait_port(demo, "demo origin")
    conf = livegate_conf(d, "demo", lg_port, HOST, demo, KEY, True)
    proc = start([LIVEGATE, "-c", conf], EDGE_CORE, env=dict(os.environ, RUST_LOG="warn"))
    wait_port(lg_port, "livegate (demo)", proc)
    signed = subprocess.run([LIVEGATE, "sign", "-c", conf, "--url", f"http://{HOST}/live/cam1.flv",
                             "--ttl", "86400"], capture_output=True, text=True, check=True).stdout.strip()
    path = signed[len(f"http://{HOST}"):]
    loop = asyncio.get_event_loop()
    tasks, _, _ = loop.run_until_complete(viewers(lg_port, path, 50, 0, ramp=1))
    url = f"http://127.0.0.1:{lg_port}{path}"
    players = [subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-headers", f"Host: {HOST}\r\n",
                                 "-i", url, "-t", "3", "-f", "null", "-"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(5)]
    ok = 0
    for p in players:
        _, err = p.communicate(timeout=60)
        ok += p.returncode == 0 and not err.strip()
    for t in tasks:
        t.cancel()
    stop(proc)
    return ok, len(players)


def main():
    d = tempfile.mkdtemp(prefix="lgoffload")
    origin = Origin()
    o_port = port()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(asyncio.start_server(origin.serve, "127.0.0.1", o_port, backlog=4096))
    # The origin runs in this process on the load core, with the viewers.
    os.sched_setaffinity(0, {int(LOAD_CORE)})

    lg_port, off_port, nginx_port, bare_port = port(), port(), port(), port()
    on_conf = livegate_conf(d, "on", lg_port, HOST, o_port, KEY, True)
    off_conf = livegate_conf(d, "off", off_port, HOST, o_port, KEY, True)
    with open(off_conf) as f:
        text = f.read()
    with open(off_conf, "w") as f:
        f.write(text.replace(f'origin: {{ peers: ["127.0.0.1:{o_port}"] }}',
                             f'origin: {{ peers: ["127.0.0.1:{o_port}"], fanout: false }}'))
    common = NGINX_COMMON.format(d=d, name="nginx")
    temp = NGINX_TEMP.format(d=d)
    with open(f"{d}/edge.conf", "w") as f:
        f.write(common + f"""worker_processes 1;
http {{ {temp}
  upstream origin {{ server 127.0.0.1:{o_port}; }}
  server {{ listen 127.0.0.1:{nginx_port} backlog=4096;
    location /live/ {{
      secure_link $arg_md5,$arg_expires;
      secure_link_md5 "$secure_link_expires$uri {KEY}";
      if ($secure_link = "") {{ return 403; }}
      if ($secure_link = "0") {{ return 403; }}
      proxy_pass http://origin; proxy_http_version 1.1; proxy_buffering off;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }} }}
""")
    signed = subprocess.run([LIVEGATE, "sign", "-c", on_conf, "--url", f"http://{HOST}/live/bench.flv",
                             "--ttl", "86400"], capture_output=True, text=True, check=True).stdout.strip()
    path = signed[len(f"http://{HOST}"):]

    edges = [
        ("nginx proxy_pass", ["nginx", "-p", d, "-c", f"{d}/edge.conf"], nginx_port,
         lambda pid: (time.sleep(0.5), children(pid)[0])[1]),
        ("bare Pingora proxy", [BARE, f"127.0.0.1:{bare_port}", f"127.0.0.1:{o_port}"], bare_port, None),
        ("livegate, fanout: false", [LIVEGATE, "-c", off_conf], off_port, None),
        ("livegate (fan-out)", [LIVEGATE, "-c", on_conf], lg_port, None),
    ]
    # ONLY=<part of an edge's name> runs just that edge; WRAP=<command> runs it
    # under a tool (the README's heap profile: WRAP="heaptrack -o /tmp/lg").
    only, wrap = os.environ.get("ONLY"), os.environ.get("WRAP", "").split()
    if only == "hls":
        print(run_hls(d, on_conf))
        return
    results = {}
    for name, cmd, p, worker in edges:
        if only and only not in name:
            continue
        results[name] = run_edge(name, wrap + cmd, p, path, origin, worker)
    if only:
        print(results)
        return
    server.close()
    hls_rows = run_hls(d, on_conf) if not only else None
    decoded = decodable(d) if not only else None

    ng = results["nginx proxy_pass"]
    print(f"\n{VIEWERS} FLV viewers of one {KBPS} kbit/s stream, {SECONDS} s measured; "
          "each edge alone on core 0, origin and viewers on core 1.\n")
    print("| edge | origin connections | RSS per viewer, bytes | edge CPU per viewer, % of a core | ×nginx CPU | kbit/s per viewer | viewers at the end |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        ratio = r["cpu_per_viewer"] / ng["cpu_per_viewer"] if ng["cpu_per_viewer"] else float("nan")
        print(f"| {name} | {r['conns']} | {r['rss_per_viewer']:,.0f} | {r['cpu_per_viewer']:.3f} | {ratio:.2f} | {r['kbps']:,.0f} | {r['alive']} |")
    if decoded:
        print(f"\nDecodable: ffmpeg -xerror decoded {decoded[0]} of {decoded[1]} fan-out viewers of the demo "
              "origin's H.264/AAC stream (50 other viewers watching).")
    if hls_rows:
        print(f"\n{HLS_VIEWERS} simulated HLS players of one live stream (2 s segments, "
              f"TARGETDURATION 2), {HLS_SECONDS} s each edge:\n")
        print("| edge | origin requests per segment | playlist requests at the origin per second | player polls | segments fetched | failures |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, h in hls_rows.items():
            print(f"| {name} | {h['per_segment']:.2f} (max {h['max_segment']}) | {h['playlists_per_s']:.2f} | "
                  f"{h['polls']} | {h['fetched']} | {h['failed']} |")
    lg = results["livegate (fan-out)"]
    print(f"\nTargets: livegate origin connections = 1 (got {lg['conns']}); RSS per viewer ≤ 60 KB "
          f"(got {lg['rss_per_viewer'] / 1024:.1f} KB); CPU per viewer ≤ 0.7 × nginx "
          f"(got {lg['cpu_per_viewer'] / ng['cpu_per_viewer']:.2f}).")


try:
    main()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()

"""Cached HLS objects served from the edge: livegate's micro-cache against nginx
`proxy_cache` (on tmpfs, `sendfile on`), side by side in one run; see cached.sh.
Prints a markdown table: requests/s and MB/s per busy edge core."""
import os, signal, subprocess, sys, tempfile

import common
from common import best, livegate_conf, nginx_conf, per_core, port, secure_link_proxy, start, wait_port

LIVEGATE = sys.argv[1]
DURATION = int(os.environ.get("DURATION", "8"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
# Connection counts for the segment rows (the 20–200).
CONNS = [int(c) for c in os.environ.get("CONNS", "20 200").split()]
KEY = "benchKey2026"
HOST = "bench.example.com"
EDGE_CORE, LOAD_CORE = "0", "1"
# A variant binary run side by side (a lever): VARIANT_BIN=path.
VARIANT = os.environ.get("VARIANT_BIN")
# PERF=seg4m.ts (or another object): profile livegate serving it, after the table's runs.
PERF = os.environ.get("PERF")

PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n" + "".join(
    f"#EXTINF:2.000,\nseg-{100 + i}-0123456789abcdef.ts\n" for i in range(8))


def profile(pid, url, d):
    """`perf` on livegate while wrk fetches `url` (20 connections): the top
    entries by self time, as the README quotes them."""
    data = f"{d}/perf.data"
    rec = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", data],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    common.wrk(url, 20, HOST, DURATION, EDGE_CORE, LOAD_CORE)
    rec.send_signal(signal.SIGINT)
    rec.wait()
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol",
                          "--percent-limit", "1.5", "-g", "none"], capture_output=True, text=True).stdout
    print(f"\nperf, livegate serving {url.rsplit('/', 1)[-1].split('?')[0]} to 20 connections (self time):\n")
    print("\n".join(l.split("  -")[0].rstrip() for l in out.splitlines() if l.strip() and not l.startswith("#")))


def main():
    d = tempfile.mkdtemp(prefix="lgcached", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    www = os.path.join(d, "www", "live", "s")
    os.makedirs(www)
    objects = {"index.m3u8": PLAYLIST.encode(), "seg1m.ts": os.urandom(1 << 20), "seg4m.ts": os.urandom(4 << 20)}
    for name, body in objects.items():
        with open(os.path.join(www, name), "wb") as f:
            f.write(body)
    # nginx workers run unprivileged: let them read and cache.
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o777)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    origin, nginx_edge, lg = port(), port(), port()
    nginx_conf(d, "origin", f"""sendfile on; tcp_nopush on; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{origin} backlog=4096; root {d}/www; }}""")
    # What an nginx HLS edge runs: secure_link, then proxy_cache with its lock,
    # playlists for a second, segments for ten minutes; the cache on tmpfs and
    # sent with sendfile, nginx at its best.
    guarded = secure_link_proxy(KEY) + """
      proxy_cache hls;
      proxy_cache_key $host$uri;
      proxy_cache_lock on;
      add_header X-Cache $upstream_cache_status;"""
    nginx_conf(d, "edge", f"""sendfile on; tcp_nopush on; keepalive_requests 1000000;
  proxy_cache_path {d}/nginx-cache levels=1:2 keys_zone=hls:16m max_size=1g inactive=1h use_temp_path=off;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 64; }}
  server {{ listen 127.0.0.1:{nginx_edge} backlog=4096;
    location / {{ {guarded} proxy_cache_valid 200 10m; }}
    location ~ \\.m3u8$ {{ {guarded} proxy_cache_valid 200 1s; }} }}""")
    start(["nginx", "-p", d, "-c", f"{d}/origin.conf"], LOAD_CORE)
    start(["nginx", "-p", d, "-c", f"{d}/edge.conf"], EDGE_CORE)
    env = dict(os.environ, RUST_LOG="warn")
    # Playlists as nginx serves them (no segment tokens written in): each URL
    # here is signed on its own.
    plain = "    hls: { rewrite: false }\n"
    conf = livegate_conf(d, "lg", lg, HOST, origin, KEY, True, domain_extra=plain)
    lg_proc = start([LIVEGATE, "-c", conf], EDGE_CORE, env=env)
    edges = {"nginx": nginx_edge, "livegate": lg}
    if VARIANT:
        v = port()
        start([VARIANT, "-c", livegate_conf(d, "variant", v, HOST, origin, KEY, True, domain_extra=plain)], EDGE_CORE, env=env)
        edges["variant"] = v
    for name, p in [("origin nginx", origin)] + list(edges.items()):
        wait_port(p, name)

    def signed(path):
        out = subprocess.run([LIVEGATE, "sign", "-c", conf, "--url", f"http://{HOST}{path}", "--ttl", "86400"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return out[len(f"http://{HOST}"):]
    paths = {name: signed(f"/live/s/{name}") for name in objects}
    # Warm both caches and check every answer is a hit of the right size.
    for name, p in edges.items():
        for obj, path in paths.items():
            common.get(p, path, HOST)
            code, head = common.get(p, path, HOST, headers=True)
            length = next((l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith("content-length:")), None)
            if code != 200 or "HIT" not in head.upper() or length != str(len(objects[obj])):
                sys.exit(f"{name}: {obj} answered {code}, length {length}, not a cache hit:\n{head}\nsee {d}")

    loads = [("playlist (~400 B)", "index.m3u8", 50)] + [
        (f"{size} segment", obj, c) for size, obj in (("1 MB", "seg1m.ts"), ("4 MB", "seg4m.ts")) for c in CONNS]
    runs = {(load, conns, name): [] for load, _, conns in loads for name in edges}
    for _ in range(ROUNDS):
        for load, obj, conns in loads:
            for name, p in edges.items():
                runs[(load, conns, name)].append(common.wrk(
                    f"http://127.0.0.1:{p}{paths[obj]}", conns, HOST, DURATION, EDGE_CORE, LOAD_CORE))
    if PERF:
        profile(lg_proc.pid, f"http://127.0.0.1:{lg}{paths[PERF]}", d)

    print(f"\nCached objects, best of {ROUNDS} × {DURATION} s; each edge one worker on core 0, wrk and the origin on core 1.")
    print("Per core: the rate divided by the edge core's busy share.\n")
    cols = " | ".join(f"{n} per core | {n} edge CPU" for n in edges)
    print(f"| load | connections | {cols} | livegate ÷ nginx per core |")
    print("| --- | --- | " + " | ".join("--- | ---" for _ in edges) + " | --- |")
    for load, obj, conns in loads:
        key = "rps" if obj.endswith("m3u8") else "mbps"
        unit = "req/s" if key == "rps" else "MB/s"
        cells, rates = [], {}
        for name in edges:
            r = runs[(load, conns, name)]
            rates[name] = per_core(r, key)
            cells.append(f"{rates[name]:,.0f} {unit} | {best(r, 'edge_cpu'):.0f} %")
        print(f"| {load} | {conns} | " + " | ".join(cells) + f" | **{rates['livegate'] / rates['nginx']:.2f}** |")


common.run(main)

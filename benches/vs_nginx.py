"""Runs the livegate-vs-nginx benchmark; see vs_nginx.sh. Prints a markdown table."""
import asyncio, os, re, resource, shutil, signal, socket, subprocess, sys, tempfile, time

import common
from common import best, children, nginx_conf, per_core, secure_link_proxy, livegate_conf, port, procs, rss_kb, start, wait_port

LIVEGATE = sys.argv[1]
# The framework floor: a bare Pingora proxy with livegate's tuning (benches/bare_proxy.rs).
BARE = sys.argv[2]
DURATION = int(os.environ.get("DURATION", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
KEY = "benchKey2026"
HOST = "bench.example.com"
EDGE_CORE, LOAD_CORE = "0", "1"


def wrk(url, conns, latency=False):
    return common.wrk(url, conns, HOST, DURATION, EDGE_CORE, LOAD_CORE, latency)


def get(p, path):
    return common.get(p, path, HOST)


def idle_connections(p, path, n):
    """n keep-alive connections that each made one request, then sit idle. Each
    is answered before the next opens: what is measured is what an idle
    connection holds, not what an allocator keeps after a burst of n requests
    at once."""
    socks = []
    req = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", p))
        s.sendall(req)
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 1024:
            got += s.recv(65536)
        socks.append(s)
    return socks


async def viewers(p, paths, seconds, counted):
    async def view(path):
        r, w = await asyncio.open_connection("127.0.0.1", p)
        w.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        while True:
            data = await r.read(65536)
            if not data:
                return
            counted[0] += len(data)
    tasks = [asyncio.ensure_future(view(x)) for x in paths]
    await asyncio.sleep(seconds)
    return tasks


def measure_memory(edges, fresh, p1k, signed):
    """RSS growth per idle keep-alive connection and per endless FLV viewer, each
    on freshly started edges (allocators keep freed memory for reuse, so a warm
    process under-reports)."""
    mem_idle, mem_flv = {}, {}
    flv_paths = [signed(f"/live/s{i % 50}.flv") for i in range(500)]
    pids = fresh()
    for name, p in edges.items():
        base = rss_kb(pids[name])
        counted = [0]
        loop = asyncio.new_event_loop()
        tasks = loop.run_until_complete(viewers(p, flv_paths, 5, counted))
        mem_flv[name] = (rss_kb(pids[name]) - base) * 1024 / 500
        for t in tasks:
            t.cancel()
        loop.run_until_complete(asyncio.sleep(0.5))
        loop.close()
        if counted[0] < 500 * 4096:
            sys.exit(f"{name}: FLV viewers got only {counted[0]} bytes")
    pids = fresh()
    for name, p in edges.items():
        base = rss_kb(pids[name])
        socks = idle_connections(p, p1k, 2000)
        time.sleep(1)
        mem_idle[name] = (rss_kb(pids[name]) - base) * 1024 / 2000
        for s in socks:
            s.close()
    return mem_idle, mem_flv


def main():
    global hard
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 8192:
        sys.exit(f"the open-files limit is {hard}; 2,000 idle connections need more (ulimit -n 65536 as root)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = tempfile.mkdtemp(prefix="lgbench")
    www = os.path.join(d, "www"); os.makedirs(www)
    with open(os.path.join(www, "f1k.bin"), "wb") as f: f.write(os.urandom(1024))
    with open(os.path.join(www, "f1m.bin"), "wb") as f: f.write(os.urandom(1 << 20))
    # nginx workers run unprivileged: let them read the files.
    for path, mode in [(d, 0o755), (www, 0o755), (os.path.join(www, "f1k.bin"), 0o644), (os.path.join(www, "f1m.bin"), 0o644)]:
        os.chmod(path, mode)
    flv_origin, origin, nginx_edge, lg_on, lg_off, bare = port(), port(), port(), port(), port(), port()

    start([LIVEGATE, "demo-origin", "--listen", f"127.0.0.1:{flv_origin}"], LOAD_CORE)
    nofile = min(hard, 65536)
    nginx_conf(d, "origin", f"""sendfile on; tcp_nopush on; keepalive_requests 1000000;
  upstream flv {{ server 127.0.0.1:{flv_origin}; keepalive 64; }}
  server {{ listen 127.0.0.1:{origin} backlog=4096; root {www};
    location /live/ {{ proxy_pass http://flv; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }} }}""", nofile)
    # What livegate does per request: check the signature, forward with keep-alive
    # and X-Forwarded-For. Static files may buffer in memory; live streams never.
    guarded = secure_link_proxy(KEY) + """
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"""
    nginx_conf(d, "edge", f"""keepalive_requests 1000000;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 128; }}
  server {{ listen 127.0.0.1:{nginx_edge} backlog=4096;
    location / {{ {guarded} proxy_max_temp_file_size 0; }}
    location /live/ {{ {guarded} proxy_buffering off; }} }}""", nofile)
    start(["nginx", "-p", d, "-c", f"{d}/origin.conf"], LOAD_CORE)
    edge_cmd = ["nginx", "-p", d, "-c", f"{d}/edge.conf"]
    edge = start(edge_cmd, EDGE_CORE)

    def lg_conf(p, auth, server_extra=""):
        return livegate_conf(d, f"lg{p}", p, HOST, origin, KEY, auth, server_extra)
    on_conf = lg_conf(lg_on, True)
    env = dict(os.environ, RUST_LOG="warn")
    lg_cmd = [LIVEGATE, "-c", on_conf]
    lg = start(lg_cmd, EDGE_CORE, env=env)
    lg_plain = start([LIVEGATE, "-c", lg_conf(lg_off, False)], EDGE_CORE, env=env)
    start([BARE, f"127.0.0.1:{bare}", f"127.0.0.1:{origin}"], EDGE_CORE, env=env)
    # A lever to compare side by side: another binary (VARIANT_BIN) and/or more
    # server settings (VARIANT_SERVER, e.g. "work_stealing: true").
    variant = var_proc = var_cmd = None
    if os.environ.get("VARIANT_BIN") or os.environ.get("VARIANT_SERVER"):
        variant = port()
        extra = ", " + os.environ["VARIANT_SERVER"] if os.environ.get("VARIANT_SERVER") else ""
        var_cmd = [os.environ.get("VARIANT_BIN", LIVEGATE), "-c", lg_conf(variant, True, extra)]
        var_proc = start(var_cmd, EDGE_CORE, env=env)
        wait_port(variant, "livegate variant")
    for p, what in [(flv_origin, "demo origin"), (origin, "origin nginx"), (nginx_edge, "nginx edge"), (lg_on, "livegate"), (lg_off, "livegate auth off"), (bare, "bare Pingora")]:
        wait_port(p, what)

    def signed(path):
        out = subprocess.run([LIVEGATE, "sign", "-c", on_conf, "--url", f"http://{HOST}{path}", "--ttl", "86400"], capture_output=True, text=True, check=True).stdout.strip()
        return out[len(f"http://{HOST}"):]
    p1k, p1m = signed("/f1k.bin"), signed("/f1m.bin")
    for p in (nginx_edge, lg_on):
        codes = (get(p, p1k), get(p, "/f1k.bin"))
        if codes != (200, 403):
            sys.exit(f"edge on {p}: signed/unsigned answered {codes}, expected (200, 403); see {d}")

    edges = {"nginx": nginx_edge, "livegate": lg_on}
    small = {k: [] for k in edges}; big = {k: [] for k in edges}; off = []; var_runs = []; floor = []
    for _ in range(0 if os.environ.get("ONLY_MEM") else ROUNDS):
        for name, p in edges.items():
            small[name].append(wrk(f"http://127.0.0.1:{p}{p1k}", 50, latency=True))
        off.append(wrk(f"http://127.0.0.1:{lg_off}/f1k.bin", 50, latency=True))
        floor.append(wrk(f"http://127.0.0.1:{bare}/f1k.bin", 50, latency=True))
        if variant:
            var_runs.append(wrk(f"http://127.0.0.1:{variant}{p1k}", 50, latency=True))
        for name, p in edges.items():
            big[name].append(wrk(f"http://127.0.0.1:{p}{p1m}", 10))

    if os.environ.get("SKIP_MEM"):
        mem_idle = mem_flv = {"nginx": float("nan"), "livegate": float("nan")}
    # Memory: RSS growth of the serving process (nginx: its worker), and of the
    # variant's, measured the same way in the same run.
    mem_edges = dict(edges, **({"variant": variant} if variant else {}))

    def fresh():
        """Restarts the edges, so each memory figure starts from a cold heap."""
        nonlocal edge, lg, var_proc
        for proc, sig in ((edge, signal.SIGTERM), (lg, signal.SIGINT), (var_proc, signal.SIGINT)):
            if proc is None:
                continue
            proc.send_signal(sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        edge, lg = start(edge_cmd, EDGE_CORE), start(lg_cmd, EDGE_CORE, env=env)
        pids = {"nginx": edge, "livegate": lg}
        if var_cmd:
            var_proc = pids["variant"] = start(var_cmd, EDGE_CORE, env=env)
        for p in mem_edges.values():
            wait_port(p, "a restarted edge")
        time.sleep(1)
        return {k: children(v.pid)[0] if k == "nginx" else v.pid for k, v in pids.items()}

    if not os.environ.get("SKIP_MEM"):
        mem_idle, mem_flv = measure_memory(mem_edges, fresh, p1k, signed)
    if "variant" in mem_idle:
        print(f"variant ({os.environ.get('VARIANT_BIN', 'same binary')}): RSS per idle connection "
              f"{mem_idle['variant']:,.0f} (main {mem_idle['livegate']:,.0f}), per FLV viewer "
              f"{mem_flv['variant']:,.0f} (main {mem_flv['livegate']:,.0f})")

    if os.environ.get("ONLY_MEM"):
        print(f"RSS per idle connection: nginx {mem_idle['nginx']:,.0f} livegate {mem_idle['livegate']:,.0f}; "
              f"per FLV viewer: nginx {mem_flv['nginx']:,.0f} livegate {mem_flv['livegate']:,.0f}")
        return
    n, l = small["nginx"], small["livegate"]
    rows = [
        ("1 KB signed: requests/s per core (÷ edge core busy)", per_core(n), per_core(l), "higher", 0.75),
        ("1 KB signed: requests/s as measured", best(n, "rps"), best(l, "rps"), "higher", None),
        ("1 KB signed: p50 ms", best(n, "p50", True), best(l, "p50", True), "lower", None),
        ("1 KB signed: p99 ms", best(n, "p99", True), best(l, "p99", True), "lower", 1.5),
        ("1 MB signed: MB/s", best(big["nginx"], "mbps"), best(big["livegate"], "mbps"), "higher", 0.9),
        ("RSS per idle keep-alive connection, bytes", mem_idle["nginx"], mem_idle["livegate"], "lower", 1.0),
        ("RSS per endless FLV viewer, bytes", mem_flv["nginx"], mem_flv["livegate"], "lower", 1.0),
    ]
    print(f"\n| measure (best of {ROUNDS} × {DURATION}s, one core each) | nginx | livegate | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for name, a, b, better, target in rows:
        ratio = b / a if a else float("nan")
        goal = "" if target is None else (f"≥ {target}" if better == "higher" else f"≤ {target}")
        print(f"| {name} | {a:,.2f} | {b:,.2f} | {ratio:.2f} | {goal} |")
    if var_runs:
        v = per_core(var_runs)
        print(f"| variant ({os.environ.get('VARIANT_BIN', 'same binary')}; {os.environ.get('VARIANT_SERVER', '')}) 1 KB per core | "
              f"{per_core(l):,.0f} (main) | {v:,.0f} (variant) | {v / per_core(l):.3f} | |")
    print(f"\nCore use during the 1 KB runs (edge core / load core): nginx {best(n, 'edge_cpu'):.0f}% / {best(n, 'load_cpu'):.0f}%, "
          f"livegate {best(l, 'edge_cpu'):.0f}% / {best(l, 'load_cpu'):.0f}%")
    on, offr = per_core(l), per_core(off)
    print(f"| livegate 1 KB per core: auth on / auth off (wrk: noisier than the effect; "
          f"the README judges this by callgrind instruction counts) | {offr:,.0f} (off) | {on:,.0f} (on) | {on / offr:.3f} | ≥ 0.97 |")
    fl = per_core(floor)
    print(f"| 1 KB per core: livegate signed ÷ bare Pingora 0.9 unsigned (the framework floor) | {fl:,.0f} (bare) | {on:,.0f} (livegate) | {on / fl:.3f} | ≥ 0.95 |")


common.run(main)

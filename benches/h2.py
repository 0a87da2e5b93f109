"""Runs the h2-against-HTTP/1.1 benchmark; see h2.sh. Prints a markdown table."""
import os, re, statistics, subprocess, sys, tempfile

from common import cpu_times, port, start, wait_port

LIVEGATE = sys.argv[1]
DURATION = int(os.environ.get("DURATION", "10"))
KEY = "benchKey2026"
HOST = "bench.example.com"
EDGE_CORE, LOAD_CORE = "0", "1"
# (what, file, HTTP/1.1 connections, h2 connections × streams each)
LOADS = [("1 KB signed", "f1k.bin", 50, (5, 20)), ("1 MB", "f1m.bin", 10, (2, 5))]


def main():
    d = tempfile.mkdtemp(prefix="lgh2")
    www = os.path.join(d, "www"); os.makedirs(www)
    with open(os.path.join(www, "f1k.bin"), "wb") as f: f.write(os.urandom(1024))
    with open(os.path.join(www, "f1m.bin"), "wb") as f: f.write(os.urandom(1 << 20))
    for path, mode in [(d, 0o755), (www, 0o755)] + [(os.path.join(www, n), 0o644) for n in ("f1k.bin", "f1m.bin")]:
        os.chmod(path, mode)
    crt, key = f"{d}/cert.pem", f"{d}/key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={HOST}",
                    "-addext", f"subjectAltName=DNS:{HOST}"], check=True, capture_output=True)
    os.chmod(key, 0o644)
    origin, nginx_edge, lg = port(), port(), port()
    common = f"error_log {d}/nginx-error.log; pid {d}/%s.pid; daemon off; events {{ worker_connections 16384; }}\n"
    temp = f"client_body_temp_path {d}/cb; proxy_temp_path {d}/pt; fastcgi_temp_path {d}/ft; uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st; access_log off;"
    with open(f"{d}/origin.conf", "w") as f:
        f.write((common % "origin") + f"""worker_processes 1;
http {{ {temp} sendfile on; tcp_nopush on; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{origin} backlog=4096; root {www}; }} }}
""")
    with open(f"{d}/edge.conf", "w") as f:
        f.write((common % "edge") + f"""worker_processes 1;
http {{ {temp} keepalive_requests 1000000; http2_max_concurrent_streams 128;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 128; }}
  server {{ listen 127.0.0.1:{nginx_edge} ssl http2 backlog=4096;
    ssl_certificate {crt}; ssl_certificate_key {key};
    location / {{ secure_link $arg_md5,$arg_expires;
      secure_link_md5 "$secure_link_expires$uri {KEY}";
      if ($secure_link = "") {{ return 403; }}
      if ($secure_link = "0") {{ return 403; }}
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_max_temp_file_size 0; }} }} }}
""")
    start(["nginx", "-p", d, "-c", f"{d}/origin.conf"], LOAD_CORE)
    start(["nginx", "-p", d, "-c", f"{d}/edge.conf"], EDGE_CORE)
    conf = f"{d}/lg.yaml"
    with open(conf, "w") as f:
        f.write(f"""server: {{ threads: 1, pid_file: {d}/lg.pid, upgrade_sock: {d}/lg.sock }}
listen:
  - {{ addr: "127.0.0.1:{lg}", tls: {{ cert: {crt}, key: {key} }} }}
domains:
  - name: {HOST}
    origin: {{ peers: ["127.0.0.1:{origin}"] }}
    auth: [ {{ scene: pull, scheme: secure_link, keys: [{KEY}] }} ]
""")
    start([LIVEGATE, "-c", conf], EDGE_CORE, env=dict(os.environ, RUST_LOG="warn"))
    for p, what in [(origin, "origin nginx"), (nginx_edge, "nginx edge"), (lg, "livegate")]:
        wait_port(p, what)

    def signed(path):
        out = subprocess.run([LIVEGATE, "sign", "-c", conf, "--url", f"https://{HOST}{path}", "--ttl", "86400"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return out[len(f"https://{HOST}"):]

    rows = []
    for what, name, h1_conns, (h2_conns, streams) in LOADS:
        path = signed(f"/{name}")
        for edge, p in [("nginx", nginx_edge), ("livegate", lg)]:
            url = f"https://127.0.0.1:{p}{path}"
            res = {}
            for proto, h1, c, m in [("HTTP/1.1", True, h1_conns, 1), ("h2", False, h2_conns, streams)]:
                res[proto] = h2load(url, h1, c, m, f"{d}/{edge}-{name}-{proto.replace('/', '')}.log")
                want = "http/1.1" if h1 else "h2"
                if res[proto]["proto"] != want:
                    sys.exit(f"{edge} spoke {res[proto]['proto']}, not {want}")
            rows.append((what, edge, res))
    print(f"\n### h2 against HTTP/1.1 ({DURATION} s per cell, one edge core)\n")
    print("| load | edge | HTTP/1.1 req/s per core | p99 ms | h2 req/s per core | p99 ms | h2 ÷ HTTP/1.1 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for what, edge, res in rows:
        h1, h2 = res["HTTP/1.1"], res["h2"]
        print(f"| {what} | {edge} | {h1['per_core']:,.0f} | {h1['p99']:.2f} | {h2['per_core']:,.0f} | {h2['p99']:.2f} | {h2['per_core'] / h1['per_core']:.2f} |")
    print("\n| load | protocol | livegate ÷ nginx (req/s per core) |")
    print("| --- | --- | --- |")
    by = {(w, e): r for w, e, r in rows}
    for what, *_ in LOADS:
        for proto in ("HTTP/1.1", "h2"):
            ratio = by[(what, "livegate")][proto]["per_core"] / by[(what, "nginx")][proto]["per_core"]
            print(f"| {what} | {proto} | {ratio:.2f} |")


def h2load(url, h1, conns, streams, log):
    """h2load for DURATION s against `url` (on 127.0.0.1, with HOST as its authority)."""
    cmd = ["taskset", "-c", LOAD_CORE, "h2load", "-t1", f"-c{conns}", f"-m{streams}",
           f"-D{DURATION}", "--warm-up-time=1", f"--log-file={log}", "-H", f":authority: {HOST}", url]
    if h1:
        cmd.insert(4, "--h1")
    before = cpu_times()
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    after = cpu_times()
    busy = 1 - (after[EDGE_CORE][1] - before[EDGE_CORE][1]) / max(1, after[EDGE_CORE][0] - before[EDGE_CORE][0])
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not m or int(m.group(2)) == 0 or not re.search(r"status codes: \d+ 2xx, 0 3xx, 0 4xx, 0 5xx", out):
        sys.exit(f"h2load on {url} failed:\n{out}")
    proto = re.search(r"Application protocol: (\S+)", out)
    times = sorted(int(l.split("\t")[2]) for l in open(log) if l.count("\t") >= 2)
    p99 = times[int(len(times) * 0.99) - 1] / 1000 if times else float("nan")
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    return {"rps": rps, "per_core": rps / max(busy, 0.01), "busy": busy, "p99": p99,
            "proto": proto.group(1) if proto else "?"}


if __name__ == "__main__":
    try:
        main()
    finally:
        from common import procs
        for p in procs:
            p.terminate()

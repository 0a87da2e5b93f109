"""What the benchmark scripts share: free ports, waiting for a listener, processes
pinned to a core (stopped at exit), their RSS and children, per-core CPU times, and a one-domain
livegate config with a `secure_link` rule or the rule disabled."""
import re, signal, socket, subprocess, sys, time

procs = []


def start(cmd, core, **kw):
    """Starts `cmd` pinned to `core`; kept in `procs` to be stopped at the end."""
    p = subprocess.Popen(["taskset", "-c", core] + cmd, stdout=subprocess.DEVNULL,
                         stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
    procs.append(p)
    return p


def cpu_times():
    """(total, idle) jiffies per core, from /proc/stat."""
    r = {}
    for line in open("/proc/stat"):
        f = line.split()
        if f[0].startswith("cpu") and f[0][3:].isdigit():
            r[f[0][3:]] = (sum(map(int, f[1:])), int(f[4]) + int(f[5]))
    return r


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def children(pid):
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(p, what, proc=None, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", p), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {p}")


def livegate_conf(d, name, p, host, origin, key, auth, server_extra="", domain_extra=""):
    """Writes `{d}/{name}.yaml`: livegate on port `p` in front of `origin`, one
    worker thread, `host` guarded by `secure_link` with `key` (or not, `auth` off);
    `domain_extra` adds keys to the domain (e.g. `hls: {rewrite: false}`)."""
    rule = f"{{ scene: pull, scheme: secure_link, keys: [{key}] }}" if auth else "{ scene: pull, enabled: false }"
    path = f"{d}/{name}.yaml"
    with open(path, "w") as f:
        f.write(f"""server: {{ threads: 1, pid_file: {d}/{name}.pid, upgrade_sock: {d}/{name}.sock{server_extra} }}
listen: ["127.0.0.1:{p}"]
domains:
  - name: {host}
    origin: {{ peers: ["127.0.0.1:{origin}"] }}
    auth: [ {rule} ]
{domain_extra}""")
    return path


def wrk(url, conns, host, duration, edge_core, load_core, latency=False):
    """One wrk run (one thread, `conns` connections) pinned to `load_core`: its
    requests/s, MB/s, p50/p99 in ms (with `latency`) and both cores' busy share."""
    cmd = ["taskset", "-c", load_core, "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "-H", f"Host: {host}", url]
    if latency:
        cmd.insert(4, "--latency")
    before = cpu_times()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = cpu_times()
    busy = {c: 100 * (1 - (after[c][1] - before[c][1]) / max(1, after[c][0] - before[c][0])) for c in after}
    if re.search(r"Non-2xx", out):
        sys.exit(f"wrk saw errors on {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    tput = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    mb = float(tput.group(1)) * {"B": 1e-6, "KB": 1e-3, "MB": 1, "GB": 1e3}[tput.group(2)]

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)] if m else None
    return {"rps": rps, "mbps": mb, "p50": pct(50), "p99": pct(99), "edge_cpu": busy[edge_core], "load_cpu": busy[load_core]}


def per_core(runs, key="rps"):
    """The best of `runs` divided by the edge core's busy share: what one whole
    core would do (the load core may saturate before the edge does)."""
    return max(r[key] * 100 / max(r["edge_cpu"], 1) for r in runs)


def best(runs, key, low=False):
    vals = [r[key] for r in runs if r[key] is not None]
    return min(vals) if low else max(vals)


def get(p, path, host, headers=False):
    """One request on its own connection: the status (and the raw head, with `headers`)."""
    s = socket.create_connection(("127.0.0.1", p))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    code = int(data.split(b" ")[1])
    return (code, data.split(b"\r\n\r\n", 1)[0].decode("latin-1")) if headers else code


def run(main):
    """Runs `main`, then stops every process it started: nginx gracefully
    (SIGQUIT), the rest with SIGINT, and whatever is left half a second later."""
    try:
        main()
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT if p.args[3:4] != ["nginx"] else signal.SIGQUIT)
        time.sleep(0.5)
        for p in procs:
            p.kill()


def nginx_conf(d, name, http, nofile=65536):
    """Writes `{d}/{name}.conf`: nginx with one worker in the foreground, its
    temp files and logs under `d`, no access log, and `http` inside `http {}`."""
    path = f"{d}/{name}.conf"
    with open(path, "w") as f:
        f.write(f"""worker_rlimit_nofile {nofile}; error_log {d}/nginx-error.log; pid {d}/{name}.pid; daemon off;
master_process on; worker_processes 1; events {{ worker_connections 16384; }}
http {{ client_body_temp_path {d}/cb; proxy_temp_path {d}/pt; fastcgi_temp_path {d}/ft;
  uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st; access_log off;
{http} }}
""")
    return path


def secure_link_proxy(key):
    """What a livegate `secure_link` rule does, in nginx: check `md5`/`expires`
    (403 otherwise), then proxy to `upstream origin` with keep-alive."""
    return f"""secure_link $arg_md5,$arg_expires;
      secure_link_md5 "$secure_link_expires$uri {key}";
      if ($secure_link = "") {{ return 403; }}
      if ($secure_link = "0") {{ return 403; }}
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";"""

"""What the benchmark scripts share: free ports, waiting for a listener, processes
pinned to a core (stopped at exit), their RSS and children, per-core CPU times, and a one-domain
livegate config with a `secure_link` rule or the rule disabled."""
import re, socket, subprocess, sys, time

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

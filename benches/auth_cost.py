"""The cost of livegate's own auth, and of livegate over bare Pingora, in
instructions per request (callgrind).

Two livegates differ only in the rule: `secure_link` (auth on) or `enabled: false`
(auth off). Each runs under callgrind twice, serving N1 and then N2 requests on
one keep-alive connection; (I(N2) - I(N1)) / (N2 - N1) is the cost of a request
with start-up and shutdown cancelled out. Deterministic to a few instructions,
unlike wrk, whose run-to-run noise is larger than the effect.

The framework floor is the same count for a bare Pingora proxy
(benches/bare_proxy.rs) and for livegate, both proxying a 1 KB object (not an
HLS object, so livegate's cache stays out of it) from a keep-alive origin.
"""
import http.client, http.server, os, re, signal, subprocess, sys, tempfile, threading

from common import livegate_conf, port, wait_port

LIVEGATE = sys.argv[1]
BARE = sys.argv[2]
HOST, KEY = "live.example.com", "benchKey123"
N1, N2 = int(os.environ.get("N1", 500)), int(os.environ.get("N2", 2500))
PATH = "/live/bench.m3u8"


def instructions(d, name, origin, auth, url, n, extra="", bare=False):
    """Total instructions of one livegate process (or, with `bare`, one bare
    Pingora proxy) that served `n` requests."""
    p = port()
    if bare:
        cmd = [BARE, f"127.0.0.1:{p}", f"127.0.0.1:{origin}"]
    else:
        cmd = [LIVEGATE, "-c", livegate_conf(d, f"{name}-{p}", p, HOST, origin, KEY, auth, domain_extra=extra)]
    out = f"{d}/{name}-{n}.callgrind"
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, RUST_LOG="warn"))
    wait_port(p, "the proxy under callgrind", proc, seconds=60)
    c = http.client.HTTPConnection("127.0.0.1", p, timeout=30)
    for _ in range(n):
        c.request("GET", url, headers={"Host": HOST})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"{url} answered {r.status}")
    c.close()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    with open(out) as f:
        m = re.search(r"^summary:\s*(\d+)", f.read(), re.M)
    if not m:
        sys.exit(f"no summary in {out}")
    return int(m.group(1))


class OneKilobyte(http.server.BaseHTTPRequestHandler):
    """A keep-alive origin of one 1 KB object at every path."""
    protocol_version = "HTTP/1.1"
    body = os.urandom(1024)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def per_request(d, name, origin, auth, url, extra="", bare=False):
    """Instructions of one request: the difference of an N2 and an N1 run."""
    a, b = (instructions(d, name, origin, auth, url, n, extra, bare) for n in (N1, N2))
    return (b - a) / (N2 - N1)


def main():
    d = tempfile.mkdtemp(prefix="lgauthcost")
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OneKilobyte)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    kb_origin = plain.server_address[1]
    origin = port()
    demo = subprocess.Popen([LIVEGATE, "demo-origin", "--listen", f"127.0.0.1:{origin}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(origin, "demo origin", demo)
        def sign(path):
            return subprocess.run([LIVEGATE, "sign", "-c", livegate_conf(d, "sign", 1, HOST, origin, KEY, True),
                                   "--url", f"http://{HOST}{path}", "--ttl", "86400"],
                                  capture_output=True, text=True, check=True).stdout.strip()[len(f"http://{HOST}"):]
        signed, kb = sign(PATH), sign("/f1k.bin")
        per = {}
        # The same signed URL to both: with the rule disabled its parameters pass
        # through untouched, so the difference is our auth alone, not the cost of
        # parsing a longer request line. A 1 KB object, proxied: an HLS object
        # would be answered by the micro-cache.
        per["off"] = per_request(d, "off", kb_origin, False, kb)
        per["on"] = per_request(d, "on", kb_origin, True, kb)
        per["bare"] = per_request(d, "bare", kb_origin, False, "/f1k.bin", bare=True)
        # A cached playlist hit, as is ("hit") and with segment tokens minted and
        # written into it per viewer ("tokens").
        per["hit"] = per_request(d, "hit", origin, True, signed, "    hls: { rewrite: false }\n")
        per["tokens"] = per_request(d, "tokens", origin, True, signed)
        print(f"| instructions per request ({N2 - N1} requests, callgrind) | without | with | without / with | target |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| 1 KB proxied: livegate, `enabled: false` / `secure_link` rule (our auth) | {per['off']:,.0f} | {per['on']:,.0f} "
              f"| {per['off'] / per['on']:.3f} | ≥ 0.97 |")
        print(f"| 1 KB proxied: bare Pingora 0.9 / livegate with the rule (our overhead) | {per['bare']:,.0f} | {per['on']:,.0f} "
              f"| {per['bare'] / per['on']:.3f} | ≥ 0.95 |")
        print(f"| cached playlist hit: as is / segment tokens written in | {per['hit']:,.0f} | {per['tokens']:,.0f} "
              f"| {per['hit'] / per['tokens']:.3f} | |")
        print(f"\nauth costs {per['on'] - per['off']:,.0f} instructions per request, livegate over bare Pingora "
              f"{per['on'] - per['bare']:,.0f}, segment tokens {per['tokens'] - per['hit']:,.0f} per playlist; "
              f"callgrind files in {d}")
    finally:
        demo.kill()


main()

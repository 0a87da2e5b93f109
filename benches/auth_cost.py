"""The cost of livegate's own auth, in instructions per request (callgrind).

Two livegates differ only in the rule: `secure_link` (auth on) or `enabled: false`
(auth off). Each runs under callgrind twice, serving N1 and then N2 requests on
one keep-alive connection; (I(N2) - I(N1)) / (N2 - N1) is the cost of a request
with start-up and shutdown cancelled out. Deterministic to a few instructions,
unlike wrk, whose run-to-run noise is larger than the effect.
"""
import http.client, os, re, signal, subprocess, sys, tempfile

from common import livegate_conf, port, wait_port

LIVEGATE = sys.argv[1]
HOST, KEY = "live.example.com", "benchKey123"
N1, N2 = int(os.environ.get("N1", 500)), int(os.environ.get("N2", 2500))
PATH = "/live/bench.m3u8"


def instructions(d, name, origin, auth, url, n, extra=""):
    """Total instructions of one livegate process that served `n` requests."""
    p = port()
    run_conf = livegate_conf(d, f"{name}-{p}", p, HOST, origin, KEY, auth, domain_extra=extra)
    out = f"{d}/{name}-{n}.callgrind"
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                             LIVEGATE, "-c", run_conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, RUST_LOG="warn"))
    wait_port(p, "livegate under callgrind", proc, seconds=60)
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


def main():
    d = tempfile.mkdtemp(prefix="lgauthcost")
    origin = port()
    demo = subprocess.Popen([LIVEGATE, "demo-origin", "--listen", f"127.0.0.1:{origin}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(origin, "demo origin", demo)
        signed = subprocess.run([LIVEGATE, "sign", "-c", livegate_conf(d, "sign", 1, HOST, origin, KEY, True),
                                 "--url", f"http://{HOST}{PATH}", "--ttl", "86400"],
                                capture_output=True, text=True, check=True).stdout.strip()[len(f"http://{HOST}"):]
        per = {}
        # The same signed URL to both: with the rule disabled its parameters pass
        # through untouched, so the difference is our auth alone, not the cost of
        # parsing a longer request line.
        # "on": the signature alone (segment tokens off, as before they existed);
        # "tokens": the same with segment tokens minted and written into the playlist.
        no_tokens = "    hls: { rewrite: false }\n"
        for name, auth, extra in (("off", False, ""), ("on", True, no_tokens), ("tokens", True, "")):
            a, b = (instructions(d, name, origin, auth, signed, n, extra) for n in (N1, N2))
            per[name] = (b - a) / (N2 - N1)
        print(f"| livegate, instructions per request ({N2 - N1} requests) | auth off | auth on | off / on | target |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| 1 playlist request, `secure_link` rule vs `enabled: false` | {per['off']:,.0f} | {per['on']:,.0f} "
              f"| {per['off'] / per['on']:.3f} | ≥ 0.97 |")
        print(f"| the same, segment tokens written into the playlist | {per['off']:,.0f} | {per['tokens']:,.0f} "
              f"| {per['off'] / per['tokens']:.3f} | |")
        print(f"\nauth costs {per['on'] - per['off']:,.0f} instructions per request, segment tokens "
              f"{per['tokens'] - per['on']:,.0f} more per playlist; callgrind files in {d}")
    finally:
        demo.kill()


main()

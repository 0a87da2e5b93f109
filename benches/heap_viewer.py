"""Where a fan-out FLV viewer's memory goes: valgrind massif on a
`system-alloc` build (see heap_viewer.sh). The difference per viewer is split by
the allocation site that owns it: walking up from the allocator, the first
frame of livegate, Pingora or tokio. Two runs, one viewer and VIEWERS
viewers of one stream, compared while they stream."""
import asyncio, os, re, signal, subprocess, sys, tempfile, time

from common import livegate_conf, port, wait_port

LIVEGATE = sys.argv[1]
VIEWERS = int(os.environ.get("VIEWERS", "200"))
HOST = "bench.example.com"


async def hold(p, n, seconds):
    """`n` viewers of one stream, reading for `seconds`."""
    async def view():
        r, w = await asyncio.open_connection("127.0.0.1", p)
        w.write(f"GET /live/cam1.flv HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        end = time.time() + seconds
        while time.time() < end:
            if not await r.read(65536):
                return
        w.close()
    await asyncio.gather(*(view() for _ in range(n)))


def snapshots(path):
    """massif's snapshots: (time, heap bytes, the tree's text) each."""
    text = open(path).read()
    out = []
    for block in text.split("snapshot=")[1:]:
        heap = int(re.search(r"mem_heap_B=(\d+)", block).group(1))
        extra = int(re.search(r"mem_heap_extra_B=(\d+)", block).group(1))
        t = int(re.search(r"time=(\d+)", block).group(1))
        out.append((t, heap + extra, block))
    return out


def interesting(name):
    """A frame of livegate, Pingora or tokio itself (not of a generic container
    they call, whose own caller is the one that holds the memory)."""
    generic = ("alloc::", "<alloc::", "core::", "<core::", "std::", "<std::", "hashbrown::",
               "<hashbrown::", "bytes::", "<bytes::", "http::", "<http::", "malloc", "realloc", "calloc")
    return any(k in name for k in ("livegate::", "pingora", "tokio::")) and not name.startswith(generic)


def sites(block):
    """Bytes per allocation site of a detailed snapshot: walking up each stack
    from the allocator, the first frame of livegate, Pingora or tokio."""
    per = {}
    owner = None   # depth of the frame the current subtree is counted to
    for line in block.splitlines():
        m = re.match(r"^( *)n\d+: (\d+) (?:0x[0-9A-F]+: )?(.*)$", line)
        if not m:
            continue
        depth, size = len(m.group(1)), int(m.group(2))
        if owner is not None and depth > owner:
            continue
        owner = None
        name = re.sub(r" \((?:in )?[^()]*\)$", "", m.group(3))
        if interesting(name):
            per[name] = per.get(name, 0) + size
            owner = depth
    return per


def profile(d, origin, n):
    """livegate under massif with `n` viewers of one stream (after one viewer
    started its pull): the heap and its sites at the largest snapshot of the
    second half of their 30 s, when every viewer has joined and streams (a
    viewer's join is served inside Pingora's request and costs more)."""
    p = port()
    out = f"{d}/massif-{n}.out"
    conf = livegate_conf(d, f"lg{n}", p, HOST, origin, "unused", False)
    started = time.time()
    lg = subprocess.Popen(["valgrind", "--tool=massif", "--time-unit=ms", "--depth=40", "--threshold=0.1",
                           "--detailed-freq=1", "--max-snapshots=100", f"--massif-out-file={out}",
                           LIVEGATE, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=dict(os.environ, RUST_LOG="warn"))
    try:
        wait_port(p, "livegate under massif", lg, seconds=120)
        asyncio.run(hold(p, 1, 5))
        held = (time.time() - started) * 1000
        asyncio.run(hold(p, n, 30))
    finally:
        lg.send_signal(signal.SIGINT)
        lg.wait(timeout=300)
    steady = [s for s in snapshots(out) if "heap_tree=empty" not in s[2] and held + 15_000 <= s[0] <= held + 29_000]
    if not steady:
        sys.exit(f"massif kept no detailed snapshot of the viewers streaming ({out})")
    peak = max(steady, key=lambda s: s[1])
    return peak[1], sites(peak[2]), out


def main():
    d = tempfile.mkdtemp(prefix="lgheap")
    origin = port()
    demo = subprocess.Popen([LIVEGATE, "demo-origin", "--listen", f"127.0.0.1:{origin}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(origin, "demo origin", demo)
        one, a, _ = profile(d, origin, 1)
        many, b, out = profile(d, origin, VIEWERS)
    finally:
        demo.kill()
    n = VIEWERS - 1
    print(f"heap while streaming with 1 viewer {one / 1024:,.0f} KB, with {VIEWERS} {many / 1024:,.0f} KB: "
          f"{(many - one) / n / 1024:.1f} KB per viewer (massif on the system allocator, its overhead included)\n")
    rows = sorted(((b.get(k, 0) - a.get(k, 0)) / n, k) for k in set(a) | set(b))
    print("| per viewer | first livegate, Pingora or tokio frame above the allocation |")
    print("| --- | --- |")
    for v, k in rows[::-1][:20]:
        if v >= 200:
            print(f"| {v / 1024:.1f} KB | `{k[:160]}` |")
    print(f"\nmassif files in {d}")


main()

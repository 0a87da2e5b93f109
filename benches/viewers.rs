//! FLV viewers at scale (#25): `VIEWERS` viewers (2,000 by default) of
//! `STREAMS` live streams (20) at `KBPS` (2,000 kbit/s) through livegate's
//! fan-out, read by a tokio client that keeps thousands of connections open —
//! Python cannot read Gb/s. Prints the edge's CPU per viewer, its Gb/s per
//! busy core, RSS per viewer, and the viewers that fell behind (under 90 % of
//! the stream's rate over the window) or were cut.
//!
//!   cargo bench --bench viewers                      # VIEWERS=2000 SECONDS=10
//!   VIEWERS=5000 cargo bench --bench viewers
//!
//! The edge runs pinned to core 0; the origin (in this process, paced in real
//! time) and the viewers on the others. `cargo test --all-targets` runs it as a
//! 40-viewer smoke run that keeps it working.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{origin_yaml, Livegate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One FLV tag.
fn tag(kind: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
    let size = payload.len() as u32;
    let t = ts.to_be_bytes();
    let mut out = vec![kind];
    out.extend_from_slice(&size.to_be_bytes()[1..]);
    out.extend_from_slice(&[t[1], t[2], t[3], t[0], 0, 0, 0]);
    out.extend_from_slice(payload);
    out.extend_from_slice(&(size + 11).to_be_bytes());
    out
}

/// An endless live FLV at `kbps`: 25 video tags a second (a keyframe every 2 s)
/// and 50 audio tags, paced in real time. The edge parses and fans it out; the
/// bytes are no picture (the tests decode real media).
async fn origin(kbps: u64) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = vec![0u8; 4096];
                let _ = s.read(&mut head).await;
                let mut start =
                    b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\n\
                    FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
                        .to_vec();
                start.extend(tag(9, 0, &[0x17, 0, 0, 0, 0, 1, 1, 1, 1]));
                start.extend(tag(8, 0, &[0xaf, 0, 0x12, 0x10]));
                if s.write_all(&start).await.is_err() {
                    return;
                }
                let per_s = kbps * 1000 / 8;
                let video = (per_s.saturating_sub(50 * 200) / 25).max(64) as usize;
                let t0 = tokio::time::Instant::now();
                for n in 0u32.. {
                    let ts = n * 40;
                    let mut v = vec![if n % 50 == 0 { 0x17 } else { 0x27 }, 1, 0, 0, 0];
                    v.resize(video, 0x55);
                    let mut a = vec![0xaf, 1];
                    a.resize(200, 0x21);
                    let mut chunk = tag(9, ts, &v);
                    chunk.extend(tag(8, ts, &a));
                    chunk.extend(tag(8, ts + 20, &a));
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep_until(t0 + Duration::from_millis(40 * (n as u64 + 1))).await;
                }
            });
        }
    });
    port
}

/// The CPU time (user + system) of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The resident set of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// One viewer: a request, then reading forever; its bytes counted in `bytes`.
async fn viewer(port: u16, request: String, bytes: Arc<AtomicU64>, open: Arc<AtomicBool>) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    if s.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    open.store(true, Ordering::Relaxed);
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    open.store(false, Ordering::Relaxed);
}

#[tokio::main]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let viewers = env("VIEWERS", if bench { 2000 } else { 40 }) as usize;
    let streams = env("STREAMS", if bench { 20 } else { 4 }) as usize;
    let seconds = env("SECONDS", if bench { 10 } else { 3 });
    let kbps = env("KBPS", 2000);
    let port = origin(kbps).await;
    let lg = Livegate::start(&format!(
        "  - name: \"127.0.0.1\"\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [benchKey2026] }}\n",
        origin_yaml(&[format!("127.0.0.1:{port}")], "")
    ));
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-pc", "0", &lg.pid().to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    let rss_before = rss(lg.pid());
    let paths: Vec<String> = (0..streams)
        .map(|i| {
            let url = lg.sign(&format!("http://127.0.0.1/live/s{i}.flv"), &[]);
            url["http://127.0.0.1".len()..].to_owned()
        })
        .collect();
    let counters: Vec<(Arc<AtomicU64>, Arc<AtomicBool>)> =
        (0..viewers).map(|_| Default::default()).collect();
    for (i, (bytes, open)) in counters.iter().enumerate() {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            paths[i % streams]
        );
        tokio::spawn(viewer(lg.port, request, bytes.clone(), open.clone()));
        // Arrivals over about two seconds, as a crowd joins.
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Settle: every viewer connected and past its burst of the current GOP.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start: Vec<u64> = counters
        .iter()
        .map(|(b, _)| b.load(Ordering::Relaxed))
        .collect();
    let cpu = cpu_seconds(lg.pid());
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds(lg.pid()) - cpu;
    let rss_after = rss(lg.pid());
    let got: Vec<u64> = counters
        .iter()
        .zip(&start)
        .map(|((b, _), s)| b.load(Ordering::Relaxed) - s)
        .collect();
    let want = kbps as f64 * 1000.0 / 8.0 * elapsed;
    let behind = got.iter().filter(|&&g| (g as f64) < 0.9 * want).count();
    let cut = counters
        .iter()
        .filter(|(_, o)| !o.load(Ordering::Relaxed))
        .count();
    let total: u64 = got.iter().sum();
    let gbps = total as f64 * 8.0 / elapsed / 1e9;
    let busy = cpu / elapsed;
    println!(
        "\n{viewers} FLV viewers of {streams} streams at {kbps} kbit/s, {seconds} s measured; \
         livegate{}.\n",
        if pinned {
            " pinned to core 0"
        } else {
            " (not pinned: taskset failed)"
        }
    );
    println!("| edge | Gb/s out | edge CPU, % of a core | Gb/s per busy core | CPU per viewer, % of a core | RSS per viewer | fell behind | cut |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| livegate (fan-out) | {gbps:.2} | {:.0} | {:.2} | {:.3} | {} KB | {behind} | {cut} |",
        busy * 100.0,
        gbps / busy.max(0.001),
        busy * 100.0 / viewers as f64,
        rss_after.saturating_sub(rss_before) / viewers as u64 / 1024,
    );
    // The smoke run holds the client to what it measures: every viewer got
    // the stream (a loaded CI box is allowed to be slow, not to lose viewers).
    if !bench {
        assert_eq!(cut, 0, "viewers cut: {cut} of {viewers}");
        assert!(got.iter().all(|&g| g > 0), "a viewer got nothing: {got:?}");
    }
}

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

#[path = "common.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cpu_seconds, env, rss};
use support::{origin_yaml, Livegate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// What one edge did for the viewers over the window.
struct Row {
    gbps: f64,
    /// The edge's CPU, in cores (1.0: one core busy).
    busy: f64,
    rss_per_viewer: u64,
    behind: usize,
    cut: usize,
    empty: usize,
}

/// The load: how many viewers of which paths, for how long, at what rate.
struct Load {
    viewers: usize,
    paths: Vec<String>,
    seconds: u64,
    kbps: u64,
}

/// Puts the viewers on the edge at `port` (process `pid`, pinned to core 0 by
/// the caller), measures, and closes them again.
async fn measure(port: u16, pid: u32, load: &Load) -> Row {
    let rss_before = rss(pid);
    let counters: Vec<(Arc<AtomicU64>, Arc<AtomicBool>)> =
        (0..load.viewers).map(|_| Default::default()).collect();
    let mut tasks = Vec::new();
    for (i, (bytes, open)) in counters.iter().enumerate() {
        let path = &load.paths[i % load.paths.len()];
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        tasks.push(tokio::spawn(viewer(
            port,
            request,
            bytes.clone(),
            open.clone(),
        )));
        // Arrivals over a few seconds, as a crowd joins.
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
    let cpu = cpu_seconds(pid);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(load.seconds)).await;
    let elapsed = t.elapsed().as_secs_f64();
    let busy = (cpu_seconds(pid) - cpu) / elapsed;
    let rss_after = rss(pid);
    let got: Vec<u64> = counters
        .iter()
        .zip(&start)
        .map(|((b, _), s)| b.load(Ordering::Relaxed) - s)
        .collect();
    let cut = counters
        .iter()
        .filter(|(_, o)| !o.load(Ordering::Relaxed))
        .count();
    for t in &tasks {
        t.abort();
    }
    let want = load.kbps as f64 * 1000.0 / 8.0 * elapsed;
    Row {
        gbps: got.iter().sum::<u64>() as f64 * 8.0 / elapsed / 1e9,
        busy,
        rss_per_viewer: rss_after.saturating_sub(rss_before) / load.viewers as u64,
        behind: got.iter().filter(|&&g| (g as f64) < 0.9 * want).count(),
        cut,
        empty: got.iter().filter(|&&g| g == 0).count(),
    }
}

/// nginx `proxy_pass` to the origin (one worker, no buffering: each viewer its
/// own origin connection, as nginx proxies a live stream).
fn nginx(origin: u16) -> (support::media::Proc, u16, tempfile::TempDir) {
    support::media::need("nginx", "nginx");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let port = support::free_port();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nworker_rlimit_nofile 40000;\n\
         error_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{ worker_connections 20000; }}\n\
         http {{ access_log off; client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; \
         fastcgi_temp_path {d}/t3; uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://127.0.0.1:{origin}; \
         proxy_buffering off; proxy_http_version 1.1; }} }} }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = std::process::Command::new("nginx")
        .args(["-p", &d, "-c", &format!("{d}/nginx.conf")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let proc = support::media::Proc(child);
    support::media::wait_listening(port, "nginx");
    (proc, port, dir)
}

fn pin(pid: u32) -> bool {
    std::process::Command::new("taskset")
        .args(["-a", "-pc", "0", &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::main]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let viewers = env("VIEWERS", if bench { 2000 } else { 40 }) as usize;
    let streams = env("STREAMS", if bench { 20 } else { 4 }) as usize;
    let seconds = env("SECONDS", if bench { 10 } else { 3 });
    let kbps = env("KBPS", 2000);
    let port = origin(kbps).await;
    // `VARIANT_FANOUT="{ coalesce_ms: 100 }"`: a second livegate with those
    // fan-out settings, measured in the same run.
    // `VARIANT_BIN=path`: another livegate binary, measured in the same run.
    let variant = std::env::var("VARIANT_FANOUT").ok();
    let variant_bin = std::env::var_os("VARIANT_BIN").map(std::path::PathBuf::from);
    let edge = |fanout: Option<&str>, program: Option<&std::path::Path>| {
        let extra = fanout.map(|f| format!(", fanout: {f}")).unwrap_or_default();
        let domains = format!(
            "  - name: \"127.0.0.1\"\n    origin: {}\n    auth:\n      \
             - {{ scene: pull, scheme: tencent, keys: [benchKey2026] }}\n",
            origin_yaml(&[format!("127.0.0.1:{port}")], &extra)
        );
        match program {
            Some(p) => Livegate::start_program(p, &domains),
            None => Livegate::start(&domains),
        }
    };
    let lg = edge(None, None);
    let pinned = pin(lg.pid());
    let paths: Vec<String> = (0..streams)
        .map(|i| {
            let url = lg.sign(&format!("http://127.0.0.1/live/s{i}.flv"), &[]);
            url["http://127.0.0.1".len()..].to_owned()
        })
        .collect();
    let load = Load {
        viewers,
        paths,
        seconds,
        kbps,
    };
    let ours = measure(lg.port, lg.pid(), &load).await;
    drop(lg);
    let varied = match &variant {
        Some(v) => {
            let lg = edge(Some(v), None);
            pin(lg.pid());
            Some(measure(lg.port, lg.pid(), &load).await)
        }
        None => None,
    };
    let other_bin = match &variant_bin {
        Some(p) => {
            let lg = edge(None, Some(p));
            pin(lg.pid());
            Some(measure(lg.port, lg.pid(), &load).await)
        }
        None => None,
    };
    // nginx in the same run (the smoke run keeps to livegate).
    let theirs = match bench && std::env::var_os("NO_NGINX").is_none() {
        true => {
            let (proc, port, _dir) = nginx(port);
            pin(proc.0.id());
            let row = measure(port, proc.0.id(), &load).await;
            Some(row)
        }
        false => None,
    };
    println!(
        "\n{viewers} FLV viewers of {streams} streams at {kbps} kbit/s, {seconds} s measured; \
         each edge alone{}, the origin and viewers in this process.\n",
        if pinned {
            " on core 0"
        } else {
            " (not pinned: taskset failed)"
        }
    );
    println!("| edge | Gb/s out | edge CPU, % of a core | Gb/s per busy core | CPU per viewer, % of a core | RSS per viewer | fell behind | cut |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let line = |name: &str, r: &Row| {
        println!(
            "| {name} | {:.2} | {:.0} | {:.2} | {:.4} | {} KB | {} | {} |",
            r.gbps,
            r.busy * 100.0,
            r.gbps / r.busy.max(0.001),
            r.busy * 100.0 / viewers as f64,
            r.rss_per_viewer / 1024,
            r.behind,
            r.cut
        )
    };
    line("livegate (fan-out)", &ours);
    if let (Some(v), Some(r)) = (&variant, &varied) {
        line(&format!("livegate, fanout: {v}"), r);
    }
    if let (Some(p), Some(r)) = (&variant_bin, &other_bin) {
        line(&format!("livegate, {}", p.display()), r);
    }
    if let Some(t) = &theirs {
        line("nginx (proxy_pass)", t);
        println!(
            "\nlivegate ÷ nginx: CPU per viewer {:.2}, Gb/s per busy core {:.2}",
            ours.busy / t.busy.max(0.001),
            (ours.gbps / ours.busy.max(0.001)) / (t.gbps / t.busy.max(0.001)),
        );
    }
    // The smoke run holds the client to what it measures: every viewer got
    // the stream (a loaded CI box is allowed to be slow, not to lose viewers).
    if !bench {
        assert_eq!(ours.cut, 0, "viewers cut: {} of {viewers}", ours.cut);
        assert_eq!(ours.empty, 0, "viewers that got nothing: {}", ours.empty);
    }
}

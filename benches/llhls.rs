//! LL-HLS at the edge under load: `PLAYERS` simulated low-latency players (500
//! by default; each a blocking playlist request and a preload-hint fetch at
//! once, as hls.js does) of one real LL-HLS origin (ffmpeg fMP4 parts of
//! 200 ms, tests/support/llhls.rs) through livegate with its cache. Prints
//! origin requests per part and per blocking playlist version, the edge's CPU,
//! and how long after the origin finished a part the last player had it.
//!
//!   bash benches/llhls.sh        # PLAYERS=500 DURATION=10
//!
//! The edge runs pinned to core 0; the origin, ffmpeg and the players on core 1.

#[path = "common.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{cpu_seconds, env};
use support::llhls::{player, LlOrigin};
use support::{origin_yaml, Livegate};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this too,
    // as a short smoke run that keeps the benchmark working.
    let bench = std::env::args().any(|a| a == "--bench");
    let players = env("PLAYERS", if bench { 500 } else { 20 }) as usize;
    let seconds = env("DURATION", if bench { 10 } else { 3 });
    let origin = LlOrigin::start().await;
    let lg = Livegate::start(&format!(
        "  - name: \"127.0.0.1\"\n    stream_path: nested\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [benchKey2026] }}\n    cache: {{ max_bytes: 268435456 }}\n",
        origin_yaml(&[format!("127.0.0.1:{}", origin.port)], "")
    ));
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-pc", "0", &lg.pid().to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    let base = format!("http://127.0.0.1:{}/live/ll/", lg.port);
    let first = lg.sign(&format!("{base}index.m3u8"), &[]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4 * players)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let before = origin.asked();
    let cpu = cpu_seconds(lg.pid());
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..players)
        .map(|_| {
            let (c, b, f) = (client.clone(), base.clone(), first.clone());
            tokio::spawn(player(c, b, f, usize::MAX, until))
        })
        .collect();
    // Per part: when the last player had it.
    let mut last: HashMap<String, Instant> = HashMap::new();
    let (mut served, mut failed) = (0usize, 0usize);
    for t in tasks {
        match t.await {
            Ok(Ok(parts)) => {
                served += parts.len();
                for (name, at) in parts {
                    let e = last.entry(name).or_insert(at);
                    *e = (*e).max(at);
                }
            }
            _ => failed += 1,
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let edge_cpu = (cpu_seconds(lg.pid()) - cpu) / wall * 100.0;
    let mut delays: Vec<f64> = last
        .iter()
        .filter_map(|(name, at)| {
            let made = origin.made(name)?;
            Some(at.saturating_duration_since(made).as_secs_f64() * 1000.0)
        })
        .collect();
    delays.sort_by(|a, b| a.total_cmp(b));
    if delays.is_empty() {
        eprintln!("no part reached every player ({failed} players failed)");
        std::process::exit(1);
    }
    let (per_part, _) = origin.per_request(&before, |k| k.contains("/part"));
    let (per_version, _) = origin.per_request(&before, |k| k.contains("_HLS_msn="));
    println!("\n### LL-HLS through livegate: {players} players, {seconds} s\n");
    println!("| players | parts served | failed players | origin requests per part | per playlist version | edge CPU (one core{}) | part: origin done → last player has it, p50 / p99 |", if pinned { "" } else { ", not pinned" });
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {players} | {served} | {failed} | {:.3} | {:.3} | {edge_cpu:.0} % | {:.0} ms / {:.0} ms |",
        per_part,
        per_version,
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
    );
    if failed > 0 || per_part > 1.05 || per_version > 1.05 {
        eprintln!("{failed} players failed; {per_part} origin requests per part, {per_version} per version");
        std::process::exit(1);
    }
}

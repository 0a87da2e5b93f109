//! The first hour: the demo origin's media decodes in ffmpeg through livegate, and
//! `scripts/demo.sh` runs twice side by side and leaves nothing behind.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::media::{codecs, demo_origin, frames, need};
use support::{free_port, Livegate};

#[test]
fn the_demo_origins_flv_and_hls_decode_through_livegate() {
    need("ffmpeg", "ffmpeg");
    need("ffprobe", "ffmpeg");
    let origin = demo_origin();
    let lg = Livegate::start(&format!(
        "  - name: \"*\"\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [demoPullKey2026] }}\n      \
         - {{ scene: pull, app: pub, enabled: false }}\n",
        support::origin_yaml(&[format!("127.0.0.1:{}", origin.port)], "")
    ));
    let signed = lg.sign(&format!("http://127.0.0.1:{}/live/cam1.flv", lg.port), &[]);
    let c = codecs(&signed);
    assert!(c.contains("h264") && c.contains("aac"), "{c}");
    // Six seconds cross a loop of the 4-second clip: timestamps must keep going.
    let n = frames(&signed, 6);
    assert!(n >= 140, "{n} frames in 6 s of FLV");
    // Unsigned, the same stream is refused.
    let unsigned = format!("http://127.0.0.1:{}/live/cam1.flv", lg.port);
    let out = Command::new("ffprobe")
        .args(["-v", "error", &unsigned])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // HLS: a sliding playlist of real segments (public app: segment authorisation
    // is another step).
    let hls = format!("http://127.0.0.1:{}/pub/cam1.m3u8", lg.port);
    let n = frames(&hls, 6);
    assert!(n >= 140, "{n} frames in 6 s of HLS");
}

/// Starts `scripts/demo.sh` on its own ports with the test binary; returns the
/// script and the signed URL it printed.
fn start_demo(port: u16, origin: u16, metrics: u16, tmp: &std::path::Path) -> (Child, String) {
    let mut child = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("LIVEGATE_BIN", env!("CARGO_BIN_EXE_livegate"))
        .env("PORT", port.to_string())
        .env("ORIGIN_PORT", origin.to_string())
        .env("METRICS_PORT", metrics.to_string())
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.trim().strip_prefix("ffplay '") {
                let _ = tx.send(url.split('\'').next().unwrap_or("").to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("demo.sh printed no ffplay line");
    (child, url)
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_sh_runs_twice_side_by_side_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let ports: Vec<[u16; 3]> = (0..2)
        .map(|_| [free_port(), free_port(), free_port()])
        .collect();
    let mut demos = Vec::new();
    for p in &ports {
        let (child, url) = start_demo(p[0], p[1], p[2], tmp.path());
        assert!(
            url.starts_with(&format!(
                "http://localhost:{}/live/cam1.flv?txSecret=",
                p[0]
            )),
            "{url}"
        );
        let mut r = support::client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let first = r.chunk().await.unwrap().unwrap();
        assert!(first.starts_with(b"FLV"), "not FLV");
        demos.push(child);
    }
    for d in &demos {
        assert!(Command::new("kill")
            .args(["-INT", &d.id().to_string()])
            .status()
            .unwrap()
            .success());
    }
    for mut d in demos {
        let deadline = Instant::now() + Duration::from_secs(20);
        while d.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "demo.sh did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Nothing left behind: every port is free again.
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in ports.iter().flatten() {
        while listening(*p) {
            assert!(Instant::now() < deadline, "something still listens on {p}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Pingora's fast shutdown now and then leaves the process running (an accept loop
/// spinning on a runtime that is shutting down); livegate's SIGINT watchdog ends it.
/// With a viewer connected that happened about one time in eight: eight tries.
#[tokio::test(flavor = "multi_thread")]
async fn sigint_ends_livegate_with_a_viewer_every_time() {
    let origin = demo_origin();
    for round in 0..8 {
        let mut lg = Livegate::start(&format!(
            "  - name: \"*\"\n    origin: {}\n    auth:\n      - {{ scene: pull, enabled: false }}\n",
            support::origin_yaml(&[format!("127.0.0.1:{}", origin.port)], "")
        ));
        let mut viewer = lg.get("x", "/live/cam1.flv").await;
        assert_eq!(viewer.status(), 200);
        let _ = viewer.chunk().await;
        let sent = Instant::now();
        assert!(lg.signal("-INT"));
        while lg.alive() {
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "round {round}: livegate still running 10 s after SIGINT: {}",
                lg.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

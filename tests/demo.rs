//! The first hour: the demo origin's media decodes in ffmpeg through livegate, and
//! `scripts/demo.sh` runs twice side by side and leaves nothing behind.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// What a running demo printed: the signed FLV URL, the RTMP publish command
/// line and the URL that watches what it publishes.
struct Printed {
    flv: String,
    hls: String,
    publish: String,
    watch: String,
    /// The `livegate api … online` line.
    online: String,
}

/// Starts `scripts/demo.sh` on its own ports (`[http, origin, metrics, rtmp,
/// rtmp origin, admin]`) with the test binary; returns the script and what it
/// printed.
fn start_demo(p: &[u16; 6], tmp: &std::path::Path) -> Result<(Child, Printed), String> {
    let mut child = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("LIVEGATE_BIN", env!("CARGO_BIN_EXE_livegate"))
        .env("PORT", p[0].to_string())
        .env("ORIGIN_PORT", p[1].to_string())
        .env("METRICS_PORT", p[2].to_string())
        .env("RTMP_PORT", p[3].to_string())
        .env("RTMP_ORIGIN_PORT", p[4].to_string())
        .env("ADMIN_PORT", p[5].to_string())
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // What the script said on stderr, for the failure message.
    let said = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let kept = said.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut s = kept.lock().unwrap();
            if s.len() < 16_384 {
                s.push_str(&line);
                s.push('\n');
            }
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let quoted = |l: &str| l.split('\'').nth(1).unwrap_or("").to_owned();
        let (mut urls, mut publish, mut online) = (Vec::new(), None, None);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line = line.trim();
            if line.starts_with("ffplay '") {
                urls.push(quoted(line));
            } else if line.starts_with("ffmpeg -re ") {
                publish = Some(line.to_owned());
            } else if line.contains(" api -c ") {
                online = line.split(" #").next().map(str::to_owned);
            }
            if let (3, Some(p), Some(o)) = (urls.len(), &publish, &online) {
                let _ = tx.send(Printed {
                    flv: urls[0].clone(),
                    hls: urls[1].clone(),
                    watch: urls[2].clone(),
                    publish: p.clone(),
                    online: o.clone(),
                });
                return;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(printed) => Ok((child, printed)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(200));
            let said = said.lock().unwrap().clone();
            Err(format!(
                "demo.sh printed no ffplay and ffmpeg lines ({e}); it said:\n{said}"
            ))
        }
    }
}

/// [`start_demo`] on fresh free ports; again on others when one of them was
/// taken in between by another test (the script refuses a taken port).
fn start_demo_anywhere(tmp: &std::path::Path) -> ([u16; 6], Child, Printed) {
    let mut last = String::new();
    for _ in 0..3 {
        let p = [(); 6].map(|()| free_port());
        match start_demo(&p, tmp) {
            Ok((child, printed)) => return (p, child, printed),
            // Taken before the script looked, or between its look and a bind.
            Err(e) if e.contains("is taken") || e.contains("in use") => last = e,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("{last}")
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_sh_runs_twice_side_by_side_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    need("ffmpeg", "ffmpeg");
    let mut ports: Vec<[u16; 6]> = Vec::new();
    let mut demos = Vec::new();
    for _ in 0..2 {
        let (p, child, printed) = start_demo_anywhere(tmp.path());
        ports.push(p);
        let p = &p;
        let url = printed.flv;
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
        // The HLS URL plays, and the printed `livegate api` line shows the viewer.
        let hls = support::client().get(&printed.hls).send().await.unwrap();
        assert_eq!(hls.status(), 200, "{}", printed.hls);
        assert!(hls.text().await.unwrap().starts_with("#EXTM3U"));
        let online = Command::new("bash")
            .args(["-c", &printed.online])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&online.stdout);
        assert!(
            online.status.success() && listed.contains("cam1"),
            "{}: {listed}{}",
            printed.online,
            String::from_utf8_lossy(&online.stderr)
        );
        // The RTMP lines work as pasted: publish through livegate, then watch it.
        assert!(
            printed
                .publish
                .contains(&format!("rtmp://localhost:{}/live/mycam?txSecret=", p[3])),
            "{}",
            printed.publish
        );
        let publisher = Command::new("bash")
            .args([
                "-c",
                &format!("exec {} -loglevel error -nostdin", printed.publish),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _publisher = support::media::Proc(publisher);
        let watch = printed.watch.clone();
        let started = Instant::now();
        loop {
            let w = watch.clone();
            let ok = tokio::task::spawn_blocking(move || {
                Command::new("ffmpeg")
                    .args([
                        "-nostdin", "-v", "error", "-i", &w, "-t", "2", "-f", "null", "-",
                    ])
                    .status()
                    .unwrap()
                    .success()
            })
            .await
            .unwrap();
            if ok {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the demo's watch URL never played"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
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

#[test]
fn demo_sh_on_a_taken_port_says_so_in_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let others = [(); 5].map(|()| free_port());
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("LIVEGATE_BIN", env!("CARGO_BIN_EXE_livegate"))
        .env("PORT", others[0].to_string())
        .env("ORIGIN_PORT", others[1].to_string())
        .env("METRICS_PORT", others[2].to_string())
        .env("RTMP_PORT", port.to_string())
        .env("RTMP_ORIGIN_PORT", others[3].to_string())
        .env("ADMIN_PORT", others[4].to_string())
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains(&format!("port {port} (RTMP_PORT) is taken")),
        "{said}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for p in others {
        assert!(!listening(p), "something was started on {p}");
    }
    // The demo origin alone on a taken port: one line, exit 1, no retries.
    let out = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["demo-origin", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(said.contains("choose another"), "{said}");
}

//! The web console, in Chromium like an operator uses it: sign in (a wrong key
//! told plainly), two FLV viewers of a stream on the Live page within 5 s, its
//! Stream page, forbid — both viewers cut, the stream leaves Live — resume on
//! Forbidden, rotate the pull key on Rules (the old URL then fails, the new
//! key's works). Served only on the admin listener, with a policy that allows
//! no inline script and no framing.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::api::ADMIN_KEY;
use support::media::{demo_origin, need};
use support::{free_port, tencent, Livegate};

const HOST: &str = "play.example.com";
const KEY: &str = "consoleKey2026";

/// An endless FLV viewer reading in the background; `ended` once cut.
fn viewer(port: u16, path: String) -> Arc<AtomicBool> {
    let ended = Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .read_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let r = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("host", HOST)
            .send()
            .await;
        if let Ok(mut r) = r {
            while let Ok(Some(_)) = r.chunk().await {}
        }
        flag.store(true, Ordering::SeqCst);
    });
    ended
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_watches_forbids_resumes_and_rotates_in_the_console() {
    need("node", "nodejs");
    need("chromium", "chromium");
    let origin = demo_origin();
    let admin = free_port();
    let domains = format!(
        "  - name: {HOST}\n    origin: {{ peers: [\"127.0.0.1:{}\"] }}\n    auth:\n      - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin.port
    );
    let top = format!("admin: {{ listen: \"127.0.0.1:{admin}\", key: {ADMIN_KEY} }}\n");
    let mut lg = Livegate::start_top(&domains, &top);
    lg.wait_port(admin);
    let console = format!("http://127.0.0.1:{admin}/console/");

    // Only on the admin listener; with its policy.
    let r = reqwest::get(&console).await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    // On a proxy listener `/console/` is only a path like any other: refused
    // unsigned (400: no stream in it, 403: no signature), never the console.
    for path in ["/console/", "/console/app.js", "/console/index.html"] {
        let r = lg.get(HOST, path).await;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(matches!(status, 400 | 403 | 404), "{path}: {status}");
        assert!(
            !body.contains("livegate console") && !body.contains("md5"),
            "{path}: {body}"
        );
    }

    let path = tencent("/live/cam1.flv", KEY);
    let viewers = [viewer(lg.port, path.clone()), viewer(lg.port, path.clone())];
    let shots = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.mjs");
    let shots_dir = shots.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(console)
            .arg(ADMIN_KEY)
            .arg(format!("{HOST}/live/cam1"))
            .arg("2")
            .arg(shots_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "no answer from the browser: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(seen["failed"].is_null(), "{seen}\n{}", lg.log());
    assert_eq!(seen["pageErrors"], serde_json::json!([]), "{seen}");
    assert!(
        seen["wrongKey"].as_str().unwrap().contains("Wrong key"),
        "{seen}"
    );
    // Forbidding cut both viewers.
    for v in &viewers {
        assert!(
            v.load(Ordering::SeqCst),
            "a viewer was not cut: {}",
            lg.log()
        );
    }
    // The rotated key: the old URL fails, one signed with the new key plays.
    let new_key = seen["newKey"].as_str().unwrap();
    assert!(new_key.len() >= 16, "{seen}");
    assert_eq!(
        lg.get(HOST, &tencent("/live/cam1.m3u8", KEY))
            .await
            .status(),
        403
    );
    assert_eq!(
        lg.get(HOST, &tencent("/live/cam1.m3u8", new_key))
            .await
            .status(),
        200
    );
    // The screenshots were made; `UPDATE_SCREENSHOTS=1` puts them in docs/.
    for name in ["console-live.png", "console-stream.png"] {
        let shot = shots.path().join(name);
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
            "{name}"
        );
        if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs")
                .join(name);
            std::fs::copy(&shot, docs).unwrap();
        }
    }
    assert!(lg.alive());
}

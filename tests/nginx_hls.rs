//! Signed HLS against a real live origin: nginx with the RTMP module, fed by ffmpeg
//! publishing a test source, writing HLS that nginx serves (flat and nested), and a
//! multi-variant stream written by ffmpeg's HLS muxer — played through livegate by
//! ffmpeg, and by hls.js in Chromium on a page from another origin.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::browser::{page_origin, page_server, Play};
use support::media::{codecs, frames, Proc};
use support::nginx::{live_source, Nginx};
use support::{free_port, origin_yaml, Livegate};

/// nginx-rtmp writing HLS of `application live` (flat or nested).
fn start_nginx(nested: bool) -> Nginx {
    let nested = if nested { "on" } else { "off" };
    Nginx::start(&format!(
        "application live {{ live on; hls on; hls_path {{dir}}/www/live; hls_fragment 1s; \
         hls_playlist_length 8s; hls_nested {nested}; }}"
    ))
}

/// ffmpeg publishing a test pattern and tone to `rtmp://…/live/<stream>`.
fn publish(nginx: &Nginx, stream: &str) -> Proc {
    let child = live_source(&[])
        .args(["-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{}/live/{stream}", nginx.rtmp))
        .spawn()
        .unwrap();
    Proc(child)
}

/// Waits until a playlist under nginx's root lists at least `segments` segments.
fn wait_playlist(file: &Path, segments: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = std::fs::read_to_string(file)
            .map_or(0, |p| p.lines().filter(|l| l.ends_with(".ts")).count());
        if listed >= segments {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never listed {segments} segments",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Seconds of video ffmpeg decodes from `url` (frames / 25), and its streams.
fn play(url: &str, seconds: u32) -> (f64, String) {
    (frames(url, seconds) as f64 / 25.0, codecs(url))
}

fn domain(name: &str, port: u16, extra: &str) -> String {
    format!(
        "  - name: \"{name}\"\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [rtmpKey2026] }}\n{extra}",
        origin_yaml(&[format!("127.0.0.1:{port}")], "")
    )
}

async fn status(url: &str, host: &str) -> u16 {
    support::client()
        .get(url)
        .header("host", host)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_rtmp_hls_plays_signed_through_livegate_flat_and_nested() {
    for nested in [false, true] {
        let nginx = start_nginx(nested);
        let _publisher = publish(&nginx, "cam1");
        let (playlist, path) = match nested {
            false => (nginx.www().join("live/cam1.m3u8"), "/live/cam1.m3u8"),
            true => (
                nginx.www().join("live/cam1/index.m3u8"),
                "/live/cam1/index.m3u8",
            ),
        };
        wait_playlist(&playlist, 3);
        let layout = if nested {
            "    stream_path: nested\n"
        } else {
            ""
        };
        let lg = Livegate::start(&domain("127.0.0.1", nginx.http, layout));
        let base = format!("http://127.0.0.1:{}", lg.port);
        let signed = lg.sign(&format!("{base}{path}"), &[]);
        let (seconds, codecs) = play(&signed, 6);
        assert!(seconds >= 5.0, "only {seconds} s decoded (nested {nested})");
        assert!(
            codecs.contains("h264") && codecs.contains("aac"),
            "{codecs}"
        );
        // Unsigned, expired and tampered requests are refused.
        assert_eq!(status(&format!("{base}{path}"), "127.0.0.1").await, 403);
        let expired = lg.sign(&format!("{base}{path}"), &["--ttl", "-10"]);
        assert_eq!(status(&expired, "127.0.0.1").await, 403);
        let text = support::text(&signed).await;
        let seg = text.lines().find(|l| l.contains(".ts")).unwrap();
        let token = seg.split("lgt=").nth(1).unwrap();
        let dir = &path[..path.rfind('/').unwrap() + 1];
        assert_eq!(status(&format!("{base}{dir}{seg}"), "127.0.0.1").await, 200);
        let tampered = format!("{}x", &token[..token.len() - 1]);
        let bare = seg.split('?').next().unwrap();
        assert_eq!(
            status(&format!("{base}{dir}{bare}?lgt={tampered}"), "127.0.0.1").await,
            403
        );
        // A token from this stream's directory opens no other stream's segments.
        let other = if nested {
            format!("/live/cam2/{bare}")
        } else {
            format!("/live/cam2-{}", bare.rsplit('-').next().unwrap())
        };
        assert_eq!(
            status(&format!("{base}{other}?lgt={token}"), "127.0.0.1").await,
            403
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_variant_stream_plays_through_livegate() {
    let nginx = start_nginx(false);
    let www = nginx.www();
    let out = www.join("mv/cam9");
    let child = live_source(&["-map", "0:v", "-map", "1:a", "-map", "0:v", "-map", "1:a"])
        .args([
            "-s:v:0", "320x180", "-b:v:0", "300k", "-s:v:1", "160x90", "-b:v:1", "100k",
        ])
        .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "8"])
        .args([
            "-hls_flags",
            "delete_segments",
            "-master_pl_name",
            "master.m3u8",
        ])
        .args(["-var_stream_map", "v:0,a:0 v:1,a:1"])
        .arg("-hls_segment_filename")
        .arg(out.join("stream_%v/seg%d.ts"))
        .arg(out.join("stream_%v/index.m3u8"))
        .spawn()
        .unwrap();
    let _writer = Proc(child);
    wait_playlist(&out.join("stream_1/index.m3u8"), 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !out.join("master.m3u8").exists() {
        assert!(Instant::now() < deadline, "no master playlist");
        std::thread::sleep(Duration::from_millis(100));
    }
    let lg = Livegate::start(&domain(
        "127.0.0.1",
        nginx.http,
        "    stream_path: nested\n",
    ));
    let signed = lg.sign(
        &format!("http://127.0.0.1:{}/mv/cam9/master.m3u8", lg.port),
        &[],
    );
    let master = support::text(&signed).await;
    assert_eq!(master.matches("index.m3u8?lgt=").count(), 2, "{master}");
    let (seconds, codecs) = play(&signed, 6);
    assert!(seconds >= 5.0, "only {seconds} s decoded");
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "{codecs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hls_js_in_chromium_plays_a_signed_stream_from_another_origin() {
    let nginx = start_nginx(false);
    let _publisher = publish(&nginx, "cam1");
    wait_playlist(&nginx.www().join("live/cam1.m3u8"), 3);
    // The page comes from another origin than the stream: CORS decides.
    let site = page_server().await;
    let cors = format!(
        "    cors: {{ allow_origins: [\"{}\"] }}\n",
        page_origin(&site)
    );
    let lg = Livegate::start(&domain("127.0.0.1", nginx.http, &cors));
    let signed = lg.sign(&format!("http://127.0.0.1:{}/live/cam1.m3u8", lg.port), &[]);
    let state = Play {
        player: "hls",
        src: &signed,
        seconds: 5,
        args: Vec::new(),
        home: None,
    }
    .run(&site)
    .await;
    assert!(state["fatal"].is_null(), "hls.js failed: {state}");
    assert!(
        state["t"].as_f64().unwrap_or(0.0) >= 5.0,
        "played only {state}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_flv_from_an_ffmpeg_origin_plays_signed_through_livegate() {
    let port = free_port();
    let child = live_source(&[])
        .args(["-f", "flv", "-listen", "1"])
        .arg(format!("http://127.0.0.1:{port}/live/cam1.flv"))
        .spawn()
        .unwrap();
    let _origin = Proc(child);
    // ffmpeg serves one connection: wait for its socket without connecting to it.
    let listening = || {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let local = format!(":{port:04X}");
        table.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !listening() {
        assert!(
            Instant::now() < deadline,
            "the ffmpeg origin did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let lg = Livegate::start(&domain("127.0.0.1", port, ""));
    let signed = lg.sign(&format!("http://127.0.0.1:{}/live/cam1.flv", lg.port), &[]);
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", &signed, "-t", "6"])
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lg.log()
    );
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    assert!(frames >= 125, "only {frames} frames");
}

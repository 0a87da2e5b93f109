//! RTMP through the gate, end to end: ffmpeg publishes signed (Tencent in the
//! stream name, Alibaba type A in the tcUrl as OBS sends it, Volcengine) through
//! the real binary to nginx-rtmp, whose hooks record what it was asked; the
//! stream plays back through livegate over RTMP (ffmpeg, rtmpdump) and as HLS;
//! refused publishers never reach the origin; forbids cut publishers; rtmps;
//! an upgrade keeps publishers going; stalled and garbled handshakes are bounded.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::api::{Api, ADMIN_KEY};
use support::media::{frames, need, Proc};
use support::nginx::{live_source, Nginx};
use support::{free_port, Livegate, Origin};

/// nginx-rtmp with one application per signing scheme, each writing HLS and
/// telling `hooks` of every connect, publish and play (with their arguments).
fn origin(hooks: &Origin) -> Nginx {
    let hook = format!("http://127.0.0.1:{}", hooks.addr.port());
    let apps: Vec<String> = ["tx", "ali", "volc"]
        .iter()
        .map(|app| {
            format!(
                "application {app} {{ live on; wait_key on; hls on; hls_path {{dir}}/www/{app}; \
                 hls_fragment 1s; hls_playlist_length 8s; notify_method get; \
                 on_publish {hook}/publish; on_play {hook}/play; }}"
            )
        })
        .collect();
    Nginx::start(&format!(
        "notify_method get; on_connect {hook}/connect; {}",
        apps.join(" ")
    ))
}

const RULES: &str = "    auth:\n      \
     - { scene: push, app: tx, scheme: tencent, keys: [txPushKey2026] }\n      \
     - { scene: push, app: ali, scheme: type_a, keys: [aliPushKey2026], valid_duration: 3600 }\n      \
     - { scene: push, app: volc, scheme: volc_md5, keys: [volcPushKey2026] }\n      \
     - { scene: pull, scheme: tencent, keys: [pullKey2026] }\n";

/// livegate in front of `nginx`, HTTP and RTMP, with its management API.
fn edge(nginx: &Nginx, rtmp: &str) -> (Livegate, Api, u16) {
    edge_with(nginx, rtmp, "")
}

/// [`edge`] with more settings for the domain.
fn edge_with(nginx: &Nginx, rtmp: &str, domain: &str) -> (Livegate, Api, u16) {
    let rtmp_port = free_port();
    let admin = free_port();
    let domains = format!(
        "  - name: \"127.0.0.1\"\n    origin: {{ peers: [\"127.0.0.1:{}\"], rtmp_peers: [\"127.0.0.1:{}\"], connect_timeout_ms: 10000 }}\n{domain}{RULES}",
        nginx.http, nginx.rtmp
    );
    let top = format!(
        "admin: {{ listen: \"127.0.0.1:{admin}\", key: {ADMIN_KEY} }}\n\
         rtmp: {{ listen: [\"127.0.0.1:{rtmp_port}\"{rtmp}], handshake_timeout_ms: 3000 }}\n"
    );
    let mut lg = Livegate::start_top(&domains, &top);
    lg.wait_port(admin);
    lg.wait_port(rtmp_port);
    (lg, Api::new(admin), rtmp_port)
}

/// ffmpeg publishing a live source for `seconds` to `url` (with `-rtmp_tcurl`).
fn publish(url: &str, tcurl: Option<&str>, seconds: u32) -> Child {
    let mut c = live_source(&[]);
    c.args(["-t", &seconds.to_string(), "-f", "flv"]);
    if let Some(t) = tcurl {
        c.args(["-rtmp_tcurl", t]);
    }
    c.arg(url).spawn().unwrap()
}

/// Waits for a child to exit (at most `limit`); its success and how long it took.
fn finish(mut child: Child, limit: Duration) -> (bool, Duration) {
    let started = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return (s.success(), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `cond` holds.
fn wait(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What nginx-rtmp's hooks were called with (path and query), for `call`.
fn hooked(hooks: &Origin, call: &str) -> Vec<String> {
    hooks
        .seen()
        .into_iter()
        .map(|s| s.uri)
        .filter(|u| u.starts_with(&format!("/{call}?")))
        .collect()
}

/// A signed URL (`livegate sign`) for `scene`.
fn signed(lg: &Livegate, url: &str, scene: &str) -> String {
    lg.sign(url, &["--scene", scene])
}

/// ffmpeg decodes `seconds` of `url` without an error.
fn plays(url: &str, seconds: u32) -> bool {
    Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-xerror",
            "-rw_timeout",
            "10000000",
            "-i",
            url,
        ])
        .args(["-t", &seconds.to_string(), "-f", "null", "-"])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn ffmpeg_publishes_signed_in_each_clouds_form_and_the_stream_plays_back() {
    need("rtmpdump", "rtmpdump");
    let hooks = Origin::start("hooks").await;
    let nginx = origin(&hooks);
    let (lg, _api, rp) = edge(&nginx, "");
    let base = format!("rtmp://127.0.0.1:{rp}");
    // Tencent and Volcengine sign in the stream name; Alibaba's OBS form puts the
    // signature on the server URL (tcUrl) and a plain stream key.
    let tx = signed(&lg, &format!("{base}/tx/cam1"), "push");
    let volc = signed(&lg, &format!("{base}/volc/cam3"), "push");
    let ali = signed(&lg, &format!("{base}/ali/cam2"), "push");
    let ali_query = ali.split_once('?').unwrap().1.to_owned();
    let ali_tcurl = format!("{base}/ali?{ali_query}");
    let publishers: Vec<Child> = vec![
        publish(&tx, None, 25),
        publish(&format!("{base}/ali/cam2"), Some(&ali_tcurl), 25),
        publish(&volc, None, 25),
    ];
    for (app, stream) in [("tx", "cam1"), ("ali", "cam2"), ("volc", "cam3")] {
        let playlist = nginx.www().join(format!("{app}/{stream}.m3u8"));
        wait(
            &format!("nginx-rtmp's HLS of {app}/{stream}"),
            Duration::from_secs(30),
            || std::fs::read_to_string(&playlist).is_ok_and(|p| p.matches(".ts").count() >= 2),
        );
        // The origin saw the stream name without the rule's parameters.
        let published = hooked(&hooks, "publish");
        let seen = published
            .iter()
            .find(|u| u.contains(&format!("name={stream}&")))
            .unwrap_or_else(|| panic!("no on_publish for {stream}: {published:?}"));
        for secret in ["txSecret", "txTime", "auth_key", "volcSecret", "volcTime"] {
            assert!(!seen.contains(secret), "the origin got {secret}: {seen}");
        }
        assert!(seen.contains(&format!("app={app}")), "{seen}");
        // It plays back through livegate: RTMP play (signed for pull) and HLS.
        let play = signed(&lg, &format!("{base}/{app}/{stream}"), "pull");
        let ok = tokio::task::spawn_blocking(move || plays(&play, 3))
            .await
            .unwrap();
        assert!(
            ok,
            "ffmpeg could not play {app}/{stream} over RTMP through livegate"
        );
        let hls = lg.sign(
            &format!("http://127.0.0.1:{}/{app}/{stream}.m3u8", lg.port),
            &[],
        );
        let n = tokio::task::spawn_blocking(move || frames(&hls, 3))
            .await
            .unwrap();
        assert!(
            n >= 25,
            "{n} frames of {app}/{stream} as HLS through livegate"
        );
    }
    // Another client implementation plays too.
    let play = signed(&lg, &format!("{base}/tx/cam1"), "pull");
    let dump = nginx.dir.path().join("dump.flv");
    let status = Command::new("rtmpdump")
        .args(["-q", "-r", &play, "-B", "2", "-o"])
        .arg(&dump)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let got = std::fs::metadata(&dump).map_or(0, |m| m.len());
    assert!(got > 20_000, "rtmpdump got {got} bytes ({status})");
    assert!(
        !plays(&format!("{base}/tx/cam1"), 1),
        "unsigned play passed"
    );
    for p in publishers {
        let (ok, _) = finish(p, Duration::from_secs(60));
        assert!(ok, "a publisher failed: {}", lg.log());
    }
    let log = lg.log();
    for secret in ["txSecret=", "auth_key=", "volcSecret="] {
        for line in log.lines().filter(|l| l.contains(secret)) {
            assert!(line.contains(&format!("{secret}<redacted>")), "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_publishers_end_at_once_and_the_origin_never_sees_them() {
    let hooks = Origin::start("hooks").await;
    let nginx = origin(&hooks);
    let (lg, api, rp) = edge(&nginx, "");
    let base = format!("rtmp://127.0.0.1:{rp}");
    let good = signed(&lg, &format!("{base}/tx/cam1"), "push");
    let expired = lg.sign(
        &format!("{base}/tx/cam1"),
        &["--scene", "push", "--ttl=-60"],
    );
    let wrong = {
        let (head, tail) = good.split_at(good.find("txSecret=").unwrap() + 9);
        format!(
            "{head}{}{}",
            if tail.starts_with('0') { '1' } else { '0' },
            &tail[1..]
        )
    };
    let (s, v) = api
        .call(
            "POST",
            "/v1/streams/forbid",
            Some(json!({"domain": "127.0.0.1", "app": "tx", "stream": "cam9"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let forbidden = signed(&lg, &format!("{base}/tx/cam9"), "push");
    for (what, url, reason) in [
        ("unsigned", format!("{base}/tx/cam1"), "MISSING_SIGNATURE"),
        ("expired", expired, "EXPIRED"),
        ("wrongly signed", wrong, "BAD_SIGNATURE"),
        ("forbidden", forbidden, "FORBIDDEN_STREAM"),
        ("both forms", format!("{good}&x=1"), ""),
    ] {
        let url = if what == "both forms" {
            // A signature in both the tcUrl and the stream name: two readings.
            let child = publish(
                &url,
                Some(&format!("{base}/tx?{}", url.split_once('?').unwrap().1)),
                5,
            );
            let (ok, took) = finish(child, Duration::from_secs(30));
            assert!(
                !ok && took < Duration::from_secs(15),
                "{what}: {ok} after {took:?}"
            );
            continue;
        } else {
            url
        };
        let (ok, took) = finish(publish(&url, None, 5), Duration::from_secs(30));
        assert!(!ok, "{what} publish succeeded");
        assert!(took < Duration::from_secs(15), "{what} took {took:?}");
        assert!(
            lg.log().contains(reason),
            "{reason} not logged: {}",
            lg.log()
        );
    }
    assert!(lg.log().contains("BAD_REQUEST"), "{}", lg.log());
    // `livegate check` says what the gate answers.
    let check = |url: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_livegate"))
            .args(["check", "-c"])
            .arg(&lg.config)
            .args(["--scene", "push", "--url", url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(check(&good).contains("\"pass\""), "{}", check(&good));
    assert!(check(&format!("{base}/tx/cam1")).contains("MISSING_SIGNATURE"));
    assert!(check(&format!("{base}/tx/a%2Fb")).contains("BAD_REQUEST"));
    assert!(
        hooked(&hooks, "connect").is_empty(),
        "nginx-rtmp saw a connection: {:?}",
        hooks.seen()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forbid_cuts_a_publisher_and_a_second_publisher_is_refused() {
    let hooks = Origin::start("hooks").await;
    let nginx = origin(&hooks);
    let (lg, api, rp) = edge(&nginx, "");
    let url = signed(&lg, &format!("rtmp://127.0.0.1:{rp}/tx/cam4"), "push");
    let first = publish(&url, None, 60);
    let _first = Proc(first);
    let online = || async {
        let (s, v) = api
            .call(
                "GET",
                "/v1/streams/online?domain=127.0.0.1&app=tx&stream=cam4",
                None,
            )
            .await;
        (s, v)
    };
    let started = Instant::now();
    let entry = loop {
        let (s, v) = online().await;
        if s == 200 {
            break v["streams"][0].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never online: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(entry["scene"], "push", "{entry}");
    assert_eq!(entry["protocol"], "rtmp", "{entry}");
    assert_eq!(entry["client_ips"], json!(["127.0.0.1"]), "{entry}");
    // A second publisher of the live stream is refused; the first goes on.
    let (ok, _) = finish(publish(&url, None, 5), Duration::from_secs(30));
    assert!(!ok, "a duplicate publisher was let through");
    assert!(lg.log().contains("DUPLICATE_PUBLISH"), "{}", lg.log());
    let mut first = _first;
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first publisher stopped"
    );
    // Forbid: the publisher is cut within seconds; a republish is refused.
    let stream = json!({"domain": "127.0.0.1", "app": "tx", "stream": "cam4"});
    let (s, v) = api
        .call("POST", "/v1/streams/forbid", Some(stream.clone()))
        .await;
    assert_eq!(s, 200, "{v}");
    let cut = Instant::now();
    while first.0.try_wait().unwrap().is_none() {
        assert!(
            cut.elapsed() < Duration::from_secs(5),
            "the publisher was not cut"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = cut.elapsed();
    assert!(took < Duration::from_secs(3), "cut after {took:?}");
    let (ok, _) = finish(publish(&url, None, 5), Duration::from_secs(30));
    assert!(!ok, "a forbidden stream was republished");
    let (s, v) = api.call("POST", "/v1/streams/resume", Some(stream)).await;
    assert_eq!(s, 200, "{v}");
    let (ok, _) = finish(publish(&url, None, 3), Duration::from_secs(30));
    assert!(ok, "publishing after resume failed: {}", lg.log());
}

/// `cut_on_expiry`: an RTMP player and an RTMP publisher whose URLs expire in
/// 3 s are cut then (counted EXPIRED), while a publisher with a valid URL goes on.
#[tokio::test(flavor = "multi_thread")]
async fn cut_on_expiry_ends_rtmp_sessions_when_their_signature_does() {
    let hooks = Origin::start("hooks").await;
    let nginx = origin(&hooks);
    let (lg, _api, rp) = edge_with(&nginx, "", "    cut_on_expiry: true\n");
    let lasting = signed(&lg, &format!("rtmp://127.0.0.1:{rp}/tx/cam7"), "push");
    let mut publisher = Proc(publish(&lasting, None, 60));
    wait(
        "the stream is on the origin",
        Duration::from_secs(20),
        || !hooked(&hooks, "publish").is_empty(),
    );
    // A player whose URL expires in 3 s.
    let url = lg.sign(
        &format!("rtmp://127.0.0.1:{rp}/tx/cam7"),
        &["--scene", "pull", "--ttl", "3"],
    );
    let player = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-rw_timeout",
            "20000000",
            "-i",
            &url,
        ])
        .args(["-t", "30", "-f", "null", "-"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (_, took) = finish(player, Duration::from_secs(40));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "the player was cut after {took:?}"
    );
    // A publisher whose URL expires in 3 s.
    let short = lg.sign(
        &format!("rtmp://127.0.0.1:{rp}/tx/cam8"),
        &["--scene", "push", "--ttl", "3"],
    );
    let (_, took) = finish(publish(&short, None, 30), Duration::from_secs(40));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "the publisher was cut after {took:?}"
    );
    assert!(
        publisher.0.try_wait().unwrap().is_none(),
        "the publisher with a valid URL was cut: {}",
        lg.log()
    );
    let log = lg.log();
    assert!(log.matches("signature expired").count() >= 2, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ffmpeg_publishes_over_rtmps() {
    let hooks = Origin::start("hooks").await;
    let nginx = origin(&hooks);
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    let tls_port = free_port();
    let extra = format!(
        ", {{ addr: \"127.0.0.1:{tls_port}\", tls: {{ cert: {}, key: {} }} }}",
        c.display(),
        k.display()
    );
    let (mut lg, _api, _) = edge(&nginx, &extra);
    lg.wait_port(tls_port);
    let url = signed(
        &lg,
        &format!("rtmps://127.0.0.1:{tls_port}/tx/cam5"),
        "push",
    );
    let (ok, _) = finish(publish(&url, None, 3), Duration::from_secs(40));
    assert!(ok, "publishing over rtmps failed: {}", lg.log());
    assert!(
        hooked(&hooks, "publish")
            .iter()
            .any(|u| u.contains("name=cam5&")),
        "{:?}",
        hooks.seen()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_keeps_publishers_on_the_old_process_and_new_ones_land_on_the_new() {
    let hooks = Origin::start("hooks").await;
    let nginx = origin(&hooks);
    let rtmp_port = free_port();
    let domains = format!(
        "  - name: \"127.0.0.1\"\n    origin: {{ peers: [\"127.0.0.1:{}\"], rtmp_peers: [\"127.0.0.1:{}\"] }}\n{RULES}",
        nginx.http, nginx.rtmp
    );
    let top = format!("rtmp: {{ listen: [\"127.0.0.1:{rtmp_port}\"] }}\n");
    let mut old = Livegate::start_server(&domains, &top, ", grace_period_seconds: 20");
    old.wait_port(rtmp_port);
    let base = format!("rtmp://127.0.0.1:{rtmp_port}");
    let before = publish(&signed(&old, &format!("{base}/tx/cam6"), "push"), None, 8);
    wait(
        "the first publisher on the origin",
        Duration::from_secs(20),
        || {
            hooked(&hooks, "publish")
                .iter()
                .any(|u| u.contains("name=cam6&"))
        },
    );
    let log = old.dir.path().join("new.log");
    let new = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["-u", "-c"])
        .arg(&old.config)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _new = Proc(new);
    std::thread::sleep(Duration::from_millis(500));
    assert!(old.signal("-QUIT"));
    // Pingora's old process accepts for a few seconds after handing its sockets
    // over (so nothing is refused meanwhile); then only the new one does.
    wait(
        "the old process stopped listening",
        Duration::from_secs(20),
        || old.log().contains("service 'rtmp' exited"),
    );
    let after = publish(&signed(&old, &format!("{base}/tx/cam7"), "push"), None, 3);
    let (ok, _) = finish(after, Duration::from_secs(40));
    assert!(
        ok,
        "a publish after the upgrade failed: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (ok, _) = finish(before, Duration::from_secs(40));
    assert!(
        ok,
        "the publisher from before the upgrade was cut: {}",
        old.log()
    );
    let new_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        new_log.contains("RTMP publish /tx/cam7"),
        "{new_log}\nold:\n{}",
        old.log()
    );
    assert!(!new_log.contains("RTMP publish /tx/cam6"), "{new_log}");
    assert!(old.log().contains("RTMP publish /tx/cam6"), "{}", old.log());
}

/// Resident memory of a process, in KB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_and_garbled_handshakes_are_closed_and_bounded() {
    let hooks = Origin::start("hooks").await;
    let nginx = origin(&hooks);
    let (mut lg, _api, rp) = edge(&nginx, "");
    let before = rss_kb(lg.pid());
    // 500 half-handshakes that stall.
    let mut stalled: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", rp)).unwrap();
            s.write_all(&[3, 0, 0]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let during = rss_kb(lg.pid());
    eprintln!(
        "500 stalled handshakes: {} KB resident ({} B each)",
        during.saturating_sub(before),
        during.saturating_sub(before) * 1024 / 500
    );
    // A signed publish meanwhile works.
    let url = signed(&lg, &format!("rtmp://127.0.0.1:{rp}/tx/cam8"), "push");
    let (ok, _) = finish(publish(&url, None, 3), Duration::from_secs(40));
    assert!(ok, "a signed publish failed beside 500 stalled handshakes");

    // All closed by the timeout (3 s).
    std::thread::sleep(Duration::from_secs(4));
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 4096];
        let closed = loop {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break true,
                Ok(_) => continue,
            }
        };
        assert!(closed);
    }
    // Garbage from 200 connections: each ends, nothing crashes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", rp)).unwrap();
            let mut bytes = vec![if i % 2 == 0 { 3 } else { (i % 256) as u8 }];
            for _ in 0..3000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(x as u8);
            }
            let _ = s.write_all(&bytes);
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    drop(garbage);
    assert!(lg.alive(), "livegate died: {}", lg.log());
    let (ok, _) = finish(publish(&url, None, 2), Duration::from_secs(40));
    assert!(ok, "publishing after the garbage failed: {}", lg.log());
    assert!(
        during < before + 16_000,
        "500 stalled handshakes took {} KB",
        during - before
    );
    assert!(!lg.log().contains("panicked"), "{}", lg.log());
    assert!(
        hooked(&hooks, "connect").len() <= 2,
        "garbage reached the origin: {:?}",
        hooked(&hooks, "connect")
    );
}

/// A reload leaves an RTMP publisher and its players alone: the file changes (a
/// new domain, a rotated pull key), the session goes on, and what it publishes
/// still plays through livegate — with the new key.
#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_keeps_going_through_a_reload() {
    let hooks = Origin::start("hooks").await;
    let nginx = origin(&hooks);
    let (lg, api, rp) = edge(&nginx, "");
    let url = signed(&lg, &format!("rtmp://127.0.0.1:{rp}/tx/cam7"), "push");
    let mut publisher = Proc(publish(&url, None, 90));
    let online = || async {
        let (s, v) = api
            .call(
                "GET",
                "/v1/streams/online?domain=127.0.0.1&app=tx&stream=cam7",
                None,
            )
            .await;
        (s == 200).then(|| v["streams"][0]["bytes"].as_u64().unwrap_or(0))
    };
    let started = Instant::now();
    while online().await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "never online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&lg.config).unwrap();
    let changed = text.replace("keys: [pullKey2026]", "keys: [pullKey2027]")
        + "  - { name: other.example.com, origin: { peers: [\"127.0.0.1:1\"] }, auth: [ { scene: pull, enabled: false } ] }\n";
    std::fs::write(&lg.config, changed).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["-s", "reload", "-c"])
        .arg(&lg.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::said(&out));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        publisher.0.try_wait().unwrap().is_none(),
        "the publisher was cut by the reload: {}",
        lg.log()
    );
    // Its session is still live on the edge, and what it publishes plays with
    // the new pull key (the old one is refused now).
    let watch = signed(&lg, &format!("rtmp://127.0.0.1:{rp}/tx/cam7"), "pull");
    assert!(watch.contains("txSecret="), "{watch}");
    assert!(plays(&watch, 2), "the stream did not play after the reload");
    assert!(online().await.is_some(), "the session left the online list");
    assert!(
        publisher.0.try_wait().unwrap().is_none(),
        "the publisher stopped"
    );
}

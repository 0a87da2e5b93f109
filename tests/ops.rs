//! Operations end to end: metrics scraped from the real endpoint, access log lines,
//! and event notifications received by a real receiver that checks `sign`.

mod support;

use std::time::Duration;

use md5::{Digest, Md5};
use support::auth::AuthServer;
use support::receiver::{Mode, Receiver};
use support::{free_port, origin_yaml, sample, scrape, Livegate, Origin};

const HOST: &str = "play.example.com";
const NOTIFY_KEY: &str = "notifyKey123";

/// Each request proxied: these tests read what the origin receives (and the
/// access log and metrics) per request; the HLS micro-cache and FLV fan-out are
/// tested in tests/cache.rs and tests/fanout.rs.
fn domain(peers: &[String], extra: &str) -> String {
    let origin = origin_yaml(peers, ", health_check: { interval_ms: 200 }, fanout: false");
    format!(
        "  - name: {HOST}\n    origin: {origin}\n    cache: {{ enabled: false }}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [pullKey1] }}\n      - {{ scene: push, enabled: false }}\n{extra}"
    )
}

async fn get(lg: &Livegate, host: &str, path: &str) -> reqwest::Response {
    lg.get(host, path).await
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_metric_moves_with_its_traffic() {
    let o = Origin::start("o1").await;
    let dead = format!("127.0.0.1:{}", free_port());
    let auth = AuthServer::start().await;
    let receiver = Receiver::start(Mode::Ok).await;
    let mport = free_port();
    let remote = format!(
        "    remote_auth: {{ url: \"http://{}\", scope: {{ paths: [\"/ra/*\"] }}, cache: {{ allow_ttl_ms: 60000 }} }}\n",
        auth.addr
    );
    let top = format!(
        "metrics: {{ listen: \"127.0.0.1:{mport}\" }}\nnotify: {{ url: \"http://{}\", key: {NOTIFY_KEY}, linger_ms: 300 }}\n",
        receiver.addr
    );
    let lg = Livegate::start_top(&domain(&[o.addr.to_string(), dead], &remote), &top);
    let signed = |p: &str| lg.signed_path(HOST, p);
    let pass = [("domain", HOST), ("scene", "pull"), ("result", "pass")];
    let fail = |r| [("domain", HOST), ("scene", "pull"), ("reason", r)];

    let before = scrape(mport).await;
    assert_eq!(
        sample(&before, "livegate_requests_total", &pass),
        Some(0.0),
        "series exist from the start"
    );
    for _ in 0..3 {
        assert_eq!(
            get(&lg, HOST, &signed("/file/1000.m3u8")).await.status(),
            200
        );
    }
    assert_eq!(
        get(&lg, HOST, &signed("/status/404/x.m3u8")).await.status(),
        404
    );
    assert_eq!(get(&lg, HOST, "/live/a.m3u8").await.status(), 403);
    let expired = lg.sign(&format!("http://{HOST}/live/a.m3u8"), &["--expire", "1000"]);
    assert_eq!(
        get(&lg, HOST, &expired[expired.find("/live").unwrap()..])
            .await
            .status(),
        403
    );
    assert_eq!(
        get(&lg, "nobody.example.org", "/live/a.m3u8")
            .await
            .status(),
        404
    );
    // Signed once: a second signature made a second later would be another cache key.
    let allow = signed("/ra/allow.m3u8");
    for p in [allow.clone(), allow, signed("/ra/deny.m3u8")] {
        let _ = get(&lg, HOST, &p).await;
    }
    let mut flv = get(&lg, HOST, &signed("/live/cam.flv")).await;
    assert!(flv.chunk().await.unwrap().is_some());

    let m = scrape(mport).await;
    assert_eq!(
        sample(&m, "livegate_requests_total", &pass),
        Some(4.0 + 2.0 + 1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "livegate_requests_total", &fail("MISSING_SIGNATURE")),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "livegate_requests_total", &fail("EXPIRED")),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "livegate_requests_total", &fail("REMOTE_DENIED")),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "livegate_requests_total",
            &[("domain", "_unknown"), ("reason", "UNKNOWN_DOMAIN")]
        ),
        Some(1.0)
    );
    let remote = |o| {
        sample(
            &m,
            "livegate_remote_auth_total",
            &[("domain", HOST), ("outcome", o)],
        )
    };
    assert_eq!(
        (remote("allow"), remote("cache_hit"), remote("deny")),
        (Some(1.0), Some(1.0), Some(1.0))
    );
    assert_eq!(
        sample(
            &m,
            "livegate_upstream_responses_total",
            &[("status", "2xx")]
        ),
        Some(6.0)
    );
    assert_eq!(
        sample(
            &m,
            "livegate_upstream_responses_total",
            &[("status", "4xx")]
        ),
        Some(1.0)
    );
    assert!(sample(&m, "livegate_sent_bytes_total", &[("domain", HOST)]).unwrap() >= 3000.0);
    assert_eq!(
        sample(
            &m,
            "livegate_active_streams",
            &[("domain", HOST), ("scene", "pull")]
        )
        .map(|v| v >= 1.0),
        Some(true)
    );
    assert!(sample(&m, "livegate_auth_seconds_count", &[]).unwrap() >= 10.0);
    assert!(sample(&m, "livegate_remote_auth_seconds_count", &[]).unwrap() >= 3.0);
    assert_eq!(
        sample(&m, "livegate_origin_up", &[("peer", &o.addr.to_string())]),
        Some(1.0)
    );
    // Labels stay bounded: no path, stream, client address or key.
    for leak in ["cam", "/live", "file", "127.0.0.1:", "pullKey1", "nobody"] {
        let offending: Vec<&str> = m
            .lines()
            .filter(|l| l.starts_with("livegate_") && !l.starts_with("livegate_origin_up"))
            .filter(|l| l.contains(leak))
            .collect();
        assert!(offending.is_empty(), "{leak} in {offending:?}");
    }

    // The dead peer is reported down once the health check ran; the stream ends after linger.
    drop(flv);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let m = scrape(mport).await;
    assert_eq!(
        sample(&m, "livegate_origin_up", &[("peer", &dead_peer(&m, &o))]),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "livegate_active_streams",
            &[("domain", HOST), ("scene", "pull")]
        ),
        Some(0.0)
    );
}

fn dead_peer(metrics: &str, live: &Origin) -> String {
    metrics
        .lines()
        .filter(|l| l.starts_with("livegate_origin_up{"))
        .filter_map(|l| l.split("peer=\"").nth(1)?.split('"').next())
        .find(|p| *p != live.addr.to_string())
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_lines_in_both_formats_with_auth_values_redacted() {
    let o = Origin::start("o1").await;
    for format in ["combined", "json"] {
        let lg = Livegate::start_top(
            &domain(&[o.addr.to_string()], ""),
            &format!("access_log: {{ format: {format} }}\n"),
        );
        let good = lg.signed_path(HOST, "/file/500.m3u8?user=7");
        let secret = good
            .split("txSecret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(get(&lg, HOST, &good).await.status(), 200);
        assert_eq!(
            get(&lg, HOST, "/live/x.m3u8?txSecret=abc&txTime=1")
                .await
                .status(),
            403
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = lg.log();
        assert!(
            !log.contains(&secret),
            "a signature reached the log:\n{log}"
        );
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("/file/500.m3u8") || l.contains("/live/x.m3u8"))
            .filter(|l| !l.contains("denied"))
            .collect();
        assert_eq!(lines.len(), 2, "{format}: {log}");
        if format == "json" {
            let ok: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
            assert_eq!(ok["status"], 200);
            assert_eq!(ok["bytes"], 500);
            assert_eq!(ok["verdict"], "pass");
            assert_eq!(ok["origin"], o.addr.to_string());
            assert!(ok["target"]
                .as_str()
                .unwrap()
                .starts_with("/file/500.m3u8?user=7&txSecret=<redacted>&txTime=<redacted>"));
            let denied: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
            assert_eq!(
                (denied["status"].as_u64(), denied["reason"].as_str()),
                (Some(403), Some("MALFORMED"))
            );
        } else {
            assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
            assert!(lines[0].contains("\"GET /file/500.m3u8?user=7&txSecret=<redacted>&txTime=<redacted> HTTP/1.1\" 200 500 "), "{}", lines[0]);
            assert!(
                lines[0].contains(&format!("origin={} verdict=pass reason=-", o.addr)),
                "{}",
                lines[0]
            );
            assert!(
                lines[1].contains("\" 403 ") && lines[1].contains("verdict=fail reason=MALFORMED"),
                "{}",
                lines[1]
            );
        }
    }
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_signed(e: &serde_json::Value) {
    let t = e["t"].as_i64().unwrap();
    assert_eq!(
        e["sign"].as_str().unwrap(),
        md5_hex(&format!("{NOTIFY_KEY}{t}")),
        "bad sign in {e}"
    );
    assert!(t > livegate::unix_now(), "t must be in the future: {e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_sessions_start_once_and_end_after_linger() {
    let o = Origin::start("o1").await;
    let receiver = Receiver::start(Mode::Ok).await;
    let top = format!(
        "notify: {{ url: \"http://{}\", key: {NOTIFY_KEY}, events: [stream_start, stream_end, auth_denied], linger_ms: 400 }}\n",
        receiver.addr
    );
    let lg = Livegate::start_top(&domain(&[o.addr.to_string()], ""), &top);
    let flv = lg.signed_path(HOST, "/live/cam.flv");
    let mut a = get(&lg, HOST, &flv).await;
    let mut b = get(&lg, HOST, &flv).await;
    assert!(a.chunk().await.unwrap().is_some() && b.chunk().await.unwrap().is_some());
    eventually("stream_start", || !receiver.events().is_empty()).await;
    drop(a);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.events().len(),
        1,
        "a viewer left while another watches: no end yet"
    );
    drop(b);
    eventually("stream_end", || receiver.events().len() == 2).await;
    let events = receiver.events();
    for (e, kind) in events.iter().zip(["stream_start", "stream_end"]) {
        assert_eq!(e["event_type"], kind);
        assert_eq!(
            (
                e["domain"].as_str(),
                e["app"].as_str(),
                e["stream"].as_str()
            ),
            (Some(HOST), Some("live"), Some("cam"))
        );
        assert_eq!(
            (e["scene"].as_str(), e["client_ip"].as_str()),
            (Some("pull"), Some("127.0.0.1"))
        );
        check_signed(e);
    }

    // HLS: a playlist and segments polled within linger make one session.
    let m3u8 = lg.signed_path(HOST, "/live/hls.m3u8");
    for n in 0..5 {
        assert_eq!(get(&lg, HOST, &m3u8).await.status(), 200);
        // Tencent signs the stream name, so each segment carries its own signature.
        let ts = lg.signed_path(HOST, &format!("/live/hls-{n}.ts"));
        assert_eq!(get(&lg, HOST, &ts).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually("hls stream_end", || receiver.events().len() == 4).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let events = receiver.events();
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(
        (
            events[2]["event_type"].as_str(),
            events[2]["stream"].as_str()
        ),
        (Some("stream_start"), Some("hls"))
    );
    assert_eq!(events[3]["event_type"], "stream_end");

    // A denied request is an auth_denied event with its reason.
    assert_eq!(get(&lg, HOST, "/live/cam.flv").await.status(), 403);
    eventually("auth_denied", || receiver.events().len() == 5).await;
    let denied = &receiver.events()[4];
    assert_eq!(
        (denied["event_type"].as_str(), denied["reason"].as_str()),
        (Some("auth_denied"), Some("MISSING_SIGNATURE"))
    );
    check_signed(denied);
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_are_retried_with_backoff() {
    let o = Origin::start("o1").await;
    let receiver = Receiver::start(Mode::FailFirst(2)).await;
    let top = format!(
        "notify: {{ url: \"http://{}/hook?token=hookSecret9\", key: {NOTIFY_KEY}, events: [stream_start], retries: 3 }}\n",
        receiver.addr
    );
    let lg = Livegate::start_top(&domain(&[o.addr.to_string()], ""), &top);
    assert_eq!(
        get(&lg, HOST, &lg.signed_path(HOST, "/live/r.m3u8"))
            .await
            .status(),
        200
    );
    eventually("a delivery after two failures", || {
        receiver.events().len() == 1
    })
    .await;
    assert_eq!(receiver.posts(), 3);
    check_signed(&receiver.events()[0]);
    let log = lg.log();
    assert!(log.contains("/hook answered 5"), "{log}");
    assert!(
        !log.contains("hookSecret9"),
        "the notify URL's token was logged: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_drops_and_counts_without_slowing_requests() {
    let o = Origin::start("o1").await;
    let receiver = Receiver::start(Mode::Hang).await;
    let mport = free_port();
    let top = format!(
        "metrics: {{ listen: \"127.0.0.1:{mport}\" }}\n\
         notify: {{ url: \"http://{}\", key: {NOTIFY_KEY}, events: [auth_denied], retries: 0, timeout_ms: 30000, queue: 2 }}\n",
        receiver.addr
    );
    let lg = Livegate::start_top(&domain(&[o.addr.to_string()], ""), &top);
    let started = std::time::Instant::now();
    for n in 0..60 {
        assert_eq!(
            get(&lg, HOST, &format!("/live/s{n}.m3u8")).await.status(),
            403
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "requests waited on notifications"
    );
    let m = scrape(mport).await;
    let dropped = sample(&m, "livegate_notify_dropped_total", &[]).unwrap();
    assert!(dropped >= 60.0 - 16.0 - 2.0 - 1.0, "dropped {dropped}");
}

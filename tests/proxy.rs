//! The edge proxy end to end: the real binary, real origins, real clients.

mod support;

use std::time::{Duration, Instant};

use support::{
    client, file_bytes, free_port, origin_yaml, raw, raw_get, send, Livegate, Method, Origin,
};

const HOST: &str = "play.example.com";

/// Each request proxied: these tests read what the origin receives (and the
/// access log and metrics) per request; the HLS micro-cache and FLV fan-out are
/// tested in tests/cache.rs and tests/fanout.rs.
fn domain(name: &str, peers: &[String], origin_extra: &str, auth: &str) -> String {
    let origin = origin_yaml(peers, &format!("{origin_extra}, fanout: false"));
    format!("  - name: \"{name}\"\n    origin: {origin}\n    cache: {{ enabled: false }}\n    auth:\n{auth}")
}

const TENCENT: &str = "      - { scene: pull, scheme: tencent, keys: [primary1, backup2] }\n      \
                       - { scene: push, scheme: tencent, keys: [pushkey] }\n";

async fn one_origin() -> (Origin, Livegate) {
    let o = Origin::start("o1").await;
    let lg = Livegate::start(&domain(HOST, &[o.addr.to_string()], "", TENCENT));
    (o, lg)
}

async fn get(lg: &Livegate, host: &str, path: &str) -> reqwest::Response {
    lg.get(host, path).await
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_request_gets_the_origins_exact_bytes() {
    let (o, lg) = one_origin().await;
    let path = lg.signed_path(HOST, "/file/300000.flv.bin");
    let r = get(&lg, HOST, &path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-origin"], "o1");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &file_bytes(300000)[..]);
    assert_eq!(o.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_expired_and_wrong_key_get_403_and_never_reach_the_origin() {
    let (o, lg) = one_origin().await;
    let expired = lg.sign(&format!("http://{HOST}/live/a.m3u8"), &["--expire", "1000"]);
    let expired = &expired[expired.find("/live").unwrap()..];
    let good = lg.signed_path(HOST, "/live/a.m3u8");
    let wrong = good.replace("/live/a.m3u8", "/live/b.m3u8");
    for path in [
        "/live/a.m3u8",
        expired,
        &wrong,
        "/live/a.m3u8?txSecret=zz&txTime=1",
    ] {
        let r = get(&lg, HOST, path).await;
        assert_eq!(r.status(), 403, "{path}");
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("SIGNATURE") && !body.contains("EXPIRED"),
            "reason leaked: {body}"
        );
    }
    assert_eq!(get(&lg, "other.org", &good).await.status(), 404);
    assert!(
        o.seen().is_empty(),
        "denied requests reached the origin: {:?}",
        o.seen()
    );
    // And the denial reasons are in the log.
    let log = lg.log();
    for reason in [
        "MISSING_SIGNATURE",
        "EXPIRED",
        "BAD_SIGNATURE",
        "MALFORMED",
        "UNKNOWN_DOMAIN",
    ] {
        assert!(log.contains(reason), "{reason} not logged:\n{log}");
    }
    assert_eq!(get(&lg, HOST, &good).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_key_still_verifies() {
    let (_o, lg) = one_origin().await;
    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        other.path(),
        "domains:\n  - { name: play.example.com, origin: { peers: [\"127.0.0.1:9\"] }, \
         auth: [ { scene: pull, scheme: tencent, keys: [backup2] } ] }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args([
            "sign",
            "-c",
            other.path().to_str().unwrap(),
            "--url",
            "http://play.example.com/live/k.flv",
        ])
        .output()
        .unwrap();
    let url = String::from_utf8(out.stdout).unwrap();
    let path = &url.trim()[url.find("/live").unwrap()..];
    assert_eq!(
        get(&lg, HOST, &path.replace(".flv", ".m3u8"))
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_params_are_stripped_upstream_unless_configured_not_to() {
    let o = Origin::start("o1").await;
    let peers = [o.addr.to_string()];
    let lg = Livegate::start(&format!(
        "{}{}",
        domain(HOST, &peers, "", TENCENT),
        domain("keep.example.com", &peers, "", TENCENT)
            .replace("    auth:", "    strip_auth_params: false\n    auth:")
    ));
    let path = lg.signed_path(HOST, "/live/a.m3u8?user=7&z=%20");
    assert_eq!(get(&lg, HOST, &path).await.status(), 200);
    assert_eq!(o.last().uri, "/live/a.m3u8?user=7&z=%20");

    let path = lg.signed_path("keep.example.com", "/live/a.m3u8?user=7");
    assert_eq!(get(&lg, "keep.example.com", &path).await.status(), 200);
    assert_eq!(o.last().uri, path);

    let path = lg.signed_path(HOST, "/live/a.m3u8");
    assert_eq!(get(&lg, HOST, &path).await.status(), 200);
    assert_eq!(o.last().uri, "/live/a.m3u8");
}

#[tokio::test(flavor = "multi_thread")]
async fn type_b_and_c_prefixes_are_removed_upstream() {
    let o = Origin::start("o1").await;
    let peers = [o.addr.to_string()];
    let auth =
        "      - { scene: pull, app: b, scheme: type_b, keys: [kb], valid_duration: 1800 }\n      \
                - { scene: pull, app: c, scheme: type_c, keys: [kc], valid_duration: 1800 }\n";
    let lg = Livegate::start(&domain(HOST, &peers, "", auth));
    for (path, forwarded) in [
        ("/b/cam.m3u8?x=1", "/b/cam.m3u8?x=1"),
        ("/c/cam.m3u8", "/c/cam.m3u8"),
    ] {
        let signed = lg.signed_path(HOST, path);
        assert!(signed.len() > path.len() + 30, "{signed}");
        let r = get(&lg, HOST, &signed).await;
        assert_eq!(r.status(), 200, "{signed}");
        assert_eq!(o.last().uri, forwarded);
    }
    // The same path without its prefix is refused.
    assert_eq!(get(&lg, HOST, "/b/cam.m3u8").await.status(), 403);
    // A valid signature refused for another reason stays out of the log.
    let signed = lg.signed_path(HOST, "/b/cam.m3u8");
    let sig = signed.split('/').nth(2).unwrap();
    assert_eq!(sig.len(), 32, "{signed}");
    let r = send(lg.request(Method::DELETE, HOST, &signed)).await;
    assert_eq!(r.status(), 405);
    let log = lg.log();
    assert!(log.contains("denied DELETE /"), "{log}");
    assert!(!log.contains(sig), "the signature was logged: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_and_origin_host() {
    let o = Origin::start("o1").await;
    let lg = Livegate::start(&domain(
        HOST,
        &[o.addr.to_string()],
        ", host: origin.internal",
        TENCENT,
    ));
    let path = lg.signed_path(HOST, "/live/a.m3u8");
    let r = send(
        lg.request(Method::GET, HOST, &path)
            .header("x-forwarded-for", "203.0.113.9"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let seen = o.last();
    assert_eq!(seen.header("host"), Some("origin.internal"));
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_origin_costs_no_failed_request() {
    let live = Origin::start("live").await;
    let (_held, port) = support::refusing_port();
    let dead = format!("127.0.0.1:{port}");
    let lg = Livegate::start(&domain(HOST, &[dead, live.addr.to_string()], "", TENCENT));
    let path = lg.signed_path(HOST, "/live/a.m3u8");
    for i in 0..50 {
        let r = get(&lg, HOST, &path).await;
        assert_eq!(r.status(), 200, "request {i}");
    }
    assert_eq!(live.seen().len(), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_and_retries_with_all_origins_dead_give_502_not_a_hang() {
    let (_held, ports): (Vec<_>, Vec<u16>) = (0..2).map(|_| support::refusing_port()).unzip();
    let dead: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let lg = Livegate::start(&domain(
        HOST,
        &dead,
        ", health_check: { interval_ms: 200 }",
        TENCENT,
    ));
    let path = lg.signed_path(HOST, "/live/a.m3u8");
    let started = Instant::now();
    assert_eq!(get(&lg, HOST, &path).await.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Pingora's error line names the request: without the signature. (Pingora
    // writes it just after the response, so give it a moment.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lg.log().contains("Fail to proxy") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = lg.log();
    let secret = path
        .split("txSecret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(log.contains("Fail to proxy"), "{log}");
    assert!(log.contains("txSecret=<redacted>"), "{log}");
    assert!(!log.contains(secret), "the signature was logged: {log}");
    // One line per refused connection, saying what happens next; no second
    // line from Pingora's retry loop.
    let refused = log.lines().filter(|l| l.contains(" refused: ")).count();
    assert!(refused >= 2, "{log}");
    assert_eq!(
        log.matches("no attempt left: answered 502").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("retry: true"), "{log}");
    // A health check going down is one short line: no Debug dump of the peer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lg.log().contains("becomes unhealthy") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = lg.log();
    let line = log
        .lines()
        .find(|l| l.contains("becomes unhealthy"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&format!("origin {} becomes unhealthy", dead[0]))
            || line.contains(&format!("origin {} becomes unhealthy", dead[1])),
        "{line}"
    );
    assert!(
        !log.contains("PeerOptions") && !log.contains("Backend {"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_balancing_pins_each_stream_to_one_origin() {
    let a = Origin::start("a").await;
    let b = Origin::start("b").await;
    let lg = Livegate::start(&domain(
        HOST,
        &[a.addr.to_string(), b.addr.to_string()],
        ", balance: consistent",
        TENCENT,
    ));
    let mut used = std::collections::HashSet::new();
    for s in 0..16 {
        let m3u8 = lg.signed_path(HOST, &format!("/live/s{s}.m3u8"));
        let ts = m3u8.replace(".m3u8", ".ts");
        let mut ids = std::collections::HashSet::new();
        for p in [&m3u8, &ts, &m3u8, &ts] {
            let r = get(&lg, HOST, p).await;
            assert_eq!(r.status(), 200);
            ids.insert(r.headers()["x-origin"].to_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 1, "stream s{s} was served by {ids:?}");
        used.extend(ids);
    }
    assert_eq!(used.len(), 2, "16 streams all hashed to one origin");
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_flv_streams_through_without_buffering() {
    let (_o, lg) = one_origin().await;
    let path = lg.signed_path(HOST, "/live/cam.flv");
    let mut r = get(&lg, HOST, &path).await;
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    let mut got = 0usize;
    while got < 4 * 1024 * 1024 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
            .await
            .expect("the stream stalled")
            .unwrap()
            .expect("the stream ended");
        got += chunk.len();
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_origin_is_detected_by_the_read_timeout() {
    let o = Origin::start("o1").await;
    let lg = Livegate::start(&domain(
        HOST,
        &[o.addr.to_string()],
        ", read_timeout_ms: 500",
        TENCENT,
    ));
    let path = lg.signed_path(HOST, "/stall/cam.ts");
    let started = Instant::now();
    let mut r = get(&lg, HOST, &path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.chunk().await.unwrap().as_deref(), Some(&b"first"[..]));
    let end = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .expect("stall not detected");
    assert!(end.is_err() || end.unwrap().is_none());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn head_and_range_pass_through() {
    let (o, lg) = one_origin().await;
    let path = lg.signed_path(HOST, "/file/1000.flv.bin");
    let r = send(lg.request(Method::HEAD, HOST, &path)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(o.last().method, "HEAD");
    let r = send(
        lg.request(Method::GET, HOST, &path)
            .header("range", "bytes=100-199"),
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/1000");
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &file_bytes(1000)[100..200]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_scene_uses_its_own_rule_and_streams_the_body() {
    let (o, lg) = one_origin().await;
    let pull = lg.signed_path(HOST, "/live/cam.m3u8");
    let r = send(lg.request(Method::POST, HOST, &pull).body("x")).await;
    assert_eq!(
        r.status(),
        403,
        "a pull signature must not authorise a push"
    );
    let url = lg.sign(
        &format!("http://{HOST}/live/cam.m3u8"),
        &["--scene", "push"],
    );
    let push = &url[url.find("/live").unwrap()..];
    let r = send(
        lg.request(Method::POST, HOST, push)
            .body(vec![7u8; 100_000]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(o.last().method, "POST");
    let r = send(lg.request(Method::DELETE, HOST, push)).await;
    assert_eq!(r.status(), 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_serves_signed_requests() {
    let o = Origin::start("o1").await;
    let cert = rcgen::generate_simple_self_signed(vec!["play.example.com".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
    let tls_port = free_port();
    let extra = format!(
        "  - {{ addr: \"127.0.0.1:{tls_port}\", tls: {{ cert: {}, key: {} }} }}\n",
        crt.display(),
        key.display()
    );
    let lg = Livegate::start_with(&domain(HOST, &[o.addr.to_string()], "", TENCENT), &extra);
    let path = lg.signed_path(HOST, "/live/a.m3u8");
    let tls = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve(HOST, format!("127.0.0.1:{tls_port}").parse().unwrap())
        .build()
        .unwrap();
    let r = tls
        .get(format!("https://{HOST}:{tls_port}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = tls
        .get(format!("https://{HOST}:{tls_port}/live/a.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_clients_are_all_served() {
    let (o, lg) = one_origin().await;
    let path = lg.signed_path(HOST, "/file/20000.flv.bin");
    let url = lg.url(&path);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let r = client().get(url).header("host", HOST).send().await.unwrap();
                (r.status().as_u16(), r.bytes().await.unwrap().len())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), (200, 20000));
    }
    assert_eq!(o.seen().len(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_4xx_never_a_5xx_or_a_crash() {
    let (o, mut lg) = one_origin().await;
    let good = lg.signed_path(HOST, "/live/a.m3u8");
    let q = &good[good.find('?').unwrap()..];
    let long = format!("/live/{}.m3u8{q}", "a".repeat(16 * 1024));
    let cases: Vec<(String, &str)> = vec![
        (long, HOST),
        (format!("/live/../live/a.m3u8{q}"), HOST),
        (format!("/x/%2e%2e/live/a.m3u8{q}"), HOST),
        (format!("/live//a.m3u8{q}"), HOST),
        (format!("/live/a%00.m3u8{q}"), HOST),
        (format!("/live/a%zz.m3u8{q}"), HOST),
        (format!("/live%2fa.m3u8{q}"), HOST),
        (good.clone(), "play.example.com:8080"),
        (good.clone(), "play.example.com."),
        (good.clone(), "PLAY.example.com"),
        (good.clone(), ""),
    ];
    for (path, host) in &cases {
        let (status, _) = raw_get(lg.port, host, path);
        let expect_ok = path == &good && !host.is_empty();
        if expect_ok {
            assert_eq!(status, 200, "{host} {path}");
        } else {
            assert!(
                (400..500).contains(&status),
                "{status} for {host:?} {}",
                &path[..path.len().min(80)]
            );
        }
    }
    let absurd_headers = format!(
        "GET {good} HTTP/1.1\r\nHost: {HOST}\r\n{}Connection: close\r\n\r\n",
        (0..200)
            .map(|i| format!("X-{i}: {}\r\n", "v".repeat(500)))
            .collect::<String>()
    );
    let (status, _) = raw(lg.port, absurd_headers.as_bytes());
    assert!((200..500).contains(&status), "{status}");
    let (status, _) = raw(
        lg.port,
        b"GET /live/a.m3u8 HTTP/1.1\r\nHost: \x01\xff\r\nConnection: close\r\n\r\n",
    );
    assert!((400..500).contains(&status), "{status}");
    // The origin only ever saw exactly the verified path.
    for seen in o.seen() {
        assert_eq!(seen.uri, "/live/a.m3u8", "{seen:?}");
    }
    assert!(lg.alive(), "livegate died: {}", lg.log());
    assert_eq!(raw_get(lg.port, HOST, &good).0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn encoded_path_or_second_host_cannot_reach_a_stricter_apps_content() {
    let o = Origin::start("o1").await;
    // "live" is signed, everything else is public: the classic split.
    let auth = "      - { scene: pull, app: live, scheme: tencent, keys: [liveKey1] }\n      \
                - { scene: pull, app: \"*\", enabled: false }\n";
    let lg = Livegate::start(&domain(HOST, &[o.addr.to_string()], "", auth));
    assert_eq!(get(&lg, HOST, "/live/secret.m3u8").await.status(), 403);
    assert_eq!(get(&lg, HOST, "/public/a.m3u8").await.status(), 200);
    for path in [
        "/li%76e/secret.m3u8",
        "/%6Cive/secret.m3u8",
        "/live%2Dx/a.m3u8",
        "/a/%7Euser.m3u8",
    ] {
        let (status, _) = raw_get(lg.port, HOST, path);
        assert_eq!(status, 400, "{path} must not be routed as another app");
    }
    let two_hosts = format!(
        "GET /public/a.m3u8 HTTP/1.1\r\nHost: {HOST}\r\nHost: other.example.com\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw(lg.port, two_hosts.as_bytes()).0, 400);
    assert!(
        o.seen().iter().all(|s| s.uri == "/public/a.m3u8"),
        "{:?}",
        o.seen()
    );
}

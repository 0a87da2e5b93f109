//! The ways around the gate, tried as an attacker would: the real binary, a
//! recording origin that keeps every request exactly as it arrived, real auth
//! servers, real clients. The origin must see nothing it should not, and the signed
//! URL must still play.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use support::auth::AuthServer;
use support::recorder::Recorder;
use support::server::Server;
use support::{
    free_port, origin_yaml, raw, raw_from, sample, scrape, wait_closed, Livegate, Method,
};

const HOST: &str = "play.example.com";

/// `app: live` signed, every other app public: the classic split an attacker aims at.
const SPLIT: &str = "      - { scene: pull, app: live, scheme: tencent, keys: [liveKey1] }\n      \
                     - { scene: pull, app: \"*\", enabled: false }\n";

/// Both scenes public: only remote auth decides.
const OPEN: &str =
    "      - { scene: pull, enabled: false }\n      - { scene: push, enabled: false }\n";

/// A domain whose requests are each proxied: these tests check what the origin
/// receives for each request, so FLV fan-out (one shared pull, tested in
/// tests/fanout.rs) is off.
fn domain(name: &str, origin: impl std::fmt::Display, auth: &str, extra: &str) -> String {
    format!(
        "  - name: \"{name}\"\n    origin: {}\n    auth:\n{auth}{extra}",
        origin_yaml(&[origin], ", fanout: false")
    )
}

fn get(host: &str, target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

fn status(lg: &Livegate, host: &str, target: &str) -> u16 {
    raw(lg.port, &get(host, target)).0
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_with_a_second_reading_never_reach_the_origin() {
    let rec = Recorder::start().await;
    let lg = Livegate::start(&domain(HOST, rec.addr, SPLIT, ""));
    for target in [
        "live/cam1.flv",
        "a/../live/cam1.flv",
        "/pub/..;/live/cam2.flv",
        "/x/..;/live/cam2.flv",
        "/live;/cam2.flv",
        "/live;x=1/cam2.flv",
        "/live./cam2.flv",
        "/live%20/cam2.flv",
        "/live%3b/cam2.flv",
        "/live%3B/cam2.flv",
        "/live/cam2.flv/",
        "/pub/a.flv;x",
        "http://other.example.com/pub/a.flv",
    ] {
        assert_eq!(status(&lg, HOST, target), 400, "{target}");
    }
    // Another case is the same app: the stricter rule holds.
    for target in ["/LIVE/cam2.flv", "/Live/cam2.flv"] {
        assert_eq!(status(&lg, HOST, target), 403, "{target}");
    }
    assert!(
        rec.seen().is_empty(),
        "reached the origin: {:?}",
        rec.targets()
    );
    assert!(lg.log().contains("BAD_REQUEST"), "{}", lg.log());

    // The signed URL still plays, in origin-form and in absolute-form, and the
    // origin receives exactly the canonical path.
    let signed = lg.signed_path(HOST, "/live/cam2.flv");
    assert_eq!(status(&lg, HOST, &signed), 200);
    let absolute = format!("http://{HOST}{signed}");
    assert_eq!(status(&lg, HOST, &absolute), 200);
    assert_eq!(status(&lg, HOST, "/pub/a.flv"), 200);
    assert_eq!(
        rec.targets(),
        ["/live/cam2.flv", "/live/cam2.flv", "/pub/a.flv"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_auth_scope_cannot_be_sidestepped() {
    let auth = AuthServer::start().await;
    let rec = Recorder::start().await;
    // The auth server denies every path under /deny.
    let by_ext = format!(
        "    remote_auth: {{ url: \"http://{}/deny\", scope: {{ extensions: [flv, m3u8] }} }}\n",
        auth.addr
    );
    let by_path = format!(
        "    remote_auth: {{ url: \"http://{}/deny\", scope: {{ paths: [\"/vip/*\"] }} }}\n",
        auth.addr
    );
    let lg = Livegate::start(&format!(
        "{}{}",
        domain("ext.test", rec.addr, OPEN, &by_ext),
        domain("path.test", rec.addr, OPEN, &by_path)
    ));
    for (host, target, expected) in [
        ("ext.test", "/vip/a.flv;x", 400),
        ("ext.test", "/vip/a.flv.", 400),
        ("ext.test", "/vip/a.flv%20", 400),
        ("ext.test", "/vip/a.flv/", 400),
        ("ext.test", "/vip/a.FLV", 403),
        ("ext.test", "/vip/a.flv", 403),
        ("ext.test", "/vip/a.ts", 200),
        ("path.test", "/VIP/a.ts", 403),
        ("path.test", "/Vip/a.ts", 403),
        ("path.test", "/vip;x/a.ts", 400),
        ("path.test", "/x/..;/vip/a.ts", 400),
        ("path.test", "/vip./a.ts", 400),
        ("path.test", "/pub/a.ts", 200),
    ] {
        assert_eq!(status(&lg, host, target), expected, "{host} {target}");
    }
    assert_eq!(rec.targets(), ["/vip/a.ts", "/pub/a.ts"]);
    assert_eq!(auth.calls().len(), 4, "{:?}", auth.calls());
}

/// An auth server that allows a client only for Host `a.*` from 127.0.0.2, as one
/// that decides by `X-Forwarded-Host` and `X-Forwarded-For` may; counts its calls.
async fn picky_auth() -> (Server, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let server = Server::start(None, move |req: Request<hyper::body::Incoming>| {
        counted.fetch_add(1, Ordering::SeqCst);
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let ok = header("x-forwarded-host").starts_with("a.")
            && header("x-forwarded-for") == "127.0.0.2";
        let resp = Response::builder()
            .status(if ok { 200 } else { 403 })
            .body(Full::new(Bytes::new()))
            .unwrap();
        std::future::ready(resp)
    })
    .await;
    (server, calls)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_answer_is_never_lent_to_another_host_or_client() {
    let (auth, calls) = picky_auth().await;
    let rec = Recorder::start().await;
    let remote = |share: bool| {
        format!(
            "    remote_auth: {{ url: \"http://{}/check\", cache: {{ allow_ttl_ms: 60000, deny_ttl_ms: 60000, share_between_clients: {share} }} }}\n",
            auth.addr
        )
    };
    let lg = Livegate::start(&format!(
        "{}{}",
        domain("*.ra.test", rec.addr, OPEN, &remote(false)),
        domain("*.share.test", rec.addr, OPEN, &remote(true))
    ));
    let req = |host: &str, extra: &str| {
        format!(
            "GET /live/a.flv?token=ok HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
        )
        .into_bytes()
    };
    let calls_now = || calls.load(Ordering::SeqCst);
    assert_eq!(raw_from("127.0.0.2", lg.port, &req("a.ra.test", "")), 200);
    assert_eq!(calls_now(), 1);
    // The same request again is a cache hit…
    assert_eq!(raw_from("127.0.0.2", lg.port, &req("a.ra.test", "")), 200);
    assert_eq!(calls_now(), 1);
    // …but another Host of the same wildcard domain, or another client, is asked.
    assert_eq!(raw_from("127.0.0.2", lg.port, &req("b.ra.test", "")), 403);
    assert_eq!(calls_now(), 2);
    assert_eq!(raw_from("127.0.0.1", lg.port, &req("a.ra.test", "")), 403);
    assert_eq!(calls_now(), 3);
    // So is the same client with other credentials.
    assert_eq!(
        raw_from("127.0.0.2", lg.port, &req("a.ra.test", "Cookie: s=2\r\n")),
        200
    );
    assert_eq!(calls_now(), 4);

    // share_between_clients: an answer serves every client (documented: for auth
    // servers that decide by the URL alone).
    assert_eq!(
        raw_from("127.0.0.2", lg.port, &req("a.share.test", "")),
        200
    );
    assert_eq!(calls_now(), 5);
    assert_eq!(
        raw_from("127.0.0.1", lg.port, &req("a.share.test", "")),
        200
    );
    assert_eq!(calls_now(), 5);
    assert_eq!(rec.seen().len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_origin_sees_only_the_auth_servers_identity_and_no_method_override() {
    let auth = AuthServer::start().await;
    let rec = Recorder::start().await;
    let remote = format!(
        "    remote_auth: {{ url: \"http://{}/check\", upstream_headers: [X-User-Id] }}\n",
        auth.addr
    );
    let lg = Livegate::start(&format!(
        "{}{}",
        domain("ra.test", rec.addr, OPEN, &remote),
        domain("plain.test", rec.addr, OPEN, "")
    ));
    let forged =
        "X_User_Id: 1\r\nx-user-id: 5\r\nX-User_ID: 6\r\nX-HTTP-Method-Override: DELETE\r\n\
                  X-HTTP-Method: DELETE\r\nX-Method-Override: PUT\r\n";
    for host in ["ra.test", "plain.test"] {
        let request = format!(
            "GET /live/a.flv HTTP/1.1\r\nHost: {host}\r\n{forged}Connection: close\r\n\r\n"
        );
        assert_eq!(raw(lg.port, request.as_bytes()).0, 200, "{host}");
    }
    let seen = rec.seen();
    let user_ids = |i: usize| -> Vec<String> {
        seen[i]
            .headers
            .iter()
            .filter(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case("x-user-id"))
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(user_ids(0), ["42"], "{:?}", seen[0]);
    assert_eq!(
        user_ids(1).len(),
        3,
        "without remote auth nothing is reserved"
    );
    for w in &seen {
        for name in [
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
        ] {
            assert!(
                w.values(name).is_empty(),
                "{name} reached the origin: {w:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_stay_out_of_the_log_wherever_they_are_sent() {
    let rec = Recorder::start().await;
    let lg = Livegate::start_top(
        &domain(HOST, rec.addr, SPLIT, ""),
        "access_log: { format: combined }\n",
    );
    let signed = lg.signed_path(HOST, "/live/cam2.flv");
    let query = &signed[signed.find('?').unwrap() + 1..];
    let sig = query
        .split('&')
        .find_map(|p| p.strip_prefix("txSecret="))
        .unwrap()
        .to_owned();
    let time = query
        .split('&')
        .find_map(|p| p.strip_prefix("txTime="))
        .unwrap()
        .to_owned();
    let requests = [
        (signed.clone(), format!("Referer: http://{HOST}{signed}\r\n")),
        (
            "/live/cam2.flv".to_owned(),
            format!("Referer: https://pirate.example/p?src=http%3A%2F%2Fx%2Flive%2Fcam2.flv%3FtxSecret%3D{sig}\r\n"),
        ),
        (format!("/live/cam2.flv?TXSECRET={sig}&txTime={time}"), String::new()),
        (format!("/live/cam2.flv?tx+Secret={sig}&txTime={time}"), String::new()),
        (format!("/live/cam2.flv?tx%20secret={sig}"), String::new()),
        ("/live/cam2.flv".to_owned(), format!("User-Agent: player {sig}\r\n")),
        (format!("/live;/cam2.flv?txSecret={sig}&txTime={time}"), String::new()),
    ];
    for (target, headers) in &requests {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\n{headers}Connection: close\r\n\r\n");
        raw(lg.port, request.as_bytes());
    }
    // The access log is written after each response: wait for every line.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lg.log().matches("verdict=").count() < requests.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = lg.log();
    assert_eq!(log.matches("verdict=").count(), requests.len(), "{log}");
    assert!(
        !log.to_ascii_lowercase().contains(&sig.to_ascii_lowercase()),
        "a signature was logged:\n{log}"
    );
    assert!(log.contains("<redacted>"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_is_hashed_as_nginx_host_lowercase() {
    let rec = Recorder::start().await;
    let sl = "      - { scene: pull, scheme: secure_link, keys: [slKey1], template: \"{expires}{uri}{host} {key}\" }\n";
    let volc = "      - { scene: pull, scheme: volc_md5_custom, keys: [volcKey1], encrypt_fields: [Domain, AppName, StreamName, key, volcTime] }\n";
    let lg = Livegate::start(&format!(
        "{}{}",
        domain("sl.test", rec.addr, sl, ""),
        domain("volc.test", rec.addr, volc, "")
    ));
    for host in ["sl.test", "volc.test"] {
        let signed = lg.signed_path(host, "/live/cam1.flv");
        let upper = host.to_ascii_uppercase();
        for sent in [
            host.to_owned(),
            upper.clone(),
            format!("{upper}.:80"),
            format!("{upper}:{}", lg.port),
        ] {
            assert_eq!(status(&lg, &sent, &signed), 200, "Host: {sent}");
        }
    }
    assert_eq!(rec.seen().len(), 8);
}

/// Starts a request head on `s` and sends one header line a second (every read
/// is prompt, the head never ends): the server must close the connection at its
/// 2 s head deadline.
fn drip_until_cut(s: &mut TcpStream, who: &str) {
    s.write_all(format!("GET /live/a.flv HTTP/1.1\r\nHost: {HOST}\r\n").as_bytes())
        .unwrap();
    let started = Instant::now();
    let mut cut = None;
    for i in 0..30 {
        if s.write_all(format!("X-Drip-{i}: 1\r\n").as_bytes())
            .is_err()
            || wait_closed(s, Duration::from_secs(1)).is_some()
        {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.unwrap_or_else(|| panic!("{who} was held for 30 s"));
    assert!(
        cut >= Duration::from_millis(1500),
        "{who}: cut too early: {cut:?}"
    );
    assert!(
        cut < Duration::from_secs(6),
        "{who}: cut after {cut:?}, deadline 2 s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_dripped_line_by_line_is_cut_at_the_deadline() {
    let rec = Recorder::start().await;
    let lg = Livegate::start_server(
        &domain(HOST, rec.addr, OPEN, ""),
        "",
        ", header_timeout_ms: 2000",
    );
    let mut s = TcpStream::connect(("127.0.0.1", lg.port)).unwrap();
    drip_until_cut(&mut s, "a dripping client");
    assert!(rec.seen().is_empty());

    // A client that sends its head in time, then idles between keep-alive requests
    // for longer than the deadline, is served both times.
    let mut s = TcpStream::connect(("127.0.0.1", lg.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    for _ in 0..2 {
        s.write_all(format!("GET /live/a.flv HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"ok\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        std::thread::sleep(Duration::from_millis(2500));
    }
    // A later head on the same kept-alive connection has its own deadline.
    drip_until_cut(&mut s, "a dripping keep-alive request");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_stream_outlasts_the_head_deadline() {
    let o = support::Origin::start("o1").await;
    let lg = Livegate::start_server(
        &domain(HOST, o.addr, OPEN, ""),
        "",
        ", header_timeout_ms: 500",
    );
    let mut r = lg.get(HOST, "/live/cam.flv").await;
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
            .await
            .expect("the stream stalled")
            .unwrap();
        assert!(
            chunk.is_some(),
            "the stream was cut after {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_cap_are_closed_at_once_and_counted() {
    let rec = Recorder::start().await;
    let metrics = free_port();
    let lg = Livegate::start_server(
        &domain(HOST, rec.addr, OPEN, ""),
        &format!("metrics: {{ listen: \"127.0.0.1:{metrics}\" }}\n"),
        ", max_connections: 3",
    );
    // Four idle connections for three slots: one of them (whichever the server
    // took last) is closed at once.
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", lg.port)).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = 0;
    while closed == 0 && Instant::now() < deadline {
        for s in &mut held {
            if wait_closed(s, Duration::from_millis(50)).is_some() {
                closed += 1;
            }
        }
    }
    assert!(
        closed >= 1,
        "four connections were kept open with max_connections: 3"
    );
    let text = scrape(metrics).await;
    let refused = sample(&text, "livegate_connections_refused_total", &[]).unwrap_or(0.0);
    assert!(refused >= 1.0, "{text}");
    // A slot comes back when a connection closes.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = support::client()
            .request(Method::GET, lg.url("/live/a.flv"))
            .header("host", HOST)
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

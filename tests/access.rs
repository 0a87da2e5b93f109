//! Access control end to end: the real binary, loopback clients from several
//! source addresses (IPv4 and IPv6), a recording origin and an endless FLV origin.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use support::api::{Api, ADMIN_KEY};
use support::recorder::Recorder;
use support::{free_port, origin_yaml, raw_from, sample, scrape, Livegate, Origin};

const HOST: &str = "play.example.com";
const OPEN: &str = "      - { scene: pull, enabled: false }\n";

/// Each request proxied (these tests read what the recording origin received per
/// request; FLV fan-out's shared pull is tested in tests/fanout.rs).
const PROXIED: &str = ", fanout: false";

fn domain(origin: impl std::fmt::Display, access: &str) -> String {
    format!(
        "  - name: {HOST}\n    origin: {}\n    auth:\n{OPEN}    access: {access}\n",
        origin_yaml(&[origin], PROXIED)
    )
}

fn request(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{headers}Connection: close\r\n\r\n")
        .into_bytes()
}

/// A request from `source` to livegate's IPv4 or IPv6 listener; the status.
fn from(source: &str, port: u16, path: &str, headers: &str) -> u16 {
    raw_from(source, port, &request(path, headers))
}

#[tokio::test(flavor = "multi_thread")]
async fn referer_user_agent_and_ip_lists() {
    let rec = Recorder::start().await;
    let metrics = free_port();
    let v6 = free_port();
    let access = "{ referer: { allow: [\"*.example.com\", example.com], allow_empty: false }, \
                  user_agent: { deny: [\"*curl*\"] }, \
                  ip: { deny: [\"127.0.0.2\", \"fd00::/8\"] }, \
                  apps: { open: { ip: { deny: [\"::1\"] } } } }";
    let lg = Livegate::start_full(
        &domain(rec.addr, access),
        &format!("  - \"[::1]:{v6}\"\n"),
        &format!("metrics: {{ listen: \"127.0.0.1:{metrics}\" }}\n"),
        &[],
    );
    let ok = "Referer: https://www.example.com/player\r\n";
    for (source, path, headers, expected) in [
        ("127.0.0.1", "/live/a.flv", ok, 200),
        (
            "127.0.0.1",
            "/live/a.flv",
            "Referer: https://example.com/\r\n",
            200,
        ),
        (
            "127.0.0.1",
            "/live/a.flv",
            "Referer: https://evil.example.org/www.example.com\r\n",
            403,
        ),
        (
            "127.0.0.1",
            "/live/a.flv",
            "Referer: https://example.com.evil.org/\r\n",
            403,
        ),
        ("127.0.0.1", "/live/a.flv", "", 403),
        (
            "127.0.0.1",
            "/live/a.flv",
            "Referer: https://www.example.com/\r\nUser-Agent: CURL/8.1\r\n",
            403,
        ),
        (
            "127.0.0.1",
            "/live/a.flv",
            "Referer: https://www.example.com/\r\nUser-Agent: VLC/3.0\r\n",
            200,
        ),
        ("127.0.0.2", "/live/a.flv", ok, 403),
        ("127.0.0.3", "/live/a.flv", ok, 200),
        // The app's own lists replace the domain's: no Referer needed, ::1 denied.
        ("127.0.0.2", "/open/a.flv", "", 200),
    ] {
        assert_eq!(
            from(source, lg.port, path, headers),
            expected,
            "{source} {path} {headers:?}"
        );
    }
    // IPv6 clients: a v6 CIDR and the app's exact ::1.
    let v6_get = |path: &str, headers: &str| -> u16 {
        let mut s = TcpStream::connect(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], v6))).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&request(path, headers)).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf)
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(v6_get("/live/a.flv", ok), 200);
    assert_eq!(v6_get("/open/a.flv", ""), 403);
    assert_eq!(rec.seen().len(), 6);
    let log = lg.log();
    for reason in ["REFERER_DENIED", "UA_DENIED", "IP_DENIED"] {
        assert!(log.contains(reason), "{reason}: {log}");
    }
    let text = scrape(metrics).await;
    for reason in ["REFERER_DENIED", "UA_DENIED", "IP_DENIED"] {
        let n = sample(&text, "livegate_requests_total", &[("reason", reason)]).unwrap_or(0.0);
        assert!(n >= 1.0, "{reason}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let rec = Recorder::start().await;
    let access = "{ ip: { allow: [\"203.0.113.0/24\"] }, trusted_proxies: [\"127.0.0.1/32\"] }";
    let lg = Livegate::start(&domain(rec.addr, access));
    let xff = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    assert_eq!(
        from("127.0.0.1", lg.port, "/live/a.flv", &xff("203.0.113.5")),
        200
    );
    assert_eq!(
        from(
            "127.0.0.1",
            lg.port,
            "/live/a.flv",
            &xff("198.51.100.1, 203.0.113.5")
        ),
        200
    );
    assert_eq!(
        from("127.0.0.1", lg.port, "/live/a.flv", &xff("198.51.100.1")),
        403
    );
    assert_eq!(from("127.0.0.1", lg.port, "/live/a.flv", ""), 403);
    // From a peer that is not trusted, a forged header changes nothing.
    assert_eq!(
        from("127.0.0.2", lg.port, "/live/a.flv", &xff("203.0.113.5")),
        403
    );
    assert_eq!(rec.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_rate_is_429_and_it_recovers() {
    let rec = Recorder::start().await;
    let access = "{ limits: { requests_per_second: 5, burst: 5 } }";
    let lg = Livegate::start(&domain(rec.addr, access));
    let statuses: Vec<u16> = (0..12)
        .map(|_| from("127.0.0.2", lg.port, "/live/a.m3u8", ""))
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|&&s| s == 200).count() <= 10,
        "{statuses:?}"
    );
    // Another client is not limited by the first one's rate.
    assert_eq!(from("127.0.0.3", lg.port, "/live/a.m3u8", ""), 200);
    // Two quiet seconds later the client is served again.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(from("127.0.0.2", lg.port, "/live/a.m3u8", ""), 200);
    assert!(lg.log().contains("RATE_LIMITED"));
}

/// Opens an FLV stream from `source` and reads its status line; the socket stays
/// open (and streaming) until dropped.
fn open_stream(source: &str, port: u16, path: &str) -> (u16, TcpStream) {
    let mut s = support::connect_from(source, port);
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    let status = String::from_utf8_lossy(&head[9..12]).parse().unwrap();
    (status, s)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_is_capped_in_concurrent_streams_another_is_not() {
    let o = Origin::start("o1").await;
    let lg = Livegate::start(&domain(o.addr, "{ limits: { connections: 2 } }"));
    let (a, sa) = open_stream("127.0.0.2", lg.port, "/live/a.flv");
    let (b, _sb) = open_stream("127.0.0.2", lg.port, "/live/b.flv");
    assert_eq!((a, b), (200, 200));
    assert_eq!(from("127.0.0.2", lg.port, "/live/c.flv", ""), 403);
    assert!(lg.log().contains("TOO_MANY_CONNECTIONS"));
    let (c, _sc) = open_stream("127.0.0.3", lg.port, "/live/c.flv");
    assert_eq!(c, 200, "another client is unaffected");
    // A stream that ends gives its slot back.
    drop(sa);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _keep) = open_stream("127.0.0.2", lg.port, "/live/d.flv");
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_set_through_the_api_is_in_force_on_the_next_request() {
    let rec = Recorder::start().await;
    let port = free_port();
    let mut lg = Livegate::start_top(
        &format!(
            "  - name: {HOST}\n    origin: {}\n    auth:\n{OPEN}",
            origin_yaml(&[rec.addr], PROXIED)
        ),
        &format!("admin: {{ listen: \"127.0.0.1:{port}\", key: {ADMIN_KEY} }}\n"),
    );
    lg.wait_port(port);
    let api = Api::new(port);
    let bot = "User-Agent: evilbot/1.0\r\n";
    assert_eq!(from("127.0.0.1", lg.port, "/live/a.flv", bot), 200);
    let body = json!({"domain": HOST, "access": {"user_agent": {"deny": ["*bot*"]},
                                                 "referer": {"deny": ["pirate.example"]}}});
    let (s, v) = api.call("PUT", "/v1/access", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(from("127.0.0.1", lg.port, "/live/a.flv", bot), 403);
    let (_, v) = api
        .call("GET", &format!("/v1/access?domain={HOST}"), None)
        .await;
    assert_eq!(v["source"], "api");
    // The check API reports the lists for what it is given.
    let url = "url=http%3A%2F%2Fplay.example.com%2Flive%2Fa.flv";
    let (_, v) = api
        .call(
            "GET",
            &format!("/v1/auth/check?{url}&referer=https%3A%2F%2Fpirate.example%2Fx"),
            None,
        )
        .await;
    assert_eq!(v["reason"], "REFERER_DENIED", "{v}");
    let (_, v) = api
        .call(
            "GET",
            &format!("/v1/auth/check?{url}&user_agent=evilbot"),
            None,
        )
        .await;
    assert_eq!(v["reason"], "UA_DENIED", "{v}");
    let (_, v) = api
        .call("GET", &format!("/v1/auth/check?{url}"), None)
        .await;
    assert_eq!(v["status"], "pass", "{v}");
    let bad = json!({"domain": HOST, "access": {"ip": {"allow": ["300.0.0.0/8"]}}});
    let (s, v) = api.call("PUT", "/v1/access", Some(bad)).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("ip.allow[0]"),
        "{v}"
    );
    assert_eq!(
        api.call("DELETE", &format!("/v1/access?domain={HOST}"), None)
            .await
            .0,
        200
    );
    assert_eq!(from("127.0.0.1", lg.port, "/live/a.flv", bot), 200);
}

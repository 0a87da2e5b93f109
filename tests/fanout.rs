//! FLV fan-out end to end: the real binary, real H.264 from the demo origin
//! (decoded by ffmpeg), a paced test origin, and a relay in front of the origin
//! that counts (and can cut) origin connections.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::api::{Api, ADMIN_KEY};
use support::media::{demo_origin, frames};
use support::relay::Relay;
use support::{free_port, origin_yaml, tencent, until_cut, Livegate, Origin};

const HOST: &str = "play.example.com";
const KEY: &str = "fanoutKey2026";

fn domain(origin: &str, fanout: &str) -> String {
    format!(
        "  - name: \"*\"\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin_yaml(&[origin], &format!(", fanout: {fanout}"))
    )
}

/// Waits until `cond` holds, failing with `what` after `limit`.
fn wait(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An FLV viewer on a raw socket (with the Host ffmpeg would send): the request
/// sent, the response head read.
fn viewer(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "no response head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

/// Bytes read from `s` in `d`.
fn read_for(s: &mut TcpStream, d: Duration) -> usize {
    let end = Instant::now() + d;
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0;
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn many_viewers_share_one_origin_connection_and_a_late_joiner_plays_at_once() {
    let origin = demo_origin();
    let relay = Relay::start(origin.port).await;
    let lg = Livegate::start(&domain(&relay.addr(), "{ linger_ms: 500 }"));
    let path = tencent("/live/cam1.flv", KEY);
    let mut viewers: Vec<TcpStream> = (0..20).map(|_| viewer(lg.port, &path)).collect();
    for v in &mut viewers {
        assert!(read_for(v, Duration::from_millis(200)) > 0);
    }
    assert_eq!(relay.accepted(), 1, "one origin connection for 20 viewers");
    // A late joiner decodes from its first byte: configuration, then a keyframe.
    let url = format!("http://127.0.0.1:{}{path}", lg.port);
    let n = tokio::task::spawn_blocking(move || frames(&url, 3))
        .await
        .unwrap();
    assert!(n >= 60, "{n} frames in 3 s");
    assert_eq!(relay.accepted(), 1, "the joiner shared the pull too");
    // Everyone leaves: the pull ends after linger; the next viewer starts another.
    drop(viewers);
    wait("the pull ended", Duration::from_secs(10), || {
        relay.open() == 0
    });
    let mut again = viewer(lg.port, &path);
    assert!(read_for(&mut again, Duration::from_millis(200)) > 0);
    assert_eq!(relay.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_false_is_one_origin_request_per_viewer() {
    let o = Origin::start("o").await;
    let relay = Relay::start(o.addr.port()).await;
    let lg = Livegate::start(&domain(&relay.addr(), "false"));
    let path = tencent("/live/cam1.flv", KEY);
    let mut viewers: Vec<TcpStream> = (0..3).map(|_| viewer(lg.port, &path)).collect();
    for v in &mut viewers {
        assert!(read_for(v, Duration::from_millis(100)) > 0);
    }
    assert_eq!(relay.accepted(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_viewer_is_cut_while_the_others_keep_their_rate() {
    let o = Origin::start("o").await;
    let lg = Livegate::start(&domain(
        &o.addr.to_string(),
        "{ queue_ms: 1000, slow_viewer: cut }",
    ));
    let path = tencent("/paced/cam1.flv", KEY);
    // The stalled viewer reads nothing, through a small receive buffer.
    let stalled = {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], lg.port)).into())
            .unwrap();
        let mut s: TcpStream = sock.into();
        std::io::Write::write_all(
            &mut s,
            format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        s
    };
    let mut a = viewer(lg.port, &path);
    let mut b = viewer(lg.port, &path);
    // The others keep receiving the origin's 6.4 MB/s while the stalled one is cut.
    let (ra, rb) = std::thread::scope(|sc| {
        let ta = sc.spawn(|| read_for(&mut a, Duration::from_secs(4)));
        let tb = sc.spawn(|| read_for(&mut b, Duration::from_secs(4)));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert!(ra > 8 << 20 && rb > 8 << 20, "{ra} {rb} bytes in 4 s");
    let mut stalled = stalled;
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let mut total = 0usize;
    let ended = loop {
        match stalled.read(&mut sink) {
            Ok(0) | Err(_) => break true,
            Ok(k) => total += k,
        }
        if total > 64 << 20 {
            break false;
        }
    };
    assert!(ended, "the stalled viewer was never cut");
    assert!(lg.log().contains("slow viewer"), "{}", lg.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forbid_cuts_every_viewer_and_origin_death_ends_them_cleanly() {
    let o = Origin::start("o").await;
    let relay = Relay::start(o.addr.port()).await;
    let admin = free_port();
    let lg = Livegate::start_top(
        &domain(&relay.addr(), "true"),
        &format!("admin: {{ listen: \"127.0.0.1:{admin}\", key: {ADMIN_KEY} }}\n"),
    );
    let api = Api::new(admin);
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let r = lg.get(HOST, &tencent("/paced/cam7.flv", KEY)).await;
        assert_eq!(r.status(), 200);
        viewers.push(r);
    }
    assert_eq!(relay.accepted(), 1);
    let (s, v) = api
        .call("GET", "/v1/streams/online?domain=*&stream=cam7", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["streams"][0]["connections"], 3, "{v}");
    let forbid = json!({"domain": "*", "app": "paced", "stream": "cam7"});
    let (s, v) = api.call("POST", "/v1/streams/forbid", Some(forbid)).await;
    assert_eq!(s, 200, "{v}");
    for r in viewers {
        until_cut(r, Duration::from_secs(10))
            .await
            .expect("a viewer was not cut");
    }

    // Another stream; its origin connection dies: every viewer's response ends
    // (cleanly: the chunked body is terminated), and the next viewer pulls anew.
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let r = lg.get(HOST, &tencent("/paced/cam8.flv", KEY)).await;
        assert_eq!(r.status(), 200);
        viewers.push(r);
    }
    assert_eq!(relay.accepted(), 2);
    relay.cut();
    for mut r in viewers {
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match r.chunk().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return true,
                    Err(_) => return false,
                }
            }
        })
        .await
        .expect("a viewer was not ended");
        assert!(ended, "a viewer's body did not end cleanly");
    }
    relay.restore().await;
    let r = lg.get(HOST, &tencent("/paced/cam8.flv", KEY)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(relay.accepted(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shared_pull_asks_the_canonical_target_and_carries_no_viewers_headers() {
    let rec = support::recorder::Recorder::start().await;
    let lg = Livegate::start(&domain(&rec.addr.to_string(), "true"));
    let signed = tencent("/live/cam1.flv", KEY);
    let r = lg
        .request(reqwest::Method::GET, HOST, &format!("{signed}&keep=1"))
        .header("cookie", "session=viewerSecret")
        .header("authorization", "Bearer viewerToken")
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await
        .unwrap();
    // The recorder answers "ok", which is no FLV: the viewer is told so.
    assert_eq!(r.status(), 502);
    let seen = rec.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/live/cam1.flv?keep=1");
    assert_eq!(seen[0].values("host"), [HOST]);
    for h in ["cookie", "authorization", "x-forwarded-for", "x-real-ip"] {
        assert!(seen[0].values(h).is_empty(), "{h}: {seen:?}");
    }
    assert!(lg.log().contains("not FLV"), "{}", lg.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_leaving_is_no_error() {
    let origin = demo_origin();
    let peer = format!("127.0.0.1:{}", origin.port);
    for fanout in ["true", "false"] {
        let metrics = free_port();
        let top = format!(
            "access_log: {{ format: json }}\nmetrics: {{ listen: \"127.0.0.1:{metrics}\" }}\n"
        );
        let mut lg = Livegate::start_top(&domain(&peer, fanout), &top);
        lg.wait_port(metrics);
        let path = tencent("/live/cam1.flv", KEY);
        for _ in 0..3 {
            let mut v = viewer(lg.port, &path);
            assert!(read_for(&mut v, Duration::from_millis(300)) > 0);
            drop(v);
        }
        // Pingora reports a failed write once the next chunk is due; the
        // leaving is counted, not logged as an error.
        let deadline = Instant::now() + Duration::from_secs(20);
        let left = loop {
            let text = support::scrape(metrics).await;
            let n = support::sample(&text, "livegate_viewers_left_total", &[("domain", "*")]);
            match n {
                Some(n) if n >= 3.0 => break n,
                _ if Instant::now() > deadline => panic!("fanout {fanout}: left {n:?}:\n{text}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        assert_eq!(left, 3.0, "fanout {fanout}");
        let log = lg.log();
        assert!(
            !log.lines().any(|l| l.contains(" ERROR ")),
            "fanout {fanout}: a viewer leaving was logged as an error:\n{log}"
        );
        // Each viewer's access line names the origin peer that served it (the
        // shared pull's, with fan-out).
        let lines: Vec<serde_json::Value> = log
            .lines()
            .filter(|l| l.starts_with('{') && l.contains("cam1.flv"))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "fanout {fanout}:\n{log}");
        for l in lines {
            assert_eq!(l["origin"], json!(peer), "fanout {fanout}: {l}");
            // Logged when the viewer left, with what it was sent (a fan-out
            // viewer's body is written past Pingora's session).
            assert_eq!(l["status"], 200, "fanout {fanout}: {l}");
            assert!(
                l["bytes"].as_u64().is_some_and(|b| b > 0),
                "fanout {fanout}: {l}"
            );
        }
    }
}

/// `cut_on_expiry`: an FLV viewer whose URL expires in 3 s is cut then (and
/// counted EXPIRED); without the setting the same URL plays on.
#[tokio::test(flavor = "multi_thread")]
async fn cut_on_expiry_ends_a_viewer_when_its_signature_does() {
    let origin = demo_origin();
    let peer = format!("127.0.0.1:{}", origin.port);
    for (cut, fanout) in [(true, "true"), (true, "false"), (false, "true")] {
        let metrics = free_port();
        let mut domains = domain(&peer, fanout);
        if cut {
            domains = domains.replacen("    auth:\n", "    cut_on_expiry: true\n    auth:\n", 1);
        }
        let top = format!("metrics: {{ listen: \"127.0.0.1:{metrics}\" }}\n");
        let mut lg = Livegate::start_top(&domains, &top);
        lg.wait_port(metrics);
        let url = lg.sign(&format!("http://{HOST}/live/cam1.flv"), &["--ttl", "3"]);
        let path = &url[url.find("/live/").unwrap()..];
        let started = Instant::now();
        let mut v = viewer(lg.port, path);
        let got = read_for(&mut v, Duration::from_secs(8));
        let took = started.elapsed();
        assert!(got > 0, "nothing played");
        // The URL is valid through its expiry second: cut within 3 to 5 s.
        match cut {
            true => {
                assert!(
                    took >= Duration::from_secs(2) && took < Duration::from_secs(7),
                    "fanout {fanout}: cut after {took:?}"
                );
                let text = support::scrape(metrics).await;
                let n = support::sample(&text, "livegate_requests_total", &[("reason", "EXPIRED")]);
                assert_eq!(n, Some(1.0), "fanout {fanout}:\n{text}");
                assert!(lg.log().contains("signature expired"), "{}", lg.log());
            }
            false => assert!(
                took >= Duration::from_secs(8),
                "without cut_on_expiry the viewer was cut after {took:?}"
            ),
        }
    }
}

/// `coalesce_ms`: a viewer whose writes gather 200 ms of tags still decodes
/// the whole stream from its first byte, at its rate (ffmpeg `-xerror`: a tag
/// lost, doubled or out of order fails it).
#[tokio::test(flavor = "multi_thread")]
async fn coalesced_writes_keep_every_tag_in_order() {
    let origin = demo_origin();
    let lg = Livegate::start(&domain(
        &format!("127.0.0.1:{}", origin.port),
        "{ coalesce_ms: 200 }",
    ));
    let path = tencent("/live/cam1.flv", KEY);
    let url = format!("http://127.0.0.1:{}{path}", lg.port);
    let n = tokio::task::spawn_blocking(move || frames(&url, 4))
        .await
        .unwrap();
    assert!(n >= 90, "{n} frames in 4 s");
}

/// A viewer's body is written from its connection once the head is out: over
/// HTTP/1.1 as well-formed chunks carrying the FLV stream, over HTTP/1.0 as the
/// bare stream; a keep-alive request before it on the same connection is served
/// as usual.
#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_written_from_its_connection_is_framed_for_its_http_version() {
    let origin = demo_origin();
    let lg = Livegate::start_top(&domain(&format!("127.0.0.1:{}", origin.port), "true"), "");
    let path = tencent("/live/cam3.flv", KEY);
    for version in ["1.1", "1.0"] {
        let mut s = TcpStream::connect(("127.0.0.1", lg.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // First a refused request on the same connection (kept alive), then the
        // viewer.
        let ask = |s: &mut TcpStream, p: &str| {
            let keep = if version == "1.0" {
                "Connection: keep-alive\r\n"
            } else {
                ""
            };
            std::io::Write::write_all(
                s,
                format!("GET {p} HTTP/{version}\r\nHost: {HOST}\r\n{keep}\r\n").as_bytes(),
            )
            .unwrap();
        };
        ask(&mut s, "/live/cam3.flv");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        let head_end = |got: &[u8]| got.windows(4).position(|w| w == b"\r\n\r\n");
        while head_end(&got).is_none() {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "HTTP/{version}: closed after the refusal");
            got.extend_from_slice(&buf[..n]);
        }
        let refused = String::from_utf8_lossy(&got).to_string();
        assert!(
            refused.starts_with("HTTP/1.1 403"),
            "HTTP/{version}: {refused}"
        );
        ask(&mut s, &path);
        let mut got = Vec::new();
        while got.len() < (256 << 10) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "HTTP/{version}: the viewer's body ended");
            got.extend_from_slice(&buf[..n]);
        }
        let at = head_end(&got).expect("no response head") + 4;
        let head = String::from_utf8_lossy(&got[..at]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "HTTP/{version}: {head}");
        let body = &got[at..];
        let flv = match version {
            "1.1" => {
                assert!(head.contains("transfer-encoding: chunked"), "{head}");
                // Every chunk: a hex size line, that many bytes, CRLF.
                let mut flv = Vec::new();
                let mut rest = body;
                while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
                    let size = std::str::from_utf8(&rest[..eol]).unwrap();
                    let size = usize::from_str_radix(size, 16)
                        .unwrap_or_else(|_| panic!("not a chunk size line: {size:?}"));
                    assert!(size > 0, "the body ended while the stream runs");
                    let Some(chunk) = rest.get(eol + 2..eol + 2 + size + 2) else {
                        break;
                    };
                    assert!(
                        chunk.ends_with(b"\r\n"),
                        "a chunk of {size} bytes lacks its CRLF"
                    );
                    flv.extend_from_slice(&chunk[..size]);
                    rest = &rest[eol + 2 + size + 2..];
                }
                assert!(
                    flv.len() > 64 << 10,
                    "only {} bytes in whole chunks",
                    flv.len()
                );
                flv
            }
            _ => {
                assert!(!head.contains("transfer-encoding"), "{head}");
                body.to_vec()
            }
        };
        assert!(
            flv.starts_with(b"FLV\x01"),
            "HTTP/{version}: {:?}",
            &flv[..16.min(flv.len())]
        );
        // The FLV tags follow each other: every tag's size fields agree.
        let mut at = 13;
        let mut tags = 0;
        while at + 11 <= flv.len() {
            let size = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
            let Some(prev) = flv.get(at + 11 + size..at + 15 + size) else {
                break;
            };
            assert_eq!(
                u32::from_be_bytes(prev.try_into().unwrap()) as usize,
                size + 11,
                "HTTP/{version}: tag {tags} is torn"
            );
            at += 15 + size;
            tags += 1;
        }
        assert!(tags > 10, "HTTP/{version}: {tags} tags");
    }
}

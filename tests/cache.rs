//! The HLS micro-cache end to end: the real binary in front of an origin that
//! counts what it is asked, is slow on purpose, and answers playlists that change.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::server::Server;
use support::{origin_yaml, tencent, Livegate};

const HOST: &str = "play.example.com";
const KEYS: [&str; 2] = ["cacheKeyA2026", "cacheKeyB2026"];

/// An origin that counts requests per path: `/live/*.ts` are 300 ms slow
/// segments of `size` bytes (`nostore` in the name: `Cache-Control: no-store`;
/// `missing`: 404), `/live/*.m3u8` a playlist whose sequence number grows with
/// each request.
struct Counting {
    server: Server,
    asked: Arc<Mutex<HashMap<String, usize>>>,
}

impl Counting {
    async fn start(size: usize) -> Counting {
        let asked: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counts = asked.clone();
        let server = Server::start(None, move |req: hyper::Request<hyper::body::Incoming>| {
            let path = req.uri().path().to_owned();
            let n = {
                let mut c = counts.lock().unwrap();
                let n = c.entry(path.clone()).or_default();
                *n += 1;
                *n
            };
            async move {
                let mut resp = hyper::Response::builder();
                let body = if path.ends_with(".m3u8") {
                    resp = resp.header("content-type", "application/vnd.apple.mpegurl");
                    format!(
                        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{n}\n#EXTINF:1,\ncam1-{n}.ts\n"
                    )
                    .into_bytes()
                } else if path.contains("slowbody") {
                    // Ten pieces, 300 ms apart: 3 s for the whole segment.
                    let seed = path.len() as u8;
                    let body: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_add(seed)).collect();
                    let pieces: Vec<Bytes> = body
                        .chunks(size.div_ceil(10))
                        .map(Bytes::copy_from_slice)
                        .collect();
                    let stream = futures_util::stream::unfold(pieces.into_iter(), |mut it| async move {
                        let next = it.next()?;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Some((Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(next)), it))
                    });
                    return resp
                        .body(http_body_util::StreamBody::new(stream).boxed())
                        .unwrap();
                } else {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if path.contains("nostore") {
                        resp = resp.header("cache-control", "no-store");
                    }
                    if path.contains("missing") {
                        resp = resp.status(404);
                    }
                    let seed = path.len() as u8;
                    (0..size).map(|i| (i as u8).wrapping_add(seed)).collect()
                };
                resp.body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
                    .unwrap()
            }
        })
        .await;
        Counting { server, asked }
    }

    fn asked(&self, path: &str) -> usize {
        self.asked.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn edge(origin: &Counting, cache: &str) -> Livegate {
    Livegate::start(&format!(
        "  - name: {HOST}\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{}, {}] }}\n    cache: {cache}\n",
        origin_yaml(&[origin.server.addr], ""),
        KEYS[0],
        KEYS[1]
    ))
}

async fn get(lg: &Livegate, path: &str, key: usize) -> reqwest::Response {
    lg.get(HOST, &tencent(path, KEYS[key % 2])).await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_make_one_origin_request_and_signatures_never_key_the_cache() {
    let origin = Counting::start(200_000).await;
    let lg = edge(&origin, "{ max_bytes: 67108864 }");
    // Twenty viewers at once, signed with two different keys (two different
    // signatures), all for one segment: one origin request.
    let mut asks = Vec::new();
    for i in 0..20 {
        asks.push(get(&lg, "/live/cam1-7.ts", i));
    }
    let answers = futures_util::future::join_all(asks).await;
    let mut bodies = Vec::new();
    let mut statuses = Vec::new();
    for r in answers {
        assert_eq!(r.status(), 200);
        statuses.push(r.headers()["x-cache"].to_str().unwrap().to_owned());
        bodies.push(r.bytes().await.unwrap());
    }
    assert_eq!(origin.asked("/live/cam1-7.ts"), 1, "{statuses:?}");
    assert!(bodies.iter().all(|b| b.len() == 200_000 && *b == bodies[0]));
    assert_eq!(
        statuses.iter().filter(|s| *s == "MISS").count(),
        1,
        "{statuses:?}"
    );
    // Later viewers hit; a Range is cut from the cached object.
    let r = lg
        .request(
            reqwest::Method::GET,
            HOST,
            &tencent("/live/cam1-7.ts", KEYS[1]),
        )
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/200000");
    assert_eq!(r.bytes().await.unwrap(), bodies[0].slice(100..200));
    assert_eq!(origin.asked("/live/cam1-7.ts"), 1);
    // An unsigned request is still refused: the cache is behind admission.
    assert_eq!(lg.get(HOST, "/live/cam1-7.ts").await.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn playlists_stay_fresh_and_no_store_and_errors_are_never_kept() {
    let origin = Counting::start(1000).await;
    let lg = edge(&origin, "{ max_bytes: 67108864 }");
    // At least 2 s and eight rounds of ten polls (a loaded machine makes rounds
    // slow, not fewer): with TARGETDURATION 1 a playlist is kept 0.5 s.
    let started = Instant::now();
    let mut sequences = Vec::new();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(2) || rounds < 8 {
        rounds += 1;
        let polls: Vec<_> = (0..10).map(|i| get(&lg, "/live/cam1.m3u8", i)).collect();
        for r in futures_util::future::join_all(polls).await {
            assert_eq!(r.status(), 200);
            let text = r.text().await.unwrap();
            let seq: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                .unwrap()
                .parse()
                .unwrap();
            // Rewritten per viewer: its segment carries a token.
            assert!(text.contains(&format!("cam1-{seq}.ts?lgt=")), "{text}");
            sequences.push(seq);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refreshes = origin.asked("/live/cam1.m3u8");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        refreshes as f64 <= elapsed / 0.5 + 2.0,
        "{refreshes} playlist requests in {elapsed:.1} s"
    );
    assert!(
        refreshes >= 3,
        "the playlist was never refreshed: {refreshes}"
    );
    // Never staler than a second: after one, a viewer sees a newer playlist.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = get(&lg, "/live/cam1.m3u8", 0).await.text().await.unwrap();
    let newest = sequences.iter().max().copied().unwrap_or(0);
    assert!(
        text.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{}", newest + 1)),
        "{newest}: {text}"
    );
    // no-store and 404 answers are passed, never kept.
    for path in ["/live/nostore-1.ts", "/live/missing-1.ts"] {
        for i in 0..3 {
            let r = get(&lg, path, i).await;
            assert_eq!(r.headers()["x-cache"], "PASS", "{path}");
        }
        assert_eq!(origin.asked(path), 3, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_holds_at_most_max_bytes_and_can_be_turned_off() {
    let origin = Counting::start(400_000).await;
    let lg = edge(&origin, "{ max_bytes: 1048576 }");
    for n in 1..=6 {
        assert_eq!(
            get(&lg, &format!("/live/cam2-{n}.ts"), 0).await.status(),
            200
        );
    }
    // Six 400 KB segments do not fit in 1 MB: the first was evicted.
    assert_eq!(get(&lg, "/live/cam2-1.ts", 1).await.status(), 200);
    assert_eq!(origin.asked("/live/cam2-1.ts"), 2);

    let off = edge(&origin, "{ enabled: false }");
    for i in 0..2 {
        let r = get(&off, "/live/cam3-1.ts", i).await;
        assert!(!r.headers().contains_key("x-cache"));
    }
    assert_eq!(origin.asked("/live/cam3-1.ts"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fill_fails_over_a_dead_peer_and_a_stalled_origin_is_a_502_not_a_hang() {
    let o = support::Origin::start("o1").await;
    let (_held, port) = support::refusing_port();
    let dead = format!("127.0.0.1:{port}");
    let lg = Livegate::start(&format!(
        "  - name: {HOST}\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{}] }}\n",
        origin_yaml(&[dead, o.addr.to_string()], ", read_timeout_ms: 500"),
        KEYS[0]
    ));
    for n in 0..6 {
        let r = get(&lg, &format!("/live/cam1-{n}.ts"), 0).await;
        assert_eq!(r.status(), 200, "segment {n}");
        assert_eq!(r.headers()["x-cache"], "MISS");
    }
    let asked = Instant::now();
    let r = get(&lg, "/stall/cam1-1.ts", 0).await;
    assert_eq!(r.status(), 502);
    assert!(asked.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_during_a_fill_streams_it_as_it_arrives() {
    let origin = Counting::start(1_000_000).await;
    let lg = Arc::new(edge(&origin, "{ max_bytes: 67108864 }"));
    let first = {
        let lg = lg.clone();
        tokio::spawn(async move {
            let r = get(&lg, "/live/slowbody-1.ts", 0).await;
            (
                r.headers()["x-cache"].to_str().unwrap().to_owned(),
                r.bytes().await.unwrap(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let asked = Instant::now();
    let mut r = get(&lg, "/live/slowbody-1.ts", 1).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "HIT-FOLLOWING");
    let mut body = Vec::new();
    let mut first_byte = None;
    while let Some(c) = r.chunk().await.unwrap() {
        first_byte.get_or_insert(asked.elapsed());
        body.extend_from_slice(&c);
    }
    let whole = asked.elapsed();
    let (status, first_body) = first.await.unwrap();
    assert_eq!(status, "MISS");
    assert_eq!(body, first_body, "the follower got other bytes");
    assert_eq!(origin.asked("/live/slowbody-1.ts"), 1);
    // The fill takes ~3 s; the follower's first bytes came long before its end.
    let first_byte = first_byte.unwrap();
    assert!(
        first_byte + Duration::from_millis(800) < whole,
        "first byte after {first_byte:?}, whole after {whole:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn followers_get_every_byte_when_the_client_that_started_the_fill_leaves() {
    let origin = Counting::start(1_000_000).await;
    let lg = edge(&origin, "{ max_bytes: 67108864 }");
    let path = "/live/slowbody-2.ts";
    // The first client starts the fill on a raw socket, then goes away mid-fill.
    let mut starter = std::net::TcpStream::connect(("127.0.0.1", lg.port)).unwrap();
    std::io::Write::write_all(
        &mut starter,
        format!(
            "GET {} HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
            tencent(path, KEYS[0])
        )
        .as_bytes(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let follower = get(&lg, path, 1);
    let leave = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        drop(starter);
    };
    let (r, ()) = tokio::join!(follower, leave);
    assert_eq!(r.headers()["x-cache"], "HIT-FOLLOWING");
    let body = r.bytes().await.unwrap();
    let seed = path.len() as u8;
    let want: Vec<u8> = (0..1_000_000)
        .map(|i| (i as u8).wrapping_add(seed))
        .collect();
    assert!(
        body == want,
        "the follower got {} bytes, not the whole",
        body.len()
    );
    assert_eq!(origin.asked(path), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_names_the_origin_of_a_miss_not_of_a_hit() {
    let origin = support::media::demo_origin();
    let peer = format!("127.0.0.1:{}", origin.port);
    let domains = format!(
        "  - name: {HOST}\n    origin: {{ peers: [\"{peer}\"] }}\n    auth:\n      - {{ scene: pull, scheme: tencent, keys: [{}] }}\n",
        KEYS[0]
    );
    let lg = Livegate::start_top(&domains, "access_log: { format: json }\n");
    let path = tencent("/live/cam1-7.ts", KEYS[0]);
    for _ in 0..2 {
        assert_eq!(lg.get(HOST, &path).await.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines: Vec<serde_json::Value> = lg
            .log()
            .lines()
            .filter(|l| l.starts_with('{') && l.contains("cam1-7.ts"))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() == 2 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(lines.len(), 2, "{}", lg.log());
    assert_eq!(
        lines[0]["origin"],
        serde_json::json!(peer),
        "the miss: {}",
        lines[0]
    );
    assert!(lines[1]["origin"].is_null(), "the hit: {}", lines[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_session_id_in_every_uri_does_not_split_the_cache() {
    // An origin that, like OvenMediaEngine or MediaMTX, gives every playlist
    // request its own session: a cookie, and `?session=` on every segment URI.
    let segments: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counts = segments.clone();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let server = Server::start(None, move |req: hyper::Request<hyper::body::Incoming>| {
        let path = req.uri().path().to_owned();
        let (counts, next) = (counts.clone(), next.clone());
        async move {
            let resp = hyper::Response::builder();
            if path.ends_with(".m3u8") {
                let session = format!(
                    "s{:x}",
                    next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) * 0x9e37_79b9
                );
                let uris: String = (0..5)
                    .map(|i| format!("#EXTINF:2,\ncam1-{i}.ts?session={session}\n"))
                    .collect();
                let body =
                    format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n{uris}");
                return resp
                    .header("content-type", "application/vnd.apple.mpegurl")
                    .header("set-cookie", format!("sid={session}; Path=/"))
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
            }
            *counts.lock().unwrap().entry(path.clone()).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            resp.body(Full::new(Bytes::from(format!("segment {path}"))))
                .unwrap()
        }
    })
    .await;
    let lg = Livegate::start(&format!(
        "  - name: {HOST}\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{}] }}\n    \
         cache: {{ max_bytes: 67108864, ignore_params: [session] }}\n",
        origin_yaml(&[server.addr], ""),
        KEYS[0]
    ));
    let client = support::client();
    let get = |path: String| client.get(lg.url(&path)).header("host", HOST).send();
    let viewer = || async {
        let r = get(tencent("/live/cam1.m3u8", KEYS[0])).await.unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        let playlist = r.text().await.unwrap();
        let session = cookie
            .trim_start_matches("sid=")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let uris: Vec<String> = playlist
            .lines()
            .filter(|l| l.starts_with("cam1-"))
            .map(str::to_owned)
            .collect();
        assert_eq!(uris.len(), 5, "{playlist}");
        for uri in &uris {
            // This viewer's own session, kept on its URIs, beside its token.
            assert!(
                uri.contains(&format!("session={session}&")),
                "{uri} / {cookie}"
            );
            let r = get(format!("/live/{uri}")).await.unwrap();
            assert_eq!(r.status(), 200, "{uri}");
            assert!(
                !r.headers().contains_key("set-cookie"),
                "{uri}: {:?}",
                r.headers()
            );
            let name = uri.split('?').next().unwrap();
            assert_eq!(r.text().await.unwrap(), format!("segment /live/{name}"));
        }
        session
    };
    let sessions = futures_util::future::join_all((0..100).map(|_| viewer())).await;
    let distinct: std::collections::HashSet<&String> = sessions.iter().collect();
    assert_eq!(
        distinct.len(),
        100,
        "every viewer has its own session and cookie"
    );
    let asked = segments.lock().unwrap().clone();
    let total: usize = asked.values().sum();
    let per_segment = total as f64 / asked.len() as f64;
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert!(
        per_segment <= 1.05,
        "{per_segment} origin requests per segment: {asked:?}"
    );
}

/// One HTTP/1.1 exchange on a kept-alive raw connection: the head as text and
/// the body its `Content-Length` announced (none for `HEAD`).
async fn exchange(
    c: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    method: &str,
    target: &str,
) -> (String, Vec<u8>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let req = format!("{method} {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    c.get_mut().write_all(req.as_bytes()).await.unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            c.read_line(&mut line).await.unwrap() > 0,
            "closed after {head}"
        );
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let lower = head.to_ascii_lowercase();
    let length: usize = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; if method == "HEAD" { 0 } else { length }];
    c.read_exact(&mut body).await.unwrap();
    (head, body)
}

/// A kept segment of 128 KiB or more lives in a sealed memfd and a hit on plain
/// TCP goes out by `sendfile` (counted with strace): byte for byte the object,
/// with a head Pingora would write, on a connection that lives on — a `HEAD`
/// after it is answered from the cache without a body, a `Range` is cut from
/// the mapping — and logged as a 200 of its length.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_segment_hit_goes_out_by_sendfile_on_a_connection_that_lives_on() {
    const SIZE: usize = 1_000_000;
    let origin = Counting::start(SIZE).await;
    let domains = format!(
        "  - name: {HOST}\n    origin: {}\n    auth:\n      - {{ scene: pull, scheme: tencent, keys: [{}] }}\n",
        origin_yaml(&[origin.server.addr], ""),
        KEYS[0]
    );
    let lg = Livegate::start_top(&domains, "access_log: { format: json }\n");
    let path = "/live/cam1-9.ts";
    let target = tencent(path, KEYS[0]);
    let seed = path.len() as u8;
    let want: Vec<u8> = (0..SIZE).map(|i| (i as u8).wrapping_add(seed)).collect();
    let memfds = || {
        std::fs::read_dir(format!("/proc/{}/fd", lg.pid()))
            .unwrap()
            .filter_map(|f| std::fs::read_link(f.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with("/memfd:livegate-segment"))
            .count()
    };
    assert_eq!(memfds(), 0);
    let r = lg.get(HOST, &target).await;
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert!(r.bytes().await.unwrap() == want);
    let deadline = Instant::now() + Duration::from_secs(10);
    while memfds() != 1 {
        assert!(
            Instant::now() < deadline,
            "the kept segment is not in a memfd"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    support::media::need("strace", "strace");
    let trace = lg.dir.path().join("strace.out");
    let mut tracer = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=sendfile", "-o"])
        .arg(&trace)
        .args(["-p", &lg.pid().to_string()])
        .spawn()
        .unwrap();
    // strace is attached once a traced call shows; until then, requests on
    // fresh connections prime it (each is a hit).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&trace).is_ok_and(|t| t.contains("sendfile(")) {
        assert!(Instant::now() < deadline, "strace never saw a sendfile");
        assert!(lg.get(HOST, &target).await.bytes().await.unwrap() == want);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counted = || {
        std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .filter_map(|l| {
                l.rsplit_once("= ")
                    .and_then(|(_, n)| n.trim().parse::<u64>().ok())
            })
            .sum::<u64>()
    };
    let primed = counted();

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", lg.port))
        .await
        .unwrap();
    let mut c = tokio::io::BufReader::new(tcp);
    for _ in 0..2 {
        let (head, body) = exchange(&mut c, "GET", &target).await;
        let lower = head.to_ascii_lowercase();
        assert!(lower.starts_with("http/1.1 200 ok\r\n"), "{head}");
        for h in [
            "x-cache: hit\r\n",
            "connection: keep-alive\r\n",
            "content-length: 1000000\r\n",
            "accept-ranges: bytes\r\n",
            "date: ",
        ] {
            assert!(lower.contains(h), "no {h:?} in {head}");
        }
        assert!(body == want, "the hit's body differs from the object");
    }
    let (head, body) = exchange(&mut c, "HEAD", &target).await;
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-length: 1000000"), "{head}");
    assert!(
        lower.contains("x-cache: hit\r\n"),
        "a HEAD is answered from the cache: {head}"
    );
    assert!(body.is_empty());
    let (head, body) = exchange(&mut c, "GET", &target).await;
    assert!(head.starts_with("HTTP/1.1 200"), "after HEAD: {head}");
    assert!(body == want);
    // Two whole bodies and one more after the HEAD went out by sendfile.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counted() < primed + 3 * SIZE as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tracer.kill();
    let _ = tracer.wait();
    assert_eq!(
        counted() - primed,
        3 * SIZE as u64,
        "bytes sendfile sent for three hits on one connection"
    );
    // A Range is cut from the mapping (through Pingora's writes).
    let r = lg
        .request(reqwest::Method::GET, HOST, &target)
        .header("range", "bytes=999990-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), want[999_990..]);
    assert_eq!(origin.asked(path), 1, "{}", lg.log());
    // The access log records each hit as a 200 of the object's length.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hits: Vec<serde_json::Value> = lg
            .log()
            .lines()
            .filter(|l| l.starts_with('{') && l.contains("cam1-9.ts"))
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|e: &serde_json::Value| e["method"] == "GET" && e["status"] == 200)
            .collect();
        if hits.iter().filter(|e| e["bytes"] == SIZE).count() >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", lg.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

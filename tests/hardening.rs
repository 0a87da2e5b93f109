//! What a third adversarial review found (issue #19), end to end against the real
//! binary: tokens no wider than the URL that minted them, playlist URIs that a
//! browser resolves elsewhere, bounded playlists, CORS and cookies that never
//! leak from the origin, one reading of Referer and User-Agent, fills that retry
//! a busy origin, one pull per stream whatever the Host spelling.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use support::relay::Relay;
use support::server::Server;
use support::{connect_from, origin_yaml, tencent, Livegate};

const KEY: &str = "hardKey2026";
const FLV: &[u8] = include_bytes!("../assets/demo.flv");

type Body = BoxBody<Bytes, std::convert::Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(body).unwrap();
    gz.finish().unwrap()
}

/// An origin that says `Access-Control-Allow-Origin: *` on everything and
/// counts what it is asked. Playlists list `<stream>-1.ts`; `hostile.m3u8`
/// lists URIs that resolve elsewhere; `bomb.m3u8` is 64 MB of gzip in ~64 KB;
/// `huge.m3u8` declares 5 MB; `short.m3u8` is 3.9 MB of one-character URIs;
/// `cookie*.ts` set a cookie per request, `vary*.ts` vary on Cookie; `.flv` is
/// the demo clip, sent slowly.
struct Scripted {
    server: Server,
    asked: Arc<Mutex<HashMap<String, usize>>>,
    /// livegate's port, for the absolute URIs of `hostile.m3u8`.
    edge: Arc<AtomicU16>,
}

impl Scripted {
    async fn start() -> Scripted {
        let asked: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let edge = Arc::new(AtomicU16::new(0));
        let bomb = Bytes::from(gzip(&vec![b'#'; 64 << 20]));
        let (counts, port) = (asked.clone(), edge.clone());
        let server = Server::start(None, move |req: hyper::Request<hyper::body::Incoming>| {
            let path = req.uri().path().to_owned();
            let n = {
                let mut c = counts.lock().unwrap();
                let n = c.entry(path.clone()).or_default();
                *n += 1;
                *n
            };
            let (port, bomb) = (port.load(Ordering::SeqCst), bomb.clone());
            async move {
                let resp = || hyper::Response::builder().header("access-control-allow-origin", "*");
                let playlist = resp().header("content-type", "application/vnd.apple.mpegurl");
                let name = path.rsplit('/').next().unwrap_or("").to_owned();
                let stream = name.split('.').next().unwrap_or("").to_owned();
                match name.as_str() {
                    "hostile.m3u8" => {
                        let body = format!(
                            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nhostile-1.ts\n\
                             #EXTINF:2,\n\\\\evil.test\\c.ts\n#EXTINF:2,\n/\\evil.test/d.ts\n\
                             #EXTINF:2,\n\\/evil.test/e.ts\n#EXTINF:2,\nht\ttp://evil.test/f.ts\n\
                             #EXTINF:2,\n/\t/evil.test/g.ts\n#EXTINF:2,\nhttp://127.0.0.1:{other}/live/h.ts\n\
                             #EXTINF:2,\nhttp://127.0.0.1:{port}/live/hostile-2.ts\n",
                            other = port.wrapping_add(1)
                        );
                        playlist.body(full(body)).unwrap()
                    }
                    "bomb.m3u8" => playlist.header("content-encoding", "gzip").body(full(bomb)).unwrap(),
                    "huge.m3u8" => {
                        let mut body = b"#EXTM3U\n".to_vec();
                        body.resize(5 << 20, b'#');
                        playlist.body(full(body)).unwrap()
                    }
                    "short.m3u8" => {
                        let body = format!("#EXTM3U\n{}", "a\n".repeat(3_900_000 / 2));
                        playlist.body(full(body)).unwrap()
                    }
                    _ if name.ends_with(".m3u8") => playlist
                        .body(full(format!(
                            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{stream}-1.ts\n"
                        )))
                        .unwrap(),
                    _ if name.starts_with("cookie") => resp()
                        .header("set-cookie", format!("viewer={n}; Path=/"))
                        .body(full(format!("segment {n}")))
                        .unwrap(),
                    _ if name.starts_with("slowcookie") => {
                        let pieces = vec![Bytes::from_static(b"slow "), Bytes::from_static(b"segment")];
                        let stream = futures_util::stream::unfold(pieces.into_iter(), |mut it| async move {
                            let next = it.next()?;
                            tokio::time::sleep(Duration::from_millis(700)).await;
                            Some((Ok::<_, std::convert::Infallible>(Frame::data(next)), it))
                        });
                        resp().header("set-cookie", format!("viewer={n}; Path=/"))
                            .body(StreamBody::new(stream).boxed())
                            .unwrap()
                    }
                    _ if name.starts_with("vary") => resp()
                        .header("vary", "Cookie")
                        .body(full(format!("segment {n}")))
                        .unwrap(),
                    _ if name.ends_with(".flv") => {
                        let pieces: Vec<Bytes> = FLV.chunks(16 << 10).map(Bytes::copy_from_slice).collect();
                        let stream = futures_util::stream::unfold(pieces.into_iter(), |mut it| async move {
                            let next = it.next()?;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((Ok::<_, std::convert::Infallible>(Frame::data(next)), it))
                        });
                        resp().header("content-type", "video/x-flv")
                            .body(StreamBody::new(stream).boxed())
                            .unwrap()
                    }
                    _ => resp().body(full(format!("segment {path}"))).unwrap(),
                }
            }
        })
        .await;
        Scripted {
            server,
            asked,
            edge,
        }
    }

    fn asked(&self, path: &str) -> usize {
        self.asked.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// A whole answer on a raw connection (`Connection: close`): status, head, body.
fn exchange(mut s: TcpStream, host: &str, target: &str, headers: &str) -> (u16, String, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
    out
}

fn get(port: u16, host: &str, target: &str) -> (u16, String, Vec<u8>) {
    exchange(
        TcpStream::connect(("127.0.0.1", port)).unwrap(),
        host,
        target,
        "",
    )
}

fn get_from(source: &str, port: u16, host: &str, target: &str) -> (u16, String, Vec<u8>) {
    exchange(connect_from(source, port), host, target, "")
}

/// The `lgt` token of the first segment a playlist lists.
fn token_of(playlist: &[u8]) -> String {
    let text = String::from_utf8_lossy(playlist);
    let uri = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap_or_else(|| panic!("no URI in {text}"));
    uri.split("lgt=")
        .nth(1)
        .unwrap_or_else(|| panic!("no token in {text}"))
        .to_owned()
}

fn path_of(signed: &str) -> String {
    let rest = &signed[signed.find("://").unwrap() + 3..];
    rest[rest.find('/').unwrap()..].to_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_opens_exactly_its_stream_and_binds_what_its_url_bound() {
    let o = Scripted::start().await;
    let origin = origin_yaml(&[o.server.addr], "");
    let lg = Livegate::start(&format!(
        "  - name: tokens.test\n    origin: {origin}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n\
         \x20 - name: bound.test\n    origin: {origin}\n    auth:\n      \
         - {{ scene: pull, scheme: secure_link, keys: [{KEY}], template: \"{{expires}}{{uri}}{{remote_addr}} {{key}}\" }}\n\
         \x20 - name: \"*.wild.test\"\n    origin: {origin}\n    auth:\n      \
         - {{ scene: pull, scheme: volc_md5_custom, keys: [{KEY}], encrypt_fields: [Domain, AppName, StreamName, key, volcTime] }}\n"
    ));
    let p = lg.port;
    // Scope: the token of cam1's playlist opens cam1's segments only.
    let signed = path_of(&lg.sign("http://tokens.test/live/cam1.m3u8", &[]));
    let (status, _, body) = get(p, "tokens.test", &signed);
    assert_eq!(status, 200);
    let token = token_of(&body);
    assert_eq!(
        get(p, "tokens.test", &format!("/live/cam1-1.ts?lgt={token}")).0,
        200
    );
    for other in [
        "/live/cam1_vip.m3u8",
        "/live/cam1-paid.m3u8",
        "/live/cam1_4k.m3u8",
        "/live/cam1_vip-1.ts",
        "/live/cam1.secret/index.m3u8",
        "/live/cam1.flv",
        "/live/cam1_vip.flv",
    ] {
        let (status, _, _) = get(p, "tokens.test", &format!("{other}?lgt={token}"));
        assert_eq!(status, 403, "{other} opened with cam1's token");
    }
    // One spelling per token.
    let (expiry, rest) = token.split_once('.').unwrap();
    for respelt in [
        format!("{}.{rest}", expiry.to_ascii_uppercase()),
        format!("000{expiry}.{rest}"),
    ] {
        let (status, _, _) = get(p, "tokens.test", &format!("/live/cam1-1.ts?lgt={respelt}"));
        assert_eq!(status, 403, "{respelt} passed");
    }
    // Address: a URL signed for 127.0.0.2 mints a token that works from there only.
    let signed = path_of(&lg.sign(
        "http://bound.test/live/cam2.m3u8",
        &["--remote-addr", "127.0.0.2"],
    ));
    assert_eq!(get_from("127.0.0.3", p, "bound.test", &signed).0, 403);
    let (status, _, body) = get_from("127.0.0.2", p, "bound.test", &signed);
    assert_eq!(status, 200);
    let token = token_of(&body);
    let seg = format!("/live/cam2-1.ts?lgt={token}");
    assert_eq!(get_from("127.0.0.2", p, "bound.test", &seg).0, 200);
    assert_eq!(get_from("127.0.0.3", p, "bound.test", &seg).0, 403);
    let again = format!("/live/cam2.m3u8?lgt={token}");
    assert_eq!(get_from("127.0.0.3", p, "bound.test", &again).0, 403);
    // Host: a URL signed for a.wild.test mints a token for that host only.
    let signed = path_of(&lg.sign("http://a.wild.test/live/cam3.m3u8", &[]));
    let (status, _, body) = get(p, "a.wild.test", &signed);
    assert_eq!(status, 200);
    let seg = format!("/live/cam3-1.ts?lgt={}", token_of(&body));
    assert_eq!(get(p, "a.wild.test", &seg).0, 200);
    assert_eq!(get(p, "b.wild.test", &seg).0, 403);
    assert!(lg.log().contains("BAD_TOKEN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn playlist_uris_a_browser_resolves_elsewhere_get_no_token() {
    let o = Scripted::start().await;
    for cache in ["true", "false"] {
        let lg = Livegate::start(&format!(
            "  - name: \"127.0.0.1\"\n    origin: {}\n    cache: {{ enabled: {cache} }}\n    auth:\n      \
             - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
            origin_yaml(&[o.server.addr], "")
        ));
        o.edge.store(lg.port, Ordering::SeqCst);
        let (status, _, body) = get(
            lg.port,
            &format!("127.0.0.1:{}", lg.port),
            &tencent("/live/hostile.m3u8", KEY),
        );
        assert_eq!(status, 200);
        let text = String::from_utf8(body).unwrap();
        let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with("#EXT")).collect();
        assert_eq!(uris.len(), 8, "{text}");
        for uri in &uris {
            let ours = uri.starts_with("hostile-1.ts")
                || uri.starts_with(&format!("http://127.0.0.1:{}/live/hostile-2.ts", lg.port));
            assert_eq!(uri.contains("lgt="), ours, "cache {cache}: {uri:?}\n{text}");
        }
    }
}

/// Resident memory of a process, in MB.
fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn playlists_past_their_bounds_are_refused_and_memory_stays_bounded() {
    let o = Scripted::start().await;
    let origin = origin_yaml(&[o.server.addr], "");
    let rule = format!("    auth:\n      - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n");
    let lg = Livegate::start(&format!(
        "  - name: cached.test\n    origin: {origin}\n{rule}\
         \x20 - name: proxied.test\n    origin: {origin}\n    cache: {{ enabled: false }}\n{rule}"
    ));
    let p = lg.port;
    // Two rounds of the same abuse: the first warms the allocator's pools (one
    // round has grown RSS by 100 to 175 MB on this machine), the second must not
    // grow it by as much again — memory is bounded, not held per request.
    let mut before = rss_mb(lg.pid());
    for i in 0..8 {
        if i == 4 {
            before = rss_mb(lg.pid());
        }
        // 64 MB of gzip in ~64 KB: refused whole through the cache…
        assert_eq!(
            get(p, "cached.test", &tencent("/live/bomb.m3u8", KEY)).0,
            502
        );
        // …and cut off while proxied (the head was out before the body grew).
        let (status, _, body) = get(p, "proxied.test", &tencent("/live/bomb.m3u8", KEY));
        assert!(
            status != 200 || body.len() < 1 << 20,
            "{status}, {} bytes",
            body.len()
        );
        // A playlist declared larger than the bound: 502 on both paths; one whose
        // tokens would multiply it past the bound: 502.
        for (host, path) in [
            ("cached.test", "/live/huge.m3u8"),
            ("proxied.test", "/live/huge.m3u8"),
            ("cached.test", "/live/short.m3u8"),
        ] {
            assert_eq!(get(p, host, &tencent(path, KEY)).0, 502, "{host}{path}");
        }
    }
    let after = rss_mb(lg.pid());
    assert!(
        after < before + 120,
        "RSS grew from {before} MB to {after} MB in the second round"
    );
    let log = lg.log();
    for why in ["over 4194304 bytes decoded", "rewritten would be over"] {
        assert!(log.contains(why), "{why} not logged:\n{log}");
    }
    assert!(!log.contains("panicked"), "{log}");
    // An ordinary playlist still plays on both.
    for host in ["cached.test", "proxied.test"] {
        assert_eq!(
            get(p, host, &tencent("/live/cam1.m3u8", KEY)).0,
            200,
            "{host}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn livegates_cors_replaces_the_origins_on_every_path() {
    let o = Scripted::start().await;
    let origin = origin_yaml(&[o.server.addr], "");
    let lg = Livegate::start(&format!(
        "  - name: \"127.0.0.1\"\n    origin: {origin}\n    cors: {{ allow_origins: [\"https://player.test\"] }}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n\
         \x20 - name: proxied.test\n    origin: {}\n    cache: {{ enabled: false }}\n    cors: {{ allow_origins: [\"https://player.test\"] }}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin_yaml(&[o.server.addr], ", fanout: false")
    ));
    let ask = |host: &str, path: &str, from: &str| {
        let s = TcpStream::connect(("127.0.0.1", lg.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut s = s;
        write!(
            s,
            "GET {} HTTP/1.1\r\nHost: {host}\r\nOrigin: {from}\r\n\r\n",
            tencent(path, KEY)
        )
        .unwrap();
        // The head is enough (an FLV answer never ends).
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut b).unwrap(), 1);
            head.push(b[0]);
        }
        String::from_utf8(head).unwrap()
    };
    for (host, path, what) in [
        ("127.0.0.1", "/live/cam1.flv", "fan-out"),
        ("127.0.0.1", "/live/cam1-1.ts", "cache"),
        ("127.0.0.1", "/live/cam1.m3u8", "cached playlist"),
        ("proxied.test", "/live/cam1.flv", "proxied FLV"),
        ("proxied.test", "/live/cam1-1.ts", "proxied segment"),
    ] {
        let head = ask(host, path, "https://evil.test");
        assert!(head.starts_with("HTTP/1.1 200"), "{what}: {head}");
        assert!(
            !head.to_ascii_lowercase().contains("access-control-"),
            "{what} let a page outside the list read it:\n{head}"
        );
        let head = ask(host, path, "https://player.test");
        assert_eq!(
            header(&head, "access-control-allow-origin"),
            Some("https://player.test"),
            "{what}:\n{head}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_never_hands_one_viewer_another_viewers_cookie() {
    let o = Scripted::start().await;
    let lg = Livegate::start(&format!(
        "  - name: \"127.0.0.1\"\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin_yaml(&[o.server.addr], "")
    ));
    let p = lg.port;
    for path in ["/live/cookie-1.ts", "/live/vary-1.ts"] {
        let (_, first, _) = get(p, "127.0.0.1", &tencent(path, KEY));
        let (_, second, body) = get(p, "127.0.0.1", &tencent(path, KEY));
        assert_eq!(o.asked(path), 2, "{path} was served from the cache");
        assert_eq!(header(&second, "x-cache"), Some("PASS"), "{second}");
        assert_eq!(String::from_utf8_lossy(&body), "segment 2");
        if path.contains("cookie") {
            assert_eq!(header(&first, "set-cookie"), Some("viewer=1; Path=/"));
            assert_eq!(header(&second, "set-cookie"), Some("viewer=2; Path=/"));
        }
    }
    // A request following another's fill of an answer with a cookie gets no cookie.
    let path = tencent("/live/slowcookie-1.ts", KEY);
    let (a, b) = (path.clone(), path.clone());
    let first = tokio::task::spawn_blocking(move || get(p, "127.0.0.1", &a));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let follower = tokio::task::spawn_blocking(move || get(p, "127.0.0.1", &b));
    let (first, follower) = (first.await.unwrap(), follower.await.unwrap());
    assert_eq!(header(&first.1, "set-cookie"), Some("viewer=1; Path=/"));
    assert_eq!(
        header(&follower.1, "x-cache"),
        Some("HIT-FOLLOWING"),
        "{}",
        follower.1
    );
    assert_eq!(header(&follower.1, "set-cookie"), None, "{}", follower.1);
    assert_eq!(follower.2, b"slow segment");

    // `cache: { ignore_params: [session], strip_cookies: true }`: viewers whose
    // URLs differ only in an origin's session id share one fill, and the answer
    // is cached without its cookie — nobody gets anybody's cookie.
    let lg = Livegate::start(&format!(
        "  - name: \"127.0.0.1\"\n    origin: {}\n    cache: {{ ignore_params: [session], strip_cookies: true }}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin_yaml(&[o.server.addr], "")
    ));
    let p = lg.port;
    let path = "/live/cookie-9.ts";
    let mut answers = Vec::new();
    for session in ["a1", "b2", "c3"] {
        let target = format!("{}&session={session}", tencent(path, KEY));
        answers.push(get(p, "127.0.0.1", &target));
    }
    assert_eq!(o.asked(path), 1, "one fill for every session id");
    for (status, head, _) in &answers {
        assert_eq!(*status, 200, "{head}");
        assert_eq!(header(head, "set-cookie"), None, "{head}");
    }
    assert_eq!(
        header(&answers[2].1, "x-cache"),
        Some("HIT"),
        "{}",
        answers[2].1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_signature_or_key_reaches_a_log_line_or_an_error() {
    // Signatures kept on the upstream target (strip_auth_params: false) and an
    // origin that refuses: the fan-out and fill warnings name it redacted.
    let dead = support::free_port();
    let lg = Livegate::start_top(
        &format!(
            "  - name: \"127.0.0.1\"\n    origin: {}\n    strip_auth_params: false\n    auth:\n      \
             - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
            origin_yaml(&[format!("127.0.0.1:{dead}")], "")
        ),
        "access_log: { format: combined }\n",
    );
    let flv = tencent("/live/cam1.flv", KEY);
    let seg = tencent("/live/cam1-1.ts", KEY);
    assert_eq!(get(lg.port, "127.0.0.1", &flv).0, 502);
    assert_eq!(get(lg.port, "127.0.0.1", &seg).0, 502);
    let sig = "f85a2ab363fe4deaffef9754d79da6fe";
    let referer = format!("Referer: http://site.test/live/a.flv;txSecret={sig}\r\n");
    let (status, _, _) = exchange(
        TcpStream::connect(("127.0.0.1", lg.port)).unwrap(),
        "127.0.0.1",
        &seg,
        &referer,
    );
    assert_eq!(status, 502);
    let log = lg.log();
    assert!(log.contains("fan-out pull of"), "{log}");
    assert!(log.contains("cache fill of"), "{log}");
    for secret in [
        flv.split("txSecret=").nth(1).unwrap(),
        seg.split("txSecret=").nth(1).unwrap(),
        sig,
    ] {
        let secret = secret.split('&').next().unwrap();
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
    // A key given with the wrong type is named, never echoed.
    let dir = tempfile::tempdir().unwrap();
    for (field, value, rest) in [
        ("keys", "MyRealKey2027", "keys: MyRealKey2027"),
        ("skew", "MySkewKey2027", "keys: [k], skew: MySkewKey2027"),
    ] {
        let config = dir.path().join("bad.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: [\"127.0.0.1:1\"]\ndomains:\n  - name: a.test\n    origin: {{ peers: [\"127.0.0.1:2\"] }}\n    auth:\n      \
                 - {{ scene: pull, scheme: tencent, {rest} }}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_livegate"))
            .args(["-t", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        let said = support::said(&out);
        assert!(!out.status.success());
        assert!(said.contains(field), "{said}");
        assert!(!said.contains(value), "{said}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_referers_or_user_agents_are_refused_and_mapped_addresses_denied() {
    let o = Scripted::start().await;
    let lg = Livegate::start(&format!(
        "  - name: \"127.0.0.1\"\n    origin: {}\n    access:\n      \
         referer: {{ allow: [good.test], allow_empty: true }}\n      \
         ip: {{ deny: [\"::ffff:127.0.0.6/128\"] }}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin_yaml(&[o.server.addr], "")
    ));
    let seg = tencent("/live/cam1-1.ts", KEY);
    let ask = |headers: &str| {
        exchange(
            TcpStream::connect(("127.0.0.1", lg.port)).unwrap(),
            "127.0.0.1",
            &seg,
            headers,
        )
        .0
    };
    assert_eq!(ask("Referer: http://good.test/p\r\n"), 200);
    assert_eq!(
        ask("Referer: http://good.test/p\r\nReferer: http://evil.test/\r\n"),
        400
    );
    assert_eq!(ask("User-Agent: a\r\nUser-Agent: b\r\n"), 400);
    assert_eq!(ask("Referer: http://evil.test\\@good.test/\r\n"), 403);
    assert_eq!(ask("Referer: http://good.test./\r\n"), 403);
    assert_eq!(get_from("127.0.0.6", lg.port, "127.0.0.1", &seg).0, 403);
    assert_eq!(get_from("127.0.0.7", lg.port, "127.0.0.1", &seg).0, 200);
    let log = lg.log();
    assert!(
        log.contains("more than one Referer") && log.contains("IP_DENIED"),
        "{log}"
    );
}

/// An origin whose accept queue is full for its first second (as a busy one's
/// is): connections time out, then it accepts and relays to `target`.
fn busy_origin(target: std::net::SocketAddr) -> (u16, Vec<TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let listener: std::net::TcpListener = socket.into();
    let port = listener.local_addr().unwrap().port();
    // Fill the queue: these are never served.
    let fillers: Vec<TcpStream> = (0..2)
        .filter_map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
            s.set_nonblocking(true).ok()?;
            let _ = s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into());
            Some(s.into())
        })
        .collect();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            std::thread::spawn(move || {
                let Ok(mut up) = TcpStream::connect(target) else {
                    return;
                };
                let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut u2, &mut c2));
                let _ = std::io::copy(&mut client, &mut up);
            });
        }
    });
    (port, fillers)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_fill_retries_a_busy_origin_like_a_proxied_request() {
    let o = Scripted::start().await;
    let (port, _fillers) = busy_origin(o.server.addr);
    let lg = Livegate::start(&format!(
        "  - name: \"127.0.0.1\"\n    origin: {{ peers: [\"127.0.0.1:{port}\"], connect_timeout_ms: 300 }}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n"
    ));
    let started = Instant::now();
    let (status, head, _) = get(lg.port, "127.0.0.1", &tencent("/live/busy.m3u8", KEY));
    assert_eq!(status, 200, "{head}\n{}", lg.log());
    assert_eq!(header(&head, "x-cache"), Some("MISS"));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the origin was not busy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_host_spelling_of_a_domain_shares_one_pull() {
    let o = Scripted::start().await;
    let relay = Relay::start(o.server.addr.port()).await;
    let lg = Livegate::start(&format!(
        "  - name: \"127.0.0.1\"\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin_yaml(&[relay.addr()], "")
    ));
    let path = tencent("/live/cam1.flv", KEY);
    let open = |host: String| {
        let mut s = TcpStream::connect(("127.0.0.1", lg.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let mut b = [0u8; 4096];
        assert!(s.read(&mut b).unwrap() > 0);
        assert!(
            b.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&b)
        );
        s
    };
    let viewers = [
        open("127.0.0.1".into()),
        open(format!("127.0.0.1:{}", lg.port)),
        open("127.0.0.1.".into()),
    ];
    assert_eq!(
        relay.accepted(),
        1,
        "one origin pull for every Host spelling"
    );
    drop(viewers);
}

//! HLS through the edge: signed playlists whose segments carry tokens, played by
//! ffmpeg from the demo origin (flat and nested layouts), tokens refused where they
//! do not belong, gzip and chunked playlists, CORS.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use support::media::{demo_origin, frames};
use support::recorder::Recorder;
use support::server::Server;
use support::{origin_yaml, Livegate};

fn domain(name: &str, origin: impl std::fmt::Display, extra: &str) -> String {
    format!(
        "  - name: \"{name}\"\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [hlsKey2026] }}\n{extra}",
        origin_yaml(&[origin], "")
    )
}

async fn status(url: &str) -> u16 {
    support::client()
        .get(url)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The first URI line of a playlist.
fn first_uri(playlist: &str) -> String {
    playlist
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_playlist_plays_and_its_tokens_open_only_its_stream() {
    let origin = demo_origin();
    let o = format!("127.0.0.1:{}", origin.port);
    let lg = Livegate::start_top(
        &format!(
            "{}{}",
            domain("127.0.0.1", &o, ""),
            domain("nested.test", &o, "    stream_path: nested\n")
        ),
        "access_log: { format: combined }\n",
    );
    let base = format!("http://127.0.0.1:{}", lg.port);
    let signed = lg.sign(&format!("{base}/live/cam1.m3u8"), &[]);
    assert!(frames(&signed, 6) >= 140);

    let playlist = support::client().get(&signed).send().await.unwrap();
    assert_eq!(playlist.status(), 200);
    let length = playlist.headers().get("content-length").cloned();
    let text = playlist.text().await.unwrap();
    if let Some(l) = length {
        assert_eq!(
            l.to_str().unwrap(),
            text.len().to_string(),
            "a wrong Content-Length"
        );
    }
    let seg = first_uri(&text);
    assert!(
        seg.starts_with("cam1-") && seg.contains(".ts?lgt="),
        "{text}"
    );
    let token = seg.split("lgt=").nth(1).unwrap().to_owned();
    let n: u64 = seg["cam1-".len()..seg.find(".ts").unwrap()]
        .parse()
        .unwrap();
    // The last character differs in its low bits only (the mac's base64 does not
    // use them): a token is refused unless spelt exactly as issued.
    let last = token.chars().last().unwrap();
    let sibling = if last == 'A' { 'B' } else { 'A' };
    let forged = format!("{}{sibling}", &token[..token.len() - 1]);
    for (path, expected, what) in [
        (format!("/live/{seg}"), 200, "its own segment"),
        (format!("/live/cam1-{n}.ts"), 403, "no token"),
        (
            format!("/live/cam2-{n}.ts?lgt={token}"),
            403,
            "another stream",
        ),
        (
            format!("/other/cam1-{n}.ts?lgt={token}"),
            403,
            "another directory",
        ),
        (format!("/live/cam1-{n}.ts?lgt={forged}"), 403, "forged"),
        (format!("/live/cam1-{n}.ts?lgt=junk"), 403, "junk"),
        // The token also opens the stream's playlist (as variants are fetched).
        (
            format!("/live/cam1.m3u8?lgt={token}"),
            200,
            "the stream's playlist",
        ),
    ] {
        assert_eq!(status(&format!("{base}{path}")).await, expected, "{what}");
    }
    let log = lg.log();
    assert!(log.contains("BAD_TOKEN"), "{log}");
    let mac = token.rsplit('.').next().unwrap();
    assert!(!log.contains(mac), "a token was logged: {log}");

    // Nested: the stream is the directory; a token opens that directory only.
    let nested = lg.sign("http://nested.test/live/cam1/index.m3u8", &[]);
    let nested_local = nested.replace("http://nested.test", &base);
    let r = support::client()
        .get(&nested_local)
        .header("host", "nested.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let seg = first_uri(&text);
    assert!(seg.starts_with("index-") && seg.contains("lgt="), "{text}");
    let token = seg.split("lgt=").nth(1).unwrap().to_owned();
    for (path, expected) in [
        (format!("/live/cam1/{seg}"), 200),
        (format!("/live/cam2/index-1.ts?lgt={token}"), 403),
    ] {
        let r = support::client()
            .get(format!("{base}{path}"))
            .header("host", "nested.test")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_expires_with_its_playlists_url() {
    let origin = demo_origin();
    let lg = Livegate::start(&domain(
        "127.0.0.1",
        format!("127.0.0.1:{}", origin.port),
        "",
    ));
    let base = format!("http://127.0.0.1:{}", lg.port);
    let signed = lg.sign(&format!("{base}/live/cam1.m3u8"), &["--ttl", "2"]);
    let text = support::text(&signed).await;
    let seg = first_uri(&text);
    assert_eq!(status(&format!("{base}/live/{seg}")).await, 200);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(status(&format!("{base}/live/{seg}")).await, 403);
    assert!(
        lg.log().contains("EXPIRED (the token expired"),
        "{}",
        lg.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_and_chunked_playlists_are_rewritten_whole() {
    use std::io::Write;
    let server = Server::start(None, |req: hyper::Request<hyper::body::Incoming>| {
        let path = req.uri().path().to_owned();
        let asked_identity = !req.headers().contains_key("accept-encoding");
        let body =
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ncam1-1.ts\n#EXTINF:2,\ncam1-2.ts\n";
        let resp = if path.starts_with("/gz/") {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(body.as_bytes()).unwrap();
            hyper::Response::builder()
                .header("content-type", "application/vnd.apple.mpegurl")
                .header("content-encoding", "gzip")
                .body(
                    Full::new(Bytes::from(gz.finish().unwrap()))
                        .map_err(|e| match e {})
                        .boxed(),
                )
        } else {
            let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = body
                .as_bytes()
                .chunks(7)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            hyper::Response::builder()
                .header("x-asked-identity", asked_identity.to_string())
                .body(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
        };
        std::future::ready(resp.unwrap())
    })
    .await;
    let lg = Livegate::start(&domain("127.0.0.1", server.addr, ""));
    for path in ["/gz/cam1.m3u8", "/chunked/cam1.m3u8"] {
        let signed = lg.sign(&format!("http://127.0.0.1:{}{path}", lg.port), &[]);
        let r = support::client()
            .get(&signed)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if path.starts_with("/chunked") {
            assert_eq!(r.headers()["x-asked-identity"], "true");
        }
        assert!(r.headers().get("content-encoding").is_none());
        let text = r.text().await.unwrap();
        assert!(text.starts_with("#EXTM3U\n"), "{text}");
        assert_eq!(text.matches("?lgt=").count(), 2, "{text}");
        assert!(text.contains("\ncam1-2.ts?lgt="), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_for_browser_players_and_preflights_answered_at_the_edge() {
    let rec = Recorder::start().await;
    let cors = "    cors: { allow_origins: [\"https://player.example.com\"], max_age: 600 }\n";
    let lg = Livegate::start(&format!(
        "  - name: \"127.0.0.1\"\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [hlsKey2026] }}\n{cors}",
        origin_yaml(&[rec.addr], "")
    ));
    let base = format!("http://127.0.0.1:{}", lg.port);
    let c = support::client();
    let pre = c
        .request(reqwest::Method::OPTIONS, format!("{base}/live/cam1.m3u8"))
        .header("origin", "https://player.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://player.example.com"
    );
    assert_eq!(pre.headers()["access-control-max-age"], "600");
    assert!(rec.seen().is_empty(), "a preflight reached the origin");
    let signed = lg.sign(&format!("{base}/live/cam1.m3u8"), &[]);
    for (url, expected) in [
        (signed.as_str(), 200),
        (&*format!("{base}/live/cam1.m3u8"), 403),
    ] {
        let r = c
            .get(url)
            .header("origin", "https://player.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://player.example.com"
        );
        assert_eq!(r.headers()["vary"], "Origin");
    }
    let r = c
        .get(&signed)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let pre = c
        .request(reqwest::Method::OPTIONS, format!("{base}/live/cam1.m3u8"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_auth_is_asked_once_per_stream_and_tokens_survive_a_restart() {
    let origin = demo_origin();
    let auth = support::auth::AuthServer::start().await;
    let remote = format!(
        "    remote_auth: {{ url: \"http://{}/check\", cache: {{ allow_ttl_ms: 60000 }} }}\n",
        auth.addr
    );
    let mut lg = Livegate::start(&domain(
        "127.0.0.1",
        format!("127.0.0.1:{}", origin.port),
        &remote,
    ));
    let base = format!("http://127.0.0.1:{}", lg.port);
    let signed = lg.sign(&format!("{base}/live/cam1.m3u8"), &[]);
    let text = support::text(&signed).await;
    let segments: Vec<String> = text
        .lines()
        .filter(|l| l.contains(".ts?lgt="))
        .map(str::to_owned)
        .collect();
    assert!(segments.len() >= 2, "{text}");
    for seg in &segments {
        assert_eq!(status(&format!("{base}/live/{seg}")).await, 200);
    }
    // The playlist was asked about once, and the stream's segments once in all.
    assert_eq!(auth.calls().len(), 2, "{:?}", auth.calls());
    // The token secret lives under state_dir: tokens stay good across a restart.
    lg.crash_and_restart();
    assert_eq!(status(&format!("{base}/live/{}", segments[0])).await, 200);
}

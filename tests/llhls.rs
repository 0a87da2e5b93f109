//! Low-Latency HLS through the edge's cache, against a real LL-HLS origin
//! (ffmpeg's fragmented MP4 cut into parts, a blocking playlist): hls.js in
//! low-latency mode and Shaka play it signed through livegate about as close to
//! live as they play it direct; 200 simulated low-latency players cost the
//! origin one request per part and one per blocking playlist version; a blocking
//! request the origin never answers is 503 after three target durations.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use support::browser::{page_origin, page_server, Play};
use support::llhls::{next_part, player, uri_of, LlOrigin};
use support::{origin_yaml, Livegate};

const HOST: &str = "127.0.0.1";
const KEY: &str = "llKey2026";

fn edge(origin: &LlOrigin, extra: &str) -> Livegate {
    Livegate::start(&format!(
        "  - name: \"{HOST}\"\n    stream_path: nested\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n    \
         cache: {{ max_bytes: 67108864 }}\n{extra}",
        origin_yaml(&[format!("127.0.0.1:{}", origin.port)], "")
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_low_latency_players_cost_the_origin_one_request_per_part() {
    let origin = LlOrigin::start().await;
    let lg = edge(&origin, "");
    let base = format!("http://{HOST}:{}/live/ll/", lg.port);
    let first = lg.sign(&format!("{base}index.m3u8"), &[]);
    // What the edge serves keeps the LL-HLS tags and tokens every URI.
    let text = support::text(&first).await;
    for tag in [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6",
        "#EXT-X-PART-INF:PART-TARGET=0.2",
    ] {
        assert!(text.contains(tag), "{tag} lost: {text}");
    }
    for tag in ["#EXT-X-MAP:", "#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:"] {
        let uri = uri_of(&text, tag).unwrap_or_else(|| panic!("no {tag} in {text}"));
        assert!(uri.contains("?lgt="), "{tag} without a token: {text}");
    }

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(500)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let before = origin.asked();
    // Each plays 25 parts (5 s of stream), however slowly a loaded machine
    // makes them; a minute is the bound.
    let until = Instant::now() + Duration::from_secs(60);
    let players: Vec<_> = (0..200)
        .map(|_| {
            let (c, b, f) = (client.clone(), base.clone(), first.clone());
            tokio::spawn(player(c, b, f, 25, until))
        })
        .collect();
    let mut fetched = 0;
    for p in players {
        let got = p.await.unwrap();
        fetched += got.unwrap_or_else(|e| panic!("a player failed: {e}")).len();
    }
    assert_eq!(fetched, 200 * 25, "players stopped short of 25 parts");

    // What reached the origin, per part and per blocking playlist version.
    let (per_part, parts) = origin.per_request(&before, |k| k.contains("/part"));
    let (per_version, versions) = origin.per_request(&before, |k| k.contains("_HLS_msn="));
    println!(
        "200 players: {fetched} parts served; origin: {per_part:.3} requests per part ({parts} parts), \
         {per_version:.3} per blocking playlist version ({versions} versions)"
    );
    assert!(
        parts >= 20 && versions >= 20,
        "{parts} parts, {versions} versions"
    );
    assert!(per_part <= 1.05, "{per_part} origin requests per part");
    assert!(
        per_version <= 1.05,
        "{per_version} origin requests per playlist version"
    );
    // The origin was asked each version in one canonical form, without the
    // signature (every query it got is only the directives).
    for k in origin.asked().keys().filter(|k| k.contains('?')) {
        let q = k.split_once('?').unwrap().1;
        assert!(
            q.starts_with("_HLS_msn=") && !q.contains("txSecret") && !q.contains("lgt="),
            "the origin was asked {k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_requests_are_bounded_and_their_directives_read_one_way() {
    let origin = LlOrigin::start().await;
    let lg = edge(&origin, "");
    let base = format!("http://{HOST}:{}/live/ll/", lg.port);
    let first = lg.sign(&format!("{base}index.m3u8"), &[]);
    let text = support::text(&first).await;
    let (msn, _) = next_part(&text);
    let client = support::client();
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    // Ambiguous directives never reach the origin.
    for bad in [
        "_HLS_msn=1&_HLS_msn=2",
        "_HLS_part=1",
        "_HLS_msn=x",
        "_HLS_msn=1&_HLS_skip=maybe",
    ] {
        assert_eq!(status(format!("{first}&{bad}")).await, 400, "{bad}");
    }
    assert!(
        !origin
            .asked()
            .keys()
            .any(|k| k.contains("_HLS_msn=x") || k.contains("maybe")),
        "{:?}",
        origin.asked()
    );
    // Far ahead: the origin's 400, shared (asked once).
    let ahead = format!("{first}&_HLS_msn={}", msn + 10);
    let answers = futures_util::future::join_all((0..20).map(|_| status(ahead.clone()))).await;
    assert!(answers.iter().all(|s| *s == 400), "{answers:?}");
    let asked = origin.asked();
    let key = format!("/live/ll/index.m3u8?_HLS_msn={}", msn + 10);
    assert_eq!(asked.get(&key), Some(&1), "{asked:?}");
    // The same version asked in two spellings is one origin request.
    let (m, p) = (msn + 1, 1);
    let a = format!("{first}&_HLS_part={p}&_HLS_msn={m}");
    let b = format!("{first}&_HLS_msn=0{m}&_HLS_part={p}");
    let (sa, sb) = tokio::join!(status(a), status(b));
    assert_eq!((sa, sb), (200, 200));
    let key = format!("/live/ll/index.m3u8?_HLS_msn={m}&_HLS_part={p}");
    assert_eq!(origin.asked().get(&key), Some(&1), "{:?}", origin.asked());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocking_request_the_origin_holds_too_long_is_503() {
    // An origin that holds every blocking request forever.
    let server = support::server::Server::start(None, |req: hyper::Request<hyper::body::Incoming>| async move {
        let blocking = req.uri().query().is_some_and(|q| q.contains("_HLS_msn"));
        if blocking {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        hyper::Response::builder()
            .header("content-type", "application/vnd.apple.mpegurl")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n#EXTINF:1,\na0.ts\n",
            )))
            .unwrap()
    })
    .await;
    let lg = Livegate::start(&format!(
        "  - name: \"{HOST}\"\n    stream_path: nested\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n    cache: {{ max_bytes: 1048576 }}\n",
        origin_yaml(&[server.addr], "")
    ));
    let first = lg.sign(
        &format!("http://{HOST}:{}/live/ll/index.m3u8", lg.port),
        &[],
    );
    assert!(support::text(&first).await.contains("a0.ts"));
    let started = Instant::now();
    let r = support::client()
        .get(format!("{first}&_HLS_msn=5"))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status().as_u16(), 503);
    // Three target durations of 1 s, not the origin's ten minutes.
    assert!(
        took >= Duration::from_millis(2900),
        "answered after {took:?}"
    );
    assert!(took < Duration::from_secs(15), "answered after {took:?}");
    assert!(lg.log().contains("three target durations"), "{}", lg.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn hls_js_and_shaka_play_low_latency_through_the_edge_as_close_to_live_as_direct() {
    let origin = LlOrigin::start().await;
    // The page is served from `localhost`, the stream from 127.0.0.1: CORS.
    let site = page_server().await;
    let cors = format!(
        "    cors: {{ allow_origins: [\"{}\"] }}\n",
        page_origin(&site)
    );
    let lg = edge(&origin, &cors);
    let direct = format!("http://127.0.0.1:{}/live/ll/master.m3u8", origin.port);
    let signed = lg.sign(
        &format!("http://{HOST}:{}/live/ll/master.m3u8", lg.port),
        &[],
    );
    for player in ["hls", "shaka"] {
        let mut latency = HashMap::new();
        for (how, src) in [("direct", &direct), ("livegate", &signed)] {
            let before: HashSet<String> = origin.asked().into_keys().collect();
            let state = Play {
                player,
                src,
                seconds: 6,
                args: Vec::new(),
                home: None,
            }
            .run(&site)
            .await;
            // Blocking playlist versions were asked (through the edge too).
            let blocking = origin
                .asked()
                .into_keys()
                .filter(|k| !before.contains(k) && k.contains("_HLS_msn="))
                .count();
            assert!(
                blocking >= 3,
                "{player} {how}: {blocking} blocking requests"
            );
            assert!(state["fatal"].is_null(), "{player} {how}: {state}");
            assert!(
                state["t"].as_f64().unwrap_or(0.0) >= 6.0,
                "{player} {how}: {state}"
            );
            let ms = state["latency"]
                .as_f64()
                .unwrap_or_else(|| panic!("{player} {how}: no latency in {state}"));
            println!("{player} {how}: latency {ms:.0} ms");
            latency.insert(how, ms);
        }
        let gap = latency["livegate"] - latency["direct"];
        assert!(
            gap.abs() < 1000.0,
            "{player}: {:.0} ms through livegate against {:.0} ms direct",
            latency["livegate"],
            latency["direct"]
        );
    }
}

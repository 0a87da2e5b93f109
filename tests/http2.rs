//! HTTP/2 downstream, with curl (nghttp2) as the client: TLS listeners offer h2
//! by ALPN (unless `http2: false`), a plain listener with `http2: h2c` speaks h2
//! with prior knowledge beside HTTP/1.1; signed HLS (segment tokens, the cache)
//! and FLV fan-out work over h2; 100 streams share one connection.

mod support;

use std::process::Command;

use support::media::{demo_origin, need};
use support::{free_port, tencent, Livegate};

const HOST: &str = "play.example.com";
const KEY: &str = "h2Key2026";

/// `curl` with `args`; its `-w` output and body bytes.
fn curl(args: &[&str]) -> (String, Vec<u8>) {
    need("curl", "curl");
    let out = Command::new("curl")
        .args(["-s", "-k", "--max-time", "5"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (text, out.stdout)
}

/// `version status` of one request (`-w`), the body discarded.
fn fetch(extra: &[&str], url: &str) -> String {
    let mut args = vec!["-o", "/dev/null", "-w", "%{http_version} %{http_code}"];
    args.extend_from_slice(extra);
    args.push(url);
    curl(&args).0
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_by_alpn_and_h2c_carry_signed_hls_and_flv() {
    let origin = demo_origin();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec![HOST.into()]).unwrap();
    let (crt, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
    let (tls, h1_only, h2c) = (free_port(), free_port(), free_port());
    let tls_yaml = |port: u16, extra: &str| {
        format!(
            "  - {{ addr: \"127.0.0.1:{port}\", tls: {{ cert: {}, key: {} }}{extra} }}\n",
            crt.display(),
            key.display()
        )
    };
    let listen = tls_yaml(tls, "")
        + &tls_yaml(h1_only, ", http2: false")
        + &format!("  - {{ addr: \"127.0.0.1:{h2c}\", http2: h2c }}\n");
    let domains = format!(
        "  - name: {HOST}\n    origin: {{ peers: [\"127.0.0.1:{}\"] }}\n    auth:\n      - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin.port
    );
    let mut lg = Livegate::start_full(&domains, &listen, "access_log: { format: combined }\n", &[]);
    for p in [tls, h1_only, h2c] {
        lg.wait_port(p);
    }
    let resolve = |port: u16| format!("{HOST}:{port}:127.0.0.1");
    let playlist = tencent("/live/cam1.m3u8", KEY);

    // TLS: h2 by ALPN; the playlist carries segment tokens that work over h2.
    let r = resolve(tls);
    let url = format!("https://{HOST}:{tls}{playlist}");
    assert_eq!(fetch(&["--http2", "--resolve", &r], &url), "2 200");
    let (text, _) = curl(&["--http2", "--resolve", &r, &url]);
    let segment = text
        .lines()
        .rfind(|l| l.contains(".ts?"))
        .unwrap_or_else(|| panic!("{text}"));
    let seg_url = format!("https://{HOST}:{tls}/live/{segment}");
    assert_eq!(fetch(&["--http2", "--resolve", &r], &seg_url), "2 200");
    // Unsigned: refused over h2 as over HTTP/1.1.
    let bare = format!("https://{HOST}:{tls}/live/cam1.m3u8");
    assert_eq!(fetch(&["--http2", "--resolve", &r], &bare), "2 403");

    // FLV fan-out over h2: an endless stream, read for a while.
    let flv = format!("https://{HOST}:{tls}{}", tencent("/live/cam1.flv", KEY));
    let out = Command::new("curl")
        .args([
            "-s",
            "-k",
            "--http2",
            "--max-time",
            "3",
            "--resolve",
            &r,
            &flv,
        ])
        .output()
        .unwrap();
    assert!(out.stdout.starts_with(b"FLV"), "not FLV over h2");
    assert!(
        out.stdout.len() > 50_000,
        "only {} bytes over h2",
        out.stdout.len()
    );

    // 100 streams multiplexed on one connection.
    let mut args = vec![
        "-s",
        "-k",
        "--http2",
        "--parallel",
        "--parallel-max",
        "100",
        "--resolve",
        &r,
    ];
    let urls: Vec<String> = (0..100).map(|_| url.clone()).collect();
    for u in &urls {
        args.extend([
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code} %{num_connects}\n",
            u.as_str(),
        ]);
    }
    let out = Command::new("curl").args(&args).output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    let answers: Vec<&str> = lines.lines().collect();
    assert_eq!(answers.len(), 100, "{lines}");
    assert!(answers.iter().all(|l| l.starts_with("2 200")), "{lines}");
    let connects: u32 = answers
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u32>().unwrap())
        .sum();
    assert!(connects <= 2, "{connects} connections for 100 streams");

    // `http2: false`: HTTP/1.1 only.
    let url = format!("https://{HOST}:{h1_only}{playlist}");
    assert_eq!(
        fetch(&["--http2", "--resolve", &resolve(h1_only)], &url),
        "1.1 200"
    );

    // h2c with prior knowledge, and HTTP/1.1 on the same listener.
    let url = format!("http://{HOST}:{h2c}{playlist}");
    assert_eq!(
        fetch(
            &["--http2-prior-knowledge", "--resolve", &resolve(h2c)],
            &url
        ),
        "2 200"
    );
    assert_eq!(
        fetch(&["--http1.1", "--resolve", &resolve(h2c)], &url),
        "1.1 200"
    );

    // The access log says which; the h2 viewer leaving is no error (the probes
    // of `wait_port`, which never speak TLS, are Pingora's handshake errors).
    let log = lg.log();
    assert!(log.contains(" HTTP/2.0\" 200 "), "{log}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") && !l.contains("Downstream handshake error"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// Three FLV viewers on one h2c connection, as a browser's tabs would share
/// one: the one that stops reading (never returning its flow-control window) is
/// cut as a stalled HTTP/1.1 viewer is, and the two others keep their rate.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_h2_viewer_is_cut_while_the_others_on_its_connection_go_on() {
    let origin = support::Origin::start("o").await;
    let h2c = free_port();
    let domains = format!(
        "  - name: {HOST}\n    origin: {}\n    auth:\n      - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        support::origin_yaml(&[origin.addr], ", fanout: { queue_ms: 1000, slow_viewer: cut }")
    );
    let listen = format!("  - {{ addr: \"127.0.0.1:{h2c}\", http2: h2c }}\n");
    let mut lg = Livegate::start_full(&domains, &listen, "", &[]);
    lg.wait_port(h2c);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", h2c))
        .await
        .unwrap();
    // A browser's windows: a large one for the connection, 64 KiB per stream.
    let (client, conn) = h2::client::Builder::new()
        .initial_connection_window_size(16 << 20)
        .initial_window_size(65_535)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(conn);
    let path = tencent("/paced/cam1.flv", KEY);
    let mut streams = Vec::new();
    for _ in 0..3 {
        let req = http::Request::get(format!("http://{HOST}{path}"))
            .body(())
            .unwrap();
        let mut c = client.clone().ready().await.unwrap();
        let (resp, _) = c.send_request(req, true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        streams.push(resp.into_body());
    }
    let mut stalled = streams.pop().unwrap();
    // Two readers for 4 s, returning the window for what they read.
    let read = |mut body: h2::RecvStream| {
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + std::time::Duration::from_secs(4);
            let mut n = 0usize;
            while let Ok(Some(Ok(data))) = tokio::time::timeout_at(until, body.data()).await {
                n += data.len();
                let _ = body.flow_control().release_capacity(data.len());
            }
            n
        })
    };
    let readers: Vec<_> = streams.into_iter().map(read).collect();
    let mut got = Vec::new();
    for r in readers {
        got.push(r.await.unwrap());
    }
    assert!(
        got.iter().all(|n| *n > 8 << 20),
        "{got:?} bytes in 4 s beside a stalled stream"
    );
    // The stalled stream was reset (it holds at most its window), not left open.
    let mut held = 0usize;
    let ended = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), stalled.data()).await {
            Ok(Some(Ok(d))) => held += d.len(),
            Ok(Some(Err(_))) | Ok(None) => break true,
            Err(_) => break false,
        }
    };
    assert!(ended, "the stalled h2 viewer was never cut ({held} bytes)");
    assert!(held <= 65_535, "{held} bytes past the stream's window");
    assert!(lg.log().contains("slow viewer"), "{}", lg.log());
}

/// hls.js and mpegts.js in Chromium play signed HLS and FLV from an HTTPS page
/// origin's point of view: a certificate from a CA the browser trusts (an NSS
/// database, as a site's users have), h2 by ALPN, CORS, tokens.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_plays_signed_hls_and_flv_over_h2_from_a_trusted_ca() {
    use support::browser::{page_origin, page_server, trusting_home, Play};
    let origin = demo_origin();
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "livegate test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![HOST.into()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let (crt, key, ca_pem) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&crt, leaf.pem() + &ca.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    let home = trusting_home(&dir.path().join("home"), &ca_pem);
    let site = page_server().await;
    let tls = free_port();
    let listen = format!(
        "  - {{ addr: \"127.0.0.1:{tls}\", tls: {{ cert: {}, key: {} }} }}\n",
        crt.display(),
        key.display()
    );
    let domains = format!(
        "  - name: {HOST}\n    origin: {{ peers: [\"127.0.0.1:{}\"] }}\n    cors: {{ allow_origins: [\"{}\"] }}\n    auth:\n      - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin.port,
        page_origin(&site)
    );
    let mut lg = Livegate::start_full(&domains, &listen, "access_log: { format: combined }\n", &[]);
    lg.wait_port(tls);
    for (player, path) in [("hls", "/live/cam1.m3u8"), ("mpegts", "/live/cam1.flv")] {
        let src = format!("https://{HOST}:{tls}{}", tencent(path, KEY));
        let state = Play {
            player,
            src: &src,
            seconds: 4,
            args: vec![format!("--host-resolver-rules=MAP {HOST} 127.0.0.1")],
            home: Some(home.clone()),
        }
        .run(&site)
        .await;
        assert!(state["fatal"].is_null(), "{player}: {state}\n{}", lg.log());
        assert!(
            state["t"].as_f64().unwrap_or(0.0) >= 4.0,
            "{player}: {state}"
        );
    }
    // Every request the browser made went over h2: the FLV stream (logged when
    // the browser left), the playlist and its segments (with their tokens).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let over_h2 = |log: &str, what: &str| {
        log.lines()
            .any(|l| l.contains(what) && l.contains(" HTTP/2.0\" 200 "))
    };
    loop {
        let log = lg.log();
        if over_h2(&log, "/live/cam1.flv") {
            assert!(over_h2(&log, "/live/cam1.m3u8"), "{log}");
            assert!(over_h2(&log, ".ts?lgt="), "{log}");
            assert!(!log.contains(" HTTP/1.1\" "), "{log}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

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

//! The real binary's `check`, `sign` and `-t`, against the published examples.

use std::io::Write;
use std::process::{Command, Output};

const CONFIG: &str = r#"
domains:
  - name: live.example.com
    origin: { peers: ["127.0.0.1:9"] }
    auth:
      - { scene: pull, scheme: tencent, keys: [e12c46f2612d5106e2034781ab261ca3, somestring] }
      - { scene: push, scheme: volc_md5, keys: [A1B2C3d4e5f6] }
  - name: "*.example.com"
    origin: { peers: ["127.0.0.1:9"] }
    auth:
      - { scene: pull, app: "*", scheme: type_a, keys: [aliyuncdnexp1234], valid_duration: 1800 }
      - { scene: pull, app: b, scheme: type_b, keys: [aliyuncdnexp1234], valid_duration: 1800 }
      - { scene: pull, app: c, scheme: type_c, keys: [aliyuncdnexp1234], valid_duration: 1800 }
      - { scene: pull, app: d, scheme: type_d, keys: [dimtm5evg50ijsx2hvuwyfoiu65], valid_duration: 1800, time_format: decimal }
      - scene: pull
        app: s
        scheme: secure_link
        keys: [secret]
        template: "{expires}{uri}{remote_addr} {key}"
      - scene: pull
        app: v
        scheme: volc_md5_custom
        keys: [A1B2C3d4e5f6]
        encrypt_fields: [Domain, AppName, StreamName, key, volcTime]
        param_names: { sign: sign, time: expire }
      - { scene: push, enabled: false }
"#;

struct Conf(tempfile::NamedTempFile);

fn conf(text: &str) -> Conf {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    Conf(f)
}

fn livegate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(args)
        .output()
        .expect("run livegate")
}

fn check(c: &Conf, url: &str, extra: &[&str]) -> (i32, String) {
    let path = c.0.path().to_str().unwrap();
    let mut args = vec!["check", "-c", path, "--url", url];
    args.extend_from_slice(extra);
    let out = livegate(&args);
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn sign(c: &Conf, url: &str, extra: &[&str]) -> String {
    let path = c.0.path().to_str().unwrap();
    let mut args = vec!["sign", "-c", path, "--url", url];
    args.extend_from_slice(extra);
    let out = livegate(&args);
    assert!(
        out.status.success(),
        "sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn check_passes_published_urls_at_their_expiry_and_fails_after() {
    let c = conf(CONFIG);
    for (url, expiry) in [
        (
            "http://live.example.com/live/test.flv?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099",
            0x5C271099,
        ),
        (
            "http://cdn.example.com/video/standard/1K.html?auth_key=1444435200-0-0-80cd3862d699b7118eed99103f2a3a4f",
            1444435200 + 1800,
        ),
    ] {
        assert_eq!(check(&c, url, &["--now", &expiry.to_string()]), (0, "{\"status\":\"pass\"}\n".into()), "{url}");
        let (code, out) = check(&c, url, &["--now", &(expiry + 1).to_string()]);
        assert_eq!(code, 1, "{url}");
        assert!(out.starts_with(r#"{"status":"fail","reason":"EXPIRED","detail":"#), "{out}");
    }
}

#[test]
fn check_reports_each_reason() {
    let c = conf(CONFIG);
    let base = "http://live.example.com/live/test.flv";
    for (url, reason) in [
        (base.to_owned(), "MISSING_SIGNATURE"),
        (format!("{base}?txSecret=xyz&txTime=5C271099"), "MALFORMED"),
        (
            format!("{base}?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C27109Z"),
            "BAD_TIMESTAMP",
        ),
        (
            format!("{base}?txSecret=f85a2ab363fe4deaffef9754d79da6ff&txTime=5C271099"),
            "BAD_SIGNATURE",
        ),
        (
            format!("{base}?txSecret=a&txSecret=b&txTime=1"),
            "MALFORMED",
        ),
        (
            "http://other.org/live/test.flv".to_owned(),
            "UNKNOWN_DOMAIN",
        ),
        (
            "http://live.example.com/li%76e/test.flv".to_owned(),
            "BAD_REQUEST",
        ),
    ] {
        let (code, out) = check(&c, &url, &["--now", "0"]);
        assert_eq!(code, 1, "{url}");
        assert!(
            out.contains(&format!("\"reason\":\"{reason}\"")),
            "{url}: {out}"
        );
        assert!(
            !out.contains("somestring") && !out.contains("e12c46f2"),
            "key leaked: {out}"
        );
    }
    let (code, out) = check(
        &c,
        "http://live.example.com/live/test.flv",
        &["--scene", "push", "--now", "0"],
    );
    assert_eq!((code, out.contains("MISSING_SIGNATURE")), (1, true));
    let no_rule = conf("domains:\n  - { name: a.com, origin: { peers: [\"127.0.0.1:9\"] } }\n");
    let (code, out) = check(&no_rule, "http://a.com/live/x.flv", &[]);
    assert_eq!((code, out.contains("NO_RULE")), (1, true), "{out}");
}

#[test]
fn sign_then_check_round_trips_for_every_scheme() {
    let c = conf(CONFIG);
    // A whole minute, so that type B (minute precision) expires exactly then too.
    let expire = "2000000040";
    let after = "2000000041";
    for (url, scene, remote) in [
        ("http://live.example.com/live/cam1.flv?x=1", "pull", ""),
        ("http://live.example.com/live/cam1.flv", "push", ""),
        ("http://cdn.example.com/a/cam1.flv", "pull", ""),
        ("http://cdn.example.com/b/cam1.flv", "pull", ""),
        ("http://cdn.example.com/c/cam1.flv", "pull", ""),
        ("http://cdn.example.com/d/cam1.flv?y=2", "pull", ""),
        ("http://cdn.example.com/s/cam1.flv", "pull", "10.1.2.3"),
        ("http://x.cdn.example.com:8080/v/cam1.m3u8", "pull", ""),
    ] {
        let signed = sign(
            &c,
            url,
            &[
                "--scene",
                scene,
                "--expire",
                expire,
                "--remote-addr",
                remote,
            ],
        );
        assert_ne!(signed, url);
        let args = ["--scene", scene, "--remote-addr", remote];
        let at = |now: &str| check(&c, &signed, &[&args[..], &["--now", now]].concat()).0;
        assert_eq!(at(expire), 0, "{signed} at expiry");
        assert_eq!(at(after), 1, "{signed} after expiry");
    }
    // A disabled scene needs no signature: the URL comes back as it was.
    let url = "http://cdn.example.com/a/cam1.flv";
    assert_eq!(sign(&c, url, &["--scene", "push"]), url);
    assert_eq!(check(&c, url, &["--scene", "push"]).0, 0);
}

#[test]
fn sign_with_ttl_is_valid_now() {
    let c = conf(CONFIG);
    let signed = sign(&c, "http://live.example.com/live/a.flv", &["--ttl", "60"]);
    assert!(
        signed.contains("txSecret=") && signed.contains("txTime="),
        "{signed}"
    );
    assert_eq!(check(&c, &signed, &[]).0, 0);
}

#[test]
fn usage_and_config_errors_exit_2() {
    let c = conf(CONFIG);
    let path = c.0.path().to_str().unwrap();
    assert_eq!(
        livegate(&["check", "-c", path, "--url", "/relative"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(livegate(&["check", "-c", path]).status.code(), Some(2));
    assert_eq!(
        livegate(&["check", "-c", "/does/not/exist", "--url", "http://a/b"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        livegate(&[
            "check",
            "-c",
            path,
            "--url",
            "http://a/",
            "--scene",
            "sideways"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        livegate(&["sign", "-c", path, "--url", "http://nope.org/a.flv"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn dash_t_accepts_good_and_explains_bad() {
    let good = conf(&format!("listen: [\"127.0.0.1:8080\"]\n{CONFIG}"));
    let out = livegate(&["-t", "-c", good.0.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = conf(
        "domains:\n  - name: a.com\n    origin: { peers: [\"127.0.0.1:9\"] }\n    auth:\n      \
         - { scene: pull, app: \"x/y\", scheme: type_c, keys: [\"top-secret-key\"] }\n",
    );
    let out = livegate(&["-t", "-c", bad.0.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(bad.0.path().to_str().unwrap()),
        "names the file: {err}"
    );
    assert!(err.contains("domains[0].auth[0].app"), "{err}");
    assert!(
        err.contains("domains[0].auth[0].keys[0]: character 4"),
        "{err}"
    );
    assert!(err.contains("domains[0].auth[0].valid_duration"), "{err}");
    assert!(!err.contains("top-secret"), "key leaked: {err}");

    let typo = conf("domains:\n  - name: a.com\n    orign: {}\n");
    let out = livegate(&["-t", "-c", typo.0.path().to_str().unwrap()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("unknown field `orign`") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn dash_t_warns_about_templates_that_never_expire() {
    let c = conf(
        "listen: [\"127.0.0.1:8080\"]\ndomains:\n  - name: a.com\n    origin: { peers: [\"127.0.0.1:9\"] }\n    auth:\n      \
         - { scene: pull, scheme: secure_link, keys: [k], template: \"{uri} {key}\" }\n",
    );
    let out = livegate(&["-t", "-c", c.0.path().to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("never expire"));
}

#[test]
fn dash_t_refuses_what_start_up_would_and_names_a_tab() {
    let out = livegate(&["-t", "-c", conf("").0.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen: no listen address") && err.contains("domains: no domain"),
        "{err}"
    );

    let tls = conf(&format!(
        "listen:\n  - {{ addr: \"127.0.0.1:8443\", tls: {{ cert: /no/such/cert.pem, key: /no/such/key.pem }} }}\n{CONFIG}"
    ));
    let out = livegate(&["-t", "-c", tls.0.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen[0].tls.cert") && err.contains("listen[0].tls.key"),
        "{err}"
    );

    let etcd = conf(&format!(
        "listen: [\"127.0.0.1:8080\"]\nstate: {{ backend: etcd, prefix: live/ }}\n{CONFIG}"
    ));
    let out = livegate(&["-t", "-c", etcd.0.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("state.endpoints: backend: etcd needs") && err.contains("state.prefix"),
        "{err}"
    );

    let tab = conf("listen: [\"127.0.0.1:8080\"]\ndomains:\n\t- name: a.com\n");
    let out = livegate(&["-t", "-c", tab.0.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3 holds a tab"), "{err}");
}

#[test]
fn a_negative_ttl_signs_an_expired_url() {
    let c = conf(CONFIG);
    for ttl in [["--ttl", "-60"].as_slice(), &["--ttl=-60"]] {
        let url = sign(&c, "http://live.example.com/live/a.flv", ttl);
        let (code, out) = check(&c, &url, &[]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("EXPIRED"), "{out}");
    }
    let help = livegate(&["sign", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--scene <pull|push>"));
}

/// A config that runs on `port` with everything else in `dir`.
fn runnable(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let d = dir.display();
    let f = dir.join("livegate.yaml");
    std::fs::write(
        &f,
        format!(
            "server: {{ pid_file: {d}/lg.pid, upgrade_sock: {d}/up.sock }}\nlisten: [\"127.0.0.1:{port}\"]\nstate_dir: {d}/state\n{CONFIG}"
        ),
    )
    .unwrap();
    f
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_port_in_use_is_one_clear_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let f = runnable(dir.path(), port);
    let started = std::time::Instant::now();
    let out = livegate(&["-c", f.to_str().unwrap()]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("livegate:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains(&format!("listen 127.0.0.1:{port}")) && errors[0].contains("in use"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("listening on"),
        "{err}"
    );
}

/// Starts livegate on a free port, waits until it serves, sends `signal` and
/// returns how long it took to exit.
fn stop_with(signal: &str) -> std::time::Duration {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let f = runnable(dir.path(), port);
    let mut child = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["-c", f.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "livegate did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A moment past listening, as an operator would be.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = std::time::Instant::now();
    assert!(Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    loop {
        if child.try_wait().unwrap().is_some() {
            return sent.elapsed();
        }
        if sent.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("livegate still running 60 s after {signal}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn sigint_exits_at_once_and_sigterm_within_the_default_grace_period() {
    let int = std::thread::spawn(|| stop_with("-INT"));
    let term = stop_with("-TERM");
    assert!(int.join().unwrap() < std::time::Duration::from_secs(5));
    // Default grace period 30 s (Pingora's own is 300 s), then up to 5 s of shutdown.
    assert!(
        term < std::time::Duration::from_secs(36),
        "SIGTERM took {term:?}"
    );
}

/// The rule blocks of docs/signing.md's CDN section, as one domain's `auth`.
fn cdn_doc_rules() -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/signing.md")).unwrap();
    let section = doc.split("## CDN tokens").nth(1).unwrap();
    let blocks: Vec<&str> = section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 3, "one rule per CDN scheme");
    blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            // Each on its own app, so the three can share a domain.
            let b = b.replace("app: live", &format!("app: live{i}"));
            b.lines()
                .map(|l| format!("      {l}\n"))
                .collect::<String>()
        })
        .collect()
}

#[test]
fn the_cdn_rules_of_the_docs_load_and_their_tokens_check() {
    let c = conf(&format!(
        "listen: [\"127.0.0.1:8080\"]\ndomains:\n  - name: cdn.example.com\n    \
         origin: {{ peers: [\"127.0.0.1:9\"] }}\n    auth:\n{}",
        cdn_doc_rules()
    ));
    let out = livegate(&["-t", "-c", c.0.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The Akamai example token: genuine, expired now, and not for another stream.
    let token = "st=1796140000~exp=1796143600~acl=/live0/cam1/*~hmac=";
    let url = |path: &str, t: &str| format!("http://cdn.example.com{path}?hdnts={t}");
    let signed = sign(
        &c,
        "http://cdn.example.com/live0/cam1/index.m3u8",
        &["--acl", "/live0/cam1/*"],
    );
    assert!(signed.contains("hdnts=exp="), "{signed}");
    assert_eq!(check(&c, &signed, &[]).0, 0, "{signed}");
    let t = signed.split("hdnts=").nth(1).unwrap();
    let (code, out) = check(&c, &url("/live0/cam2/index.m3u8", t), &[]);
    assert_eq!(code, 1);
    assert!(out.contains("OUT_OF_SCOPE"), "{out}");
    let (_, out) = check(&c, &url("/live0/cam1/a.ts", &format!("{token}00")), &[]);
    assert!(out.contains("BAD_SIGNATURE"), "{out}");
    let (_, out) = check(&c, &url("/live0/cam1/a.ts", t), &["--now", "4000000000"]);
    assert!(out.contains("EXPIRED"), "{out}");
    // The JWT rule: `sign` writes a token its `check` accepts, for that stream only.
    let jwt = sign(&c, "http://cdn.example.com/live2/cam1.m3u8", &[]);
    assert_eq!(check(&c, &jwt, &[]).0, 0, "{jwt}");
    let other = jwt.replace("/live2/cam1.m3u8", "/live2/cam2.m3u8");
    assert!(check(&c, &other, &[]).1.contains("OUT_OF_SCOPE"));
    // CloudFront signs with the private key only: said plainly.
    let path = c.0.path().to_str().unwrap();
    let out = livegate(&[
        "sign",
        "-c",
        path,
        "--url",
        "http://cdn.example.com/live1/cam1.m3u8",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("private_key_file"));
}

#[test]
fn dash_t_names_what_a_token_rule_gets_wrong() {
    let bad = conf(
        "domains:\n  - name: a.com\n    origin: { peers: [\"127.0.0.1:9\"] }\n    auth:\n      \
         - { scene: pull, app: a, scheme: akamai_token, keys: [\"not-hex-secret\"], valid_duration: 60 }\n      \
         - { scene: pull, app: c, scheme: cloudfront, keys: [\"no id here\"], token: { query: x } }\n      \
         - { scene: pull, app: j, scheme: jwt, keys: [short], template: \"{uri}\" }\n      \
         - { scene: pull, app: t, scheme: tencent, keys: [k1], audience: x }\n",
    );
    let out = livegate(&["-t", "-c", bad.0.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    for at in [
        "domains[0].auth[0].keys[0]: an EdgeAuth key is an even number of hex digits",
        "domains[0].auth[0].valid_duration",
        "domains[0].auth[1].keys[0]: a CloudFront key is",
        "domains[0].auth[1].token: cloudfront does not take token",
        "domains[0].auth[2].keys[0]",
        "domains[0].auth[2].template",
        "domains[0].auth[3].audience",
    ] {
        assert!(err.contains(at), "{at} not named:\n{err}");
    }
    assert!(!err.contains("not-hex-secret"), "a key leaked: {err}");
}

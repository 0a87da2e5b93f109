//! `livegate api` against a running livegate: every subcommand, tables and
//! `--json`, a wrong key (the API's refusal, exit 1), and `connections` against
//! real FLV viewers.

mod support;

use std::process::{Command, Output};

use support::media::demo_origin;
use support::{free_port, said, tencent, Livegate};

const HOST: &str = "play.example.com";
const KEY: &str = "cliPullKey2026";

fn api(lg: &Livegate, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["api", "-c"])
        .arg(&lg.config)
        .args(args)
        .output()
        .unwrap()
}

fn ok(lg: &Livegate, args: &[&str]) -> String {
    let out = api(lg, args);
    assert!(out.status.success(), "api {args:?}: {}", said(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_subcommand_against_a_running_edge() {
    let origin = demo_origin();
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("admin.key");
    std::fs::write(&key_file, "cliAdminKey2026\n").unwrap();
    let domains = format!(
        "  - name: {HOST}\n    origin: {{ peers: [\"127.0.0.1:{}\"] }}\n    auth:\n      - {{ scene: pull, scheme: tencent, keys: [{KEY}] }}\n",
        origin.port
    );
    let top = format!(
        "admin: {{ listen: \"127.0.0.1:{admin}\", key_file: {} }}\n",
        key_file.display()
    );
    let mut lg = Livegate::start_top(&domains, &top);
    lg.wait_port(admin);

    assert!(ok(&lg, &["online"]).contains("(none)"));
    // Two real viewers of one stream.
    // Endless viewers: a client with no overall timeout.
    let endless = reqwest::Client::builder()
        .read_timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let viewer = || {
        endless
            .get(lg.url(&tencent("/live/cam1.flv", KEY)))
            .header("host", HOST)
            .send()
    };
    let a = viewer().await.unwrap();
    let b = viewer().await.unwrap();
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let mut a = a;
    let _ = a.chunk().await.unwrap();

    let online = ok(&lg, &["online", "--domain", HOST]);
    assert!(online.starts_with("DOMAIN"), "{online}");
    let row = online.lines().nth(1).unwrap();
    for word in [HOST, "live", "cam1", "pull", "http", " 2 "] {
        assert!(row.contains(word), "{word} in {row}");
    }
    let listed = ok(&lg, &["connections", HOST, "live", "cam1"]);
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows
        .iter()
        .all(|r| r.starts_with("127.0.0.1") && r.contains("pull") && r.contains("http")));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&lg, &["connections", HOST, "live", "cam1", "--json"])).unwrap();
    let conns = json["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert!(
        conns.iter().any(|c| c["bytes"].as_u64().unwrap() > 0),
        "{json}"
    );
    assert!(conns
        .iter()
        .all(|c| c["edge"].is_string() && c["since"].as_i64().unwrap() > 0));

    // check: pass and fail, with check's exit codes.
    let good = format!("http://{HOST}{}", tencent("/live/cam1.flv", KEY));
    assert!(ok(&lg, &["check", &good]).contains("status: pass"));
    let bad = format!("http://{HOST}/live/cam1.flv?txSecret=00&txTime=0");
    let out = api(&lg, &["check", &bad]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));

    let rules = ok(&lg, &["rules", HOST]);
    assert!(
        rules.contains("tencent") && rules.contains("yaml") && !rules.contains(KEY),
        "{rules}"
    );
    assert!(ok(&lg, &["access", HOST]).contains("source: none"));
    assert!(ok(&lg, &["state"]).contains("backend: file"));

    // drop cuts both viewers; forbid refuses new ones until resume.
    assert!(ok(&lg, &["drop", HOST, "live", "cam1"]).contains("cut: 2"));
    let forbid = ok(&lg, &["forbid", HOST, "live", "cam1", "--reason", "test"]);
    assert!(forbid.contains("forbidden"), "{forbid}");
    assert_eq!(
        lg.get(HOST, &tencent("/live/cam1.flv", KEY)).await.status(),
        403
    );
    ok(&lg, &["resume", HOST, "live", "cam1"]);
    assert_eq!(
        lg.get(HOST, &tencent("/live/cam1.m3u8", KEY))
            .await
            .status(),
        200
    );
    // rule: rotate the pull key from the shell, then a bad index is exit 1.
    let rotated = ok(
        &lg,
        &[
            "rule",
            HOST,
            "*",
            "pull",
            "--add-key",
            "cliRotated2027",
            "--remove-key",
            "0",
        ],
    );
    assert!(rotated.contains("source: api"), "{rotated}");
    assert_eq!(
        lg.get(HOST, &tencent("/live/cam1.m3u8", KEY))
            .await
            .status(),
        403
    );
    let new = tencent("/live/cam1.m3u8", "cliRotated2027");
    assert_eq!(lg.get(HOST, &new).await.status(), 200);
    let out = api(&lg, &["rule", HOST, "*", "pull", "--remove-key", "7"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("remove_key"), "{}", said(&out));
    let out = api(&lg, &["rule", HOST, "*", "pull", "--enable", "--disable"]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));

    let out = api(&lg, &["connections", HOST, "live", "nobody"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        said(&out).contains("StreamNotOnline") || said(&out).contains("no open connection"),
        "{}",
        said(&out)
    );

    // --admin with another key file: a wrong key is the API's refusal, exit 1.
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, "notTheKey2026\n").unwrap();
    let url = format!("http://127.0.0.1:{admin}");
    let out = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["api", "--admin", &url, "--key-file"])
        .arg(&wrong)
        .arg("state")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("sign invalid"), "{}", said(&out));
    // Nothing listening: a connection problem, exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args([
            "api",
            "--admin",
            &format!("http://127.0.0.1:{}", free_port()),
            "--key-file",
        ])
        .arg(&key_file)
        .arg("state")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(said(&out).contains("cannot reach"), "{}", said(&out));
}

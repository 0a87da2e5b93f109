//! Fleet mode end to end: two (or three) real livegate processes on one real etcd
//! (Debian's etcd-server), changes made through one edge's management API enforced
//! by the other, etcd stopped and started again, one edge cut off from etcd while
//! its history is compacted, an edge started with etcd down, and two edges writing
//! the same rule at once.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::api::{code, Api, ADMIN_KEY};
use support::etcd::Etcd;
use support::media::demo_origin;
use support::relay::Relay;
use support::{free_port, origin_yaml, tencent, until_cut, Livegate, Origin};

const HOST: &str = "play.example.com";
const PREFIX: &str = "/lgtest";

fn domains(origin: impl std::fmt::Display) -> String {
    format!(
        "  - name: {HOST}\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [yamlPullKey1] }}\n",
        origin_yaml(&[origin], "")
    )
}

/// The `state:` line of an edge of the fleet under `prefix` on `etcd`.
fn fleet_state(edge: &str, etcd: &str, prefix: &str) -> String {
    format!("state: {{ backend: etcd, endpoints: [\"{etcd}\"], prefix: {prefix}, edge: {edge} }}\n")
}

/// Edges A and B of the fleet on `etcd`, in front of `origin`.
fn pair(etcd: &str, origin: impl std::fmt::Display + Copy) -> ((Livegate, Api), (Livegate, Api)) {
    (
        edge("edge-a", etcd, &domains(origin)),
        edge("edge-b", etcd, &domains(origin)),
    )
}

/// An edge of the fleet on `etcd` (a URL: etcd's or a relay's).
fn edge(name: &str, etcd: &str, domains: &str) -> (Livegate, Api) {
    edge_with(name, etcd, domains, PREFIX, "")
}

fn edge_with(name: &str, etcd: &str, domains: &str, prefix: &str, extra: &str) -> (Livegate, Api) {
    edge_top(
        &format!("{}{extra}", fleet_state(name, etcd, prefix)),
        domains,
    )
}

/// An edge with its management API and these top-level sections (`state:` …).
fn edge_top(top: &str, domains: &str) -> (Livegate, Api) {
    let admin = free_port();
    let top = format!("admin: {{ listen: \"127.0.0.1:{admin}\", key: {ADMIN_KEY} }}\n{top}");
    let mut lg = Livegate::start_top(domains, &top);
    lg.wait_port(admin);
    (lg, Api::new(admin))
}

/// Waits until `$cond` (an expression that may `.await`) holds; how long that
/// took. Fails naming `$what` after `$limit`.
macro_rules! until {
    ($what:expr, $limit:expr, $cond:expr) => {{
        let started = Instant::now();
        loop {
            if $cond {
                break started.elapsed();
            }
            assert!(
                started.elapsed() < $limit,
                "{}: not within {:?}",
                $what,
                $limit
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }};
}

async fn status(lg: &Livegate, path: &str) -> u16 {
    lg.get(HOST, path).await.status().as_u16()
}

async fn state_of(api: &Api) -> Value {
    let (s, v) = api.call_paced("GET", "/v1/state", None).await;
    assert_eq!(s, 200, "{v}");
    v
}

fn rule(keys: &[&str], valid_duration: i64) -> Value {
    json!({"domain": HOST, "app": "live", "scene": "pull", "scheme": "tencent",
           "keys": keys, "valid_duration": valid_duration})
}

/// Waits until both edges report the same etcd revision with a live watch.
async fn agree(a: &Api, b: &Api, limit: Duration) -> i64 {
    let mut rev;
    until!("both edges at one revision, watching", limit, {
        let (x, y) = (state_of(a).await, state_of(b).await);
        rev = x["revision"].as_i64().unwrap_or(-1);
        x["watch"] == true && y["watch"] == true && x["revision"] == y["revision"]
    });
    rev
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_through_one_edge_holds_on_the_other_at_once() {
    let etcd = Etcd::start().await;
    let o = Origin::start("o").await;
    let metrics = free_port();
    let (a, api_a) = edge_with(
        "edge-a",
        &etcd.url(),
        &domains(o.addr),
        PREFIX,
        &format!("metrics: {{ listen: \"127.0.0.1:{metrics}\" }}\n"),
    );
    let (b, api_b) = edge("edge-b", &etcd.url(), &domains(o.addr));
    agree(&api_a, &api_b, Duration::from_secs(10)).await;

    // A rule replaced through A: B enforces it within a second.
    let (s, v) = api_a
        .call_paced("PUT", "/v1/auth/rules", Some(rule(&["fleetKey2026"], 3600)))
        .await;
    assert_eq!(s, 200, "{v}");
    let took = until!("B enforces A's rule", Duration::from_secs(10), {
        status(&b, &tencent("/live/cam1.txt", "fleetKey2026")).await == 200
    });
    assert!(took < Duration::from_secs(1), "B took {took:?}");
    assert_eq!(
        status(&b, &tencent("/live/cam1.txt", "yamlPullKey1")).await,
        403
    );
    // The value in etcd is the API's JSON, one key per rule.
    let mut c = etcd.client().await;
    let got = c
        .get(format!("{PREFIX}/rules/{HOST}/pull/live"), None)
        .await
        .unwrap();
    let stored: Value = serde_json::from_slice(got.kvs()[0].value()).unwrap();
    assert_eq!(
        (&stored["domain"], &stored["keys"]),
        (&json!(HOST), &json!(["fleetKey2026"]))
    );

    // A viewer on A; the online list is A's and says so; B has none.
    let viewer = a
        .get(HOST, &tencent("/live/cam9.flv", "fleetKey2026"))
        .await;
    assert_eq!(viewer.status(), 200);
    let online = format!("/v1/streams/online?domain={HOST}&stream=cam9");
    until!("the viewer is online on A", Duration::from_secs(10), {
        let (_, v) = api_a.call_paced("GET", &online, None).await;
        v["edge"] == "edge-a" && v["total"] == 1
    });
    let (s, v) = api_b.call_paced("GET", &online, None).await;
    assert_eq!((s, code(&v)), (404, "StreamNotOnline"), "{v}");

    // A forbid through B cuts A's viewer within 1.5 s and refuses new ones on A.
    let asked = Instant::now();
    let forbid = json!({"domain": HOST, "app": "live", "stream": "cam9"});
    let (s, v) = api_b
        .call_paced("POST", "/v1/streams/forbid", Some(forbid))
        .await;
    assert_eq!(s, 200, "{v}");
    until_cut(viewer, Duration::from_secs(10))
        .await
        .expect("A's viewer was not cut");
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(1500), "cut after {took:?}");
    assert_eq!(
        status(&a, &tencent("/live/cam9.flv", "fleetKey2026")).await,
        403
    );

    // Both edges agree, and say so in /v1/state and in the metric; each lists
    // the fleet's edges.
    let rev = agree(&api_a, &api_b, Duration::from_secs(10)).await;
    let (sa, sb) = (state_of(&api_a).await, state_of(&api_b).await);
    for s in [&sa, &sb] {
        let names: Vec<&str> = s["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("no edges: {s}"))
            .iter()
            .filter_map(|e| e["edge"].as_str())
            .collect();
        assert_eq!(names, ["edge-a", "edge-b"], "{s}");
    }
    assert_eq!(
        (&sa["backend"], &sa["edge"], &sb["edge"], &sa["prefix"]),
        (
            &json!("etcd"),
            &json!("edge-a"),
            &json!("edge-b"),
            &json!(PREFIX)
        ),
        "{sa}"
    );
    let scraped = support::scrape(metrics).await;
    assert_eq!(
        support::sample(&scraped, "livegate_state_revision", &[]),
        Some(rev as f64),
        "{scraped}"
    );
    assert_eq!(
        support::sample(&scraped, "livegate_state_watch_up", &[]),
        Some(1.0)
    );
    // Resumed through A: B serves the stream again.
    let (s, v) = api_a
        .call_paced(
            "POST",
            "/v1/streams/resume",
            Some(json!({"domain": HOST, "app": "live", "stream": "cam9"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    until!("B lifts the forbid", Duration::from_secs(10), {
        status(&b, &tencent("/live/cam9.txt", "fleetKey2026")).await == 200
    });
    // B stops (killed, so its lease lapses): A no longer lists it.
    drop(b);
    until!("B leaves the list of edges", Duration::from_secs(40), {
        let s = state_of(&api_a).await;
        s["edges"]
            .as_array()
            .is_some_and(|e| e.len() == 1 && e[0]["edge"] == "edge-a")
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn segment_tokens_of_one_edge_open_segments_on_another() {
    let etcd = Etcd::start().await;
    let origin = demo_origin();
    let d = format!(
        "  - name: \"127.0.0.1\"\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [hlsKey2026] }}\n",
        origin_yaml(&[format!("127.0.0.1:{}", origin.port)], "")
    );
    let (a, _) = edge("edge-a", &etcd.url(), &d);
    let (b, _) = edge("edge-b", &etcd.url(), &d);
    // Another fleet (another prefix) has a secret of its own.
    let (other, _) = edge_with("edge-x", &etcd.url(), &d, "/otherfleet", "");
    let signed = a.sign(&format!("http://127.0.0.1:{}/live/cam1.m3u8", a.port), &[]);
    let text = support::text(&signed).await;
    let seg = text
        .lines()
        .find(|l| l.contains(".ts?lgt="))
        .unwrap_or_else(|| panic!("no segment with a token: {text}"))
        .to_owned();
    for (lg, want) in [(&a, 200), (&b, 200), (&other, 403)] {
        let url = format!("http://127.0.0.1:{}/live/{seg}", lg.port);
        let got = support::client().get(&url).send().await.unwrap();
        assert_eq!(got.status().as_u16(), want, "{url}");
        if want == 200 {
            assert!(got.bytes().await.unwrap().len() > 10_000);
        }
    }
}

/// Runs the binary with this `state:` line (and a fresh `state_dir`, so no
/// snapshot) on a configuration that must not start; its stderr.
fn refused_start(state: &str, domains: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("refused.yaml");
    let config = format!(
        "listen: [\"127.0.0.1:{}\"]\nstate_dir: {}/state\n{state}domains:\n{domains}",
        free_port(),
        dir.path().display(),
    );
    std::fs::write(&file, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .arg("-c")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("livegate started with etcd down and no snapshot");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn with_etcd_down_edges_serve_refuse_writes_and_catch_up_when_it_returns() {
    let mut etcd = Etcd::start().await;
    let o = Origin::start("o").await;
    let (a, api_a) = edge("edge-a", &etcd.url(), &domains(o.addr));
    let (mut b, api_b) = edge("edge-b", &etcd.url(), &domains(o.addr));
    let (s, v) = api_a
        .call_paced("PUT", "/v1/auth/rules", Some(rule(&["fleetKey2026"], 3600)))
        .await;
    assert_eq!(s, 200, "{v}");
    agree(&api_a, &api_b, Duration::from_secs(10)).await;

    etcd.stop();
    let signed = tencent("/live/cam1.txt", "fleetKey2026");
    for (lg, api) in [(&a, &api_a), (&b, &api_b)] {
        until!("the watch is seen down", Duration::from_secs(20), {
            state_of(api).await["watch"] == false
        });
        assert_eq!(status(lg, &signed).await, 200);
    }
    // Writes answer 503 and change nothing.
    let (s, v) = api_a
        .call_paced("PUT", "/v1/auth/rules", Some(rule(&["lostKey2026"], 3600)))
        .await;
    assert_eq!((s, code(&v)), (503, "StoreUnavailable"), "{v}");
    assert_eq!(
        status(&a, &tencent("/live/x.txt", "lostKey2026")).await,
        403
    );

    // B restarted while etcd is down starts from its snapshot.
    b.crash_and_restart();
    assert_eq!(status(&b, &signed).await, 200);
    assert!(b.log().contains("serving the snapshot"), "{}", b.log());
    // A new edge with no snapshot refuses to start, and says why.
    let err = refused_start(
        &fleet_state("edge-c", &etcd.url(), PREFIX),
        &domains(o.addr),
    );
    assert!(err.contains("no snapshot") && err.contains("etcd"), "{err}");

    // etcd back: writes succeed again and reach both edges.
    etcd.resume().await;
    until!("a write succeeds again", Duration::from_secs(30), {
        let (s, _) = api_b
            .call_paced("PUT", "/v1/auth/rules", Some(rule(&["backKey2026"], 3600)))
            .await;
        s == 200
    });
    until!("A has B's write", Duration::from_secs(20), {
        status(&a, &tencent("/live/cam1.txt", "backKey2026")).await == 200
    });
    agree(&api_a, &api_b, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edge_cut_off_while_history_is_compacted_converges() {
    let etcd = Etcd::start().await;
    let relay = Relay::start(etcd.port).await;
    let o = Origin::start("o").await;
    let (a, api_a) = edge("edge-a", &etcd.url(), &domains(o.addr));
    let (b, api_b) = edge("edge-b", &relay.url(), &domains(o.addr));
    agree(&api_a, &api_b, Duration::from_secs(10)).await;
    let before = state_of(&api_b).await["revision"].as_i64().unwrap();

    relay.cut();
    until!("B sees its watch cut", Duration::from_secs(20), {
        state_of(&api_b).await["watch"] == false
    });
    // While B is away: a rule, a forbid, and the rule replaced again.
    for (i, key) in ["awayKey1", "awayKey2"].iter().enumerate() {
        let (s, v) = api_a
            .call_paced("PUT", "/v1/auth/rules", Some(rule(&[key], 600 + i as i64)))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let forbid = json!({"domain": HOST, "app": "live", "stream": "banned"});
    let (s, v) = api_a
        .call_paced("POST", "/v1/streams/forbid", Some(forbid))
        .await;
    assert_eq!(s, 200, "{v}");
    let compacted = etcd.compact().await;
    assert!(compacted > before + 2, "{compacted} {before}");
    assert_eq!(
        status(&b, &tencent("/live/cam1.txt", "awayKey2")).await,
        403,
        "B cannot know yet"
    );

    relay.restore().await;
    agree(&api_a, &api_b, Duration::from_secs(30)).await;
    assert_eq!(
        status(&b, &tencent("/live/cam1.txt", "awayKey2")).await,
        200
    );
    assert_eq!(
        status(&b, &tencent("/live/cam1.txt", "awayKey1")).await,
        403
    );
    assert_eq!(
        status(&b, &tencent("/live/banned.txt", "awayKey2")).await,
        403
    );
    assert!(b.log().contains("watching etcd from revision"));
    drop(a);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_edges_writing_one_rule_at_once_leave_one_whole_body() {
    let etcd = Etcd::start().await;
    let o = Origin::start("o").await;
    let ((_a, api_a), (_b, api_b)) = pair(&etcd.url(), o.addr);
    let mut c = etcd.client().await;
    let key = format!("{PREFIX}/rules/{HOST}/pull/live");
    for round in 0..10i64 {
        let (ka, kb) = (format!("edgeAkey{round}"), format!("edgeBkey{round}"));
        let (x, y) = tokio::join!(
            api_a.call_paced("PUT", "/v1/auth/rules", Some(rule(&[&ka], 1000 + round))),
            api_b.call_paced("PUT", "/v1/auth/rules", Some(rule(&[&kb], 2000 + round))),
        );
        assert_eq!((x.0, y.0), (200, 200), "{x:?} {y:?}");
        let got = c.get(key.as_str(), None).await.unwrap();
        let v: Value = serde_json::from_slice(got.kvs()[0].value()).unwrap();
        let whole = (v["keys"] == json!([ka]) && v["valid_duration"] == 1000 + round)
            || (v["keys"] == json!([kb]) && v["valid_duration"] == 2000 + round);
        assert!(whole, "round {round}: {v}");
    }
    // Both edges end on the body etcd holds.
    agree(&api_a, &api_b, Duration::from_secs(10)).await;
    let (_, ra) = api_a
        .call_paced("GET", &format!("/v1/auth/rules?domain={HOST}"), None)
        .await;
    let (_, rb) = api_b
        .call_paced("GET", &format!("/v1/auth/rules?domain={HOST}"), None)
        .await;
    assert_eq!(ra["rules"], rb["rules"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_with_a_client_certificate() {
    let etcd = Etcd::start_tls().await;
    let o = Origin::start("o").await;
    let state = |cert: bool| {
        let client = match cert {
            true => format!(
                ", cert: {}, key: {}",
                etcd.pki("client.pem").display(),
                etcd.pki("client.key").display()
            ),
            false => String::new(),
        };
        format!(
            "state: {{ backend: etcd, endpoints: [\"{}\"], prefix: {PREFIX}, \
             tls: {{ ca: {}{client} }} }}\n",
            etcd.url(),
            etcd.pki("ca.pem").display(),
        )
    };
    let (lg, api) = edge_top(&state(true), &domains(o.addr));
    let (s, v) = api
        .call_paced("PUT", "/v1/auth/rules", Some(rule(&["tlsKey2026"], 3600)))
        .await;
    assert_eq!(s, 200, "{v}");
    let got = etcd
        .client()
        .await
        .get(format!("{PREFIX}/rules/{HOST}/pull/live"), None)
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 1);
    until!("the watch is live", Duration::from_secs(10), {
        state_of(&api).await["watch"] == true
    });
    assert_eq!(
        status(&lg, &tencent("/live/a.txt", "tlsKey2026")).await,
        200
    );
    // Without a client certificate etcd refuses the edge: it cannot start.
    let err = refused_start(&state(false), &domains(o.addr));
    assert!(err.contains("no snapshot"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_etcd_users_a_password_is_needed() {
    let mut etcd = Etcd::start().await;
    etcd.enable_auth("rootPassword2026").await;
    let o = Origin::start("o").await;
    let auth = |password: &str| {
        format!(
            "state: {{ backend: etcd, endpoints: [\"{}\"], prefix: {PREFIX}, \
             username: root, password: {password} }}\n",
            etcd.url()
        )
    };
    let (lg, api) = edge_top(&auth("rootPassword2026"), &domains(o.addr));
    let (s, v) = api
        .call_paced("PUT", "/v1/auth/rules", Some(rule(&["userKey2026"], 3600)))
        .await;
    assert_eq!(s, 200, "{v} {}", lg.log());
    assert_eq!(
        status(&lg, &tencent("/live/a.txt", "userKey2026")).await,
        200
    );
    let err = refused_start(&auth("wrongPassword"), &domains(o.addr));
    assert!(err.contains("etcd") && err.contains("no snapshot"), "{err}");
    assert!(!err.contains("wrongPassword"), "{err}");
}

/// Waits until the edge behind `api` has applied etcd revision `rev`.
async fn applied(api: &Api, rev: i64) {
    until!(
        format!("revision {rev} applied"),
        Duration::from_secs(10),
        state_of(api).await["revision"].as_i64().unwrap_or(0) >= rev
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_key_is_written_again_and_a_value_that_does_not_parse_never_fails_open() {
    let etcd = Etcd::start().await;
    let o = Origin::start("o").await;
    let ((a, api_a), (b, api_b)) = pair(&etcd.url(), o.addr);
    agree(&api_a, &api_b, Duration::from_secs(10)).await;
    let cam1 = json!({"domain": HOST, "app": "live", "stream": "cam1"});
    // Forbid → resume → forbid, through one edge and across both.
    for (api, what) in [
        (&api_a, "a"),
        (&api_a, "a again"),
        (&api_b, "b"),
        (&api_a, "a after b"),
    ] {
        let (s, v) = api
            .call_paced("POST", "/v1/streams/forbid", Some(cam1.clone()))
            .await;
        assert_eq!(s, 200, "forbid through {what}: {v}");
        agree(&api_a, &api_b, Duration::from_secs(10)).await;
        let (s, v) = api
            .call_paced("POST", "/v1/streams/resume", Some(cam1.clone()))
            .await;
        assert_eq!(s, 200, "resume through {what}: {v}");
        agree(&api_a, &api_b, Duration::from_secs(10)).await;
    }
    // Rule PUT → DELETE → PUT.
    let delete = format!("/v1/auth/rules?domain={HOST}&app=live&scene=pull");
    for round in 0..2 {
        let (s, v) = api_a
            .call_paced("PUT", "/v1/auth/rules", Some(rule(&["fleetKey2026"], 3600)))
            .await;
        assert_eq!(s, 200, "PUT round {round}: {v}");
        let (s, v) = api_a.call_paced("DELETE", &delete, None).await;
        assert_eq!(s, 200, "DELETE round {round}: {v}");
    }
    // An operator's `etcdctl del` of a rule: the next PUT is written.
    let (s, v) = api_a
        .call_paced("PUT", "/v1/auth/rules", Some(rule(&["fleetKey2026"], 3600)))
        .await;
    assert_eq!(s, 200, "{v}");
    let mut c = etcd.client().await;
    let rule_key = format!("{PREFIX}/rules/{HOST}/pull/live");
    let deleted = c.delete(rule_key.as_str(), None).await.unwrap();
    applied(&api_a, deleted.header().unwrap().revision()).await;
    let (s, v) = api_a
        .call_paced("PUT", "/v1/auth/rules", Some(rule(&["fleetKey2026"], 3600)))
        .await;
    assert_eq!(s, 200, "PUT after etcdctl del: {v}");

    // Values that do not parse keep the key's good value on every edge: the
    // forbidden stream stays forbidden, the API rule keeps protecting its app.
    let cam2 = json!({"domain": HOST, "app": "live", "stream": "cam2"});
    let (s, v) = api_a
        .call_paced("POST", "/v1/streams/forbid", Some(cam2))
        .await;
    assert_eq!(s, 200, "{v}");
    let forbid_key = format!("{PREFIX}/forbids/{HOST}/live/cam2");
    let fleet_signed = tencent("/live/cam2-1.ts", "fleetKey2026");
    let yaml_signed = tencent("/live/cam3-1.ts", "yamlPullKey1");
    let api_signed = tencent("/live/cam3-1.ts", "fleetKey2026");
    let wrong_typed = format!(
        "{{\"domain\":\"{HOST}\",\"app\":\"live\",\"scene\":\"pull\",\"scheme\":\"tencent\",\"keys\":\"MyRealKey2027\"}}"
    );
    for junk in [
        "not json",
        "",
        "[]",
        "{\"domain\": 5}",
        "{\"unknown\": true}",
        &wrong_typed,
    ] {
        for key in [&forbid_key, &rule_key] {
            let put = c.put(key.as_str(), junk, None).await.unwrap();
            let rev = put.header().unwrap().revision();
            applied(&api_a, rev).await;
            applied(&api_b, rev).await;
        }
        for lg in [&a, &b] {
            assert_eq!(
                status(lg, &fleet_signed).await,
                403,
                "cam2 played after {junk:?}"
            );
            assert_eq!(
                status(lg, &yaml_signed).await,
                403,
                "the API rule vanished after {junk:?}"
            );
            assert_eq!(status(lg, &api_signed).await, 200, "after {junk:?}");
        }
    }
    let log = a.log();
    assert!(log.contains("is not taken"), "{log}");
    assert!(!log.contains("MyRealKey2027"), "a key was logged: {log}");
}

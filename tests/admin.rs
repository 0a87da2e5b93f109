//! The management API end to end: the real binary, signed calls from a real
//! client, a real origin, viewers and a publisher.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::api::{code, now, signature, Api, ADMIN_KEY};
use support::{free_port, origin_yaml, tencent, until_cut, Livegate, Origin};

const HOST: &str = "play.example.com";

fn domains(origin: &Origin) -> String {
    format!(
        "  - name: {HOST}\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [yamlPullKey1] }}\n      \
         - {{ scene: push, scheme: tencent, keys: [yamlPushKey1] }}\n      \
         - {{ scene: pull, app: free, enabled: false }}\n    \
         cache: {{ enabled: false }}\n",
        origin_yaml(&[origin.addr], "")
    )
}

fn admin_top(port: u16, extra: &str) -> String {
    format!("admin: {{ listen: \"127.0.0.1:{port}\", key: {ADMIN_KEY} }}\n{extra}")
}

async fn setup() -> (Origin, Livegate, Api) {
    let o = Origin::start("o1").await;
    let port = free_port();
    let mut lg = Livegate::start_top(&domains(&o), &admin_top(port, ""));
    lg.wait_port(port);
    (o, lg, Api::new(port))
}

async fn status(lg: &Livegate, path: &str) -> u16 {
    lg.get(HOST, path).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_is_signed() {
    let (_o, _lg, api) = setup().await;
    let path = "/v1/streams/forbidden";
    let (s, v) = api.raw("GET", path, None).await;
    assert_eq!((s, code(&v)), (403, "SignInvalid"));
    let wrong = format!(
        "{path}?t={}&sign=00000000000000000000000000000000",
        now() + 60
    );
    let (s, v) = api.raw("GET", &wrong, None).await;
    assert_eq!((s, code(&v)), (403, "SignInvalid"));
    let other_key = format!("{path}?{}", signature("notTheKey1", now() + 60));
    assert_eq!(api.raw("GET", &other_key, None).await.0, 403);
    let expired = format!("{path}?{}", signature(ADMIN_KEY, now() - 10));
    let (s, v) = api.raw("GET", &expired, None).await;
    assert_eq!((s, code(&v)), (403, "TimeExpired"));
    let far = format!("{path}?{}", signature(ADMIN_KEY, now() + 2 * 86_400));
    let (s, v) = api.raw("GET", &far, None).await;
    assert_eq!((s, code(&v)), (403, "TimeExpired"));
    assert_eq!(api.call("GET", path, None).await.0, 200);
    // Routing and methods answer only signed callers.
    let (s, v) = api.call("GET", "/v1/nothing", None).await;
    assert_eq!((s, code(&v)), (404, "ResourceNotFound"));
    let (s, v) = api.call("DELETE", "/v1/streams/forbid", None).await;
    assert_eq!((s, code(&v)), (405, "MethodNotAllowed"));
    let (s, v) = api.call("GET", "/v1/state", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["backend"], "file");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_gives_the_clis_verdict_with_the_providers_wording() {
    let (_o, lg, api) = setup().await;
    let good = format!("http://{HOST}{}", tencent("/live/cam1.flv", "yamlPullKey1"));
    let enc = |u: &str| form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>();
    let (s, v) = api
        .call("GET", &format!("/v1/auth/check?url={}", enc(&good)), None)
        .await;
    assert_eq!((s, v.clone()), (200, json!({"status": "pass"})));
    let bad = format!("http://{HOST}{}", tencent("/live/cam1.flv", "wrongKey1"));
    let (_, v) = api
        .call("GET", &format!("/v1/auth/check?url={}", enc(&bad)), None)
        .await;
    assert_eq!(v["status"], "fail");
    assert_eq!(v["reason"], "BAD_SIGNATURE");
    assert_eq!(v["description"], "INVALID MD5HASH");
    // The CLI says the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["check", "-c", lg.config.to_str().unwrap(), "--url", &bad])
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["reason"], v["reason"]);
    // `domain` overrides the URL's host.
    let elsewhere = good.replace(HOST, "other.example.org");
    let q = format!("/v1/auth/check?url={}&domain={HOST}", enc(&elsewhere));
    assert_eq!(api.call("GET", &q, None).await.1["status"], "pass");
    let (s, v) = api.call("GET", "/v1/auth/check?url=%2Flive", None).await;
    assert_eq!((s, code(&v)), (400, "InvalidParam"));
    let (s, v) = api.call("GET", "/v1/auth/check", None).await;
    assert_eq!((s, code(&v)), (400, "InvalidParam"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_put_then_deleted_is_in_force_on_the_next_request() {
    let (o, lg, api) = setup().await;
    let yaml_url = tencent("/live/cam1.m3u8", "yamlPullKey1");
    let api_url = tencent("/live/cam1.m3u8", "apiPullKey1234");
    assert_eq!(status(&lg, &yaml_url).await, 200);
    assert_eq!(status(&lg, &api_url).await, 403);
    let rule = json!({"domain": HOST, "scene": "pull", "app": "live", "scheme": "tencent",
                      "keys": ["apiPullKey1234", "backupKey99"]});
    let (s, v) = api.call("PUT", "/v1/auth/rules", Some(rule.clone())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(status(&lg, &api_url).await, 200);
    assert_eq!(
        status(&lg, &yaml_url).await,
        403,
        "the API rule replaces the YAML's for app live"
    );
    assert_eq!(
        status(&lg, &tencent("/other/cam1.m3u8", "yamlPullKey1")).await,
        200
    );

    let (_, v) = api
        .call("GET", &format!("/v1/auth/rules?domain={HOST}"), None)
        .await;
    let rules = v["rules"].as_array().unwrap();
    let live = rules.iter().find(|r| r["app"] == "live").unwrap();
    assert_eq!(live["source"], "api");
    assert_eq!(live["keys"], json!(["ap*****34", "ba*****99"]));
    assert!(rules
        .iter()
        .any(|r| r["app"] == "*" && r["source"] == "yaml"));
    assert!(!v.to_string().contains("apiPullKey1234") && !v.to_string().contains("yamlPullKey1"));

    let q = format!("/v1/auth/rules?domain={HOST}&app=live&scene=pull");
    assert_eq!(api.call("DELETE", &q, None).await.0, 200);
    assert_eq!(status(&lg, &yaml_url).await, 200);
    assert_eq!(status(&lg, &api_url).await, 403);
    let (s, v) = api.call("DELETE", &q, None).await;
    assert_eq!((s, code(&v)), (404, "ResourceNotFound"));
    assert!(o.seen().len() >= 3);
}

/// `PATCH /v1/auth/rules`: a YAML rule's key rotated, disabled and enabled
/// again without anyone sending its keys back; bad patches change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_is_patched_without_its_keys_being_sent() {
    let (_o, lg, api) = setup().await;
    let old = tencent("/live/cam1.m3u8", "yamlPullKey1");
    let new = tencent("/live/cam1.m3u8", "rotatedKey2027");
    let patch = |change: serde_json::Value| {
        let mut body = json!({"domain": HOST, "app": "*", "scene": "pull"});
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        body
    };
    // Bad patches: clear errors, nothing changed.
    for (change, status_code, code_name) in [
        (json!({"remove_key": 5}), 400, "InvalidParam"),
        (json!({"remove_key": 0}), 400, "InvalidParam"),
        (json!({"add_key": "bad key!"}), 400, "InvalidParam"),
        (json!({"colour": "red"}), 400, "InvalidParam"),
    ] {
        let (s, v) = api
            .call("PATCH", "/v1/auth/rules", Some(patch(change.clone())))
            .await;
        assert_eq!((s, code(&v)), (status_code, code_name), "{change}: {v}");
    }
    let (s, v) = api
        .call(
            "PATCH",
            "/v1/auth/rules",
            Some(json!({"domain": HOST, "app": "nope", "scene": "pull", "enabled": false})),
        )
        .await;
    assert_eq!((s, code(&v)), (404, "ResourceNotFound"), "{v}");
    assert_eq!(status(&lg, &old).await, 200);
    // Rotate: the new key first, the old one gone.
    let (s, v) = api
        .call(
            "PATCH",
            "/v1/auth/rules",
            Some(patch(json!({"add_key": "rotatedKey2027", "remove_key": 0}))),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["source"], "api");
    assert_eq!(status(&lg, &old).await, 403);
    assert_eq!(status(&lg, &new).await, 200);
    let (_, v) = api
        .call("GET", &format!("/v1/auth/rules?domain={HOST}"), None)
        .await;
    let rule = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["app"] == "*" && r["scene"] == "pull")
        .unwrap()
        .clone();
    assert_eq!(rule["keys"], json!(["ro*****27"]), "{v}");
    assert_eq!(
        rule["scheme"], "tencent",
        "the rest of the rule is kept: {rule}"
    );
    // Disable: the scene opens (no signature asked); enable again.
    let (s, _) = api
        .call(
            "PATCH",
            "/v1/auth/rules",
            Some(patch(json!({"enabled": false}))),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(status(&lg, "/live/cam1.m3u8").await, 200);
    let (s, _) = api
        .call(
            "PATCH",
            "/v1/auth/rules",
            Some(patch(json!({"enabled": true}))),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(status(&lg, "/live/cam1.m3u8").await, 403);
    assert_eq!(status(&lg, &new).await, 200);
    // The state lists the domains (what the console's pages choose from).
    let (_, v) = api.call("GET", "/v1/state", None).await;
    assert_eq!(v["domains"], json!([HOST]), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rules_get_clear_errors_and_change_nothing() {
    let (_o, lg, api) = setup().await;
    let base = json!({"domain": HOST, "scene": "pull", "app": "live", "scheme": "tencent", "keys": ["k1"]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let long = "a".repeat(101);
    for (body, expect_code, says) in [
        (
            with("keys", json!(["k1", "k2", "k3", long])),
            "InvalidParam.Length",
            "keys[3] should not be longer than 100",
        ),
        (with("keys", json!(["bad-key"])), "InvalidParam", "keys[0]"),
        (with("keys", json!([])), "InvalidParam", "keys"),
        (with("scheme", json!("md6")), "InvalidParam", "md6"),
        (with("colour", json!("red")), "InvalidParam", "colour"),
        (
            with("valid_duration", json!(10)),
            "InvalidParam",
            "valid_duration",
        ),
        (with("app", json!("bad app")), "InvalidParam", "app"),
        (
            with("domain", json!("nowhere.example.org")),
            "ResourceNotFound",
            "nowhere",
        ),
    ] {
        let (s, v) = api.call("PUT", "/v1/auth/rules", Some(body.clone())).await;
        assert_eq!(code(&v), expect_code, "{body}: {v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{body}: {v}");
        assert!(s == 400 || s == 404, "{s}");
    }
    let (s, v) = api
        .raw(
            "PUT",
            &api.signed("/v1/auth/rules"),
            Some(b"not json".to_vec()),
        )
        .await;
    assert_eq!((s, code(&v)), (400, "InvalidParam"));
    let big = vec![b' '; 70 * 1024];
    let (s, v) = api
        .raw("PUT", &api.signed("/v1/auth/rules"), Some(big))
        .await;
    assert_eq!((s, code(&v)), (413, "PayloadTooLarge"));
    // Nothing changed: the YAML rule still rules.
    assert_eq!(
        status(&lg, &tencent("/live/a.flv", "yamlPullKey1")).await,
        200
    );
    // `enabled` absent keeps a replaced rule's state: app free stays public.
    // (A second later: the writes above used up this second's 10.)
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let free = json!({"domain": HOST, "scene": "pull", "app": "free", "scheme": "tencent", "keys": ["freeKey1"]});
    assert_eq!(api.call("PUT", "/v1/auth/rules", Some(free)).await.0, 200);
    assert_eq!(status(&lg, "/free/a.m3u8").await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_over_the_rate_are_refused() {
    let (_o, _lg, api) = setup().await;
    let api = std::sync::Arc::new(api);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"domain": HOST, "app": "live", "stream": format!("s{i}")});
            api.call("POST", "/v1/streams/forbid", Some(body)).await
        }));
    }
    let mut limited = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        if s == 429 {
            assert_eq!(code(&v), "RequestLimitExceeded");
            limited += 1;
        } else {
            assert_eq!(s, 200, "{v}");
        }
    }
    assert!(
        limited >= 1,
        "30 writes at once were all accepted (limit 10/s)"
    );
    // Checks: bursts of 200 at once until one is refused (a loaded box may spread
    // one burst over more than a second, so it gets a few tries).
    let mut limited = 0;
    for _ in 0..5 {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let api = api.clone();
                tokio::spawn(async move {
                    api.call(
                        "GET",
                        "/v1/auth/check?url=http%3A%2F%2Fplay.example.com%2Flive%2Fa.flv",
                        None,
                    )
                    .await
                    .0
                })
            })
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                429 => limited += 1,
                s => assert_eq!(s, 200),
            }
        }
        if limited > 0 {
            break;
        }
    }
    assert!(
        limited >= 1,
        "five bursts of 200 checks were all accepted (limit 100/s)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_and_forbids_survive_a_crash() {
    let (_o, mut lg, api) = setup().await;
    let rule = json!({"domain": HOST, "scene": "pull", "app": "live", "scheme": "tencent", "keys": ["apiPullKey1234"]});
    assert_eq!(api.call("PUT", "/v1/auth/rules", Some(rule)).await.0, 200);
    let forbid = json!({"domain": HOST, "app": "live", "stream": "banned", "reason": "test"});
    assert_eq!(
        api.call("POST", "/v1/streams/forbid", Some(forbid)).await.0,
        200
    );
    lg.crash_and_restart();
    lg.wait_port(api.port);
    assert_eq!(
        status(&lg, &tencent("/live/cam1.flv", "apiPullKey1234")).await,
        200
    );
    assert_eq!(
        status(&lg, &tencent("/live/banned.flv", "apiPullKey1234")).await,
        403
    );
    let (_, v) = api.call("GET", "/v1/streams/forbidden", None).await;
    assert_eq!(v["forbidden"][0]["stream"], "banned");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_in_a_burst_of_writes_loses_no_acknowledged_write() {
    let (_o, mut lg, api) = setup().await;
    let api = std::sync::Arc::new(api);
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..200 {
                let body = json!({"domain": HOST, "scene": "pull", "app": format!("app{i}"),
                                  "scheme": "tencent", "keys": [format!("key{i}")]});
                let url = format!(
                    "http://127.0.0.1:{}{}",
                    api.port,
                    api.signed("/v1/auth/rules")
                );
                match support::client().put(url).json(&body).send().await {
                    Ok(r) if r.status() == 200 => acked.push(format!("app{i}")),
                    Ok(_) => {}
                    Err(_) => break,
                }
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lg.crash_and_restart();
    let acked = writer.await.unwrap();
    assert!(
        !acked.is_empty(),
        "no write was acknowledged before the kill"
    );
    lg.wait_port(api.port);
    let (s, v) = api
        .call("GET", &format!("/v1/auth/rules?domain={HOST}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let apps: Vec<&str> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "api")
        .filter_map(|r| r["app"].as_str())
        .collect();
    for app in &acked {
        assert!(
            apps.contains(&app.as_str()),
            "{app} was acknowledged and lost: {apps:?}"
        );
    }
}

/// A publisher: a chunked POST that sends a chunk every 50 ms until the server
/// stops it. Returns when it was stopped.
fn publish(port: u16, path: &str, limit: Duration) -> std::thread::JoinHandle<Option<Duration>> {
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let started = Instant::now();
        while started.elapsed() < limit {
            let sent = s
                .write_all(b"400\r\n")
                .and_then(|_| s.write_all(&[7u8; 1024]))
                .and_then(|_| s.write_all(b"\r\n"));
            if sent.is_err() || support::closed_now(&mut s) {
                return Some(started.elapsed());
            }
        }
        None
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn forbid_cuts_viewers_and_publishers_and_refuses_segments() {
    let (_o, lg, api) = setup().await;
    let viewer = lg
        .get(HOST, &tencent("/live/cam9.flv", "yamlPullKey1"))
        .await;
    assert_eq!(viewer.status(), 200);
    let push_url = {
        let u = lg.sign(
            &format!("http://{HOST}/live/cam9.flv"),
            &["--scene", "push"],
        );
        u[u.find("/live").unwrap()..].to_owned()
    };
    let publisher = publish(lg.port, &push_url, Duration::from_secs(30));
    // Both are in the online list before the forbid.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = api
            .call(
                "GET",
                &format!("/v1/streams/online?domain={HOST}&stream=cam9"),
                None,
            )
            .await;
        if v["streams"].as_array().is_some_and(|s| s.len() == 2) {
            let push = v["streams"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["scene"] == "push")
                .unwrap()
                .clone();
            assert_eq!(push["client_ips"], json!(["127.0.0.1"]));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "viewer and publisher not online: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let forbid = json!({"domain": HOST, "app": "live", "stream": "cam9", "reason": "rights"});
    let asked = Instant::now();
    let (s, v) = api.call("POST", "/v1/streams/forbid", Some(forbid)).await;
    assert_eq!(s, 200, "{v}");
    let cut = until_cut(viewer, Duration::from_secs(10))
        .await
        .expect("the viewer was not cut");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "viewer cut after {cut:?}"
    );
    let stopped = publisher
        .join()
        .unwrap()
        .expect("the publisher was not cut");
    assert!(stopped < Duration::from_secs(30));
    // New requests for the stream, HLS segments included, are refused.
    for p in ["/live/cam9.flv", "/live/cam9.m3u8", "/live/cam9-12.ts"] {
        assert_eq!(status(&lg, &tencent(p, "yamlPullKey1")).await, 403, "{p}");
    }
    assert!(
        lg.log().contains("FORBIDDEN_STREAM (rights)"),
        "{}",
        lg.log()
    );
    assert_eq!(
        status(&lg, &tencent("/live/cam8.flv", "yamlPullKey1")).await,
        200
    );
    // Resume lifts it.
    let resume = json!({"domain": HOST, "app": "live", "stream": "cam9"});
    assert_eq!(
        api.call("POST", "/v1/streams/resume", Some(resume.clone()))
            .await
            .0,
        200
    );
    assert_eq!(
        status(&lg, &tencent("/live/cam9.m3u8", "yamlPullKey1")).await,
        200
    );
    let (s, v) = api.call("POST", "/v1/streams/resume", Some(resume)).await;
    assert_eq!((s, code(&v)), (404, "ResourceNotFound"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forbid_with_until_ends_by_itself() {
    let (_o, lg, api) = setup().await;
    let until = now() + 2;
    let forbid = json!({"domain": HOST, "app": "live", "stream": "short", "until": until});
    assert_eq!(
        api.call("POST", "/v1/streams/forbid", Some(forbid)).await.0,
        200
    );
    assert_eq!(
        status(&lg, &tencent("/live/short.m3u8", "yamlPullKey1")).await,
        403
    );
    while now() <= until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status(&lg, &tencent("/live/short.m3u8", "yamlPullKey1")).await,
        200
    );
    let (_, v) = api.call("GET", "/v1/streams/forbidden", None).await;
    assert_eq!(v["forbidden"], json!([]));
    let past = json!({"domain": HOST, "app": "live", "stream": "x", "until": now() - 5});
    let (s, v) = api.call("POST", "/v1/streams/forbid", Some(past)).await;
    assert_eq!((s, code(&v)), (400, "InvalidParam"));
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_cuts_now_without_forbidding_and_online_counts_viewers() {
    let (_o, lg, api) = setup().await;
    let url = tencent("/live/cam7.flv", "yamlPullKey1");
    let mut a = lg.get(HOST, &url).await;
    let b = lg.get(HOST, &url).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let _ = a.chunk().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let (s, v) = api
            .call(
                "GET",
                &format!("/v1/streams/online?domain={HOST}&app=live"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        if v["streams"][0]["connections"] == 2 && v["streams"][0]["bytes"].as_u64() > Some(0) {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(v["streams"][0]["stream"], "cam7");
    assert_eq!(v["streams"][0]["scene"], "pull");
    assert!(v["streams"][0]["since"].as_i64().unwrap() <= now());
    let (s, v) = api
        .call(
            "GET",
            &format!("/v1/streams/online?domain={HOST}&page_size=1001"),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (400, "InvalidParam"));
    let (s, v) = api
        .call(
            "GET",
            &format!("/v1/streams/online?domain={HOST}&stream=nope"),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (404, "StreamNotOnline"));

    let drop_body = json!({"domain": HOST, "app": "live", "stream": "cam7"});
    let (s, v) = api
        .call("POST", "/v1/streams/drop", Some(drop_body.clone()))
        .await;
    assert_eq!((s, v["cut"].as_u64()), (200, Some(2)), "{v}");
    assert!(until_cut(a, Duration::from_secs(10)).await.is_some());
    assert!(until_cut(b, Duration::from_secs(10)).await.is_some());
    // Not forbidden: the viewer may come back at once.
    assert_eq!(status(&lg, &url.replace(".flv", ".m3u8")).await, 200);
    let gone = json!({"domain": HOST, "app": "live", "stream": "never"});
    let (s, v) = api.call("POST", "/v1/streams/drop", Some(gone)).await;
    assert_eq!((s, code(&v)), (404, "StreamNotOnline"));
}

#[test]
fn a_config_with_admin_but_no_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(
        &f,
        "listen: [\"127.0.0.1:1\"]\nadmin: { listen: \"127.0.0.1:9180\" }\ndomains:\n  - { name: a.com, origin: { peers: [\"127.0.0.1:9\"] } }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["-t", "-c", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin.key"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_the_store_cannot_take_changes_nothing() {
    let (_o, lg, api) = setup().await;
    // The state directory becomes a file: nothing can be written under it.
    let state = lg.dir.path().join("state");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::write(&state, "not a directory").unwrap();
    let rule = json!({"domain": HOST, "scene": "pull", "app": "live", "scheme": "tencent", "keys": ["apiPullKey1234"]});
    let (s, v) = api.call("PUT", "/v1/auth/rules", Some(rule)).await;
    assert_eq!((s, code(&v)), (503, "StoreUnavailable"));
    assert_eq!(
        status(&lg, &tencent("/live/a.flv", "apiPullKey1234")).await,
        403
    );
    assert_eq!(
        status(&lg, &tencent("/live/a.flv", "yamlPullKey1")).await,
        200
    );
    let forbid = json!({"domain": HOST, "app": "live", "stream": "a"});
    let (s, _) = api.call("POST", "/v1/streams/forbid", Some(forbid)).await;
    assert_eq!(s, 503);
    assert_eq!(
        status(&lg, &tencent("/live/a.flv", "yamlPullKey1")).await,
        200
    );
}

/// `livegate -t` on a config whose state directory holds `state`.
fn test_with_state(state: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/state.json"), state).unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(
        &f,
        format!("listen: [\"127.0.0.1:1\"]\nstate_dir: {d}/state\ndomains:\n  - {{ name: a.com, origin: {{ peers: [\"127.0.0.1:9\"] }}, auth: [ {{ scene: pull, enabled: false }} ] }}\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["-t", "-c", f.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_rule_for_a_domain_gone_from_the_yaml_is_kept_and_warned_about() {
    let state = r#"{"rules": [{"domain": "gone.example.com", "rule": {"scene": "pull", "app": "live", "scheme": "tencent", "keys": ["k1"]}}]}"#;
    let (code, err) = test_with_state(state);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning") && err.contains("gone.example.com"),
        "{err}"
    );
}

#[test]
fn an_unreadable_state_file_stops_start_up_naming_it() {
    let (code, err) = test_with_state("{\"rules\": [");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("state.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forbid_that_ends_a_session_emits_its_stream_end() {
    use support::receiver::{Mode, Receiver};
    let o = Origin::start("o1").await;
    let receiver = Receiver::start(Mode::Ok).await;
    let port = free_port();
    let mut lg = Livegate::start_top(
        &domains(&o),
        &admin_top(
            port,
            &format!(
                "notify: {{ url: \"http://{}\", key: notifyKey2026, linger_ms: 300 }}\n",
                receiver.addr
            ),
        ),
    );
    lg.wait_port(port);
    let api = Api::new(port);
    let viewer = lg
        .get(HOST, &tencent("/live/ended.flv", "yamlPullKey1"))
        .await;
    assert_eq!(viewer.status(), 200);
    let forbid = json!({"domain": HOST, "app": "live", "stream": "ended"});
    assert_eq!(
        api.call("POST", "/v1/streams/forbid", Some(forbid)).await.0,
        200
    );
    assert!(until_cut(viewer, Duration::from_secs(10)).await.is_some());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ended = receiver
            .events()
            .iter()
            .any(|b| b["event_type"] == "stream_end" && b["stream"] == "ended");
        if ended {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stream_end: {:?}",
            receiver.events()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_typed_key_is_named_never_echoed() {
    let (_o, lg, api) = setup().await;
    for (body, value) in [
        (
            json!({"domain": HOST, "app": "live", "scene": "pull", "scheme": "tencent", "keys": "MyRealKey2027"}),
            "MyRealKey2027",
        ),
        (
            json!({"domain": HOST, "app": "live", "scene": "pull", "scheme": "tencent", "keys": ["okKey1"], "skew": "MySkewKey2027"}),
            "MySkewKey2027",
        ),
    ] {
        let (s, v) = api.call("PUT", "/v1/auth/rules", Some(body)).await;
        assert_eq!((s, code(&v)), (400, "InvalidParam"), "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("invalid type"),
            "{v}"
        );
        assert!(!v.to_string().contains(value), "{v}");
        assert!(!lg.log().contains(value), "{}", lg.log());
    }
}

/// Token rules through the API: an Akamai key rotated by PATCH (a key that is
/// not hex refused, with the rule's reason), public keys listed by id, a salt
/// never shown.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_rules_keys_rotate_and_list_as_their_scheme_spells_them() {
    use livegate::sign::cdn::edgeauth::{EdgeAuth, Fields};
    use livegate::sign::cdn::fixtures::RSA_PUBLIC;
    let o = Origin::start("o1").await;
    let port = free_port();
    let cf = json!(format!("K2JCJMDEHXQW5F:{RSA_PUBLIC}"));
    let domains = format!(
        "  - name: {HOST}\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, app: ak, scheme: akamai_token, keys: [aaaa0000aaaa0000], salt: pepperSalt }}\n      \
         - {{ scene: pull, app: cf, scheme: cloudfront, keys: [{cf}] }}\n",
        origin_yaml(&[o.addr], "")
    );
    let mut lg = Livegate::start_top(&domains, &admin_top(port, ""));
    lg.wait_port(port);
    let api = Api::new(port);
    let token = |key: &str| {
        let mut e = EdgeAuth::new(&[key], Default::default()).unwrap();
        e.salt = Some("pepperSalt".into());
        let exp = now() + 600;
        e.generate(&Fields {
            exp,
            acl: vec!["/ak/*"],
            ..Default::default()
        })
    };
    let url = |key: &str| format!("/ak/cam1.txt?hdnts={}", token(key));
    assert_eq!(status(&lg, &url("aaaa0000aaaa0000")).await, 200);
    let patch = |change: Value| {
        let mut body = json!({"domain": HOST, "app": "ak", "scene": "pull"});
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        body
    };
    let (s, v) = api
        .call(
            "PATCH",
            "/v1/auth/rules",
            Some(patch(json!({"add_key": "not-hex-at-all"}))),
        )
        .await;
    assert_eq!((s, code(&v)), (400, "InvalidParam"), "{v}");
    assert!(v.to_string().contains("hex"), "{v}");
    assert!(
        !v.to_string().contains("not-hex-at-all"),
        "the key echoed: {v}"
    );
    let (s, v) = api
        .call(
            "PATCH",
            "/v1/auth/rules",
            Some(patch(
                json!({"add_key": "bbbb1111bbbb1111", "remove_key": 0}),
            )),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(status(&lg, &url("aaaa0000aaaa0000")).await, 403);
    assert_eq!(status(&lg, &url("bbbb1111bbbb1111")).await, 200);
    let (_, v) = api
        .call("GET", &format!("/v1/auth/rules?domain={HOST}"), None)
        .await;
    let rules = v["rules"].as_array().unwrap();
    let of = |app: &str| rules.iter().find(|r| r["app"] == app).unwrap().clone();
    assert_eq!(of("ak")["keys"], json!(["bb*****11"]), "{v}");
    assert_eq!(of("ak")["salt"], "*****", "{v}");
    assert_eq!(
        of("cf")["keys"],
        json!(["K2JCJMDEHXQW5F:<public key>"]),
        "{v}"
    );
    assert!(!v.to_string().contains("pepperSalt"), "the salt shown: {v}");
}

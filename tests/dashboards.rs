//! What ships in `deploy/` for Prometheus and Grafana: the rules pass
//! `promtool check rules` and their unit tests; every metric the rules and the
//! dashboard query exists in a scrape of a running livegate (so renaming a
//! metric fails here, not on an operator's screen); the dashboard is Grafana
//! JSON with a domain variable and a query in every panel.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::media::need;
use support::{free_port, Livegate};

fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// The `livegate_*` metric names an expression reads (histogram series by
/// their family's name).
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("livegate_") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        // Recording rules (`livegate:…`) and label values are not metric names.
        if !matches!(before, Some(b':') | Some(b'"') | Some(b'_')) {
            let name = &expr[start..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            into.insert(family.to_owned());
        }
        i = end;
    }
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests() {
    need("promtool", "prometheus");
    for args in [
        vec!["check", "rules", "livegate-rules.yml"],
        vec!["test", "rules", "livegate-rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(deploy("prometheus"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_dashboard_is_grafana_json_with_a_query_in_every_panel() {
    let text = std::fs::read_to_string(deploy("grafana/livegate.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in [
        "title",
        "uid",
        "schemaVersion",
        "panels",
        "templating",
        "time",
    ] {
        assert!(!d[field].is_null(), "no {field}");
    }
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        vars.contains(&"domain") && vars.contains(&"datasource"),
        "{vars:?}"
    );
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut queried = 0;
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        assert!(
            p["gridPos"]["w"].as_u64().is_some_and(|w| w > 0 && w <= 24),
            "{p}"
        );
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("no targets: {p}"));
        assert!(!targets.is_empty(), "{}: no query", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or("");
            assert!(expr.contains("livegate_"), "{}: {t}", p["title"]);
        }
        queried += 1;
    }
    assert!(queried >= 12, "{queried} panels");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_rules_and_the_dashboard_read_is_exported() {
    let mut wanted = BTreeSet::new();
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/livegate.json")).unwrap())
            .unwrap();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            metric_names(t["expr"].as_str().unwrap_or(""), &mut wanted);
        }
    }
    let rules = std::fs::read_to_string(deploy("prometheus/livegate-rules.yml")).unwrap();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if line.contains("expr:") || line.starts_with("          ") {
            metric_names(line, &mut wanted);
        }
    }
    assert!(wanted.len() >= 15, "{wanted:?}");

    // A running edge with every part that owns a metric: a domain with remote
    // auth and the cache, an RTMP listener, metrics and the admin API.
    let auth = support::auth::AuthServer::start().await;
    let metrics = free_port();
    let rtmp = free_port();
    let domains = format!(
        "  - name: play.example.com\n    origin: {{ peers: [\"127.0.0.1:9\"] }}\n    \
         remote_auth: {{ url: \"http://{}/check\" }}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [dashKey2026] }}\n",
        auth.addr
    );
    let top = format!(
        "metrics: {{ listen: \"127.0.0.1:{metrics}\" }}\nrtmp: {{ listen: [\"127.0.0.1:{rtmp}\"] }}\n"
    );
    let mut lg = Livegate::start_top(&domains, &top);
    lg.wait_port(metrics);
    let scrape = support::scrape(metrics).await;
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|m| !exported.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "read by deploy/ but not exported: {missing:?}\nexported: {exported:?}"
    );
}

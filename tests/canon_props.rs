//! Canonicalisation as a fuzz target: random request targets, built from the
//! pieces attackers combine (dot segments, `;`, encoded separators, case, absolute
//! form), go through the same steps as a request. The invariant: either 400, or one
//! canonical target that parses back to itself, that routing, the rule table and
//! the forwarded request all agree on — and that no reading a common origin might
//! make of it reaches another app's rule.

use livegate::auth::{Entry, Table};
use livegate::canon::{canonical, settle};
use livegate::config::{Config, Problems};
use livegate::route::{Route, Scene};
use pingora_http::RequestHeader;
use proptest::prelude::*;

/// `live` signed, everything else public: the split a bypass aims at.
fn table() -> Table {
    let yaml =
        "domains:\n  - name: h.test\n    origin: { peers: [\"127.0.0.1:1\"] }\n    auth:\n      \
                - { scene: pull, app: live, scheme: tencent, keys: [k1] }\n      \
                - { scene: pull, app: \"*\", enabled: false }\n";
    let config = Config::parse(yaml).unwrap();
    let mut problems = Problems::default();
    let t = Table::build(&config.domains, &mut problems, &mut Vec::new());
    assert!(problems.is_empty());
    t
}

fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "live",
        "LIVE",
        "Live",
        "pub",
        "a.flv",
        "cam.m3u8",
        "..",
        ".",
        "",
        ";",
        "..;",
        "live;",
        "live;x=1",
        "live.",
        "live%20",
        "live%3b",
        "live%3B",
        "%2e%2e",
        "%2E",
        "%6Cive",
        "a%2Fb",
        "a%5cb",
        "%00",
        "%",
        "%zz",
        "a b",
        "a\\b",
        "x.",
        "%41",
        "~",
        "a%20b",
        "%E4%B8%AD",
        "?",
        "#f",
        "@",
    ])
}

fn target() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "/",
            "",
            "http://h.test/",
            "HTTP://H.TEST:80/",
            "http://o.test/",
            "*",
        ]),
        prop::collection::vec(piece(), 0..6),
        prop::option::of("[a-z=&%0-9]{0,12}"),
    )
        .prop_map(|(lead, pieces, query)| {
            let mut t = format!("{lead}{}", pieces.join("/"));
            if let Some(q) = query {
                t.push('?');
                t.push_str(&q);
            }
            t
        })
}

/// Readings a common origin may make of a path: percent-decoded, case folded,
/// `;parameters` dropped, trailing dots and spaces trimmed, dot segments resolved.
fn origin_reading(path: &str) -> String {
    let decoded: Vec<u8> = percent_decode(path.as_bytes());
    let text = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
    let mut out: Vec<String> = Vec::new();
    for seg in text.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        let seg = seg.trim_end_matches(['.', ' ']);
        match seg {
            "" => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_owned()),
        }
    }
    format!("/{}", out.join("/"))
}

fn percent_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(&b[i + 1..i + 3]), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn signed(table: &Table, path: &str) -> bool {
    let (_, d) = table.domain("h.test").unwrap();
    matches!(d.entry(Scene::Pull, path), Ok(Entry::Rule(_)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]
    #[test]
    fn either_400_or_one_target_everything_agrees_on(raw in target()) {
        let table = table();
        // What the proxy sees: Pingora's parse of the head (a head it cannot
        // parse is refused before livegate runs).
        let Ok(mut req) = RequestHeader::build("GET", raw.as_bytes(), None) else {
            return Ok(());
        };
        req.insert_header("host", "h.test").unwrap();
        let sent = req.raw_path().to_vec();
        let Ok(c) = canonical(&sent, Some("h.test")) else {
            // Refused: the proxy answers 400 and forwards nothing.
            prop_assert!(settle(&mut req).is_err());
            return Ok(());
        };
        // It parses back to itself.
        let again = canonical(c.target.as_bytes(), Some("h.test")).unwrap();
        prop_assert_eq!(again.target, c.target);
        prop_assert!(!again.rewritten);
        prop_assert!(c.path.starts_with('/'));
        // The forwarded request carries exactly it.
        settle(&mut req).unwrap();
        prop_assert_eq!(req.raw_path(), c.target.as_bytes());
        prop_assert_eq!(req.uri.path(), c.path);
        prop_assert_eq!(req.uri.query().unwrap_or(""), c.query);
        // Routing and the rule table read the same app, whatever its case…
        let app = Route::of_path(c.path).app;
        prop_assert_eq!(signed(&table, c.path), app.eq_ignore_ascii_case("live"));
        // …and no reading an origin may make of the path lands in `live` unsigned.
        let reading = origin_reading(c.path);
        if Route::of_path(&reading).app == "live" {
            prop_assert!(signed(&table, c.path), "{} is read as {} by an origin", c.path, reading);
        }
    }
}

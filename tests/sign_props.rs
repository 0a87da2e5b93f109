//! Properties of every scheme: what is signed verifies; any one-character change
//! to the signature, the time or a signed path component does not; no input panics.

use livegate::access::Seen;
use livegate::check::check_url;
use livegate::config::Config;
use livegate::route::Scene;
use livegate::sign::{Key, Layout, Request, Rule, Scheme};
use livegate::state::live::{snapshot, Snapshot};
use livegate::state::Saved;
use proptest::prelude::*;

const SCHEMES: [Scheme; 8] = Scheme::URL_SCHEMES;

fn rule(scheme: Scheme, key: &str) -> Rule {
    let layout = match scheme {
        Scheme::VolcMd5Custom => Some(
            Layout::volc_fields(&["Domain", "AppName", "StreamName", "key", "volcTime"]).unwrap(),
        ),
        Scheme::SecureLink => Some(Layout::template("{expires}{uri}{remote_addr} {key}").unwrap()),
        _ => None,
    };
    let r = Rule::new(scheme, vec![Key::new(key).unwrap()], layout).unwrap();
    if scheme.issue_time() {
        r.with_valid_duration(1800)
    } else {
        r
    }
}

fn req<'a>(path: &'a str, query: &'a str) -> Request<'a> {
    Request {
        host: "h.example.com",
        path,
        query,
        remote_addr: "192.0.2.1",
        ..Request::default()
    }
}

/// Minute-aligned, so that type B's minute precision expires exactly there too.
fn expiry() -> impl Strategy<Value = i64> {
    (1_000_000u32..60_000_000).prop_map(|m| i64::from(m) * 60)
}

/// Replaces byte `i` of `s` by another character of the same class, so the result
/// stays syntactically plausible and only the value changes.
fn tweak(s: &str, i: usize) -> String {
    let mut b = s.as_bytes().to_vec();
    b[i] = match b[i] {
        b'0' => b'1',
        b'9' | b'f' | b'F' | b'z' | b'Z' => b'2',
        c if c.is_ascii_alphanumeric() => c + 1,
        _ => b'a',
    };
    String::from_utf8(b).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_urls_verify_until_expiry(
        s in 0..SCHEMES.len(),
        key in "[A-Za-z0-9]{1,100}",
        app in "[A-Za-z0-9_.-]{1,30}",
        stream in "[A-Za-z0-9_-]{1,40}",
        ext in "(flv|m3u8|ts)",
        extra in "(|a=1|x=y&z=%20)",
        expire in expiry(),
    ) {
        let r = rule(SCHEMES[s], &key);
        let path = format!("/{app}/{stream}.{ext}");
        let signed = r.sign(&req(&path, &extra), expire).unwrap();
        let (p, q) = signed.split_once('?').unwrap_or((&signed, ""));
        let pass = r.verify(&req(p, q), expire);
        prop_assert!(pass.is_ok(), "{signed}: {pass:?}");
        prop_assert_eq!(pass.unwrap().path, path.as_str());
        prop_assert!(r.verify(&req(p, q), expire + 1).is_err());
    }

    #[test]
    fn any_one_character_changed_fails(
        s in 0..SCHEMES.len(),
        key in "[A-Za-z0-9]{1,40}",
        app in "[a-z]{1,10}",
        stream in "[a-z0-9]{1,20}",
        expire in expiry(),
        pick in any::<prop::sample::Index>(),
    ) {
        let r = rule(SCHEMES[s], &key);
        let path = format!("/{app}/{stream}.flv");
        let signed = r.sign(&req(&path, ""), expire).unwrap();
        // Every alphanumeric byte of the signed URL is signature, time or a signed
        // path component (the app is unsigned only for Tencent, which signs the
        // stream alone; the extension only for Tencent and Volcengine).
        let unsigned_app = matches!(SCHEMES[s], Scheme::Tencent);
        let unsigned_ext = matches!(SCHEMES[s], Scheme::Tencent | Scheme::VolcMd5 | Scheme::VolcMd5Custom);
        let app_at = signed.find(&path).unwrap() + 1;
        let ext_at = signed.find(&path).unwrap() + path.len() - 3;
        let unsigned = |i: usize| {
            (unsigned_app && (app_at..app_at + app.len()).contains(&i))
                || (unsigned_ext && (ext_at..ext_at + 3).contains(&i))
                || is_param_name(&signed, i)
        };
        let positions: Vec<usize> = signed
            .bytes()
            .enumerate()
            .filter(|&(i, b)| b.is_ascii_alphanumeric() && !unsigned(i))
            .map(|(i, _)| i)
            .collect();
        let i = positions[pick.index(positions.len())];
        let changed = tweak(&signed, i);
        let (p, q) = changed.split_once('?').unwrap_or((&changed, ""));
        prop_assert!(r.verify(&req(p, q), expire - 1000).is_err(), "{signed} -> {changed} verified");
    }

    #[test]
    fn arbitrary_requests_never_panic(
        s in 0..SCHEMES.len(),
        path in any::<String>(),
        query in any::<String>(),
        now in any::<i64>(),
    ) {
        let _ = rule(SCHEMES[s], "k").verify(&req(&path, &query), now);
    }

    #[test]
    fn arbitrary_bytes_as_url_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), now in any::<i64>()) {
        let url = String::from_utf8_lossy(&bytes);
        let _ = check_url(table(), &url, Scene::Pull, &Seen::default(), now);
        let _ = check_url(table(), &format!("http://a.com/live/{url}"), Scene::Push, &Seen::default(), now);
        let _ = check_url(table(), &format!("http://a.com/{url}/x.flv?{url}"), Scene::Pull, &Seen::default(), now);
    }
}

/// Whether byte `i` belongs to a query parameter name (left of `=`), which the
/// signature does not cover by design: renaming it makes the parameter absent.
fn is_param_name(url: &str, i: usize) -> bool {
    let Some(qs) = url.find('?') else {
        return false;
    };
    if i < qs {
        return false;
    }
    let start = url[..i].rfind(['?', '&']).unwrap_or(qs);
    !url[start..=i].contains('=')
}

fn table() -> &'static Snapshot {
    static T: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let yaml = "domains:\n  - name: a.com\n    origin: { peers: [\"127.0.0.1:9\"] }\n    auth:\n      \
                    - { scene: pull, scheme: type_c, keys: [k], valid_duration: 10 }\n      \
                    - { scene: push, app: live, scheme: secure_link, keys: [k] }\n";
        let c = Config::parse(yaml).unwrap();
        snapshot(&c.domains, &Saved::default()).unwrap()
    })
}

#[test]
fn huge_query_and_odd_bytes_get_verdicts() {
    let t = table();
    let big = format!("http://a.com/live/a.flv?{}", "x=1&".repeat(2048));
    assert!(check_url(t, &big, Scene::Pull, &Seen::default(), 0)
        .unwrap()
        .is_err());
    for url in [
        "http://a.com/live/a.flv?KEY1=%zz&KEY2=1",
        "http://a.com/live/a.flv?KEY1=%FF%FE&KEY2=1",
        "http://a.com/live/a.flv?KEY1=&KEY2=",
        "http://a.com/live/a.flv?KEY1=a&KEY1=a&KEY2=1",
        "http://a.com/00000000000000000000000000000000/ffffffffffffffffff/a.flv",
        "http://a.com/00000000000000000000000000000000/-1/a.flv",
    ] {
        let v = check_url(t, url, Scene::Pull, &Seen::default(), 0).unwrap();
        assert!(v.is_err(), "{url}");
    }
}

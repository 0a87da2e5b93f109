use super::*;
use crate::config::Config;

const ORIGIN: &str = "origin: { peers: [\"127.0.0.1:1\"] }";

fn table(yaml: &str) -> Result<Table, Vec<String>> {
    let config = Config::parse(yaml).map_err(|e| vec![e])?;
    let mut problems = Problems::default();
    let t = Table::build(&config.domains, &mut problems, &mut Vec::new());
    if problems.is_empty() {
        Ok(t)
    } else {
        Err(problems.0.iter().map(|p| p.to_string()).collect())
    }
}

fn one_domain(name: &str, auth: &str) -> String {
    format!("domains:\n  - name: \"{name}\"\n    {ORIGIN}\n    auth:\n{auth}")
}

#[test]
fn host_matching_exact_then_longest_wildcard_then_any() {
    let yaml = format!(
        "domains:\n  - {{ name: \"*\", {ORIGIN} }}\n  - {{ name: \"*.example.com\", {ORIGIN} }}\n  \
         - {{ name: \"*.live.example.com\", {ORIGIN} }}\n  - {{ name: play.example.com, {ORIGIN} }}\n"
    );
    let t = table(&yaml).unwrap();
    let idx = |h: &str| t.domain(h).map(|(i, _)| i);
    assert_eq!(idx("play.example.com"), Some(3));
    assert_eq!(idx("PLAY.Example.com"), Some(3));
    assert_eq!(idx("a.live.example.com"), Some(2));
    assert_eq!(idx("a.example.com"), Some(1));
    assert_eq!(idx("example.com"), Some(0));
    assert_eq!(idx("other.org"), Some(0));
    let t = table(&format!(
        "domains:\n  - {{ name: play.example.com, {ORIGIN} }}\n"
    ))
    .unwrap();
    assert!(t.domain("other.org").is_none());
}

#[test]
fn most_specific_app_wins_and_missing_scene_is_no_rule() {
    let t = table(&one_domain(
        "d",
        "      - { scene: pull, app: \"*\", scheme: tencent, keys: [star] }\n      \
         - { scene: pull, app: live, scheme: tencent, keys: [live] }\n",
    ))
    .unwrap();
    let (_, d) = t.domain("d").unwrap();
    let key_of = |path: &str| match d.entry(Scene::Pull, path).unwrap() {
        Entry::Rule(r) => r.keys()[0].masked(),
        Entry::Disabled | Entry::Token(_) => "off".into(),
    };
    assert_eq!(key_of("/live/a.flv"), "l*****e");
    assert_eq!(key_of("/LIVE/a.flv"), "l*****e");
    assert_eq!(key_of("/Live/a.flv"), "l*****e");
    assert_eq!(key_of("/other/a.flv"), "s*****r");
    assert_eq!(
        d.entry(Scene::Push, "/live/a.flv").unwrap_err().reason,
        Reason::NoRule
    );
}

#[test]
fn disabled_scene_passes_without_signature() {
    let t = table(&one_domain(
        "d",
        "      - { scene: pull, enabled: false }\n",
    ))
    .unwrap();
    let (_, d) = t.domain("d").unwrap();
    let req = Request {
        path: "/live/a.flv",
        ..Request::default()
    };
    assert!(d.verify(Scene::Pull, &req, 0).is_ok());
    assert_eq!(
        d.verify(Scene::Push, &req, 0).unwrap_err().reason,
        Reason::NoRule
    );
}

#[test]
fn prefix_rule_is_found_by_the_app_behind_the_prefix() {
    let t = table(&one_domain(
        "d",
        "      - { scene: pull, app: live, scheme: type_b, keys: [k1], valid_duration: 1800 }\n",
    ))
    .unwrap();
    let (_, d) = t.domain("d").unwrap();
    let rule = match d.entry(Scene::Pull, "/live/x.flv").unwrap() {
        Entry::Rule(r) => r.clone(),
        Entry::Disabled | Entry::Token(_) => panic!("rule expected"),
    };
    let signed = rule
        .sign(
            &Request {
                path: "/live/x.flv",
                ..Request::default()
            },
            1_700_000_000,
        )
        .unwrap();
    let pass = d
        .verify(
            Scene::Pull,
            &Request {
                path: &signed,
                ..Request::default()
            },
            1_700_000_000,
        )
        .unwrap();
    assert_eq!(pass.path, "/live/x.flv");
}

#[test]
fn reports_every_problem_with_its_path() {
    let errs = table(&one_domain(
        "d",
        "      - { scene: pull, app: \"bad app\", scheme: type_a, keys: [\"\", \"k-1\"] }\n      \
         - { scene: pull, app: live, scheme: tencent, keys: [ok], time_format: hex, template: \"{key}\" }\n      \
         - { scene: push, scheme: type_d, keys: [k], valid_duration: 9999999 }\n      \
         - { scene: push, scheme: secure_link, keys: [k], template: \"{expires}{path}{key}\" }\n      \
         - { scene: push, app: a, scheme: volc_md5_custom, keys: [k] }\n      \
         - { scene: push, app: b, scheme: type_b, keys: [k], valid_duration: 1, param_names: { sign: s } }\n",
    ))
    .unwrap_err();
    let all = errs.join("\n");
    for expected in [
        "domains[0].auth[0].app: \"bad app\" is not",
        "domains[0].auth[0].keys[0]: the key is empty",
        "domains[0].auth[0].keys[1]: character 2 of the key is not one of A-Z, a-z, 0-9",
        "domains[0].auth[0].valid_duration: type_a URLs carry their issue time",
        "domains[0].auth[1].template: only secure_link uses template",
        "domains[0].auth[2].valid_duration: 9999999 is outside 0..=2592000",
        "domains[0].auth[3].template: unknown placeholder {path}",
        "domains[0].auth[4].encrypt_fields: volc_md5_custom needs encrypt_fields",
        "domains[0].auth[5].param_names.sign: type_b has no sign query parameter",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert!(!all.contains("k-1"), "a key leaked into a message:\n{all}");
}

#[test]
fn too_many_keys_duplicates_and_unknown_keys() {
    let keys: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    let errs = table(&one_domain(
        "d",
        &format!(
            "      - {{ scene: pull, scheme: tencent, keys: [{}] }}\n",
            keys.join(",")
        ),
    ))
    .unwrap_err();
    assert!(errs[0].contains("101 keys; at most 100"), "{errs:?}");

    let errs = table(&one_domain(
        "d",
        "      - { scene: pull, scheme: tencent, keys: [a] }\n      - { scene: pull, app: \"*\", enabled: false }\n",
    ))
    .unwrap_err();
    assert!(errs[0].contains("second rule for scene pull"), "{errs:?}");

    let errs = table(&one_domain(
        "d",
        "      - { scene: pull, scheme: tencent, keys: [a], valid_duraton: 5 }\n",
    ))
    .unwrap_err();
    assert!(
        errs[0].contains("unknown field `valid_duraton`"),
        "{errs:?}"
    );
    let errs = table(&one_domain(
        "d",
        "      - { scene: pull, scheme: md5, keys: [a] }\n",
    ))
    .unwrap_err();
    assert!(errs[0].contains("unknown variant `md5`"), "{errs:?}");
}

#[test]
fn debug_printing_a_config_or_table_never_shows_keys() {
    let yaml = one_domain(
        "d",
        "      - { scene: pull, scheme: tencent, keys: [veryPrivateKey9] }\n",
    );
    let config = Config::parse(&yaml).unwrap();
    let shown = format!("{config:?} {:?}", table(&yaml).unwrap());
    assert!(!shown.contains("veryPrivateKey9"), "{shown}");
    assert!(shown.contains("redacted"));
}

/// A `jwt` rule's `jwks_file` is read when the table is built (each reload),
/// and its keys verify beside the inline ones; a file that is not JWKS is named.
#[test]
fn a_jwks_file_is_read_with_the_rules() {
    use crate::sign::cdn::fixtures::{RSA_PRIVATE, RSA_PUBLIC};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPublicKey::from_public_key_pem(RSA_PUBLIC).unwrap();
    let b64 = |n: &rsa::BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
    let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig",
        "alg": "RS256", "n": b64(key.n()), "e": b64(key.e())}]});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let rule = |f: &std::path::Path| {
        format!(
            "      - {{ scene: pull, scheme: jwt, jwks_file: \"{}\", claims: {{ stream: stream }} }}\n",
            f.display()
        )
    };
    let t = table(&one_domain("d", &rule(&file))).unwrap();
    let (_, d) = t.domain("d").unwrap();
    let claims = serde_json::json!({"exp": 2_000_000_000, "stream": "cam1"});
    let token = crate::sign::cdn::jwt::sign_private(RSA_PRIVATE, &claims).unwrap();
    let query = format!("token={token}");
    let req = |path| Request {
        host: "d",
        path,
        query: &query,
        ..Request::default()
    };
    assert!(d
        .verify(Scene::Pull, &req("/live/cam1.m3u8"), 1_900_000_000)
        .is_ok());
    let f = d
        .verify(Scene::Pull, &req("/live/cam2.m3u8"), 1_900_000_000)
        .unwrap_err();
    assert_eq!(f.reason, Reason::OutOfScope);
    std::fs::write(&file, "not json").unwrap();
    let err = table(&one_domain("d", &rule(&file))).unwrap_err();
    assert!(
        err[0].contains("jwks_file") && err[0].contains("not a JWKS document"),
        "{err:?}"
    );
}

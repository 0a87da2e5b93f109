//! Building signing rules from configuration, with every problem reported at its
//! key path.

use std::sync::Arc;

use crate::config::{HmacAlgorithm, Problems, RuleConfig};
use crate::sign::cdn::cloudfront::{self, CloudFront};
use crate::sign::cdn::edgeauth::{self, Algorithm, EdgeAuth};
use crate::sign::cdn::jwt::{self, Jwt, JwtKey, Requirements};
use crate::sign::cdn::rule::{Places, TokenRule, Verifier};
use crate::sign::{Carrier, Key, Layout, Rule, Scheme, MAX_KEYS};

/// Longest `valid_duration` accepted: 30 days, the providers' maximum.
pub const MAX_VALID_DURATION: i64 = 2_592_000;
/// Longest `skew` accepted: a day of clock drift is already a broken clock.
pub const MAX_SKEW: i64 = 86_400;

/// A rule slot: a signing rule, a CDN token rule, or an explicit
/// `enabled: false` that lets the scene through unauthenticated.
#[derive(Debug, Clone)]
pub enum Entry {
    Disabled,
    Rule(Rule),
    Token(Arc<TokenRule>),
}

impl Entry {
    /// The query parameters, cookies and headers the entry reads its
    /// signature or token from: stripped before the origin, hidden in logs.
    pub fn auth_names(&self) -> Vec<&str> {
        match self {
            Entry::Disabled => Vec::new(),
            Entry::Rule(r) => r.auth_params().to_vec(),
            Entry::Token(t) => t.names(),
        }
    }

    /// Whether the entry asks anything of a request.
    pub fn signs(&self) -> bool {
        !matches!(self, Entry::Disabled)
    }
}

/// Whether an app name is `*` or 1–30 of `[A-Za-z0-9_.-]`.
pub fn valid_app(app: &str) -> bool {
    app == "*"
        || ((1..=30).contains(&app.len())
            && app
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)))
}

/// Whether a query parameter name is 1–64 of `[A-Za-z0-9_.-]`.
pub fn valid_param_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Builds the entry for one rule, or records why it cannot be built. `warnings`
/// receives what is legal but probably unintended.
pub fn build(
    rc: &RuleConfig,
    at: &str,
    problems: &mut Problems,
    warnings: &mut Vec<String>,
) -> Option<Entry> {
    let before = problems.0.len();
    if !valid_app(&rc.app) {
        problems.add(
            format!("{at}.app"),
            format!("{:?} is not \"*\" or 1-30 of A-Z a-z 0-9 _ . -", rc.app),
        );
    }
    let Some(scheme) = rc.scheme else {
        if rc.enabled {
            problems.add(format!("{at}.scheme"), "an enabled rule needs a scheme");
        }
        return (problems.0.len() == before).then_some(Entry::Disabled);
    };

    if scheme.is_token() {
        check_token_options(rc, scheme, at, problems);
        let token = token_rule(rc, scheme, at, problems);
        return match (problems.0.len() == before, rc.enabled) {
            (false, _) => None,
            (true, false) => Some(Entry::Disabled),
            (true, true) => match token {
                Some(t) => Some(Entry::Token(Arc::new(t))),
                None => {
                    problems.add(format!("{at}.keys"), "the rule has no usable key");
                    None
                }
            },
        };
    }
    check_hash_options(rc, scheme, at, problems);
    let keys = keys(rc, at, problems);
    check_ranges(rc, scheme, at, problems);
    let layout = layout(rc, scheme, at, problems, warnings);
    check_options(rc, scheme, at, problems);

    if problems.0.len() != before {
        return None;
    }
    if !rc.enabled {
        return Some(Entry::Disabled);
    }
    let rule = match Rule::new(scheme, keys, layout) {
        Ok(r) => r,
        Err(e) => {
            problems.add(at, e);
            return None;
        }
    };
    let names = rc.param_names.as_ref();
    let mut rule = rule
        .with_valid_duration(rc.valid_duration.unwrap_or(0))
        .with_skew(rc.skew)
        .with_param_names(
            names.and_then(|n| n.sign.as_deref()),
            names.and_then(|n| n.time.as_deref()),
        );
    if let Some(f) = rc.time_format {
        rule = rule.with_time_format(f);
    }
    Some(Entry::Rule(rule))
}

/// Whether the number of keys is within bounds (`none_ok`: another source,
/// a JWKS file, may supply them).
fn key_count(rc: &RuleConfig, none_ok: bool, at: &str, problems: &mut Problems) {
    if rc.keys.is_empty() && rc.enabled && !none_ok {
        problems.add(format!("{at}.keys"), "a rule needs at least one key");
    }
    if rc.keys.len() > MAX_KEYS {
        problems.add(
            format!("{at}.keys"),
            format!("{} keys; at most {MAX_KEYS} are allowed", rc.keys.len()),
        );
    }
}

fn keys(rc: &RuleConfig, at: &str, problems: &mut Problems) -> Vec<Key> {
    key_count(rc, false, at, problems);
    rc.keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| {
            Key::new(&k.0)
                .map_err(|e| problems.add(format!("{at}.keys[{i}]"), e))
                .ok()
        })
        .collect()
}

fn check_ranges(rc: &RuleConfig, scheme: Scheme, at: &str, problems: &mut Problems) {
    match rc.valid_duration {
        None if scheme.issue_time() => problems.add(
            format!("{at}.valid_duration"),
            format!(
                "{} URLs carry their issue time: valid_duration (seconds, e.g. 1800) is required",
                scheme.name()
            ),
        ),
        Some(d) if !(0..=MAX_VALID_DURATION).contains(&d) => problems.add(
            format!("{at}.valid_duration"),
            format!("{d} is outside 0..={MAX_VALID_DURATION}"),
        ),
        _ => {}
    }
    if !(0..=MAX_SKEW).contains(&rc.skew) {
        problems.add(
            format!("{at}.skew"),
            format!("{} is outside 0..={MAX_SKEW}", rc.skew),
        );
    }
}

fn layout(
    rc: &RuleConfig,
    scheme: Scheme,
    at: &str,
    problems: &mut Problems,
    warnings: &mut Vec<String>,
) -> Option<Layout> {
    match (scheme, &rc.encrypt_fields, &rc.template) {
        (Scheme::VolcMd5Custom, Some(fields), _) => Layout::volc_fields(fields)
            .map_err(|e| problems.add(format!("{at}.encrypt_fields"), e))
            .ok(),
        (Scheme::VolcMd5Custom, None, _) => {
            problems.add(
                format!("{at}.encrypt_fields"),
                "volc_md5_custom needs encrypt_fields",
            );
            None
        }
        (Scheme::SecureLink, _, t) => {
            let t = t.as_deref().unwrap_or("{expires}{uri} {key}");
            let layout = Layout::template(t)
                .map_err(|e| problems.add(format!("{at}.template"), e))
                .ok()?;
            if !layout.signs_time() {
                warnings.push(format!(
                    "{at}.template has no {{expires}}: its URLs never expire"
                ));
            }
            Some(layout)
        }
        _ => None,
    }
}

/// The options only token schemes take, refused on a hash scheme's rule.
fn check_hash_options(rc: &RuleConfig, scheme: Scheme, at: &str, problems: &mut Problems) {
    let token_only = [
        ("token", rc.token.is_some()),
        ("algorithm", rc.algorithm.is_some()),
        ("salt", rc.salt.is_some()),
        ("escape_early", rc.escape_early),
        ("audience", rc.audience.is_some()),
        ("issuer", rc.issuer.is_some()),
        ("claims", rc.claims.is_some()),
        ("jwks_file", rc.jwks_file.is_some()),
        ("private_key_file", rc.private_key_file.is_some()),
    ];
    for (name, _) in token_only.iter().filter(|(_, set)| *set) {
        problems.add(
            format!("{at}.{name}"),
            format!(
                "{} does not take {name} (akamai_token, cloudfront and jwt options)",
                scheme.name()
            ),
        );
    }
}

/// The options of hash schemes and of other token schemes, refused on a
/// token scheme's rule.
fn check_token_options(rc: &RuleConfig, scheme: Scheme, at: &str, problems: &mut Problems) {
    let akamai = scheme == Scheme::AkamaiToken;
    let jwt = scheme == Scheme::Jwt;
    let not_taken = [
        ("valid_duration", rc.valid_duration.is_some()),
        ("param_names", rc.param_names.is_some()),
        ("time_format", rc.time_format.is_some()),
        ("encrypt_fields", rc.encrypt_fields.is_some()),
        ("template", rc.template.is_some()),
        ("token", rc.token.is_some() && !(akamai || jwt)),
        ("algorithm", rc.algorithm.is_some() && !akamai),
        ("salt", rc.salt.is_some() && !akamai),
        ("escape_early", rc.escape_early && !akamai),
        ("audience", rc.audience.is_some() && !jwt),
        ("issuer", rc.issuer.is_some() && !jwt),
        ("claims", rc.claims.is_some() && !jwt),
        ("jwks_file", rc.jwks_file.is_some() && !jwt),
        ("private_key_file", rc.private_key_file.is_some() && akamai),
    ];
    for (name, _) in not_taken.iter().filter(|(_, set)| *set) {
        let why = match *name {
            "valid_duration" | "time_format" => "its tokens carry their own expiry",
            "param_names" => "name the token's places with token: {query, cookie, header}",
            "token" => "CloudFront's parameter and cookie names are fixed",
            _ => "it is another scheme's option",
        };
        problems.add(
            format!("{at}.{name}"),
            format!("{} does not take {name}: {why}", scheme.name()),
        );
    }
}

/// Where a token rule looks: the scheme's defaults, with the configured names
/// (`""`: not there).
fn places(rc: &RuleConfig, scheme: Scheme, at: &str, problems: &mut Problems) -> Places {
    let (query, cookie, header) = match scheme {
        Scheme::AkamaiToken => (Some("hdnts"), Some("__hdnea__"), None),
        Scheme::Jwt => (Some("token"), None, Some("authorization")),
        _ => (None, None, None),
    };
    let given = rc.token.clone().unwrap_or_default();
    let pick = |given: Option<String>, default: Option<&str>| match given {
        Some(g) if g.is_empty() => None,
        Some(g) => Some(g),
        None => default.map(str::to_owned),
    };
    let query = pick(given.query, query);
    let cookie = pick(given.cookie, cookie);
    for (what, name) in [("query", &query), ("cookie", &cookie)] {
        if let Some(n) = name.as_deref().filter(|n| !valid_param_name(n)) {
            problems.add(
                format!("{at}.token.{what}"),
                format!("{n:?} is not 1-64 of A-Z a-z 0-9 _ . -"),
            );
        }
    }
    let header = pick(given.header, header).and_then(|h| {
        http::HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| {
                problems.add(
                    format!("{at}.token.header"),
                    format!("{h:?} is not a header name"),
                )
            })
            .ok()
    });
    if scheme != Scheme::Cloudfront && query.is_none() && cookie.is_none() && header.is_none() {
        problems.add(
            format!("{at}.token"),
            "the token must be read from somewhere",
        );
    }
    Places {
        query: query.map(Into::into),
        cookie: cookie.map(Into::into),
        header,
    }
}

/// A token scheme's verifier and rule, or what is wrong with its keys.
fn token_rule(
    rc: &RuleConfig,
    scheme: Scheme,
    at: &str,
    problems: &mut Problems,
) -> Option<TokenRule> {
    if !(0..=MAX_SKEW).contains(&rc.skew) {
        problems.add(
            format!("{at}.skew"),
            format!("{} is outside 0..={MAX_SKEW}", rc.skew),
        );
    }
    key_count(rc, rc.jwks_file.is_some(), at, problems);
    let places = places(rc, scheme, at, problems);
    let key_at = |i: usize| format!("{at}.keys[{i}]");
    let texts: Vec<&str> = rc.keys.iter().map(|k| k.0.as_str()).collect();
    let mut secret = None;
    let verifier = match scheme {
        Scheme::AkamaiToken => {
            for (i, k) in texts.iter().enumerate() {
                if let Err(e) = edgeauth::key(k) {
                    problems.add(key_at(i), e);
                }
            }
            let alg = match rc.algorithm {
                None | Some(HmacAlgorithm::Sha256) => Algorithm::Sha256,
                Some(HmacAlgorithm::Sha1) => Algorithm::Sha1,
                Some(HmacAlgorithm::Md5) => Algorithm::Md5,
            };
            let mut e = EdgeAuth::new(&texts, alg).ok()?;
            e.salt = rc.salt.as_ref().map(|s| s.0.clone());
            e.escape_early = rc.escape_early;
            Verifier::EdgeAuth(e)
        }
        Scheme::Cloudfront => {
            let mut pairs = Vec::new();
            for (i, k) in texts.iter().enumerate() {
                match k.split_once(':') {
                    Some((id, pem))
                        if (1..=64).contains(&id.len())
                            && id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                    {
                        match cloudfront::public_key(pem) {
                            Ok(_) => pairs.push((id, pem)),
                            Err(e) => problems.add(key_at(i), e),
                        }
                    }
                    _ => problems.add(
                        key_at(i),
                        "a CloudFront key is \"<key-pair or public-key id>:<PEM public key>\"",
                    ),
                }
            }
            Verifier::CloudFront(Box::new(CloudFront::new(&pairs).ok()?))
        }
        _ => {
            let mut keys: Vec<JwtKey> = texts.iter().map(|k| JwtKey::read(k)).collect();
            if let Some(JwtKey::Secret(s)) = keys.first() {
                secret = Some(s.clone());
            }
            if let Some(f) = &rc.jwks_file {
                match std::fs::read_to_string(f)
                    .map_err(|e| format!("{}: {e}", f.display()))
                    .and_then(|t| jwt::jwks(&t).map_err(|e| e.to_string()))
                {
                    Ok(more) => keys.extend(more),
                    Err(e) => problems.add(format!("{at}.jwks_file"), e),
                }
            }
            for (i, k) in keys.iter().enumerate() {
                if let Err(e) = jwt::decoding_key(k) {
                    let at = match i < texts.len() {
                        true => key_at(i),
                        false => format!("{at}.jwks_file"),
                    };
                    problems.add(at, e);
                }
            }
            let claims = rc.claims.clone().unwrap_or_default();
            let need = Requirements {
                audience: rc.audience.clone(),
                issuer: rc.issuer.clone(),
                stream_claim: claims.stream,
                path_claim: claims.path,
            };
            Verifier::Jwt(Jwt::new(&keys, need).ok()?)
        }
    };
    Some(
        TokenRule::new(scheme, verifier, places, rc.skew, secret.as_deref())
            .with_private_key_file(rc.private_key_file.clone()),
    )
}

fn check_options(rc: &RuleConfig, scheme: Scheme, at: &str, problems: &mut Problems) {
    if rc.encrypt_fields.is_some() && scheme != Scheme::VolcMd5Custom {
        problems.add(
            format!("{at}.encrypt_fields"),
            "only volc_md5_custom uses encrypt_fields",
        );
    }
    if rc.template.is_some() && scheme != Scheme::SecureLink {
        problems.add(format!("{at}.template"), "only secure_link uses template");
    }
    if rc.time_format.is_some() && !scheme.time_format_selectable() {
        problems.add(
            format!("{at}.time_format"),
            "only tencent and type_d let the rule choose time_format",
        );
    }
    let Some(names) = &rc.param_names else { return };
    let (time_ok, sign_ok) = match scheme.carrier() {
        Carrier::TimeSigPrefix => (false, false),
        Carrier::AuthKey => (false, true),
        _ => (true, true),
    };
    for (what, name, ok) in [
        ("sign", &names.sign, sign_ok),
        ("time", &names.time, time_ok),
    ] {
        let Some(name) = name else { continue };
        if !ok {
            problems.add(
                format!("{at}.param_names.{what}"),
                format!("{} has no {what} query parameter to rename", scheme.name()),
            );
        } else if !valid_param_name(name) {
            problems.add(
                format!("{at}.param_names.{what}"),
                format!("{name:?} is not 1-64 of A-Z a-z 0-9 _ . -"),
            );
        }
    }
    if names.sign.is_some() && names.sign == names.time {
        problems.add(
            format!("{at}.param_names"),
            "sign and time need different names",
        );
    }
}

//! Building signing rules from configuration, with every problem reported at its
//! key path.

use crate::config::{Problems, RuleConfig};
use crate::sign::{Carrier, Key, Layout, Rule, Scheme, MAX_KEYS};

/// Longest `valid_duration` accepted: 30 days, the providers' maximum.
pub const MAX_VALID_DURATION: i64 = 2_592_000;
/// Longest `skew` accepted: a day of clock drift is already a broken clock.
pub const MAX_SKEW: i64 = 86_400;

/// A rule slot: a signing rule, or an explicit `enabled: false` that lets the
/// scene through unauthenticated.
#[derive(Debug, Clone)]
pub enum Entry {
    Disabled,
    Rule(Rule),
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

fn keys(rc: &RuleConfig, at: &str, problems: &mut Problems) -> Vec<Key> {
    if rc.keys.is_empty() && rc.enabled {
        problems.add(format!("{at}.keys"), "a rule needs at least one key");
    }
    if rc.keys.len() > MAX_KEYS {
        problems.add(
            format!("{at}.keys"),
            format!("{} keys; at most {MAX_KEYS} are allowed", rc.keys.len()),
        );
    }
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

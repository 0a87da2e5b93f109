//! Keeping signatures, tokens and keys out of every log line.
//!
//! A refused or failed URL can still carry a valid signature, and so can a header
//! that names a URL (`Referer`). Every log line that names a request goes through
//! [`Redact`]:
//!
//! - a query parameter is hidden when its name is an auth parameter's as *any*
//!   parser could read it — percent- and `+`-decoded, case and punctuation ignored
//!   (`TXSECRET`, `tx+Secret`, `tx_secret` all hide) — or when its decoded value
//!   holds a secret-shaped token (see [`secret_shaped`]);
//! - a path segment of 32 hex digits is hidden (types B and C sign in the path);
//! - in free text (User-Agent, Host) secret-shaped tokens are hidden.
//!
//! Pure string work; it runs only when a line is written.

use std::borrow::Cow;

/// What a hidden value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// The shortest run of token characters treated as a secret: an MD5 in hex is 32,
/// in base64url 22.
const SECRET_RUN: usize = 20;

/// Hides auth values in URLs and text.
#[derive(Debug, Clone)]
pub struct Redact {
    /// Auth parameter names, normalised by [`loose`].
    names: Vec<String>,
}

/// A name as loosely as any parser might read it: form-decoded, ASCII letters and
/// digits only, lowercase.
fn loose(name: &str) -> String {
    let decoded: String = form_urlencoded::parse(name.as_bytes())
        .map(|(k, _)| k)
        .collect();
    decoded
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase() as char)
        .collect()
}

/// Whether text holds a run of at least [`SECRET_RUN`] base64url characters with
/// both a digit and a letter: the shape of a signature (hex or base64url MD5), of a
/// type A `auth_key` (`time-rand-uid-md5`) and of most bearer tokens.
pub fn secret_shaped(text: &str) -> bool {
    secret_runs(text).next().is_some()
}

/// The byte ranges of the secret-shaped runs in `text`.
fn secret_runs(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = text.as_bytes();
    let token = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < b.len() {
            let start = at + b[at..].iter().position(|&c| token(c))?;
            let end = b[start..]
                .iter()
                .position(|&c| !token(c))
                .map_or(b.len(), |i| start + i);
            at = end;
            let run = &b[start..end];
            if run.len() >= SECRET_RUN
                && run.iter().any(u8::is_ascii_digit)
                && run.iter().any(u8::is_ascii_alphabetic)
            {
                return Some((start, end));
            }
        }
        None
    })
}

impl Redact {
    /// Hides the values of `names` (each scheme's parameter names and every rename).
    pub fn new(names: Vec<String>) -> Redact {
        let mut names: Vec<String> = names.iter().map(|n| loose(n)).collect();
        names.retain(|n| !n.is_empty());
        names.sort();
        names.dedup();
        Redact { names }
    }

    /// A path and query with signature-shaped segments and auth values replaced.
    pub fn target(&self, path: &str, q: &str) -> String {
        let mut out = String::with_capacity(path.len() + q.len() + 1);
        for (i, seg) in path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            // Path parameters (`/live/a.flv;txSecret=…`) are judged like query pairs.
            for (j, piece) in seg.split(';').enumerate() {
                if j > 0 {
                    out.push(';');
                    let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
                    if self.hides(name, value) {
                        out.push_str(name);
                        out.push('=');
                        out.push_str(REDACTED);
                        continue;
                    }
                }
                let signature = piece.len() == 32 && piece.bytes().all(|b| b.is_ascii_hexdigit());
                out.push_str(if signature { REDACTED } else { piece });
            }
        }
        if q.is_empty() {
            return out;
        }
        out.push('?');
        for (i, pair) in q.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if self.hides(name, value) {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            } else {
                out.push_str(pair);
            }
        }
        out
    }

    /// A whole URL or request target as text (a `Referer`, a raw target): its path,
    /// query and fragment redacted like [`Redact::target`].
    pub fn url(&self, url: &str) -> String {
        let (rest, fragment) = match url.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (url, None),
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut out = self.target(path, query);
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(if secret_shaped(f) { REDACTED } else { f });
        }
        out
    }

    /// Free text (User-Agent, Host) with secret-shaped runs replaced.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut runs = secret_runs(text).peekable();
        if runs.peek().is_none() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut tail = 0;
        for (start, end) in runs {
            out.push_str(&text[tail..start]);
            out.push_str(REDACTED);
            tail = end;
        }
        out.push_str(&text[tail..]);
        Cow::Owned(out)
    }

    /// Whether a raw query pair's value is hidden.
    fn hides(&self, name: &str, value: &str) -> bool {
        if self.names.binary_search(&loose(name)).is_ok() {
            return true;
        }
        let decoded: String = form_urlencoded::parse(value.as_bytes())
            .flat_map(|(k, v)| [k, v])
            .collect();
        secret_shaped(&decoded) || secret_shaped(value)
    }
}

/// A parser's error message without the values it quotes: serde reports a
/// wrong-typed field as `invalid type: string "MyRealKey2027", expected a
/// sequence`, and the field may hold a key. What is left names the field (the
/// YAML path), the kind of value and what was expected.
pub fn parse_error(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = ["invalid type: ", "invalid value: ", "invalid length "]
        .iter()
        .filter_map(|m| rest.find(m).map(|i| (i, m.len())))
        .min()
    {
        let (i, len) = at;
        out.push_str(&rest[..i + len]);
        rest = &rest[i + len..];
        // The kind (`string`, `integer`, …), then a quoted value: "…" or `…`.
        let kind_end = rest.find([' ', ',']).unwrap_or(rest.len());
        out.push_str(&rest[..kind_end]);
        rest = &rest[kind_end..];
        let Some(after) = rest.strip_prefix(' ') else {
            continue;
        };
        let Some(close) = after.chars().next().filter(|c| *c == '"' || *c == '`') else {
            continue;
        };
        let mut escaped = false;
        let end = after[1..].char_indices().find_map(|(j, c)| {
            let done = c == close && !escaped;
            escaped = c == '\\' && !escaped;
            done.then_some(j + 2)
        });
        rest = &after[end.unwrap_or(after.len())..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_errors_name_the_field_never_the_value() {
        let yaml: Result<std::collections::HashMap<String, Vec<String>>, _> =
            serde_yaml::from_str("keys: MyRealKey2027\n");
        let m = parse_error(&yaml.unwrap_err().to_string());
        assert!(
            m.contains("keys") && m.contains("invalid type: string"),
            "{m}"
        );
        assert!(!m.contains("MyRealKey2027"), "{m}");
        let json: Result<Vec<i64>, _> = serde_json::from_str(r#"["My\"Real\"Key2027"]"#);
        let m = parse_error(&json.unwrap_err().to_string());
        assert!(!m.contains("Real"), "{m}");
        assert!(m.contains("expected i64"), "{m}");
        let json: Result<Vec<String>, _> = serde_json::from_str("[20272027]");
        let m = parse_error(&json.unwrap_err().to_string());
        assert!(!m.contains("20272027") && m.contains("integer"), "{m}");
        assert_eq!(parse_error("missing field `keys`"), "missing field `keys`");
    }

    #[test]
    fn hides_path_parameters_like_query_pairs() {
        let r = redact();
        let out =
            r.url("http://good.test/live/a.flv;txSecret=f85a2ab363fe4deaffef9754d79da6fe;x=1?a=2");
        assert_eq!(
            out,
            "http://good.test/live/a.flv;txSecret=<redacted>;x=1?a=2"
        );
        assert_eq!(r.url("/live/a;b.flv"), "/live/a;b.flv");
    }

    fn redact() -> Redact {
        Redact::new(vec![
            "txSecret".into(),
            "txTime".into(),
            "auth_key".into(),
            "md5".into(),
        ])
    }

    #[test]
    fn hides_near_miss_names_and_shaped_values() {
        let r = redact();
        let t = r.target(
            "/live/a.flv",
            "u=1&TXSECRET=abc&tx+Secret=abc&tx%53ecret=abc&tx_secret=abc&txTime=5C27&x=f85a2ab363fe4deaffef9754d79da6fe&md5=_e4Nc3iduzkWRm01TBBNYw",
        );
        assert_eq!(
            t,
            "/live/a.flv?u=1&TXSECRET=<redacted>&tx+Secret=<redacted>&tx%53ecret=<redacted>&tx_secret=<redacted>&txTime=<redacted>&x=<redacted>&md5=<redacted>"
        );
        assert_eq!(
            r.target("/201508150800/9044548ef1527deadafa49a890a377f0/a.mp3", ""),
            "/201508150800/<redacted>/a.mp3"
        );
        assert_eq!(
            r.target("/live/cam1.flv", "user=7&n=2"),
            "/live/cam1.flv?user=7&n=2"
        );
    }

    #[test]
    fn hides_signatures_inside_a_referer() {
        let r = redact();
        let inner = "http://play.example.com/live/a.flv?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099";
        let encoded: String = form_urlencoded::byte_serialize(inner.as_bytes()).collect();
        for referer in [
            inner.to_owned(),
            format!("https://pirate.example/watch?src={encoded}"),
            format!("https://pirate.example/watch#{inner}"),
        ] {
            let out = r.url(&referer);
            assert!(!out.contains("f85a2ab3"), "{out}");
        }
        assert_eq!(
            r.url("https://site.example/page?a=1"),
            "https://site.example/page?a=1"
        );
        assert_eq!(
            r.text("VLC/3.0 token f85a2ab363fe4deaffef9754d79da6fe end"),
            "VLC/3.0 token <redacted> end"
        );
        assert_eq!(
            r.text("Mozilla/5.0 (X11; Linux x86_64)"),
            "Mozilla/5.0 (X11; Linux x86_64)"
        );
    }

    /// A name the verifier or some other parser could read as `name`.
    fn near_miss(name: &'static str) -> impl Strategy<Value = String> {
        proptest::collection::vec((any::<bool>(), 0u8..6), name.len()).prop_map(move |edits| {
            let mut out = String::new();
            for (c, (upper, sep)) in name.chars().zip(edits) {
                out.push(if upper {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                });
                out.push_str(["", "", "+", "%20", "_", "%5F"][sep as usize]);
            }
            out
        })
    }

    fn signature() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{32}",
            "[0-9A-F]{32}",
            "[A-Za-z0-9_-]{21}[0-9]",
            "[0-9]{10}-[0-9A-Za-z]{0,8}-0-[0-9a-f]{32}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Wherever a signature travels in a URL or its Referer, no log line shows it.
        #[test]
        fn no_signature_reaches_a_log_line(
            name in prop_oneof![near_miss("txSecret"), near_miss("auth_key"), near_miss("md5"), "[a-z]{1,8}"],
            sig in signature(),
            before in proptest::collection::vec("[a-z]{1,5}=[a-z0-9]{0,6}", 0..3),
            after in proptest::collection::vec("[a-z]{1,5}=[a-z0-9]{0,6}", 0..3),
            in_path in any::<bool>(),
            ua in "[A-Za-z/. ()0-9]{0,30}",
        ) {
            let r = redact();
            let mut pairs = before.clone();
            pairs.push(format!("{name}={sig}"));
            pairs.extend(after);
            let query = pairs.join("&");
            let path = if in_path && sig.len() == 32 {
                format!("/201508150800/{sig}/live/a.flv")
            } else {
                "/live/a.flv".to_owned()
            };
            let url = format!("http://play.example.com{path}?{query}");
            let encoded: String = form_urlencoded::byte_serialize(url.as_bytes()).collect();
            let lines = [
                r.target(&path, &query),
                r.url(&url),
                r.url(&format!("https://pirate.example/p?src={encoded}")),
                r.text(&format!("{ua} {sig}")).into_owned(),
            ];
            let core = &sig[sig.len() - 20..];
            for line in &lines {
                prop_assert!(!line.contains(core), "{line}");
            }
        }
    }
}

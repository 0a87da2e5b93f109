//! Query-string handling shared by verification, signing and upstream stripping.
//! Names are compared after percent-decoding (as the customer's own framework
//! would decode them), so `tx%53ecret` cannot slip past a strip.

use std::borrow::Cow;

use crate::verdict::{Failure, Reason};

/// Splits one raw `name=value` pair and decodes both halves as
/// `application/x-www-form-urlencoded` does. Borrowed (no work beyond the split)
/// unless the pair holds a `%` or `+`, which most signed URLs never do.
fn decode_pair(pair: &str) -> (Cow<'_, str>, Cow<'_, str>) {
    if !pair.bytes().any(|b| b == b'%' || b == b'+') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        return (Cow::Borrowed(k), Cow::Borrowed(v));
    }
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .unwrap_or_default()
}

/// The values of the parameters `names` (empty names never match), percent-decoded.
/// A parameter given twice is `MALFORMED`: two candidate signatures invite confusion
/// between what livegate checks and what an origin reads.
pub fn find<'a, const N: usize>(
    query: &'a str,
    names: [&str; N],
) -> Result<[Option<Cow<'a, str>>; N], Failure> {
    let mut found: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = decode_pair(pair);
        for (slot, name) in found.iter_mut().zip(names) {
            if !name.is_empty() && k == name {
                if slot.is_some() {
                    return Err(Failure::with(
                        Reason::Malformed,
                        format!("query parameter {name} appears more than once"),
                    ));
                }
                *slot = Some(v.clone());
            }
        }
    }
    Ok(found)
}

/// The percent-decoded name of one `name=value` pair.
pub fn pair_name(pair: &str) -> Cow<'_, str> {
    decode_pair(pair).0
}

/// Whether a pair's (decoded) name is one of `names` (empty names never match).
pub fn is_named<S: AsRef<str>>(pair: &str, names: &[S]) -> bool {
    let name = pair_name(pair);
    names
        .iter()
        .any(|n| !n.as_ref().is_empty() && name == n.as_ref())
}

/// The query without the parameters `names`, other parameters byte-for-byte as sent.
/// Borrowed when nothing is removed; one pass either way.
pub fn without<'a>(query: &'a str, names: &[&str]) -> Cow<'a, str> {
    let mut kept: Option<String> = None;
    let mut start = 0;
    for pair in query.split('&') {
        let end = start + pair.len();
        if is_named(pair, names) {
            // First removal: copy what was kept so far.
            kept.get_or_insert_with(|| {
                let mut k = String::with_capacity(query.len());
                for p in query[..start].split('&').filter(|p| !p.is_empty()) {
                    if !k.is_empty() {
                        k.push('&');
                    }
                    k.push_str(p);
                }
                k
            });
        } else if let Some(k) = kept.as_mut().filter(|_| !pair.is_empty()) {
            if !k.is_empty() {
                k.push('&');
            }
            k.push_str(pair);
        }
        start = end + 1;
    }
    kept.map_or(Cow::Borrowed(query), Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_decodes() {
        let [a, b] = find("x=1&txSecret=ab%63&txTime=5C", ["txSecret", "txTime"]).unwrap();
        assert_eq!(a.as_deref(), Some("abc"));
        assert_eq!(b.as_deref(), Some("5C"));
        let [a] = find("", ["sign"]).unwrap();
        assert_eq!(a, None);
    }

    #[test]
    fn duplicate_is_malformed() {
        let e = find("sign=a&t=1&sign=b", ["sign", "t"]).unwrap_err();
        assert_eq!(e.reason, Reason::Malformed);
        let e = find("sign=a&si%67n=b", ["sign"]).unwrap_err();
        assert_eq!(e.reason, Reason::Malformed);
    }

    #[test]
    fn empty_names_never_match() {
        let [a] = find("=x&b=2", [""]).unwrap();
        assert_eq!(a, None);
    }

    #[test]
    fn fast_and_slow_paths_agree_with_form_urlencoded() {
        for q in [
            "a=1&b=x+y&c=%41%zz&d&=e&f=&&g=1=2",
            "txSecret=ab&txTime=5C",
            "x%3D=1&y=%26",
        ] {
            let expected: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let ours: Vec<(String, String)> = q
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = decode_pair(p);
                    (k.into_owned(), v.into_owned())
                })
                .collect();
            assert_eq!(ours, expected, "{q}");
        }
    }

    #[test]
    fn strips_named_keeps_rest() {
        assert_eq!(without("txSecret=x&a=1&&b=2", &["txSecret"]), "a=1&b=2");
        assert_eq!(without("a=1&&txSecret=x", &["txSecret"]), "a=1");
        assert_eq!(
            without("a=1&txSecret=x&b=%20&txTime=2", &["txSecret", "txTime"]),
            "a=1&b=%20"
        );
        assert_eq!(without("tx%53ecret=x", &["txSecret"]), "");
        assert!(matches!(without("a=1", &["txSecret"]), Cow::Borrowed(_)));
    }
}

//! Query-string handling shared by verification, signing and upstream stripping.
//! Names are compared after percent-decoding (as the customer's own framework
//! would decode them), so `tx%53ecret` cannot slip past a strip.

use std::borrow::Cow;

use crate::verdict::{Failure, Reason};

/// The values of the parameters `names` (empty names never match), percent-decoded.
/// A parameter given twice is `MALFORMED`: two candidate signatures invite confusion
/// between what livegate checks and what an origin reads.
pub fn find<'a, const N: usize>(
    query: &'a str,
    names: [&str; N],
) -> Result<[Option<Cow<'a, str>>; N], Failure> {
    let mut found: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
    if query.is_empty() {
        return Ok(found);
    }
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
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
    let raw = pair.split('=').next().unwrap_or("");
    form_urlencoded::parse(raw.as_bytes())
        .next()
        .map(|(k, _)| k)
        .unwrap_or_default()
}

/// Whether a pair's (decoded) name is one of `names` (empty names never match).
pub fn is_named<S: AsRef<str>>(pair: &str, names: &[S]) -> bool {
    let name = pair_name(pair);
    names
        .iter()
        .any(|n| !n.as_ref().is_empty() && name == n.as_ref())
}

/// The query without the parameters `names`, other parameters byte-for-byte as sent.
/// Borrowed when nothing is removed.
pub fn without<'a>(query: &'a str, names: &[&str]) -> Cow<'a, str> {
    if !query.split('&').any(|p| is_named(p, names)) {
        return Cow::Borrowed(query);
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !is_named(p, names))
        .collect();
    Cow::Owned(kept.join("&"))
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
    fn strips_named_keeps_rest() {
        assert_eq!(
            without("a=1&txSecret=x&b=%20&txTime=2", &["txSecret", "txTime"]),
            "a=1&b=%20"
        );
        assert_eq!(without("tx%53ecret=x", &["txSecret"]), "");
        assert!(matches!(without("a=1", &["txSecret"]), Cow::Borrowed(_)));
    }
}

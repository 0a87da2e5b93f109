//! Query-string handling shared by verification, signing and upstream stripping.
//! Names are compared after percent-decoding (as the customer's own framework
//! would decode them), so `tx%53ecret` cannot slip past a strip.
//!
//! This runs on every request: one byte scan splits a query into pairs, finds each
//! `=` and notes whether anything needs decoding, and nothing is allocated unless
//! something does. The scan skips ordinary bytes by a table lookup each and stops
//! only at the four that matter (`&`, `=`, `%`, `+`).

use std::borrow::Cow;

use crate::verdict::{Failure, Reason};

/// One raw `name=value` pair of a query, as sent.
#[derive(Debug, Clone, Copy)]
struct Pair<'a> {
    /// Byte offset of the pair in its query.
    start: usize,
    raw: &'a str,
    name: &'a str,
    value: &'a str,
    /// The name holds `%` or `+` (needs form-decoding); most never do.
    name_escaped: bool,
    /// The name or the value does.
    escaped: bool,
}

/// The bytes the pair scan stops at: `&` ends a pair, the first `=` ends its
/// name, `%` and `+` need decoding.
static STOPS: [bool; 256] = {
    let mut t = [false; 256];
    t[b'&' as usize] = true;
    t[b'=' as usize] = true;
    t[b'%' as usize] = true;
    t[b'+' as usize] = true;
    t
};

impl<'a> Pair<'a> {
    /// Both halves decoded as `application/x-www-form-urlencoded` does.
    fn decoded(&self) -> (Cow<'a, str>, Cow<'a, str>) {
        form_urlencoded::parse(self.raw.as_bytes())
            .next()
            .unwrap_or_default()
    }

    /// The decoded name: a scan of the name alone unless it holds an escape.
    fn name(&self) -> Cow<'a, str> {
        match self.name_escaped {
            true => self.decoded().0,
            false => Cow::Borrowed(self.name),
        }
    }

    /// The decoded value: a scan of the pair unless it holds an escape.
    fn value(&self) -> Cow<'a, str> {
        match self.escaped {
            true => self.decoded().1,
            false => Cow::Borrowed(self.value),
        }
    }
}

/// The `&`-separated pairs of a query, empty ones included, nothing decoded yet.
fn pairs(query: &str) -> impl Iterator<Item = Pair<'_>> {
    let bytes = query.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at;
        if start > bytes.len() {
            return None;
        }
        // One pass over the pair: its end, its first `=`, and any escape before
        // and after that `=`.
        let (mut end, mut eq, mut escaped, mut name_escaped) = (start, None, false, false);
        while let Some(&b) = bytes.get(end) {
            if STOPS[usize::from(b)] {
                match b {
                    b'&' => break,
                    b'=' if eq.is_none() => {
                        eq = Some(end);
                        name_escaped = escaped;
                    }
                    b'=' => {}
                    _ => escaped = true,
                }
            }
            end += 1;
        }
        at = end + 1;
        // Split at ASCII bytes, so every slice is on a char boundary.
        let raw = &query[start..end];
        let (name, value, name_escaped) = match eq {
            Some(i) => (&query[start..i], &query[i + 1..end], name_escaped),
            None => (raw, "", escaped),
        };
        Some(Pair {
            start,
            raw,
            name,
            value,
            name_escaped,
            escaped,
        })
    })
}

/// Where the found parameters sat in the query (the start of each pair), so that
/// stripping them later needs no second decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spans<const N: usize>([Option<usize>; N]);

impl<const N: usize> Default for Spans<N> {
    fn default() -> Self {
        Spans([None; N])
    }
}

impl<const N: usize> Spans<N> {
    /// The same spans with room for `M` (≥ `N`) parameters, so that verdicts
    /// of schemes that read different numbers of them share one type.
    pub fn widen<const M: usize>(self) -> Spans<M> {
        let mut out = [None; M];
        for (o, s) in out.iter_mut().zip(self.0) {
            *o = s;
        }
        Spans(out)
    }

    /// `query` (the one these spans were found in) without those parameters:
    /// what `without` gives, found by cutting at the known spans rather than by
    /// decoding every pair again. Borrowed when one stretch of the query remains.
    pub fn strip<'a>(&self, query: &'a str) -> Cow<'a, str> {
        let mut starts = self.0;
        starts.sort_unstable();
        let mut kept: [&str; N] = [""; N];
        let mut tail = 0;
        for (slot, start) in kept.iter_mut().zip(starts.iter().flatten()) {
            *slot = query.get(tail..*start).unwrap_or("");
            let rest = query.as_bytes().get(*start..).unwrap_or_default();
            tail = memchr::memchr(b'&', rest).map_or(query.len(), |i| start + i);
        }
        if tail == 0 {
            return Cow::Borrowed(query);
        }
        let last = query.get(tail..).unwrap_or("");
        let stretches = kept.into_iter().chain([last]).map(trim_amps);
        let mut nonempty = stretches.clone().filter(|s| !s.is_empty());
        match (nonempty.next(), nonempty.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(one), None) => tidy(one),
            _ => Cow::Owned(joined(stretches.flat_map(|s| pairs(s).map(|p| p.raw)))),
        }
    }
}

/// The parameters `names` found in one query: their percent-decoded values and
/// where they were.
#[derive(Debug)]
pub struct Found<'a, const N: usize> {
    pub values: [Option<Cow<'a, str>>; N],
    pub spans: Spans<N>,
}

/// The values of the parameters `names` (empty names never match), percent-decoded.
/// A parameter given twice is `MALFORMED`: two candidate signatures invite confusion
/// between what livegate checks and what an origin reads.
pub fn find<'a, const N: usize>(query: &'a str, names: [&str; N]) -> Result<Found<'a, N>, Failure> {
    let mut found = Found {
        values: std::array::from_fn(|_| None),
        spans: Spans::default(),
    };
    for pair in pairs(query) {
        let name = pair.name();
        for (i, wanted) in names.iter().enumerate() {
            if wanted.is_empty() || name != *wanted {
                continue;
            }
            if found.values[i].is_some() {
                return Err(Failure::with(
                    Reason::Malformed,
                    format!("query parameter {wanted} appears more than once"),
                ));
            }
            found.values[i] = Some(pair.value());
            found.spans.0[i] = Some(pair.start);
        }
    }
    Ok(found)
}

/// Whether a raw pair's (decoded) name is one of `names` (empty names never match).
pub fn is_named<S: AsRef<str>>(pair: &str, names: &[S]) -> bool {
    pairs(pair).next().is_some_and(|p| named(&p, names))
}

fn named<S: AsRef<str>>(pair: &Pair<'_>, names: &[S]) -> bool {
    let name = pair.name();
    names
        .iter()
        .any(|n| !n.as_ref().is_empty() && name == n.as_ref())
}

/// The query without the parameters `names`, other parameters byte-for-byte as sent
/// (joined by single `&`s once anything is removed). Borrowed when nothing is.
pub fn without<'a, S: AsRef<str>>(query: &'a str, names: &[S]) -> Cow<'a, str> {
    if !pairs(query).any(|p| named(&p, names)) {
        return Cow::Borrowed(query);
    }
    Cow::Owned(joined(
        pairs(query).filter(|p| !named(p, names)).map(|p| p.raw),
    ))
}

/// A kept stretch with empty pairs dropped: borrowed unless it has some.
fn tidy(stretch: &str) -> Cow<'_, str> {
    let stretch = trim_amps(stretch);
    if !stretch.as_bytes().windows(2).any(|w| w == b"&&") {
        return Cow::Borrowed(stretch);
    }
    Cow::Owned(joined(pairs(stretch).map(|p| p.raw)))
}

/// `s` without leading and trailing `&`s (a byte scan: `trim_matches` with a char
/// pattern costs more on this path).
fn trim_amps(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| c != b'&').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b'&').map_or(start, |i| i + 1);
    // Cut at ASCII bytes: char boundaries.
    &s[start..end]
}

/// Raw pairs joined by single `&`s, empty ones left out.
fn joined<'a>(raw_pairs: impl Iterator<Item = &'a str>) -> String {
    let mut kept = String::new();
    for pair in raw_pairs.filter(|p| !p.is_empty()) {
        if !kept.is_empty() {
            kept.push('&');
        }
        kept.push_str(pair);
    }
    kept
}

/// `s` split at `sep` into exactly `N` parts (a token's or an `auth_key`'s
/// fields), or `None` for fewer or more.
pub fn split_exact<const N: usize>(s: &str, sep: char) -> Option<[&str; N]> {
    let mut parts = s.split(sep);
    let mut out = [""; N];
    for slot in out.iter_mut() {
        *slot = parts.next()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_decodes() {
        let f = find("x=1&txSecret=ab%63&txTime=5C", ["txSecret", "txTime"]).unwrap();
        let [a, b] = f.values;
        assert_eq!(a.as_deref(), Some("abc"));
        assert_eq!(b.as_deref(), Some("5C"));
        let [a] = find("", ["sign"]).unwrap().values;
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
        let [a] = find("=x&b=2", [""]).unwrap().values;
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
                    let pair = pairs(p).next().unwrap();
                    let (k, v) = (pair.name(), pair.value());
                    (k.into_owned(), v.into_owned())
                })
                .collect();
            assert_eq!(ours, expected, "{q}");
        }
    }

    #[test]
    fn spans_strip_exactly_what_without_strips() {
        for q in [
            "txSecret=x&a=1&&b=2",
            "a=1&&txSecret=x",
            "a=1&txSecret=x&b=%20&txTime=2",
            "tx%53ecret=x",
            "a=1",
            "",
            "&txTime=1&",
        ] {
            let f = find(q, ["txSecret", "txTime"]).unwrap();
            assert_eq!(f.spans.strip(q), without(q, &["txSecret", "txTime"]), "{q}");
        }
    }

    /// The plain definition: form-decode every pair, drop the named ones.
    fn reference(q: &str, names: &[&str]) -> String {
        let named = |p: &str| {
            let (k, _) = form_urlencoded::parse(p.as_bytes())
                .next()
                .unwrap_or_default();
            names.iter().any(|n| !n.is_empty() && k == *n)
        };
        if !q.split('&').any(named) {
            return q.to_owned();
        }
        let kept: Vec<&str> = q
            .split('&')
            .filter(|p| !p.is_empty() && !named(p))
            .collect();
        kept.join("&")
    }

    proptest::proptest! {
        #[test]
        fn strip_and_without_match_the_plain_definition(
            parts in proptest::collection::vec("(md5|e%78pires|expires|a|b|\\+|%|=|&|x=1|md5=z)", 0..12)
        ) {
            let q = parts.concat();
            let names = ["md5", "expires"];
            let expected = reference(&q, &names);
            proptest::prop_assert_eq!(without(&q, &names), expected.as_str());
            if let Ok(f) = find(&q, names) {
                proptest::prop_assert_eq!(f.spans.strip(&q), expected.as_str());
            }
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

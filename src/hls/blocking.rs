//! Low-Latency HLS delivery directives (RFC 8216bis §6.2.5), pure: a player in
//! low-latency mode asks `index.m3u8?_HLS_msn=N&_HLS_part=M` and the origin holds
//! the request until that part exists; `_HLS_skip=YES|v2` asks for a delta.
//!
//! An edge that coalesces these must agree with itself on what was asked: the
//! directives are read once, refused when they could be read two ways (a name
//! given twice, a value that is not a plain number, a part without its segment),
//! and written back in one order at the end of the query, so
//! `_HLS_part=2&_HLS_msn=7` and `_HLS_msn=07&_HLS_part=2` are one key and one
//! origin request — and what the origin gets is that canonical form.

use std::borrow::Cow;

use crate::sign::query;

/// The directives of one playlist request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Directives {
    /// `_HLS_msn`: hold until this media segment (or its part) exists.
    pub msn: Option<u64>,
    /// `_HLS_part`: the part of segment `msn` to hold for.
    pub part: Option<u64>,
    /// `_HLS_skip`: a delta update (`YES`, or `v2` to skip date ranges too).
    pub skip: Option<Skip>,
}

/// What a delta update may skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Yes,
    V2,
}

impl Directives {
    /// Whether the origin holds this request until the segment or part exists.
    pub fn blocks(&self) -> bool {
        self.msn.is_some()
    }
}

/// Why a request's directives were refused (400): the reason for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDirective {
    #[error("{0} is given more than once")]
    Repeated(&'static str),
    #[error("{0} is not a decimal number")]
    NotANumber(&'static str),
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
    #[error("_HLS_skip is neither YES nor v2")]
    BadSkip,
}

const MSN: &str = "_HLS_msn";
const PART: &str = "_HLS_part";
const SKIP: &str = "_HLS_skip";

/// A target (path and query) with its directives read and written back in one
/// order at the end: what is keyed and asked of the origin. A target without
/// directives is returned as it is.
pub fn canonical(target: &str) -> Result<(Cow<'_, str>, Directives), BadDirective> {
    let Some((path, query)) = target.split_once('?') else {
        return Ok((target.into(), Directives::default()));
    };
    let names = [MSN, PART, SKIP];
    let found = match query::find(query, names) {
        Ok(f) => f,
        // Given twice: say which.
        Err(_) => {
            let twice = names
                .into_iter()
                .find(|n| query::find(query, [*n]).is_err());
            return Err(BadDirective::Repeated(twice.unwrap_or(MSN)));
        }
    };
    let [msn, part, skip] = &found.values;
    if msn.is_none() && part.is_none() && skip.is_none() {
        return Ok((target.into(), Directives::default()));
    }
    let d = Directives {
        msn: msn.as_deref().map(|v| number(v, MSN)).transpose()?,
        part: part.as_deref().map(|v| number(v, PART)).transpose()?,
        skip: match skip.as_deref() {
            None => None,
            Some("YES") => Some(Skip::Yes),
            Some("v2") => Some(Skip::V2),
            Some(_) => return Err(BadDirective::BadSkip),
        },
    };
    if d.part.is_some() && d.msn.is_none() {
        return Err(BadDirective::PartWithoutMsn);
    }
    let rest = found.spans.strip(query);
    let mut out = String::with_capacity(target.len());
    out.push_str(path);
    let mut sep = '?';
    let mut add = |s: &str| {
        out.push(sep);
        out.push_str(s);
        sep = '&';
    };
    if !rest.is_empty() {
        add(&rest);
    }
    if let Some(n) = d.msn {
        add(&format!("{MSN}={n}"));
    }
    if let Some(n) = d.part {
        add(&format!("{PART}={n}"));
    }
    match d.skip {
        Some(Skip::Yes) => add(&format!("{SKIP}=YES")),
        Some(Skip::V2) => add(&format!("{SKIP}=v2")),
        None => {}
    }
    Ok((out.into(), d))
}

/// A plain decimal number: digits only (no sign, no spaces), at most 19 of them.
fn number(value: &str, name: &'static str) -> Result<u64, BadDirective> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadDirective::NotANumber(name));
    }
    value.parse().map_err(|_| BadDirective::NotANumber(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_written_back_in_one_order() {
        let c = |t| canonical(t).map(|(t, d)| (t.into_owned(), d));
        let (t, d) = c("/live/a.m3u8?_HLS_part=2&lgt=x&_HLS_msn=07").unwrap();
        assert_eq!(t, "/live/a.m3u8?lgt=x&_HLS_msn=7&_HLS_part=2");
        assert_eq!((d.msn, d.part, d.skip), (Some(7), Some(2), None));
        assert!(d.blocks());
        let (t2, _) = c("/live/a.m3u8?lgt=x&_HLS_msn=7&_HLS_part=2").unwrap();
        assert_eq!(t, t2);
        let (t, d) = c("/live/a.m3u8?_HLS_skip=YES").unwrap();
        assert_eq!(t, "/live/a.m3u8?_HLS_skip=YES");
        assert!(!d.blocks());
        let (t, _) = c("/live/a.m3u8?%5FHLS_msn=3").unwrap();
        assert_eq!(t, "/live/a.m3u8?_HLS_msn=3");
        // No directive: untouched.
        assert_eq!(c("/a.m3u8?b=1&&c").unwrap().0, "/a.m3u8?b=1&&c");
        assert_eq!(c("/a.m3u8").unwrap().0, "/a.m3u8");
        assert_eq!(c("/a.m3u8?_hls_msn=3").unwrap().0, "/a.m3u8?_hls_msn=3");
    }

    #[test]
    fn two_readings_are_refused() {
        let e = |t| canonical(t).unwrap_err();
        assert_eq!(
            e("/a.m3u8?_HLS_msn=1&_HLS_msn=2"),
            BadDirective::Repeated(MSN)
        );
        assert_eq!(
            e("/a.m3u8?_HLS_msn=1&_HLS_m%73n=1"),
            BadDirective::Repeated(MSN)
        );
        assert_eq!(e("/a.m3u8?_HLS_msn=+1"), BadDirective::NotANumber(MSN));
        assert_eq!(e("/a.m3u8?_HLS_msn=-1"), BadDirective::NotANumber(MSN));
        assert_eq!(e("/a.m3u8?_HLS_msn="), BadDirective::NotANumber(MSN));
        assert_eq!(
            e("/a.m3u8?_HLS_msn=99999999999999999999"),
            BadDirective::NotANumber(MSN)
        );
        assert_eq!(
            e("/a.m3u8?_HLS_msn=1&_HLS_part=x"),
            BadDirective::NotANumber(PART)
        );
        assert_eq!(e("/a.m3u8?_HLS_part=1"), BadDirective::PartWithoutMsn);
        assert_eq!(e("/a.m3u8?_HLS_skip=yes"), BadDirective::BadSkip);
    }
}

//! The canonical request target: the one path every decision is made on — routing,
//! rule choice, signature, remote-auth scope, stream session, log line — and exactly
//! what the origin receives.
//!
//! The principle: *two paths that any common origin may serve as the same file always
//! get the same rule; when in doubt, 400.* livegate does not normalise a path into
//! something else (the signature covers the path as sent); it refuses every path that
//! an origin could read in a second way:
//!
//! - a target that is not origin-form (`/…`) or a valid absolute `http(s)://` URL
//!   whose authority agrees with `Host` (`live/a.flv`, `a/../b`, `*`);
//! - `.` and `..` segments, and any segment that ends in `.` (Windows and IIS drop
//!   trailing dots) or in a space, raw or encoded (`%20`);
//! - `;` anywhere in the path (Tomcat, Jetty and Spring read `..;` as `..` and strip
//!   `;params` from segments);
//! - empty segments (`//`), a trailing `/` (servers with path info serve `/a.flv/` as
//!   `/a.flv`), control bytes, spaces, `\`;
//! - `%` not followed by two hex digits, encoded unreserved characters (`%76` for
//!   `v`: every normaliser decodes them), and anything that decodes to a separator or
//!   a control byte (`%2F`, `%5C`, `%3B`, `%3F`, `%23`, `%00`…).
//!
//! [`canonical`] is pure: bytes in, verdict out; [`settle`] applies it to a request.

use bytes::Bytes;
use pingora_http::RequestHeader;

/// A request target reduced to its canonical origin form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canonical<'a> {
    /// `path` or `path?query`, origin-form, as the origin receives it.
    pub target: &'a str,
    /// The path: starts with `/`, passed [`vet_path`].
    pub path: &'a str,
    /// The query without `?` (empty when none).
    pub query: &'a str,
    /// Whether `target` differs from the bytes the client sent (absolute-form), so
    /// the request must be rewritten before anything reads or forwards it.
    pub rewritten: bool,
}

/// The canonical form of a raw request target, given the request's `Host` header
/// (if any). `Err` carries the reason for the log; the client gets a plain 400.
pub fn canonical<'a>(raw: &'a [u8], host: Option<&str>) -> Result<Canonical<'a>, &'static str> {
    let raw = std::str::from_utf8(raw).map_err(|_| "the request target is not UTF-8")?;
    if raw.contains('#') {
        return Err("the request target holds a fragment (#)");
    }
    let (target, rewritten) = if raw.starts_with('/') {
        (raw, false)
    } else {
        (absolute_form_path(raw, host)?, true)
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    vet_path(path)?;
    Ok(Canonical {
        target,
        path,
        query,
        rewritten,
    })
}

/// Reduces a request to its canonical target before anything reads it: when the
/// client sent another form (absolute-form), the request itself is rewritten, so
/// routing, signing, logging and the origin all see one target.
pub fn settle(req: &mut RequestHeader) -> Result<(), &'static str> {
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let c = canonical(req.raw_path(), host)?;
    // Absolute-form is rewritten; so is any target whose parsed URI reads
    // otherwise than its bytes (an empty target), so `req.uri` is the canonical
    // target for every later phase.
    let agrees = req.uri.path() == c.path && req.uri.query().unwrap_or("") == c.query;
    if c.rewritten || !agrees {
        let target = Bytes::copy_from_slice(c.target.as_bytes());
        let uri = http::Uri::from_maybe_shared(target)
            .map_err(|_| "the request target cannot be parsed")?;
        req.set_uri(uri);
    }
    Ok(())
}

/// The origin-form part of an absolute-form target (`http://host/path?q`), whose
/// authority must name the same host as the `Host` header when both are present.
fn absolute_form_path<'a>(raw: &'a str, host: Option<&str>) -> Result<&'a str, &'static str> {
    const NOT_A_PATH: &str =
        "the request target is neither a path starting with / nor an absolute http(s) URL";
    let scheme_end = raw.find("://").ok_or(NOT_A_PATH)?;
    if !["http", "https"]
        .iter()
        .any(|s| raw[..scheme_end].eq_ignore_ascii_case(s))
    {
        return Err(NOT_A_PATH);
    }
    let rest = &raw[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let target = &rest[authority_end..];
    if authority.is_empty() || authority.contains('@') {
        return Err("the absolute request target has no usable authority");
    }
    if !target.starts_with('/') {
        return Err("the absolute request target has no path");
    }
    if let Some(host) = host {
        let same =
            crate::route::host_name(host).eq_ignore_ascii_case(crate::route::host_name(authority));
        if !same {
            return Err("the absolute request target names another host than Host");
        }
    }
    Ok(target)
}

/// Refuses paths whose meaning an origin might change by normalising them (see the
/// module documentation), so that the path livegate verifies and routes is exactly
/// the path the origin serves.
///
/// One byte scan, no allocation: it runs on every request.
pub fn vet_path(path: &str) -> Result<(), &'static str> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err("the path does not start with /");
    }
    let mut segment_start = 1;
    for (i, &c) in b.iter().enumerate() {
        if c == b'/' && i > 0 {
            vet_segment(&b[segment_start..i])?;
            segment_start = i + 1;
        }
        if c <= 0x20 || c == 0x7f || c == b'\\' {
            return Err("the path holds a control byte, a space or a backslash");
        }
        if c == b';' {
            return Err("the path holds a ; (path parameters are read differently by origins)");
        }
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let Some(h) = hex else {
                return Err("the path holds a % that is not followed by two hex digits");
            };
            let v = (hex_value(h[0]) << 4) | hex_value(h[1]);
            if v < 0x20 || v == 0x7f || b"/\\;?#".contains(&v) {
                return Err("the path holds an encoded separator or control byte");
            }
            // Unreserved characters are never encoded (RFC 3986 §2.3) and every
            // normaliser decodes them: `/li%76e/` would be routed as app "li%76e"
            // here and served as "/live/" by the origin.
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                return Err("the path percent-encodes an unreserved character");
            }
        }
    }
    match &b[segment_start..] {
        [] if b.len() == 1 => Ok(()),
        [] => Err("the path ends with /"),
        last => vet_segment(last),
    }
}

/// One segment of a path (an encoded dot never reaches here: it is an encoded
/// unreserved character, refused above).
fn vet_segment(segment: &[u8]) -> Result<(), &'static str> {
    match segment {
        [] => Err("the path holds an empty segment (//)"),
        [.., b'.'] => Err("the path holds a segment ending in . (or a . or .. segment)"),
        [.., b'%', b'2', b'0'] => Err("the path holds a segment ending in an encoded space"),
        _ => Ok(()),
    }
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => (c | 0x20) - b'a' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vets_paths() {
        for ok in [
            "/",
            "/live/a.flv",
            "/live/a%20b.flv",
            "/live/%E4%B8%AD.flv",
            "/a/..b/c",
            "/live/.hidden",
            "/live/a%2Cb",
        ] {
            assert_eq!(vet_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "live/a",
            "/live/../a.flv",
            "/live/./a",
            "/live/%2e%2E/a",
            "/live/%2e",
            "//a",
            "/live//a",
            "/live/",
            "/vip/a.flv/",
            "/a%2fb",
            "/a%5Cb",
            "/a%00",
            "/a%zz",
            "/a%4",
            "/a b",
            "/a\\b",
            "/a\u{7f}",
            "/li%76e/a.flv",
            "/live/my%2estream.flv",
            "/a/%7Eb",
            "/a/%2D",
            "/pub/..;/live/cam2.flv",
            "/live;/cam2.flv",
            "/live;x=1/cam2.flv",
            "/vip/a.flv;x",
            "/live./cam2.flv",
            "/vip/a.flv.",
            "/live%20/cam2.flv",
            "/vip/a.flv%20",
            "/live%3b/cam2.flv",
            "/live%3F/a",
            "/live%23/a",
        ] {
            assert!(vet_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn origin_form_is_kept_as_sent() {
        let c = canonical(b"/live/a.flv?x=1&y", Some("h")).unwrap();
        assert_eq!(
            c,
            Canonical {
                target: "/live/a.flv?x=1&y",
                path: "/live/a.flv",
                query: "x=1&y",
                rewritten: false
            }
        );
    }

    #[test]
    fn absolute_form_becomes_origin_form_when_hosts_agree() {
        let c = canonical(
            b"http://Play.Example.com:80/live/a.flv?x",
            Some("play.example.com"),
        )
        .unwrap();
        assert_eq!((c.target, c.rewritten), ("/live/a.flv?x", true));
        let c = canonical(b"HTTPS://h/live/a.flv", None).unwrap();
        assert_eq!(c.path, "/live/a.flv");
        for (bad, host) in [
            (&b"http://other/live/a.flv"[..], Some("h")),
            (b"http://h?x", Some("h")),
            (b"http://u@h/a", Some("h")),
            (b"http:///a", None),
            (b"ftp://h/a", None),
        ] {
            assert!(
                canonical(bad, host).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn other_forms_are_refused() {
        for bad in [
            &b"live/cam1.flv"[..],
            b"a/../live/cam1.flv",
            b"*",
            b"",
            b"/live/a.flv#frag",
            b"/live/\xff.flv",
        ] {
            assert!(
                canonical(bad, Some("h")).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn settle_rewrites_absolute_form_and_refuses_other_forms() {
        let mut req = RequestHeader::build("GET", b"http://h.test/live/a.flv?x=1", None).unwrap();
        req.insert_header("host", "h.test").unwrap();
        settle(&mut req).unwrap();
        assert_eq!(req.raw_path(), b"/live/a.flv?x=1");
        assert_eq!(req.uri.path(), "/live/a.flv");
        for bad in [
            &b"live/cam1.flv"[..],
            b"a/../live/cam1.flv",
            b"/pub/..;/live/a.flv",
        ] {
            let mut req = RequestHeader::build("GET", bad, None).unwrap();
            assert!(
                settle(&mut req).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

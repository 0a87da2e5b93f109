//! Routing (a contract, `design.md`): Host → domain key, path → (app, stream, ext),
//! method → scene. Pure string slicing, no allocation.

use std::fmt;
use std::str::FromStr;

/// Which way the media flows. Rules are chosen per scene, because publishers and
/// viewers are usually signed with different keys and lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scene {
    /// Viewers: GET, HEAD, OPTIONS.
    Pull,
    /// Publishers (HTTP ingest such as WHIP): POST, PUT, PATCH.
    Push,
}

impl Scene {
    /// The scene of an HTTP method, or `None` for methods that belong to neither.
    pub fn of_method(method: &str) -> Option<Scene> {
        match method {
            "GET" | "HEAD" | "OPTIONS" => Some(Scene::Pull),
            "POST" | "PUT" | "PATCH" => Some(Scene::Push),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Scene::Pull => "pull",
            Scene::Push => "push",
        }
    }
}

impl fmt::Display for Scene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scene {
    type Err = String;
    fn from_str(s: &str) -> Result<Scene, String> {
        match s {
            "pull" => Ok(Scene::Pull),
            "push" => Ok(Scene::Push),
            other => Err(format!("scene must be pull or push, not {other:?}")),
        }
    }
}

/// The parts of a path livegate reasons about: `/live/cam1.flv` → app `live`,
/// stream `cam1`, ext `flv`. Slices of the path exactly as sent (percent-encoded
/// form), because that is what customers sign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Route<'a> {
    pub app: &'a str,
    pub stream: &'a str,
    pub ext: &'a str,
}

impl<'a> Route<'a> {
    /// Splits a path: `app` is the first segment, `stream` the last one without its
    /// extension, `ext` what follows the last dot of the last segment.
    pub fn of_path(path: &'a str) -> Route<'a> {
        // Byte scans: this runs several times per request.
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let b = trimmed.as_bytes();
        let app_end = b.iter().position(|&c| c == b'/').unwrap_or(b.len());
        let last_start = b.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
        let last = &trimmed[last_start..];
        let (stream, ext) = match last.as_bytes().iter().rposition(|&c| c == b'.') {
            Some(dot) => (&last[..dot], &last[dot + 1..]),
            None => (last, ""),
        };
        Route {
            app: &trimmed[..app_end],
            stream,
            ext,
        }
    }
}

/// The Host header reduced to what domains match on: no port, no trailing dot.
/// Case is folded by the caller only when needed (see [`host_eq`]).
pub fn host_name(host: &str) -> &str {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port → [v6]
        match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        }
    } else {
        // A byte scan: `rsplit_once(':')` costs more on this per-request path.
        match host.bytes().rposition(|b| b == b':') {
            Some(i) if host.as_bytes()[i + 1..].iter().all(u8::is_ascii_digit) => &host[..i],
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// Refuses paths whose meaning an origin might change by normalising them, so
/// that the path livegate verifies and routes is exactly the path the origin
/// serves: dot-segments, empty segments (`//`), percent-encoded unreserved
/// characters (`%76` for `v`, `%2e` for `.`), encoded `/`, `\\` or NUL, control
/// bytes, and `%` not followed by two hex digits.
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
            vet_segment(&b[segment_start..i], false)?;
            segment_start = i + 1;
        }
        if c <= 0x20 || c == 0x7f || c == b'\\' {
            return Err("the path holds a control byte, a space or a backslash");
        }
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let Some(h) = hex else {
                return Err("the path holds a % that is not followed by two hex digits");
            };
            let v = (hex_value(h[0]) << 4) | hex_value(h[1]);
            if v < 0x20 || v == 0x7f || v == b'/' || v == b'\\' {
                return Err("the path holds an encoded /, \\ or control byte");
            }
            // Unreserved characters are never encoded (RFC 3986 §2.3) and every
            // normaliser decodes them: `/li%76e/` would be routed as app "li%76e"
            // here and served as "/live/" by the origin.
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                return Err("the path percent-encodes an unreserved character");
            }
        }
    }
    vet_segment(&b[segment_start..], true)
}

/// One segment of a path. An encoded dot (`%2e`) never reaches here: it is an
/// encoded unreserved character, refused above.
fn vet_segment(segment: &[u8], last: bool) -> Result<(), &'static str> {
    match segment {
        b"" if !last => Err("the path holds an empty segment (//)"),
        b"." | b".." => Err("the path holds a . or .. segment"),
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
    fn splits_the_contract_example() {
        let r = Route::of_path("/live/cam1.flv");
        assert_eq!((r.app, r.stream, r.ext), ("live", "cam1", "flv"));
    }

    #[test]
    fn nested_and_odd_paths() {
        let r = Route::of_path("/live/sub/a.b.m3u8");
        assert_eq!((r.app, r.stream, r.ext), ("live", "a.b", "m3u8"));
        let r = Route::of_path("/live/noext");
        assert_eq!((r.app, r.stream, r.ext), ("live", "noext", ""));
        let r = Route::of_path("/");
        assert_eq!((r.app, r.stream, r.ext), ("", "", ""));
        let r = Route::of_path("");
        assert_eq!((r.app, r.stream, r.ext), ("", "", ""));
    }

    #[test]
    fn scenes_of_methods() {
        assert_eq!(Scene::of_method("HEAD"), Some(Scene::Pull));
        assert_eq!(Scene::of_method("PATCH"), Some(Scene::Push));
        assert_eq!(Scene::of_method("DELETE"), None);
    }

    #[test]
    fn vets_paths() {
        for ok in [
            "/",
            "/live/a.flv",
            "/live/",
            "/live/a%20b.flv",
            "/live/%E4%B8%AD.flv",
            "/a/..b/c",
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
        ] {
            assert!(vet_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("play.example.com:8080"), "play.example.com");
        assert_eq!(host_name("play.example.com."), "play.example.com");
        assert_eq!(host_name("play.example.com.:80"), "play.example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("h:notaport"), "h:notaport");
    }
}

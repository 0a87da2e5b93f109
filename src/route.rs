//! Routing (a contract, `design.md`): Host → domain key, path → (app, stream, ext),
//! method → scene. Pure string slicing, no allocation. Paths reach here only in
//! their canonical form ([`crate::canon`]).

use std::fmt;
use std::str::FromStr;

/// Which way the media flows. Rules are chosen per scene, because publishers and
/// viewers are usually signed with different keys and lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
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

/// A path's `ext` alone ([`Route::of_path`]): what follows the last dot of its last
/// segment. A scan back from the end, for the checks that need nothing else (is
/// this a playlist?).
pub fn ext(path: &str) -> &str {
    match path.bytes().rposition(|c| c == b'.' || c == b'/') {
        Some(i) if path.as_bytes()[i] == b'.' => &path[i + 1..],
        _ => "",
    }
}

impl<'a> Route<'a> {
    /// As [`Route::of_path`], or with `nested` (`stream_path: nested`) the stream
    /// is the second segment, the directory the stream's files live in:
    /// `/live/cam1/index.m3u8` and `/live/cam1/3.ts` → `live`, `cam1` (nginx-rtmp's
    /// `hls_nested on`, SRS's `[app]/[stream]/`). Paths too short for a directory
    /// read as flat.
    pub fn of(path: &'a str, nested: bool) -> Route<'a> {
        let flat = Route::of_path(path);
        if !nested {
            return flat;
        }
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let mut segments = trimmed.split('/');
        match (segments.next(), segments.next(), segments.next()) {
            (Some(_), Some(stream), Some(_)) if !stream.is_empty() => Route { stream, ..flat },
            _ => flat,
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

/// The host as signatures hash it (`{host}` of `secure_link`, Volcengine's
/// `Domain`): lowercase, without port or trailing dot, like nginx's `$host`, so that
/// `Host: SL.TEST` verifies a URL signed for `sl.test`. Borrowed unless it had
/// uppercase letters.
pub fn host_key(host: &str) -> std::borrow::Cow<'_, str> {
    let name = host_name(host);
    match name.bytes().any(|b| b.is_ascii_uppercase()) {
        true => std::borrow::Cow::Owned(name.to_ascii_lowercase()),
        false => std::borrow::Cow::Borrowed(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_alone_is_the_routes_ext() {
        for p in [
            "/live/cam1.flv",
            "/live/sub/a.b.m3u8",
            "/live/noext",
            "/",
            "",
            "/a.b/c",
            "/x/.",
            "x.ts",
        ] {
            assert_eq!(ext(p), Route::of_path(p).ext, "{p}");
        }
    }

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
    fn nested_streams_are_their_directory() {
        let r = Route::of("/live/cam1/index.m3u8", true);
        assert_eq!((r.app, r.stream, r.ext), ("live", "cam1", "m3u8"));
        let r = Route::of("/live/cam1/hi/3.ts", true);
        assert_eq!((r.app, r.stream, r.ext), ("live", "cam1", "ts"));
        let r = Route::of("/live/cam1.flv", true);
        assert_eq!((r.app, r.stream), ("live", "cam1"));
        assert_eq!(Route::of("/live/cam1/index.m3u8", false).stream, "index");
    }

    #[test]
    fn scenes_of_methods() {
        assert_eq!(Scene::of_method("HEAD"), Some(Scene::Pull));
        assert_eq!(Scene::of_method("PATCH"), Some(Scene::Push));
        assert_eq!(Scene::of_method("DELETE"), None);
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("play.example.com:8080"), "play.example.com");
        assert_eq!(host_name("play.example.com."), "play.example.com");
        assert_eq!(host_name("play.example.com.:80"), "play.example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("h:notaport"), "h:notaport");
        assert_eq!(host_key("SL.Test.:8080"), "sl.test");
    }
}

//! How an RTMP session names its stream, pure: the `connect` command's `tcUrl`
//! and the `publish`/`play` name in; domain host, app, stream and the two queries
//! out — one reading, or a refusal (`BAD_REQUEST`).
//!
//! - Host: the tcUrl's (port, case and a trailing dot do not matter); when it is
//!   an address that no domain names, a `vhost=NAME` or `domain=NAME` parameter
//!   of the tcUrl or stream query (SRS's and Huawei's forms).
//! - App: the tcUrl path after the host, without its query (`live`, `live/sub`).
//! - Stream: the name without its query.
//! - Refused: another scheme, userinfo, an empty app or stream, `/`, `.`/`..`,
//!   anything but unreserved characters in the app or stream, controls anywhere.

use crate::verdict::{Failure, Reason};

/// What a session names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host routing uses (lowercase, no port, no trailing dot).
    pub host: String,
    pub app: String,
    pub stream: String,
    /// The tcUrl's query (Alibaba's OBS form signs here: `…/live?auth_key=…`).
    pub tc_query: String,
    /// The stream name's query (Tencent, Volcengine: `cam1?txSecret=…`).
    pub stream_query: String,
}

impl Target {
    /// The path signatures are checked over and routing reads: `/{app}/{stream}`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.app, self.stream)
    }
}

fn bad(why: &'static str) -> Failure {
    Failure::new(Reason::BadRequest, why)
}

/// Unreserved characters only (RFC 3986): what every origin reads one way.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The value of `name=` in a query, if present once.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Reads a session's target. `routes` tells whether a domain serves a host (for
/// the `vhost=` fallback on address hosts).
pub fn read(tc_url: &str, name: &str, routes: impl Fn(&str) -> bool) -> Result<Target, Failure> {
    if tc_url
        .bytes()
        .chain(name.bytes())
        .any(|b| b < b' ' || b == 0x7f || b == b' ')
    {
        return Err(bad(
            "a control character or space in the tcUrl or stream name",
        ));
    }
    let (scheme, rest) = tc_url
        .split_once("://")
        .ok_or_else(|| bad("the tcUrl is not rtmp://host/app"))?;
    if !scheme.eq_ignore_ascii_case("rtmp") && !scheme.eq_ignore_ascii_case("rtmps") {
        return Err(bad("the tcUrl's scheme is not rtmp or rtmps"));
    }
    let (rest, tc_query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, app) = rest
        .split_once('/')
        .ok_or_else(|| bad("the tcUrl names no app"))?;
    if authority.contains(['@', '%', '\\']) || authority.is_empty() {
        return Err(bad("the tcUrl's host is not a plain host[:port]"));
    }
    let app = app.trim_end_matches('/');
    if !app.split('/').all(plain) {
        return Err(bad(
            "the app is empty or not plain (dot segments, //, odd characters)",
        ));
    }
    let (stream, stream_query) = name.split_once('?').unwrap_or((name, ""));
    if !plain(stream) {
        return Err(bad(
            "the stream name is empty or not plain (/, dot segments, odd characters)",
        ));
    }
    let mut host = crate::route::host_key(authority).into_owned();
    let address = host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok();
    if address && !routes(&host) {
        let named = ["vhost", "domain"]
            .iter()
            .find_map(|n| param(tc_query, n).or_else(|| param(stream_query, n)));
        if let Some(v) = named {
            let v = v.to_ascii_lowercase();
            if !v.split('.').all(plain) {
                return Err(bad("the vhost parameter is not a host name"));
            }
            host = v;
        }
    }
    Ok(Target {
        host,
        app: app.to_owned(),
        stream: stream.to_owned(),
        tc_query: tc_query.to_owned(),
        stream_query: stream_query.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(tc: &str, name: &str) -> Result<Target, Reason> {
        read(tc, name, |h| h == "push.example.com").map_err(|f| f.reason)
    }

    #[test]
    fn every_clouds_form_reads_one_way() {
        let t = r(
            "rtmp://Push.Example.COM.:1935/live",
            "cam1?txSecret=ab&txTime=5F",
        )
        .unwrap();
        assert_eq!(
            (t.host.as_str(), t.app.as_str(), t.stream.as_str()),
            ("push.example.com", "live", "cam1")
        );
        assert_eq!(
            (t.stream_query.as_str(), t.tc_query.as_str()),
            ("txSecret=ab&txTime=5F", "")
        );
        assert_eq!(t.path(), "/live/cam1");
        // Alibaba's OBS form: the signature on the server field, the key plain.
        let t = r("rtmp://push.example.com/live?auth_key=1-0-0-abc", "cam1").unwrap();
        assert_eq!(
            (t.tc_query.as_str(), t.stream.as_str()),
            ("auth_key=1-0-0-abc", "cam1")
        );
        // An address host names its domain by vhost= (SRS) or domain= (Huawei).
        let t = r("rtmp://10.0.0.5/live?vhost=Push.example.com", "cam1").unwrap();
        assert_eq!(t.host, "push.example.com");
        let t = r("rtmps://10.0.0.5:443/live", "cam1?domain=push.example.com").unwrap();
        assert_eq!(t.host, "push.example.com");
        let t = r("rtmp://live.example.com/a/b", "c").unwrap();
        assert_eq!(t.path(), "/a/b/c");
    }

    #[test]
    fn what_origins_could_read_two_ways_is_refused() {
        for (tc, name) in [
            ("http://push.example.com/live", "cam1"),
            ("rtmp://push.example.com", "cam1"),
            ("rtmp://push.example.com/", "cam1"),
            ("rtmp://u@push.example.com/live", "cam1"),
            ("rtmp://push.example.com/live/../vip", "cam1"),
            ("rtmp://push.example.com/live//x", "cam1"),
            ("rtmp://push.example.com/li%76e", "cam1"),
            ("rtmp://push.example.com/live", ""),
            ("rtmp://push.example.com/live", "a/b"),
            ("rtmp://push.example.com/live", ".."),
            ("rtmp://push.example.com/live", "cam1\n"),
            ("rtmp://push.example.com/live", "cam 1"),
            ("rtmp://push.example.com/live", "mp4:cam1"),
            ("rtmp://push.example.com/live", "?txSecret=x"),
            ("rtmp://10.0.0.5/live?vhost=a/b", "cam1"),
        ] {
            assert_eq!(r(tc, name), Err(Reason::BadRequest), "{tc} {name}");
        }
    }
}

//! Checking and signing whole URLs, as `livegate check`/`sign` and the management
//! API do: an absolute URL's host picks the domain, its path and query the rule.

use serde::Serialize;
use thiserror::Error;

use crate::access::Seen;
use crate::auth::{Entry, Table};
use std::borrow::Cow;

use crate::canon::vet_path;
use crate::route::{host_key, Route, Scene};
use crate::sign::cdn::rule::SignAs;
use crate::sign::{Request, SignError};
use crate::state::live::Snapshot;
use crate::streams::session_stream;
use crate::verdict::{Failure, Reason};

/// Why a URL could not be checked or signed at all (a usage error, not a verdict).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{0:?} is not an absolute http://, https://, rtmp:// or rtmps:// URL")]
    NotAbsolute(String),
    #[error("no domain serves host {0:?}")]
    UnknownDomain(String),
    #[error("{0}")]
    NoRule(String),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// The parts of an absolute URL livegate works with, as sent (nothing decoded or
/// normalised, so that what is checked is exactly what would be forwarded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `scheme://authority`, to rebuild a signed URL.
    pub origin: &'a str,
    /// Host without port or trailing dot, lowercase (as signatures hash it).
    pub host: Cow<'a, str>,
    /// Path, `/` when empty.
    pub path: &'a str,
    pub query: &'a str,
}

/// Splits an absolute http(s) or rtmp(s) URL (`rtmp://host/app/stream?query`:
/// the path is `/{app}/{stream}`, as the RTMP gate reads a session); `http::Uri`
/// vets its syntax first.
pub fn split_url(url: &str) -> Result<UrlParts<'_>, UrlError> {
    let bad = || UrlError::NotAbsolute(url.chars().take(200).collect());
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let schemes = [Some("http"), Some("https"), Some("rtmp"), Some("rtmps")];
    if !schemes.contains(&uri.scheme_str()) || uri.authority().is_none() {
        return Err(bad());
    }
    let after_scheme = url.find("://").ok_or_else(bad)? + 3;
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let authority = &url[after_scheme..end];
    let host = host_key(authority.rsplit('@').next().unwrap_or(authority));
    let rest = url[end..].split('#').next().unwrap_or("");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    Ok(UrlParts {
        origin: &url[..end],
        host,
        path: if path.is_empty() { "/" } else { path },
        query,
    })
}

impl UrlParts<'_> {
    fn request<'s>(&'s self, remote_addr: &'s str, nested: bool) -> Request<'s> {
        Request {
            nested,
            host: &self.host,
            path: self.path,
            query: self.query,
            remote_addr,
            https: self.origin.starts_with("https"),
            headers: None,
        }
    }
}

/// The verdict for `url` in `scene` at `now`, as the proxy would give it without
/// remote auth or per-client limits: the access lists for what `who` names, then
/// the rules and forbids of `state`. `Err` only when the URL is unusable.
pub fn check_url(
    state: &Snapshot,
    url: &str,
    scene: Scene,
    who: &Seen<'_>,
    now: i64,
) -> Result<Result<(), Failure>, UrlError> {
    let url = split_url(url)?;
    let Some((index, domain)) = state.table.domain(&url.host) else {
        return Ok(Err(Failure::new(
            Reason::UnknownDomain,
            "no domain serves this host",
        )));
    };
    // The proxy refuses these paths before any rule: say the same here.
    if let Err(why) = vet_path(url.path) {
        return Ok(Err(Failure::new(Reason::BadRequest, why)));
    }
    // An RTMP URL is read as the RTMP gate reads a session (app, stream, one
    // reading of the signature).
    if url.origin.starts_with("rtmp") {
        let (app, stream) = url.path[1..]
            .rsplit_once('/')
            .unwrap_or(("", &url.path[1..]));
        let tc = format!("{}/{app}", url.origin);
        let name = format!("{stream}?{}", url.query);
        if let Err(f) = crate::rtmp::target::read(&tc, &name, |_| true) {
            return Ok(Err(f));
        }
    }
    if let Some(a) = &domain.access {
        if let Err(f) = a.checks(Route::of_path(url.path).app).check_given(who) {
            return Ok(Err(f));
        }
    }
    let remote_addr = who.client.map(|ip| ip.to_string()).unwrap_or_default();
    let pass = match domain.verify(scene, &url.request(&remote_addr, domain.nested), now) {
        Ok(p) => p,
        Err(f) => return Ok(Err(f)),
    };
    let route = Route::of(pass.path, domain.nested);
    let stream = session_stream(route.stream, route.ext);
    Ok(state.check_forbid(index, route.app, stream, now))
}

/// `url` signed by the first key of its rule, to expire at `expire`. A scene whose
/// rule is `enabled: false` needs no signature: the URL comes back unchanged.
/// `acl`: for a token rule, what the token covers instead of the one URL.
pub fn sign_url(
    table: &Table,
    url: &str,
    scene: Scene,
    remote_addr: &str,
    expire: i64,
    acl: Option<&str>,
) -> Result<String, UrlError> {
    let parts = split_url(url)?;
    let (_, domain) = table
        .domain(&parts.host)
        .ok_or_else(|| UrlError::UnknownDomain(parts.host.to_string()))?;
    let entry = domain.entry(scene, parts.path).map_err(|_| {
        UrlError::NoRule(format!(
            "domain {} has no {scene} rule for this app",
            domain.name
        ))
    })?;
    let req = parts.request(remote_addr, domain.nested);
    let signed = match entry {
        Entry::Disabled => return Ok(url.to_owned()),
        Entry::Rule(rule) => rule.sign(&req, expire)?,
        Entry::Token(t) => {
            let private_key = match t.private_key_file() {
                Some(f) => Some(
                    std::fs::read_to_string(f)
                        .map_err(|e| SignError::BadPrivateKey(format!("{}: {e}", f.display())))?,
                ),
                None => None,
            };
            let how = SignAs {
                acl,
                private_key: private_key.as_deref(),
            };
            t.sign(&req, expire, &how)?
        }
    };
    Ok(format!("{}{signed}", parts.origin))
}

#[derive(Serialize)]
struct CheckJson<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

/// The contract's one-line JSON: `{"status":"pass"}` or
/// `{"status":"fail","reason":"EXPIRED","detail":"…"}`.
pub fn verdict_json(v: &Result<(), Failure>) -> String {
    let j = match v {
        Ok(()) => CheckJson {
            status: "pass",
            reason: None,
            detail: None,
        },
        Err(f) => CheckJson {
            status: "fail",
            reason: Some(f.reason.as_str()),
            detail: Some(&f.detail),
        },
    };
    serde_json::to_string(&j).unwrap_or_else(|_| r#"{"status":"fail","reason":"MALFORMED"}"#.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        for (url, parts) in [
            (
                "http://h.com/live/a.flv?x=1#f",
                ("http://h.com", "h.com", "/live/a.flv", "x=1"),
            ),
            (
                "https://H.com:8443",
                ("https://H.com:8443", "h.com", "/", ""),
            ),
            ("http://[::1]:80/a?", ("http://[::1]:80", "[::1]", "/a", "")),
            (
                "http://h.com./a%2Fb",
                ("http://h.com.", "h.com", "/a%2Fb", ""),
            ),
        ] {
            let p = split_url(url).unwrap();
            assert_eq!((p.origin, &*p.host, p.path, p.query), parts, "{url}");
        }
        for bad in [
            "/live/a.flv",
            "ftp://h/a",
            "http://",
            "http://h/a b",
            "",
            "http://h/\0",
        ] {
            assert!(split_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_lines() {
        assert_eq!(verdict_json(&Ok(())), r#"{"status":"pass"}"#);
        let f = Failure::new(Reason::Expired, "too late");
        assert_eq!(
            verdict_json(&Err(f)),
            r#"{"status":"fail","reason":"EXPIRED","detail":"too late"}"#
        );
    }
}

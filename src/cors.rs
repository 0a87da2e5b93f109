//! CORS for browser players on other origins (hls.js, video.js): livegate adds
//! `Access-Control-Allow-Origin` to admitted responses and to its own refusals, and
//! answers preflights itself — a preflight carries no signature and must never
//! reach the origin.

use http::HeaderValue;
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::config::CorsConfig;

/// One domain's CORS policy.
#[derive(Debug, Clone)]
pub struct Cors {
    any: bool,
    /// Allowed origins, lowercase, without a trailing `/`.
    origins: Vec<String>,
    max_age: u64,
}

impl Cors {
    pub fn new(c: &CorsConfig) -> Cors {
        Cors {
            any: c.allow_origins.iter().any(|o| o == "*"),
            origins: c
                .allow_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            max_age: c.max_age,
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if allowed.
    pub fn allow(&self, req: &RequestHeader) -> Option<HeaderValue> {
        let origin = req.headers.get(http::header::ORIGIN)?;
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        let o = origin.to_str().ok()?.trim_end_matches('/');
        self.origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(o))
            .then(|| origin.clone())
    }

    /// Replaces whatever `Access-Control-*` headers a response has (the
    /// origin's own `Access-Control-Allow-Origin: *` must not open a stream to
    /// pages the policy does not allow) with this policy's for `allowed` (from
    /// [`Cors::allow`]; `None`: no CORS header at all).
    pub fn apply(&self, resp: &mut ResponseHeader, allowed: Option<&HeaderValue>) -> Result<()> {
        let theirs: Vec<http::HeaderName> = resp
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in theirs {
            resp.remove_header(&name);
        }
        if !self.any {
            resp.append_header(http::header::VARY, "Origin")?;
        }
        let Some(allowed) = allowed else {
            return Ok(());
        };
        resp.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed.clone())?;
        resp.insert_header(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "Content-Length, Content-Range",
        )?;
        Ok(())
    }

    /// A preflight (`OPTIONS` with `Access-Control-Request-Method`): the answer
    /// livegate gives itself — 204 with the policy when the origin is allowed,
    /// 403 otherwise.
    pub fn preflight(&self, req: &RequestHeader) -> Result<ResponseHeader> {
        let Some(allowed) = self.allow(req) else {
            let mut r = ResponseHeader::build(403, Some(1))?;
            r.insert_header(http::header::CONTENT_LENGTH, "0")?;
            return Ok(r);
        };
        let mut r = ResponseHeader::build(204, Some(6))?;
        self.apply(&mut r, Some(&allowed))?;
        r.insert_header(
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, HEAD, OPTIONS",
        )?;
        if let Some(h) = req
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        {
            r.insert_header(http::header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone())?;
        }
        r.insert_header(
            http::header::ACCESS_CONTROL_MAX_AGE,
            self.max_age.to_string(),
        )?;
        Ok(r)
    }
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(req: &RequestHeader) -> bool {
    req.method == http::Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build("OPTIONS", b"/live/a.m3u8", None).unwrap();
        if let Some(o) = origin {
            r.insert_header("origin", o).unwrap();
        }
        r.insert_header("access-control-request-method", "GET")
            .unwrap();
        r.insert_header("access-control-request-headers", "range")
            .unwrap();
        r
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let c = Cors::new(&CorsConfig {
            allow_origins: vec!["https://player.example.com/".into()],
            max_age: 600,
        });
        assert!(is_preflight(&req(Some("https://player.example.com"))));
        let ok = c
            .preflight(&req(Some("https://PLAYER.example.com")))
            .unwrap();
        assert_eq!(ok.status, 204);
        assert_eq!(
            ok.headers["access-control-allow-origin"],
            "https://PLAYER.example.com"
        );
        assert_eq!(ok.headers["access-control-allow-headers"], "range");
        assert_eq!(ok.headers["access-control-max-age"], "600");
        assert_eq!(ok.headers["vary"], "Origin");
        assert_eq!(
            c.preflight(&req(Some("https://evil.example")))
                .unwrap()
                .status,
            403
        );
        assert!(c.allow(&req(None)).is_none());
        let any = Cors::new(&CorsConfig {
            allow_origins: vec!["*".into()],
            max_age: 5,
        });
        assert_eq!(any.allow(&req(Some("https://x"))).unwrap(), "*");
    }

    #[test]
    fn the_origins_own_cors_headers_are_replaced() {
        let c = Cors::new(&CorsConfig {
            allow_origins: vec!["https://player.example.com".into()],
            max_age: 600,
        });
        let theirs = || {
            let mut r = ResponseHeader::build(200, None).unwrap();
            r.insert_header("access-control-allow-origin", "*").unwrap();
            r.insert_header("access-control-allow-credentials", "true")
                .unwrap();
            r.insert_header("content-type", "video/x-flv").unwrap();
            r
        };
        let mut refused = theirs();
        c.apply(&mut refused, None).unwrap();
        assert!(refused
            .headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")));
        assert_eq!(refused.headers["content-type"], "video/x-flv");
        let mut allowed = theirs();
        let origin = HeaderValue::from_static("https://player.example.com");
        c.apply(&mut allowed, Some(&origin)).unwrap();
        assert_eq!(
            allowed.headers["access-control-allow-origin"],
            "https://player.example.com"
        );
        assert!(!allowed
            .headers
            .contains_key("access-control-allow-credentials"));
    }
}

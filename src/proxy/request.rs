//! Reading a client's request head: its Host, its client address, its canonical
//! target. Every phase reads these here, so all agree with what routing used.

use std::net::IpAddr;

use bytes::Bytes;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use crate::verdict::{Failure, Reason};

/// The Host a request names: its Host header, else an absolute-form target's
/// authority.
pub fn host_header(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// The target as the client sent it, as text for log lines (before
/// [`crate::canon::settle`] it may differ from `req.uri`).
pub fn raw_target(req: &RequestHeader) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(req.raw_path())
}

/// What a request's end reports of its head (method, target, version, Host,
/// Referer, User-Agent), in memory of its own: a clone would keep the session's
/// whole header buffer alive (its values are slices of it) for as long as a
/// handed-over viewer watches.
pub fn reported_head(req: &RequestHeader) -> RequestHeader {
    let copy = || -> Option<RequestHeader> {
        let mut copy =
            RequestHeader::build_no_case(req.method.clone(), req.raw_path(), Some(3)).ok()?;
        copy.set_version(req.version);
        for name in [
            http::header::HOST,
            http::header::REFERER,
            http::header::USER_AGENT,
        ] {
            for v in req.headers.get_all(&name) {
                let v = http::HeaderValue::from_bytes(v.as_bytes()).ok()?;
                copy.append_header(name.clone(), v).ok()?;
            }
        }
        Some(copy)
    };
    copy().unwrap_or_else(|| req.clone())
}

/// The request target the origin receives: `path`, then `?query` unless empty.
/// Built in one buffer and parsed without another copy.
pub fn upstream_target(path: &str, query: &str) -> Result<http::Uri, Failure> {
    let mut target = Vec::with_capacity(path.len() + 1 + query.len());
    target.extend_from_slice(path.as_bytes());
    if !query.is_empty() {
        target.push(b'?');
        target.extend_from_slice(query.as_bytes());
    }
    http::Uri::from_maybe_shared(Bytes::from(target))
        .map_err(|_| Failure::new(Reason::BadRequest, "the request target cannot be rebuilt"))
}

pub fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// A client address as text, on the stack: formatted once per request and
/// copied wherever it is needed (signature, stream session, forwarding headers,
/// logs), without allocating.
#[derive(Clone, Copy)]
pub struct IpText {
    buf: [u8; 46],
    len: usize,
}

impl Default for IpText {
    fn default() -> IpText {
        IpText {
            buf: [0; 46],
            len: 0,
        }
    }
}

impl IpText {
    pub fn new(ip: Option<IpAddr>) -> IpText {
        use std::io::Write;
        let mut t = IpText::default();
        if let Some(ip) = ip {
            let mut cursor = std::io::Cursor::new(&mut t.buf[..]);
            if write!(cursor, "{ip}").is_ok() {
                t.len = cursor.position() as usize;
            }
        }
        t
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_head_keeps_what_the_access_log_reads_and_nothing_shared() {
        let mut req = RequestHeader::build("GET", b"/live/a.flv?sign=x&t=1", None).unwrap();
        req.set_version(http::Version::HTTP_10);
        let buf = Bytes::from_static(b"Host: h.example\r\nUser-Agent: ffmpeg");
        let host = http::HeaderValue::from_maybe_shared(buf.slice(6..15)).unwrap();
        req.append_header("host", host).unwrap();
        req.append_header("user-agent", "ffmpeg/7").unwrap();
        req.append_header("referer", "https://r.example/").unwrap();
        req.append_header("cookie", "secret=1").unwrap();
        let copy = reported_head(&req);
        assert_eq!(copy.method, req.method);
        assert_eq!(copy.version, http::Version::HTTP_10);
        assert_eq!(raw_target(&copy), "/live/a.flv?sign=x&t=1");
        assert_eq!(host_header(&copy), Some("h.example"));
        for name in ["user-agent", "referer"] {
            assert_eq!(copy.headers.get(name), req.headers.get(name), "{name}");
        }
        assert!(copy.headers.get("cookie").is_none());
        let copied = copy.headers.get("host").unwrap().as_bytes();
        assert!(
            !buf.as_ptr_range().contains(&copied.as_ptr()),
            "the copy's Host still points into the header buffer"
        );
    }

    #[test]
    fn ip_text_holds_any_address() {
        let long = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".parse().ok();
        assert_eq!(
            IpText::new(long).as_str(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(IpText::new("192.0.2.7".parse().ok()).as_str(), "192.0.2.7");
        assert_eq!(IpText::new(None).as_str(), "");
    }
}

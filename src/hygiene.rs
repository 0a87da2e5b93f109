//! What a client may not tell the origin.
//!
//! - Headers the auth server's answer sets (`remote_auth.upstream_headers`, e.g.
//!   `X-User-Id`) are trusted by the origin, so the client's own copies go — under
//!   every spelling an origin may read as the same name: CGI, WSGI and PHP turn both
//!   `X-User-Id` and `X_User_Id` into `HTTP_X_USER_ID`.
//! - Method-override headers go from every request: livegate chose the scene (and
//!   so the rule) by the request's method, and the origin must not act on another.

use http::HeaderName;
use pingora_http::RequestHeader;

/// Headers that ask frameworks to treat a request as another method.
const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Removes the method-override headers and every header whose name equals one of
/// `reserved` once `_` is read as `-` and case is ignored.
pub fn scrub(req: &mut RequestHeader, reserved: &[HeaderName]) {
    for name in &METHOD_OVERRIDES {
        // A lookup is cheap; a removal (Pingora also keeps the names' case) is not,
        // and almost no request carries these.
        if req.headers.contains_key(name) {
            req.remove_header(name);
        }
    }
    if reserved.is_empty() {
        return;
    }
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|k| reserved.iter().any(|r| same_name(k.as_str(), r.as_str())))
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
}

/// Removes a viewer's token from what the origin gets: the cookies named
/// `cookies` (the others stay, in order) and the header `header`.
pub fn drop_token(
    req: &mut RequestHeader,
    cookies: &[&str],
    header: Option<&HeaderName>,
) -> pingora_core::Result<()> {
    if let Some(h) = header {
        req.remove_header(h);
    }
    let cookie = http::header::COOKIE;
    if cookies.is_empty() || !req.headers.contains_key(&cookie) {
        return Ok(());
    }
    let kept: Vec<&str> = req
        .headers
        .get_all(&cookie)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !pair.is_empty() && !cookies.contains(&name)
        })
        .collect();
    let kept = kept.join("; ");
    req.remove_header(&cookie);
    if !kept.is_empty() {
        req.insert_header(cookie, kept)?;
    }
    Ok(())
}

/// Whether two header names are one to a CGI-style origin.
fn same_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_every_spelling_and_the_overrides() {
        let mut req = RequestHeader::build("GET", b"/live/a.flv", None).unwrap();
        for (name, value) in [
            ("X_User_Id", "1"),
            ("x-user-id", "2"),
            ("X-USER_ID", "3"),
            ("X-User-Idx", "kept"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-HTTP-Method", "DELETE"),
            ("X-Method-Override", "DELETE"),
            ("Accept", "kept"),
        ] {
            req.append_header(name.to_owned(), value).unwrap();
        }
        scrub(&mut req, &[HeaderName::from_static("x-user-id")]);
        let mut left: Vec<_> = req.headers.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["accept", "x-user-idx"]);
    }

    #[test]
    fn a_token_cookie_and_header_stay_with_the_edge() {
        let mut req = RequestHeader::build("GET", b"/live/a.m3u8", None).unwrap();
        req.append_header("Cookie", "a=1; __hdnea__=exp=1~hmac=ff")
            .unwrap();
        req.append_header("Cookie", "b=2").unwrap();
        req.append_header("Authorization", "Bearer x.y.z").unwrap();
        let auth = HeaderName::from_static("authorization");
        drop_token(&mut req, &["__hdnea__"], Some(&auth)).unwrap();
        assert_eq!(req.headers.get("cookie").unwrap(), "a=1; b=2");
        assert!(req.headers.get("authorization").is_none());
        let mut only = RequestHeader::build("GET", b"/", None).unwrap();
        only.append_header("Cookie", "__hdnea__=x").unwrap();
        drop_token(&mut only, &["__hdnea__"], None).unwrap();
        assert!(only.headers.get("cookie").is_none());
    }
}

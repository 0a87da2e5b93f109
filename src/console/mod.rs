//! The web console: a page on the admin listener (`/console/`) that shows what
//! the edge is doing — live streams, their connections and bitrate, forbids,
//! rules, access lists, the fleet state — and changes it with a click.
//!
//! It is only a face on the management API: HTML, JS and CSS embedded in the
//! binary (nothing to build or fetch, no third-party code), served without
//! authentication because they hold no data. The page asks for the admin key,
//! keeps it in session storage and signs every API call itself (`t` + `sign`),
//! so the key never crosses the wire and the console opens no new way in. It is
//! served with a `Content-Security-Policy` that allows no inline script, no
//! other origin and no framing.

use http::{Response, StatusCode};

/// Where the console lives on the admin listener.
pub const PREFIX: &str = "/console";

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// What the browser may do with the console's pages: its own scripts, styles
/// and API calls only; no inline script, no plugin, never inside a frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is the console's (the API's are under `/v1/`).
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/console/")
}

/// The answer for a console path: a file, a redirect to `/console/`, or 404.
pub fn serve(path: &str) -> Response<Vec<u8>> {
    let file = match path {
        "/console" => {
            return Response::builder()
                .status(StatusCode::MOVED_PERMANENTLY)
                .header(http::header::LOCATION, "/console/")
                .header(http::header::CONTENT_LENGTH, 0)
                .body(Vec::new())
                .unwrap_or_default()
        }
        "/console/" | "/console/index.html" => Some(("text/html; charset=utf-8", INDEX)),
        "/console/app.js" => Some(("text/javascript; charset=utf-8", APP_JS)),
        "/console/app.css" => Some(("text/css; charset=utf-8", APP_CSS)),
        _ => None,
    };
    let (status, ctype, body) = match file {
        Some((ctype, body)) => (StatusCode::OK, ctype, body.as_bytes().to_vec()),
        None => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"no such console page\n".to_vec(),
        ),
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, ctype)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header("content-security-policy", CSP)
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_the_policy_and_no_inline_script() {
        let r = serve("/console/");
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        let html = String::from_utf8(r.into_body()).unwrap();
        for tag in html.split("<script").skip(1) {
            let (attrs, rest) = tag.split_once('>').unwrap();
            assert!(attrs.contains("src="), "an inline script: <script{tag}");
            assert!(rest.trim_start().starts_with("</script>"), "{tag}");
        }
        // No inline handler either (`onclick=…`): the policy would refuse it.
        let handler = html.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(
            !handler && !html.contains("javascript:"),
            "an inline handler"
        );
        assert_eq!(serve("/console/app.js").status(), 200);
        assert_eq!(serve("/console").status(), 301);
        assert_eq!(serve("/console/../v1/state").status(), 404);
        assert!(owns("/console/x") && owns("/console") && !owns("/consolex"));
    }
}

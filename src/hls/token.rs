//! Segment tokens, pure: what a passing playlist hands its segments.
//!
//! A token is `<expiry hex>.<scope>.<mac>`: the Unix second it expires, the scope it
//! covers (base64url of `dir` and `stream`), and the first 16 bytes of
//! HMAC-SHA256 over (domain, scene, scope, expiry) with the edge's secret, in
//! base64url. The scope is the playlist's stream: with `stream_path: nested` its
//! directory (`/live/cam1/`: every file below), flat its directory and stream name
//! (`/live/` + `cam1`: `cam1.m3u8`, `cam1-12.ts`, `cam1_hi.m3u8`, `cam1/…`), so a
//! token for one stream never opens another stream's files.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::route::{Route, Scene};
use crate::verdict::{Failure, Reason};

/// What a token opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// A directory, starting and ending with `/`.
    pub dir: String,
    /// Flat layouts: the stream whose files (in `dir`) it opens.
    pub stream: Option<String>,
}

impl Scope {
    /// The scope of a playlist at `path`.
    pub fn of(path: &str, nested: bool) -> Scope {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let mut segments = trimmed.split('/');
        if nested {
            if let (Some(app), Some(stream), Some(_)) =
                (segments.next(), segments.next(), segments.next())
            {
                return Scope {
                    dir: format!("/{app}/{stream}/"),
                    stream: None,
                };
            }
        }
        let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
        Scope {
            dir: dir.to_owned(),
            stream: Some(Route::of_path(path).stream.to_owned()),
        }
    }

    /// Whether a request for `path` falls in this scope.
    pub fn covers(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(self.dir.as_str()) else {
            return false;
        };
        match &self.stream {
            None => true,
            Some(s) => rest
                .strip_prefix(s.as_str())
                .is_some_and(|after| after.starts_with(['.', '-', '_', '/'])),
        }
    }

    /// The scope as one line, for keys (remote-auth cache).
    pub fn key(&self) -> String {
        format!("{}{}", self.dir, self.stream.as_deref().unwrap_or(""))
    }

    fn encoded(&self) -> String {
        let raw = format!("{}\n{}", self.dir, self.stream.as_deref().unwrap_or(""));
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(s: &str) -> Option<Scope> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let (dir, stream) = raw.split_once('\n')?;
        (dir.starts_with('/') && dir.ends_with('/')).then(|| Scope {
            dir: dir.to_owned(),
            stream: (!stream.is_empty()).then(|| stream.to_owned()),
        })
    }
}

/// The edge's token secret, keyed once (ring precomputes the HMAC's inner and
/// outer state, so a token costs two SHA-256 blocks).
#[derive(Clone)]
pub struct Secret(hmac::Key);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn new(bytes: [u8; 32]) -> Secret {
        Secret(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }

    fn mac(&self, domain: &str, scene: Scene, scope: &str, expiry: i64) -> [u8; 16] {
        let mut m = hmac::Context::with_key(&self.0);
        let mut time = [0u8; 20];
        let time = fmt_i64(expiry, &mut time);
        for part in [
            b"lgt1".as_slice(),
            domain.as_bytes(),
            scene.as_str().as_bytes(),
            scope.as_bytes(),
            time,
        ] {
            m.update(part);
            m.update(b"\n");
        }
        let tag = m.sign();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        out
    }

    /// A token for `scope` that expires at `expiry`.
    pub fn mint(&self, domain: &str, scene: Scene, scope: &Scope, expiry: i64) -> String {
        let encoded = scope.encoded();
        let mac = self.mac(domain, scene, &encoded, expiry);
        format!("{expiry:x}.{encoded}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Checks a token presented with a request for `path` at `now`; its expiry and
    /// the scope it opens.
    pub fn verify(
        &self,
        token: &str,
        domain: &str,
        scene: Scene,
        path: &str,
        now: i64,
    ) -> Result<(i64, Scope), Failure> {
        let bad = |why: &'static str| Failure::new(Reason::BadToken, why);
        let mut parts = token.split('.');
        let (Some(t), Some(scope), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("the token is not expiry.scope.mac"));
        };
        let expiry =
            i64::from_str_radix(t, 16).map_err(|_| bad("the token's expiry is not hex"))?;
        let presented = URL_SAFE_NO_PAD
            .decode(mac)
            .ok()
            .filter(|m| m.len() == 16 && URL_SAFE_NO_PAD.encode(m) == mac)
            .ok_or_else(|| bad("the token's mac is not 16 bytes of base64url"))?;
        let expected = self.mac(domain, scene, scope, expiry);
        if !bool::from(expected.ct_eq(&presented[..])) {
            return Err(bad(
                "the token was not issued by this edge for this domain and scope",
            ));
        }
        let scope = Scope::decode(scope).ok_or_else(|| bad("the token's scope is unreadable"))?;
        if !scope.covers(path) {
            return Err(bad("the token is for another stream's files"));
        }
        if now > expiry {
            return Err(Failure::with(
                Reason::Expired,
                format!("the token expired at {expiry}, now {now}"),
            ));
        }
        Ok((expiry, scope))
    }
}

/// `n` in decimal, written into `buf` (no allocation on the request path).
fn fmt_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{n}");
    let len = cursor.position() as usize;
    &buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new([7; 32])
    }

    fn check(token: &str, path: &str, now: i64) -> Result<i64, Reason> {
        secret()
            .verify(token, "d", Scene::Pull, path, now)
            .map(|v| v.0)
            .map_err(|f| f.reason)
    }

    #[test]
    fn a_flat_token_opens_its_streams_files_only() {
        let scope = Scope::of("/live/cam1.m3u8", false);
        let t = secret().mint("d", Scene::Pull, &scope, 1000);
        for ok in [
            "/live/cam1-12.ts",
            "/live/cam1.m3u8",
            "/live/cam1_hi.m3u8",
            "/live/cam1/seg.ts",
        ] {
            assert_eq!(check(&t, ok, 999), Ok(1000), "{ok}");
        }
        for other in [
            "/live/cam2-12.ts",
            "/live/cam10-1.ts",
            "/other/cam1-1.ts",
            "/live/cam1x.ts",
        ] {
            assert_eq!(check(&t, other, 999), Err(Reason::BadToken), "{other}");
        }
        assert_eq!(check(&t, "/live/cam1-1.ts", 1001), Err(Reason::Expired));
    }

    #[test]
    fn a_nested_token_opens_its_directory() {
        let t = secret().mint(
            "d",
            Scene::Pull,
            &Scope::of("/live/cam1/index.m3u8", true),
            1000,
        );
        assert_eq!(check(&t, "/live/cam1/3.ts", 0), Ok(1000));
        assert_eq!(check(&t, "/live/cam1/hi/index.m3u8", 0), Ok(1000));
        assert_eq!(check(&t, "/live/cam2/3.ts", 0), Err(Reason::BadToken));
    }

    #[test]
    fn forged_tampered_and_foreign_tokens_are_refused() {
        let scope = Scope::of("/live/cam1.m3u8", false);
        let t = secret().mint("d", Scene::Pull, &scope, 1000);
        let other_edge = Secret::new([8; 32]).mint("d", Scene::Pull, &scope, 1000);
        assert_eq!(
            check(&other_edge, "/live/cam1-1.ts", 0),
            Err(Reason::BadToken)
        );
        let other_domain = secret().mint("e", Scene::Pull, &scope, 1000);
        assert_eq!(
            check(&other_domain, "/live/cam1-1.ts", 0),
            Err(Reason::BadToken)
        );
        // A later expiry, or a wider scope, with the same mac.
        let parts: Vec<&str> = t.split('.').collect();
        let later = format!("{:x}.{}.{}", 5000, parts[1], parts[2]);
        assert_eq!(check(&later, "/live/cam1-1.ts", 0), Err(Reason::BadToken));
        let wider = format!(
            "{}.{}.{}",
            parts[0],
            Scope::of("/live/x/y.m3u8", true).encoded(),
            parts[2]
        );
        assert_eq!(check(&wider, "/live/x/1.ts", 0), Err(Reason::BadToken));
        // The same mac spelt differently (its last character's unused bits).
        let last = parts[2].chars().last().unwrap();
        let sibling = if last == 'A' { 'B' } else { 'A' };
        let respelt = format!(
            "{}.{}.{}{sibling}",
            parts[0],
            parts[1],
            &parts[2][..parts[2].len() - 1]
        );
        assert_eq!(check(&respelt, "/live/cam1-1.ts", 0), Err(Reason::BadToken));
        for junk in ["", "a", "a.b.c", "zz.zz.zz", "3e8..", "3e8.x.y.z"] {
            assert_eq!(
                check(junk, "/live/cam1-1.ts", 0),
                Err(Reason::BadToken),
                "{junk}"
            );
        }
    }
}

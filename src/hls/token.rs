//! Segment tokens, pure: what a passing playlist hands its segments.
//!
//! A token is `<expiry hex>.<binds>.<scope>.<mac>`: the Unix second it expires,
//! what it is bound to (a digit: 1 the client address, 2 the host, 3 both), the
//! stream it opens (base64url of a directory and a stream name), and the first 16
//! bytes of HMAC-SHA256 with the edge's secret over all of that, the domain, the
//! scene and the bound values, in base64url.
//!
//! A token is never wider than the URL that minted it:
//! - its scope is exactly the stream the signature was checked for — with
//!   `stream_path: nested` the stream's directory (`/live/cam1/`: the files
//!   below it), flat the directory and the stream (`/live/` + `cam1`:
//!   `cam1.m3u8`, `cam1-12.ts`, never `cam1_vip.m3u8` or `cam1/…`) — and it opens
//!   playlists and segments only, never an endless `.flv` stream;
//! - it binds what the rule bound (a `{remote_addr}` or `{host}` signature) and
//!   expires with the URL;
//! - it has one spelling: lowercase hex without leading zeros, canonical base64url.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::route::{Route, Scene};
use crate::sign::{Binds, Request};
use crate::streams::session_stream;
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
    /// The scope of a playlist at `path`: the stream its signature was checked for.
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
        let route = Route::of_path(path);
        Scope {
            dir: dir.to_owned(),
            stream: Some(session_stream(route.stream, route.ext).to_owned()),
        }
    }

    /// Whether a request for `path` falls in this scope: an HLS object (playlist,
    /// segment, key, init section) of exactly this stream.
    pub fn covers(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(self.dir.as_str()) else {
            return false;
        };
        let route = Route::of_path(rest);
        if !super::is_object(route.ext) {
            return false;
        }
        match &self.stream {
            None => !rest.is_empty(),
            Some(s) => !rest.contains('/') && session_stream(route.stream, route.ext) == s,
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
        // One spelling needs no check here: the mac covers the scope as presented.
        (dir.starts_with('/') && dir.ends_with('/')).then(|| Scope {
            dir: dir.to_owned(),
            stream: (!stream.is_empty()).then(|| stream.to_owned()),
        })
    }
}

/// The binds of a token as its one digit.
fn binds_digit(b: Binds) -> char {
    match (b.addr, b.host) {
        (false, false) => '0',
        (true, false) => '1',
        (false, true) => '2',
        (true, true) => '3',
    }
}

fn binds_of(digit: &str) -> Option<Binds> {
    let (addr, host) = match digit {
        "0" => (false, false),
        "1" => (true, false),
        "2" => (false, true),
        "3" => (true, true),
        _ => return None,
    };
    Some(Binds { addr, host })
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

/// What a token grants beyond its scope: when it expires and what it is bound to
/// (those of the URL that minted it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub expiry: i64,
    pub binds: Binds,
}

impl Secret {
    pub fn new(bytes: [u8; 32]) -> Secret {
        Secret(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }

    fn mac(
        &self,
        domain: &str,
        scene: Scene,
        scope: &str,
        grant: Grant,
        holder: &Request<'_>,
    ) -> [u8; 16] {
        let mut m = hmac::Context::with_key(&self.0);
        let mut time = [0u8; 20];
        let time = fmt_i64(grant.expiry, &mut time);
        let mut digit = [0u8; 4];
        let digit = binds_digit(grant.binds).encode_utf8(&mut digit);
        let addr = if grant.binds.addr {
            holder.remote_addr
        } else {
            ""
        };
        let host = if grant.binds.host { holder.host } else { "" };
        for part in [
            b"lgt2".as_slice(),
            domain.as_bytes(),
            scene.as_str().as_bytes(),
            scope.as_bytes(),
            time,
            digit.as_bytes(),
            addr.as_bytes(),
            host.as_bytes(),
        ] {
            m.update(part);
            m.update(b"\n");
        }
        let tag = m.sign();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        out
    }

    /// A token for `scope` with `grant`, bound to `holder`'s address and host as
    /// the grant says.
    pub fn mint(
        &self,
        domain: &str,
        scene: Scene,
        scope: &Scope,
        grant: Grant,
        holder: &Request<'_>,
    ) -> String {
        let encoded = scope.encoded();
        let mac = self.mac(domain, scene, &encoded, grant, holder);
        format!(
            "{:x}.{}.{encoded}.{}",
            grant.expiry,
            binds_digit(grant.binds),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// Checks a token presented with `req` at `now`; what it grants and the scope
    /// it opens.
    pub fn verify(
        &self,
        token: &str,
        domain: &str,
        scene: Scene,
        req: &Request<'_>,
        now: i64,
    ) -> Result<(Grant, Scope), Failure> {
        let bad = |why: &'static str| Failure::new(Reason::BadToken, why);
        let Some([t, b, scope, mac]) = crate::sign::query::split_exact(token, '.') else {
            return Err(bad("the token is not expiry.binds.scope.mac"));
        };
        // The mac covers the expiry's value, not its spelling: only the spelling
        // minted (lowercase, no sign, no leading zero) is taken.
        let canonical = !t.is_empty()
            && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && (t == "0" || !t.starts_with('0'));
        let expiry = i64::from_str_radix(t, 16)
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| bad("the token's expiry is not lowercase hex as issued"))?;
        let binds = binds_of(b).ok_or_else(|| bad("the token's binds are not 0-3"))?;
        // The engine refuses padding and unused trailing bits: one spelling.
        let presented = URL_SAFE_NO_PAD
            .decode(mac)
            .ok()
            .filter(|m| m.len() == 16)
            .ok_or_else(|| bad("the token's mac is not 16 bytes of base64url"))?;
        let grant = Grant { expiry, binds };
        let expected = self.mac(domain, scene, scope, grant, req);
        if !bool::from(expected.ct_eq(&presented[..])) {
            return Err(bad(
                "the token was not issued by this edge for this domain, scope and client",
            ));
        }
        let scope = Scope::decode(scope).ok_or_else(|| bad("the token's scope is unreadable"))?;
        if !scope.covers(req.path) {
            return Err(bad("the token is for another stream's files"));
        }
        if now > expiry {
            return Err(Failure::with(
                Reason::Expired,
                format!("the token expired at {expiry}, now {now}"),
            ));
        }
        Ok((grant, scope))
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

    const NONE: Binds = Binds {
        addr: false,
        host: false,
    };

    fn from<'a>(path: &'a str, addr: &'a str, host: &'a str) -> Request<'a> {
        Request {
            host,
            path,
            remote_addr: addr,
            ..Default::default()
        }
    }

    fn mint(path: &str, nested: bool, expiry: i64, binds: Binds) -> String {
        secret().mint(
            "d",
            Scene::Pull,
            &Scope::of(path, nested),
            Grant { expiry, binds },
            &from(path, "192.0.2.1", "a.example.com"),
        )
    }

    fn check_from(token: &str, path: &str, addr: &str, host: &str) -> Result<i64, Reason> {
        secret()
            .verify(token, "d", Scene::Pull, &from(path, addr, host), 999)
            .map(|v| v.0.expiry)
            .map_err(|f| f.reason)
    }

    fn check(token: &str, path: &str, now: i64) -> Result<i64, Reason> {
        secret()
            .verify(
                token,
                "d",
                Scene::Pull,
                &from(path, "192.0.2.1", "a.example.com"),
                now,
            )
            .map(|v| v.0.expiry)
            .map_err(|f| f.reason)
    }

    #[test]
    fn a_flat_token_opens_exactly_its_streams_playlists_and_segments() {
        let t = mint("/live/cam1.m3u8", false, 1000, NONE);
        for ok in ["/live/cam1-12.ts", "/live/cam1.m3u8", "/live/cam1-3.m4s"] {
            assert_eq!(check(&t, ok, 999), Ok(1000), "{ok}");
        }
        for other in [
            "/live/cam2-12.ts",
            "/live/cam10-1.ts",
            "/other/cam1-1.ts",
            "/live/cam1x.ts",
            "/live/cam1_vip.m3u8",
            "/live/cam1-paid.m3u8",
            "/live/cam1_4k-3.ts",
            "/live/cam1.secret/index.m3u8",
            "/live/cam1/seg.ts",
            "/live/cam1.flv",
            "/live/cam1",
        ] {
            assert_eq!(check(&t, other, 999), Err(Reason::BadToken), "{other}");
        }
        assert_eq!(check(&t, "/live/cam1-1.ts", 1001), Err(Reason::Expired));
    }

    #[test]
    fn a_nested_token_opens_its_directorys_hls_files() {
        let t = mint("/live/cam1/index.m3u8", true, 1000, NONE);
        assert_eq!(check(&t, "/live/cam1/3.ts", 0), Ok(1000));
        assert_eq!(check(&t, "/live/cam1/hi/index.m3u8", 0), Ok(1000));
        for other in [
            "/live/cam2/3.ts",
            "/live/cam1_vip/3.ts",
            "/live/cam1/live.flv",
            "/live/cam1.flv",
        ] {
            assert_eq!(check(&t, other, 0), Err(Reason::BadToken), "{other}");
        }
    }

    #[test]
    fn a_token_binds_what_the_signature_bound() {
        let addr = Binds {
            addr: true,
            host: false,
        };
        let t = mint("/live/cam1.m3u8", false, 1000, addr);
        assert_eq!(
            check_from(&t, "/live/cam1-1.ts", "192.0.2.1", "b.example.com"),
            Ok(1000)
        );
        assert_eq!(
            check_from(&t, "/live/cam1-1.ts", "192.0.2.2", "a.example.com"),
            Err(Reason::BadToken)
        );
        let host = Binds {
            addr: false,
            host: true,
        };
        let t = mint("/live/cam1.m3u8", false, 1000, host);
        assert_eq!(
            check_from(&t, "/live/cam1-1.ts", "192.0.2.9", "a.example.com"),
            Ok(1000)
        );
        assert_eq!(
            check_from(&t, "/live/cam1-1.ts", "192.0.2.1", "b.example.com"),
            Err(Reason::BadToken)
        );
        // Claiming fewer binds than were minted breaks the mac.
        let unbound = t.replacen(".2.", ".0.", 1);
        assert_eq!(
            check_from(&unbound, "/live/cam1-1.ts", "192.0.2.1", "b.example.com"),
            Err(Reason::BadToken)
        );
        // Unbound tokens work from anywhere on the domain.
        let t = mint("/live/cam1.m3u8", false, 1000, NONE);
        assert_eq!(
            check_from(&t, "/live/cam1-1.ts", "198.51.100.7", "c.example.com"),
            Ok(1000)
        );
    }

    #[test]
    fn forged_tampered_foreign_and_respelt_tokens_are_refused() {
        let scope = Scope::of("/live/cam1.m3u8", false);
        let t = mint("/live/cam1.m3u8", false, 0x6b0eb085, NONE);
        assert_eq!(check(&t, "/live/cam1-1.ts", 0), Ok(0x6b0eb085));
        let holder = from("/live/cam1.m3u8", "192.0.2.1", "a.example.com");
        let grant = Grant {
            expiry: 1000,
            binds: NONE,
        };
        let other_edge = Secret::new([8; 32]).mint("d", Scene::Pull, &scope, grant, &holder);
        assert_eq!(
            check(&other_edge, "/live/cam1-1.ts", 0),
            Err(Reason::BadToken)
        );
        let other_domain = secret().mint("e", Scene::Pull, &scope, grant, &holder);
        assert_eq!(
            check(&other_domain, "/live/cam1-1.ts", 0),
            Err(Reason::BadToken)
        );
        let parts: Vec<&str> = t.split('.').collect();
        // A later expiry, or a wider scope, with the same mac.
        let later = format!("7fffffff.{}.{}.{}", parts[1], parts[2], parts[3]);
        assert_eq!(check(&later, "/live/cam1-1.ts", 0), Err(Reason::BadToken));
        let wider = format!(
            "{}.{}.{}.{}",
            parts[0],
            parts[1],
            Scope::of("/live/x/y.m3u8", true).encoded(),
            parts[3]
        );
        assert_eq!(check(&wider, "/live/x/1.ts", 0), Err(Reason::BadToken));
        // The same values spelt another way.
        let respelt = |i: usize, with: &str| {
            let mut p = parts.clone();
            p[i] = with;
            p.join(".")
        };
        for (i, spelling) in [
            (0, "6B0EB085"),
            (0, "0006b0eb085"),
            (0, "+6b0eb085"),
            (1, "00"),
            (1, "+0"),
        ] {
            let token = respelt(i, spelling);
            assert_eq!(
                check(&token, "/live/cam1-1.ts", 0),
                Err(Reason::BadToken),
                "{token}"
            );
        }
        let last = parts[3].chars().last().unwrap();
        let sibling = if last == 'A' { 'B' } else { 'A' };
        let mac = format!("{}{sibling}", &parts[3][..parts[3].len() - 1]);
        assert_eq!(
            check(&respelt(3, &mac), "/live/cam1-1.ts", 0),
            Err(Reason::BadToken)
        );
        let scope_last = parts[2].chars().last().unwrap();
        let scope_sibling = if scope_last == 'A' { 'B' } else { 'A' };
        let scope_respelt = format!("{}{scope_sibling}", &parts[2][..parts[2].len() - 1]);
        assert_eq!(
            check(&respelt(2, &scope_respelt), "/live/cam1-1.ts", 0),
            Err(Reason::BadToken)
        );
        for junk in ["", "a", "a.b.c", "zz.zz.zz.zz", "3e8...", "3e8.0.x.y.z"] {
            assert_eq!(
                check(junk, "/live/cam1-1.ts", 0),
                Err(Reason::BadToken),
                "{junk}"
            );
        }
    }
}

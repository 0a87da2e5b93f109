//! Akamai EdgeAuth tokens (Token 2.0), pure: byte-compatible with Akamai's own
//! generator (EdgeAuth-Token-Python, `akamai-edgeauth` on PyPI), so a token its
//! libraries made for a customer's backend opens the stream here.
//!
//! A token is `~`-separated fields, in the generator's order: `ip=`, `st=`,
//! `exp=`, `acl=` (an ACL token) or nothing (a URL token), `id=`, `data=`, then
//! `hmac=`. The HMAC (SHA-256 by default; SHA-1 and MD5 as options) is keyed by
//! the hex-decoded key and covers the fields before `hmac=` exactly as they
//! stand, plus — for a URL token — `url=<path>` and, with a salt, `salt=<salt>`.
//! An ACL is one or more patterns separated by `!`, where `*` stands for any run
//! of characters: `/live/cam1/*` opens the stream's playlist and every segment.
//!
//! Bytes and time in, a verdict out: no I/O, no clock.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::{glob, Refused, Verified};

/// The HMAC's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    Sha256,
    Sha1,
    Md5,
}

/// A token's fields, as they stand in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Token<'a> {
    pub ip: Option<&'a str>,
    pub st: Option<i64>,
    pub exp: i64,
    pub acl: Option<&'a str>,
    pub id: Option<&'a str>,
    pub data: Option<&'a str>,
    pub hmac: &'a str,
    /// Everything before `~hmac=`: what the HMAC covers.
    pub signed: &'a str,
}

/// How a rule's tokens are made and checked.
#[derive(Debug, Clone)]
pub struct EdgeAuth {
    /// The keys, hex-decoded (the first signs).
    keys: Vec<Vec<u8>>,
    pub algorithm: Algorithm,
    pub salt: Option<String>,
    /// The generator's `escape_early`: `ip`, `id`, `data` and a URL token's URL
    /// were percent-encoded (`quote_plus`, lowercase hex) before hashing.
    pub escape_early: bool,
}

const FIELD: char = '~';
const ACL: char = '!';

/// A key that is not an even number of hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("an EdgeAuth key is an even number of hex digits")]
pub struct BadKey;

/// One key as Akamai's property manager shows it (hex), decoded.
pub fn key(hex_key: &str) -> Result<Vec<u8>, BadKey> {
    match hex::decode(hex_key) {
        Ok(k) if !k.is_empty() => Ok(k),
        _ => Err(BadKey),
    }
}

impl EdgeAuth {
    /// From hex keys, as Akamai's property manager shows them.
    pub fn new(hex_keys: &[&str], algorithm: Algorithm) -> Result<EdgeAuth, BadKey> {
        let keys = hex_keys
            .iter()
            .map(|k| key(k))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(BadKey);
        }
        Ok(EdgeAuth {
            keys,
            algorithm,
            salt: None,
            escape_early: false,
        })
    }

    fn mac(&self, key: &[u8], parts: &[&str]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&str]) -> Vec<u8> {
            // HMAC takes a key of any length.
            let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    m.update(&[FIELD as u8]);
                }
                m.update(p.as_bytes());
            }
            m.finalize().into_bytes().to_vec()
        }
        match self.algorithm {
            Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
            Algorithm::Md5 => run::<Hmac<md5::Md5>>(key, parts),
        }
    }

    /// What the HMAC covers besides the token's own fields.
    fn extra(&self, token: &Token<'_>, url: &str) -> Vec<String> {
        let mut extra = Vec::new();
        if token.acl.is_none() {
            extra.push(format!("url={}", self.escaped(url)));
        }
        if let Some(s) = &self.salt {
            extra.push(format!("salt={s}"));
        }
        extra
    }

    fn escaped(&self, text: &str) -> String {
        match self.escape_early {
            true => quote_plus_lower(text),
            false => text.to_owned(),
        }
    }

    /// Checks `token` for a request of `path` (the canonical path, with its
    /// query for URL tokens made over one) from `client_ip` at `now`, allowing
    /// `skew` seconds of clock drift: its expiry, which key matched and
    /// whether it names its client.
    pub fn verify(
        &self,
        token: &str,
        path: &str,
        client_ip: &str,
        now: i64,
        skew: i64,
    ) -> Result<Verified, Refused> {
        let t = parse(token)?;
        let extra = self.extra(&t, path);
        let mut parts: Vec<&str> = vec![t.signed];
        parts.extend(extra.iter().map(String::as_str));
        let given = hex::decode(t.hmac).map_err(|_| Refused::Malformed("hmac is not hex"))?;
        let key = self
            .keys
            .iter()
            .position(|k| bool::from(self.mac(k, &parts).ct_eq(&given)))
            .ok_or(Refused::BadSignature)?;
        if now > t.exp.saturating_add(skew) {
            return Err(Refused::Expired { exp: t.exp });
        }
        if let Some(st) = t.st.filter(|st| now < st.saturating_sub(skew)) {
            return Err(Refused::NotYet { st });
        }
        if let Some(ip) = t.ip {
            if ip != self.escaped(client_ip) {
                return Err(Refused::BadIp);
            }
        }
        if let Some(acl) = t.acl {
            if !acl.split(ACL).any(|pattern| glob(pattern, path, false)) {
                return Err(Refused::OutOfScope);
            }
        }
        Ok(Verified {
            expires: t.exp,
            key,
            ip_bound: t.ip.is_some(),
        })
    }

    /// How many keys the rule holds.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// A token as Akamai's generator writes it: for `acl` patterns (joined by
    /// `!`), or with `acl` empty for the URL `url`. Signed with the first key.
    pub fn generate(&self, fields: &Fields<'_>) -> String {
        let mut token: Vec<String> = Vec::new();
        if let Some(ip) = fields.ip {
            token.push(format!("ip={}", self.escaped(ip)));
        }
        if let Some(st) = fields.st {
            token.push(format!("st={st}"));
        }
        token.push(format!("exp={}", fields.exp));
        if !fields.acl.is_empty() {
            token.push(format!("acl={}", fields.acl.join(&ACL.to_string())));
        }
        if let Some(id) = fields.id {
            token.push(format!("id={}", self.escaped(id)));
        }
        if let Some(data) = fields.data {
            token.push(format!("data={}", self.escaped(data)));
        }
        let mut source = token.clone();
        if fields.acl.is_empty() {
            source.push(format!("url={}", self.escaped(fields.url)));
        }
        if let Some(s) = &self.salt {
            source.push(format!("salt={s}"));
        }
        let parts: Vec<&str> = source.iter().map(String::as_str).collect();
        let mac = self.mac(&self.keys[0], &parts);
        token.push(format!("hmac={}", hex::encode(mac)));
        token.join(&FIELD.to_string())
    }
}

/// What a generated token says.
#[derive(Debug, Clone, Default)]
pub struct Fields<'a> {
    pub ip: Option<&'a str>,
    pub st: Option<i64>,
    pub exp: i64,
    /// ACL patterns; empty for a URL token.
    pub acl: Vec<&'a str>,
    /// A URL token's URL (its path, and query when signed with one).
    pub url: &'a str,
    pub id: Option<&'a str>,
    pub data: Option<&'a str>,
}

/// A token's fields. The generator writes each at most once, `hmac` last; a
/// token that says otherwise could be read two ways and is refused.
pub fn parse(token: &str) -> Result<Token<'_>, Refused> {
    let (signed, hmac) = token
        .rsplit_once("~hmac=")
        .or_else(|| token.strip_prefix("hmac=").map(|h| ("", h)))
        .ok_or(Refused::Malformed("no hmac"))?;
    if hmac.is_empty() || hmac.contains(FIELD) {
        return Err(Refused::Malformed("hmac is not last"));
    }
    let mut t = Token {
        hmac,
        signed,
        ..Token::default()
    };
    let mut exp = None;
    let number = |v: &str, what| -> Result<i64, Refused> {
        match v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() && v.len() < 19 {
            true => v.parse().map_err(|_| Refused::Malformed(what)),
            false => Err(Refused::Malformed(what)),
        }
    };
    for field in signed
        .split(FIELD)
        .filter(|f| !signed.is_empty() || !f.is_empty())
    {
        let (name, value) = field
            .split_once('=')
            .ok_or(Refused::Malformed("a field without ="))?;
        let twice = Refused::Malformed("a field given twice");
        match name {
            "ip" if t.ip.is_none() => t.ip = Some(value),
            "st" if t.st.is_none() => t.st = Some(number(value, "st is not a number")?),
            "exp" if exp.is_none() => exp = Some(number(value, "exp is not a number")?),
            "acl" if t.acl.is_none() => t.acl = Some(value),
            "id" if t.id.is_none() => t.id = Some(value),
            "data" if t.data.is_none() => t.data = Some(value),
            "ip" | "st" | "exp" | "acl" | "id" | "data" => return Err(twice),
            _ => return Err(Refused::Malformed("an unknown field")),
        }
    }
    t.exp = exp.ok_or(Refused::Malformed("no exp"))?;
    Ok(t)
}

/// Python's `quote_plus` (safe: letters, digits, `_.-~`; space as `+`) with
/// the hex digits lowercased, as the generator's `escape_early` writes.
fn quote_plus_lower(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

    /// Made by `akamai-edgeauth` 0.3.2 (Akamai's EdgeAuth-Token-Python) with
    /// `KEY`; see each case for its arguments.
    /// (case, hash, salt, escape_early, a path it opens, the token)
    type Case = (
        &'static str,
        Algorithm,
        Option<&'static str>,
        bool,
        &'static str,
        &'static str,
    );

    const REFERENCE: [Case; 7] = [
        // generate_acl_token('/live/cam1/*', start_time=1796140000, end_time=1796143600)
        (
            "acl",
            Algorithm::Sha256,
            None,
            false,
            "/live/cam1/index.m3u8",
            "st=1796140000~exp=1796143600~acl=/live/cam1/*~hmac=c195a006aaf6256ac3156e9f460d6beeb659a6a08d2424d0ec50e83c2cc49e16",
        ),
        // generate_acl_token(['/live/cam1/*', '/live/cam2/*'], …)
        (
            "acl-multi",
            Algorithm::Sha256,
            None,
            false,
            "/live/cam2/seg-7.ts",
            "st=1796140000~exp=1796143600~acl=/live/cam1/*!/live/cam2/*~hmac=1bf216633d24747df3894750b3e131b144efb770dc919285f63dae9decf6be52",
        ),
        // generate_url_token('/live/cam1/index.m3u8', end_time=1796143600)
        (
            "url",
            Algorithm::Sha256,
            None,
            false,
            "/live/cam1/index.m3u8",
            "exp=1796143600~hmac=dbeab6fa51ffb920fb72c0374ff909e98d7ed516b5ce1282ab25ff3f8f3b15b6",
        ),
        // generate_url_token('/live/cam1.flv', ip='192.0.2.7', session_id='abc 123',
        //                    payload='x=1&y=2', start_time=1796140000, end_time=1796143600)
        (
            "url-ip-id-data",
            Algorithm::Sha256,
            None,
            false,
            "/live/cam1.flv",
            "ip=192.0.2.7~st=1796140000~exp=1796143600~id=abc 123~data=x=1&y=2~hmac=05da29530924a60241a88ca398f5ae5351ba625b9cc97ddeb1c96dda467b3f4f",
        ),
        // generate_url_token('/live/cam1/index.m3u8?a=b', escape_early=True, session_id='abc 123', …)
        (
            "url-escape",
            Algorithm::Sha256,
            None,
            true,
            "/live/cam1/index.m3u8?a=b",
            "exp=1796143600~id=abc+123~hmac=d4e3f15e10555aa42b0cca0f119636195301466997fdf7f8b3a4026b3d678ed1",
        ),
        // generate_acl_token('/live/*', end_time=1796143600, algorithm='sha1')
        (
            "sha1",
            Algorithm::Sha1,
            None,
            false,
            "/live/x/y.ts",
            "exp=1796143600~acl=/live/*~hmac=274a4f8fd73d2a4d378915c0d0739965cf326938",
        ),
        // generate_acl_token('/live/*', end_time=1796143600, algorithm='md5', salt='pepper')
        (
            "md5-salt",
            Algorithm::Md5,
            Some("pepper"),
            false,
            "/live/a.flv",
            "exp=1796143600~acl=/live/*~hmac=516e15ac6c44181ade31ecda781c0121",
        ),
    ];

    fn rule(algorithm: Algorithm, salt: Option<&str>, escape_early: bool) -> EdgeAuth {
        let mut e = EdgeAuth::new(&["00ff", KEY], algorithm).unwrap();
        e.salt = salt.map(str::to_owned);
        e.escape_early = escape_early;
        e
    }

    #[test]
    fn the_reference_generators_tokens_verify_with_a_second_key() {
        for (name, alg, salt, early, path, token) in REFERENCE {
            let e = rule(alg, salt, early);
            assert_eq!(
                e.verify(token, path, "192.0.2.7", 1_796_141_000, 0)
                    .map(|v| v.expires),
                Ok(1_796_143_600),
                "{name}"
            );
        }
    }

    #[test]
    fn we_generate_what_the_reference_generates() {
        let mut e = EdgeAuth::new(&[KEY], Algorithm::Sha256).unwrap();
        let acl = e.generate(&Fields {
            st: Some(1_796_140_000),
            exp: 1_796_143_600,
            acl: vec!["/live/cam1/*"],
            ..Default::default()
        });
        assert_eq!(acl, REFERENCE[0].5);
        let url = e.generate(&Fields {
            ip: Some("192.0.2.7"),
            st: Some(1_796_140_000),
            exp: 1_796_143_600,
            url: "/live/cam1.flv",
            id: Some("abc 123"),
            data: Some("x=1&y=2"),
            ..Default::default()
        });
        assert_eq!(url, REFERENCE[3].5);
        e.escape_early = true;
        let escaped = e.generate(&Fields {
            exp: 1_796_143_600,
            url: "/live/cam1/index.m3u8?a=b",
            id: Some("abc 123"),
            ..Default::default()
        });
        assert_eq!(escaped, REFERENCE[4].5);
    }

    #[test]
    fn tampered_expired_early_out_of_scope_and_other_clients_are_refused() {
        let e = rule(Algorithm::Sha256, None, false);
        let now = 1_796_141_000;
        let acl = REFERENCE[0].5;
        let v = |token: &str, path: &str, ip: &str, now: i64| {
            e.verify(token, path, ip, now, 0).map(|v| v.expires)
        };
        assert_eq!(
            v(&acl.replace("cam1/*", "cam9/*"), "/live/cam9/a.ts", "", now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            v(acl, "/live/cam2/index.m3u8", "", now),
            Err(Refused::OutOfScope)
        );
        assert_eq!(
            v(acl, "/live/cam1/index.m3u8", "", 1_796_143_601),
            Err(Refused::Expired { exp: 1_796_143_600 })
        );
        assert_eq!(
            e.verify(acl, "/live/cam1/x.ts", "", 1_796_143_601, 5)
                .map(|v| v.expires),
            Ok(1_796_143_600)
        );
        assert_eq!(
            v(acl, "/live/cam1/index.m3u8", "", 1_796_139_999),
            Err(Refused::NotYet { st: 1_796_140_000 })
        );
        // A URL token opens its URL only.
        let url = REFERENCE[2].5;
        assert_eq!(
            v(url, "/live/cam1/seg-1.ts", "", now),
            Err(Refused::BadSignature)
        );
        let bound = REFERENCE[3].5;
        assert_eq!(
            v(bound, "/live/cam1.flv", "192.0.2.8", now),
            Err(Refused::BadIp)
        );
        let wrong_key = EdgeAuth::new(&["00ff"], Algorithm::Sha256).unwrap();
        assert_eq!(
            wrong_key
                .verify(acl, "/live/cam1/a.ts", "", now, 0)
                .map(|v| v.expires),
            Err(Refused::BadSignature)
        );
    }

    #[test]
    fn tokens_that_read_two_ways_are_malformed() {
        let e = rule(Algorithm::Sha256, None, false);
        for bad in [
            "",
            "exp=1~acl=/*",
            "exp=1~exp=2~hmac=00",
            "exp=x~hmac=00",
            "exp=1~colour=red~hmac=00",
            "exp=1~hmac=00~acl=/*",
            "exp=1~hmac=zz",
            "st=1~hmac=00",
            "exp=-1~hmac=00",
        ] {
            assert!(
                matches!(
                    e.verify(bad, "/a", "", 0, 0).map(|v| v.expires),
                    Err(Refused::Malformed(_) | Refused::BadSignature)
                ),
                "{bad}"
            );
            assert!(
                e.verify(bad, "/a", "", 0, 0).map(|v| v.expires).is_err(),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("exp=1~exp=2~hmac=00"),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(
            parse("exp=1~hmac=00~acl=/*"),
            Err(Refused::Malformed(_))
        ));
    }

    #[test]
    fn acl_patterns() {
        assert!(glob("/live/cam1/*", "/live/cam1/index.m3u8", false));
        assert!(glob("/live/*", "/live/a/b/c.ts", false));
        assert!(glob("/live/*/index.m3u8", "/live/cam1/index.m3u8", false));
        assert!(!glob("/live/*/index.m3u8", "/live/cam1/seg.ts", false));
        assert!(!glob("/live/cam1/*", "/live/cam10/a.ts", false));
        assert!(glob("/live/cam1*", "/live/cam10/a.ts", false));
        assert!(!glob("/live/cam1/*", "/live/cam2/a.ts", false));
        assert!(glob("*", "/anything", false));
        assert!(glob("/exact.flv", "/exact.flv", false));
        assert!(!glob("/exact.flv", "/exact.flv2", false));
        assert_eq!(quote_plus_lower("a b/c?d=é"), "a+b%2fc%3fd%3d%c3%a9");
    }
}

//! JWTs, as MediaMTX, Ant Media and newer backends issue them, pure: checked
//! with `jsonwebtoken` (on ring) against the rule's keys — HS256/384/512 shared
//! secrets, RS256 and ES256 public keys — with the time given, not read: `exp`
//! and `nbf` are checked here against `now` and the rule's skew, so the core
//! stays free of clocks.
//!
//! A token is scoped: the rule may require `aud` and `iss`, and name a claim
//! that must equal the request's stream, or one whose value the request's path
//! must start with — so a token for one stream opens no other.

use jsonwebtoken::{
    decode, decode_header, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde_json::Value;
use thiserror::Error;

use super::{Refused, Verified};

/// A key of a `jwt` rule.
#[derive(Debug, Clone)]
pub enum JwtKey {
    /// A shared secret (HS256, HS384, HS512).
    Secret(String),
    /// An RSA public key in PEM (RS256).
    Rsa(String),
    /// A P-256 public key in PEM (ES256).
    Ec(String),
    /// A key of a JWKS document: RSA (RS256) or P-256 (ES256).
    Jwk(Box<jsonwebtoken::jwk::Jwk>),
}

/// A key that does not parse as what it says.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a usable JWT key: {0}")]
pub struct BadKey(pub String);

/// What a token must say besides its signature.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    pub audience: Option<String>,
    pub issuer: Option<String>,
    /// A claim that must equal the request's stream name.
    pub stream_claim: Option<String>,
    /// A claim the request's path must start with.
    pub path_claim: Option<String>,
}

/// The keys and requirements of a `jwt` rule.
pub struct Jwt {
    keys: Vec<(Vec<Algorithm>, DecodingKey)>,
    need: Requirements,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|(a, _)| a).collect();
        f.debug_struct("Jwt")
            .field("algorithms", &algs)
            .field("need", &self.need)
            .finish()
    }
}

/// The public keys of a JWKS document (RSA: RS256; P-256: ES256), as
/// identity providers publish them.
pub fn jwks(text: &str) -> Result<Vec<JwtKey>, BadKey> {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(text).map_err(|e| BadKey(format!("not a JWKS document: {e}")))?;
    Ok(set
        .keys
        .into_iter()
        .map(|k| JwtKey::Jwk(Box::new(k)))
        .collect())
}

/// One key as `jsonwebtoken` verifies with it, with the algorithms it is for
/// (a secret never verifies an RS256 token, nor a public key an HS256 one).
pub fn decoding_key(k: &JwtKey) -> Result<(Vec<Algorithm>, DecodingKey), BadKey> {
    match k {
        JwtKey::Secret(s) if s.len() >= 16 => Ok((
            vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            DecodingKey::from_secret(s.as_bytes()),
        )),
        JwtKey::Secret(_) => Err(BadKey("a shared secret of at least 16 bytes".into())),
        JwtKey::Rsa(pem) => DecodingKey::from_rsa_pem(pem.as_bytes())
            .map(|k| (vec![Algorithm::RS256], k))
            .map_err(|e| BadKey(format!("RSA public key: {e}"))),
        JwtKey::Ec(pem) => DecodingKey::from_ec_pem(pem.as_bytes())
            .map(|k| (vec![Algorithm::ES256], k))
            .map_err(|e| BadKey(format!("EC public key: {e}"))),
        JwtKey::Jwk(jwk) => {
            use jsonwebtoken::jwk::AlgorithmParameters as P;
            let algs = match &jwk.algorithm {
                P::RSA(_) => vec![Algorithm::RS256],
                P::EllipticCurve(_) => vec![Algorithm::ES256],
                _ => return Err(BadKey("a JWKS key that is not RSA or EC".into())),
            };
            DecodingKey::from_jwk(jwk)
                .map(|k| (algs, k))
                .map_err(|e| BadKey(format!("JWKS key: {e}")))
        }
    }
}

impl Jwt {
    pub fn new(keys: &[JwtKey], need: Requirements) -> Result<Jwt, BadKey> {
        let keys = keys
            .iter()
            .map(decoding_key)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(BadKey("a rule needs at least one key".into()));
        }
        Ok(Jwt { keys, need })
    }

    /// Checks `token` for a request of `path` (canonical) whose stream is
    /// `stream`, at `now` with `skew` seconds of drift: its `exp` and which
    /// key verified.
    pub fn verify(
        &self,
        token: &str,
        path: &str,
        stream: &str,
        now: i64,
        skew: i64,
    ) -> Result<Verified, Refused> {
        let header = decode_header(token).map_err(|_| Refused::Malformed("not a JWT"))?;
        let mut claims = None;
        for (index, (algs, key)) in self
            .keys
            .iter()
            .enumerate()
            .filter(|(_, (algs, _))| algs.contains(&header.alg))
        {
            let mut v = Validation::new(header.alg);
            v.algorithms = algs.clone();
            // Times are checked below against the given `now`; audience too.
            v.validate_exp = false;
            v.validate_nbf = false;
            v.validate_aud = false;
            v.required_spec_claims.clear();
            match decode::<Value>(token, key, &v) {
                Ok(t) => {
                    claims = Some((t.claims, index));
                    break;
                }
                Err(e) => match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => continue,
                    _ => return Err(Refused::Malformed("the JWT does not decode")),
                },
            }
        }
        let (claims, key) = claims.ok_or(Refused::BadSignature)?;
        let time = |name: &str| match &claims[name] {
            Value::Null => Ok(None),
            v => v
                .as_i64()
                .map(Some)
                .ok_or(Refused::Malformed("a time claim is not a number")),
        };
        let exp = time("exp")?.ok_or(Refused::Malformed("no exp"))?;
        if now >= exp.saturating_add(skew) {
            return Err(Refused::Expired { exp });
        }
        if let Some(nbf) = time("nbf")?.filter(|nbf| now < nbf.saturating_sub(skew)) {
            return Err(Refused::NotYet { st: nbf });
        }
        let says = |claim: &str, want: &str| match &claims[claim] {
            Value::String(s) => s == want,
            Value::Array(a) => a.iter().any(|v| v.as_str() == Some(want)),
            _ => false,
        };
        let scoped = self.need.audience.as_deref().is_none_or(|a| says("aud", a))
            && self.need.issuer.as_deref().is_none_or(|i| says("iss", i))
            && self
                .need
                .stream_claim
                .as_deref()
                .is_none_or(|c| says(c, stream))
            && self.need.path_claim.as_deref().is_none_or(|c| {
                claims[c]
                    .as_str()
                    .is_some_and(|prefix| !prefix.is_empty() && path.starts_with(prefix))
            });
        match scoped {
            true => Ok(Verified {
                expires: exp,
                key,
                ip_bound: false,
            }),
            false => Err(Refused::OutOfScope),
        }
    }

    /// How many keys the rule holds.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// What its tokens must say (what `livegate sign` writes into one).
    pub fn requirements(&self) -> &Requirements {
        &self.need
    }
}

impl JwtKey {
    /// A configured key: a PEM public key (RSA or P-256, told apart by trying),
    /// or else a shared secret.
    pub fn read(text: &str) -> JwtKey {
        if !text.trim_start().starts_with("-----BEGIN") {
            return JwtKey::Secret(text.to_owned());
        }
        match DecodingKey::from_rsa_pem(text.as_bytes()) {
            Ok(_) => JwtKey::Rsa(text.to_owned()),
            Err(_) => JwtKey::Ec(text.to_owned()),
        }
    }
}

/// An HS256 token with `claims`, for `livegate sign` with a shared secret.
pub fn sign_hs256(secret: &str, claims: &Value) -> Result<String, BadKey> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| BadKey(e.to_string()))
}

/// An RS256 or ES256 token with `claims`, for `livegate sign` with the
/// backend's PEM private key (RSA or P-256).
pub fn sign_private(pem: &str, claims: &Value) -> Result<String, BadKey> {
    let (alg, key) = match EncodingKey::from_rsa_pem(pem.as_bytes()) {
        Ok(k) => (Algorithm::RS256, k),
        Err(_) => EncodingKey::from_ec_pem(pem.as_bytes())
            .map(|k| (Algorithm::ES256, k))
            .map_err(|_| BadKey("the private key is not an RSA or P-256 key in PEM".into()))?,
    };
    jsonwebtoken::encode(&Header::new(alg), claims, &key).map_err(|e| BadKey(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "jwtSecret2026-long-enough-for-hs256";
    use crate::sign::cdn::fixtures::RSA_PUBLIC;

    const EC_PUBLIC: &str = r"-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzWvTLoQE9kDidhAnGEnUUQUFy7qd
jOhLXKuAzFlCJZq+E+0H5Y37qxfUTkBh4sg9OKUnCrWe37mMCtKXjyZEHQ==
-----END PUBLIC KEY-----";
    /// Made by PyJWT 2.15 (`jwt.encode(claims, key, algorithm=…)`) with claims
    /// `{"exp": 1796143600, "nbf": 1796140000, "iss": "backend.example.com",
    /// "aud": "livegate", "stream": "cam1", "path": "/live/cam1/"}`.
    const HS256: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3OTYxNDM2MDAsIm5iZiI6MTc5NjE0MDAwMCwiaXNzIjoiYmFja2VuZC5leGFtcGxlLmNvbSIsImF1ZCI6ImxpdmVnYXRlIiwic3RyZWFtIjoiY2FtMSIsInBhdGgiOiIvbGl2ZS9jYW0xLyJ9.gj_C3KuFnHOgfnGWc2waJcbPwAbwRnOBo6soZSZn-jE";
    const RS256: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3OTYxNDM2MDAsIm5iZiI6MTc5NjE0MDAwMCwiaXNzIjoiYmFja2VuZC5leGFtcGxlLmNvbSIsImF1ZCI6ImxpdmVnYXRlIiwic3RyZWFtIjoiY2FtMSIsInBhdGgiOiIvbGl2ZS9jYW0xLyJ9.Ld4v1Nw0iuZG6gzYzsxD3W88-QSVS6LRCEBsGN1aG9edJneYLV9BbLPA3kThNL5PliuoXKbfcHdx3DD3C-KwsggPfsCPxFWQBRE4sQTrzJzUGX5ct6mCsmSjwPtbRkFtzLNevtZA_03qEjO2F9i14qFaINnUcNBVpMc7CSNnQPyc1GlBQYNOS-YCfsbEXB-fGfetiNsefxSCAz5csBOFSZSt5qqX2ty63ZbxzsTUpp_reAcJX0sckfpeW8xNJDsYQNr5xOXCuq9BHbzzAwDlpHL8kqhJ8g2czVf8EQv1jhLD6tkvI7Wu6h3et-NutksD71JvYanBvZ-T5tNDEUn3mw";
    const ES256: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3OTYxNDM2MDAsIm5iZiI6MTc5NjE0MDAwMCwiaXNzIjoiYmFja2VuZC5leGFtcGxlLmNvbSIsImF1ZCI6ImxpdmVnYXRlIiwic3RyZWFtIjoiY2FtMSIsInBhdGgiOiIvbGl2ZS9jYW0xLyJ9.RqwmclFui9DALjxMCirDUueRMSlnmOPk4zwLqrzd-i_-PE0plvANh48goNvyewctZPsX6N-mVQoqAE8_wQ21Bg";
    const NOW: i64 = 1_796_141_000;

    fn rule(need: Requirements) -> Jwt {
        Jwt::new(
            &[
                JwtKey::Secret(SECRET.into()),
                JwtKey::Rsa(RSA_PUBLIC.into()),
                JwtKey::Ec(EC_PUBLIC.into()),
            ],
            need,
        )
        .unwrap()
    }

    fn scoped() -> Requirements {
        Requirements {
            audience: Some("livegate".into()),
            issuer: Some("backend.example.com".into()),
            stream_claim: Some("stream".into()),
            path_claim: Some("path".into()),
        }
    }

    #[test]
    fn pyjwts_tokens_verify_for_their_stream() {
        let j = rule(scoped());
        for t in [HS256, RS256, ES256] {
            assert_eq!(
                j.verify(t, "/live/cam1/index.m3u8", "cam1", NOW, 0)
                    .map(|v| v.expires),
                Ok(1_796_143_600),
                "{t}"
            );
        }
    }

    #[test]
    fn other_streams_times_issuers_and_keys_are_refused() {
        let j = rule(scoped());
        for t in [HS256, RS256, ES256] {
            assert_eq!(
                j.verify(t, "/live/cam2/index.m3u8", "cam2", NOW, 0)
                    .map(|v| v.expires),
                Err(Refused::OutOfScope)
            );
            assert_eq!(
                j.verify(t, "/live/cam1/index.m3u8", "cam1", 1_796_143_600, 0)
                    .map(|v| v.expires),
                Err(Refused::Expired { exp: 1_796_143_600 })
            );
            assert_eq!(
                j.verify(t, "/live/cam1/index.m3u8", "cam1", 1_796_139_000, 0)
                    .map(|v| v.expires),
                Err(Refused::NotYet { st: 1_796_140_000 })
            );
        }
        let other_aud = rule(Requirements {
            audience: Some("elsewhere".into()),
            ..scoped()
        });
        assert_eq!(
            other_aud
                .verify(HS256, "/live/cam1/a.ts", "cam1", NOW, 0)
                .map(|v| v.expires),
            Err(Refused::OutOfScope)
        );
        let wrong = Jwt::new(
            &[JwtKey::Secret("anotherSecret-2026-xyz".into())],
            Requirements::default(),
        )
        .unwrap();
        assert_eq!(
            wrong
                .verify(HS256, "/live/cam1/a.ts", "cam1", NOW, 0)
                .map(|v| v.expires),
            Err(Refused::BadSignature)
        );
        // Only HS keys: an RS256 token finds no key of its kind.
        assert_eq!(
            wrong
                .verify(RS256, "/live/cam1/a.ts", "cam1", NOW, 0)
                .map(|v| v.expires),
            Err(Refused::BadSignature)
        );
        // A flipped signature byte, a token of another shape, `alg: none`.
        let mut t = HS256.to_owned();
        let last = t.pop().unwrap();
        t.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            j.verify(&t, "/live/cam1/a.ts", "cam1", NOW, 0)
                .map(|v| v.expires),
            Err(Refused::BadSignature)
        );
        assert!(matches!(
            j.verify("x.y", "/", "", NOW, 0).map(|v| v.expires),
            Err(Refused::Malformed(_))
        ));
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjE3OTYxNDM2MDB9.";
        assert!(j
            .verify(none, "/live/cam1/a.ts", "cam1", NOW, 0)
            .map(|v| v.expires)
            .is_err());
    }

    #[test]
    fn what_we_sign_verifies() {
        let claims = serde_json::json!({"exp": 1_796_143_600, "stream": "cam1"});
        let t = sign_hs256(SECRET, &claims).unwrap();
        let j = rule(Requirements {
            stream_claim: Some("stream".into()),
            ..Default::default()
        });
        assert_eq!(
            j.verify(&t, "/live/cam1.flv", "cam1", NOW, 0)
                .map(|v| v.expires),
            Ok(1_796_143_600)
        );
        assert!(Jwt::new(&[JwtKey::Secret("short".into())], Requirements::default()).is_err());
    }
}

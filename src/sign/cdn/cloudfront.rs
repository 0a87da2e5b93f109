//! CloudFront signed URLs, pure: byte-compatible with AWS's own signers
//! (`botocore`'s `CloudFrontSigner`, the console's examples), so a URL a
//! customer's backend signs for CloudFront opens the stream here.
//!
//! - **Canned policy**: `Expires`, `Signature`, `Key-Pair-Id`. The signed
//!   message is the policy CloudFront would build, byte for byte:
//!   `{"Statement":[{"Resource":"<url>","Condition":{"DateLessThan":{"AWS:EpochTime":<expires>}}}]}`
//!   with `<url>` the request's URL without those three parameters.
//! - **Custom policy**: `Policy` (the JSON, in CloudFront's base64), `Signature`,
//!   `Key-Pair-Id`: the signature covers the policy's bytes as sent; the policy
//!   says what it covers — a `Resource` with `*` and `?` wildcards,
//!   `DateLessThan`, optional `DateGreaterThan` and `IpAddress` (a CIDR).
//! - Signatures are RSA-SHA1 (PKCS#1 v1.5), as CloudFront signs, written in
//!   CloudFront's base64 (`+` `=` `/` as `-` `_` `~`). The edge holds only
//!   public keys, each named by its key-pair (or public-key) id.
//!
//! Bytes and time in, a verdict out: no I/O, no clock.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pingora_memory_cache::MemoryCache;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPublicKey};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::{glob, Refused, Verified};

/// A key that is not an RSA key in PEM.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not an RSA key in PEM (BEGIN PUBLIC KEY, BEGIN RSA PUBLIC KEY, or for signing BEGIN PRIVATE KEY / BEGIN RSA PRIVATE KEY)")]
pub struct BadKey;

/// What a request presents: the query parameters (or cookies) CloudFront reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    pub expires: Option<&'a str>,
    pub policy: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub key_pair_id: Option<&'a str>,
}

/// The public keys of a rule, by id, and the signatures they have verified.
pub struct CloudFront {
    /// (id, the key for `ring`'s RSA-SHA1 PKCS#1 verification — an order of
    /// magnitude faster than the pure-Rust `rsa` crate's — and its modulus
    /// length, which a signature must have).
    keys: Vec<(String, UnparsedPublicKey<Vec<u8>>, usize)>,
    /// SHA-256 of (key id, message, signature) → itself, for signatures that
    /// verified: a 2048-bit RSA verification costs tens of microseconds, and a
    /// cookie is presented again with every segment. That a signature is good is
    /// timeless (the policy's dates are checked on every request); a reload
    /// that changes the keys builds a new rule, and with it an empty cache.
    /// The full digest is stored and compared, so a hash collision of the
    /// cache's own key cannot stand in for a verification.
    verified: MemoryCache<[u8; 32], [u8; 32]>,
}

/// How many verified signatures a rule remembers.
const VERIFIED: usize = 8192;

impl std::fmt::Debug for CloudFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _, _)| id.as_str()).collect();
        f.debug_struct("CloudFront").field("key_ids", &ids).finish()
    }
}

impl CloudFront {
    /// From (key-pair id, PEM public key) pairs.
    pub fn new(keys: &[(&str, &str)]) -> Result<CloudFront, BadKey> {
        let keys = keys
            .iter()
            .map(|(id, pem)| {
                let (ring, size) = public_key(pem)?;
                Ok((id.to_string(), ring, size))
            })
            .collect::<Result<Vec<_>, BadKey>>()?;
        if keys.is_empty() {
            return Err(BadKey);
        }
        Ok(CloudFront {
            keys,
            verified: MemoryCache::new(VERIFIED),
        })
    }

    /// How many keys the rule holds.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The first key's id: what `livegate sign` names in `Key-Pair-Id`.
    pub fn first_id(&self) -> &str {
        self.keys.first().map_or("", |(id, _, _)| id.as_str())
    }

    /// Verifies `signature` of `message` under key `key`, remembering success.
    fn signed(&self, key: usize, message: &[u8], signature: &[u8]) -> Result<(), Refused> {
        let mut h = Sha256::new();
        for part in [self.keys[key].0.as_bytes(), message, signature] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let digest: [u8; 32] = h.finalize().into();
        if self.verified.get(&digest).0 == Some(digest) {
            return Ok(());
        }
        let (_, public, size) = &self.keys[key];
        if signature.len() != *size {
            return Err(Refused::Malformed("Signature is not an RSA signature"));
        }
        public
            .verify(message, signature)
            .map_err(|_| Refused::BadSignature)?;
        self.verified.put(&digest, digest, None);
        Ok(())
    }

    /// Checks what a request presents for `url` (its URL as signed, without
    /// the signing parameters: scheme, host, path and the rest of the query)
    /// from `client` at `now`, allowing `skew` seconds: its expiry, which key
    /// verified and whether the policy names the client.
    pub fn verify(
        &self,
        p: &Presented<'_>,
        url: &str,
        client: Option<IpAddr>,
        now: i64,
        skew: i64,
    ) -> Result<Verified, Refused> {
        let (Some(signature), Some(id)) = (p.signature, p.key_pair_id) else {
            return match (p.expires, p.policy, p.signature, p.key_pair_id) {
                (None, None, None, None) => Err(Refused::Missing),
                _ => Err(Refused::Malformed("Signature and Key-Pair-Id go together")),
            };
        };
        let signature =
            decode(signature).ok_or(Refused::Malformed("Signature is not CloudFront base64"))?;
        let key = self
            .keys
            .iter()
            .position(|(k, _, _)| k == id)
            .ok_or(Refused::BadSignature)?;
        let passed = |expires, ip_bound| Verified {
            expires,
            key,
            ip_bound,
        };
        match (p.expires, p.policy) {
            (Some(expires), None) => {
                let exp = number(expires).ok_or(Refused::Malformed("Expires is not a number"))?;
                self.signed(key, canned(url, exp).as_bytes(), &signature)?;
                if now >= exp.saturating_add(skew) {
                    return Err(Refused::Expired { exp });
                }
                Ok(passed(exp, false))
            }
            (None, Some(policy)) => {
                let bytes =
                    decode(policy).ok_or(Refused::Malformed("Policy is not CloudFront base64"))?;
                self.signed(key, &bytes, &signature)?;
                let policy = Policy::parse(&bytes)?;
                if now >= policy.before.saturating_add(skew) {
                    return Err(Refused::Expired { exp: policy.before });
                }
                if let Some(st) = policy.after.filter(|st| now <= st.saturating_sub(skew)) {
                    return Err(Refused::NotYet { st });
                }
                if let Some(net) = policy.ip {
                    if !client.is_some_and(|c| net.contains(&c)) {
                        return Err(Refused::BadIp);
                    }
                }
                if let Some(resource) = &policy.resource {
                    if !glob(resource, url, true) {
                        return Err(Refused::OutOfScope);
                    }
                }
                Ok(passed(policy.before, policy.ip.is_some()))
            }
            (Some(_), Some(_)) => Err(Refused::Malformed("both Expires and Policy")),
            (None, None) => Err(Refused::Malformed("neither Expires nor Policy")),
        }
    }
}

/// A custom policy's one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Policy {
    resource: Option<String>,
    before: i64,
    after: Option<i64>,
    ip: Option<ipnet::IpNet>,
}

impl Policy {
    fn parse(bytes: &[u8]) -> Result<Policy, Refused> {
        let bad = Refused::Malformed;
        let v: Value = serde_json::from_slice(bytes).map_err(|_| bad("Policy is not JSON"))?;
        let statements = v["Statement"]
            .as_array()
            .ok_or(bad("Policy has no Statement"))?;
        let [s] = statements.as_slice() else {
            return Err(bad("Policy must hold one Statement"));
        };
        let time = |name: &str| -> Result<Option<i64>, Refused> {
            match &s["Condition"][name] {
                Value::Null => Ok(None),
                c => c["AWS:EpochTime"]
                    .as_i64()
                    .map(Some)
                    .ok_or(bad("a Date condition without AWS:EpochTime")),
            }
        };
        let resource = match &s["Resource"] {
            Value::Null => None,
            Value::String(r) => Some(r.clone()),
            _ => return Err(bad("Resource is not a string")),
        };
        let ip = match &s["Condition"]["IpAddress"]["AWS:SourceIp"] {
            Value::Null => None,
            Value::String(c) => Some(
                c.parse::<ipnet::IpNet>()
                    .or_else(|_| c.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| bad("AWS:SourceIp is not an address or CIDR"))?,
            ),
            _ => return Err(bad("AWS:SourceIp is not a string")),
        };
        Ok(Policy {
            resource,
            before: time("DateLessThan")?.ok_or(bad("Policy has no DateLessThan"))?,
            after: time("DateGreaterThan")?,
            ip,
        })
    }
}

/// One public key (PEM, SPKI or PKCS#1) as `ring` verifies with it, and its
/// modulus length (what a signature must have).
pub fn public_key(pem: &str) -> Result<(UnparsedPublicKey<Vec<u8>>, usize), BadKey> {
    let key = RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| BadKey)?;
    let der = key.to_pkcs1_der().map_err(|_| BadKey)?.into_vec();
    let ring = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, der);
    Ok((ring, key.size()))
}

/// A custom policy for `resource` (wildcards allowed) until `expires`, as
/// CloudFront's signers write one.
pub fn custom_policy(resource: &str, expires: i64) -> String {
    serde_json::json!({
        "Statement": [{
            "Resource": resource,
            "Condition": {"DateLessThan": {"AWS:EpochTime": expires}},
        }]
    })
    .to_string()
}

/// The canned policy CloudFront signs for `url` expiring at `expires`.
pub fn canned(url: &str, expires: i64) -> String {
    format!(
        r#"{{"Statement":[{{"Resource":"{url}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
    )
}

fn number(v: &str) -> Option<i64> {
    match !v.is_empty() && v.len() < 19 && v.bytes().all(|b| b.is_ascii_digit()) {
        true => v.parse().ok(),
        false => None,
    }
}

/// CloudFront's base64: the standard alphabet with `+` `=` `/` written `-` `_` `~`.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

fn decode(text: &str) -> Option<Vec<u8>> {
    if text.contains(['+', '=', '/']) {
        return None;
    }
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            c => c,
        })
        .collect();
    STANDARD.decode(standard).ok()
}

/// Signs as CloudFront's signers do, for `livegate sign`: needs the private key.
pub struct CloudFrontSigner {
    id: String,
    key: SigningKey<Sha1>,
}

impl CloudFrontSigner {
    /// From the key-pair id and its PEM private key (PKCS#8 or PKCS#1).
    pub fn new(id: &str, pem: &str) -> Result<CloudFrontSigner, BadKey> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| BadKey)?;
        Ok(CloudFrontSigner {
            id: id.to_owned(),
            key: SigningKey::<Sha1>::new(key),
        })
    }

    /// The query parameters of a canned-policy URL for `url`.
    pub fn canned(&self, url: &str, expires: i64) -> String {
        let sig = self.key.sign(canned(url, expires).as_bytes()).to_vec();
        format!(
            "Expires={expires}&Signature={}&Key-Pair-Id={}",
            encode(&sig),
            self.id
        )
    }

    /// The query parameters of a custom-policy URL for `policy` (its JSON).
    pub fn custom(&self, policy: &str) -> String {
        let sig = self.key.sign(policy.as_bytes()).to_vec();
        format!(
            "Policy={}&Signature={}&Key-Pair-Id={}",
            encode(policy.as_bytes()),
            encode(&sig),
            self.id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sign::cdn::fixtures::{RSA_PRIVATE as PRIVATE, RSA_PUBLIC as PUBLIC};

    const ID: &str = "K2JCJMDEHXQW5F";
    /// Another key pair's public key: signatures of the first must not verify.
    const OTHER_PUBLIC: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA8DlEFM0UzvB2F2R1VyqJ
zHgx7/ZRBM9jhkZ6RoDJQs/8XWUktXc5Of69xiA11rsVwuJC2pSls6SMQqXn/OzH
UVPZ1t1Fj/+TC+lXGACGtggmmdbVTK2hrubwnIH12Fgu/dJYE7cDpkqZ8CSazbVO
3gbE8IkH39RLZCs3pNeqKLlvOBcdPG3Yudf5NiaVU3ZApoVrzB2hUoIRDE5Zq6ti
gIwBiF1QOmj58JEw8kfvBQpPoyufEXGYC82EO/It1xkwwQmmEoKjKcKjB9KgYVTX
s1T3KmTjJ6sJBb62bQwxSKqRMuhVhabDtdw0XqNVVgmI0rWqyoFxhe5r8Xq325vh
MQIDAQAB
-----END PUBLIC KEY-----";

    /// Made by botocore 1.44 `CloudFrontSigner('K2JCJMDEHXQW5F', rsa.sign(…, 'SHA-1'))`:
    /// `generate_presigned_url('https://d111.cloudfront.net/live/cam1/index.m3u8',
    /// date_less_than=1796143600)`.
    const CANNED_SIG: &str = "K2I0ySgotPodaqC-MFYVfHds9qL3y4YhnGZ~hPw54pawUObCmnAtIS9Rlb5EMJCcNoERAibgnyAJ1XDoAVx~DB5M~gjWyWqnQ9rhhZF1KylJu712lsJic-kolsGlYjytrhB53DkTReLpcM2EmsuaEoHFlgWSD6R4CJdiwQgbX5TtgDeYsxhhn3v7T1YLoTozMuFYbtPkdkA7kZn9HDjYkCMF-cGLvb7-LgMYTJSOuDg6AQccOQsv5tzZU0RyqPzIO30ExEKyTpCUNq2KnHrrIApr9I5dG2tX8jQbazD1uDFF2nT1RCb5RWwExyltCu8nVmis~MgkvzYKaUk7K8CHNA__";
    /// `build_policy('https://d111.cloudfront.net/live/cam1/*', 1796143600,
    /// date_greater_than=1796140000, ip_address='192.0.2.0/24')` and its URL's
    /// signature (for `…/live/cam1/seg-1.ts`).
    const POLICY: &str = "eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoiaHR0cHM6Ly9kMTExLmNsb3VkZnJvbnQubmV0L2xpdmUvY2FtMS8qIiwiQ29uZGl0aW9uIjp7IkRhdGVMZXNzVGhhbiI6eyJBV1M6RXBvY2hUaW1lIjoxNzk2MTQzNjAwfSwiSXBBZGRyZXNzIjp7IkFXUzpTb3VyY2VJcCI6IjE5Mi4wLjIuMC8yNCJ9LCJEYXRlR3JlYXRlclRoYW4iOnsiQVdTOkVwb2NoVGltZSI6MTc5NjE0MDAwMH19fV19";
    const CUSTOM_SIG: &str = "cIywYXYl0dAXyNZeEDKZwHrmrgg0oocELlk3V29UaPpSmGhR2jIrcoNYoypnVgxb6cM7ssJdakxFg8u5i4j60BRGIKD0G3z0xcPgK~PqVPyXDWPXNDgHZmI7sZv0LwsaFbokXHCAaDk682wDs8bAX4l6LFzzxpt-BCPxSHZJxXhQcqWsWtC0-zBkrbzfRFxBB61KlbrpFJE998qdoEut7qJgDmKGQnYeW8j~ljjPnmp93p5xoFCF0Q8-Tydq4kcNaKVt5Cm4KfK-ExXkeG4bihIkcdvk96QJ3DERCEQTUD0WeiacToEHH6IOfJcvP-adle4zAdPSeaI2TwnfZatncQ__";

    /// What the reference's custom-policy URL presents.
    fn custom() -> Presented<'static> {
        Presented {
            policy: Some(POLICY),
            signature: Some(CUSTOM_SIG),
            key_pair_id: Some(ID),
            ..Default::default()
        }
    }

    fn edge() -> CloudFront {
        CloudFront::new(&[("OTHERKEYID", PUBLIC), (ID, PUBLIC)]).unwrap()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    const NOW: i64 = 1_796_141_000;

    #[test]
    fn the_reference_signers_urls_verify() {
        let canned = Presented {
            expires: Some("1796143600"),
            signature: Some(CANNED_SIG),
            key_pair_id: Some(ID),
            ..Default::default()
        };
        let url = "https://d111.cloudfront.net/live/cam1/index.m3u8";
        assert_eq!(
            edge().verify(&canned, url, None, NOW, 0).map(|v| v.expires),
            Ok(1_796_143_600)
        );
        let custom = custom();
        let seg = "https://d111.cloudfront.net/live/cam1/seg-1.ts";
        assert_eq!(
            edge()
                .verify(&custom, seg, ip("192.0.2.9"), NOW, 0)
                .map(|v| v.expires),
            Ok(1_796_143_600)
        );
        // The policy's wildcard opens the stream's other files too.
        let playlist = "https://d111.cloudfront.net/live/cam1/index.m3u8";
        assert_eq!(
            edge()
                .verify(&custom, playlist, ip("192.0.2.9"), NOW, 0)
                .map(|v| v.expires),
            Ok(1_796_143_600)
        );
    }

    #[test]
    fn what_we_sign_is_what_the_reference_signs() {
        let s = CloudFrontSigner::new(ID, PRIVATE).unwrap();
        // RSA PKCS#1 v1.5 is deterministic: the same key and message, the same bytes.
        let url = "https://d111.cloudfront.net/live/cam1/index.m3u8";
        assert_eq!(
            s.canned(url, 1_796_143_600),
            format!("Expires=1796143600&Signature={CANNED_SIG}&Key-Pair-Id={ID}")
        );
        let policy = String::from_utf8(decode(POLICY).unwrap()).unwrap();
        assert_eq!(
            s.custom(&policy),
            format!("Policy={POLICY}&Signature={CUSTOM_SIG}&Key-Pair-Id={ID}")
        );
    }

    #[test]
    fn tampered_expired_early_elsewhere_and_wrong_keys_are_refused() {
        let e = edge();
        let url = "https://d111.cloudfront.net/live/cam1/index.m3u8";
        let canned = |exp: &'static str, sig: &'static str, id: &'static str| Presented {
            expires: Some(exp),
            signature: Some(sig),
            key_pair_id: Some(id),
            ..Default::default()
        };
        let good = canned("1796143600", CANNED_SIG, ID);
        assert_eq!(
            e.verify(&canned("1796143601", CANNED_SIG, ID), url, None, NOW, 0)
                .map(|v| v.expires),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            e.verify(
                &good,
                "https://d111.cloudfront.net/live/cam2/index.m3u8",
                None,
                NOW,
                0
            )
            .map(|v| v.expires),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            e.verify(&good, url, None, 1_796_143_600, 0)
                .map(|v| v.expires),
            Err(Refused::Expired { exp: 1_796_143_600 })
        );
        assert_eq!(
            e.verify(
                &canned("1796143600", CANNED_SIG, "NOSUCHKEY"),
                url,
                None,
                NOW,
                0
            )
            .map(|v| v.expires),
            Err(Refused::BadSignature)
        );
        let other = CloudFront::new(&[(ID, OTHER_PUBLIC)]).unwrap();
        assert_eq!(
            other.verify(&good, url, None, NOW, 0).map(|v| v.expires),
            Err(Refused::BadSignature)
        );
        let custom = custom();
        let seg = "https://d111.cloudfront.net/live/cam1/seg-1.ts";
        assert_eq!(
            e.verify(&custom, seg, ip("198.51.100.1"), NOW, 0)
                .map(|v| v.expires),
            Err(Refused::BadIp)
        );
        assert_eq!(
            e.verify(&custom, seg, None, NOW, 0).map(|v| v.expires),
            Err(Refused::BadIp)
        );
        assert_eq!(
            e.verify(&custom, seg, ip("192.0.2.9"), 1_796_139_999, 0)
                .map(|v| v.expires),
            Err(Refused::NotYet { st: 1_796_140_000 })
        );
        assert_eq!(
            e.verify(
                &custom,
                "https://d111.cloudfront.net/live/cam2/seg-1.ts",
                ip("192.0.2.9"),
                NOW,
                0
            )
            .map(|v| v.expires),
            Err(Refused::OutOfScope)
        );
        assert_eq!(
            e.verify(&Presented::default(), url, None, NOW, 0)
                .map(|v| v.expires),
            Err(Refused::Missing)
        );
        let half = Presented {
            expires: Some("1"),
            ..Default::default()
        };
        assert!(matches!(
            e.verify(&half, url, None, NOW, 0).map(|v| v.expires),
            Err(Refused::Malformed(_))
        ));
        let both = Presented {
            policy: Some(POLICY),
            ..good
        };
        assert!(matches!(
            e.verify(&both, url, None, NOW, 0).map(|v| v.expires),
            Err(Refused::Malformed(_))
        ));
        let std_b64 = Presented {
            signature: Some("ab+c/="),
            ..good
        };
        assert!(matches!(
            e.verify(&std_b64, url, None, NOW, 0).map(|v| v.expires),
            Err(Refused::Malformed(_))
        ));
    }

    #[test]
    fn policies_that_read_two_ways_are_malformed() {
        for bad in [
            r#"{"Statement":[]}"#,
            r#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":1}}},{"Condition":{"DateLessThan":{"AWS:EpochTime":2}}}]}"#,
            r#"{"Statement":[{"Resource":"x"}]}"#,
            r#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":"1"}}}]}"#,
            r#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":1},"IpAddress":{"AWS:SourceIp":"nope"}}}]}"#,
            "not json",
        ] {
            assert!(
                matches!(Policy::parse(bad.as_bytes()), Err(Refused::Malformed(_))),
                "{bad}"
            );
        }
        let p = Policy::parse(br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":5},"IpAddress":{"AWS:SourceIp":"192.0.2.7"}}}]}"#).unwrap();
        assert_eq!(
            (p.before, p.resource, p.ip.map(|n| n.to_string())),
            (5, None, Some("192.0.2.7/32".into()))
        );
        assert_eq!(encode(&decode("ab-_~9").unwrap_or_default()).len() % 4, 0);
    }
}

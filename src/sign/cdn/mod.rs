//! Tokens other CDNs and backends issue, pure: Akamai EdgeAuth ([`edgeauth`]),
//! CloudFront signed URLs ([`cloudfront`]) and JWTs ([`jwt`]) — compatible with
//! the vendors' own libraries, so a customer moving to livegate keeps its backend's signing.
//! Unlike the hash schemes of [`super`] (a digest of fields the URL spells),
//! these carry a token that names what it covers (an ACL, a policy), which is
//! checked against the request's canonical path.

pub mod cloudfront;
pub mod edgeauth;
pub mod jwt;

use thiserror::Error;

/// Why a token was refused; each maps to one of livegate's failure reasons.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refused {
    /// The request carries no token (or only part of one).
    #[error("no token")]
    Missing,
    /// Not the generator's shape: a field twice, an unknown one, no `exp` or
    /// `hmac`, a time that is not a number.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the token expired at {exp}")]
    Expired { exp: i64 },
    #[error("the token is valid from {st}")]
    NotYet { st: i64 },
    #[error("the token's hmac matches no key")]
    BadSignature,
    /// The ACL, URL or policy does not cover the request.
    #[error("the token does not cover this path")]
    OutOfScope,
    /// The token is bound to another client address.
    #[error("the token is bound to another client address")]
    BadIp,
}

/// Whether `path` matches a pattern, `*` standing for any run of characters
/// (slashes included) and, with `single`, `?` for any one (CloudFront's
/// policies; Akamai's ACLs have only `*`); everything else literal.
pub fn glob(pattern: &str, path: &str, single: bool) -> bool {
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && (p[i] == s[j] || (single && p[i] == b'?')) {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

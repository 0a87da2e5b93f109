//! Tokens other CDNs and backends issue, pure: Akamai EdgeAuth ([`edgeauth`]),
//! CloudFront signed URLs ([`cloudfront`]) and JWTs ([`jwt`]) — compatible with
//! the vendors' own libraries, so a customer moving to livegate keeps its backend's signing.
//! Unlike the hash schemes of [`super`] (a digest of fields the URL spells),
//! these carry a token that names what it covers (an ACL, a policy), which is
//! checked against the request's canonical path.

pub mod cloudfront;
pub mod edgeauth;
pub mod jwt;
pub mod rule;

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

/// What a passing token says besides that it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// When it expires (Unix seconds, without skew).
    pub expires: i64,
    /// Which of the rule's keys verified it (0 = primary), so operators see when
    /// a retiring key is still in use.
    pub key: usize,
    /// Whether it is bound to the client's address.
    pub ip_bound: bool,
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

/// Test keys shared by the verifiers' tests and benches (made with `openssl
/// genrsa 2048`): the tokens in their tests were signed by the vendors'
/// libraries with them. Published here, so never a key to use.
#[doc(hidden)]
pub mod fixtures {
    pub const RSA_PUBLIC: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAiJbucmYEn0Mpr0Y+HLJl
nMRd04+BlQbtRa/+b9HtRwq0noVdvRamH2Ydvoqjn2b2WPoU+4jhrEyzZfxWNjXk
YFbn0CDWu0rQt0kqMEdoIwIwascL9EHwIQ5cpCRJaN99gZrafCFiJxBaFW+1pP/v
RGvAQwBY0qQexvI0+xHR+JDaiViIODQSbCvImNovg8zk0whBc7eWVDZlKt27k+Tr
TR6zhwOKUfvNzx3JMnJc7cd3l7/PEDIpTlnH2Yg9CLimi6pH7xM/Vkn9Y7at7QF6
7XsaVviCorP/JRdNwaPoviASF7HAYy1w1wK/6ev0YJ1t8Om0UhN/iWSz/6K24JYu
fwIDAQAB
-----END PUBLIC KEY-----";
    pub const RSA_PRIVATE: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCIlu5yZgSfQymv
Rj4csmWcxF3Tj4GVBu1Fr/5v0e1HCrSehV29FqYfZh2+iqOfZvZY+hT7iOGsTLNl
/FY2NeRgVufQINa7StC3SSowR2gjAjBqxwv0QfAhDlykJElo332Bmtp8IWInEFoV
b7Wk/+9Ea8BDAFjSpB7G8jT7EdH4kNqJWIg4NBJsK8iY2i+DzOTTCEFzt5ZUNmUq
3buT5OtNHrOHA4pR+83PHckyclztx3eXv88QMilOWcfZiD0IuKaLqkfvEz9WSf1j
tq3tAXrtexpW+IKis/8lF03Bo+i+IBIXscBjLXDXAr/p6/RgnW3w6bRSE3+JZLP/
orbgli5/AgMBAAECggEAQAOQg+/ZCbUF473FXVikc6i6Gm0eu3PQHsFhOxHFJO7Z
AJQbfwOO3pdSqFq8XXf5S3EFBW+86C3YRBtTYju2qQoBwZKqYIOrNsMk8RR+My4S
9/AKY7LFchCTjV/uQabAYM3syJEyuYEZ3wMIO+iwv73KEPyoJCxDulSITQSohdfa
L+suiTx9pcXC1uG2016emLKcIV4bKzSwu3YUXwn2j4MwFPO9LwF4lkGYjevRW99O
q4K4oRi8phg8NaAOAUpq3hbXliTFDAjbydXeqkH1f0ZeLsZ+8HFbrhXVnYHpZ6Xy
nZtbdeo7JK6zyvt6oZyOgorQBbHrLqwfzpXMOMNESQKBgQC94mnZz/yI06K9bCsR
2qOBcdzpn555sgLfXu9z8YUX41RfgXyetPKrWJ5NIcUa8ihvXXOCqIjA6DGFPV/7
80a2q7l8riaajukXM6Fj2TrZIChHfKHd3VGvmFbmGK1dmaXkj7KL6QxwysXA8OBz
pLnRiXnzt+9ndE1ZkzKJ1D5o+QKBgQC4JgO4AExRMjBH7yoMc+13Gv8nPJXuAplO
3EoY//vvsHjFamz+ZvmG4hUXl8TJ7j8hm9mI+tOjaTil6YorsZgxSmQosxq3jOxJ
wQhlN/KxJP6YrtVV2m5f1zgNyGGGogJhE9fOQrraLNIEyfv3Pv6NYTQcqhPiRJBX
eso12nvpNwKBgExmihKCdeiTxroSiK3RW9JcfvddKwVqE2/OoefzuIppBGy9C+hL
hAxfRqpgOQ9jedN9NVnP994uTqZ+kF0ugDhFlgdNhujPMYgNVRV4tQ3hu3Mv+Wzs
fM57LBO+wBqWFMKG8t8KcN/9Jl5ATP8au01M1E20p1Xn3Kt6522/gTD5AoGAPp1O
bmZLjOBP4mXEGm/gsrsPPzwujrt7fYESAOYpuBp9NkM1xFsnRWHiYh9M3oyQEtF3
akg/ZjUE+gUq4iiE4120KNKdpwPX5EwqmqAneWxm1Wu9Rm/7T8NSX/1ei/TSckfY
/V1bQ4wx7Ubw0eUtkM0YdxatpCZEHjq2PxGHSIkCgYBUuiQBwp+qDP4RvE4uzc0d
HFi5/YmTTKU94UDQmtq6q1vyjVN8SkTTtOd59rxS9a7dRjvrFEIirRv74U/AalbA
v2dEr12bmduqxSomwiF0TtBLW7qa/bfsy2y99FV9LFskbWOq4KzWFIXoV4nVX9Wb
1B5anmMH26aVH4/dw42SOA==
-----END PRIVATE KEY-----";
}

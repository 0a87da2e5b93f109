//! Verdicts: why a request was refused.
//!
//! The reason names are a contract (`design.md`): they appear in the access log, the
//! metrics, `livegate check` and the management API, so scripts match on them.

use std::borrow::Cow;
use std::fmt;

/// Why a request was refused. One name per distinct operator action: a client
/// without a signature needs a signed URL, an expired one needs a fresh one, a bad
/// signature needs the key checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No auth parameters at all.
    MissingSignature,
    /// Auth parameters present but unparseable (wrong shape, duplicated, bad bytes).
    Malformed,
    /// The time field is not a valid number in the rule's format.
    BadTimestamp,
    /// Past the expiry plus the rule's skew.
    Expired,
    /// The hash matches none of the rule's keys.
    BadSignature,
    /// The domain has no rule for this app and scene.
    NoRule,
    /// The Host matches no configured domain (answered 404).
    UnknownDomain,
    /// The request's method belongs to no scene (answered 405).
    BadMethod,
    /// The auth server said no.
    RemoteDenied,
    /// The auth server was too slow and the timeout action is block.
    RemoteTimeout,
    /// The auth server was unreachable and the timeout action is block.
    RemoteError,
    /// The request is unfit to forward: a path with dot-segments, encoded
    /// separators or bad percent-encoding, or no Host (answered 400).
    BadRequest,
    /// The stream is forbidden through the management API.
    ForbiddenStream,
    /// The Referer's host is not allowed (access lists).
    RefererDenied,
    /// The client IP is not allowed (access lists).
    IpDenied,
    /// The User-Agent is not allowed (access lists).
    UaDenied,
    /// The client is over its requests per second (answered 429).
    RateLimited,
    /// The client has its most concurrent connections open already.
    TooManyConnections,
    /// An HLS segment token that is malformed, forged, or for another stream.
    BadToken,
    /// RTMP: the stream already has a publisher on this edge (`duplicate_publish: reject`).
    DuplicatePublish,
    /// A CDN token (Akamai ACL or URL, CloudFront policy, JWT claim) that is
    /// genuine but does not cover this path or stream.
    OutOfScope,
    /// A CDN token bound to another client address.
    BadIp,
}

impl Reason {
    /// Every reason, in declaration order (`ALL[r as usize] == r`), so per-reason
    /// metric handles can live in an array.
    pub const ALL: [Reason; 22] = [
        Reason::MissingSignature,
        Reason::Malformed,
        Reason::BadTimestamp,
        Reason::Expired,
        Reason::BadSignature,
        Reason::NoRule,
        Reason::UnknownDomain,
        Reason::BadMethod,
        Reason::RemoteDenied,
        Reason::RemoteTimeout,
        Reason::RemoteError,
        Reason::BadRequest,
        Reason::ForbiddenStream,
        Reason::RefererDenied,
        Reason::IpDenied,
        Reason::UaDenied,
        Reason::RateLimited,
        Reason::TooManyConnections,
        Reason::BadToken,
        Reason::DuplicatePublish,
        Reason::OutOfScope,
        Reason::BadIp,
    ];

    /// The contract name, e.g. `BAD_SIGNATURE`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::MissingSignature => "MISSING_SIGNATURE",
            Reason::Malformed => "MALFORMED",
            Reason::BadTimestamp => "BAD_TIMESTAMP",
            Reason::Expired => "EXPIRED",
            Reason::BadSignature => "BAD_SIGNATURE",
            Reason::NoRule => "NO_RULE",
            Reason::UnknownDomain => "UNKNOWN_DOMAIN",
            Reason::BadMethod => "BAD_METHOD",
            Reason::RemoteDenied => "REMOTE_DENIED",
            Reason::RemoteTimeout => "REMOTE_TIMEOUT",
            Reason::RemoteError => "REMOTE_ERROR",
            Reason::BadRequest => "BAD_REQUEST",
            Reason::ForbiddenStream => "FORBIDDEN_STREAM",
            Reason::RefererDenied => "REFERER_DENIED",
            Reason::IpDenied => "IP_DENIED",
            Reason::UaDenied => "UA_DENIED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::TooManyConnections => "TOO_MANY_CONNECTIONS",
            Reason::BadToken => "BAD_TOKEN",
            Reason::DuplicatePublish => "DUPLICATE_PUBLISH",
            Reason::OutOfScope => "OUT_OF_SCOPE",
            Reason::BadIp => "BAD_IP",
        }
    }

    /// The providers' wording for a reason, where they have one (the management
    /// API's `description`, as Alibaba's auth-check call words it).
    pub const fn description(self) -> Option<&'static str> {
        match self {
            Reason::Malformed => Some("INVALID AUTH_KEY"),
            Reason::BadTimestamp => Some("INVALID TIMESTAMP"),
            Reason::Expired => Some("time expired"),
            Reason::BadSignature => Some("INVALID MD5HASH"),
            _ => None,
        }
    }

    /// The HTTP status a client gets: 404 for an unknown domain, 405 for a method
    /// outside every scene, 400 for an unfit request, 429 over a rate limit, 403
    /// for everything else (no hint that helps forge).
    pub const fn status(self) -> u16 {
        match self {
            Reason::UnknownDomain => 404,
            Reason::BadMethod => 405,
            Reason::BadRequest => 400,
            Reason::RateLimited => 429,
            _ => 403,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the contract reason plus a sentence for the operator. The detail goes
/// to logs and `check`, never to the client, and never contains a key or the
/// expected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub detail: Cow<'static, str>,
}

impl Failure {
    /// A failure with a fixed explanation (no allocation).
    pub const fn new(reason: Reason, detail: &'static str) -> Failure {
        Failure {
            reason,
            detail: Cow::Borrowed(detail),
        }
    }

    /// A failure whose explanation carries values (times, names).
    pub fn with(reason: Reason, detail: String) -> Failure {
        Failure {
            reason,
            detail: Cow::Owned(detail),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r}");
        }
    }
}

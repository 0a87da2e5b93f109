//! The `t` + `sign` scheme: `sign = md5(key + t)`, `t` the expiry in decimal Unix
//! seconds. It covers no path, so it is not a URL rule: livegate uses it to
//! authenticate calls to its management API and to sign event notifications.

use super::{Fields, Key, Request, Rule, RuleError, Scheme};
use crate::verdict::{Failure, Reason};

/// Why a `t`/`sign` pair was refused, in the provider's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsignError {
    /// `sign invalid`: missing, malformed or wrong.
    SignInvalid,
    /// `time expired`: `t` is in the past, or not a time.
    TimeExpired,
}

/// A key that signs and checks `t`/`sign` pairs.
#[derive(Debug, Clone)]
pub struct Tsign(Rule);

impl Tsign {
    pub fn new(key: Key) -> Result<Tsign, RuleError> {
        Rule::new(Scheme::Tsign, vec![key], None).map(Tsign)
    }

    /// `md5(key + t)` in lowercase hex.
    pub fn sign(&self, t: i64) -> String {
        let t = t.to_string();
        self.0.signature(&Fields {
            time: &t,
            ..Fields::default()
        })
    }

    /// Checks the `t` and `sign` parameters of a query string at time `now`.
    pub fn verify(&self, query: &str, now: i64) -> Result<(), TsignError> {
        let req = Request {
            query,
            ..Request::default()
        };
        self.0
            .verify(&req, now)
            .map(|_| ())
            .map_err(|f: Failure| match f.reason {
                Reason::Expired | Reason::BadTimestamp => TsignError::TimeExpired,
                _ => TsignError::SignInvalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tsign() -> Tsign {
        Tsign::new(Key::new("5d41402abc4b2a76b9719d911017c592").unwrap()).unwrap()
    }

    #[test]
    fn published_example() {
        assert_eq!(tsign().sign(1626839220), "5ee8ca6c28cbe415b40352969cdf8249");
    }

    #[test]
    fn verifies_with_provider_wording() {
        let q = "t=1626839220&sign=5ee8ca6c28cbe415b40352969cdf8249";
        assert_eq!(tsign().verify(q, 1626839220), Ok(()));
        assert_eq!(tsign().verify(q, 1626839221), Err(TsignError::TimeExpired));
        let bad = "t=1626839220&sign=5ee8ca6c28cbe415b40352969cdf8248";
        assert_eq!(tsign().verify(bad, 0), Err(TsignError::SignInvalid));
        assert_eq!(tsign().verify("", 0), Err(TsignError::SignInvalid));
        assert_eq!(
            tsign().verify("t=x&sign=5ee8ca6c28cbe415b40352969cdf8249", 0),
            Err(TsignError::TimeExpired)
        );
    }
}

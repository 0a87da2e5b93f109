//! URL signing, pure: a rule, a request's bytes and a time in; a verdict out.
//! No I/O and no clock, so every scheme is trivially testable and benchable.
//!
//! The schemes differ only in data ([`scheme`]): where the signature travels, how
//! the time is spelled, how the digest is encoded and what is hashed ([`layout`]).
//! [`Rule`] runs that data, so verification is written once.

pub mod cdn;
pub mod keys;
pub mod layout;
pub mod query;
pub mod scheme;
pub mod time;
pub mod tsign;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::route::Route;
use crate::verdict::{Failure, Reason};
pub use keys::{Key, KeyError, MAX_KEYS};
pub use layout::{Fields, Layout, LayoutError, Piece};
pub use scheme::{Carrier, Encoding, Scheme};
pub use time::TimeFormat;

/// The parts of a request that signatures may cover, exactly as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// Host without port (see [`crate::route::host_name`]).
    pub host: &'a str,
    /// The path as sent, percent-encoded form, without the query.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The client IP, without port.
    pub remote_addr: &'a str,
    /// `stream_path: nested`: the stream is the directory (`/live/cam1/index.m3u8`).
    pub nested: bool,
    /// Over TLS (CloudFront policies name the URL's scheme).
    pub https: bool,
    /// The request's headers, for tokens in a cookie or a header (`None` for
    /// RTMP, whose sessions carry neither).
    pub headers: Option<&'a http::HeaderMap>,
}

/// The auth parameters a verdict found in the query: up to four (CloudFront's).
pub type AuthSpans = query::Spans<4>;

/// Where a request's credential travelled: a token in a cookie or a header
/// goes with every request of the player (segments too), so a playlist it
/// opened needs no segment tokens written into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Carried {
    #[default]
    Url,
    Cookie,
    Header,
}

/// A passing verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass<'a> {
    /// The path the origin must receive: the request's path, minus a type B/C prefix.
    pub path: &'a str,
    /// Which key verified (0 = primary), so operators can see when a backup key is
    /// still in use before retiring it.
    pub key_index: usize,
    /// Where the rule's parameters sat in the query, so the proxy strips them
    /// without parsing the query again.
    pub auth: AuthSpans,
    /// When the URL expires (with skew), for rules whose URLs do.
    pub expires: Option<i64>,
    /// What else the signature bound the URL to, so that what it admits (segment
    /// tokens) is bound to the same.
    pub binds: Binds,
    pub carried: Carried,
}

/// The parts of a request besides its path and time that a signature covers: a
/// URL signed with `{remote_addr}` works from that client only, one signed with
/// `{host}` (Volcengine's `Domain`) on that host only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Binds {
    /// The client address.
    pub addr: bool,
    /// The host (without port).
    pub host: bool,
}

/// Why a rule could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("a rule needs at least one key")]
    NoKeys,
    #[error("a rule holds at most {MAX_KEYS} keys, this one has {0}")]
    TooManyKeys(usize),
    #[error("scheme {0} needs its layout (encrypt_fields or template)")]
    NoLayout(&'static str),
}

/// Why a URL could not be signed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignError {
    #[error("the expiry {0} cannot be written in this scheme's time format")]
    BadTime(i64),
    #[error("{0} signs with the backend's private key: set the rule's private_key_file")]
    NeedsPrivateKey(&'static str),
    #[error("private_key_file: {0}")]
    BadPrivateKey(String),
    #[error(
        "the rule reads its token from no query parameter (token.query), so no URL can carry one"
    )]
    NoQueryPlace,
}

/// A compiled signing rule: scheme, keys and options, ready to verify and sign.
#[derive(Debug, Clone)]
pub struct Rule {
    scheme: Scheme,
    keys: Vec<Key>,
    layout: Layout,
    valid_duration: i64,
    skew: i64,
    sign_param: Box<str>,
    time_param: Box<str>,
    time_format: TimeFormat,
}

/// Where a presented URL put its signature and time.
struct Presented<'q, 'a> {
    sig: &'q str,
    time: &'q str,
    path: &'a str,
    rand: &'q str,
    uid: &'q str,
}

impl Rule {
    /// A rule with the scheme's defaults. `layout` is required for
    /// `volc_md5_custom` and `secure_link` and ignored by the others.
    pub fn new(scheme: Scheme, keys: Vec<Key>, layout: Option<Layout>) -> Result<Rule, RuleError> {
        if keys.is_empty() {
            return Err(RuleError::NoKeys);
        }
        if keys.len() > MAX_KEYS {
            return Err(RuleError::TooManyKeys(keys.len()));
        }
        let layout = match scheme.fixed_layout() {
            Some(l) => l,
            None => layout.ok_or(RuleError::NoLayout(scheme.name()))?,
        };
        let (sign, time) = scheme.param_names();
        Ok(Rule {
            scheme,
            keys,
            layout,
            valid_duration: 0,
            skew: 0,
            sign_param: sign.into(),
            time_param: time.into(),
            time_format: scheme.default_time_format(),
        })
    }

    /// Seconds added to the URL's time to get its expiry.
    pub fn with_valid_duration(mut self, secs: i64) -> Rule {
        self.valid_duration = secs;
        self
    }

    /// Seconds of clock drift tolerated past expiry.
    pub fn with_skew(mut self, secs: i64) -> Rule {
        self.skew = secs;
        self
    }

    /// Renames the query parameters (`None` keeps a default).
    pub fn with_param_names(mut self, sign: Option<&str>, time: Option<&str>) -> Rule {
        if let Some(s) = sign {
            self.sign_param = s.into();
        }
        if let Some(t) = time {
            self.time_param = t.into();
        }
        self
    }

    pub fn with_time_format(mut self, f: TimeFormat) -> Rule {
        self.time_format = f;
        self
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The query parameters this rule reads, to strip before forwarding.
    pub fn auth_params(&self) -> [&str; 2] {
        [&self.sign_param, &self.time_param]
    }

    /// Whether URLs of this rule expire (a `secure_link` template may omit `{expires}`).
    pub fn expires(&self) -> bool {
        self.layout.signs_time()
    }

    /// Checks a request against this rule at Unix time `now`.
    pub fn verify<'a>(&self, req: &Request<'a>, now: i64) -> Result<Pass<'a>, Failure> {
        let found = query::find(req.query, [&self.sign_param, &self.time_param])?;
        let [sig_q, time_q] = &found.values;
        let p = self.presented(req.path, sig_q.as_deref(), time_q.as_deref())?;
        // Shape first (MALFORMED, BAD_TIMESTAMP), then expiry, then the hash.
        let sig = self.decode_sig(p.sig)?;
        let expires = match self.expires() {
            true => Some(self.check_time(p.time, now)?),
            false => None,
        };
        // Only some layouts hash the app or stream: skip the path scan for the rest.
        let route = match self.layout.uses_route() {
            true => Route::of(p.path, req.nested),
            false => Route::default(),
        };
        let fields = Fields {
            time: p.time,
            uri: p.path,
            app: route.app,
            stream: route.stream,
            host: req.host,
            remote_addr: req.remote_addr,
            rand: p.rand,
            uid: p.uid,
        };
        for (key_index, key) in self.keys.iter().enumerate() {
            // Constant time, as one 128-bit word: `subtle` on a byte slice pays a
            // barrier per byte.
            let digest = u128::from_ne_bytes(self.layout.digest(&fields, key));
            if bool::from(digest.ct_eq(&u128::from_ne_bytes(sig))) {
                return Ok(Pass {
                    path: p.path,
                    key_index,
                    auth: found.spans.widen(),
                    carried: Carried::Url,
                    expires,
                    binds: Binds {
                        addr: self.layout.uses(&Piece::RemoteAddr),
                        host: self.layout.uses(&Piece::Host),
                    },
                });
            }
        }
        Err(Failure::new(
            Reason::BadSignature,
            "the signature matches none of the rule's keys",
        ))
    }

    /// Locates signature, time and the signed path per the scheme's carrier.
    fn presented<'q, 'a>(
        &self,
        path: &'a str,
        sig_q: Option<&'q str>,
        time_q: Option<&'q str>,
    ) -> Result<Presented<'q, 'a>, Failure>
    where
        'a: 'q,
    {
        let timed = self.expires();
        let query_pair = |sig: Option<&'q str>, time: Option<&'q str>| match (sig, time) {
            (None, None) => Err(missing()),
            (None, Some(_)) => Err(Failure::with(
                Reason::Malformed,
                format!("{} is missing", self.sign_param),
            )),
            (Some(_), None) if timed => Err(Failure::with(
                Reason::Malformed,
                format!("{} is missing", self.time_param),
            )),
            (Some(sig), time) => Ok(Presented {
                sig,
                time: time.unwrap_or(""),
                path,
                rand: "",
                uid: "",
            }),
        };
        match self.scheme.carrier() {
            Carrier::Query => query_pair(sig_q, time_q),
            Carrier::SigTimePrefixOrQuery if sig_q.is_some() || time_q.is_some() => {
                query_pair(sig_q, time_q)
            }
            Carrier::AuthKey => {
                let value = sig_q.ok_or_else(missing)?;
                let Some([time, rand, uid, sig]) = query::split_exact(value, '-') else {
                    return Err(Failure::with(
                        Reason::Malformed,
                        format!("{} is not timestamp-rand-uid-md5hash", self.sign_param),
                    ));
                };
                let token =
                    |s: &str| s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric());
                if !token(rand) || !token(uid) {
                    return Err(Failure::new(
                        Reason::Malformed,
                        "rand and uid must be 0-100 of [0-9A-Za-z]",
                    ));
                }
                Ok(Presented {
                    sig,
                    time,
                    path,
                    rand,
                    uid,
                })
            }
            Carrier::TimeSigPrefix | Carrier::SigTimePrefixOrQuery => {
                let (first, second, rest) = split_prefix(path).ok_or_else(missing)?;
                let (sig, time) = if self.scheme.carrier() == Carrier::TimeSigPrefix {
                    (second, first)
                } else {
                    (first, second)
                };
                if sig.len() != 32 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(missing());
                }
                Ok(Presented {
                    sig,
                    time,
                    path: rest,
                    rand: "",
                    uid: "",
                })
            }
        }
    }

    /// The URL's expiry (with skew), or why it has none or has passed.
    fn check_time(&self, time: &str, now: i64) -> Result<i64, Failure> {
        let bad = || {
            Failure::with(
                Reason::BadTimestamp,
                format!("the time field is not a valid {:?} time", self.time_format),
            )
        };
        let t = self.time_format.parse(time).ok_or_else(bad)?;
        let expiry = t.checked_add(self.valid_duration).ok_or_else(bad)?;
        if now > expiry.saturating_add(self.skew) {
            return Err(Failure::with(
                Reason::Expired,
                format!("expired at {expiry}, now {now}, skew {}s", self.skew),
            ));
        }
        Ok(expiry.saturating_add(self.skew))
    }

    fn decode_sig(&self, s: &str) -> Result<[u8; 16], Failure> {
        let mut out = [0u8; 16];
        let wrong_len = || {
            Failure::new(
                Reason::BadSignature,
                "the signature is not a 16-byte digest",
            )
        };
        match self.scheme.encoding() {
            Encoding::Hex => {
                if s.is_empty() || s.len() % 2 == 1 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Failure::new(
                        Reason::Malformed,
                        "the signature is not hexadecimal",
                    ));
                }
                hex::decode_to_slice(s, &mut out).map_err(|_| wrong_len())?;
            }
            Encoding::Base64Url => {
                // Optional padding; a byte scan (cheaper here than a char pattern).
                let s = &s[..s.bytes().rposition(|b| b != b'=').map_or(0, |i| i + 1)];
                let mut buf = [0u8; 64];
                if s.len() > 80 {
                    return Err(wrong_len());
                }
                let n = URL_SAFE_NO_PAD.decode_slice(s, &mut buf).map_err(|_| {
                    Failure::new(Reason::Malformed, "the signature is not base64url")
                })?;
                if n != 16 {
                    return Err(wrong_len());
                }
                out.copy_from_slice(&buf[..16]);
            }
        }
        Ok(out)
    }

    /// The encoded signature of `fields` under the first key.
    fn signature(&self, fields: &Fields<'_>) -> String {
        let digest = self.layout.digest(fields, &self.keys[0]);
        match self.scheme.encoding() {
            Encoding::Hex => hex::encode(digest),
            Encoding::Base64Url => URL_SAFE_NO_PAD.encode(digest),
        }
    }

    /// Signs `req` with the first key so that it expires at `expire` (for issue-time
    /// schemes the URL carries `expire - valid_duration`). Returns the new path and
    /// query (`/path?query`); earlier auth parameters in the query are replaced.
    pub fn sign(&self, req: &Request<'_>, expire: i64) -> Result<String, SignError> {
        // Round up to the format's granularity (type B counts minutes), so the URL is
        // valid at least until `expire`, never shorter.
        let g = self.time_format.granularity();
        let t = expire
            .checked_sub(self.valid_duration)
            .and_then(|t| t.checked_add((g - t.rem_euclid(g)) % g))
            .ok_or(SignError::BadTime(expire))?;
        let time = if self.expires() {
            self.time_format
                .format(t)
                .ok_or(SignError::BadTime(expire))?
        } else {
            String::new()
        };
        let route = Route::of(req.path, req.nested);
        let fields = Fields {
            time: &time,
            uri: req.path,
            app: route.app,
            stream: route.stream,
            host: req.host,
            remote_addr: req.remote_addr,
            rand: "0",
            uid: "0",
        };
        let sig = self.signature(&fields);
        let query = query::without(req.query, &self.auth_params());
        let join = |path: &str, extra: &str| {
            let mut q = query.clone().into_owned();
            if !extra.is_empty() {
                if !q.is_empty() {
                    q.push('&');
                }
                q.push_str(extra);
            }
            if q.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{q}")
            }
        };
        Ok(match self.scheme.carrier() {
            Carrier::Query if time.is_empty() => {
                join(req.path, &format!("{}={sig}", self.sign_param))
            }
            Carrier::Query => join(
                req.path,
                &format!("{}={sig}&{}={time}", self.sign_param, self.time_param),
            ),
            Carrier::AuthKey => join(req.path, &format!("{}={time}-0-0-{sig}", self.sign_param)),
            Carrier::TimeSigPrefix => join(&format!("/{time}/{sig}{}", req.path), ""),
            Carrier::SigTimePrefixOrQuery => join(&format!("/{sig}/{time}{}", req.path), ""),
        })
    }
}

fn missing() -> Failure {
    Failure::new(Reason::MissingSignature, "the URL carries no signature")
}

/// `/a/b/rest…` → (`a`, `b`, `/rest…`); `None` unless a non-empty rest follows.
pub(crate) fn split_prefix(path: &str) -> Option<(&str, &str, &str)> {
    let p = path.strip_prefix('/')?;
    let (first, p) = p.split_once('/')?;
    let i = p.find('/')?;
    let (second, rest) = p.split_at(i);
    (rest.len() > 1).then_some((first, second, rest))
}

#[cfg(test)]
mod tests;

//! A token rule: one of the CDN verifiers, where its token travels (query,
//! cookie, header) and the rule's skew — what a configured `akamai_token`,
//! `cloudfront` or `jwt` rule becomes, verified through the same
//! `Domain::verify` as every hash scheme and giving the same [`Pass`].
//!
//! Pure: a request's bytes and headers and a time in, a verdict out. The one
//! state it keeps is CloudFront's memory of signatures that verified.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::cloudfront::{self, CloudFront, CloudFrontSigner, Presented};
use super::edgeauth::{self, EdgeAuth};
use super::jwt::{self, Jwt};
use super::{Refused, Verified};
use crate::route::Route;
use crate::sign::query;
use crate::sign::{AuthSpans, Binds, Carried, Pass, Request, Scheme, SignError};
use crate::streams::session_stream;
use crate::verdict::{Failure, Reason};

/// The verifier of a token rule.
#[derive(Debug)]
pub enum Verifier {
    EdgeAuth(EdgeAuth),
    CloudFront(Box<CloudFront>),
    Jwt(Jwt),
}

/// Where a rule looks for its token (`None`: not there). CloudFront's names
/// are CloudFront's and not configurable; it reads the query and cookies.
#[derive(Debug, Clone, Default)]
pub struct Places {
    pub query: Option<Box<str>>,
    pub cookie: Option<Box<str>>,
    /// A header carrying the token as its whole value; `Authorization` carries
    /// it as `Bearer <token>`.
    pub header: Option<http::HeaderName>,
}

/// CloudFront's query parameters and their cookie names, in [`Presented`]'s order.
const CLOUDFRONT_QUERY: [&str; 4] = ["Expires", "Policy", "Signature", "Key-Pair-Id"];
const CLOUDFRONT_COOKIES: [&str; 4] = [
    "CloudFront-Expires",
    "CloudFront-Policy",
    "CloudFront-Signature",
    "CloudFront-Key-Pair-Id",
];

/// A compiled token rule.
pub struct TokenRule {
    scheme: Scheme,
    verifier: Verifier,
    places: Places,
    skew: i64,
    /// A `jwt` rule's first key when it is a shared secret: `livegate sign`
    /// signs HS256 with it.
    secret: Option<Box<str>>,
    /// Where `livegate sign` finds the backend's private key.
    private_key_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for TokenRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRule")
            .field("scheme", &self.scheme)
            .field("places", &self.places)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

/// How `livegate sign` writes a token beyond the rule's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignAs<'s> {
    /// What the token covers instead of the one URL: Akamai ACL patterns
    /// (`!`-separated), a CloudFront custom policy's `Resource` path, a JWT's
    /// path claim.
    pub acl: Option<&'s str>,
    /// The backend's private key (PEM): CloudFront, and RS256/ES256 JWTs.
    pub private_key: Option<&'s str>,
}

impl TokenRule {
    /// `secret`: a `jwt` rule's first key, when it is a shared secret.
    pub fn new(
        scheme: Scheme,
        verifier: Verifier,
        places: Places,
        skew: i64,
        secret: Option<&str>,
    ) -> TokenRule {
        TokenRule {
            scheme,
            verifier,
            places,
            skew,
            secret: secret.map(Into::into),
            private_key_file: None,
        }
    }

    /// A CloudFront rule: its names are CloudFront's, so it needs no places.
    pub fn for_cloudfront(cf: CloudFront, skew: i64) -> TokenRule {
        let verifier = Verifier::CloudFront(Box::new(cf));
        TokenRule::new(Scheme::Cloudfront, verifier, Places::default(), skew, None)
    }

    /// Names the private key file `livegate sign` reads (the rule never does).
    pub fn with_private_key_file(mut self, f: Option<std::path::PathBuf>) -> TokenRule {
        self.private_key_file = f;
        self
    }

    pub fn private_key_file(&self) -> Option<&std::path::Path> {
        self.private_key_file.as_deref()
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// How many keys the rule holds.
    pub fn key_count(&self) -> usize {
        match &self.verifier {
            Verifier::EdgeAuth(e) => e.key_count(),
            Verifier::CloudFront(c) => c.key_count(),
            Verifier::Jwt(j) => j.key_count(),
        }
    }

    /// The query parameter, cookie and header names the rule reads: stripped
    /// from what the origin gets and hidden in logs.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = match self.verifier {
            Verifier::CloudFront(_) => CLOUDFRONT_QUERY
                .iter()
                .chain(CLOUDFRONT_COOKIES.iter())
                .copied()
                .collect(),
            _ => Vec::new(),
        };
        names.extend(self.places.query.as_deref());
        names.extend(self.places.cookie.as_deref());
        names.extend(self.places.header.as_ref().map(http::HeaderName::as_str));
        names
    }

    /// The cookie names the rule reads (left out of what the origin gets).
    pub fn cookies(&self) -> Vec<&str> {
        match self.verifier {
            Verifier::CloudFront(_) => CLOUDFRONT_COOKIES.to_vec(),
            _ => self.places.cookie.as_deref().into_iter().collect(),
        }
    }

    /// The header the rule reads its token from, if any.
    pub fn header(&self) -> Option<&http::HeaderName> {
        self.places.header.as_ref()
    }

    /// Checks `req` at Unix time `now`.
    pub fn verify<'a>(&self, req: &Request<'a>, now: i64) -> Result<Pass<'a>, Failure> {
        let (verified, carried, auth) = match &self.verifier {
            Verifier::CloudFront(cf) => self.cloudfront(cf, req, now)?,
            Verifier::EdgeAuth(e) => {
                let (token, carried, auth) = self.token(req)?;
                let v = e.verify(&token, req.path, req.remote_addr, now, self.skew);
                (self.refused(v, now)?, carried, auth)
            }
            Verifier::Jwt(j) => {
                let (token, carried, auth) = self.token(req)?;
                let route = Route::of(req.path, req.nested);
                let stream = session_stream(route.stream, route.ext);
                let v = j.verify(&token, req.path, stream, now, self.skew);
                (self.refused(v, now)?, carried, auth)
            }
        };
        Ok(Pass {
            path: req.path,
            key_index: verified.key,
            auth,
            expires: Some(verified.expires.saturating_add(self.skew)),
            binds: Binds {
                addr: verified.ip_bound,
                host: false,
            },
            carried,
        })
    }

    /// A verifier's refusal as livegate's failure.
    fn refused(&self, v: Result<Verified, Refused>, now: i64) -> Result<Verified, Failure> {
        let scheme = self.scheme.name();
        v.map_err(|r| match r {
            Refused::Missing => Failure::with(
                Reason::MissingSignature,
                format!("the request carries no {scheme} token"),
            ),
            Refused::Malformed(m) => Failure::with(Reason::Malformed, format!("{scheme}: {m}")),
            Refused::Expired { exp } => Failure::with(
                Reason::Expired,
                format!(
                    "{scheme} token expired at {exp}, now {now}, skew {}s",
                    self.skew
                ),
            ),
            Refused::NotYet { st } => Failure::with(
                Reason::BadTimestamp,
                format!(
                    "{scheme} token is valid from {st}, now {now}, skew {}s",
                    self.skew
                ),
            ),
            Refused::BadSignature => Failure::with(
                Reason::BadSignature,
                format!("the {scheme} token's signature matches none of the rule's keys"),
            ),
            Refused::OutOfScope => Failure::with(
                Reason::OutOfScope,
                format!("the {scheme} token does not cover this path"),
            ),
            Refused::BadIp => Failure::with(
                Reason::BadIp,
                format!("the {scheme} token is bound to another client address"),
            ),
        })
    }

    /// The one token an Akamai or JWT request presents. The same token in two
    /// places is two readings of one request: refused.
    fn token<'a>(&self, req: &Request<'a>) -> Result<(Cow<'a, str>, Carried, AuthSpans), Failure> {
        let mut found: Option<(Cow<'a, str>, Carried)> = None;
        let mut auth = AuthSpans::default();
        let mut take = |token: Cow<'a, str>, carried| match found.is_some() {
            true => Err(Failure::with(
                Reason::Malformed,
                format!(
                    "{} token given in more than one place (query, cookie, header)",
                    self.scheme.name()
                ),
            )),
            false => {
                found = Some((token, carried));
                Ok(())
            }
        };
        if let Some(name) = &self.places.query {
            let f = query::find(req.query, [name.as_ref()])?;
            let [value] = f.values;
            if let Some(v) = value {
                take(v, Carried::Url)?;
                auth = f.spans.widen();
            }
        }
        if let Some(name) = &self.places.cookie {
            if let Some(v) = cookie(req.headers, name)? {
                take(Cow::Borrowed(v), Carried::Cookie)?;
            }
        }
        if let Some(name) = &self.places.header {
            if let Some(v) = header(req.headers, name)? {
                take(Cow::Borrowed(v), Carried::Header)?;
            }
        }
        let (token, carried) = found.ok_or_else(|| {
            Failure::with(
                Reason::MissingSignature,
                format!("the request carries no {} token", self.scheme.name()),
            )
        })?;
        Ok((token, carried, auth))
    }

    /// A CloudFront request: the parameters in the query, or the cookies —
    /// never some of each.
    fn cloudfront<'a>(
        &self,
        cf: &CloudFront,
        req: &Request<'a>,
        now: i64,
    ) -> Result<(Verified, Carried, AuthSpans), Failure> {
        let f = query::find(req.query, CLOUDFRONT_QUERY)?;
        let mut cookies = [None; 4];
        for (slot, name) in cookies.iter_mut().zip(CLOUDFRONT_COOKIES) {
            *slot = cookie(req.headers, name)?;
        }
        let in_query = f.values.iter().any(Option::is_some);
        let in_cookies = cookies.iter().any(Option::is_some);
        let (presented, carried, auth) = match (in_query, in_cookies) {
            (true, true) => {
                return Err(Failure::new(
                    Reason::Malformed,
                    "cloudfront: signed URL parameters and signed cookies at once",
                ))
            }
            (true, false) => {
                let [e, p, s, k] = &f.values;
                (
                    Presented {
                        expires: e.as_deref(),
                        policy: p.as_deref(),
                        signature: s.as_deref(),
                        key_pair_id: k.as_deref(),
                    },
                    Carried::Url,
                    f.spans,
                )
            }
            (false, _) => {
                let [e, p, s, k] = cookies;
                (
                    Presented {
                        expires: e,
                        policy: p,
                        signature: s,
                        key_pair_id: k,
                    },
                    Carried::Cookie,
                    AuthSpans::default(),
                )
            }
        };
        // The URL as the viewer asked for it, without the signing parameters.
        let rest = auth.strip(req.query);
        let url = url(req, &rest);
        let client = req.remote_addr.parse::<IpAddr>().ok();
        let v = cf.verify(&presented, &url, client, now, self.skew);
        Ok((self.refused(v, now)?, carried, auth))
    }

    /// `req` signed to expire at `expire` (path and query, as
    /// [`crate::sign::Rule::sign`] gives them); earlier token parameters in the
    /// query are replaced.
    pub fn sign(
        &self,
        req: &Request<'_>,
        expire: i64,
        how: &SignAs<'_>,
    ) -> Result<String, SignError> {
        let names = self.names();
        let query = query::without(req.query, &names);
        let join = |extra: &str| {
            let mut q = query.clone().into_owned();
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(extra);
            format!("{}?{q}", req.path)
        };
        let param = || self.places.query.as_deref().ok_or(SignError::NoQueryPlace);
        match &self.verifier {
            Verifier::EdgeAuth(e) => {
                let fields = edgeauth::Fields {
                    exp: expire,
                    acl: how.acl.map(|a| a.split('!').collect()).unwrap_or_default(),
                    url: req.path,
                    ..Default::default()
                };
                Ok(join(&format!("{}={}", param()?, e.generate(&fields))))
            }
            Verifier::CloudFront(cf) => {
                let pem = how
                    .private_key
                    .ok_or(SignError::NeedsPrivateKey(self.scheme.name()))?;
                let signer = CloudFrontSigner::new(cf.first_id(), pem)
                    .map_err(|e| SignError::BadPrivateKey(e.to_string()))?;
                let signed = match how.acl {
                    None => signer.canned(&url(req, &query), expire),
                    Some(acl) => {
                        let resource = match acl.starts_with('/') {
                            true => url(&Request { path: acl, ..*req }, ""),
                            false => acl.to_owned(),
                        };
                        signer.custom(&cloudfront::custom_policy(&resource, expire))
                    }
                };
                Ok(join(&signed))
            }
            Verifier::Jwt(j) => {
                let need = j.requirements();
                let mut claims = Map::new();
                claims.insert("exp".into(), expire.into());
                if let Some(a) = &need.audience {
                    claims.insert("aud".into(), a.clone().into());
                }
                if let Some(i) = &need.issuer {
                    claims.insert("iss".into(), i.clone().into());
                }
                if let Some(c) = &need.stream_claim {
                    let route = Route::of(req.path, req.nested);
                    let stream = session_stream(route.stream, route.ext);
                    claims.insert(c.clone(), stream.into());
                }
                if let Some(c) = &need.path_claim {
                    claims.insert(c.clone(), how.acl.unwrap_or(req.path).into());
                }
                let claims = Value::Object(claims);
                let token = match (&self.secret, how.private_key) {
                    (_, Some(pem)) => jwt::sign_private(pem, &claims),
                    (Some(secret), None) => jwt::sign_hs256(secret, &claims),
                    (None, None) => return Err(SignError::NeedsPrivateKey(self.scheme.name())),
                }
                .map_err(|e| SignError::BadPrivateKey(e.to_string()))?;
                Ok(join(&format!("{}={token}", param()?)))
            }
        }
    }
}

/// `scheme://host/path[?rest]` of a request.
fn url(req: &Request<'_>, rest: &str) -> String {
    let scheme = if req.https { "https" } else { "http" };
    match rest.is_empty() {
        true => format!("{scheme}://{}{}", req.host, req.path),
        false => format!("{scheme}://{}{}?{rest}", req.host, req.path),
    }
}

/// The value of cookie `name` across every `Cookie` header (HTTP/2 sends one
/// per cookie). Given twice, it could be read two ways: refused.
fn cookie<'a>(
    headers: Option<&'a http::HeaderMap>,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    let Some(headers) = headers else {
        return Ok(None);
    };
    let mut found = None;
    for value in headers.get_all(http::header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let Some((n, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if n != name {
                continue;
            }
            if found.is_some() {
                return Err(Failure::with(
                    Reason::Malformed,
                    format!("cookie {name} appears more than once"),
                ));
            }
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            found = Some(v);
        }
    }
    Ok(found)
}

/// A token in header `name`: its whole value, or for `Authorization` what
/// follows `Bearer ` (another scheme is not a token).
fn header<'a>(
    headers: Option<&'a http::HeaderMap>,
    name: &http::HeaderName,
) -> Result<Option<&'a str>, Failure> {
    let Some(headers) = headers else {
        return Ok(None);
    };
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key(name) {
            true => Err(Failure::with(
                Reason::Malformed,
                format!("header {name} appears more than once"),
            )),
            false => Ok(None),
        };
    };
    let text = value
        .to_str()
        .map_err(|_| Failure::with(Reason::Malformed, format!("header {name} is not text")))?
        .trim();
    if name != http::header::AUTHORIZATION {
        return Ok(Some(text));
    }
    Ok(text
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::cdn::fixtures::{RSA_PRIVATE, RSA_PUBLIC};

    const KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const NOW: i64 = 1_796_141_000;

    fn akamai() -> TokenRule {
        let places = Places {
            query: Some("hdnts".into()),
            cookie: Some("__hdnea__".into()),
            header: Some(http::HeaderName::from_static("x-akamai-token")),
        };
        let e = EdgeAuth::new(&[KEY], Default::default()).unwrap();
        TokenRule::new(Scheme::AkamaiToken, Verifier::EdgeAuth(e), places, 0, None)
    }

    fn cloudfront() -> TokenRule {
        TokenRule::for_cloudfront(
            CloudFront::new(&[("K2JCJMDEHXQW5F", RSA_PUBLIC)]).unwrap(),
            0,
        )
    }

    fn req<'a>(path: &'a str, query: &'a str, headers: Option<&'a http::HeaderMap>) -> Request<'a> {
        Request {
            host: "play.example.com",
            path,
            query,
            remote_addr: "192.0.2.7",
            headers,
            ..Request::default()
        }
    }

    fn cookies(text: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, text.parse().unwrap());
        h
    }

    fn acl_token() -> String {
        let e = EdgeAuth::new(&[KEY], Default::default()).unwrap();
        e.generate(&edgeauth::Fields {
            exp: NOW + 60,
            acl: vec!["/live/cam1/*"],
            ..Default::default()
        })
    }

    #[test]
    fn an_akamai_token_passes_from_each_place_and_says_which() {
        let t = acl_token();
        let r = akamai();
        let q = format!("a=1&hdnts={t}");
        let p = r
            .verify(&req("/live/cam1/index.m3u8", &q, None), NOW)
            .unwrap();
        assert_eq!(p.carried, Carried::Url);
        assert_eq!(p.auth.strip(&q), "a=1");
        assert_eq!(p.expires, Some(NOW + 60));
        let jar = cookies(&format!("x=1; __hdnea__={t}"));
        let p = r
            .verify(&req("/live/cam1/7.ts", "", Some(&jar)), NOW)
            .unwrap();
        assert_eq!(p.carried, Carried::Cookie);
        let mut h = http::HeaderMap::new();
        h.insert("x-akamai-token", t.parse().unwrap());
        let p = r
            .verify(&req("/live/cam1/7.ts", "", Some(&h)), NOW)
            .unwrap();
        assert_eq!(p.carried, Carried::Header);
    }

    #[test]
    fn two_places_or_two_cookies_are_two_readings() {
        let t = acl_token();
        let r = akamai();
        let q = format!("hdnts={t}");
        let jar = cookies(&format!("__hdnea__={t}"));
        let f = r
            .verify(&req("/live/cam1/a.ts", &q, Some(&jar)), NOW)
            .unwrap_err();
        assert_eq!(f.reason, Reason::Malformed);
        let twice = cookies(&format!("__hdnea__={t}; __hdnea__={t}"));
        let f = r
            .verify(&req("/live/cam1/a.ts", "", Some(&twice)), NOW)
            .unwrap_err();
        assert_eq!(f.reason, Reason::Malformed);
    }

    #[test]
    fn refusals_carry_livegate_reasons() {
        let t = acl_token();
        let r = akamai();
        let at = |path: &str, q: &str, now| {
            r.verify(&req(path, q, None), now)
                .map(|_| ())
                .unwrap_err()
                .reason
        };
        let q = format!("hdnts={t}");
        assert_eq!(at("/live/cam2/a.ts", &q, NOW), Reason::OutOfScope);
        assert_eq!(at("/live/cam1/a.ts", &q, NOW + 61), Reason::Expired);
        assert_eq!(at("/live/cam1/a.ts", "", NOW), Reason::MissingSignature);
        let odd = q.replace("hmac=", "hmac=0");
        assert_eq!(at("/live/cam1/a.ts", &odd, NOW), Reason::Malformed);
        let mut other = t.clone();
        let last = other
            .pop()
            .map_or('0', |c| if c == '0' { '1' } else { '0' });
        other.push(last);
        assert_eq!(
            at("/live/cam1/a.ts", &format!("hdnts={other}"), NOW),
            Reason::BadSignature
        );
    }

    #[test]
    fn cloudfront_reads_the_query_or_the_cookies_never_both() {
        let signer = CloudFrontSigner::new("K2JCJMDEHXQW5F", RSA_PRIVATE).unwrap();
        let r = cloudfront();
        let url = "http://play.example.com/live/cam1/index.m3u8?v=2";
        let q = format!("v=2&{}", signer.canned(url, NOW + 60));
        let p = r
            .verify(&req("/live/cam1/index.m3u8", &q, None), NOW)
            .unwrap();
        assert_eq!(p.auth.strip(&q), "v=2");
        // Verified once, remembered: the same signature passes again.
        assert!(r
            .verify(&req("/live/cam1/index.m3u8", &q, None), NOW)
            .is_ok());
        let policy = cloudfront::custom_policy("http://play.example.com/live/cam1/*", NOW + 60);
        let custom = signer.custom(&policy);
        let jar: String = custom
            .split('&')
            .map(|kv| format!("CloudFront-{kv}"))
            .collect::<Vec<_>>()
            .join("; ");
        let jar = cookies(&jar);
        let p = r
            .verify(&req("/live/cam1/5.ts", "", Some(&jar)), NOW)
            .unwrap();
        assert_eq!(p.carried, Carried::Cookie);
        let f = r
            .verify(&req("/live/cam2/5.ts", "", Some(&jar)), NOW)
            .unwrap_err();
        assert_eq!(f.reason, Reason::OutOfScope);
        let f = r
            .verify(&req("/live/cam1/5.ts", &q, Some(&jar)), NOW)
            .unwrap_err();
        assert_eq!(f.reason, Reason::Malformed);
    }

    #[test]
    fn signing_round_trips_through_verification() {
        let r = akamai();
        let base = req("/live/cam1/index.m3u8", "a=1", None);
        for acl in [None, Some("/live/cam1/*")] {
            let how = SignAs {
                acl,
                ..SignAs::default()
            };
            let signed = r.sign(&base, NOW + 60, &how).unwrap();
            let (path, query) = signed.split_once('?').unwrap();
            assert!(r.verify(&req(path, query, None), NOW).is_ok(), "{signed}");
        }
        let cf = cloudfront();
        let how = SignAs {
            acl: Some("/live/cam1/*"),
            private_key: Some(RSA_PRIVATE),
        };
        let signed = cf.sign(&base, NOW + 60, &how).unwrap();
        // The policy's `*` covers every segment (and any query).
        let (_, query) = signed.split_once('?').unwrap();
        assert!(cf.verify(&req("/live/cam1/9.ts", query, None), NOW).is_ok());
        assert!(cf
            .verify(&req("/live/cam2/9.ts", query, None), NOW)
            .is_err());
        assert_eq!(
            cf.sign(&base, NOW, &SignAs::default()),
            Err(SignError::NeedsPrivateKey("cloudfront"))
        );
    }
}

//! Admission: the one decision every HTTP request and every RTMP session goes
//! through — route → access → sign (or segment token) → forbid → remote — called
//! in one line by the HTTP proxy ([`crate::proxy`]) and the RTMP gate
//! ([`crate::rtmp`]). Reading the protocol (a request head, a `connect` and a
//! `publish`) stays with the callers; what is decided, and counted, is here.

mod remote;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, HeaderValue};

use crate::access::{self, limits::Limiter};
use crate::auth::remote::Remote;
use crate::auth::Domain;
use crate::hls::{Grant, Secret};
use crate::metrics::{self, metrics, DomainMetrics, UNKNOWN_DOMAIN};
use crate::route::{host_key, Route, Scene};
use crate::sign::cdn::rule::TokenRule;
use crate::sign::query;
use crate::sign::{AuthSpans, Carried, Request};
use crate::state::live::Live;
use crate::streams::{session_stream, StreamKey};
use crate::verdict::{Failure, Reason};

/// What admission keeps per domain (same order as the configuration), shared by
/// every protocol: a client's connection count is one count, HTTP and RTMP.
pub struct Door {
    /// The domain's configured name (for logs, metrics and events).
    pub name: String,
    /// Per-client request and connection counts (access limits): the same
    /// through reloads, so a connection counted before one is given back after.
    pub limiter: Arc<Limiter>,
    pub remote: Option<Remote>,
    pub metrics: DomainMetrics,
}

/// The edge's admission.
pub struct Admission {
    /// Rules, forbids, access lists and redaction names: what the management API
    /// changes.
    pub live: Arc<Live>,
    /// Per domain slot (see [`Live::reload`]): only ever grows, so an index any
    /// snapshot gives is valid in every load made after it.
    pub doors: arc_swap::ArcSwap<Vec<Arc<Door>>>,
    /// Signs and checks HLS segment tokens.
    pub hls_secret: Secret,
}

/// What admission reads of a request or session, in its canonical form.
pub struct Ask<'a> {
    /// The host as the client named it (`Host`, the tcUrl's host).
    pub host: &'a str,
    /// The canonical path (HTTP: the settled target; RTMP: `/{app}/{stream}`).
    pub path: &'a str,
    /// The raw query holding the signature.
    pub query: &'a str,
    /// `None`: a method of neither scene (refused once the domain is known).
    pub scene: Option<Scene>,
    /// The method the auth server is told (RTMP: `POST` publish, `GET` play).
    pub method: &'a http::Method,
    /// Referer, User-Agent, X-Forwarded-For, and what the auth server is told.
    pub headers: &'a http::HeaderMap,
    /// The connection's peer.
    pub peer: Option<IpAddr>,
    /// The client address as text (what `{remote_addr}` signatures hash).
    pub client_ip: &'a str,
    /// Over TLS.
    pub https: bool,
    /// Whether an HLS segment token may stand in for the signature (HTTP pulls).
    pub tokens: bool,
}

/// An admitted request or session.
#[derive(Debug)]
pub struct Admitted<'a> {
    pub domain: usize,
    pub scene: Scene,
    /// The path the origin receives (a type B/C prefix removed).
    pub path: &'a str,
    /// The auth parameters to strip from the query.
    pub strip: AuthSpans,
    /// The domain's `strip_auth_params`: whether they are stripped.
    pub strip_auth_params: bool,
    /// The domain's `stream_path: nested`.
    pub nested: bool,
    /// For a pull on a domain with segment authorisation: what tokens written
    /// into its answer (if a playlist) grant.
    pub playlist: Option<Grant>,
    /// Admitted by a segment token: the stream it opens (remote auth's session key).
    pub session: Option<String>,
    /// The client whose connection slot (access limits) this holds: give it back
    /// with [`Admission::release`] when it ends.
    pub slot: Option<IpAddr>,
    /// The stream session it counts in.
    pub stream: StreamKey,
    /// Headers the auth server's answer asks to pass to the origin.
    pub upstream_headers: Option<Arc<[(HeaderName, HeaderValue)]>>,
    /// With the domain's `cut_on_expiry`: when the stream is to be cut (Unix
    /// seconds; its signature's or token's expiry).
    pub cut_at: Option<i64>,
    /// A token that came in a cookie or a header, when the domain strips auth
    /// parameters: its cookies and header are left out of what the origin gets.
    pub credential: Option<Arc<TokenRule>>,
}

impl Admitted<'_> {
    /// The route of the path the origin receives.
    pub fn route(&self) -> Route<'_> {
        Route::of(self.path, self.nested)
    }

    /// The query the origin receives: `query` less the rule's parameters, unless
    /// the domain keeps them.
    pub fn kept<'q>(&self, query: &'q str) -> std::borrow::Cow<'q, str> {
        match self.strip_auth_params {
            true => self.strip.strip(query),
            false => query.into(),
        }
    }
}

/// A refusal, with how far admission got (for metrics, CORS and events).
#[derive(Debug)]
pub struct Refusal {
    pub domain: Option<usize>,
    pub scene: Option<Scene>,
    pub failure: Failure,
}

impl Admission {
    /// The admission state of domain slot `d`.
    pub fn door(&self, d: usize) -> Arc<Door> {
        self.doors.load()[d].clone()
    }

    /// Route → access → sign (or token) → forbid → remote, counted: the one path.
    pub async fn admit<'a>(&self, ask: &Ask<'a>, now: i64) -> Result<Admitted<'a>, Refusal> {
        let started = Instant::now();
        let checked = self.check(ask, now);
        let verdict = match checked {
            Ok(mut a) => match self.remote(ask, &mut a).await {
                Ok(()) => Ok(a),
                Err(failure) => {
                    self.release(&a);
                    Err(Refusal {
                        domain: Some(a.domain),
                        scene: Some(a.scene),
                        failure,
                    })
                }
            },
            Err(r) => Err(r),
        };
        metrics()
            .auth_seconds
            .observe(started.elapsed().as_secs_f64());
        match &verdict {
            Ok(a) => self.count(Some(a.domain), Some(a.scene), Ok(())),
            Err(r) => self.count(r.domain, r.scene, Err(r.failure.reason)),
        }
        verdict
    }

    /// Counts a verdict under the domain and scene it reached (also for what the
    /// callers refuse before asking: an unreadable request).
    pub fn count(&self, domain: Option<usize>, scene: Option<Scene>, verdict: Result<(), Reason>) {
        match (domain, scene, verdict) {
            (Some(d), Some(scene), v) => self.door(d).metrics.verdict(scene, v),
            (d, scene, Err(r)) => {
                let door = d.map(|d| self.door(d));
                let name = door.as_ref().map_or(UNKNOWN_DOMAIN, |d| d.name.as_str());
                metrics::unrouted(name, scene, r);
            }
            (_, _, Ok(())) => {}
        }
    }

    /// Gives back an admitted request's connection slot.
    pub fn release(&self, a: &Admitted<'_>) {
        if let Some(ip) = a.slot {
            self.door(a.domain).limiter.release(ip);
        }
    }

    /// The domain index a host routes to.
    pub fn domain_of(&self, host: &str) -> Option<usize> {
        self.live
            .load()
            .table
            .domain(&host_key(host))
            .map(|(i, _)| i)
    }

    /// Everything but remote auth: no I/O.
    fn check<'a>(&self, ask: &Ask<'a>, now: i64) -> Result<Admitted<'a>, Refusal> {
        let refuse = |domain, scene, failure| Refusal {
            domain,
            scene,
            failure,
        };
        let host = host_key(ask.host);
        let snap = self.live.load();
        let (d, domain) = snap.table.domain(&host).ok_or_else(|| {
            refuse(
                None,
                ask.scene,
                Failure::new(Reason::UnknownDomain, "no domain serves this host"),
            )
        })?;
        let scene = ask.scene.ok_or_else(|| {
            refuse(
                Some(d),
                None,
                Failure::new(
                    Reason::BadMethod,
                    "the method belongs to neither pull nor push",
                ),
            )
        })?;
        let refused = |f| refuse(Some(d), Some(scene), f);
        let door = self.door(d);
        let slot = access::admit(
            domain.access.as_deref(),
            &door.limiter,
            ask.peer,
            ask.headers,
            ask.path,
        )
        .map_err(refused)?;
        let request = Request {
            host: &host,
            path: ask.path,
            query: ask.query,
            remote_addr: ask.client_ip,
            nested: domain.nested,
            https: ask.https,
            headers: Some(ask.headers),
        };
        let give_back = |f| {
            if let Some(ip) = slot {
                door.limiter.release(ip);
            }
            refused(f)
        };
        let pass = self
            .sign_or_token(domain, scene, &request, ask.tokens, now)
            .map_err(give_back)?;
        // The path the origin gets is the request's, less a signature prefix: a
        // suffix of the canonical path.
        let path = &ask.path[ask.path.len() - pass.path.len().min(ask.path.len())..];
        let route = Route::of(path, domain.nested);
        let stream = session_stream(route.stream, route.ext);
        snap.check_forbid(d, route.app, stream, now)
            .map_err(give_back)?;
        Ok(Admitted {
            domain: d,
            scene,
            stream: StreamKey {
                domain: d,
                app: route.app.to_ascii_lowercase().into(),
                stream: stream.into(),
                scene,
            },
            path,
            strip: pass.strip,
            strip_auth_params: domain.strip_auth_params,
            nested: domain.nested,
            playlist: pass.playlist,
            session: pass.session,
            slot,
            upstream_headers: None,
            cut_at: pass.expires.filter(|_| domain.cut_on_expiry),
            credential: match (pass.carried, domain.strip_auth_params) {
                (Carried::Url, _) | (_, false) => None,
                _ => domain.token_rule(scene, ask.path),
            },
        })
    }

    /// The scheme's signature, or — for a pull on a domain with segment
    /// authorisation that presents one — a segment token, which then stands in for
    /// the signature (forbids and remote auth still apply).
    fn sign_or_token<'a>(
        &self,
        domain: &Domain,
        scene: Scene,
        req: &Request<'a>,
        tokens: bool,
        now: i64,
    ) -> Result<Signed<'a>, Failure> {
        let Some(h) = domain
            .hls
            .as_ref()
            .filter(|_| scene == Scene::Pull && tokens)
        else {
            let pass = domain.verify(scene, req, now)?;
            return Ok(Signed {
                carried: pass.carried,
                path: pass.path,
                strip: pass.auth,
                playlist: None,
                session: None,
                expires: pass.expires,
            });
        };
        // (An empty name never matches: one parameter, in the spans' shape.)
        let found = query::find(req.query, [&*h.token_param, ""])?;
        match &found.values[0] {
            Some(token) => {
                let (grant, scope) =
                    self.hls_secret
                        .verify(token, &domain.name, scene, req, now)?;
                Ok(Signed {
                    carried: Carried::Url,
                    path: req.path,
                    strip: found.spans.widen(),
                    expires: Some(grant.expiry),
                    playlist: Some(grant),
                    session: Some(scope.key()),
                })
            }
            None => {
                let pass = domain.verify(scene, req, now)?;
                let grant = Grant {
                    expiry: pass.expires.unwrap_or(now + h.ttl),
                    binds: pass.binds,
                };
                // A cookie or header token goes with every segment request
                // too: its playlist needs no segment tokens.
                let playlist = (pass.carried == Carried::Url).then_some(grant);
                Ok(Signed {
                    carried: pass.carried,
                    path: pass.path,
                    strip: pass.auth,
                    playlist,
                    session: None,
                    expires: pass.expires,
                })
            }
        }
    }
}

/// What a signature (or token) admitted.
struct Signed<'a> {
    carried: Carried,
    path: &'a str,
    strip: AuthSpans,
    playlist: Option<Grant>,
    session: Option<String>,
    /// When what admitted it expires (Unix seconds), if it does.
    expires: Option<i64>,
}

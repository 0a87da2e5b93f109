//! The Pingora `ProxyHttp` implementation: the spine of the request path. Each
//! phase asks a module and acts on the answer; nothing reaches an origin unless
//! `request_filter` admitted it:
//!
//! canonical target → route → access → sign → forbid → remote → origin, where
//! "origin" is the stream's shared pull for an FLV viewer (`fanout`), the HLS
//! micro-cache for a playlist or segment (`cache`), or a proxied request.

mod cache;
mod ctx;
mod ended;
mod fanout;
mod hls;
mod report;
mod request;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use log::warn;
use pingora_core::modules::http::HttpModules;
use pingora_core::prelude::HttpPeer;
use pingora_core::upstreams::peer::Peer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};

use crate::admission::{Admission, Ask, Door};
use crate::canon;
use crate::config::LogFormat;
use crate::notify::Notifier;
use crate::origin::Origin;
use crate::route::Scene;
use crate::streams::Streams;
use crate::unix_now;
use crate::verdict::{Failure, Reason};
pub use cache::for_domain as cache_for;
pub use ctx::Ctx;
use request::{client_ip, host_header, upstream_target, IpText};

/// What the proxy runs per domain besides admission.
pub struct Site {
    pub origin: Arc<Origin>,
    /// FLV fan-out settings; `None` when `origin.fanout` is off.
    pub fanout: Option<crate::fanout::Settings>,
    /// The HLS micro-cache; `None` when `cache.enabled` is off.
    pub cache: Option<Arc<crate::cache::Cache>>,
    /// `cache.ignore_params`: left out of the key and the shared fill.
    pub ignore_params: Arc<[String]>,
    /// `cache.strip_cookies`: answers with `Set-Cookie` cached without it.
    pub strip_cookies: bool,
}

/// What the proxy runs besides admission, as one configuration gave it: a
/// reload swaps it whole.
pub struct Sites {
    /// Per domain slot (see [`crate::state::live::Live::reload`]): only ever
    /// grows, so a slot admission gives is valid in every load made after it.
    pub domains: Vec<Arc<Site>>,
    pub access_log: Option<LogFormat>,
}

/// The edge. Cloned (its parts are shared) into a viewer that outlives its
/// Pingora request ([`Gate::hand_over`]).
#[derive(Clone)]
pub struct Gate {
    /// Route, access, signature, forbid, remote auth: shared with the RTMP gate.
    pub admission: Arc<Admission>,
    pub sites: Arc<arc_swap::ArcSwap<Sites>>,
    pub streams: Arc<Streams>,
    pub notifier: Arc<Notifier>,
    /// Running FLV pulls, shared by their viewers.
    pub hub: crate::fanout::SharedHub,
}

impl Gate {
    /// A domain's admission state (name, limits, remote auth, metrics).
    fn door(&self, d: usize) -> Arc<Door> {
        self.admission.door(d)
    }

    /// A domain's origin, fan-out and cache.
    fn site(&self, d: usize) -> Arc<Site> {
        self.sites.load().domains[d].clone()
    }

    /// Settles the request head and asks admission, recording what it learns in
    /// `ctx`. From here on the request's target is its canonical one.
    async fn admit(&self, session: &mut Session, ctx: &mut Ctx, now: i64) -> Result<(), Failure> {
        let req = session.req_header_mut();
        // Two Hosts: we would route by one and the origin might serve the other;
        // two Referers or User-Agents: the access lists would judge one.
        for (name, why) in [
            (http::header::HOST, "more than one Host"),
            (http::header::REFERER, "more than one Referer"),
            (http::header::USER_AGENT, "more than one User-Agent"),
        ] {
            if req.headers.get_all(name).iter().nth(1).is_some() {
                return Err(Failure::new(Reason::BadRequest, why));
            }
        }
        canon::settle(req).map_err(|why| Failure::new(Reason::BadRequest, why))?;
        let req = session.req_header();
        let host = host_header(req).ok_or(Failure::new(Reason::BadRequest, "no Host"))?;
        let query = req.uri.query().unwrap_or("");
        let scene = Scene::of_method(req.method.as_str());
        let ask = Ask {
            host,
            path: req.uri.path(),
            query,
            scene,
            method: &req.method,
            headers: &req.headers,
            peer: ctx.client,
            client_ip: ctx.client_ip.as_str(),
            https: ctx.tls,
            tokens: true,
        };
        let verdict = self.admission.admit(&ask, now).await;
        let (domain, scene) = match &verdict {
            Ok(a) => (Some(a.domain), Some(a.scene)),
            Err(r) => (r.domain, r.scene),
        };
        ctx.domain = domain;
        ctx.scene = scene;
        ctx.counted = true;
        if let Some(d) = domain {
            let snap = self.admission.live.load();
            ctx.cors = snap.table.domains()[d]
                .cors
                .as_ref()
                .map(|c| (c.clone(), c.allow(req)));
        }
        let a = verdict.map_err(|r| r.failure)?;
        let kept = a.kept(query);
        if a.path.len() != req.uri.path().len() || kept.len() != query.len() {
            ctx.upstream_uri = Some(upstream_target(a.path, &kept)?);
        }
        let route = a.route();
        ctx.flv = route.ext.eq_ignore_ascii_case("flv");
        ctx.hls = crate::hls::is_object(route.ext);
        let site = self.site(a.domain);
        ctx.door = Some(self.door(a.domain));
        if site.origin.keyed() {
            ctx.hash_key = format!("{}/{}", route.app, route.stream);
        }
        ctx.playlist = a.playlist;
        ctx.session = a.session;
        ctx.slot = a.slot;
        ctx.upstream_headers = a.upstream_headers;
        ctx.stream = Some(a.stream);
        ctx.cut_at = a.cut_at;
        ctx.credential = a.credential;
        ctx.site = Some(site);
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Gate {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    /// No downstream modules: Pingora's default adds a (disabled) compression
    /// module that live media never uses, and every module costs each request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if self.preflight(session).await? {
            return Ok(true);
        }
        ctx.client = client_ip(session);
        ctx.client_ip = IpText::new(ctx.client);
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let verdict = self.admit(session, ctx, unix_now()).await;
        if let (Err(f), false) = (&verdict, ctx.counted) {
            // Refused before admission could read it.
            self.admission.count(None, None, Err(f.reason));
        }
        match verdict {
            Ok(()) => {
                if let Some(key) = &ctx.stream {
                    ctx.ticket = self.streams.open(key, ctx.client_ip.as_str());
                }
                // What these write goes to the viewer: a failed write is the
                // viewer leaving (downstream), not the edge failing.
                if let Some(served) = self.fan_out(session, ctx).await {
                    return served.map_err(Error::into_down);
                }
                match self.serve_cached(session, ctx).await {
                    Some(served) => served.map_err(Error::into_down),
                    None => Ok(false),
                }
            }
            Err(f) => self.deny(session, ctx, f).await,
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let site = ctx
            .site
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no domain"))?;
        let origin = &site.origin;
        let backend = origin
            .next(ctx.hash_key.as_bytes(), &ctx.tried)
            .ok_or_else(|| {
                Error::explain(ErrorType::ConnectNoRoute, "no origin peer left to try")
            })?;
        ctx.peer = backend.addr.as_inet().copied();
        Ok(Box::new(origin.peer(&backend)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(addr) = peer.address().as_inet() {
            ctx.tried.push(*addr);
        }
        let more = ctx
            .site
            .as_ref()
            .is_some_and(|s| ctx.tried.len() < s.origin.attempts);
        // One line per refusal, saying what happens next (Pingora's own retry
        // line is suppressed below).
        warn!(
            "origin {} refused: {}; {}",
            peer.address(),
            e.root_cause(),
            match more {
                true => "trying again (the next peer, if any)",
                false => "no attempt left: answered 502",
            }
        );
        e.set_retry(more);
        e
    }

    /// A refused connection is logged once, in `fail_to_connect`.
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Ctx,
        _e: &Error,
        context: pingora_proxy::ProxyWarnLogContext,
    ) -> bool {
        matches!(context, pingora_proxy::ProxyWarnLogContext::UpstreamRetry)
    }

    /// What Pingora's error lines say of a request: redacted.
    fn request_summary(&self, session: &Session, _ctx: &Ctx) -> String {
        self.summary(session)
    }

    /// A viewer closing an endless stream is how live playback ends, not an error
    /// (counted and logged at debug in `logging`); a stream cut (forbid, drop,
    /// slow viewer) is logged where it is decided.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        ended::left(e) || ended::is_cut(e)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.to_origin(session, upstream, ctx)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(door) = &ctx.door {
            door.metrics.upstream_status(resp.status.as_u16());
        }
        self.hls_response(session, resp, ctx);
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.cors_headers(resp, ctx)
    }

    /// A publisher's stream is cut here when the management API forbids or drops it.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        match Gate::was_cut(ctx) {
            true => ended::stream_cut("cut by the management API"),
            false => Ok(()),
        }
    }

    /// A viewer's stream is cut here when the management API forbids or drops it;
    /// a playlist is held here until it is whole and rewritten.
    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        self.hls_body(session, body, end_of_stream, ctx)?;
        if let Some(b) = body.as_ref() {
            self.sent(session, ctx, b.len())?;
        }
        Ok(None)
    }

    /// A request handed over to its connection ends (and is logged) there.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if ctx.handed {
            return;
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.answered.map(|a| a.0))
            .unwrap_or(0);
        let bytes = session.body_bytes_sent() + ctx.answered.map_or(0, |a| a.1);
        self.ended(session.req_header(), status, bytes, e, ctx);
    }
}

impl Gate {
    /// How a request ends, wherever it was served: how it ended early, its
    /// stream session and access-list slot given back, its access log line.
    fn ended(
        &self,
        req: &RequestHeader,
        status: u16,
        bytes: usize,
        e: Option<&Error>,
        ctx: &mut Ctx,
    ) {
        if let Some(e) = e {
            self.count_end(req, ctx, e);
        }
        if let (Some(key), Some(ticket)) = (&ctx.stream, &ctx.ticket) {
            self.streams.close(key, ticket);
        }
        if let (Some(door), Some(ip)) = (&ctx.door, ctx.slot) {
            door.limiter.release(ip);
        }
        self.log_access(req, status, bytes, ctx);
    }
}

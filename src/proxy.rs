//! The Pingora `ProxyHttp` implementation: thin. Each phase asks a module and acts
//! on the answer; nothing reaches an origin unless `request_filter` admitted it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use log::{info, warn};
use pingora_core::prelude::HttpPeer;
use pingora_core::upstreams::peer::Peer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::{ProxyHttp, Session};

use crate::auth::remote::{Asked, Outcome, Remote};
use crate::auth::Table;
use crate::config::TimeoutAction;
use crate::origin::Origin;
use crate::route::{host_name, vet_path, Route, Scene};
use crate::sign::{query, Request};
use crate::unix_now;
use crate::verdict::{Failure, Reason};

/// The edge: the rule table, and per domain (same order) its origin pool and
/// its remote authentication.
pub struct Gate {
    pub table: Arc<Table>,
    pub origins: Vec<Origin>,
    pub remotes: Vec<Option<Remote>>,
}

/// What one request carries from phase to phase.
#[derive(Default)]
pub struct Ctx {
    /// Index of the domain (and its origin) once routed.
    domain: usize,
    /// The URI to send upstream when it differs from the client's (prefix or auth
    /// parameters removed).
    upstream_uri: Option<String>,
    /// `app/stream`, the consistent-hashing key, when the pool hashes.
    hash_key: String,
    /// Peers that refused a connection for this request.
    tried: Vec<SocketAddr>,
    /// Headers the auth server's answer asks to pass to the origin.
    upstream_headers: Option<Arc<[(HeaderName, HeaderValue)]>>,
    /// Why the request was refused, for the log.
    pub reason: Option<Reason>,
}

/// An admitted request's routing, decided from the request head alone.
struct Admission {
    domain: usize,
    upstream_uri: Option<String>,
}

impl Gate {
    /// Route and verify one request head: the whole admission decision.
    fn admit(
        &self,
        req: &RequestHeader,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Admission, Failure> {
        let scene = Scene::of_method(req.method.as_str()).ok_or(Failure::new(
            Reason::BadMethod,
            "the method belongs to neither pull nor push",
        ))?;
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()))
            .ok_or(Failure::new(Reason::BadRequest, "no Host"))?;
        let host = host_name(host);
        let (domain_index, domain) = self.table.domain(host).ok_or(Failure::new(
            Reason::UnknownDomain,
            "no domain serves this host",
        ))?;
        let path = req.uri.path();
        vet_path(path).map_err(|why| Failure::new(Reason::BadRequest, why))?;
        let query = req.uri.query().unwrap_or("");
        let remote = client.map(|ip| ip.to_string()).unwrap_or_default();
        let request = Request {
            host,
            path,
            query,
            remote_addr: &remote,
        };
        let (pass, rule) = domain.verify(scene, &request, now)?;
        let kept = match rule {
            Some(r) if domain.strip_auth_params => query::without(query, &r.auth_params()),
            _ => query.into(),
        };
        let changed = pass.path.len() != path.len()
            || kept.len() != query.len()
            || req.uri.scheme().is_some();
        let upstream_uri = changed.then(|| match kept.is_empty() {
            true => pass.path.to_owned(),
            false => format!("{}?{kept}", pass.path),
        });
        Ok(Admission {
            domain: domain_index,
            upstream_uri,
        })
    }
}

impl Gate {
    /// Remote authentication for an admitted request, when its domain has it and
    /// the request is in scope.
    async fn ask_remote(&self, session: &Session, ctx: &mut Ctx) -> Result<(), Failure> {
        let Some(remote) = &self.remotes[ctx.domain] else {
            return Ok(());
        };
        let req = session.req_header();
        if !remote.in_scope(req.uri.path()) {
            return Ok(());
        }
        let domain = &self.table.domains()[ctx.domain];
        let ip = client_ip(session)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let asked = Asked {
            domain: &domain.name,
            method: &req.method,
            path: req.uri.path(),
            query: req.uri.query().unwrap_or(""),
            headers: &req.headers,
            host: req
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
            client_ip: &ip,
            https: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        };
        let (reason, detail) = match remote.check(&asked).await {
            Outcome::Allowed { headers, .. } => {
                ctx.upstream_headers = (!headers.is_empty()).then_some(headers);
                return Ok(());
            }
            Outcome::Denied { status, .. } => {
                return Err(Failure::with(
                    Reason::RemoteDenied,
                    format!("the auth server answered {status}"),
                ))
            }
            Outcome::TimedOut => (
                Reason::RemoteTimeout,
                "the auth server did not answer in time".to_owned(),
            ),
            Outcome::Failed(why) => (
                Reason::RemoteError,
                format!("the auth server failed: {why}"),
            ),
        };
        match remote.action {
            TimeoutAction::Allow => {
                warn!(
                    "{reason}, timeout action allow: letting {} through ({detail})",
                    req.uri.path()
                );
                Ok(())
            }
            TimeoutAction::Block => Err(Failure::with(reason, detail)),
        }
    }
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

#[async_trait]
impl ProxyHttp for Gate {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let verdict = match self.admit(session.req_header(), client_ip(session), unix_now()) {
            Ok(a) => {
                ctx.domain = a.domain;
                ctx.upstream_uri = a.upstream_uri;
                if self.origins[a.domain].keyed() {
                    let path = ctx
                        .upstream_uri
                        .as_deref()
                        .unwrap_or(session.req_header().uri.path());
                    let r = Route::of_path(path.split('?').next().unwrap_or(path));
                    ctx.hash_key = format!("{}/{}", r.app, r.stream);
                }
                self.ask_remote(session, ctx).await
            }
            Err(f) => Err(f),
        };
        let Err(f) = verdict else { return Ok(false) };
        info!(
            "denied {} {}: {} ({})",
            session.req_header().method,
            session.req_header().uri.path(),
            f.reason,
            f.detail
        );
        ctx.reason = Some(f.reason);
        session.respond_error(f.reason.status()).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let origin = &self.origins[ctx.domain];
        let backend = origin
            .select(ctx.hash_key.as_bytes(), &ctx.tried)
            .ok_or_else(|| {
                Error::explain(ErrorType::ConnectNoRoute, "no origin peer left to try")
            })?;
        let mut peer = HttpPeer::new(backend.addr, false, String::new());
        peer.options.connection_timeout = Some(origin.connect_timeout);
        peer.options.read_timeout = Some(origin.read_timeout);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(addr) = peer.address().as_inet() {
            warn!("origin {addr} refused: {e}; trying another peer");
            ctx.tried.push(*addr);
        }
        if ctx.tried.len() < self.origins[ctx.domain].peers {
            e.set_retry(true);
        }
        e
    }

    /// A viewer closing an endless stream is how live playback ends, not an error.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        use pingora_core::ErrorSource::Downstream;
        use ErrorType::{ConnectionClosed, ReadError, WriteError};
        *e.esource() == Downstream && matches!(e.etype(), ConnectionClosed | ReadError | WriteError)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(uri) = ctx.upstream_uri.take() {
            let uri = uri
                .parse()
                .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "upstream URI"))?;
            upstream.set_uri(uri);
        }
        if let Some(remote) = &self.remotes[ctx.domain] {
            for name in remote.copy.iter() {
                upstream.remove_header(name);
            }
        }
        if let Some(headers) = ctx.upstream_headers.take() {
            for (name, value) in headers.iter() {
                upstream.insert_header(name.clone(), value.clone())?;
            }
        }
        if let Some(host) = &self.origins[ctx.domain].host {
            upstream.insert_header(http::header::HOST, host)?;
        }
        if let Some(ip) = client_ip(session) {
            let ip = ip.to_string();
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prior) => format!("{prior}, {ip}"),
                None => ip.clone(),
            };
            upstream.insert_header("x-forwarded-for", xff)?;
            upstream.insert_header("x-real-ip", ip)?;
        }
        Ok(())
    }
}

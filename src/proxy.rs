//! The Pingora `ProxyHttp` implementation: thin. Each phase asks a module and acts
//! on the answer; nothing reaches an origin unless `request_filter` admitted it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use log::{info, warn};
use pingora_core::modules::http::HttpModules;
use pingora_core::prelude::HttpPeer;
use pingora_core::upstreams::peer::Peer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};

use crate::access_log::{self, Entry, Redact};
use crate::auth::remote::{Asked, Outcome, Remote};
use crate::auth::Table;
use crate::config::{EventKind, LogFormat, TimeoutAction};
use crate::metrics::{self, metrics, DomainMetrics, RemoteOutcome, UNKNOWN_DOMAIN};
use crate::notify::{Event, Notifier};
use crate::origin::Origin;
use crate::route::{host_name, vet_path, Route, Scene};
use crate::sign::Request;
use crate::streams::{session_stream, StreamKey, Streams};
use crate::unix_now;
use crate::verdict::{Failure, Reason};

/// What livegate runs per domain (same order as the configuration).
pub struct Site {
    pub origin: Arc<Origin>,
    pub remote: Option<Remote>,
    pub metrics: DomainMetrics,
}

/// The edge.
pub struct Gate {
    pub table: Arc<Table>,
    pub sites: Vec<Site>,
    pub streams: Arc<Streams>,
    pub notifier: Option<Arc<Notifier>>,
    pub access_log: Option<LogFormat>,
    /// Hides auth values and signature-shaped path segments in every log line
    /// that names a request: a refused URL can still carry a valid signature.
    pub redact: Redact,
}

/// What one request carries from phase to phase.
pub struct Ctx {
    started: Instant,
    /// The domain once the Host matched one.
    domain: Option<usize>,
    scene: Option<Scene>,
    client: Option<IpAddr>,
    /// `client` as text, formatted once per request (empty when unknown).
    client_ip: IpText,
    /// The URI to send upstream when it differs from the client's (prefix or auth
    /// parameters removed).
    upstream_uri: Option<http::Uri>,
    /// `app/stream`, the consistent-hashing key, when the pool hashes.
    hash_key: String,
    /// Peers that refused a connection for this request.
    tried: Vec<SocketAddr>,
    peer: Option<SocketAddr>,
    /// Headers the auth server's answer asks to pass to the origin.
    upstream_headers: Option<Arc<[(HeaderName, HeaderValue)]>>,
    /// The stream session this connection counts in, once admitted.
    stream: Option<StreamKey>,
    /// Why the request was refused.
    reason: Option<Reason>,
}

/// The Host a request names: its Host header, else an absolute-form target's
/// authority. Every phase reads it here, so all agree with what routing used.
fn host_header(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// The request target the origin receives: `path`, then `?query` unless empty.
/// Built in one buffer and parsed without another copy.
fn upstream_target(path: &str, query: &str) -> Result<http::Uri, Failure> {
    let mut target = Vec::with_capacity(path.len() + 1 + query.len());
    target.extend_from_slice(path.as_bytes());
    if !query.is_empty() {
        target.push(b'?');
        target.extend_from_slice(query.as_bytes());
    }
    http::Uri::from_maybe_shared(Bytes::from(target))
        .map_err(|_| Failure::new(Reason::BadRequest, "the request target cannot be rebuilt"))
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// A client address as text, on the stack: formatted once per request and
/// copied wherever it is needed (signature, stream session, forwarding headers,
/// logs), without allocating.
#[derive(Clone, Copy)]
struct IpText {
    buf: [u8; 46],
    len: usize,
}

impl Default for IpText {
    fn default() -> IpText {
        IpText {
            buf: [0; 46],
            len: 0,
        }
    }
}

impl IpText {
    fn new(ip: Option<IpAddr>) -> IpText {
        use std::io::Write;
        let mut t = IpText::default();
        if let Some(ip) = ip {
            let mut cursor = std::io::Cursor::new(&mut t.buf[..]);
            if write!(cursor, "{ip}").is_ok() {
                t.len = cursor.position() as usize;
            }
        }
        t
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Gate {
    /// Route and verify one request head, recording what it learns in `ctx`.
    fn admit(&self, req: &RequestHeader, ctx: &mut Ctx, now: i64) -> Result<(), Failure> {
        // Two Hosts: we would route by one and the origin might serve the other.
        if req
            .headers
            .get_all(http::header::HOST)
            .iter()
            .nth(1)
            .is_some()
        {
            return Err(Failure::new(Reason::BadRequest, "more than one Host"));
        }
        let host = host_header(req).ok_or(Failure::new(Reason::BadRequest, "no Host"))?;
        let host = host_name(host);
        let (index, domain) = self.table.domain(host).ok_or(Failure::new(
            Reason::UnknownDomain,
            "no domain serves this host",
        ))?;
        ctx.domain = Some(index);
        let scene = Scene::of_method(req.method.as_str()).ok_or(Failure::new(
            Reason::BadMethod,
            "the method belongs to neither pull nor push",
        ))?;
        ctx.scene = Some(scene);
        let path = req.uri.path();
        vet_path(path).map_err(|why| Failure::new(Reason::BadRequest, why))?;
        let query = req.uri.query().unwrap_or("");
        let remote = ctx.client_ip;
        let request = Request {
            host,
            path,
            query,
            remote_addr: remote.as_str(),
        };
        let pass = domain.verify(scene, &request, now)?;
        let kept = match domain.strip_auth_params {
            true => pass.auth.strip(query),
            false => query.into(),
        };
        if pass.path.len() != path.len() || kept.len() != query.len() || req.uri.scheme().is_some()
        {
            ctx.upstream_uri = Some(upstream_target(pass.path, &kept)?);
        }
        let route = Route::of_path(pass.path);
        if self.sites[index].origin.keyed() {
            ctx.hash_key = format!("{}/{}", route.app, route.stream);
        }
        ctx.stream = Some(StreamKey {
            domain: index,
            app: route.app.into(),
            stream: session_stream(route.stream, route.ext).into(),
            scene,
        });
        Ok(())
    }

    /// Remote authentication for an admitted request, when its domain has it and
    /// the request is in scope.
    async fn ask_remote(&self, session: &Session, ctx: &mut Ctx) -> Result<(), Failure> {
        let Some(d) = ctx.domain else { return Ok(()) };
        let site = &self.sites[d];
        let Some(remote) = &site.remote else {
            return Ok(());
        };
        let req = session.req_header();
        if !remote.in_scope(req.uri.path()) {
            return Ok(());
        }
        let ip = ctx.client_ip;
        let asked = Asked {
            domain: &self.table.domains()[d].name,
            method: &req.method,
            path: req.uri.path(),
            query: req.uri.query().unwrap_or(""),
            headers: &req.headers,
            host: host_header(req).unwrap_or(""),
            client_ip: ip.as_str(),
            https: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        };
        let started = Instant::now();
        let outcome = remote.check(&asked).await;
        metrics()
            .remote_seconds
            .observe(started.elapsed().as_secs_f64());
        let (reason, detail) = match outcome {
            Outcome::Allowed { headers, cached } => {
                site.metrics.remote(if cached {
                    RemoteOutcome::CacheHit
                } else {
                    RemoteOutcome::Allow
                });
                ctx.upstream_headers = (!headers.is_empty()).then_some(headers);
                return Ok(());
            }
            Outcome::Denied { status, cached } => {
                site.metrics.remote(if cached {
                    RemoteOutcome::CacheHit
                } else {
                    RemoteOutcome::Deny
                });
                return Err(Failure::with(
                    Reason::RemoteDenied,
                    format!("the auth server answered {status}"),
                ));
            }
            Outcome::TimedOut => {
                site.metrics.remote(RemoteOutcome::Timeout);
                (
                    Reason::RemoteTimeout,
                    "the auth server did not answer in time".to_owned(),
                )
            }
            Outcome::Failed(why) => {
                site.metrics.remote(RemoteOutcome::Error);
                (
                    Reason::RemoteError,
                    format!("the auth server failed: {why}"),
                )
            }
        };
        match remote.action {
            TimeoutAction::Allow => {
                warn!(
                    "{reason}, timeout action allow: letting {} through ({detail})",
                    self.redact.target(req.uri.path(), "")
                );
                Ok(())
            }
            TimeoutAction::Block => Err(Failure::with(reason, detail)),
        }
    }

    /// Counts a verdict under the domain and scene it reached.
    fn count(&self, ctx: &Ctx, verdict: Result<(), Reason>) {
        metrics()
            .auth_seconds
            .observe(ctx.started.elapsed().as_secs_f64());
        match (ctx.domain, ctx.scene, verdict) {
            (Some(d), Some(scene), v) => self.sites[d].metrics.verdict(scene, v),
            (d, scene, Err(r)) => {
                let name = d.map_or(UNKNOWN_DOMAIN, |d| self.table.domains()[d].name.as_str());
                metrics::unrouted(name, scene, r);
            }
            (_, _, Ok(())) => {}
        }
    }

    /// Answers a refused request: the status, the reason in the log (never in the
    /// body), and an `auth_denied` event when wanted.
    async fn deny(&self, session: &mut Session, ctx: &mut Ctx, f: Failure) -> Result<bool> {
        let req = session.req_header();
        info!(
            "denied {} {}: {} ({})",
            req.method,
            self.redact.target(req.uri.path(), ""),
            f.reason,
            f.detail
        );
        if let Some(n) = self
            .notifier
            .as_ref()
            .filter(|n| n.wants(EventKind::AuthDenied))
        {
            let route = Route::of_path(req.uri.path());
            let domain = ctx.domain.map_or_else(
                || host_name(host_header(req).unwrap_or("")).to_owned(),
                |d| self.table.domains()[d].name.clone(),
            );
            n.emit(Event {
                event_type: EventKind::AuthDenied,
                domain,
                app: route.app.to_owned(),
                stream: route.stream.to_owned(),
                scene: ctx.scene.map_or("none", Scene::as_str),
                client_ip: ctx.client_ip.as_str().to_owned(),
                time: unix_now(),
                reason: Some(f.reason.as_str()),
            });
        }
        ctx.stream = None;
        ctx.reason = Some(f.reason);
        session.respond_error(f.reason.status()).await?;
        Ok(true)
    }

    fn log_access(&self, session: &Session, ctx: &Ctx) {
        let Some(format) = self.access_log else {
            return;
        };
        let req = session.req_header();
        let header = |name| {
            req.headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .unwrap_or("")
        };
        let client = ctx.client_ip;
        let origin = ctx.peer.map(|p| p.to_string());
        let started = std::time::SystemTime::now() - ctx.started.elapsed();
        let started_ms = started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let entry = Entry {
            time_ms: started_ms,
            client: client.as_str(),
            host: host_header(req).unwrap_or(""),
            method: req.method.as_str(),
            path: req.uri.path(),
            query: req.uri.query().unwrap_or(""),
            version: match req.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            bytes: session.body_bytes_sent(),
            referer: header(http::header::REFERER),
            user_agent: header(http::header::USER_AGENT),
            duration: ctx.started.elapsed(),
            origin: origin.as_deref(),
            reason: ctx.reason,
        };
        info!(target: "access", "{}", access_log::line(format, &self.redact, &entry));
    }
}

#[async_trait]
impl ProxyHttp for Gate {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            domain: None,
            scene: None,
            client: None,
            client_ip: IpText::default(),
            upstream_uri: None,
            hash_key: String::new(),
            tried: Vec::new(),
            peer: None,
            upstream_headers: None,
            stream: None,
            reason: None,
        }
    }

    /// No downstream modules: Pingora's default adds a (disabled) compression
    /// module that live media never uses, and every module costs each request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.client = client_ip(session);
        ctx.client_ip = IpText::new(ctx.client);
        let verdict = match self.admit(session.req_header(), ctx, unix_now()) {
            Ok(()) => self.ask_remote(session, ctx).await,
            Err(f) => Err(f),
        };
        self.count(ctx, verdict.as_ref().map(|_| ()).map_err(|f| f.reason));
        match verdict {
            Ok(()) => {
                if let Some(key) = &ctx.stream {
                    self.streams.open(key, ctx.client_ip.as_str());
                }
                Ok(false)
            }
            Err(f) => self.deny(session, ctx, f).await,
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let d = ctx
            .domain
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no domain"))?;
        let origin = &self.sites[d].origin;
        let backend = origin
            .select(ctx.hash_key.as_bytes(), &ctx.tried)
            .ok_or_else(|| {
                Error::explain(ErrorType::ConnectNoRoute, "no origin peer left to try")
            })?;
        ctx.peer = backend.addr.as_inet().copied();
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
        if ctx
            .domain
            .is_some_and(|d| ctx.tried.len() < self.sites[d].origin.peers)
        {
            e.set_retry(true);
        }
        e
    }

    /// What Pingora's error lines say of a request: its target with auth values
    /// and signature-shaped segments hidden (the default prints them).
    fn request_summary(&self, session: &Session, _ctx: &Ctx) -> String {
        let req = session.req_header();
        let target = self
            .redact
            .target(req.uri.path(), req.uri.query().unwrap_or(""));
        format!(
            "{} {target}, Host: {}",
            req.method,
            host_header(req).unwrap_or("-")
        )
    }

    /// A viewer closing an endless stream is how live playback ends, not an error.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        use pingora_core::ErrorSource::Downstream;
        use ErrorType::{ConnectionClosed, ReadError, WriteError};
        *e.esource() == Downstream && matches!(e.etype(), ConnectionClosed | ReadError | WriteError)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(d) = ctx.domain else { return Ok(()) };
        if let Some(uri) = ctx.upstream_uri.take() {
            upstream.set_uri(uri);
        }
        if let Some(remote) = &self.sites[d].remote {
            for name in remote.copy.iter() {
                upstream.remove_header(name);
            }
        }
        if let Some(headers) = ctx.upstream_headers.take() {
            for (name, value) in headers.iter() {
                upstream.insert_header(name.clone(), value.clone())?;
            }
        }
        if let Some(host) = &self.sites[d].origin.host {
            upstream.insert_header(http::header::HOST, host)?;
        }
        if ctx.client.is_some() {
            let ip = ctx.client_ip.as_str();
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prior) => format!("{prior}, {ip}"),
                None => ip.to_owned(),
            };
            upstream.insert_header("x-forwarded-for", xff)?;
            upstream.insert_header("x-real-ip", ip.to_owned())?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(d) = ctx.domain {
            self.sites[d].metrics.upstream_status(resp.status.as_u16());
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if let (Some(d), Some(b)) = (ctx.domain, body.as_ref()) {
            self.sites[d].metrics.sent.inc_by(b.len() as u64);
        }
        Ok(None)
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        if let Some(key) = &ctx.stream {
            self.streams.close(key);
        }
        self.log_access(session, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::IpText;

    #[test]
    fn ip_text_holds_any_address() {
        let long = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".parse().ok();
        assert_eq!(
            IpText::new(long).as_str(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(IpText::new("192.0.2.7".parse().ok()).as_str(), "192.0.2.7");
        assert_eq!(IpText::new(None).as_str(), "");
    }
}

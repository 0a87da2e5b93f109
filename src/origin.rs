//! Origin pools: the peers of a domain, how one is picked, and their health.
//!
//! Built on `pingora-load-balancing`: round robin, or Ketama consistent hashing on
//! `app/stream` so every viewer of a stream lands on the same origin (one
//! origin-side pull per stream). Health checks are handed back as [`Checks`] to
//! run for as long as the configuration that made them is in force.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::services::background::BackgroundService;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_load_balancing::health_check::{HealthCheck, TcpHealthCheck};
use pingora_load_balancing::selection::{BackendIter, BackendSelection, Consistent, RoundRobin};
use pingora_load_balancing::{Backend, LoadBalancer};

use crate::config::{Balance, OriginConfig};

/// How many candidates a selection may look at before giving up.
const MAX_ITERATIONS: usize = 256;

enum Pool {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Consistent(Arc<LoadBalancer<Consistent>>),
}

/// Health checkers of origin pools, each to run until its configuration is
/// replaced (a background service's loop, stopped by its shutdown watch).
pub type Checks = Vec<Arc<dyn BackgroundService + Send + Sync>>;

/// One domain's origin pool and the settings of connections to it.
pub struct Origin {
    pool: Pool,
    /// Number of configured peers.
    pub peers: usize,
    /// Connection attempts a request makes before giving up (`server.max_retries`,
    /// Pingora's default 16): every peer once, then the same ones again.
    pub attempts: usize,
    /// Host header sent upstream instead of the client's.
    pub host: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// For what the edge asks itself (fan-out pulls, cache fills): built once,
    /// as it loads TLS roots.
    connector: Connector,
}

impl Origin {
    /// Builds the pool, making `attempts` connection attempts a request; with
    /// `health_check`, adds its checker to `checks` (the caller runs them, inside
    /// Pingora's runtime so that they survive daemonising).
    pub fn build(
        cfg: &OriginConfig,
        attempts: usize,
        checks: &mut Checks,
    ) -> std::io::Result<Origin> {
        Origin::build_of(cfg, &cfg.peers, attempts, checks)
    }

    /// The pool of a domain's `rtmp_peers` (balanced, timed out and health
    /// checked like its HTTP peers); `None` when it has none.
    pub fn build_rtmp(
        cfg: &OriginConfig,
        attempts: usize,
        checks: &mut Checks,
    ) -> std::io::Result<Option<Origin>> {
        if cfg.rtmp_peers.is_empty() {
            return Ok(None);
        }
        Origin::build_of(cfg, &cfg.rtmp_peers, attempts, checks).map(Some)
    }

    fn build_of(
        cfg: &OriginConfig,
        peers: &[String],
        attempts: usize,
        checks: &mut Checks,
    ) -> std::io::Result<Origin> {
        let pool = match cfg.balance {
            Balance::RoundRobin => Pool::RoundRobin(lb(cfg, peers, checks)?),
            Balance::Consistent => Pool::Consistent(lb(cfg, peers, checks)?),
        };
        Ok(Origin {
            pool,
            peers: peers.len(),
            attempts: attempts.max(1),
            host: cfg.host.clone(),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            read_timeout: Duration::from_millis(cfg.read_timeout_ms),
            connector: Connector::new(None),
        })
    }

    /// Whether selection needs a key (consistent hashing); callers skip building it otherwise.
    pub fn keyed(&self) -> bool {
        matches!(self.pool, Pool::Consistent(_))
    }

    /// Each peer with whether it currently passes its health check (always true
    /// without health checks).
    pub fn health(&self) -> Vec<(String, bool)> {
        match &self.pool {
            Pool::RoundRobin(lb) => peers_health(lb),
            Pool::Consistent(lb) => peers_health(lb),
        }
    }

    /// The Pingora peer for a selected backend, with this pool's timeouts.
    pub fn peer(&self, backend: &Backend) -> HttpPeer {
        let mut peer = HttpPeer::new(backend.addr.clone(), false, String::new());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        peer
    }

    /// A `GET` of `target` with `host`, to a peer of this pool (the next one on a
    /// refused connection, like a proxied request); returns with the response
    /// head read, and the peer that answered. Carries no client header: for what the edge asks on behalf of
    /// many viewers (fan-out pulls, cache fills). `hold`: how long the origin may
    /// keep the request before it answers (a blocking LL-HLS playlist).
    pub async fn request(
        &self,
        hash_key: &str,
        host: &str,
        target: &str,
        agent: &str,
        hold: Option<Duration>,
    ) -> Result<(HttpSession, SocketAddr), String> {
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last = String::from("no origin peer");
        while let Some(backend) = self.next(hash_key.as_bytes(), &tried) {
            let peer = self.peer(&backend);
            let addr = backend
                .addr
                .as_inet()
                .copied()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            tried.push(addr);
            let mut http = match self.connector.get_http_session(&peer).await {
                Ok((h, _reused)) => h,
                Err(e) => {
                    log::warn!("origin {} refused: {e}", backend.addr);
                    last = e.to_string();
                    continue;
                }
            };
            let mut req =
                RequestHeader::build("GET", target.as_bytes(), None).map_err(|e| e.to_string())?;
            req.insert_header(http::header::HOST, host)
                .map_err(|e| e.to_string())?;
            req.insert_header(http::header::USER_AGENT, agent)
                .map_err(|e| e.to_string())?;
            // A request the origin holds (LL-HLS) waits as long as it may be held.
            let wait = hold.map_or(self.read_timeout, |h| h.max(self.read_timeout));
            http.set_read_timeout(Some(wait));
            let sent = async {
                http.write_request_header(Box::new(req)).await?;
                http.finish_request_body().await?;
                http.read_response_header().await
            };
            match sent.await {
                Ok(()) => return Ok((http, addr)),
                Err(e) => last = format!("origin {}: {e}", backend.addr),
            }
        }
        Err(last)
    }

    /// The peer for the next attempt of a request whose connections to `tried`
    /// failed: one not tried yet, else (every peer refused, as a busy origin's
    /// full accept queue does) the first choice again — until [`Origin::attempts`]
    /// were made. Proxied requests and what the edge asks itself retry alike.
    pub fn next(&self, key: &[u8], tried: &[SocketAddr]) -> Option<Backend> {
        if tried.len() >= self.attempts {
            return None;
        }
        self.select(key, tried).or_else(|| self.select(key, &[]))
    }

    /// A healthy peer not in `tried`; failing that, any peer not in `tried` (a
    /// health check may lag behind an origin that came back).
    pub fn select(&self, key: &[u8], tried: &[SocketAddr]) -> Option<Backend> {
        let fresh = |b: &Backend| b.addr.as_inet().is_none_or(|a| !tried.contains(a));
        match &self.pool {
            Pool::RoundRobin(lb) => pick(lb, key, fresh),
            Pool::Consistent(lb) => pick(lb, key, fresh),
        }
    }
}

fn peers_health<S>(lb: &LoadBalancer<S>) -> Vec<(String, bool)>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let backends = lb.backends();
    backends
        .get_backend()
        .iter()
        .map(|b| (b.addr.to_string(), backends.ready(b)))
        .collect()
}

fn pick<S>(lb: &LoadBalancer<S>, key: &[u8], fresh: impl Fn(&Backend) -> bool) -> Option<Backend>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    lb.select_with(key, MAX_ITERATIONS, |b, healthy| healthy && fresh(b))
        .or_else(|| lb.select_with(key, MAX_ITERATIONS, |b, _| fresh(b)))
}

fn lb<S>(
    cfg: &OriginConfig,
    peers: &[String],
    checks: &mut Checks,
) -> std::io::Result<Arc<LoadBalancer<S>>>
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
{
    let mut lb = LoadBalancer::<S>::try_from_iter(peers.iter().map(String::as_str))?;
    let Some(hc) = &cfg.health_check else {
        return Ok(Arc::new(lb));
    };
    let mut check = TcpHealthCheck::new();
    check.peer_template.options.connection_timeout =
        Some(Duration::from_millis(cfg.connect_timeout_ms));
    lb.set_health_check(Box::new(Probe(check)));
    lb.health_check_frequency = Some(Duration::from_millis(hc.interval_ms));
    let lb = Arc::new(lb);
    checks.push(lb.clone());
    Ok(lb)
}

/// Pingora's TCP check, reported in one short line: the origin's address and
/// why it failed, not the Debug of the backend and the peer's options.
struct Probe(Box<TcpHealthCheck>);

#[async_trait::async_trait]
impl HealthCheck for Probe {
    async fn check(&self, target: &Backend) -> pingora_core::Result<()> {
        self.0.check(target).await.map_err(|e| {
            let why = e.root_cause().to_string();
            pingora_core::Error::explain(e.etype().clone(), why)
        })
    }

    fn backend_summary(&self, target: &Backend) -> String {
        format!("origin {}", target.addr)
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.0.health_threshold(success)
    }
}

/// Headers that describe one hop, not the object: never passed on by what the
/// edge fetches for many clients. The length goes too: the edge sets its own.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "proxy-authenticate",
];

/// An origin's response head without its hop-by-hop headers and length.
pub fn end_to_end(resp: &ResponseHeader) -> ResponseHeader {
    let mut resp = resp.clone();
    for h in HOP_BY_HOP {
        resp.remove_header(h);
    }
    resp
}

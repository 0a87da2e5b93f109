//! RTMP through the gate: encoders publish and players play over RTMP (and
//! `rtmps`), and every session is admitted exactly as an HTTP request is — the
//! same domains, rules, access lists, forbids, remote auth and metrics, through
//! [`crate::admission`] — before a byte, or even a TCP connection, reaches an
//! origin.
//!
//! A session is read ([`setup`]: handshake, `connect`, `createStream`,
//! `publish`/`play`, bounded in time and bytes), its target read one way
//! ([`target`]), admitted, then dialled to the domain's `rtmp_peers`
//! ([`origin`]) and relayed both ways ([`relay`]). Refusals are RTMP answers the
//! encoder shows, then a close.

mod origin;
mod peer;
mod relay;
mod setup;
pub mod target;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use pingora_prometheus::prometheus::IntCounter;

use crate::admission::{Admission, Ask};
use crate::config::DuplicatePublish;
use crate::conn::Connections;
use crate::media::rtmp::chunk::Limits;
use crate::metrics::{self, metrics, UNKNOWN_DOMAIN};
use crate::notify::{Event, Notifier};
use crate::origin::Origin as Pool;
use crate::route::Scene;
use crate::streams::{Protocol, StreamKey, Streams};
use crate::verdict::{Failure, Reason};
use peer::{Reader, Writer};
use relay::End;
use setup::Intent;

/// How sessions are read.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub handshake_timeout: Duration,
    pub duplicate: DuplicatePublish,
}

/// What the RTMP gate runs per domain, and how it reads sessions, as one
/// configuration gave it: a reload swaps it whole.
pub struct Pools {
    /// Per domain slot (see [`crate::state::live::Live::reload`]): its
    /// `rtmp_peers`, if any. Only ever grows.
    pub domains: Vec<Option<Arc<Pool>>>,
    /// Per domain slot: RTMP bytes `[in, out]`.
    pub bytes: Vec<[IntCounter; 2]>,
    pub settings: Settings,
}

impl Pools {
    /// The pools of the domains named `names` (in their slots).
    pub fn new(names: &[String], domains: Vec<Option<Arc<Pool>>>, settings: Settings) -> Pools {
        Pools {
            domains,
            bytes: names.iter().map(|n| metrics::rtmp_bytes(n)).collect(),
            settings,
        }
    }
}

/// The RTMP gate: a Pingora server app on `rtmp.listen`.
pub struct RtmpGate {
    pub admission: Arc<Admission>,
    pub pools: Arc<arc_swap::ArcSwap<Pools>>,
    pub streams: Arc<Streams>,
    pub notifier: Arc<Notifier>,
    pub connections: Arc<Connections>,
    /// Streams with an RTMP publisher on this edge: which session it is.
    publishing: Mutex<HashMap<StreamKey, u64>>,
    sessions: AtomicU64,
}

impl RtmpGate {
    pub fn new(
        admission: Arc<Admission>,
        pools: Arc<arc_swap::ArcSwap<Pools>>,
        streams: Arc<Streams>,
        notifier: Arc<Notifier>,
        connections: Arc<Connections>,
    ) -> RtmpGate {
        RtmpGate {
            admission,
            pools,
            streams,
            notifier,
            connections,
            publishing: Mutex::new(HashMap::new()),
            sessions: AtomicU64::new(0),
        }
    }
}

/// Counts an open RTMP connection for as long as it lives.
struct Open;

impl Open {
    fn new() -> Open {
        metrics().rtmp_connections.inc();
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics().rtmp_connections.dec();
    }
}

#[async_trait]
impl ServerApp for RtmpGate {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _slot = self.connections.slot()?;
        let _open = Open::new();
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
            .map(crate::access::canonical_ip);
        let tls = stream.get_ssl_digest().is_some();
        // A plain connection's id is its socket (Pingora's `l4::Stream`).
        let fd = (!tls).then(|| pingora_core::protocols::UniqueID::id(&*stream));
        let (r, w) = tokio::io::split(stream);
        let mut reader = Reader::new(r, Limits::HANDSHAKING, 8 << 10);
        if let Some(fd) = fd {
            reader = reader.on_socket(fd);
        }
        let mut writer = Writer::new(w);
        self.serve(&mut reader, &mut writer, peer, tls).await;
        None
    }
}

/// Why a session ended before it was relayed: for the log and the metrics.
struct Refused {
    domain: Option<usize>,
    scene: Option<Scene>,
    failure: Failure,
}

impl RtmpGate {
    async fn serve<R, W>(
        &self,
        r: &mut Reader<R>,
        w: &mut Writer<W>,
        peer: Option<IpAddr>,
        tls: bool,
    ) where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        let ip = peer.map_or_else(String::new, |p| p.to_string());
        let timeout = self.pools.load().settings.handshake_timeout;
        // At connect: a tcUrl read one way, on a host some domain serves (an
        // address host may still name its domain by vhost= at publish).
        let accept = |tc: &str| {
            let t = target::read(tc, "connect", |h| self.admission.domain_of(h).is_some())
                .map_err(|f| f.reason.as_str().to_owned())?;
            let address = t.host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok();
            match address || self.admission.domain_of(&t.host).is_some() {
                true => Ok(()),
                false => Err(Reason::UnknownDomain.as_str().to_owned()),
            }
        };
        let intent = match tokio::time::timeout(timeout, setup::read(r, w, accept)).await {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => {
                log::info!("RTMP session from {ip} ended before publish or play: {e}");
                metrics::rtmp_session(UNKNOWN_DOMAIN, None, Err(Reason::BadRequest));
                return;
            }
            Err(_) => {
                log::info!("RTMP session from {ip}: no publish or play within {timeout:?}; closed");
                metrics::rtmp_session(UNKNOWN_DOMAIN, None, Err(Reason::BadRequest));
                return;
            }
        };
        let scene = intent.scene;
        // Boxed: a session still handshaking holds only its own small state, not
        // the relay's.
        let relayed = Box::pin(self.admit_and_relay(&intent, r, w, peer, &ip, tls)).await;
        if let Err(refused) = relayed {
            let door = refused.domain.map(|d| self.admission.door(d));
            let name = door.as_ref().map_or(UNKNOWN_DOMAIN, |d| d.name.as_str());
            metrics::rtmp_session(name, refused.scene, Err(refused.failure.reason));
            let answer = setup::refusal(scene, refused.failure.reason.as_str());
            let _ = w.send(&[answer]).await;
        }
    }

    /// Admits a session and relays it to its end; a refusal otherwise.
    async fn admit_and_relay<R, W>(
        &self,
        intent: &Intent,
        r: &mut Reader<R>,
        w: &mut Writer<W>,
        peer: Option<IpAddr>,
        ip: &str,
        tls: bool,
    ) -> Result<(), Refused>
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        let scene = intent.scene;
        let refused = |domain, failure| Refused {
            domain,
            scene: Some(scene),
            failure,
        };
        let verb = match scene {
            Scene::Push => "publish",
            Scene::Pull => "play",
        };
        let tc_url = intent.property("tcUrl").unwrap_or("");
        let t = target::read(tc_url, intent.name(), |h| {
            self.admission.domain_of(h).is_some()
        })
        .map_err(|f| {
            self.denied(None, scene, verb, "-", ip, &f);
            refused(None, f)
        })?;
        let path = t.path();
        // One reading of the signature: in the stream name's query or the tcUrl's.
        let snap = self.admission.live.load();
        let names = snap.table.auth_param_names();
        let signs = |q: &str| {
            q.split('&')
                .filter_map(|p| p.split('=').next())
                .any(|n| names.iter().any(|a| a.eq_ignore_ascii_case(n)))
        };
        let (in_tc, in_stream) = (signs(&t.tc_query), signs(&t.stream_query));
        drop(snap);
        if in_tc && in_stream {
            let f = Failure::new(
                Reason::BadRequest,
                "signature parameters in both the tcUrl and the stream name",
            );
            let d = self.admission.domain_of(&t.host);
            self.denied(d, scene, verb, &path, ip, &f);
            return Err(refused(d, f));
        }
        let query = if in_tc { &t.tc_query } else { &t.stream_query };
        let headers = client_headers(intent);
        let method = match scene {
            Scene::Push => http::Method::POST,
            Scene::Pull => http::Method::GET,
        };
        let ask = Ask {
            host: &t.host,
            path: &path,
            query,
            scene: Some(scene),
            method: &method,
            headers: &headers,
            peer,
            client_ip: ip,
            https: tls,
            tokens: false,
        };
        let a = self
            .admission
            .admit(&ask, crate::unix_now())
            .await
            .map_err(|r| {
                self.denied(
                    r.domain,
                    scene,
                    verb,
                    &self.shown(&path, query),
                    ip,
                    &r.failure,
                );
                Refused {
                    domain: r.domain,
                    scene: r.scene,
                    failure: r.failure,
                }
            })?;
        let d = a.domain;
        let door = self.admission.door(d);
        let domain = &door.name;
        let pools = self.pools.load_full();
        let give_back = |f: Failure| {
            self.admission.release(&a);
            self.denied(Some(d), scene, verb, &path, ip, &f);
            refused(Some(d), f)
        };
        let Some(pool) = pools.domains[d].clone() else {
            return Err(give_back(Failure::new(
                Reason::UnknownDomain,
                "the domain has no origin.rtmp_peers",
            )));
        };
        let session = self.sessions.fetch_add(1, Ordering::Relaxed);
        if scene == Scene::Push {
            if let Err(f) = self.claim(&a.stream, session) {
                return Err(give_back(f));
            }
        }
        // What the origin gets: the stream name less the rule's parameters (a
        // signature in the tcUrl leaves the stream query as it came).
        let kept = match in_tc {
            true => t.stream_query.as_str().into(),
            false => a.kept(&t.stream_query),
        };
        let name = match kept.is_empty() {
            true => t.stream.clone(),
            false => format!("{}?{kept}", t.stream),
        };
        let route = a.route();
        let hash_key = format!("{}/{}", route.app, route.stream);
        let ticket = self.streams.open_as(&a.stream, ip, Protocol::Rtmp);
        let ask_origin = origin::Ask {
            intent,
            app: &t.app,
            name: &name,
            hash_key: &hash_key,
        };
        let end = match origin::dial(&pool, &ask_origin).await {
            Err(why) => {
                log::warn!("RTMP {verb} {} of {domain}: {why}", self.shown(&path, ""));
                Err(Failure::with(Reason::BadRequest, why))
            }
            Ok(mut up) => {
                log::info!(
                    "RTMP {verb} {} of {domain} from {ip}: relayed to {}",
                    self.shown(&path, ""),
                    up.peer
                );
                metrics::rtmp_session(domain, Some(scene), Ok(()));
                r.relaying(Limits::RELAYING.max_chunk_size + 64);
                let watch = relay::Watch {
                    ticket: ticket.as_ref(),
                    bytes: &pools.bytes[d],
                    client_stream: setup::CLIENT_STREAM,
                    cut_at: a.cut_at,
                };
                let end = relay::run(r, w, &mut up, watch).await;
                log::info!(
                    "RTMP {verb} {} of {domain} from {ip} ended: {}",
                    self.shown(&path, ""),
                    match &end {
                        End::Client(e) => format!("the client: {e}"),
                        End::Origin(e) => format!("the origin: {e}"),
                        End::Cut => "cut by the management API".into(),
                        End::Expired => "cut: its signature expired".into(),
                        End::Write(e) => format!("a write failed: {e}"),
                    }
                );
                if matches!(end, End::Expired) {
                    door.metrics.verdict(scene, Err(Reason::Expired));
                }
                Ok(())
            }
        };
        if let Some(t) = &ticket {
            self.streams.close(&a.stream, t);
        }
        self.admission.release(&a);
        if scene == Scene::Push {
            self.unclaim(&a.stream, session);
        }
        match end {
            Ok(()) => Ok(()),
            // The origin refused or is down: the encoder is told, as for a refusal.
            Err(f) => {
                metrics::rtmp_session(domain, Some(scene), Err(f.reason));
                let answer = setup::refusal(scene, "origin unavailable");
                let _ = w.send(&[answer]).await;
                Ok(())
            }
        }
    }

    /// Takes the stream's publisher place: refused while another publisher holds
    /// it (`reject`), or that one is cut (`replace`).
    fn claim(&self, key: &StreamKey, session: u64) -> Result<(), Failure> {
        let mut p = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        if p.contains_key(key) {
            match self.pools.load().settings.duplicate {
                DuplicatePublish::Reject => {
                    return Err(Failure::new(
                        Reason::DuplicatePublish,
                        "the stream already has a publisher on this edge",
                    ))
                }
                DuplicatePublish::Replace => {
                    let n = self
                        .streams
                        .cut(key.domain, &key.app, &key.stream, Some(Scene::Push));
                    log::info!(
                        "RTMP publisher of {}/{} replaced: {n} connections cut",
                        key.app,
                        key.stream
                    );
                }
            }
        }
        p.insert(key.clone(), session);
        Ok(())
    }

    fn unclaim(&self, key: &StreamKey, session: u64) {
        let mut p = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        if p.get(key) == Some(&session) {
            p.remove(key);
        }
    }

    /// A path and query as log lines name them (redacted).
    fn shown(&self, path: &str, query: &str) -> String {
        self.admission.live.load().redact.target(path, query)
    }

    /// Logs a refusal and emits `auth_denied` when wanted.
    fn denied(
        &self,
        domain: Option<usize>,
        scene: Scene,
        verb: &str,
        shown: &str,
        ip: &str,
        f: &Failure,
    ) {
        log::info!(
            "denied RTMP {verb} {shown} from {ip}: {} ({})",
            f.reason,
            f.detail
        );
        let n = &self.notifier;
        if !n.wants(crate::config::EventKind::AuthDenied) {
            return;
        }
        let route = crate::route::Route::of_path(shown.split('?').next().unwrap_or(""));
        n.emit(Event {
            event_type: crate::config::EventKind::AuthDenied,
            domain: domain.map_or_else(String::new, |d| self.admission.door(d).name.clone()),
            app: route.app.to_owned(),
            stream: route.stream.to_owned(),
            scene: scene.as_str(),
            client_ip: ip.to_owned(),
            time: crate::unix_now(),
            reason: Some(f.reason.as_str()),
        });
    }
}

/// What access lists and the auth server read of an RTMP session: `pageUrl` as
/// the Referer, `flashVer` as the User-Agent (where the client gives them).
fn client_headers(intent: &Intent) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (name, key) in [
        (http::header::REFERER, "pageUrl"),
        (http::header::USER_AGENT, "flashVer"),
    ] {
        if let Some(v) = intent
            .property(key)
            .and_then(|v| http::HeaderValue::from_str(v).ok())
        {
            h.insert(name, v);
        }
    }
    h
}

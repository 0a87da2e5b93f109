//! Online streams: which (domain, app, stream, scene) have connections now.
//!
//! A stream session starts with its first connection and ends when its last one
//! closed and none came back within `linger_ms`, so HLS viewers polling a playlist
//! make one session, not one per request. Feeds `livegate_active_streams` and the
//! `stream_start`/`stream_end` notifications.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use pingora_prometheus::prometheus::IntGauge;

use crate::config::EventKind;
use crate::notify::{Event, Notifier};
use crate::route::Scene;
use crate::unix_now;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The stream a request belongs to, for sessions: HLS/DASH segments named
/// `<stream>-<n>.ts` (nginx-rtmp, SRS) count as `<stream>`.
pub fn session_stream<'a>(stream: &'a str, ext: &str) -> &'a str {
    if !["ts", "m4s", "aac", "mp4"]
        .iter()
        .any(|e| ext.eq_ignore_ascii_case(e))
    {
        return stream;
    }
    match stream.rsplit_once('-') {
        Some((name, n))
            if !name.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => stream,
    }
}

/// One stream in one scene of one domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub domain: usize,
    pub app: Box<str>,
    pub stream: Box<str>,
    pub scene: Scene,
}

struct Live {
    connections: u32,
    /// Of which over RTMP.
    rtmp: u32,
    /// When the last connection closed (`None` while any is open).
    idle_since: Option<Instant>,
    last_ip: String,
    /// Unix seconds when the session started.
    since: i64,
    /// Open connections per client address, for publishers (the management API
    /// lists them; viewers are not tracked, so a playlist poll costs no allocation).
    clients: HashMap<String, u32>,
    shared: Arc<Shared>,
}

/// What a session shares with its open connections, read on the data path
/// without the registry's lock.
#[derive(Debug, Default)]
pub struct Shared {
    /// Bumped to cut every connection opened before (forbid, drop).
    epoch: AtomicU64,
    /// Body bytes sent to the session's clients.
    pub bytes: AtomicU64,
}

/// One connection's tie to its session: checked on every body chunk.
#[derive(Debug, Clone)]
pub struct Ticket {
    shared: Arc<Shared>,
    epoch: u64,
}

impl Ticket {
    /// Whether the management API cut this connection (forbid or drop).
    pub fn cut(&self) -> bool {
        self.shared.epoch.load(Ordering::Relaxed) != self.epoch
    }

    /// Counts body bytes sent to this connection's client.
    pub fn sent(&self, n: usize) {
        self.shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A stream with open connections on this edge, for the management API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Online {
    pub domain: String,
    pub app: String,
    pub stream: String,
    pub scene: Scene,
    pub connections: u32,
    pub bytes: u64,
    pub since: i64,
    /// The publishers' addresses (push only: viewers are not listed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_ips: Vec<String>,
    /// `http`, `rtmp`, or `http+rtmp` when both carry the stream's connections.
    pub protocol: &'static str,
}

/// What a connection came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Rtmp,
}

/// Per-domain facts the registry reports with.
pub struct DomainInfo {
    pub name: String,
    /// `livegate_active_streams{domain, scene}` for pull and push.
    pub active: [IntGauge; 2],
}

/// The registry.
pub struct Streams {
    live: Mutex<HashMap<StreamKey, Live>>,
    linger: Duration,
    domains: Vec<DomainInfo>,
    notifier: Option<Arc<Notifier>>,
}

fn gauge(d: &DomainInfo, scene: Scene) -> &IntGauge {
    &d.active[match scene {
        Scene::Pull => 0,
        Scene::Push => 1,
    }]
}

impl Streams {
    pub fn new(
        linger: Duration,
        domains: Vec<DomainInfo>,
        notifier: Option<Arc<Notifier>>,
    ) -> Streams {
        Streams {
            live: Mutex::new(HashMap::new()),
            linger,
            domains,
            notifier,
        }
    }

    /// An HTTP connection to `key` was admitted; its ticket tells it when it is cut.
    pub fn open(&self, key: &StreamKey, client_ip: &str) -> Option<Ticket> {
        self.open_as(key, client_ip, Protocol::Http)
    }

    /// A connection to `key` over `protocol` was admitted.
    pub fn open_as(&self, key: &StreamKey, client_ip: &str, protocol: Protocol) -> Option<Ticket> {
        let rtmp = u32::from(protocol == Protocol::Rtmp);
        let mut live = self.live.lock().ok()?;
        if let Some(l) = live.get_mut(key) {
            l.connections += 1;
            l.rtmp += rtmp;
            l.idle_since = None;
            l.last_ip.clear();
            l.last_ip.push_str(client_ip);
            if key.scene == Scene::Push {
                *l.clients.entry(client_ip.to_owned()).or_default() += 1;
            }
            return Some(l.ticket());
        }
        let l = Live {
            connections: 1,
            rtmp,
            idle_since: None,
            last_ip: client_ip.to_owned(),
            since: unix_now(),
            clients: match key.scene {
                Scene::Push => HashMap::from([(client_ip.to_owned(), 1)]),
                Scene::Pull => HashMap::new(),
            },
            shared: Arc::default(),
        };
        let ticket = l.ticket();
        live.insert(key.clone(), l);
        drop(live);
        if let Some(d) = self.domains.get(key.domain) {
            gauge(d, key.scene).inc();
        }
        self.event(EventKind::StreamStart, key, client_ip);
        Some(ticket)
    }

    /// A connection to `key` closed. The session ends `linger` after its last
    /// connection unless another comes (see [`Streams::sweep`]).
    pub fn close(&self, key: &StreamKey, client_ip: &str) {
        self.close_as(key, client_ip, Protocol::Http)
    }

    /// A connection to `key` over `protocol` closed.
    pub fn close_as(&self, key: &StreamKey, client_ip: &str, protocol: Protocol) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        if let Some(l) = live.get_mut(key) {
            l.connections = l.connections.saturating_sub(1);
            if protocol == Protocol::Rtmp {
                l.rtmp = l.rtmp.saturating_sub(1);
            }
            if let Some(n) = l.clients.get_mut(client_ip) {
                *n -= 1;
                if *n == 0 {
                    l.clients.remove(client_ip);
                }
            }
            if l.connections == 0 {
                l.idle_since = Some(Instant::now());
            }
        }
    }

    /// Ends the sessions idle for `linger`. One sweep per tick serves every
    /// stream, instead of a timer per closed connection.
    pub fn sweep(&self, now: Instant) {
        let ended: Vec<(StreamKey, Live)> = {
            let Ok(mut live) = self.live.lock() else {
                return;
            };
            let due = |l: &Live| {
                l.idle_since
                    .is_some_and(|t| now.duration_since(t) >= self.linger)
            };
            let keys: Vec<StreamKey> = live
                .iter()
                .filter(|(_, l)| due(l))
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| live.remove(&k).map(|l| (k, l)))
                .collect()
        };
        for (key, l) in ended {
            if let Some(d) = self.domains.get(key.domain) {
                gauge(d, key.scene).dec();
            }
            self.event(EventKind::StreamEnd, &key, &l.last_ip);
        }
    }

    /// How often [`Streams::sweep`] runs: a tenth of `linger`, within 20 ms..1 s.
    pub fn tick(&self) -> Duration {
        (self.linger / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }

    fn event(&self, kind: EventKind, key: &StreamKey, client_ip: &str) {
        let Some(n) = self.notifier.as_ref().filter(|n| n.wants(kind)) else {
            return;
        };
        let Some(d) = self.domains.get(key.domain) else {
            return;
        };
        n.emit(Event {
            event_type: kind,
            domain: d.name.clone(),
            app: key.app.to_string(),
            stream: key.stream.to_string(),
            scene: key.scene.as_str(),
            client_ip: client_ip.to_owned(),
            time: unix_now(),
            reason: None,
        });
    }

    /// Streams with connections (or lingering), for tests.
    pub fn count(&self) -> usize {
        self.live.lock().map_or(0, |l| l.len())
    }

    /// Cuts every open connection of a stream (in `scene`, or both), as forbid
    /// and drop do: each notices on its next body chunk. Returns how many.
    pub fn cut(&self, domain: usize, app: &str, stream: &str, scene: Option<Scene>) -> u32 {
        let Ok(live) = self.live.lock() else { return 0 };
        live.iter()
            .filter(|(k, l)| {
                k.domain == domain
                    && &*k.app == app
                    && &*k.stream == stream
                    && scene.is_none_or(|s| s == k.scene)
                    && l.connections > 0
            })
            .map(|(_, l)| {
                l.shared.epoch.fetch_add(1, Ordering::Relaxed);
                l.connections
            })
            .sum()
    }

    /// Streams with open connections, filtered, sorted by domain, app, stream
    /// and scene.
    pub fn online(&self, domain: usize, app: Option<&str>, stream: Option<&str>) -> Vec<Online> {
        let Ok(live) = self.live.lock() else {
            return Vec::new();
        };
        let name = self.domains.get(domain).map_or("", |d| d.name.as_str());
        let mut out: Vec<Online> = live
            .iter()
            .filter(|(k, l)| {
                k.domain == domain
                    && l.connections > 0
                    && app.is_none_or(|a| *a == *k.app)
                    && stream.is_none_or(|s| *s == *k.stream)
            })
            .map(|(k, l)| Online {
                domain: name.to_owned(),
                app: k.app.to_string(),
                stream: k.stream.to_string(),
                scene: k.scene,
                connections: l.connections,
                bytes: l.shared.bytes.load(Ordering::Relaxed),
                since: l.since,
                client_ips: {
                    let mut ips: Vec<String> = l.clients.keys().cloned().collect();
                    ips.sort();
                    ips
                },
                protocol: match l.rtmp {
                    0 => "http",
                    n if n >= l.connections => "rtmp",
                    _ => "http+rtmp",
                },
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.app, &a.stream, a.scene.as_str()).cmp(&(&b.app, &b.stream, b.scene.as_str()))
        });
        out
    }
}

impl Live {
    fn ticket(&self) -> Ticket {
        Ticket {
            shared: self.shared.clone(),
            epoch: self.shared.epoch.load(Ordering::Relaxed),
        }
    }
}

/// The sweeper, as a Pingora background service.
#[async_trait]
impl BackgroundService for Streams {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.tick());
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => self.sweep(Instant::now()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(linger_ms: u64) -> Streams {
        let d = DomainInfo {
            name: "streams-test.example.com".into(),
            active: crate::metrics::active_streams("streams-test.example.com"),
        };
        Streams::new(Duration::from_millis(linger_ms), vec![d], None)
    }

    fn key(stream: &str) -> StreamKey {
        StreamKey {
            domain: 0,
            app: "live".into(),
            stream: stream.into(),
            scene: Scene::Pull,
        }
    }

    #[test]
    fn a_session_ends_linger_after_its_last_connection() {
        let s = registry(1000);
        let t0 = Instant::now();
        s.open(&key("a"), "192.0.2.1");
        s.open(&key("a"), "192.0.2.2");
        s.close(&key("a"), "192.0.2.1");
        s.sweep(t0 + Duration::from_secs(5));
        assert_eq!(s.count(), 1, "one connection is still open");
        s.close(&key("a"), "192.0.2.2");
        let closed = Instant::now();
        s.sweep(closed + Duration::from_millis(999));
        assert_eq!(s.count(), 1, "within linger");
        s.sweep(closed + Duration::from_millis(1000));
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn a_connection_within_linger_keeps_the_session() {
        let s = registry(1000);
        s.open(&key("b"), "192.0.2.1");
        s.close(&key("b"), "192.0.2.1");
        s.open(&key("b"), "192.0.2.1");
        s.sweep(Instant::now() + Duration::from_secs(10));
        assert_eq!(s.count(), 1, "reopened: not idle");
        assert_eq!(s.tick(), Duration::from_millis(100));
    }

    #[test]
    fn cut_reaches_open_connections_of_the_stream_only() {
        let s = registry(1000);
        let a = s.open(&key("c"), "192.0.2.1").unwrap();
        let other = s.open(&key("d"), "192.0.2.1").unwrap();
        assert!(!a.cut());
        assert_eq!(s.cut(0, "live", "c", None), 1);
        assert!(a.cut() && !other.cut());
        let again = s.open(&key("c"), "192.0.2.1").unwrap();
        assert!(!again.cut(), "a connection after the cut is not cut");
        assert_eq!(s.cut(0, "live", "c", Some(Scene::Push)), 0);
        a.sent(10);
        let online = s.online(0, None, Some("c"));
        assert_eq!(online.len(), 1);
        assert_eq!((online[0].connections, online[0].bytes), (2, 10));
    }

    #[test]
    fn segments_belong_to_their_stream() {
        assert_eq!(session_stream("cam1-1234", "ts"), "cam1");
        assert_eq!(session_stream("cam-1-7", "m4s"), "cam-1");
        assert_eq!(session_stream("cam1-1234", "flv"), "cam1-1234");
        assert_eq!(session_stream("cam1", "ts"), "cam1");
        assert_eq!(session_stream("-12", "ts"), "-12");
        assert_eq!(session_stream("cam1-x2", "ts"), "cam1-x2");
    }
}

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

/// Whether a stream admitted until `cut_at` (Unix seconds) is past it: the
/// URL is valid *at* its expiry second, as admission reads it.
pub fn expired(cut_at: i64) -> bool {
    unix_now() > cut_at
}

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
    /// The open connections, for the management API's listing.
    conns: Vec<Arc<Conn>>,
    shared: Arc<Shared>,
}

/// One open connection of a session.
#[derive(Debug)]
struct Conn {
    client_ip: Box<str>,
    protocol: Protocol,
    /// Unix seconds when it was admitted.
    since: i64,
    /// Body bytes sent to its client.
    bytes: AtomicU64,
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
    conn: Arc<Conn>,
}

impl Ticket {
    /// Whether the management API cut this connection (forbid or drop).
    pub fn cut(&self) -> bool {
        self.shared.epoch.load(Ordering::Relaxed) != self.epoch
    }

    /// Counts body bytes sent to this connection's client.
    pub fn sent(&self, n: usize) {
        self.shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.conn.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// One open connection, as the management API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Connection {
    pub client_ip: String,
    pub scene: Scene,
    pub protocol: &'static str,
    pub since: i64,
    pub bytes: u64,
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

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Rtmp => "rtmp",
        }
    }
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
    /// `notify.linger_ms`, in milliseconds (a reload may change it).
    linger: AtomicU64,
    /// Per domain slot: only ever grows (see [`Streams::set_domains`]).
    domains: arc_swap::ArcSwap<Vec<DomainInfo>>,
    notifier: Arc<Notifier>,
}

fn gauge(d: &DomainInfo, scene: Scene) -> &IntGauge {
    &d.active[match scene {
        Scene::Pull => 0,
        Scene::Push => 1,
    }]
}

impl Streams {
    pub fn new(linger: Duration, domains: Vec<DomainInfo>, notifier: Arc<Notifier>) -> Streams {
        Streams {
            live: Mutex::new(HashMap::new()),
            linger: AtomicU64::new(linger.as_millis() as u64),
            domains: arc_swap::ArcSwap::from_pointee(domains),
            notifier,
        }
    }

    /// Reload: the domain slots (the running ones first, in their places) and
    /// the linger from now on.
    pub fn set_domains(&self, domains: Vec<DomainInfo>, linger: Duration) {
        self.domains.store(Arc::new(domains));
        self.linger
            .store(linger.as_millis() as u64, Ordering::Relaxed);
    }

    fn linger(&self) -> Duration {
        Duration::from_millis(self.linger.load(Ordering::Relaxed))
    }

    /// An HTTP connection to `key` was admitted; its ticket tells it when it is cut.
    pub fn open(&self, key: &StreamKey, client_ip: &str) -> Option<Ticket> {
        self.open_as(key, client_ip, Protocol::Http)
    }

    /// A connection to `key` over `protocol` was admitted.
    pub fn open_as(&self, key: &StreamKey, client_ip: &str, protocol: Protocol) -> Option<Ticket> {
        let rtmp = u32::from(protocol == Protocol::Rtmp);
        let now = unix_now();
        let conn = Arc::new(Conn {
            client_ip: client_ip.into(),
            protocol,
            since: now,
            bytes: AtomicU64::new(0),
        });
        let mut live = self.live.lock().ok()?;
        if let Some(l) = live.get_mut(key) {
            l.connections += 1;
            l.rtmp += rtmp;
            l.idle_since = None;
            l.last_ip.clear();
            l.last_ip.push_str(client_ip);
            l.conns.push(conn.clone());
            return Some(l.ticket(conn));
        }
        let l = Live {
            connections: 1,
            rtmp,
            idle_since: None,
            last_ip: client_ip.to_owned(),
            since: now,
            conns: vec![conn.clone()],
            shared: Arc::default(),
        };
        let ticket = l.ticket(conn);
        live.insert(key.clone(), l);
        drop(live);
        if let Some(d) = self.domains.load().get(key.domain) {
            gauge(d, key.scene).inc();
        }
        self.event(EventKind::StreamStart, key, client_ip);
        Some(ticket)
    }

    /// The connection of `ticket` to `key` closed. The session ends `linger`
    /// after its last connection unless another comes (see [`Streams::sweep`]).
    pub fn close(&self, key: &StreamKey, ticket: &Ticket) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        if let Some(l) = live.get_mut(key) {
            let Some(i) = l.conns.iter().position(|c| Arc::ptr_eq(c, &ticket.conn)) else {
                return;
            };
            l.conns.swap_remove(i);
            l.connections = l.connections.saturating_sub(1);
            if ticket.conn.protocol == Protocol::Rtmp {
                l.rtmp = l.rtmp.saturating_sub(1);
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
            let linger = self.linger();
            let due = |l: &Live| {
                l.idle_since
                    .is_some_and(|t| now.duration_since(t) >= linger)
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
        let domains = self.domains.load();
        for (key, l) in ended {
            if let Some(d) = domains.get(key.domain) {
                gauge(d, key.scene).dec();
            }
            self.event(EventKind::StreamEnd, &key, &l.last_ip);
        }
    }

    /// How often [`Streams::sweep`] runs: a tenth of `linger`, within 20 ms..1 s.
    pub fn tick(&self) -> Duration {
        (self.linger() / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }

    fn event(&self, kind: EventKind, key: &StreamKey, client_ip: &str) {
        if !self.notifier.wants(kind) {
            return;
        }
        let domains = self.domains.load();
        let Some(d) = domains.get(key.domain) else {
            return;
        };
        self.notifier.emit(Event {
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
        let domains = self.domains.load();
        let name = domains.get(domain).map_or("", |d| d.name.as_str());
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
                client_ips: match k.scene {
                    Scene::Push => {
                        let mut ips: Vec<String> =
                            l.conns.iter().map(|c| c.client_ip.to_string()).collect();
                        ips.sort();
                        ips.dedup();
                        ips
                    }
                    Scene::Pull => Vec::new(),
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

impl Streams {
    /// Every stream with open connections.
    pub fn open_keys(&self) -> Vec<StreamKey> {
        self.live.lock().map_or_else(
            |_| Vec::new(),
            |l| {
                l.iter()
                    .filter(|(_, l)| l.connections > 0)
                    .map(|(k, _)| k.clone())
                    .collect()
            },
        )
    }

    /// The open connections of a stream (both scenes), oldest first.
    pub fn connections(&self, domain: usize, app: &str, stream: &str) -> Vec<Connection> {
        let Ok(live) = self.live.lock() else {
            return Vec::new();
        };
        let mut out: Vec<Connection> = live
            .iter()
            .filter(|(k, _)| k.domain == domain && &*k.app == app && &*k.stream == stream)
            .flat_map(|(k, l)| {
                l.conns.iter().map(|c| Connection {
                    client_ip: c.client_ip.to_string(),
                    scene: k.scene,
                    protocol: c.protocol.as_str(),
                    since: c.since,
                    bytes: c.bytes.load(Ordering::Relaxed),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.since, &a.client_ip).cmp(&(b.since, &b.client_ip)));
        out
    }
}

impl Live {
    fn ticket(&self, conn: Arc<Conn>) -> Ticket {
        Ticket {
            shared: self.shared.clone(),
            epoch: self.shared.epoch.load(Ordering::Relaxed),
            conn,
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
        let off = Arc::new(Notifier::new(1, None));
        Streams::new(Duration::from_millis(linger_ms), vec![d], off)
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
        let one = s.open(&key("a"), "192.0.2.1").unwrap();
        let two = s.open(&key("a"), "192.0.2.2").unwrap();
        s.close(&key("a"), &one);
        s.sweep(t0 + Duration::from_secs(5));
        assert_eq!(s.count(), 1, "one connection is still open");
        s.close(&key("a"), &two);
        let closed = Instant::now();
        s.sweep(closed + Duration::from_millis(999));
        assert_eq!(s.count(), 1, "within linger");
        s.sweep(closed + Duration::from_millis(1000));
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn a_connection_within_linger_keeps_the_session() {
        let s = registry(1000);
        let one = s.open(&key("b"), "192.0.2.1").unwrap();
        s.close(&key("b"), &one);
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
    fn connections_are_listed_with_their_own_bytes_until_they_close() {
        let s = registry(1000);
        let a = s.open(&key("e"), "192.0.2.1").unwrap();
        let b = s.open_as(&key("e"), "192.0.2.2", Protocol::Rtmp).unwrap();
        a.sent(5);
        b.sent(7);
        b.sent(1);
        let mut listed = s.connections(0, "live", "e");
        listed.sort_by(|x, y| x.client_ip.cmp(&y.client_ip));
        let seen: Vec<_> = listed
            .iter()
            .map(|c| (c.client_ip.as_str(), c.protocol, c.bytes))
            .collect();
        assert_eq!(seen, [("192.0.2.1", "http", 5), ("192.0.2.2", "rtmp", 8)]);
        s.close(&key("e"), &a);
        s.close(&key("e"), &a);
        let left = s.connections(0, "live", "e");
        assert_eq!(left.len(), 1, "closing twice closes one connection");
        assert_eq!(left[0].client_ip, "192.0.2.2");
        assert_eq!(s.online(0, None, Some("e"))[0].connections, 1);
        assert!(s.connections(0, "live", "other").is_empty());
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

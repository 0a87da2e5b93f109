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
    /// When the last connection closed (`None` while any is open).
    idle_since: Option<Instant>,
    last_ip: String,
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

    /// A connection to `key` was admitted.
    pub fn open(&self, key: &StreamKey, client_ip: &str) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        if let Some(l) = live.get_mut(key) {
            l.connections += 1;
            l.idle_since = None;
            l.last_ip.clear();
            l.last_ip.push_str(client_ip);
            return;
        }
        live.insert(
            key.clone(),
            Live {
                connections: 1,
                idle_since: None,
                last_ip: client_ip.to_owned(),
            },
        );
        drop(live);
        if let Some(d) = self.domains.get(key.domain) {
            gauge(d, key.scene).inc();
        }
        self.event(EventKind::StreamStart, key, client_ip);
    }

    /// A connection to `key` closed. The session ends `linger` after its last
    /// connection unless another comes (see [`Streams::sweep`]).
    pub fn close(&self, key: &StreamKey) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        if let Some(l) = live.get_mut(key) {
            l.connections = l.connections.saturating_sub(1);
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

    /// Streams with connections (or lingering), for the management API and tests.
    pub fn count(&self) -> usize {
        self.live.lock().map_or(0, |l| l.len())
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
        s.close(&key("a"));
        s.sweep(t0 + Duration::from_secs(5));
        assert_eq!(s.count(), 1, "one connection is still open");
        s.close(&key("a"));
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
        s.close(&key("b"));
        s.open(&key("b"), "192.0.2.1");
        s.sweep(Instant::now() + Duration::from_secs(10));
        assert_eq!(s.count(), 1, "reopened: not idle");
        assert_eq!(s.tick(), Duration::from_millis(100));
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

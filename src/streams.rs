//! Online streams: which (domain, app, stream, scene) have connections now.
//!
//! A stream session starts with its first connection and ends when its last one
//! closed and none came back within `linger_ms`, so HLS viewers polling a playlist
//! make one session, not one per request. Feeds `livegate_active_streams` and the
//! `stream_start`/`stream_end` notifications.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora_prometheus::prometheus::IntGauge;

use crate::config::EventKind;
use crate::notify::{Event, Notifier};
use crate::route::Scene;
use crate::unix_now;

/// The stream a request belongs to, for sessions: HLS/DASH segments named
/// `<stream>-<n>.ts` (nginx-rtmp, SRS) count as `<stream>`.
pub fn session_stream<'a>(stream: &'a str, ext: &str) -> &'a str {
    if !matches!(ext, "ts" | "m4s" | "aac" | "mp4") {
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
    /// Bumped whenever the count drops to zero, so a linger timer knows whether
    /// a connection came and went while it slept.
    generation: u64,
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
            l.last_ip.clear();
            l.last_ip.push_str(client_ip);
            return;
        }
        live.insert(
            key.clone(),
            Live {
                connections: 1,
                generation: 0,
                last_ip: client_ip.to_owned(),
            },
        );
        drop(live);
        if let Some(d) = self.domains.get(key.domain) {
            gauge(d, key.scene).inc();
        }
        self.event(EventKind::StreamStart, key, client_ip);
    }

    /// A connection to `key` closed. The session ends after `linger` unless
    /// another connection comes.
    pub fn close(self: &Arc<Self>, key: StreamKey) {
        let generation = {
            let Ok(mut live) = self.live.lock() else {
                return;
            };
            let Some(l) = live.get_mut(&key) else { return };
            l.connections = l.connections.saturating_sub(1);
            if l.connections > 0 {
                return;
            }
            l.generation += 1;
            l.generation
        };
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.linger).await;
            this.end_if_idle(&key, generation);
        });
    }

    fn end_if_idle(&self, key: &StreamKey, generation: u64) {
        let ended = {
            let Ok(mut live) = self.live.lock() else {
                return;
            };
            match live.get(key) {
                Some(l) if l.connections == 0 && l.generation == generation => live.remove(key),
                _ => None,
            }
        };
        let Some(l) = ended else { return };
        if let Some(d) = self.domains.get(key.domain) {
            gauge(d, key.scene).dec();
        }
        self.event(EventKind::StreamEnd, key, &l.last_ip);
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

#[cfg(test)]
mod tests {
    use super::session_stream;

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

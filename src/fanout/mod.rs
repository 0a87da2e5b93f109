//! HTTP-FLV fan-out: one origin pull per live stream per edge process, however
//! many viewers, the way SRS edges and CDN nodes "merge back-to-source".
//!
//! - [`Hub`] holds the running pulls, keyed by what is asked of the origin
//!   (domain, Host sent upstream, path and kept query). The first admitted viewer
//!   of a key starts its pull ([`pull`]); later ones join it.
//! - A pull splits the origin's body into tags ([`gop`]), sends each to every
//!   viewer through one `tokio::sync::broadcast` ring (one copy of the bytes,
//!   however many viewers), and keeps the GOP cache a joiner starts from.
//! - A viewer ([`viewer`]) writes its joining bytes, then the live tags; one that
//!   falls more than `queue_ms`/`queue_bytes` behind, or whose socket does not
//!   take a write within `queue_ms`, is cut (or skips to the next keyframe).
//!
//! Admission is untouched: a viewer reaches the hub only after its own signature,
//! access lists, forbid and remote auth passed.

pub mod gop;
mod pull;
mod viewer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora_http::ResponseHeader;
use tokio::sync::{broadcast, watch};

use crate::config::{FanoutSettings, SlowViewer};
use crate::origin::Origin;
pub use viewer::{join, Join, Joined, Live, Out, Viewer};

/// Broadcast ring slots per pull: the hard bound on how far any viewer can lag
/// (≈ 20 s of a 30 fps stream with audio), beyond the `queue_*` settings.
const RING: usize = 2048;

/// What a pull asks of the origin; viewers asking the same share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PullKey {
    pub domain: usize,
    /// The Host header sent upstream.
    pub host: String,
    /// Path and query as sent upstream (auth parameters stripped).
    pub target: String,
}

/// How a fan-out runs, from `origin.fanout`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub linger: Duration,
    pub queue: Duration,
    pub queue_bytes: u64,
    pub slow: SlowViewer,
    /// `coalesce_ms`: how long a caught-up viewer's write waits for more.
    pub coalesce: Option<Duration>,
}

impl From<FanoutSettings> for Settings {
    fn from(f: FanoutSettings) -> Settings {
        Settings {
            linger: Duration::from_millis(f.linger_ms),
            queue: Duration::from_millis(f.queue_ms),
            queue_bytes: f.queue_bytes,
            slow: f.slow_viewer,
            coalesce: (f.coalesce_ms > 0).then(|| Duration::from_millis(f.coalesce_ms)),
        }
    }
}

/// The origin's answer, once it came.
#[derive(Clone)]
enum Head {
    Pending,
    /// 200: the live stream follows.
    Live(Arc<ResponseHeader>),
    /// Anything else (or no origin): passed to the viewers that waited for it,
    /// with its (small) body; the pull ends.
    Refused(Arc<ResponseHeader>, Bytes),
    /// No origin answered: this status, from the edge.
    Failed(u16),
}

/// One tag on its way to the viewers.
#[derive(Clone)]
struct Packet {
    frame: gop::Frame,
    /// Stream bytes sent through this tag (for a viewer's lag in bytes).
    end: u64,
}

/// A pull's state that joiners read together with subscribing.
struct Shared {
    /// The ring tags go out on; `None` once the pull ended, which ends every
    /// viewer's receiver.
    ring: Option<broadcast::Sender<Packet>>,
    gop: gop::Gop,
    viewers: usize,
    idle_since: Option<Instant>,
}

/// One running origin pull.
struct Pull {
    key: PullKey,
    head: watch::Sender<Head>,
    shared: Mutex<Shared>,
    /// The latest tag's end offset and timestamp (the live edge).
    edge_bytes: AtomicU64,
    edge_ms: AtomicU64,
    /// The origin peer that answered the pull (for every viewer's access log).
    peer: std::sync::OnceLock<std::net::SocketAddr>,
}

/// What a pull needs of its domain.
pub struct Source {
    pub origin: Arc<Origin>,
    /// The consistent-hashing key (`app/stream`), empty for round robin.
    pub hash_key: String,
    pub settings: Settings,
    /// The target as log lines name it (redacted).
    pub shown: String,
    /// Counts the origin's answer in `livegate_upstream_responses_total`.
    pub on_status: Box<dyn Fn(u16) + Send + Sync>,
}

/// The running pulls of this process.
#[derive(Default)]
pub struct Hub {
    pulls: Mutex<HashMap<PullKey, Arc<Pull>>>,
}

/// A hub, shared by the proxy's connections.
pub type SharedHub = Arc<Hub>;

impl Hub {
    /// Joins the pull for `key`, starting it (with `source`) if none runs.
    fn join(self: &Arc<Hub>, key: PullKey, source: impl FnOnce() -> Source) -> Arc<Pull> {
        let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pulls.get(&key) {
            let mut s = p.shared.lock().unwrap_or_else(|e| e.into_inner());
            s.viewers += 1;
            s.idle_since = None;
            return p.clone();
        }
        let pull = Arc::new(Pull {
            key: key.clone(),
            head: watch::Sender::new(Head::Pending),
            shared: Mutex::new(Shared {
                ring: Some(broadcast::Sender::new(RING)),
                gop: gop::Gop::default(),
                viewers: 1,
                idle_since: None,
            }),
            edge_bytes: AtomicU64::new(0),
            edge_ms: AtomicU64::new(0),
            peer: Default::default(),
        });
        pulls.insert(key, pull.clone());
        crate::metrics::fanout_pulls(pulls.len());
        tokio::spawn(pull::run(self.clone(), pull.clone(), source()));
        pull
    }

    /// Removes a pull that ended (if it is still the one registered).
    fn remove(&self, pull: &Pull) {
        let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
        unregister(&mut pulls, pull);
    }
}

/// Takes `pull` out of the running pulls, if it is the one registered for its key.
fn unregister(pulls: &mut HashMap<PullKey, Arc<Pull>>, pull: &Pull) {
    if pulls
        .get(&pull.key)
        .is_some_and(|p| std::ptr::eq(&**p, pull))
    {
        pulls.remove(&pull.key);
    }
    crate::metrics::fanout_pulls(pulls.len());
}

impl Pull {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A viewer left.
    fn leave(&self) {
        let mut s = self.shared();
        s.viewers = s.viewers.saturating_sub(1);
        if s.viewers == 0 {
            s.idle_since = Some(Instant::now());
        }
    }

    /// Whether the pull has had no viewer for `linger`; ends it then (under the
    /// hub's lock, so no viewer joins a pull that is ending).
    fn lingered(&self, hub: &Hub, linger: Duration) -> bool {
        let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
        let s = self.shared();
        let over = s.viewers == 0 && s.idle_since.is_some_and(|t| t.elapsed() >= linger);
        if over {
            unregister(&mut pulls, self);
        }
        over
    }

    fn edge(&self) -> (u64, u64) {
        (
            self.edge_bytes.load(Ordering::Acquire),
            self.edge_ms.load(Ordering::Acquire),
        )
    }
}

//! Prometheus metrics (names and labels are a contract, `design.md`).
//!
//! Registered in the default registry of the `prometheus` crate that Pingora's
//! metrics service exports, so one endpoint serves Pingora's and ours. Labels stay
//! bounded: a configured domain name, never a Host, stream, path, client or key.
//! The request path uses handles resolved once per domain at start, so counting a
//! request is an atomic add, not a label lookup.

use std::sync::{Arc, LazyLock};

use pingora_prometheus::prometheus::core::{Collector, Desc};
use pingora_prometheus::prometheus::proto::MetricFamily;
use pingora_prometheus::prometheus::{
    self, register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use crate::origin::Origin;
use crate::route::Scene;
use crate::verdict::Reason;

/// The label used for requests whose Host matches no domain.
pub const UNKNOWN_DOMAIN: &str = "_unknown";

const LATENCY_BUCKETS: [f64; 18] = [
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The registered metric families.
pub struct Metrics {
    requests: IntCounterVec,
    pub auth_seconds: Histogram,
    remote: IntCounterVec,
    pub remote_seconds: Histogram,
    upstream: IntCounterVec,
    active: IntGaugeVec,
    sent: IntCounterVec,
    left: IntCounterVec,
    pub notify_dropped: IntCounter,
    pub notify_failed: IntCounter,
    pub connections_refused: IntCounter,
    state_revision: IntGauge,
    fanout_pulls: IntGauge,
    fanout_viewers: IntGauge,
    fanout_slow: IntCounter,
    state_watch: IntGauge,
    state_fleet: IntGauge,
    /// RTMP client connections open.
    pub rtmp_connections: IntGauge,
    rtmp_sessions: IntCounterVec,
    rtmp_bytes: IntCounterVec,
    cache: IntCounterVec,
    /// Client connections open on the HTTP listeners, and how many may be.
    pub client_connections: IntGauge,
    pub client_connections_max: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    // Registration fails only for a duplicate name, which is a programming error.
    let bug = "livegate metric registered twice";
    Metrics {
        requests: register_int_counter_vec!(
            "livegate_requests_total",
            "Requests by verdict: result pass or fail, reason empty on pass",
            &["domain", "scene", "result", "reason"]
        )
        .expect(bug),
        auth_seconds: register_histogram!(
            "livegate_auth_seconds",
            "Time to admit or refuse a request (signature and remote auth)",
            LATENCY_BUCKETS.to_vec()
        )
        .expect(bug),
        remote: register_int_counter_vec!(
            "livegate_remote_auth_total",
            "Remote auth outcomes: allow, deny, timeout, error, cache_hit",
            &["domain", "outcome"]
        )
        .expect(bug),
        remote_seconds: register_histogram!(
            "livegate_remote_auth_seconds",
            "Time spent asking the auth server (cache hits included)",
            LATENCY_BUCKETS.to_vec()
        )
        .expect(bug),
        upstream: register_int_counter_vec!(
            "livegate_upstream_responses_total",
            "Origin responses by status class",
            &["domain", "status"]
        )
        .expect(bug),
        active: register_int_gauge_vec!(
            "livegate_active_streams",
            "Streams with at least one connection (or within linger_ms of one)",
            &["domain", "scene"]
        )
        .expect(bug),
        sent: register_int_counter_vec!(
            "livegate_sent_bytes_total",
            "Body bytes sent to clients",
            &["domain"]
        )
        .expect(bug),
        left: register_int_counter_vec!(
            "livegate_viewers_left_total",
            "Clients that went away before their answer ended (a viewer closing a stream): normal, not an error",
            &["domain"]
        )
        .expect(bug),
        notify_dropped: register_int_counter!(
            "livegate_notify_dropped_total",
            "Event notifications dropped because the queue was full"
        )
        .expect(bug),
        notify_failed: register_int_counter!(
            "livegate_notify_failed_total",
            "Event notifications given up on after every retry"
        )
        .expect(bug),
        rtmp_connections: register_int_gauge!(
            "livegate_rtmp_connections",
            "RTMP client connections open (handshaking, refused or relaying)"
        )
        .expect(bug),
        rtmp_sessions: register_int_counter_vec!(
            "livegate_rtmp_sessions_total",
            "RTMP sessions by scene (push: publish, pull: play) and result; reason empty on pass",
            &["domain", "scene", "result", "reason"]
        )
        .expect(bug),
        rtmp_bytes: register_int_counter_vec!(
            "livegate_rtmp_bytes_total",
            "RTMP bytes relayed: in from clients, out to clients",
            &["domain", "direction"]
        )
        .expect(bug),
        connections_refused: register_int_counter!(
            "livegate_connections_refused_total",
            "Client connections closed at accept because server.max_connections were open"
        )
        .expect(bug),
        state_revision: register_int_gauge!(
            "livegate_state_revision",
            "The state's revision on this edge: the etcd revision applied (fleet), or changes since start (file)"
        )
        .expect(bug),
        fanout_pulls: register_int_gauge!(
            "livegate_fanout_pulls",
            "FLV origin pulls running, each shared by all viewers of its stream"
        )
        .expect(bug),
        fanout_viewers: register_int_gauge!(
            "livegate_fanout_viewers",
            "FLV viewers served from a shared origin pull"
        )
        .expect(bug),
        fanout_slow: register_int_counter!(
            "livegate_fanout_slow_viewers_total",
            "FLV viewers cut (or skipped to a keyframe) for falling behind the live edge"
        )
        .expect(bug),
        cache: register_int_counter_vec!(
            "livegate_cache_requests_total",
            "HLS cache answers by status: hit, coalesced (waited for a fill), following (streamed a fill), miss, pass",
            &["domain", "status"]
        )
        .expect(bug),
        client_connections: register_int_gauge!(
            "livegate_client_connections",
            "Client connections open on the HTTP listeners"
        )
        .expect(bug),
        client_connections_max: register_int_gauge!(
            "livegate_client_connections_max",
            "server.max_connections: client connections beyond it are closed at accept"
        )
        .expect(bug),
        state_fleet: register_int_gauge!(
            "livegate_state_fleet",
            "1 when this edge keeps its state in etcd with a fleet, 0 for a state file"
        )
        .expect(bug),
        state_watch: register_int_gauge!(
            "livegate_state_watch_up",
            "1 while this edge's etcd watch is live (fleet)"
        )
        .expect(bug),
    }
});

/// `livegate_fanout_pulls`: origin pulls running.
pub fn fanout_pulls(n: usize) {
    METRICS.fanout_pulls.set(n as i64);
}

/// `livegate_fanout_viewers`: viewers served from a pull (`delta` ±1).
pub fn fanout_viewers(delta: i64) {
    METRICS.fanout_viewers.add(delta);
}

/// `livegate_fanout_slow_viewers_total`: viewers cut or skipped for lagging.
pub fn fanout_slow() {
    METRICS.fanout_slow.inc();
}

/// Sets `livegate_state_revision`.
pub fn state_revision(revision: i64) {
    METRICS.state_revision.set(revision);
}

/// Sets `livegate_state_fleet`: whether the state is a fleet's (etcd), so an
/// alert on `livegate_state_watch_up` applies to fleet edges only.
pub fn state_fleet(fleet: bool) {
    METRICS.state_fleet.set(fleet as i64);
}

/// Sets `livegate_state_watch_up`.
pub fn state_watch(live: bool) {
    METRICS.state_watch.set(live as i64);
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// A remote-auth outcome label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteOutcome {
    Allow,
    Deny,
    Timeout,
    Error,
    CacheHit,
}

impl RemoteOutcome {
    const ALL: [RemoteOutcome; 5] = [
        RemoteOutcome::Allow,
        RemoteOutcome::Deny,
        RemoteOutcome::Timeout,
        RemoteOutcome::Error,
        RemoteOutcome::CacheHit,
    ];

    fn label(self) -> &'static str {
        match self {
            RemoteOutcome::Allow => "allow",
            RemoteOutcome::Deny => "deny",
            RemoteOutcome::Timeout => "timeout",
            RemoteOutcome::Error => "error",
            RemoteOutcome::CacheHit => "cache_hit",
        }
    }
}

const SCENES: [Scene; 2] = [Scene::Pull, Scene::Push];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One domain's handles, resolved at start.
#[derive(Clone)]
pub struct DomainMetrics {
    pass: [IntCounter; 2],
    fail: [Vec<IntCounter>; 2],
    remote: Vec<IntCounter>,
    upstream: Vec<IntCounter>,
    pub sent: IntCounter,
    left: IntCounter,
    /// `livegate_cache_requests_total` by [`CACHE_STATUSES`].
    cache: Vec<IntCounter>,
}

/// The `status` labels of `livegate_cache_requests_total`, in the order of
/// [`crate::cache::Status`].
pub const CACHE_STATUSES: [&str; 5] = ["hit", "coalesced", "following", "miss", "pass"];

fn scene_index(s: Scene) -> usize {
    match s {
        Scene::Pull => 0,
        Scene::Push => 1,
    }
}

impl DomainMetrics {
    pub fn new(domain: &str) -> DomainMetrics {
        let m = metrics();
        let per_scene = |f: &dyn Fn(&str) -> IntCounter| SCENES.map(|s| f(s.as_str()));
        DomainMetrics {
            pass: per_scene(&|s| m.requests.with_label_values(&[domain, s, "pass", ""])),
            fail: SCENES.map(|s| {
                Reason::ALL
                    .iter()
                    .map(|r| {
                        m.requests
                            .with_label_values(&[domain, s.as_str(), "fail", r.as_str()])
                    })
                    .collect()
            }),
            remote: RemoteOutcome::ALL
                .iter()
                .map(|o| m.remote.with_label_values(&[domain, o.label()]))
                .collect(),
            upstream: STATUS_CLASSES
                .iter()
                .map(|c| m.upstream.with_label_values(&[domain, c]))
                .collect(),
            sent: m.sent.with_label_values(&[domain]),
            // Resolved now so the family is exported (at 0) before anyone leaves.
            left: m.left.with_label_values(&[domain]),
            cache: CACHE_STATUSES
                .iter()
                .map(|st| m.cache.with_label_values(&[domain, st]))
                .collect(),
        }
    }

    /// Counts a client of this domain that went away mid-answer.
    pub fn left(&self) {
        self.left.inc();
    }

    /// Counts one answer of the HLS cache; `status` indexes [`CACHE_STATUSES`].
    pub fn cache(&self, status: usize) {
        if let Some(c) = self.cache.get(status) {
            c.inc();
        }
    }

    /// Counts one verdict.
    pub fn verdict(&self, scene: Scene, verdict: Result<(), Reason>) {
        match verdict {
            Ok(()) => self.pass[scene_index(scene)].inc(),
            Err(r) => self.fail[scene_index(scene)][r as usize].inc(),
        }
    }

    pub fn remote(&self, o: RemoteOutcome) {
        self.remote[o as usize].inc();
    }

    /// Counts one origin response by its status class.
    pub fn upstream_status(&self, status: u16) {
        if let Some(c) = self.upstream.get(usize::from(status / 100).wrapping_sub(1)) {
            c.inc();
        }
    }
}

/// `livegate_active_streams{domain, scene}` for pull and push.
pub fn active_streams(domain: &str) -> [IntGauge; 2] {
    SCENES.map(|s| metrics().active.with_label_values(&[domain, s.as_str()]))
}

/// Counts a refusal that belongs to no configured domain or no scene.
pub fn unrouted(domain: &str, scene: Option<Scene>, reason: Reason) {
    let scene = scene.map_or("none", Scene::as_str);
    metrics()
        .requests
        .with_label_values(&[domain, scene, "fail", reason.as_str()])
        .inc();
}

const ORIGIN_UP_HELP: &str = "1 when the origin peer passes its health check";

/// `livegate_origin_up{domain,peer}`, read from the pools' health at scrape time.
pub struct OriginHealth {
    origins: Origins,
    desc: Vec<Desc>,
}

/// Each configured domain's origin pool, by name: replaced by a reload.
pub type Origins = Arc<arc_swap::ArcSwap<Vec<(String, Arc<Origin>)>>>;

impl OriginHealth {
    pub fn register(origins: Origins) -> prometheus::Result<()> {
        let desc = Desc::new(
            "livegate_origin_up".into(),
            ORIGIN_UP_HELP.into(),
            vec!["domain".into(), "peer".into()],
            Default::default(),
        )?;
        prometheus::register(Box::new(OriginHealth {
            origins,
            desc: vec![desc],
        }))
    }
}

impl Collector for OriginHealth {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let opts = Opts::new("livegate_origin_up", ORIGIN_UP_HELP);
        let Ok(gauges) = IntGaugeVec::new(opts, &["domain", "peer"]) else {
            return Vec::new();
        };
        for (domain, origin) in self.origins.load().iter() {
            for (peer, up) in origin.health() {
                gauges
                    .with_label_values(&[domain, &peer])
                    .set(i64::from(up));
            }
        }
        gauges.collect()
    }
}

/// Counts a client that went away mid-answer.
pub fn viewer_left(domain: &str) {
    metrics().left.with_label_values(&[domain]).inc();
}

/// Counts an RTMP session's outcome (`domain` the configured name, or
/// [`UNKNOWN_DOMAIN`] before one was known).
pub fn rtmp_session(domain: &str, scene: Option<Scene>, verdict: Result<(), Reason>) {
    let scene = scene.map_or("none", Scene::as_str);
    let (result, reason) = match verdict {
        Ok(()) => ("pass", ""),
        Err(r) => ("fail", r.as_str()),
    };
    metrics()
        .rtmp_sessions
        .with_label_values(&[domain, scene, result, reason])
        .inc();
}

/// The byte counters of one domain's RTMP relays: `[in, out]`.
pub fn rtmp_bytes(domain: &str) -> [IntCounter; 2] {
    let m = &metrics().rtmp_bytes;
    [
        m.with_label_values(&[domain, "in"]),
        m.with_label_values(&[domain, "out"]),
    ]
}

//! Event notifications to the customer's backend: stream start and end, and
//! optionally every denied request, as signed JSON POSTs.
//!
//! The request path only enqueues (never waits): a bounded queue feeds a
//! background service that delivers with retries and backoff. When the queue is
//! full, events are dropped and counted (`livegate_notify_dropped_total`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use log::warn;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};

use crate::config::{EventKind, NotifyConfig};
use crate::metrics::metrics;
use crate::sign::tsign::Tsign;
use crate::sign::Key;
use crate::unix_now;

/// Deliveries in flight at once.
const IN_FLIGHT: usize = 16;
/// How long a body's `t` stays valid for the receiver.
const SIGN_VALIDITY: i64 = 600;

/// One event, as the receiver gets it (plus `t` and `sign`).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub event_type: EventKind,
    pub domain: String,
    pub app: String,
    pub stream: String,
    pub scene: &'static str,
    pub client_ip: String,
    /// Unix seconds when it happened.
    pub time: i64,
    /// For `auth_denied`: the failure reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(flatten)]
    event: &'a Event,
    t: i64,
    sign: String,
}

/// The notifier: a queue's sending side for the request path, and the delivery
/// worker as a Pingora background service. One per process, on or off: a reload
/// turns it on, off or elsewhere with [`Notifier::set`].
pub struct Notifier {
    tx: mpsc::Sender<Event>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    /// What is sent and where; `None` while `notify` is not configured.
    now: arc_swap::ArcSwapOption<Settings>,
}

struct Settings {
    events: Vec<EventKind>,
    delivery: Arc<Delivery>,
}

/// Where and how events are delivered; shared by the concurrent deliveries.
struct Delivery {
    url: String,
    /// The URL as logged: without its query, where a token may sit.
    shown: String,
    tsign: Tsign,
    timeout: Duration,
    retries: u32,
}

impl Notifier {
    /// A notifier with a queue of `queue` events, sending as `cfg` says (none:
    /// off until a reload configures it).
    pub fn new(queue: usize, cfg: Option<&NotifyConfig>) -> Notifier {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let n = Notifier {
            tx,
            rx: Mutex::new(Some(rx)),
            now: Default::default(),
        };
        n.set(cfg);
        n
    }

    /// Sends as `cfg` says from now on (`None`, or a key that cannot sign —
    /// validation refuses one before — turns it off). Queued events go where the
    /// configuration says when they are delivered.
    pub fn set(&self, cfg: Option<&NotifyConfig>) {
        let settings = cfg.and_then(|cfg| {
            let tsign = Tsign::new(Key::new(&cfg.key.0).ok()?).ok()?;
            Some(Arc::new(Settings {
                events: cfg.events.clone(),
                delivery: Arc::new(Delivery {
                    url: cfg.url.clone(),
                    shown: cfg.url.split('?').next().unwrap_or_default().to_owned(),
                    tsign,
                    timeout: Duration::from_millis(cfg.timeout_ms),
                    retries: cfg.retries,
                }),
            }))
        });
        self.now.store(settings);
    }

    /// Whether events of this kind are sent (callers skip building them otherwise).
    pub fn wants(&self, kind: EventKind) -> bool {
        self.now
            .load()
            .as_ref()
            .is_some_and(|s| s.events.contains(&kind))
    }

    /// Queues an event; never waits. Dropped and counted when the queue is full.
    pub fn emit(&self, event: Event) {
        if self.wants(event.event_type) && self.tx.try_send(event).is_err() {
            metrics().notify_dropped.inc();
        }
    }
}

impl Delivery {
    async fn deliver(&self, client: &reqwest::Client, event: &Event) {
        let mut backoff = Duration::from_millis(200);
        for attempt in 0..=self.retries {
            let t = unix_now() + SIGN_VALIDITY;
            let body = Body {
                event,
                t,
                sign: self.tsign.sign(t),
            };
            let sent = client
                .post(&self.url)
                .timeout(self.timeout)
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => warn!(
                    "notify: {} answered {} (attempt {})",
                    self.shown,
                    r.status(),
                    attempt + 1
                ),
                Err(e) => warn!(
                    "notify: {} failed: {} (attempt {})",
                    self.shown,
                    e.without_url(),
                    attempt + 1
                ),
            }
            if attempt < self.retries {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        metrics().notify_failed.inc();
    }
}

#[async_trait]
impl BackgroundService for Notifier {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut running = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(event) = rx.recv() => {
                    let Some(delivery) = self.now.load().as_ref().map(|s| s.delivery.clone()) else {
                        continue;
                    };
                    let Ok(permit) = slots.clone().acquire_owned().await else { break };
                    let client = client.clone();
                    running.spawn(async move {
                        delivery.deliver(&client, &event).await;
                        drop(permit);
                    });
                }
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
    }
}

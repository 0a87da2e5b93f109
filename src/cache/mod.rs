//! The HLS micro-cache: segments and playlists fetched from the origin, kept in
//! memory per domain so that a thousand viewers of a stream cost the origin one
//! request per segment and one per playlist refresh.
//!
//! - Storage: a TinyUFO (S3-FIFO + TinyLFU, Pingora's own) bounded by weight —
//!   each object weighs its size in KiB — so the cache never holds more than
//!   `cache.max_bytes`.
//! - Coalescing: pingora-cache's cache lock. The first miss of a key takes the
//!   write permit and fetches; concurrent misses of a segment follow that fill,
//!   streaming its bytes as they arrive ([`Following`]); playlists and ranges
//!   wait on the read lock, then find the object (or, if it turned out not
//!   cacheable, fetch again one at a time).
//! - Freshness ([`policy`]): a playlist for half its `EXT-X-TARGETDURATION`, at
//!   most 1 s; a segment until evicted. Only 200 answers are cached, never one
//!   with `Cache-Control: no-store` or `private`, a `Set-Cookie` or a `Vary` on
//!   request headers ([`policy::shareable`]); a request following a fill never
//!   gets the fill's cookie. A key answered unshareable (a per-viewer
//!   playlist with its session cookie) is then fetched by each request for a
//!   while, without queueing behind another's fill.
//!
//! Admission happens before: the key is what the origin is asked (domain, Host
//! sent upstream, path and query with every auth parameter and token stripped).

pub mod policy;
pub mod sealed;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora_cache::lock::{CacheKeyLock, CacheLock, LockStatus, Locked};
use pingora_cache::{key::CacheHashKey, CacheKey};
use pingora_http::ResponseHeader;
use pingora_memory_cache::MemoryCache;
use tinyufo::TinyUfo;
use tokio::sync::watch;

use crate::hls::playlist::Template;

/// The largest object cached (a segment of a very high bitrate stream).
pub const MAX_OBJECT: usize = 32 << 20;
/// How long a fill may hold its key before waiters fetch themselves.
const LOCK_AGE: Duration = Duration::from_secs(30);
/// The longest a blocking playlist request (LL-HLS) is held at the origin,
/// whatever its target duration: below [`LOCK_AGE`], so its waiters wait for it.
pub const MAX_HOLD: Duration = Duration::from_secs(25);
/// The target duration assumed for a playlist not seen yet (Apple's segment
/// length): a blocking request for it is held at most three of these.
const DEFAULT_TARGET: Duration = Duration::from_secs(6);
/// How many playlists' target durations, and keys answered unshareable, are
/// remembered (the least used are forgotten first).
const REMEMBERED: usize = 4096;
/// How long an object the origin answered unshareable (a cookie, `no-store`)
/// is fetched by each request without waiting on another's fill: a
/// per-viewer playlist must not queue its viewers one behind the other.
const PASS_FOR: Duration = Duration::from_secs(10);

/// One cached answer: the origin's head (hop-by-hop headers removed) and body.
pub struct Object {
    pub head: ResponseHeader,
    pub body: Bytes,
    /// A playlist whose viewers get tokens: parsed once, filled per viewer.
    pub template: Option<Template>,
    /// `None`: until evicted.
    expires: Option<Instant>,
    /// The origin peer that answered its fill.
    pub peer: Option<std::net::SocketAddr>,
    /// The sealed memfd `body` is mapped from, for `sendfile` ([`sealed`]).
    pub file: Option<Arc<sealed::SealedFile>>,
}

impl Object {
    fn fresh(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// What a fill fetched.
pub enum Fetched {
    /// Cached (until the object's expiry) and served.
    Keep(Arc<Object>),
    /// Served to this request only (not 200, `no-store`, too large).
    Pass(Arc<Object>),
    /// No origin answered: this status from the edge.
    Failed(u16),
}

/// Where an answer came from (for the `X-Cache` header and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Hit,
    /// Waited for another request's fill.
    Coalesced,
    /// Streamed another request's fill as it arrived.
    Following,
    Miss,
    Pass,
}

impl Status {
    /// Its place in `livegate_cache_requests_total`'s labels
    /// ([`crate::metrics::CACHE_STATUSES`]).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Hit => "HIT",
            Status::Coalesced => "HIT-COALESCED",
            Status::Following => "HIT-FOLLOWING",
            Status::Miss => "MISS",
            Status::Pass => "PASS",
        }
    }
}

/// A fill as it arrives: the origin's head once known, the body so far, and
/// whether it ended (`Some(true)`: whole; `Some(false)`: failed).
#[derive(Default)]
pub struct Progress {
    pub head: Option<ResponseHeader>,
    /// The origin peer answering the fill.
    pub peer: Option<std::net::SocketAddr>,
    pub chunks: Vec<Bytes>,
    pub end: Option<bool>,
}

/// What a fill reports its progress through, for requests that stream it as it
/// arrives. Dropped before `end(true)`, the fill counts as failed.
pub struct Feed(Option<watch::Sender<Progress>>);

impl Feed {
    /// The origin's head (hop-by-hop headers removed), from `peer`.
    pub fn head(&self, head: &ResponseHeader, peer: std::net::SocketAddr) {
        if let Some(tx) = &self.0 {
            tx.send_modify(|p| {
                p.head = Some(head.clone());
                p.peer = Some(peer);
            });
        }
    }

    /// The next piece of the body.
    pub fn chunk(&self, chunk: &Bytes) {
        if let Some(tx) = &self.0 {
            tx.send_modify(|p| p.chunks.push(chunk.clone()));
        }
    }

    /// The body is whole.
    pub fn done(&mut self) {
        if let Some(tx) = self.0.take() {
            tx.send_modify(|p| p.end = Some(true));
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            tx.send_modify(|p| p.end = Some(false));
        }
    }
}

/// A fill another request is making, followed as it arrives.
pub struct Following(pub watch::Receiver<Progress>);

/// What a request gets.
pub enum Got {
    Object(Arc<Object>, Status),
    /// Another request's fill, streamed as it arrives.
    Following(Following),
    /// No origin answered: this status from the edge.
    Failed(u16),
}

/// One domain's cache.
pub struct Cache {
    store: TinyUfo<u128, Arc<Object>>,
    lock: CacheLock,
    /// Fills in progress, for requests that follow them instead of waiting.
    filling: std::sync::Mutex<std::collections::HashMap<u128, watch::Receiver<Progress>>>,
    /// What it was made to hold (a reload keeps a cache of the same size).
    capacity: u64,
    /// The last target duration seen per playlist (keyed by its path).
    targets: MemoryCache<u128, Duration>,
    /// Keys whose last answer was unshareable, for [`PASS_FOR`].
    passing: MemoryCache<u128, ()>,
}

impl Cache {
    /// A cache holding at most `max_bytes`.
    pub fn new(max_bytes: u64) -> Cache {
        let kib = (max_bytes / 1024).max(1) as usize;
        Cache {
            capacity: max_bytes,
            // Estimated objects: segments of ~256 KiB on average.
            store: TinyUfo::new(kib, (kib / 256).max(16)),
            lock: CacheLock::new(LOCK_AGE),
            filling: Default::default(),
            targets: MemoryCache::new(REMEMBERED),
            passing: MemoryCache::new(REMEMBERED),
        }
    }

    /// Remembers a playlist's `EXT-X-TARGETDURATION` (from any answer for it).
    pub fn set_target(&self, playlist: &CacheKey, target: Duration) {
        let id = u128::from_be_bytes(playlist.combined_bin());
        self.targets.put(&id, target, None);
    }

    /// How long a blocking request for `playlist` may be held at the origin: the
    /// LL-HLS spec's three target durations (of the last answer seen for it), at
    /// most [`MAX_HOLD`]. After that the edge answers 503, as the spec says.
    pub fn hold(&self, playlist: &CacheKey) -> Duration {
        let id = u128::from_be_bytes(playlist.combined_bin());
        let target = self.targets.get(&id).0.unwrap_or(DEFAULT_TARGET);
        (target * 3).min(MAX_HOLD)
    }

    /// The `max_bytes` it was made with.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn lookup(&self, id: u128) -> Option<Arc<Object>> {
        self.store.get(&id).filter(|o| o.fresh(Instant::now()))
    }

    fn following(&self, id: u128) -> Option<watch::Receiver<Progress>> {
        self.filling.lock().ok()?.get(&id).cloned()
    }

    fn filling(&self, id: u128, rx: Option<watch::Receiver<Progress>>) {
        if let Ok(mut f) = self.filling.lock() {
            match rx {
                Some(rx) => f.insert(id, rx),
                None => f.remove(&id),
            };
        }
    }

    /// The cached answer for `key`, or one fill (`fetch`) shared by every
    /// concurrent request for it. With `follow`, a request arriving during a fill
    /// streams it as it arrives; without (playlists, which are rewritten whole,
    /// and ranges), it waits for the fill to end.
    pub async fn get<F, Fut>(&self, key: &CacheKey, follow: bool, mut fetch: F) -> Got
    where
        F: FnMut(Feed) -> Fut,
        Fut: std::future::Future<Output = Fetched>,
    {
        let id = u128::from_be_bytes(key.combined_bin());
        let mut waited = false;
        for _ in 0..3 {
            if let Some(o) = self.lookup(id) {
                let status = if waited {
                    Status::Coalesced
                } else {
                    Status::Hit
                };
                return Got::Object(o, status);
            }
            // Lately answered for one viewer at a time: fetch, do not queue.
            if self.passing.get(&id).0.is_some() {
                break;
            }
            match self.lock.lock(key, false) {
                Locked::Read(r) => {
                    if let Some(rx) = self.following(id).filter(|_| follow) {
                        return Got::Following(Following(rx));
                    }
                    r.wait().await;
                    waited = true;
                }
                Locked::Write(permit) => {
                    // Another fill may have finished between lookup and lock.
                    if let Some(o) = self.lookup(id) {
                        self.lock.release(key, permit, LockStatus::Done);
                        return Got::Object(o, Status::Hit);
                    }
                    let (tx, rx) = watch::channel(Progress::default());
                    self.filling(id, Some(rx));
                    let fetched = fetch(Feed(Some(tx))).await;
                    self.filling(id, None);
                    return match fetched {
                        Fetched::Keep(o) => {
                            let weight = (o.body.len() / 1024 + 1).min(u16::MAX as usize) as u16;
                            self.store.put(id, o.clone(), weight);
                            self.lock.release(key, permit, LockStatus::Done);
                            Got::Object(o, Status::Miss)
                        }
                        Fetched::Pass(o) => {
                            if o.head.status.as_u16() == 200 {
                                self.passing.put(&id, (), Some(PASS_FOR));
                            }
                            self.lock.release(key, permit, LockStatus::GiveUp);
                            Got::Object(o, Status::Pass)
                        }
                        Fetched::Failed(code) => {
                            self.lock.release(key, permit, LockStatus::GiveUp);
                            Got::Failed(code)
                        }
                    };
                }
            }
        }
        // Fills keep failing or passing, or the origin answers this key for
        // one viewer at a time: this request fetches for itself.
        match fetch(Feed(None)).await {
            Fetched::Keep(o) | Fetched::Pass(o) => Got::Object(o, Status::Pass),
            Fetched::Failed(code) => Got::Failed(code),
        }
    }
}

/// An object fetched, to be kept or passed.
pub fn object(head: ResponseHeader, body: Bytes, template: Option<Template>) -> Object {
    Object {
        head,
        body,
        template,
        expires: None,
        peer: None,
        file: None,
    }
}

impl Object {
    /// A large body (a segment's: playlists are never sealed) moved into a
    /// sealed memfd ([`sealed`]), so hits can be sent from it; on the heap as
    /// before if the kernel refuses one.
    pub fn sealed(mut self) -> Object {
        if self.body.len() < sealed::MIN {
            return self;
        }
        match sealed::seal(&self.body) {
            Ok(s) => {
                self.body = s.bytes;
                self.file = Some(s.file);
            }
            Err(e) => log::debug!("a cached segment stays on the heap: memfd: {e}"),
        }
        self
    }

    /// The object, fresh for `ttl` from now (`None`: until evicted).
    pub fn kept(mut self, ttl: Option<Duration>) -> Arc<Object> {
        self.expires = ttl.map(|t| Instant::now() + t);
        Arc::new(self)
    }
}

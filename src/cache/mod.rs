//! The HLS micro-cache: segments and playlists fetched from the origin, kept in
//! memory per domain so that a thousand viewers of a stream cost the origin one
//! request per segment and one per playlist refresh.
//!
//! - Storage: a TinyUFO (S3-FIFO + TinyLFU, Pingora's own) bounded by weight —
//!   each object weighs its size in KiB — so the cache never holds more than
//!   `cache.max_bytes`.
//! - Coalescing: pingora-cache's cache lock. The first miss of a key takes the
//!   write permit and fetches; concurrent misses wait on the read lock, then find
//!   the object (or, if it turned out not cacheable, fetch again one at a time).
//! - Freshness ([`policy`]): a playlist for half its `EXT-X-TARGETDURATION`, at
//!   most 1 s; a segment until evicted. Only 200 answers are cached, never one
//!   with `Cache-Control: no-store` or `private`.
//!
//! Admission happens before: the key is what the origin is asked (domain, Host
//! sent upstream, path and query with every auth parameter and token stripped).

pub mod policy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora_cache::lock::{CacheKeyLock, CacheLock, LockStatus, Locked};
use pingora_cache::{key::CacheHashKey, CacheKey};
use pingora_http::ResponseHeader;
use tinyufo::TinyUfo;

/// The largest object cached (a segment of a very high bitrate stream).
pub const MAX_OBJECT: usize = 32 << 20;
/// How long a fill may hold its key before waiters fetch themselves.
const LOCK_AGE: Duration = Duration::from_secs(30);

/// One cached answer: the origin's head (hop-by-hop headers removed) and body.
pub struct Object {
    pub head: ResponseHeader,
    pub body: Bytes,
    /// `None`: until evicted.
    expires: Option<Instant>,
}

impl Object {
    fn fresh(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// What a fill fetched.
pub enum Fetched {
    /// Cached for this long (`None`: until evicted) and served.
    Keep(Arc<Object>, Option<Duration>),
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
    Miss,
    Pass,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Hit => "HIT",
            Status::Coalesced => "HIT-COALESCED",
            Status::Miss => "MISS",
            Status::Pass => "PASS",
        }
    }
}

/// One domain's cache.
pub struct Cache {
    store: TinyUfo<u128, Arc<Object>>,
    lock: CacheLock,
}

impl Cache {
    /// A cache holding at most `max_bytes`.
    pub fn new(max_bytes: u64) -> Cache {
        let kib = (max_bytes / 1024).max(1) as usize;
        Cache {
            // Estimated objects: segments of ~256 KiB on average.
            store: TinyUfo::new(kib, (kib / 256).max(16)),
            lock: CacheLock::new(LOCK_AGE),
        }
    }

    fn lookup(&self, id: u128) -> Option<Arc<Object>> {
        self.store.get(&id).filter(|o| o.fresh(Instant::now()))
    }

    /// The cached answer for `key`, or one fill (`fetch`) shared by every
    /// concurrent request for it.
    pub async fn get<F, Fut>(
        &self,
        key: &CacheKey,
        mut fetch: F,
    ) -> (Result<Arc<Object>, u16>, Status)
    where
        F: FnMut() -> Fut,
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
                return (Ok(o), status);
            }
            match self.lock.lock(key, false) {
                Locked::Read(r) => {
                    r.wait().await;
                    waited = true;
                }
                Locked::Write(permit) => {
                    // Another fill may have finished between lookup and lock.
                    if let Some(o) = self.lookup(id) {
                        self.lock.release(key, permit, LockStatus::Done);
                        return (Ok(o), Status::Hit);
                    }
                    let fetched = fetch().await;
                    return match fetched {
                        Fetched::Keep(o, ttl) => {
                            let weight = (o.body.len() / 1024 + 1).min(u16::MAX as usize) as u16;
                            let o = Arc::new(Object {
                                head: o.head.clone(),
                                body: o.body.clone(),
                                expires: ttl.map(|t| Instant::now() + t),
                            });
                            self.store.put(id, o.clone(), weight);
                            self.lock.release(key, permit, LockStatus::Done);
                            (Ok(o), Status::Miss)
                        }
                        Fetched::Pass(o) => {
                            self.lock.release(key, permit, LockStatus::GiveUp);
                            (Ok(o), Status::Pass)
                        }
                        Fetched::Failed(code) => {
                            self.lock.release(key, permit, LockStatus::GiveUp);
                            (Err(code), Status::Pass)
                        }
                    };
                }
            }
        }
        // Fills keep failing or passing: this request fetches for itself.
        match fetch().await {
            Fetched::Keep(o, _) | Fetched::Pass(o) => (Ok(o), Status::Pass),
            Fetched::Failed(code) => (Err(code), Status::Pass),
        }
    }
}

/// An object to be kept or passed.
pub fn object(head: ResponseHeader, body: Bytes) -> Arc<Object> {
    Arc::new(Object {
        head,
        body,
        expires: None,
    })
}

//! The state the request path reads — rule table, redaction names, forbids — as
//! one immutable snapshot behind an `ArcSwap`: a request loads it with an atomic
//! read and no lock, and a management API write builds a whole new snapshot and
//! swaps it in, so writers never hold up viewers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::fleet::{self, Commit, Fleet};
use super::keys::{Layout, Seen, Skip};
use super::{domain_key, Forbid, Saved, StateError};
use crate::auth::Table;
use crate::config::{DomainConfig, Problems};
use crate::redact::Redact;
use crate::verdict::{Failure, Reason};

/// One consistent view of everything the API can change.
pub struct Snapshot {
    pub table: Table,
    pub redact: Redact,
    /// (domain index, lowercase app, stream) → forbid.
    forbids: HashMap<(usize, String, String), Forbid>,
}

impl Snapshot {
    /// The forbid in force for a stream at `now`, if any. Free when nothing is
    /// forbidden (the common case).
    pub fn forbidden(&self, domain: usize, app: &str, stream: &str, now: i64) -> Option<&Forbid> {
        if self.forbids.is_empty() {
            return None;
        }
        let key = (domain, app.to_ascii_lowercase(), stream.to_owned());
        self.forbids.get(&key).filter(|f| f.holds(now))
    }

    /// `FORBIDDEN_STREAM` for a stream forbidden at `now` (the proxy and `check` say
    /// the same).
    pub fn check_forbid(
        &self,
        domain: usize,
        app: &str,
        stream: &str,
        now: i64,
    ) -> Result<(), Failure> {
        match self.forbidden(domain, app, stream, now) {
            None => Ok(()),
            Some(f) => Err(Failure::with(
                Reason::ForbiddenStream,
                f.reason
                    .clone()
                    .unwrap_or_else(|| "forbidden through the management API".into()),
            )),
        }
    }

    /// Forbids in force at `now`, for listing.
    pub fn forbids(&self, now: i64) -> impl Iterator<Item = &Forbid> {
        self.forbids.values().filter(move |f| f.holds(now))
    }
}

/// Why a change was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The change does not validate: `field: message`.
    Invalid(String),
    /// The domain (or rule, or forbid) does not exist.
    NotFound(String),
    /// The state could not be written: nothing changed.
    Store(StateError),
}

/// Where the state is kept.
pub enum Store {
    /// `state_dir/state.json`.
    File,
    /// etcd, shared by a fleet.
    Etcd(Arc<Fleet>),
}

/// The saved state and, in fleet mode, what this edge last saw of each key
/// (what its writes are conditional on, and which watch events are news).
struct Held {
    saved: Saved,
    seen: HashMap<String, Seen>,
}

/// How often a fleet write re-reads and retries when other edges keep winning.
const ATTEMPTS: usize = 8;

/// The live state and the store behind it.
pub struct Live {
    /// The configuration's domains in the edge's slots (see [`Live::reload`]):
    /// replaced only under `held`.
    yaml: ArcSwap<Vec<DomainConfig>>,
    dir: PathBuf,
    current: ArcSwap<Snapshot>,
    /// Held while a change is written, so writes are serialised and none is lost.
    held: tokio::sync::Mutex<Held>,
    /// Changes applied since start (file backend).
    revision: AtomicU64,
    store: Store,
    /// This edge's name in answers.
    edge: String,
}

/// Builds a snapshot of the YAML with `saved` laid over it.
pub fn snapshot(yaml: &[DomainConfig], saved: &Saved) -> Result<Snapshot, String> {
    let mut warnings = Vec::new();
    let domains = saved.effective(yaml, &mut warnings);
    let mut problems = Problems::default();
    let table = Table::build(&domains, &mut problems, &mut warnings);
    if let Some(p) = problems.0.first() {
        return Err(p.to_string());
    }
    let forbids = saved
        .forbids
        .iter()
        .filter_map(|f| {
            let d = table.index_of(&domain_key(&f.domain))?;
            Some(((d, f.app.to_ascii_lowercase(), f.stream.clone()), f.clone()))
        })
        .collect();
    Ok(Snapshot {
        redact: Redact::new(table.auth_param_names()),
        table,
        forbids,
    })
}

/// A key's change from etcd: key, new value (`None`: deleted), its revision.
pub type Change = (String, Option<Vec<u8>>, i64);

/// Lays changed keys over `base`, skipping values that do not parse or do not
/// validate (logged; those keys keep what they had): all at once, and if the
/// whole does not validate, one key at a time. `None` if even that fails.
pub fn lay_over(
    yaml: &[DomainConfig],
    layout: &Layout,
    base: &Saved,
    changes: &[Change],
) -> Option<(Saved, Snapshot)> {
    let take = |saved: &mut Saved, key: &str, value: Option<&[u8]>| match layout
        .apply(saved, key, value)
    {
        Ok(()) | Err(Skip::Other) => true,
        Err(Skip::Bad(m)) => {
            log::warn!("etcd key {key} is not taken: {m}");
            false
        }
    };
    let mut next = base.clone();
    for (k, v, _) in changes {
        take(&mut next, k, v.as_deref());
    }
    if let Ok(snap) = snapshot(yaml, &next) {
        return Some((next, snap));
    }
    next = base.clone();
    for (k, v, _) in changes {
        let mut candidate = next.clone();
        if take(&mut candidate, k, v.as_deref()) {
            match snapshot(yaml, &candidate) {
                Ok(_) => next = candidate,
                Err(e) => log::warn!("etcd key {k} is not taken: {e}"),
            }
        }
    }
    match snapshot(yaml, &next) {
        Ok(snap) => Some((next, snap)),
        Err(e) => {
            log::error!("the state from etcd does not validate: {e}");
            None
        }
    }
}

/// Forbids of `after` that are new or changed since `before` and hold at `now`:
/// their streams' open connections are to be cut.
fn new_forbids(before: &Saved, after: &Saved, now: i64) -> Vec<Forbid> {
    after
        .forbids
        .iter()
        .filter(|f| f.holds(now) && !before.forbids.contains(f))
        .cloned()
        .collect()
}

impl Live {
    /// The state of a configuration's domains with `saved` (read at start) over them.
    pub fn new(
        yaml: Vec<DomainConfig>,
        dir: PathBuf,
        saved: Saved,
        store: Store,
        edge: String,
    ) -> Result<Live, String> {
        let first = snapshot(&yaml, &saved)?;
        Ok(Live {
            yaml: ArcSwap::from_pointee(yaml),
            dir,
            current: ArcSwap::from_pointee(first),
            held: tokio::sync::Mutex::new(Held {
                saved,
                seen: HashMap::new(),
            }),
            revision: AtomicU64::new(0),
            store,
            edge,
        })
    }

    /// The current snapshot: an atomic load, no lock.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// What this edge has applied: changes since start (file), or the etcd
    /// revision its state is at (fleet).
    pub fn revision(&self) -> i64 {
        match &self.store {
            Store::File => self.revision.load(Ordering::Acquire) as i64,
            Store::Etcd(f) => f.applied(),
        }
    }

    /// This edge's name (`state.edge`, or the host name).
    pub fn edge(&self) -> &str {
        &self.edge
    }

    /// Where the state is kept.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where the state file (or the fleet's snapshot) lives.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The YAML's domains (before the API's rules), in the edge's slots: a
    /// domain a reload removed stays, `retired`.
    pub fn yaml(&self) -> Arc<Vec<DomainConfig>> {
        self.yaml.load_full()
    }

    /// Whether `name` is a configured domain.
    pub fn has_domain(&self, name: &str) -> bool {
        self.domain_index(name).is_some()
    }

    /// The slot of the configured domain `name` (any case).
    pub fn domain_index(&self, name: &str) -> Option<usize> {
        let key = domain_key(name);
        self.yaml
            .load()
            .iter()
            .position(|d| !d.retired && domain_key(&d.name) == key)
    }

    /// Reload: the configuration's domains become `yaml` (in the edge's slots),
    /// with the saved state laid over them as before. Refused, changing nothing,
    /// if the result does not validate.
    pub async fn reload(&self, yaml: Vec<DomainConfig>) -> Result<(), String> {
        let held = self.held.lock().await;
        let snap = snapshot(&yaml, &held.saved)?;
        self.yaml.store(Arc::new(yaml));
        self.current.store(Arc::new(snap));
        Ok(())
    }

    /// The saved state as it is now (for listings).
    pub async fn saved(&self) -> Saved {
        self.held.lock().await.saved.clone()
    }

    /// Applies one change: `edit` changes a copy of the saved state; the new
    /// snapshot is built (refusing what does not validate), the state is stored
    /// durably (file) or acknowledged by etcd (fleet), and only then swapped in.
    /// On any refusal nothing changes. In a fleet, when another edge changed one
    /// of the same keys first, the state is re-read and `edit` runs again on it.
    pub async fn change<T>(
        &self,
        mut edit: impl FnMut(&mut Saved, &[DomainConfig]) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let mut held = self.held.lock().await;
        for _ in 0..ATTEMPTS {
            let mut next = held.saved.clone();
            let yaml = self.yaml.load_full();
            let out = edit(&mut next, &yaml)?;
            let snap = snapshot(&yaml, &next).map_err(Refusal::Invalid)?;
            match &self.store {
                Store::File => self.write_file(&next).await?,
                Store::Etcd(fleet) => {
                    let ops = fleet.layout.diff(&held.saved, &next, &held.seen);
                    match fleet.commit(ops.clone()).await.map_err(Refusal::Store)? {
                        Commit::Done(revision) => {
                            for op in ops {
                                let present = op.value.is_some();
                                held.seen.insert(op.key, Seen { revision, present });
                            }
                        }
                        Commit::Conflict => {
                            let read = fleet.reread().await.map_err(Refusal::Store)?;
                            self.merge(&mut held, fleet, read);
                            continue;
                        }
                    }
                }
            }
            self.current.store(Arc::new(snap));
            held.saved = next;
            if let Store::File = self.store {
                let n = self.revision.fetch_add(1, Ordering::AcqRel) + 1;
                crate::metrics::state_revision(n as i64);
            }
            return Ok(out);
        }
        Err(Refusal::Store(StateError::Etcd(format!(
            "other edges changed the same keys {ATTEMPTS} times in a row; try again"
        ))))
    }

    async fn write_file(&self, next: &Saved) -> Result<(), Refusal> {
        let dir = self.dir.clone();
        let written = next.clone();
        tokio::task::spawn_blocking(move || written.write(&dir))
            .await
            .map_err(|e| {
                Refusal::Store(StateError::Write {
                    dir: self.dir.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            })?
            .map_err(Refusal::Store)
    }

    /// Fleet: lays a full read of etcd over the held state — keys this edge saw
    /// at a later revision (its own writes since) stay — and swaps it in. Returns
    /// the forbids that are new.
    fn merge(&self, held: &mut Held, fleet: &Fleet, read: fleet::Read) -> Vec<Forbid> {
        let present: std::collections::HashSet<&str> =
            read.kvs.iter().map(|(k, _, _)| k.as_str()).collect();
        let gone: Vec<Change> = fleet
            .layout
            .entries(&held.saved)
            .into_keys()
            .filter(|k| !present.contains(k.as_str()))
            .map(|k| (k, None, read.revision))
            .collect();
        let changes = gone
            .into_iter()
            .chain(read.kvs.into_iter().map(|(k, v, r)| (k, Some(v), r)))
            .collect();
        self.lay(held, fleet, changes)
    }

    /// Fleet: applies changed keys (value `None`: deleted) at their modification
    /// revisions, skipping any this edge already saw later, and values that do
    /// not validate (logged; the key keeps what it had). Returns new forbids.
    fn lay(&self, held: &mut Held, fleet: &Fleet, changes: Vec<Change>) -> Vec<Forbid> {
        let fresh: Vec<_> = changes
            .into_iter()
            .filter(|(k, _, r)| held.seen.get(k).is_none_or(|s| s.revision < *r))
            .collect();
        if fresh.is_empty() {
            return Vec::new();
        }
        let yaml = self.yaml.load_full();
        let Some((next, snap)) = lay_over(&yaml, &fleet.layout, &held.saved, &fresh) else {
            return Vec::new();
        };
        for (k, v, r) in fresh {
            let present = v.is_some();
            held.seen.insert(
                k,
                Seen {
                    revision: r,
                    present,
                },
            );
        }
        let cut = new_forbids(&held.saved, &next, crate::unix_now());
        self.current.store(Arc::new(snap));
        held.saved = next;
        cut
    }

    /// Fleet: a full read (at start of a watch). Returns the forbids that are new.
    pub async fn resync(&self, read: fleet::Read) -> Vec<Forbid> {
        let Store::Etcd(fleet) = &self.store else {
            return Vec::new();
        };
        let revision = read.revision;
        let mut held = self.held.lock().await;
        let cut = self.merge(&mut held, fleet, read);
        self.synced(fleet, &held.saved, revision).await;
        cut
    }

    /// Fleet: changes from the watch, up to `revision`. Returns the forbids that
    /// are new.
    pub async fn apply_changes(&self, changes: Vec<Change>, revision: i64) -> Vec<Forbid> {
        let Store::Etcd(fleet) = &self.store else {
            return Vec::new();
        };
        let mut held = self.held.lock().await;
        let cut = self.lay(&mut held, fleet, changes);
        self.synced(fleet, &held.saved, revision).await;
        cut
    }

    /// Records the revision the state is at and writes the local snapshot.
    async fn synced(&self, fleet: &Arc<Fleet>, saved: &Saved, revision: i64) {
        fleet.set_applied(revision);
        let (f, s) = (fleet.clone(), saved.clone());
        let written = tokio::task::spawn_blocking(move || f.save_snapshot(&s, revision)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("no local snapshot of the fleet state: {e}"),
            Err(e) => log::warn!("no local snapshot of the fleet state: {e}"),
        }
    }
}

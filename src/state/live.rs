//! The state the request path reads — rule table, redaction names, forbids — as
//! one immutable snapshot behind an `ArcSwap`: a request loads it with an atomic
//! read and no lock, and a management API write builds a whole new snapshot and
//! swaps it in, so writers never hold up viewers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

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

/// The live state and the file behind it.
pub struct Live {
    yaml: Vec<DomainConfig>,
    dir: PathBuf,
    current: ArcSwap<Snapshot>,
    /// The saved state; held while a change is written, so writes are serialised
    /// and none is lost.
    saved: tokio::sync::Mutex<Saved>,
    /// Changes applied since start.
    revision: AtomicU64,
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

impl Live {
    /// The state of a configuration's domains with `saved` (read at start) over them.
    pub fn new(yaml: Vec<DomainConfig>, dir: PathBuf, saved: Saved) -> Result<Live, String> {
        let first = snapshot(&yaml, &saved)?;
        Ok(Live {
            yaml,
            dir,
            current: ArcSwap::from_pointee(first),
            saved: tokio::sync::Mutex::new(saved),
            revision: AtomicU64::new(0),
        })
    }

    /// The current snapshot: an atomic load, no lock.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Changes applied since this process started.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Where the state file lives.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The YAML's domains (before the API's rules).
    pub fn yaml(&self) -> &[DomainConfig] {
        &self.yaml
    }

    /// Whether `name` is a configured domain.
    pub fn has_domain(&self, name: &str) -> bool {
        let key = domain_key(name);
        self.yaml.iter().any(|d| domain_key(&d.name) == key)
    }

    /// The saved state as it is now (for listings).
    pub async fn saved(&self) -> Saved {
        self.saved.lock().await.clone()
    }

    /// Applies one change: `edit` changes a copy of the saved state; the new
    /// snapshot is built (refusing what does not validate), the state is written
    /// durably, and only then swapped in. On any refusal nothing changes.
    pub async fn change<T>(
        &self,
        edit: impl FnOnce(&mut Saved, &[DomainConfig]) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let mut saved = self.saved.lock().await;
        let mut next = saved.clone();
        let out = edit(&mut next, &self.yaml)?;
        let snap = snapshot(&self.yaml, &next).map_err(Refusal::Invalid)?;
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
            .map_err(Refusal::Store)?;
        self.current.store(Arc::new(snap));
        *saved = next;
        self.revision.fetch_add(1, Ordering::Release);
        Ok(out)
    }
}

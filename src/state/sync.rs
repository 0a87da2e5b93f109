//! Keeping this edge's live state in step with the fleet's store: the start-up
//! read (or the local snapshot when etcd is down) and the watch. Above both
//! [`super::fleet`] (the store) and [`super::live`] (what requests read), so
//! neither imports the other's way up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::fleet::{
    connect, fail, fleet_secret, parse_secret, read_all, read_snapshot, timed, Fleet, SNAPSHOT,
};
use super::keys::Layout;
use super::live::{lay_over, Change, Live};
use super::{Saved, StateError};
use crate::config::{DomainConfig, StateConfig};
use crate::streams::Streams;

/// How often a live watch asks etcd for its current revision.
const PROGRESS: Duration = Duration::from_secs(2);

/// What a start-up found: the state at a revision, and the token secret.
pub struct Boot {
    pub state: Saved,
    pub revision: i64,
    pub secret: [u8; 32],
}

/// Start-up: the state and secret from etcd, or — etcd unreachable — from the
/// local snapshot. With neither, a clear error.
pub fn boot(config: &StateConfig, dir: &Path, yaml: &[DomainConfig]) -> Result<Boot, StateError> {
    let prefix = config.prefix.clone().unwrap_or_else(|| "/livegate".into());
    let layout = Layout::new(&prefix);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StateError::Etcd(e.to_string()))?;
    let from_etcd = rt.block_on(async {
        let mut client = connect(config).await?;
        let secret = fleet_secret(&mut client, &layout.secret()).await?;
        let read = read_all(&mut client, layout.root()).await?;
        Ok::<_, String>((secret, read))
    });
    match from_etcd {
        Ok((secret, read)) => {
            let changes: Vec<Change> = read
                .kvs
                .into_iter()
                .map(|(k, v, r)| (k, Some(v), r))
                .collect();
            let state = lay_over(yaml, &layout, &Saved::default(), &changes)
                .map(|(s, _)| s)
                .ok_or_else(|| {
                    StateError::Etcd(format!(
                        "the state under {prefix} in etcd does not validate against this configuration (see the log)"
                    ))
                })?;
            log::info!(
                "state from etcd at revision {} ({} keys under {prefix})",
                read.revision,
                changes.len()
            );
            Ok(Boot {
                state,
                revision: read.revision,
                secret,
            })
        }
        Err(e) => {
            let file = dir.join(SNAPSHOT);
            let snap = read_snapshot(&file)?.ok_or_else(|| {
                StateError::Etcd(format!(
                    "{e}; and there is no snapshot of an earlier sync at {} to start from: start etcd (or fix state.endpoints) first",
                    file.display()
                ))
            })?;
            if snap.prefix != prefix {
                return Err(StateError::Etcd(format!(
                    "{e}; the snapshot at {} is of prefix {:?}, not {prefix:?}",
                    file.display(),
                    snap.prefix
                )));
            }
            let secret =
                parse_secret(snap.secret.as_bytes()).ok_or_else(|| StateError::Unreadable {
                    file: file.clone(),
                    message: "its secret is not 64 hex digits".into(),
                })?;
            log::warn!(
                "{e}: serving the snapshot of etcd revision {} from {} until etcd answers",
                snap.revision,
                file.display()
            );
            Ok(Boot {
                state: snap.state,
                revision: snap.revision,
                secret,
            })
        }
    }
}

/// The watch: connects, reads everything, watches from the next revision, and
/// starts over (with backoff when etcd failed) whenever the watch ends. Runs until
/// `shutdown`.
pub async fn watch(
    fleet: Arc<Fleet>,
    live: Arc<Live>,
    streams: Arc<Streams>,
    mut shutdown: pingora_core::server::ShutdownWatch,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let ended = tokio::select! {
            _ = shutdown.changed() => return,
            e = sync_and_watch(&fleet, &live, &streams) => e,
        };
        fleet.set_watching(false);
        match ended {
            // Compacted past our revision: read everything again, at once.
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                log::warn!(
                    "{e}; serving the state of etcd revision {} and retrying in {backoff:?}",
                    fleet.applied()
                );
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One round: a full read, then the watch until it ends. `Ok` when it ended
/// because its revision was compacted (re-read at once), `Err` on a failure.
async fn sync_and_watch(fleet: &Fleet, live: &Live, streams: &Streams) -> Result<(), String> {
    let current = fleet.conn.borrow().clone();
    let mut client = match current {
        Some((c, _)) => c,
        None => {
            let c = connect(&fleet.config).await?;
            fleet
                .conn
                .send_replace(Some((c.clone(), tokio::runtime::Handle::current())));
            c
        }
    };
    let read = read_all(&mut client, fleet.layout.root()).await?;
    let from = read.revision + 1;
    cut(live, streams, live.resync(read).await);
    let options = etcd_client::WatchOptions::new()
        .with_prefix()
        .with_start_revision(from);
    let mut stream = timed("watch", client.watch(fleet.layout.root(), Some(options))).await?;
    // Progress requests keep the reported revision etcd's current one even when
    // nothing under the prefix changes, so edges in step report the same number.
    let mut progress = tokio::time::interval(PROGRESS);
    loop {
        let message = tokio::select! {
            m = stream.message() => m,
            _ = progress.tick() => {
                if fleet.watching() {
                    stream.request_progress().await.map_err(|e| fail("watch", e))?;
                }
                continue;
            }
        };
        let Some(resp) = message.map_err(|e| fail("watch", e))? else {
            return Err(fail("watch", "the stream ended"));
        };
        if resp.compact_revision() > 0 {
            log::warn!(
                "etcd compacted its history past revision {from} (to {}); reading the whole state again",
                resp.compact_revision()
            );
            return Ok(());
        }
        if resp.canceled() {
            return Err(fail("watch", format!("canceled: {}", resp.cancel_reason())));
        }
        if resp.created() {
            fleet.set_watching(true);
            log::info!("watching etcd from revision {from}");
            continue;
        }
        let changes = resp
            .events()
            .iter()
            .filter_map(|ev| {
                let kv = ev.kv()?;
                let key = String::from_utf8(kv.key().to_vec()).ok()?;
                let value = match ev.event_type() {
                    etcd_client::EventType::Put => Some(kv.value().to_vec()),
                    etcd_client::EventType::Delete => None,
                };
                Some((key, value, kv.mod_revision()))
            })
            .collect::<Vec<_>>();
        // A progress answer says the watch is current at the header's revision;
        // events say the state is at their latest (a catching-up watch's header
        // may be ahead of the events it has sent so far).
        match changes.iter().map(|c| c.2).max() {
            None => fleet.set_applied(resp.header().map_or(0, |h| h.revision())),
            Some(revision) => cut(live, streams, live.apply_changes(changes, revision).await),
        }
    }
}

/// Cuts the open connections of streams another edge just forbade.
fn cut(live: &Live, streams: &Streams, forbids: Vec<super::Forbid>) {
    let snap = live.load();
    for f in forbids {
        if let Some(d) = snap.table.index_of(&super::domain_key(&f.domain)) {
            let n = streams.cut(d, &f.app.to_ascii_lowercase(), &f.stream, None);
            log::info!(
                "stream {}/{} of {} forbidden through the fleet: {n} connections cut",
                f.app,
                f.stream,
                f.domain
            );
        }
    }
}

/// The watch as a Pingora background service (so it runs in Pingora's runtime,
/// after daemonising, and stops with the server).
pub struct FleetWatch {
    pub fleet: Arc<Fleet>,
    pub live: Arc<Live>,
    pub streams: Arc<Streams>,
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for FleetWatch {
    async fn start(&self, shutdown: pingora_core::server::ShutdownWatch) {
        let edge = self.live.edge().to_owned();
        tokio::join!(
            watch(
                self.fleet.clone(),
                self.live.clone(),
                self.streams.clone(),
                shutdown.clone(),
            ),
            self.fleet.register(&edge, shutdown),
        );
    }
}

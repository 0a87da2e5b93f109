//! Fleet mode's store: the state lives in etcd, shared by every edge of the
//! fleet. This module is the I/O below the live state ([`super::live`] writes
//! through it); [`super::sync`] above both keeps the live state in step.
//!
//! - A management API write becomes one etcd transaction that compares every key
//!   it touches on the revision this edge last saw of it, so two edges writing the
//!   same rule at once never mix their bodies: one wins, the other re-reads and
//!   applies its edit again ([`Fleet::commit`]).
//! - Every edge watches the prefix ([`super::sync::watch`]): a full read at a revision, then a
//!   watch from that revision + 1, so no change is missed; a watch cut or compacted
//!   away starts over with a full read. Meanwhile the edge serves the last state it
//!   saw.
//! - After each applied change the state is written to a local snapshot under
//!   `state_dir`, which a start with etcd unreachable serves from.
//!
//! etcd calls run on the runtime of the watch (a Pingora background service); the
//! management API hands them over ([`Fleet::commit`]) and waits, with a timeout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, TlsOptions, Txn,
    TxnOp,
};
use serde::{Deserialize, Serialize};

use super::keys::Layout;
pub use super::keys::Op;
use super::{Saved, StateError};
use crate::config::StateConfig;

/// How long one etcd call may take before it counts as etcd being unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The local snapshot's name under `state_dir`.
pub const SNAPSHOT: &str = "etcd-snapshot.json";
/// How often an edge renews its entry in the fleet's list of edges; the entry
/// (on an etcd lease) disappears three of these after the edge stops renewing.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// A commit's outcome.
#[derive(Debug)]
pub enum Commit {
    /// Written, at this etcd revision.
    Done(i64),
    /// Another writer changed one of the keys first: nothing was written.
    Conflict,
}

/// Everything under the prefix at one revision.
pub struct Read {
    pub revision: i64,
    /// (key, value, modification revision).
    pub kvs: Vec<(String, Vec<u8>, i64)>,
}

/// The local snapshot of the last synced state (mode 0600: it holds keys).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub prefix: String,
    pub revision: i64,
    pub secret: String,
    pub state: Saved,
}

/// The connection to etcd and what this edge applied from it.
pub struct Fleet {
    pub(super) config: StateConfig,
    pub layout: Layout,
    pub prefix: String,
    dir: PathBuf,
    /// The client and the runtime it lives on, once the watch connected.
    pub(super) conn: tokio::sync::watch::Sender<Option<Conn>>,
    applied: AtomicI64,
    watching: AtomicBool,
    secret: [u8; 32],
}

/// A client and the runtime its connection lives on.
pub(super) type Conn = (Client, tokio::runtime::Handle);

/// An etcd failure, for logs and `StoreUnavailable`.
pub(super) fn fail(what: &str, e: impl std::fmt::Display) -> String {
    format!("etcd {what}: {e}")
}

pub(super) async fn timed<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| fail(what, e)),
        Err(_) => Err(fail(what, format!("no answer in {CALL_TIMEOUT:?}"))),
    }
}

impl Fleet {
    /// The fleet of a configuration, with the secret and revision it started from.
    pub fn new(config: &StateConfig, dir: &Path, secret: [u8; 32], revision: i64) -> Fleet {
        let prefix = config.prefix.clone().unwrap_or_else(|| "/livegate".into());
        Fleet {
            layout: Layout::new(&prefix),
            prefix,
            config: config.clone(),
            dir: dir.to_owned(),
            conn: tokio::sync::watch::Sender::new(None),
            applied: AtomicI64::new(revision),
            watching: AtomicBool::new(false),
            secret,
        }
    }

    /// The etcd revision this edge's state is at.
    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Records that the state is at `revision`.
    pub fn set_applied(&self, revision: i64) {
        self.applied.fetch_max(revision, Ordering::AcqRel);
        crate::metrics::state_revision(self.applied());
    }

    /// Whether the watch is live (changes arrive as they are made).
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }

    pub(super) fn set_watching(&self, on: bool) {
        self.watching.store(on, Ordering::Release);
        crate::metrics::state_watch(on);
    }

    /// The configured endpoints (for answers and logs; they hold no secret).
    pub fn endpoints(&self) -> &[String] {
        &self.config.endpoints
    }

    /// The client, once the watch has connected (a write right after start
    /// waits for it, up to the call timeout).
    async fn connected(&self) -> Result<Conn, StateError> {
        let mut rx = self.conn.subscribe();
        let waited = tokio::time::timeout(CALL_TIMEOUT, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(conn)) => conn
                .clone()
                .ok_or_else(|| StateError::Etcd("etcd is not connected".into())),
            _ => Err(StateError::Etcd(format!(
                "etcd is not connected (not within {CALL_TIMEOUT:?})"
            ))),
        }
    }

    /// Writes `ops` in one transaction, on the condition that none of their keys
    /// changed since this edge saw them. Runs on the watch's runtime.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<Commit, StateError> {
        let unavailable = |m: String| StateError::Etcd(m);
        let (client, rt) = self.connected().await?;
        let task = rt.spawn(async move {
            let mut kv = client.kv_client();
            let when: Vec<Compare> = ops
                .iter()
                .map(|o| Compare::mod_revision(o.key.clone(), CompareOp::Equal, o.seen))
                .collect();
            let then: Vec<TxnOp> = ops
                .into_iter()
                .map(|o| match o.value {
                    Some(v) => TxnOp::put(o.key, v, None),
                    None => TxnOp::delete(o.key, None),
                })
                .collect();
            let r = timed("write", kv.txn(Txn::new().when(when).and_then(then))).await?;
            let revision = r.header().map_or(0, |h| h.revision());
            Ok::<_, String>(match r.succeeded() {
                true => Commit::Done(revision),
                false => Commit::Conflict,
            })
        });
        task.await
            .map_err(|e| unavailable(e.to_string()))?
            .map_err(unavailable)
    }

    /// Everything under the prefix now. Runs on the watch's runtime.
    pub async fn reread(&self) -> Result<Read, StateError> {
        let (mut client, rt) = self.connected().await?;
        let root = self.layout.root().to_owned();
        rt.spawn(async move { read_all(&mut client, &root).await })
            .await
            .map_err(|e| StateError::Etcd(e.to_string()))?
            .map_err(StateError::Etcd)
    }

    /// Where the fleet's list of edges lives: beside the state's prefix, not
    /// under it, so edges coming and going never touch the state's watch.
    fn edges_root(&self) -> String {
        format!("{}.edges/", self.prefix.trim_end_matches('/'))
    }

    /// Keeps this edge in the fleet's list of edges (`{prefix}.edges/{edge}`):
    /// one write per connection, on a lease renewed every [`HEARTBEAT`] — a
    /// renewal is no write, so the state's revision does not move with it. A
    /// stopped edge leaves at once (its lease revoked); a crashed one, three
    /// heartbeats later. Runs until `shutdown`.
    pub async fn register(&self, edge: &str, mut shutdown: pingora_core::server::ShutdownWatch) {
        let key = format!("{}{edge}", self.edges_root());
        let value = serde_json::json!({ "edge": edge, "since": crate::unix_now() }).to_string();
        let mut rx = self.conn.subscribe();
        loop {
            let conn = tokio::select! {
                _ = shutdown.changed() => return,
                c = rx.wait_for(Option::is_some) => c.ok().and_then(|c| c.clone()),
            };
            let Some((mut client, _)) = conn else { return };
            let ttl = (HEARTBEAT * 3).as_secs() as i64;
            let held = async {
                let lease = timed("lease", client.lease_grant(ttl, None)).await?.id();
                let put = etcd_client::PutOptions::new().with_lease(lease);
                timed(
                    "register",
                    client.put(key.as_str(), value.as_str(), Some(put)),
                )
                .await?;
                let (mut keeper, mut answers) =
                    timed("lease", client.lease_keep_alive(lease)).await?;
                let renewals = async {
                    loop {
                        tokio::time::sleep(HEARTBEAT).await;
                        keeper.keep_alive().await.map_err(|e| fail("lease", e))?;
                        match timed("lease", answers.message()).await? {
                            Some(a) if a.ttl() > 0 => {}
                            _ => return Err::<(), String>(fail("lease", "expired")),
                        }
                    }
                };
                let mut stop = shutdown.clone();
                tokio::select! {
                    r = renewals => r,
                    _ = stop.changed() => {
                        let _ = timed("lease", client.lease_revoke(lease)).await;
                        Ok(())
                    }
                }
            };
            match held.await {
                Ok(()) => return,
                Err(e) => log::info!("{e}; registering this edge again"),
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// The edges of the fleet now (each as it registered: `edge`, `since`),
    /// sorted by name. Runs on the watch's runtime.
    pub async fn edges(&self) -> Result<Vec<serde_json::Value>, StateError> {
        let (mut client, rt) = self.connected().await?;
        let root = self.edges_root();
        let read = rt.spawn(async move {
            let options = GetOptions::new().with_prefix();
            let r = timed("read", client.get(root.as_str(), Some(options))).await?;
            Ok::<_, String>(
                r.kvs()
                    .iter()
                    .filter_map(|kv| serde_json::from_slice::<serde_json::Value>(kv.value()).ok())
                    .collect::<Vec<_>>(),
            )
        });
        let mut edges = read
            .await
            .map_err(|e| StateError::Etcd(e.to_string()))?
            .map_err(StateError::Etcd)?;
        edges.sort_by(|a, b| a["edge"].as_str().cmp(&b["edge"].as_str()));
        Ok(edges)
    }

    /// Writes the local snapshot of `state` at `revision`, durably.
    pub fn save_snapshot(&self, state: &Saved, revision: i64) -> Result<(), StateError> {
        let snap = Snapshot {
            prefix: self.prefix.clone(),
            revision,
            secret: hex::encode(self.secret),
            state: state.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&snap).map_err(|e| StateError::Write {
            dir: self.dir.clone(),
            source: e.into(),
        })?;
        super::write_atomic(&self.dir, SNAPSHOT, &bytes)
    }
}

/// This machine's host name, the default edge name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "livegate".into())
}

pub(super) async fn connect(config: &StateConfig) -> Result<Client, String> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(CALL_TIMEOUT)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true)
        .with_require_leader(true);
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        options = options.with_user(user.clone(), password.0.clone());
    }
    if let Some(t) = &config.tls {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| format!("state.tls: cannot read {}: {e}", p.display()))
        };
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&t.ca)?));
        if let (Some(cert), Some(key)) = (&t.cert, &t.key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(tls);
    }
    timed("connect", Client::connect(&config.endpoints, Some(options))).await
}

pub(super) async fn read_all(client: &mut Client, root: &str) -> Result<Read, String> {
    let r = timed(
        "read",
        client.get(root, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = r.header().map_or(0, |h| h.revision());
    let kvs = r
        .kvs()
        .iter()
        .filter_map(|kv| {
            let key = String::from_utf8(kv.key().to_vec()).ok()?;
            Some((key, kv.value().to_vec(), kv.mod_revision()))
        })
        .collect();
    Ok(Read { revision, kvs })
}

/// The fleet's HLS token secret: the one in etcd, or a new random one put there
/// if there is none yet (only if still none, so every edge ends with the same).
pub(super) async fn fleet_secret(client: &mut Client, key: &str) -> Result<[u8; 32], String> {
    let fresh = crate::hls::random_secret().map_err(|e| fail("secret", e))?;
    let txn = Txn::new()
        .when([Compare::version(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key, hex::encode(fresh), None)])
        .or_else([TxnOp::get(key, None)]);
    let r = timed("secret", client.txn(txn)).await?;
    if r.succeeded() {
        return Ok(fresh);
    }
    let value = r
        .op_responses()
        .into_iter()
        .find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        })
        .ok_or_else(|| fail("secret", "the secret vanished while read"))?;
    parse_secret(&value).ok_or_else(|| {
        fail(
            "secret",
            format!("{key} is not 64 hex digits; delete it to make a new one"),
        )
    })
}

pub(super) fn parse_secret(value: &[u8]) -> Option<[u8; 32]> {
    hex::decode(value.trim_ascii()).ok()?.try_into().ok()
}

/// Reads the local snapshot; `None` when there is none.
pub fn read_snapshot(file: &Path) -> Result<Option<Snapshot>, StateError> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StateError::Unreadable {
                file: file.to_owned(),
                message: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| StateError::Unreadable {
            file: file.to_owned(),
            message: crate::redact::parse_error(&e.to_string()),
        })
}

//! Reload: the configuration file re-read, validated as `livegate -t` does, and
//! swapped in whole for new requests and sessions — domains, origins, rules,
//! access lists, HLS/CORS/cache/fan-out settings, remote auth, notify, the access
//! log format, TLS certificates, the admin key — while open viewers, HLS
//! sessions and RTMP sessions keep going. `SIGHUP` asks for one (what
//! `livegate -s reload` sends); `SIGUSR1` reopens the log file.
//!
//! Domains live in *slots*: a running edge's indices (streams, limits,
//! metrics, cache keys) stay the same domain's through every reload. A domain a
//! reload removes keeps its slot, `retired` (it serves no host); a new one gets
//! the next slot. Each per-slot list only grows, and is swapped in before the
//! rule snapshot that routes to it, so a slot is valid wherever it is read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde::{Deserialize, Serialize};

use crate::admin::AdminKey;
use crate::admission::{Admission, Door};
use crate::auth::remote::Remote;
use crate::config::{self, default_linger, Config, DomainConfig, Loaded};
use crate::metrics::{active_streams, DomainMetrics, Origins};
use crate::notify::Notifier;
use crate::origin::{Checks, Origin};
use crate::proxy::{Site, Sites};
use crate::rtmp::{Pools, Settings as RtmpSettings};
use crate::state::domain_key;
use crate::state::live::{snapshot, Live};
use crate::streams::{DomainInfo, Streams};
use crate::tls::Certs;

/// The configuration's domains in the running edge's slots: each running one
/// in its place (retired if `next` has it no more), then `next`'s new ones.
pub fn slots(running: &[DomainConfig], next: &[DomainConfig]) -> Vec<DomainConfig> {
    let mut out: Vec<DomainConfig> = running
        .iter()
        .map(|r| {
            let key = domain_key(&r.name);
            match next.iter().find(|n| domain_key(&n.name) == key) {
                Some(n) => n.clone(),
                None => DomainConfig {
                    retired: true,
                    ..r.clone()
                },
            }
        })
        .collect();
    for n in next {
        let key = domain_key(&n.name);
        if !out.iter().any(|o| domain_key(&o.name) == key) {
            out.push(n.clone());
        }
    }
    out
}

/// What a configuration change needs a new process for (`livegate -u`): the
/// addresses listened on, the server section, where the state is kept.
pub fn needs_restart(running: &Config, next: &Config) -> Vec<&'static str> {
    let listeners = |c: &Config| {
        let shape = |l: &config::Listen| (l.addr().to_owned(), l.tls().is_some(), l.http2());
        let proxy: Vec<_> = c.listen.iter().map(shape).collect();
        let rtmp: Option<Vec<_>> = c
            .rtmp
            .as_ref()
            .map(|r| r.listen.iter().map(shape).collect());
        (proxy, rtmp)
    };
    let debug = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let mut out = Vec::new();
    let (a, b) = (listeners(running), listeners(next));
    if a.0 != b.0 {
        out.push("listen");
    }
    if a.1 != b.1 {
        out.push("rtmp.listen");
    }
    let admin = |c: &Config| c.admin.as_ref().map(|a| a.listen.clone());
    if admin(running) != admin(next) {
        out.push("admin.listen");
    }
    let metrics = |c: &Config| c.metrics.as_ref().map(|m| m.listen.clone());
    if metrics(running) != metrics(next) {
        out.push("metrics.listen");
    }
    if debug(&running.server) != debug(&next.server) {
        out.push("server");
    }
    if running.state_dir != next.state_dir || debug(&running.state) != debug(&next.state) {
        out.push("state");
    }
    let queue = |c: &Config| c.notify.as_ref().map(|n| n.queue);
    if queue(running).is_some() && queue(next).is_some() && queue(running) != queue(next) {
        out.push("notify.queue");
    }
    out
}

/// The doors and sites of the configuration in force, slot by slot.
pub type Before<'a> = Option<(&'a [Arc<Door>], &'a [Arc<Site>])>;

/// The per-slot runtime of a configuration.
pub struct Built {
    pub doors: Vec<Arc<Door>>,
    pub sites: Vec<Arc<Site>>,
    pub pools: Vec<Option<Arc<Origin>>>,
    /// The health checks of its origin pools, to run while it is in force.
    pub checks: Checks,
}

impl Built {
    /// Builds every slot's door, site and RTMP pool. What outlives a
    /// configuration is carried over from `before` (same slots): per-client
    /// limits (open connections are given back to the limiter that counted
    /// them) and a cache whose size did not change (its objects stay warm).
    pub fn new(
        slots: &[DomainConfig],
        before: Before<'_>,
        attempts: usize,
    ) -> Result<Built, String> {
        let mut built = Built {
            doors: Vec::with_capacity(slots.len()),
            sites: Vec::with_capacity(slots.len()),
            pools: Vec::with_capacity(slots.len()),
            checks: Vec::new(),
        };
        for (i, d) in slots.iter().enumerate() {
            let old_door = before.and_then(|(doors, _)| doors.get(i));
            let old_site = before.and_then(|(_, sites)| sites.get(i));
            let origin_error = |e: std::io::Error| format!("domain {}: origin peers: {e}", d.name);
            let checks = &mut built.checks;
            let (origin, rtmp) = match d.retired {
                // A retired slot serves nothing new: no pool, no health check.
                true => match old_site {
                    Some(s) => (s.origin.clone(), None),
                    None => (
                        Arc::new(
                            Origin::build(&d.origin, attempts, &mut Vec::new())
                                .map_err(origin_error)?,
                        ),
                        None,
                    ),
                },
                false => (
                    Arc::new(Origin::build(&d.origin, attempts, checks).map_err(origin_error)?),
                    Origin::build_rtmp(&d.origin, attempts, checks)
                        .map_err(origin_error)?
                        .map(Arc::new),
                ),
            };
            let cache = match (old_site.and_then(|s| s.cache.as_ref()), d.cache.enabled) {
                (Some(c), true) if c.capacity() == d.cache.max_bytes => Some(c.clone()),
                _ => crate::proxy::cache_for(&d.cache),
            };
            built.doors.push(Arc::new(Door {
                name: d.name.clone(),
                limiter: old_door.map(|o| o.limiter.clone()).unwrap_or_default(),
                remote: d.remote_auth.as_ref().map(Remote::new),
                metrics: DomainMetrics::new(&d.name),
            }));
            built.sites.push(Arc::new(Site {
                origin,
                fanout: d.origin.fanout.settings().map(Into::into),
                cache,
                ignore_params: d.cache.ignore_params.clone().into(),
                strip_cookies: d.cache.strip_cookies,
            }));
            built.pools.push(rtmp);
        }
        Ok(built)
    }

    /// Each serving domain's HTTP pool, by name (for `livegate_origin_up`).
    pub fn origins(&self, slots: &[DomainConfig]) -> Vec<(String, Arc<Origin>)> {
        slots
            .iter()
            .zip(&self.sites)
            .filter(|(d, _)| !d.retired)
            .map(|(d, s)| (d.name.clone(), s.origin.clone()))
            .collect()
    }
}

/// The stream registry's facts for each slot.
pub fn infos(slots: &[DomainConfig]) -> Vec<DomainInfo> {
    slots
        .iter()
        .map(|d| DomainInfo {
            name: d.name.clone(),
            active: active_streams(&d.name),
        })
        .collect()
}

/// RTMP's settings from a configuration.
pub fn rtmp_settings(c: &Config) -> RtmpSettings {
    let r = c.rtmp.as_ref();
    RtmpSettings {
        handshake_timeout: Duration::from_millis(r.map_or(10_000, |r| r.handshake_timeout_ms)),
        duplicate: r.map(|r| r.duplicate_publish).unwrap_or_default(),
    }
}

/// The linger of stream sessions a configuration sets.
pub fn linger(c: &Config) -> Duration {
    Duration::from_millis(
        c.notify
            .as_ref()
            .map_or_else(default_linger, |n| n.linger_ms),
    )
}

/// How the last reload went, as `livegate -s reload` reads it: written (durably)
/// beside the PID file by the running process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub pid: u32,
    /// 0 at start, then one more per reload asked (applied or not).
    pub generation: u64,
    pub applied: bool,
    pub message: String,
}

/// Where a server with this PID file writes its [`Status`].
pub fn status_path(pid_file: &str) -> PathBuf {
    PathBuf::from(format!("{pid_file}.reload"))
}

/// Reads a [`Status`], if one is there.
pub fn read_status(path: &Path) -> Option<Status> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_status(path: &Path, status: &Status) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&serde_json::to_vec(status).unwrap_or_default())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Everything a reload replaces, shared with the services that read it.
pub struct Running {
    /// The configuration file.
    pub file: PathBuf,
    /// The configuration in force.
    pub config: tokio::sync::Mutex<Config>,
    pub live: Arc<Live>,
    pub admission: Arc<Admission>,
    pub sites: Arc<ArcSwap<Sites>>,
    pub pools: Arc<ArcSwap<Pools>>,
    pub streams: Arc<Streams>,
    pub notifier: Arc<Notifier>,
    pub origins: Origins,
    pub admin_key: Option<Arc<AdminKey>>,
    /// Each TLS listener's certificates, by address.
    pub certs: Vec<(String, Arc<Certs>)>,
    /// Connection attempts per request (`server.max_retries`).
    pub attempts: usize,
    /// What the reloads themselves keep.
    pub reloads: Reloads,
}

/// The reload service's own state: its status file, how many reloads were
/// asked, and the health checks of the configuration in force.
pub struct Reloads {
    status: PathBuf,
    generation: AtomicU64,
    /// Stops the running health checks (dropped or set: they end).
    checks: std::sync::Mutex<Option<tokio::sync::watch::Sender<bool>>>,
    /// The first configuration's health checks, started with the service.
    first: std::sync::Mutex<Option<Checks>>,
}

impl Reloads {
    /// For a server with `config`, whose origins' health checks are `first`.
    pub fn new(config: &Config, first: Checks) -> Reloads {
        let pid_file = config
            .server
            .pid_file
            .clone()
            .unwrap_or_else(|| crate::server::DEFAULT_PID_FILE.into());
        Reloads {
            status: status_path(&pid_file),
            generation: AtomicU64::new(0),
            checks: std::sync::Mutex::new(None),
            first: std::sync::Mutex::new(Some(first)),
        }
    }
}

/// What a reload did.
#[derive(Debug)]
pub struct Applied {
    /// Settings that changed but need a new process.
    pub pending: Vec<&'static str>,
    /// Open connections cut because the new configuration would refuse them.
    pub cut: u32,
}

impl Running {
    /// Runs `checks` from now on, stopping the ones running before.
    fn run_checks(&self, checks: Checks) {
        let (stop, watch) = tokio::sync::watch::channel(false);
        for c in checks {
            let watch = watch.clone();
            tokio::spawn(async move { c.start(watch).await });
        }
        if let Ok(mut held) = self.reloads.checks.lock() {
            if let Some(old) = held.replace(stop) {
                let _ = old.send(true);
            }
        }
    }

    /// Re-reads the file and applies it; the answer `livegate -s reload` prints.
    pub async fn reload(&self) -> Result<Applied, String> {
        let loaded = config::load(&self.file)
            .and_then(|l| l.runnable(&self.file).map(|()| l))
            .map_err(|e| e.to_string())?;
        self.apply(loaded).await
    }

    /// Applies a loaded configuration: refused whole, changing nothing, if any
    /// part of it does not build.
    pub async fn apply(&self, next: Loaded) -> Result<Applied, String> {
        let mut running = self.config.lock().await;
        let next = next.config;
        let pending = needs_restart(&running, &next);
        // Everything that can fail, first.
        let mut certs = Vec::new();
        for l in next
            .listen
            .iter()
            .chain(next.rtmp.iter().flat_map(|r| &r.listen))
        {
            let (Some(tls), Some((_, c))) =
                (l.tls(), self.certs.iter().find(|(a, _)| a == l.addr()))
            else {
                continue;
            };
            let key = crate::tls::load(tls).map_err(|e| format!("listen {}: {e}", l.addr()))?;
            certs.push((c.clone(), key));
        }
        let admin_key = match (&self.admin_key, &next.admin) {
            (Some(k), Some(a)) => {
                let key = a
                    .key()
                    .and_then(|k| crate::sign::Key::new(&k).map_err(|e| e.to_string()));
                Some((k, key.map_err(|e| format!("admin: {e}"))?))
            }
            _ => None,
        };
        let slots = slots(&self.live.yaml(), &next.domains);
        let saved = self.live.saved().await;
        let snap = snapshot(&slots, &saved)?;
        let (doors, sites) = (self.admission.doors.load_full(), self.sites.load_full());
        let built = Built::new(&slots, Some((&doors, &sites.domains)), self.attempts)?;
        // Then swapped in: the per-slot lists before the rules that route to them.
        let names: Vec<String> = slots.iter().map(|d| d.name.clone()).collect();
        self.streams.set_domains(infos(&slots), linger(&next));
        self.admission.doors.store(Arc::new(built.doors.clone()));
        self.sites.store(Arc::new(Sites {
            domains: built.sites.clone(),
            access_log: next.access_log.as_ref().map(|a| a.format),
        }));
        self.pools.store(Arc::new(Pools::new(
            &names,
            built.pools.clone(),
            rtmp_settings(&next),
        )));
        self.origins.store(Arc::new(built.origins(&slots)));
        self.notifier.set(next.notify.as_ref());
        for (c, key) in certs {
            c.set(key);
        }
        if let Some((k, key)) = admin_key {
            k.set(key).map_err(|e| format!("admin: {e}"))?;
        }
        self.live.reload(slots).await?;
        self.run_checks(built.checks);
        let cut = self.cut_refused(&snap);
        *running = next;
        Ok(Applied { pending, cut })
    }

    /// Cuts the open connections of streams the new configuration would refuse
    /// outright: their domain is gone, or no rule covers their app and scene any
    /// more. (A changed key cuts nobody: they were admitted with a signature
    /// that was valid.)
    fn cut_refused(&self, snap: &crate::state::live::Snapshot) -> u32 {
        let domains = snap.table.domains();
        let mut cut = 0;
        for key in self.streams.open_keys() {
            let Some(d) = domains.get(key.domain) else {
                continue;
            };
            let path = format!("/{}/{}", key.app, key.stream);
            if d.retired || d.entry(key.scene, &path).is_err() {
                let n = self
                    .streams
                    .cut(key.domain, &key.app, &key.stream, Some(key.scene));
                if n > 0 {
                    log::info!(
                        "reload: cut {n} connection(s) of {} /{}/{} ({}): {}",
                        d.name,
                        key.app,
                        key.stream,
                        key.scene.as_str(),
                        match d.retired {
                            true => "the domain is no longer configured",
                            false => "no rule covers its app and scene any more",
                        }
                    );
                }
                cut += n;
            }
        }
        cut
    }

    fn report(&self, applied: bool, message: String) {
        let status = Status {
            pid: std::process::id(),
            generation: self.reloads.generation.load(Ordering::Acquire),
            applied,
            message,
        };
        if let Err(e) = write_status(&self.reloads.status, &status) {
            log::warn!(
                "reload: cannot write {}: {e}",
                self.reloads.status.display()
            );
        }
    }

    async fn on_hangup(&self) {
        self.reloads.generation.fetch_add(1, Ordering::AcqRel);
        let pid = std::process::id();
        match self.reload().await {
            Ok(a) => {
                let mut message = format!("reloaded {}", self.file.display());
                if a.cut > 0 {
                    message.push_str(&format!(
                        "; cut {} connection(s) the new configuration refuses",
                        a.cut
                    ));
                }
                if !a.pending.is_empty() {
                    message.push_str(&format!(
                        "; not applied, needs a new process: {} (run: livegate -u -d -c {} & kill -QUIT {pid})",
                        a.pending.join(", "),
                        self.file.display()
                    ));
                    log::warn!("{message}");
                } else {
                    log::info!("{message}");
                }
                self.report(true, message);
            }
            Err(e) => {
                log::error!("reload refused, the running configuration stays: {e}");
                self.report(false, e);
            }
        }
    }
}

/// The reload service: SIGHUP reloads, SIGUSR1 reopens the log file; it also
/// runs the origin health checks of the configuration in force.
pub struct Reloader {
    pub running: Arc<Running>,
    /// `server.error_log` when daemonised: where stderr goes, reopened on SIGUSR1.
    pub error_log: Option<PathBuf>,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let first = self
            .running
            .reloads
            .first
            .lock()
            .ok()
            .and_then(|mut f| f.take());
        self.running.run_checks(first.unwrap_or_default());
        let (Ok(mut hup), Ok(mut usr1)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
        ) else {
            log::error!("reload: cannot listen for SIGHUP/SIGUSR1; reload is unavailable");
            return;
        };
        self.running.report(true, "started".into());
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = hup.recv() => self.running.on_hangup().await,
                _ = usr1.recv() => reopen(self.error_log.as_deref()),
            }
        }
        if let Ok(mut held) = self.running.reloads.checks.lock() {
            if let Some(stop) = held.take() {
                let _ = stop.send(true);
            }
        }
    }
}

/// Points stdout and stderr at a freshly opened `file` (after logrotate moved
/// the old one away).
fn reopen(file: Option<&Path>) {
    use std::os::fd::AsRawFd;
    let Some(file) = file else {
        log::info!("SIGUSR1: logs go to stderr (not daemonised, or no server.error_log): nothing to reopen");
        return;
    };
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file);
    match opened {
        Ok(f) => {
            // SAFETY: dup2 on descriptors this process owns; `f` stays open until
            // both are duplicated.
            let ok =
                unsafe { libc::dup2(f.as_raw_fd(), 1) >= 0 && libc::dup2(f.as_raw_fd(), 2) >= 0 };
            match ok {
                true => log::info!("SIGUSR1: reopened {}", file.display()),
                false => log::warn!(
                    "SIGUSR1: cannot redirect to {}: {}",
                    file.display(),
                    std::io::Error::last_os_error()
                ),
            }
        }
        Err(e) => log::warn!("SIGUSR1: cannot reopen {}: {e}", file.display()),
    }
}

/// Why `livegate -s reload` could not reload.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{path}: {why}; is livegate running with this configuration (server.pid_file)?")]
    Pid { path: String, why: String },
    #[error("livegate (pid {pid}) did not answer within {secs} s; see its log")]
    Silent { pid: i32, secs: u64 },
    #[error("{0}")]
    Refused(String),
}

/// `livegate -s reload -c FILE`: validates the file as `-t` does (a broken one
/// never reaches the running process), sends the running livegate SIGHUP and
/// waits for its answer. Returns what it said.
pub fn signal_reload(file: &Path) -> Result<String, SignalError> {
    let loaded = config::load(file)?;
    loaded.runnable(file)?;
    let pid_file = loaded
        .config
        .server
        .pid_file
        .clone()
        .unwrap_or_else(|| crate::server::DEFAULT_PID_FILE.into());
    // The running process names itself in its status file (written once it
    // listens for SIGHUP; a foreground process has no PID file).
    let status = status_path(&pid_file);
    let pid_error = |why: String| SignalError::Pid {
        path: status.display().to_string(),
        why,
    };
    const WAIT: u64 = 30;
    let deadline = std::time::Instant::now() + Duration::from_secs(WAIT);
    let starting = std::time::Instant::now() + Duration::from_secs(5);
    let first = loop {
        match read_status(&status) {
            Some(s) => break s,
            None if std::time::Instant::now() > starting => {
                return Err(pid_error("no status: livegate is not running".into()))
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let pid = first.pid as i32;
    let before = first.generation;
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return Err(pid_error(format!("livegate (pid {pid}) is not running")));
    }
    // A daemon whose binary was replaced (a package upgrade) needs a new
    // process to run the new binary: the zero-downtime upgrade, then.
    let daemon = std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == pid.to_string());
    if daemon && binary_replaced(pid) {
        return upgrade(file, pid, &pid_file);
    }
    // SAFETY: kill(2) with the PID the running server wrote.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(pid_error(format!(
            "kill -HUP {pid}: {}",
            std::io::Error::last_os_error()
        )));
    }
    loop {
        match read_status(&status) {
            Some(s) if s.pid as i32 == pid && s.generation > before => {
                return match s.applied {
                    true => Ok(s.message),
                    false => Err(SignalError::Refused(s.message)),
                };
            }
            _ if std::time::Instant::now() > deadline => {
                return Err(SignalError::Silent { pid, secs: WAIT })
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Whether the running process's executable was replaced on disk since it
/// started (Linux marks the old one deleted).
fn binary_replaced(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|p| p.to_string_lossy().ends_with(" (deleted)"))
}

/// The zero-downtime upgrade, from the new binary: a new process started with
/// `-u -d` takes the listening sockets over from `pid`, which drains for its
/// grace period.
fn upgrade(file: &Path, pid: i32, pid_file: &str) -> Result<String, SignalError> {
    let failed = |why: String| SignalError::Refused(format!("upgrade to the new binary: {why}"));
    let exe = std::env::current_exe().map_err(|e| failed(e.to_string()))?;
    let mut new = std::process::Command::new(&exe)
        .args(["-u", "-d", "-c"])
        .arg(file)
        .spawn()
        .map_err(|e| failed(format!("{}: {e}", exe.display())))?;
    // The new process listens on the upgrade socket; then the old one hands over.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) with the PID the running server wrote.
    if unsafe { libc::kill(pid, libc::SIGQUIT) } != 0 {
        let _ = new.kill();
        return Err(failed(format!(
            "kill -QUIT {pid}: {}",
            std::io::Error::last_os_error()
        )));
    }
    let status = new.wait().map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Err(failed(format!(
            "the new process exited with {status}; see server.error_log"
        )));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now: Option<i32> = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse().ok());
        match now {
            Some(n) if n != pid => {
                return Ok(format!(
                    "the binary changed: upgraded without downtime (pid {pid} → {n}; the old process drains for grace_period_seconds)"
                ))
            }
            _ if std::time::Instant::now() > deadline => return Err(SignalError::Silent { pid, secs: 30 }),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str, peer: &str) -> DomainConfig {
        let text = format!("name: {name}\norigin: {{ peers: [\"{peer}\"] }}\n");
        serde_yaml::from_str(&text).unwrap()
    }

    #[test]
    fn slots_keep_their_domain_and_only_grow() {
        let running = vec![
            domain("a.example.com", "127.0.0.1:1"),
            domain("b.example.com", "127.0.0.1:2"),
        ];
        let next = vec![
            domain("c.example.com", "127.0.0.1:3"),
            domain("A.example.com.", "127.0.0.1:9"),
        ];
        let s = slots(&running, &next);
        let seen: Vec<_> = s
            .iter()
            .map(|d| (d.name.as_str(), d.retired, d.origin.peers[0].as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("A.example.com.", false, "127.0.0.1:9"),
                ("b.example.com", true, "127.0.0.1:2"),
                ("c.example.com", false, "127.0.0.1:3"),
            ]
        );
        // A retired domain that comes back takes its old slot again.
        let back = slots(&s, &[domain("b.example.com", "127.0.0.1:5")]);
        assert_eq!(back.len(), 3);
        assert!(!back[1].retired && back[0].retired && back[2].retired);
    }

    #[test]
    fn listeners_and_the_server_section_need_a_new_process() {
        let parse = |extra: &str| {
            Config::parse(&format!(
                "listen: [\"127.0.0.1:8080\"]\n{extra}domains:\n  - {{ name: a.example.com, origin: {{ peers: [\"127.0.0.1:1\"] }} }}\n"
            ))
            .unwrap()
        };
        let base = parse("");
        assert!(needs_restart(&base, &parse("access_log: { format: json }\n")).is_empty());
        assert_eq!(
            needs_restart(&base, &parse("server: { threads: 3 }\n")),
            ["server"]
        );
        let moved = Config::parse("listen: [\"127.0.0.1:8081\"]\ndomains: []\n").unwrap();
        assert_eq!(needs_restart(&base, &moved), ["listen"]);
    }
}

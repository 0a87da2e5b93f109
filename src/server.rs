//! Assembling and running the Pingora server: settings, origin pools, listeners.

use crate::admission::Admission;
use crate::reload::{self, Built, Reloader, Reloads, Running};
use crate::rtmp::{Pools, RtmpGate};
use crate::tls::Certs;
use std::path::Path;
use std::sync::Arc;

use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use thiserror::Error;

use std::time::Duration;

use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::services::background::background_service;

use crate::admin::{Admin, AdminKey};
use crate::config::{Http2, StateBackend};
use crate::config::{Loaded, ServerSection};
use crate::conn::{Connections, Guard};
use crate::demo::DemoOrigin;
use crate::hls::Secret;
use crate::metrics::{OriginHealth, Origins};
use crate::notify::Notifier;
use crate::proxy::{Gate, Sites};
use crate::sign::Key;
use crate::state::fleet::{host_name, Fleet};
use crate::state::live::{Live, Store};
use crate::state::sync::{self, FleetWatch};
use crate::streams::Streams;
use crate::watchdog::SigintWatchdog;

/// How long open streams may drain on stop or upgrade, unless configured.
pub const DEFAULT_GRACE_SECONDS: u64 = 30;

/// Read buffer of plain-HTTP client connections (see `run`): none. Pingora reads
/// a request head into its own buffer, so a buffer under it saves no syscall
/// (the same count per proxied request, by `strace -c`) and costs 4 KB for as
/// long as a connection lives, idle or streaming.
pub const PLAIN_READ_BUFFER: usize = 0;

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("the configuration has no listen address; add e.g. listen: [\"0.0.0.0:8080\"]")]
    NoListen,
    #[error("{what} {addr}: {source}; another process (another livegate?) holds it: stop it or choose another address")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Build(String),
    #[error("listen {addr}: TLS certificate or key: {message}")]
    Tls { addr: String, message: String },
    #[error("the state (rules, forbids, access set through the management API): {0}")]
    State(String),
    #[error("admin: {0}")]
    Admin(String),
    #[error("the HLS token secret under {dir}: {source}; state_dir must be writable")]
    Hls {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Pingora's settings from the `server:` section. livegate's defaults are the
/// fast ones measured on a small edge: one thread per core, no work stealing.
pub fn server_conf(s: &ServerSection) -> ServerConf {
    let mut c = ServerConf {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        work_stealing: false,
        pid_file: DEFAULT_PID_FILE.into(),
        upgrade_sock: "/tmp/livegate_upgrade.sock".into(),
        ..ServerConf::default()
    };
    macro_rules! take {
        ($($field:ident),*) => { $( if let Some(v) = &s.$field { c.$field = v.clone(); } )* };
    }
    take!(
        threads,
        work_stealing,
        listener_tasks_per_fd,
        pid_file,
        upgrade_sock,
        upstream_keepalive_pool_size,
        max_retries,
        daemon_wait_for_ready
    );
    c.error_log = s.error_log.clone().or(c.error_log);
    c.user = s.user.clone().or(c.user);
    c.group = s.group.clone().or(c.group);
    // Pingora's default grace period is 300 s: longer than any service manager
    // waits for a stop. livegate's is 30 s (the unit allows 60).
    c.grace_period_seconds = s.grace_period_seconds.or(Some(DEFAULT_GRACE_SECONDS));
    c.graceful_shutdown_timeout_seconds = s
        .graceful_shutdown_timeout_seconds
        .or(c.graceful_shutdown_timeout_seconds);
    c
}

fn opt(daemon: bool, upgrade: bool) -> Opt {
    Opt {
        upgrade,
        daemon,
        nocapture: false,
        test: false,
        conf: None,
    }
}

/// Binds (and releases) every address the server will listen on, so that an
/// address in use is reported before anything starts.
fn check_free(config: &crate::config::Config) -> Result<(), RunError> {
    let proxy = config.listen.iter().map(|l| ("listen", l.addr()));
    let admin = config
        .admin
        .iter()
        .map(|a| ("admin.listen", a.listen.as_str()));
    let metrics = config
        .metrics
        .iter()
        .map(|m| ("metrics.listen", m.listen.as_str()));
    let rtmp = config
        .rtmp
        .iter()
        .flat_map(|r| r.listen.iter().map(|l| ("rtmp.listen", l.addr())));
    for (what, addr) in proxy.chain(admin).chain(metrics).chain(rtmp) {
        std::net::TcpListener::bind(addr).map_err(|source| RunError::Bind {
            what,
            addr: addr.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// Adds `listeners` to a service: plain ones with `plain` buffering, TLS ones
/// with certificates a reload can replace (added to `certs` by address), and
/// offering h2 by ALPN where `http` and the listener say so.
fn add_listeners<'a, A: pingora_core::apps::ServerApp + Send + Sync + 'static>(
    service: &mut Service<A>,
    listeners: impl IntoIterator<Item = &'a crate::config::Listen>,
    plain: L4BufferSettings,
    http: bool,
    certs: &mut Vec<(String, Arc<Certs>)>,
) -> Result<(), RunError> {
    for l in listeners {
        match l.tls() {
            None => service.add_listener(ListenerConfig::tcp(l.addr()).l4_buffer(plain)),
            Some(tls) => {
                let tls_error = |message| RunError::Tls {
                    addr: l.addr().into(),
                    message,
                };
                let c = Certs::new(tls).map_err(tls_error)?;
                let mut settings = c.settings(tls).map_err(tls_error)?;
                if http && l.http2() == Http2::Alpn {
                    settings.enable_h2();
                }
                service.add_tls_with_settings(l.addr(), None, settings);
                certs.push((l.addr().to_owned(), c));
            }
        }
    }
    Ok(())
}

/// Where Pingora writes its PID unless `server.pid_file` says otherwise.
pub const DEFAULT_PID_FILE: &str = "/tmp/livegate.pid";

/// Runs the proxy until a signal stops it; `file` is re-read on reload.
pub fn run(loaded: Loaded, file: &Path, daemon: bool, upgrade: bool) -> Result<(), RunError> {
    let config = &loaded.config;
    if config.listen.is_empty() {
        return Err(RunError::NoListen);
    }
    // A taken port is one clear error now, not Pingora's retries and panic later.
    // (An upgrade takes its sockets over from the running process instead.)
    if !upgrade {
        check_free(config)?;
    }
    // Until the reload service listens for them, SIGHUP (reload) and SIGUSR1
    // (reopen logs) must not end the process, as their default actions do.
    // SAFETY: setting a signal's disposition to "ignore" before any thread runs.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
    }
    let mut server =
        Server::new_with_opt_and_conf(opt(daemon, upgrade), server_conf(&config.server));
    server.bootstrap();
    let attempts = server.configuration.max_retries.max(1);

    let (live, hls_secret, fleet) = open_state(&loaded)?;
    let slots = live.yaml();
    let built = Built::new(&slots, None, attempts).map_err(RunError::Build)?;
    let names: Vec<String> = slots.iter().map(|d| d.name.clone()).collect();
    let origins: Origins = Arc::new(arc_swap::ArcSwap::from_pointee(built.origins(&slots)));
    if let Err(e) = OriginHealth::register(origins.clone()) {
        log::warn!("livegate_origin_up is unavailable: {e}");
    }
    if let Some(m) = &config.metrics {
        let mut prometheus = pingora_prometheus::prometheus_http_service();
        prometheus.add_tcp(&m.listen);
        server.add_service(prometheus);
    }
    let queue = config.notify.as_ref().map_or(1024, |n| n.queue);
    let notifier = {
        let service = background_service("notify", Notifier::new(queue, config.notify.as_ref()));
        let task = service.task();
        server.add_service(service);
        task
    };
    server.add_service(background_service("SIGINT watchdog", SigintWatchdog));
    let sweeper = background_service(
        "stream sessions",
        Streams::new(
            reload::linger(config),
            reload::infos(&slots),
            notifier.clone(),
        ),
    );
    let streams = sweeper.task();
    server.add_service(sweeper);
    let admin_key = match &config.admin {
        Some(a) => {
            let key = a.key().map_err(RunError::Admin)?;
            let key = Key::new(&key).map_err(|e| RunError::Admin(e.to_string()))?;
            let key = Arc::new(AdminKey::new(key).map_err(|e| RunError::Admin(e.to_string()))?);
            let admin = Admin::new(key.clone(), live.clone(), streams.clone());
            let mut service = Service::new("management API".into(), admin);
            service.add_tcp(&a.listen);
            server.add_service(service);
            Some(key)
        }
        None => None,
    };
    if let Some(fleet) = fleet {
        let watch = FleetWatch {
            fleet,
            live: live.clone(),
            streams: streams.clone(),
        };
        server.add_service(background_service("etcd watch", watch));
    }
    let admission = Arc::new(Admission {
        live: live.clone(),
        doors: arc_swap::ArcSwap::from_pointee(built.doors),
        hls_secret,
    });
    let sites = Arc::new(arc_swap::ArcSwap::from_pointee(Sites {
        domains: built.sites,
        access_log: config.access_log.as_ref().map(|a| a.format),
    }));
    let pools = Arc::new(arc_swap::ArcSwap::from_pointee(Pools::new(
        &names,
        built.pools,
        reload::rtmp_settings(config),
    )));
    let hub: crate::fanout::SharedHub = Default::default();
    let connections = Arc::new(Connections::new(config.server.max_connections));
    let mut certs = Vec::new();
    // Plain listeners that speak h2c are a service of their own (Pingora sets
    // h2c per service); every service shares the same gate state.
    let (h2c, others): (Vec<_>, Vec<_>) =
        config.listen.iter().partition(|l| l.http2() == Http2::H2c);
    for (name, listeners, h2c) in [("livegate", others, false), ("livegate h2c", h2c, true)] {
        if listeners.is_empty() {
            continue;
        }
        let gate = Gate {
            admission: admission.clone(),
            sites: sites.clone(),
            streams: streams.clone(),
            notifier: notifier.clone(),
            hub: hub.clone(),
        };
        let mut http = pingora_proxy::http_proxy(&server.configuration, gate);
        if h2c {
            let mut options = pingora_core::apps::HttpServerOptions::default();
            options.h2c = true;
            http.server_options = Some(options);
        }
        let guarded = Guard::new(
            http,
            connections.clone(),
            Duration::from_millis(config.server.header_timeout_ms),
        );
        let mut proxy = Service::new(name.into(), guarded);
        // Plain HTTP reads request heads and ingest bodies straight into Pingora's
        // own buffers: no read buffer keeps idle keep-alive connections and
        // viewers cheap (Pingora's 64 KB default is sized for TLS records; TLS
        // listeners keep it).
        add_listeners(
            &mut proxy,
            listeners,
            L4BufferSettings::default().read(PLAIN_READ_BUFFER),
            true,
            &mut certs,
        )?;
        server.add_service(proxy);
    }
    if let Some(r) = &config.rtmp {
        let gate = RtmpGate::new(
            admission.clone(),
            pools.clone(),
            streams.clone(),
            notifier.clone(),
            connections,
        );
        let mut service = Service::new("rtmp".into(), gate);
        // Sessions read and write through their own buffers (bounded before
        // admission): Pingora's would be a second copy.
        add_listeners(
            &mut service,
            &r.listen,
            L4BufferSettings::unbuffered(),
            false,
            &mut certs,
        )?;
        server.add_service(service);
    }
    let running = Running {
        file: file.to_owned(),
        config: tokio::sync::Mutex::new(config.clone()),
        live,
        admission,
        sites,
        pools,
        streams,
        notifier,
        origins,
        admin_key,
        certs,
        attempts,
        reloads: Reloads::new(config, built.checks),
    };
    let reloader = Reloader {
        running: Arc::new(running),
        error_log: config
            .server
            .error_log
            .as_ref()
            .filter(|_| daemon)
            .map(Into::into),
    };
    server.add_service(background_service("reload", reloader));
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    // Every address was bound once above (or is handed over by the running
    // process on an upgrade); Pingora binds them again as it starts.
    log::info!(
        "livegate starting on {:?}{}",
        config.listen.iter().map(|l| l.addr()).collect::<Vec<_>>(),
        if upgrade {
            ", taking the sockets over from the running process"
        } else {
            ": every address is free"
        }
    );
    server.run_forever()
}

/// The live state, the HLS token secret and, in fleet mode, the fleet: from
/// `state_dir` (file), or from etcd — or its local snapshot while etcd is
/// unreachable.
type Opened = (Arc<Live>, Secret, Option<Arc<Fleet>>);

fn open_state(loaded: &Loaded) -> Result<Opened, RunError> {
    let config = &loaded.config;
    let edge = config.state.edge.clone().unwrap_or_else(host_name);
    let yaml = config.domains.clone();
    let dir = config.state_dir.clone();
    match config.state.backend {
        StateBackend::File => {
            let secret = crate::hls::load_secret(&dir).map_err(|e| RunError::Hls {
                dir: dir.clone(),
                source: e,
            })?;
            let live = Live::new(yaml, dir, loaded.saved.clone(), Store::File, edge)
                .map_err(RunError::State)?;
            Ok((Arc::new(live), secret, None))
        }
        StateBackend::Etcd => {
            let state_error = |e: crate::state::StateError| RunError::State(e.to_string());
            let boot = sync::boot(&config.state, &dir, &yaml).map_err(state_error)?;
            let fleet = Arc::new(Fleet::new(&config.state, &dir, boot.secret, boot.revision));
            fleet
                .save_snapshot(&boot.state, boot.revision)
                .map_err(state_error)?;
            crate::metrics::state_revision(boot.revision);
            crate::metrics::state_fleet(true);
            let store = Store::Etcd(fleet.clone());
            let live = Live::new(yaml, dir, boot.state, store, edge).map_err(RunError::State)?;
            Ok((Arc::new(live), Secret::new(boot.secret), Some(fleet)))
        }
    }
}

/// Runs the synthetic demo origin on `addr` until a signal stops it.
pub fn run_demo_origin(addr: &str) -> ! {
    // Per address, so two demos never share a file.
    let tag: String = addr
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let conf = ServerConf {
        threads: 1,
        pid_file: format!("/tmp/livegate-demo-origin-{tag}.pid"),
        upgrade_sock: format!("/tmp/livegate-demo-origin-{tag}.sock"),
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    // A taken address is one line and exit 1, not Pingora's retries and panic.
    if let Err(e) = std::net::TcpListener::bind(addr) {
        eprintln!("livegate demo-origin: {addr}: {e}; choose another with --listen");
        std::process::exit(1);
    }
    let mut server = Server::new_with_opt_and_conf(opt(false, false), conf);
    server.bootstrap();
    server.add_service(background_service("SIGINT watchdog", SigintWatchdog));
    let mut service = Service::new("demo origin".into(), DemoOrigin);
    service.add_tcp(addr);
    server.add_service(service);
    log::info!("demo origin listening on {addr}");
    server.run_forever()
}

//! Assembling and running the Pingora server: settings, origin pools, listeners.

use std::sync::Arc;

use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use thiserror::Error;

use crate::auth::remote::Remote;
use crate::config::{Loaded, ServerSection};
use crate::demo::DemoOrigin;
use crate::origin::Origin;
use crate::proxy::Gate;

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("the configuration has no listen address; add e.g. listen: [\"0.0.0.0:8080\"]")]
    NoListen,
    #[error("domain {domain}: origin peers: {source}")]
    Origin {
        domain: String,
        source: std::io::Error,
    },
    #[error("listen {addr}: TLS certificate or key: {message}")]
    Tls { addr: String, message: String },
}

/// Pingora's settings from the `server:` section. livegate's defaults are the
/// fast ones measured on a small edge: one thread per core, no work stealing.
pub fn server_conf(s: &ServerSection) -> ServerConf {
    let mut c = ServerConf {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        work_stealing: false,
        pid_file: "/tmp/livegate.pid".into(),
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
    c.grace_period_seconds = s.grace_period_seconds.or(c.grace_period_seconds);
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

/// Runs the proxy until a signal stops it.
pub fn run(loaded: Loaded, daemon: bool, upgrade: bool) -> Result<(), RunError> {
    let config = &loaded.config;
    if config.listen.is_empty() {
        return Err(RunError::NoListen);
    }
    let mut server =
        Server::new_with_opt_and_conf(opt(daemon, upgrade), server_conf(&config.server));
    server.bootstrap();

    let mut origins = Vec::with_capacity(config.domains.len());
    for d in &config.domains {
        let origin =
            Origin::build(&d.origin, &mut server, &d.name).map_err(|source| RunError::Origin {
                domain: d.name.clone(),
                source,
            })?;
        origins.push(origin);
    }
    let remotes = config
        .domains
        .iter()
        .map(|d| d.remote_auth.as_ref().map(Remote::new))
        .collect();
    let gate = Gate {
        table: Arc::new(loaded.table),
        origins,
        remotes,
    };
    let mut proxy =
        pingora_proxy::http_proxy_service_with_name(&server.configuration, gate, "livegate");
    for l in &config.listen {
        match l.tls() {
            None => proxy.add_tcp(l.addr()),
            Some(tls) => proxy
                .add_tls(
                    l.addr(),
                    &tls.cert.to_string_lossy(),
                    &tls.key.to_string_lossy(),
                )
                .map_err(|e| RunError::Tls {
                    addr: l.addr().into(),
                    message: e.to_string(),
                })?,
        }
    }
    server.add_service(proxy);
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    log::info!(
        "livegate listening on {:?}",
        config.listen.iter().map(|l| l.addr()).collect::<Vec<_>>()
    );
    server.run_forever()
}

/// Runs the synthetic demo origin on `addr` until a signal stops it.
pub fn run_demo_origin(addr: &str) -> ! {
    let conf = ServerConf {
        threads: 1,
        pid_file: "/tmp/livegate-demo-origin.pid".into(),
        upgrade_sock: "/tmp/livegate-demo-origin.sock".into(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt(false, false), conf);
    server.bootstrap();
    let mut service = Service::new("demo origin".into(), DemoOrigin);
    service.add_tcp(addr);
    server.add_service(service);
    log::info!("demo origin listening on {addr}");
    server.run_forever()
}

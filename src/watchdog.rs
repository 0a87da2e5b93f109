//! SIGINT always ends the process.
//!
//! Pingora's fast shutdown (SIGINT) stops its runtimes without telling the accept
//! loops, and now and then a loop keeps failing `accept()` on a runtime that is
//! shutting down ("A Tokio 1.x context was found, but it is being shutdown") and
//! the process never exits — seen here in about one SIGINT in eight, with a viewer
//! connected. This background service listens for SIGINT beside Pingora and, if the
//! process is still alive two seconds later, exits it. (It runs as a Pingora
//! service, so it exists after daemonising; SIGTERM's graceful path is untouched.)

use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

/// How long Pingora gets to exit on its own after SIGINT.
const GRACE: Duration = Duration::from_secs(2);

/// The watchdog service.
pub struct SigintWatchdog;

#[async_trait]
impl BackgroundService for SigintWatchdog {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // A thread and runtime of its own: Pingora's runtimes are what may hang.
        let spawned = std::thread::Builder::new()
            .name("sigint-watchdog".into())
            .spawn(|| {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let interrupted = rt.block_on(async {
                    match signal(SignalKind::interrupt()) {
                        Ok(mut s) => s.recv().await.is_some(),
                        Err(_) => false,
                    }
                });
                if interrupted {
                    std::thread::sleep(GRACE);
                    eprintln!("livegate: still running {GRACE:?} after SIGINT; exiting");
                    std::process::exit(0);
                }
            });
        if let Err(e) = spawned {
            log::warn!("no SIGINT watchdog: {e}");
        }
    }
}

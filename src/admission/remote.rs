//! The remote-auth step of admission: ask the domain's auth server (or its
//! cache) about an admitted request or session, and apply the timeout action.

use std::time::Instant;

use log::warn;

use super::{Admission, Admitted, Ask};
use crate::auth::remote::{Asked, Outcome};
use crate::config::TimeoutAction;
use crate::metrics::{metrics, RemoteOutcome};
use crate::verdict::{Failure, Reason};

impl Admission {
    /// Remote authentication for what [`Admission::check`] admitted, when its
    /// domain has it and the request is in scope.
    pub(super) async fn remote(&self, ask: &Ask<'_>, a: &mut Admitted<'_>) -> Result<(), Failure> {
        let site = self.door(a.domain);
        let Some(remote) = &site.remote else {
            return Ok(());
        };
        if !remote.in_scope(ask.path) {
            return Ok(());
        }
        let asked = Asked {
            domain: &site.name,
            method: ask.method,
            path: ask.path,
            query: ask.query,
            headers: ask.headers,
            host: ask.host,
            client_ip: ask.client_ip,
            https: ask.https,
            session: a.session.as_deref(),
        };
        let started = Instant::now();
        let outcome = remote.check(&asked).await;
        metrics()
            .remote_seconds
            .observe(started.elapsed().as_secs_f64());
        let counted = |fresh, cached| {
            if cached {
                RemoteOutcome::CacheHit
            } else {
                fresh
            }
        };
        let (reason, detail) = match outcome {
            Outcome::Allowed { headers, cached } => {
                site.metrics.remote(counted(RemoteOutcome::Allow, cached));
                a.upstream_headers = (!headers.is_empty()).then_some(headers);
                return Ok(());
            }
            Outcome::Denied { status, cached } => {
                site.metrics.remote(counted(RemoteOutcome::Deny, cached));
                return Err(Failure::with(
                    Reason::RemoteDenied,
                    format!("the auth server answered {status}"),
                ));
            }
            Outcome::TimedOut => {
                site.metrics.remote(RemoteOutcome::Timeout);
                (
                    Reason::RemoteTimeout,
                    "the auth server did not answer in time".to_owned(),
                )
            }
            Outcome::Failed(why) => {
                site.metrics.remote(RemoteOutcome::Error);
                (
                    Reason::RemoteError,
                    format!("the auth server failed: {why}"),
                )
            }
        };
        match remote.action {
            TimeoutAction::Allow => {
                warn!(
                    "{reason}, timeout action allow: letting {} through ({detail})",
                    self.live.load().redact.target(ask.path, "")
                );
                Ok(())
            }
            TimeoutAction::Block => Err(Failure::with(reason, detail)),
        }
    }
}

//! The remote-auth step of the request path: ask the domain's auth server (or its
//! cache) about an admitted request, and apply the timeout action.

use std::time::Instant;

use log::warn;
use pingora_proxy::Session;

use super::request::host_header;
use super::{Ctx, Gate};
use crate::auth::remote::{Asked, Outcome};
use crate::config::TimeoutAction;
use crate::metrics::{metrics, RemoteOutcome};
use crate::verdict::{Failure, Reason};

impl Gate {
    /// Remote authentication for an admitted request, when its domain has it and
    /// the request is in scope.
    pub(super) async fn ask_remote(&self, session: &Session, ctx: &mut Ctx) -> Result<(), Failure> {
        let Some(d) = ctx.domain else { return Ok(()) };
        let site = &self.sites[d];
        let Some(remote) = &site.remote else {
            return Ok(());
        };
        let req = session.req_header();
        if !remote.in_scope(req.uri.path()) {
            return Ok(());
        }
        let asked = Asked {
            domain: &site.name,
            method: &req.method,
            path: req.uri.path(),
            query: req.uri.query().unwrap_or(""),
            headers: &req.headers,
            host: host_header(req).unwrap_or(""),
            client_ip: ctx.client_ip.as_str(),
            https: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
            session: ctx.session.as_deref(),
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
                ctx.upstream_headers = (!headers.is_empty()).then_some(headers);
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
                    self.live.load().redact.target(req.uri.path(), "")
                );
                Ok(())
            }
            TimeoutAction::Block => Err(Failure::with(reason, detail)),
        }
    }
}

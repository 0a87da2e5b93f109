//! What the request path reports: verdict metrics, denials (status, log line,
//! `auth_denied` event) and the access log. Every line that names a request goes
//! through [`crate::redact::Redact`].

use http::HeaderValue;
use log::info;
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use super::request::{host_header, raw_target};
use super::{Ctx, Gate};
use crate::access_log::{self, Entry};
use crate::config::EventKind;
use crate::notify::Event;
use crate::route::{host_name, Route, Scene};
use crate::unix_now;
use crate::verdict::Failure;

impl Gate {
    /// Answers a refused request: the status, the reason in the log (never in the
    /// body), and an `auth_denied` event when wanted.
    pub(super) async fn deny(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        f: Failure,
    ) -> Result<bool> {
        let req = session.req_header();
        let target = raw_target(req);
        let path = target.split(['?', '#']).next().unwrap_or("");
        info!(
            "denied {} {}: {} ({})",
            req.method,
            self.admission.live.load().redact.target(path, ""),
            f.reason,
            f.detail
        );
        if self.notifier.wants(EventKind::AuthDenied) {
            let n = &self.notifier;
            let route = Route::of_path(path);
            let domain = ctx.domain.map_or_else(
                || host_name(host_header(req).unwrap_or("")).to_owned(),
                |d| self.door(d).name.clone(),
            );
            n.emit(Event {
                event_type: EventKind::AuthDenied,
                domain,
                app: route.app.to_owned(),
                stream: route.stream.to_owned(),
                scene: ctx.scene.map_or("none", Scene::as_str),
                client_ip: ctx.client_ip.as_str().to_owned(),
                time: unix_now(),
                reason: Some(f.reason.as_str()),
            });
        }
        ctx.stream = None;
        ctx.reason = Some(f.reason);
        // A plain answer, with CORS headers so a browser player can see it.
        let mut resp = ResponseHeader::build(f.reason.status(), Some(4))?;
        resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
        resp.insert_header(http::header::CACHE_CONTROL, "private, no-store")?;
        self.cors_headers(&mut resp, ctx)?;
        session.write_response_header(Box::new(resp), true).await?;
        Ok(true)
    }

    pub(super) fn log_access(&self, req: &RequestHeader, status: u16, bytes: usize, ctx: &Ctx) {
        let Some(format) = self.sites.load().access_log else {
            return;
        };
        let header = |name| {
            req.headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .unwrap_or("")
        };
        let target = raw_target(req);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let origin = ctx.peer.map(|p| p.to_string());
        let started = std::time::SystemTime::now() - ctx.started.elapsed();
        let started_ms = started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let entry = Entry {
            time_ms: started_ms,
            client: ctx.client_ip.as_str(),
            host: host_header(req).unwrap_or(""),
            method: req.method.as_str(),
            path,
            query,
            version: match req.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
            status,
            bytes,
            referer: header(http::header::REFERER),
            user_agent: header(http::header::USER_AGENT),
            duration: ctx.started.elapsed(),
            origin: origin.as_deref(),
            reason: ctx.reason,
        };
        let redact = &self.admission.live.load().redact;
        info!(target: "access", "{}", access_log::line(format, redact, &entry));
    }

    /// What Pingora's error lines say of a request: its target with auth values
    /// and signature-shaped segments hidden (the default prints them).
    pub(super) fn summary(&self, session: &Session) -> String {
        self.summary_of(session.req_header())
    }

    /// [`Gate::summary`] of a request head.
    pub(super) fn summary_of(&self, req: &RequestHeader) -> String {
        let redact = &self.admission.live.load().redact;
        format!(
            "{} {}, Host: {}",
            req.method,
            redact.url(&raw_target(req)),
            redact.text(host_header(req).unwrap_or("-"))
        )
    }

    /// A request's target as every log line names it: redacted.
    pub(super) fn shown(&self, req: &pingora_http::RequestHeader) -> String {
        self.admission.live.load().redact.url(&raw_target(req))
    }
}

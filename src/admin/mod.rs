//! The management API, on its own listener inside the same Pingora server (so a
//! zero-downtime upgrade hands its socket over too).
//!
//! Every call is signed like Tencent Cloud's API and livegate's own notifications:
//! `t` (expiry, Unix seconds, at most a day ahead) and `sign = md5(admin.key + t)`
//! as query parameters, compared in constant time. Answers are JSON; errors are
//! `{"code": …, "message": …}` with the codes of `design.md`. Calls are rate
//! limited per class with `pingora-limits`: 100/s for `/v1/auth/check`, 10/s for
//! writes, 100/s for other reads.
//!
//! This module is the shell (authentication, routing, limits, bodies, answers);
//! [`calls`] does the work. The web console's files ([`crate::console`]) are
//! served beside it, unauthenticated: they hold no data, and every call the
//! console makes is signed like any other.

mod calls;
mod error;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, Response};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use pingora_limits::rate::Rate;

use crate::sign::tsign::{Tsign, TsignError};
use crate::sign::{Key, RuleError};
use crate::state::live::Live;
use crate::streams::Streams;
use crate::unix_now;
pub use error::{ApiError, Code};

/// Bodies larger than this are refused (413 `PayloadTooLarge`).
pub const MAX_BODY: usize = 64 * 1024;
/// How far ahead a call's `t` may be: a leaked sign must not live forever.
pub const MAX_AHEAD: i64 = 86_400;

/// The calls, as routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Check,
    Rules,
    Forbid,
    Resume,
    Drop,
    Forbidden,
    Online,
    Connections,
    State,
    Access,
}

/// Which rate limit a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Check,
    Write,
    Read,
}

impl Class {
    const fn limit(self) -> isize {
        match self {
            Class::Check => 100,
            Class::Write => 10,
            Class::Read => 100,
        }
    }
}

/// The key the management API checks calls with: replaced by a reload.
pub struct AdminKey(arc_swap::ArcSwap<Tsign>);

impl AdminKey {
    pub fn new(key: Key) -> Result<AdminKey, RuleError> {
        Ok(AdminKey(arc_swap::ArcSwap::from_pointee(Tsign::new(key)?)))
    }

    /// Calls signed with `key` pass from now on; the old key's do not.
    pub fn set(&self, key: Key) -> Result<(), RuleError> {
        self.0.store(Arc::new(Tsign::new(key)?));
        Ok(())
    }
}

/// The management API.
pub struct Admin {
    tsign: Arc<AdminKey>,
    live: Arc<Live>,
    streams: Arc<Streams>,
    router: matchit::Router<Call>,
    rate: Rate,
}

/// What a call answers: a status and a JSON body.
pub type Answer = Result<(u16, serde_json::Value), ApiError>;

impl Admin {
    pub fn new(key: Arc<AdminKey>, live: Arc<Live>, streams: Arc<Streams>) -> Admin {
        let mut router = matchit::Router::new();
        for (path, call) in [
            ("/v1/auth/check", Call::Check),
            ("/v1/auth/rules", Call::Rules),
            ("/v1/streams/forbid", Call::Forbid),
            ("/v1/streams/resume", Call::Resume),
            ("/v1/streams/drop", Call::Drop),
            ("/v1/streams/forbidden", Call::Forbidden),
            ("/v1/streams/online", Call::Online),
            ("/v1/streams/connections", Call::Connections),
            ("/v1/state", Call::State),
            ("/v1/access", Call::Access),
        ] {
            // The paths are literals: inserting them cannot conflict.
            let _ = router.insert(path, call);
        }
        Admin {
            tsign: key,
            live,
            streams,
            router,
            rate: Rate::new(Duration::from_secs(1)),
        }
    }

    /// Checks `t` and `sign`: past or more than a day ahead → `TimeExpired`.
    fn authenticate(&self, query: &str, now: i64) -> Result<(), ApiError> {
        self.tsign
            .0
            .load()
            .verify(query, now)
            .map_err(|e| match e {
                TsignError::SignInvalid => ApiError::new(Code::SignInvalid, "sign invalid"),
                TsignError::TimeExpired => ApiError::new(Code::TimeExpired, "time expired"),
            })?;
        let t = calls::param(query, "t").and_then(|t| t.parse::<i64>().ok());
        match t {
            Some(t) if t <= now.saturating_add(MAX_AHEAD) => Ok(()),
            _ => Err(ApiError::new(
                Code::TimeExpired,
                "t is more than a day ahead: sign calls with a short expiry",
            )),
        }
    }

    fn limit(&self, class: Class) -> Result<(), ApiError> {
        match self.rate.observe(&class, 1) > class.limit() {
            true => Err(ApiError::new(
                Code::RequestLimitExceeded,
                format!("more than {} such calls per second", class.limit()),
            )),
            false => Ok(()),
        }
    }

    /// Authenticates, routes, limits and runs one call.
    async fn answer(&self, session: &mut ServerSession) -> Answer {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        let query = req.uri.query().unwrap_or("").to_owned();
        let now = unix_now();
        self.authenticate(&query, now)?;
        let call = *self
            .router
            .at(&path)
            .map_err(|_| ApiError::new(Code::ResourceNotFound, format!("no call at {path}")))?
            .value;
        let class = match (call, &method) {
            (Call::Check, _) => Class::Check,
            (_, &Method::GET) => Class::Read,
            _ => Class::Write,
        };
        self.limit(class)?;
        let body = match method {
            Method::POST | Method::PUT | Method::PATCH => read_body(session).await?,
            _ => Vec::new(),
        };
        let c = calls::Ctx {
            live: &self.live,
            streams: &self.streams,
            query: &query,
            body: &body,
            now,
        };
        match (call, method) {
            (Call::Check, Method::GET) => c.check(),
            (Call::Rules, Method::PUT) => c.put_rule().await,
            (Call::Rules, Method::DELETE) => c.delete_rule().await,
            (Call::Rules, Method::PATCH) => c.patch_rule().await,
            (Call::Rules, Method::GET) => c.rules().await,
            (Call::Forbid, Method::POST) => c.forbid().await,
            (Call::Resume, Method::POST) => c.resume().await,
            (Call::Drop, Method::POST) => c.drop_stream(),
            (Call::Forbidden, Method::GET) => c.forbidden(),
            (Call::Online, Method::GET) => c.online(),
            (Call::Connections, Method::GET) => c.connections(),
            (Call::State, Method::GET) => Ok(c.state().await),
            (Call::Access, Method::PUT) => c.put_access().await,
            (Call::Access, Method::GET) => c.access().await,
            (Call::Access, Method::DELETE) => c.delete_access().await,
            (_, m) => Err(ApiError::new(
                Code::MethodNotAllowed,
                format!("{m} is not allowed on {path}"),
            )),
        }
    }
}

/// The request body, at most [`MAX_BODY`] bytes.
async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    loop {
        let chunk = session.read_request_body().await.map_err(|e| {
            ApiError::new(
                Code::InvalidParam,
                format!("the body could not be read: {e}"),
            )
        })?;
        let Some(chunk) = chunk else { return Ok(body) };
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!("the body is larger than {MAX_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let read = matches!(req.method, Method::GET | Method::HEAD);
        if read && crate::console::owns(req.uri.path()) {
            return crate::console::serve(req.uri.path());
        }
        let (status, body) = match self.answer(session).await {
            Ok(ok) => ok,
            Err(e) => {
                let req = session.req_header();
                log::info!(
                    "admin {} {}: {} ({})",
                    req.method,
                    req.uri.path(),
                    e.code.as_str(),
                    e.message
                );
                (e.code.status(), e.body())
            }
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONTENT_LENGTH, body.len());
        if status == 413 {
            // The rest of an oversized body is not read: do not reuse the connection.
            resp = resp.header(http::header::CONNECTION, "close");
        }
        resp.body(body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}

//! The proxy's side of FLV fan-out: which admitted requests join a shared pull,
//! and what the pull and the viewer need of the request. The work is in
//! [`crate::fanout`].

use http::Method;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use super::request::{host_header, reported_head};
use super::{Ctx, Gate};
use crate::conn::{Body, Taken};
use crate::fanout::{self, Join, Joined, Live, Out, PullKey, Source, Viewer};
use crate::route::Scene;

impl Gate {
    /// What the origin is asked for an admitted request that the edge may ask on
    /// behalf of many clients — a pull `GET` (or, with `head`, a `HEAD`, which a
    /// shared `GET` answers without its body) with no headers from the auth
    /// server to pass on (a shared answer cannot carry one client's): the Host
    /// sent upstream and the canonical target with auth parameters and tokens
    /// stripped.
    pub(super) fn asked_upstream(
        &self,
        req: &RequestHeader,
        ctx: &Ctx,
        head: bool,
    ) -> Option<(String, String)> {
        let method = req.method == Method::GET || (head && req.method == Method::HEAD);
        if ctx.scene != Some(Scene::Pull) || !method || ctx.upstream_headers.is_some() {
            return None;
        }
        let site = ctx.site.as_ref()?;
        let uri = ctx.upstream_uri.as_ref().unwrap_or(&req.uri);
        let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        // The canonical host (the one routing used), so `Host: a` and `Host:
        // a:8080` share one pull and one cache entry.
        let host = match &site.origin.host {
            Some(h) => h.clone(),
            None => crate::route::host_key(host_header(req)?).into_owned(),
        };
        Some((host, target))
    }

    /// An admitted `GET` of an `.flv` stream on a domain with fan-out is served
    /// from the stream's one origin pull; `None` for every other request (and
    /// when the auth server asked for headers to pass to the origin: a shared
    /// pull cannot carry one viewer's headers). Over HTTP/1 the viewer's body is
    /// written from the connection itself once the head is out, so the viewer
    /// leaves Pingora's per-request state behind ([`Gate::hand_over`]).
    pub(super) async fn fan_out(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Option<Result<bool>> {
        let d = ctx.domain?;
        let site = ctx.site.as_ref()?;
        let door = ctx.door.as_ref()?;
        let settings = site.fanout.as_ref()?;
        if !ctx.flv {
            return None;
        }
        let (host, target) = self.asked_upstream(session.req_header(), ctx, false)?;
        let cors = ctx.cors.clone();
        let decorate = move |resp: &mut ResponseHeader| match &cors {
            Some((c, origin)) => c.apply(resp, origin.as_ref()),
            None => Ok(()),
        };
        let shown = self.admission.live.load().redact.url(&target);
        let mut origin = None;
        let joining = Join {
            key: PullKey {
                domain: d,
                host,
                target,
            },
            decorate: &decorate,
            origin: &mut origin,
        };
        let source = || {
            let metrics = door.metrics.clone();
            Source {
                origin: site.origin.clone(),
                hash_key: ctx.hash_key.clone(),
                settings: settings.clone(),
                shown: shown.clone(),
                on_status: Box::new(move |s| metrics.upstream_status(s)),
            }
        };
        let joined = fanout::join(&self.hub, session, joining, source).await;
        ctx.peer = origin;
        let live = match joined {
            Ok(Joined::Live(live)) => live,
            Ok(Joined::Answered) => return Some(Ok(true)),
            Err(e) => return Some(Err(e)),
        };
        let req = reported_head(session.req_header());
        let status = session
            .response_written()
            .map_or(200, |r| r.status.as_u16());
        if let Some(taken) = crate::conn::take(&mut session.downstream_session) {
            self.hand_over(taken, live, Ended { req, status }, ctx, shown);
            return Some(Ok(true));
        }
        let viewer = viewer(ctx, &shown)?;
        let (streamed, _) = live.stream(Out::Session(session), &viewer).await;
        Some(streamed.map(|()| true))
    }

    /// Leaves a joined viewer's body to its connection's task: what the request
    /// needs to the end (its context, for the stream session, the access limits
    /// and the access log) moves with it, and Pingora finishes an empty request.
    fn hand_over(&self, taken: Taken, live: Live, ended: Ended, ctx: &mut Ctx, shown: String) {
        let gate = self.clone();
        let left = Ctx {
            handed: true,
            ..Ctx::new()
        };
        let mut ctx = std::mem::replace(ctx, left);
        let chunked = live.chunked;
        taken.run(move |stream| {
            Box::pin(async move {
                let (streamed, bytes) = match Body::new(stream, chunked).await {
                    Ok(body) => match viewer(&ctx, &shown) {
                        Some(viewer) => live.stream(Out::Conn(body), &viewer).await,
                        None => (Ok(()), 0),
                    },
                    Err(e) => (
                        Err(Error::because(
                            ErrorType::WriteError,
                            "flushing the head",
                            e,
                        )),
                        0,
                    ),
                };
                let e = streamed.err().map(Error::into_down);
                gate.ended(&ended.req, ended.status, bytes, e.as_deref(), &mut ctx);
            })
        });
    }
}

/// The request as its end reports it, kept when Pingora's session let it go.
struct Ended {
    req: RequestHeader,
    status: u16,
}

/// What a joined viewer's writes check and count, from its request's context.
fn viewer<'a>(ctx: &'a Ctx, shown: &'a str) -> Option<Viewer<'a>> {
    Some(Viewer {
        shown,
        settings: ctx.site.as_ref()?.fanout.as_ref()?,
        ticket: ctx.ticket.as_ref(),
        sent: &ctx.door.as_ref()?.metrics.sent,
        cut_at: ctx.cut_at,
    })
}

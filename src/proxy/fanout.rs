//! The proxy's side of FLV fan-out: which admitted requests join a shared pull,
//! and what the pull and the viewer need of the request. The work is in
//! [`crate::fanout`].

use http::Method;
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use super::request::host_header;
use super::{Ctx, Gate};
use crate::fanout::{self, PullKey, Source, Viewer};
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
    /// pull cannot carry one viewer's headers).
    pub(super) async fn fan_out(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Option<Result<bool>> {
        let d = ctx.domain?;
        let site = ctx.site.as_ref()?;
        let door = ctx.door.as_ref()?;
        let settings = site.fanout.as_ref()?;
        let req = session.req_header();
        if !ctx.flv {
            return None;
        }
        let (host, target) = self.asked_upstream(req, ctx, false)?;
        let cors = ctx.cors.clone();
        let decorate = move |resp: &mut ResponseHeader| match &cors {
            Some((c, origin)) => c.apply(resp, origin.as_ref()),
            None => Ok(()),
        };
        let shown = self.admission.live.load().redact.url(&target);
        let mut origin = None;
        let viewer = Viewer {
            shown: &shown,
            key: PullKey {
                domain: d,
                host,
                target,
            },
            settings,
            ticket: ctx.ticket.as_ref(),
            sent: &door.metrics.sent,
            decorate: &decorate,
            origin: &mut origin,
            cut_at: ctx.cut_at,
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
        let served = fanout::serve(&self.hub, session, viewer, source).await;
        ctx.peer = origin;
        Some(served)
    }
}

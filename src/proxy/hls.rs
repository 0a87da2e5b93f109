//! The HLS and browser steps of the request path: a segment token instead of a
//! signature, tokens written into passing playlists, CORS. The proxy calls these in
//! one line each; [`crate::hls`] and [`crate::cors`] do the work.

use bytes::Bytes;
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use super::request::host_header;
use super::{Ctx, Gate};
use crate::hls::{self, Fill, Grant, Rewrite, Scope};
use crate::route::{self, host_key, Scene};
use crate::sign::query;
use crate::sign::Request;

impl Gate {
    /// A possible playlist is asked for in identity encoding, so it can be rewritten.
    pub(super) fn hls_upstream(
        &self,
        client: &RequestHeader,
        upstream: &mut RequestHeader,
        ctx: &Ctx,
    ) {
        let playlist =
            ctx.playlist.is_some() && route::ext(client.uri.path()).eq_ignore_ascii_case("m3u8");
        if playlist && upstream.headers.contains_key(http::header::ACCEPT_ENCODING) {
            upstream.remove_header(&http::header::ACCEPT_ENCODING);
        }
    }

    /// When the origin's answer is a playlist for a request that may have one
    /// rewritten: sets up the rewrite (the length changes, a gzip body is
    /// decoded). A playlist declared larger than the bound becomes a 502 here.
    pub(super) fn hls_response(&self, session: &Session, resp: &mut ResponseHeader, ctx: &mut Ctx) {
        let (Some(grant), Some(d)) = (ctx.playlist, ctx.domain) else {
            return;
        };
        let req = session.req_header();
        let header = |n| {
            resp.headers
                .get(n)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
        };
        let typed = header(http::header::CONTENT_TYPE);
        if !resp.status.is_success() || !hls::is_playlist(route::ext(req.uri.path()), typed) {
            return;
        }
        let gzip = match header(http::header::CONTENT_ENCODING) {
            None | Some("identity") => false,
            Some(e) if e.eq_ignore_ascii_case("gzip") => true,
            Some(other) => {
                log::warn!("a playlist in {other} encoding is passed on without segment tokens");
                return;
            }
        };
        let declared = header(http::header::CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok());
        if !gzip && declared.is_some_and(|l| l > hls::MAX_PLAYLIST) {
            self.refuse_playlist(session, ctx, &hls::Refused::TooLarge);
            if let Ok(refusal) = ResponseHeader::build(502, Some(1)) {
                *resp = refusal;
                let _ = resp.insert_header(http::header::CONTENT_LENGTH, "0");
                ctx.swallow = true;
            }
            return;
        }
        let Some(fill) = self.fill(req, ctx, d, grant) else {
            return;
        };
        ctx.rewrite = Some(Rewrite::new(fill, gzip));
        resp.remove_header(&http::header::CONTENT_LENGTH);
        resp.remove_header(&http::header::CONTENT_ENCODING);
    }

    /// Logs why a playlist was refused (502), naming the request redacted.
    pub(super) fn refuse_playlist(&self, session: &Session, ctx: &Ctx, why: &hls::Refused) {
        let domain = ctx.door.as_ref().map_or("-", |d| d.name.as_str());
        log::warn!(
            "playlist {} of {domain}: {why}; answered 502",
            self.shown(session.req_header())
        );
    }

    /// What a playlist for this request gets written into it: the token it
    /// presented, or a new one for its stream with `grant`.
    pub(super) fn fill(
        &self,
        req: &RequestHeader,
        ctx: &Ctx,
        d: usize,
        grant: Grant,
    ) -> Option<Fill> {
        let snap = self.admission.live.load();
        let domain = snap.table.domains().get(d)?;
        let h = domain.hls.as_ref()?;
        let query = req.uri.query().unwrap_or("");
        let presented = query::find(query, [&*h.token_param, ""])
            .ok()
            .and_then(|f| f.values[0].as_ref().map(|t| t.to_string()));
        let host_header = host_header(req).unwrap_or("");
        let token = presented.unwrap_or_else(|| {
            let scope = Scope::of(req.uri.path(), domain.nested);
            let host = host_key(host_header);
            let holder = Request {
                host: &host,
                path: req.uri.path(),
                remote_addr: ctx.client_ip.as_str(),
                ..Default::default()
            };
            self.admission
                .hls_secret
                .mint(&domain.name, Scene::Pull, &scope, grant, &holder)
        });
        Some(Fill::new(token, &h.token_param, host_header, ctx.tls))
    }

    /// A body chunk of a playlist being rewritten: held until the playlist is
    /// whole; one past the bounds ends the response (its head is already out).
    pub(super) fn hls_body(
        &self,
        session: &Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if ctx.swallow {
            *body = None;
            return Ok(());
        }
        let Some(r) = ctx.rewrite.as_mut() else {
            return Ok(());
        };
        match r.push(body.take(), end) {
            Ok(b) => {
                *body = b;
                Ok(())
            }
            Err(why) => {
                ctx.rewrite = None;
                self.refuse_playlist(session, ctx, &why);
                pingora_core::Error::e_explain(
                    pingora_core::ErrorType::Custom("playlist refused"),
                    why.to_string(),
                )
            }
        }
    }

    /// Answers a CORS preflight itself (it carries no signature and never reaches
    /// the origin); `true` when it did.
    pub(super) async fn preflight(&self, session: &mut Session) -> Result<bool> {
        let req = session.req_header();
        if !crate::cors::is_preflight(req) {
            return Ok(false);
        }
        let snap = self.admission.live.load();
        let host = host_key(host_header(req).unwrap_or(""));
        let Some(cors) = snap.table.domain(&host).and_then(|(_, d)| d.cors.clone()) else {
            return Ok(false);
        };
        let resp = cors.preflight(req)?;
        session.write_response_header(Box::new(resp), true).await?;
        Ok(true)
    }

    /// Adds the CORS headers a response (admitted or refused) needs.
    pub(super) fn cors_headers(&self, resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
        match &ctx.cors {
            Some((cors, origin)) => cors.apply(resp, origin.as_ref()),
            None => Ok(()),
        }
    }
}

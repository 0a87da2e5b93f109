//! The request head the origin receives: the canonical target less the auth
//! parameters, hop and client headers scrubbed, the auth server's headers, the
//! origin's Host, and the client's address.

use pingora_core::Result;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use super::{Ctx, Gate};
use crate::hygiene;

impl Gate {
    /// Prepares `upstream` for an admitted request, with the site and door it
    /// was admitted with.
    pub(super) fn to_origin(
        &self,
        session: &Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let (Some(site), Some(door)) = (ctx.site.clone(), ctx.door.clone()) else {
            return Ok(());
        };
        self.hls_upstream(session.req_header(), upstream, ctx);
        if let Some(uri) = ctx.upstream_uri.take() {
            upstream.set_uri(uri);
        }
        hygiene::scrub(upstream, door.remote.as_ref().map_or(&[], |r| &r.copy));
        if let Some(t) = &ctx.credential {
            hygiene::drop_token(upstream, &t.cookies(), t.header())?;
        }
        if let Some(headers) = ctx.upstream_headers.take() {
            for (name, value) in headers.iter() {
                upstream.insert_header(name.clone(), value.clone())?;
            }
        }
        if let Some(host) = &site.origin.host {
            upstream.insert_header(http::header::HOST, host)?;
        }
        if ctx.client.is_some() {
            let ip = ctx.client_ip.as_str();
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prior) => format!("{prior}, {ip}"),
                None => ip.to_owned(),
            };
            upstream.insert_header("x-forwarded-for", xff)?;
            upstream.insert_header("x-real-ip", ip.to_owned())?;
        }
        Ok(())
    }
}

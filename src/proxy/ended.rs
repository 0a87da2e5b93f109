//! How an admitted request's answer ends early: the client leaving (normal for
//! live playback), or the edge cutting the stream (forbid, drop, expiry). Each
//! is logged where it is decided and counted once, here.

use pingora_core::{Error, ErrorType, Result};
use pingora_proxy::Session;

use super::{Ctx, Gate};
use crate::streams::Ticket;
use crate::verdict::Reason;

/// The error an edge-decided cut ends a stream with (`why` for Pingora's line,
/// which `suppress_error_log` silences: the cut is logged where it is decided).
pub(super) fn stream_cut<T>(why: &'static str) -> Result<T> {
    Error::e_explain(ErrorType::Custom("stream cut"), why)
}

/// Whether `e` is an edge-decided cut.
pub(super) fn is_cut(e: &Error) -> bool {
    matches!(e.etype(), ErrorType::Custom("stream cut"))
}

/// Whether `e` is the client going away (closed, reset, stopped reading; over
/// HTTP/2, its stream reset or gone).
pub(super) fn left(e: &Error) -> bool {
    use ErrorType::{ConnectionClosed, H2Error, ReadError, WriteError};
    *e.esource() == pingora_core::ErrorSource::Downstream
        && matches!(
            e.etype(),
            ConnectionClosed | ReadError | WriteError | H2Error
        )
}

impl Gate {
    /// Counts `n` body bytes sent to the client — unless the stream was cut
    /// (management API) or its signature expired (`cut_on_expiry`): then the
    /// error that ends it.
    pub(super) fn sent(&self, session: &Session, ctx: &Ctx, n: usize) -> Result<()> {
        let Some(door) = &ctx.door else { return Ok(()) };
        door.metrics.sent.inc_by(n as u64);
        if let Some(t) = &ctx.ticket {
            if t.cut() {
                return stream_cut("cut by the management API");
            }
            t.sent(n);
        }
        if ctx.cut_at.is_some_and(crate::streams::expired) {
            log::info!("{}: cut, its signature expired", self.summary(session));
            return stream_cut("signature expired");
        }
        Ok(())
    }

    /// Counts how a request ended early: a cut at its signature's expiry as
    /// EXPIRED, a client going away as a viewer leaving (debug, not an error).
    pub(super) fn count_end(&self, req: &pingora_http::RequestHeader, ctx: &Ctx, e: &Error) {
        if let (Some(door), Some(scene)) = (&ctx.door, ctx.scene) {
            if is_cut(e) && ctx.cut_at.is_some_and(crate::streams::expired) {
                door.metrics.verdict(scene, Err(Reason::Expired));
            }
        }
        if left(e) {
            match &ctx.door {
                Some(door) => door.metrics.left(),
                None => crate::metrics::viewer_left(crate::metrics::UNKNOWN_DOMAIN),
            }
            log::debug!("{}: the client went away: {e}", self.summary_of(req));
        }
    }

    /// Whether the management API cut this request's stream.
    pub(super) fn was_cut(ctx: &Ctx) -> bool {
        ctx.ticket.as_ref().is_some_and(Ticket::cut)
    }
}

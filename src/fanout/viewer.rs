//! The viewer side of a fan-out: the origin's response head, the joining bytes
//! (header, metadata, sequence headers, the GOP cache), then live tags — each
//! viewer at its own pace, within bounds.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora_core::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use tokio::sync::broadcast::error::RecvError;

use super::{Head, Hub, Packet, Pull, PullKey, Settings, Source};
use crate::config::SlowViewer;
use crate::flv::VIDEO;
use crate::streams::Ticket;

/// How long a viewer waits for the origin's answer.
const HEAD_WAIT: Duration = Duration::from_secs(30);
/// Tags already waiting are written together, up to this many bytes.
const BATCH: usize = 64 << 10;

/// One admitted viewer, as the proxy describes it.
pub struct Viewer<'a> {
    pub key: PullKey,
    pub settings: &'a Settings,
    /// Cut by the management API (forbid, drop).
    pub ticket: Option<&'a Ticket>,
    /// Counts body bytes sent (`livegate_sent_bytes_total`).
    pub sent: &'a pingora_prometheus::prometheus::IntCounter,
    /// Adds the edge's own response headers (CORS).
    pub decorate: &'a (dyn Fn(&mut ResponseHeader) -> Result<()> + Sync),
}

/// Leaves the pull when the viewer's request ends, however it ends.
struct Leave(Arc<Pull>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.leave();
        crate::metrics::fanout_viewers(-1);
    }
}

fn cut(why: &'static str) -> Result<bool> {
    Error::e_explain(ErrorType::Custom("stream cut"), why)
}

/// Serves one viewer from the pull for its key (started with `source` if none
/// runs). `Ok(true)`: the response was sent (Pingora's request is done).
pub async fn serve(
    hub: &Arc<Hub>,
    session: &mut Session,
    viewer: Viewer<'_>,
    source: impl FnOnce() -> Source,
) -> Result<bool> {
    let pull = hub.join(viewer.key.clone(), source);
    crate::metrics::fanout_viewers(1);
    let _leave = Leave(pull.clone());
    let mut head = pull.head.subscribe();
    let answered = tokio::time::timeout(HEAD_WAIT, head.wait_for(|h| !matches!(h, Head::Pending)))
        .await
        .ok()
        .and_then(|r| r.ok().map(|h| h.clone()));
    let resp = match answered {
        Some(Head::Live(resp)) => resp,
        Some(Head::Refused(resp, body)) => {
            let mut resp = (*resp).clone();
            (viewer.decorate)(&mut resp)?;
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await?;
            return Ok(true);
        }
        Some(Head::Failed(status)) => {
            session.respond_error(status).await?;
            return Ok(true);
        }
        _ => {
            session.respond_error(504).await?;
            return Ok(true);
        }
    };
    let mut resp = (*resp).clone();
    if session.req_header().version == http::Version::HTTP_11 {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    (viewer.decorate)(&mut resp)?;
    session.write_response_header(Box::new(resp), false).await?;
    let (start, mut keyed, ring) = {
        let shared = pull.shared();
        let ring = shared.ring.as_ref().map(|r| r.subscribe());
        (shared.gop.start(), shared.gop.ready(), ring)
    };
    let Some(mut ring) = ring else {
        // The pull ended as this viewer joined.
        session.write_response_body(None, true).await?;
        return Ok(true);
    };
    let mut first = BytesMut::with_capacity(start.iter().map(Bytes::len).sum());
    for b in start {
        first.extend_from_slice(&b);
    }
    write(session, &viewer, first.freeze()).await?;
    loop {
        let packet = match ring.recv().await {
            Ok(p) => p,
            Err(RecvError::Lagged(_)) => {
                slow(&viewer, &pull, "more than the ring behind")?;
                (ring, keyed) = (ring.resubscribe(), false);
                continue;
            }
            Err(RecvError::Closed) => {
                // The origin ended the stream: end cleanly, players reconnect.
                session.write_response_body(None, true).await?;
                return Ok(true);
            }
        };
        let (edge_bytes, edge_ms) = pull.edge();
        let behind_ms = edge_ms.saturating_sub(u64::from(packet.frame.timestamp));
        if edge_bytes.saturating_sub(packet.end) > viewer.settings.queue_bytes
            || behind_ms > viewer.settings.queue.as_millis() as u64
        {
            slow(&viewer, &pull, "over its queue")?;
            (ring, keyed) = (ring.resubscribe(), false);
            continue;
        }
        let mut batch = BytesMut::new();
        take(&mut batch, &packet, &mut keyed);
        while batch.len() < BATCH {
            match ring.try_recv() {
                Ok(p) => take(&mut batch, &p, &mut keyed),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            write(session, &viewer, batch.freeze()).await?;
        }
    }
}

/// Adds a tag to what is written next — unless it is video the viewer cannot
/// decode yet (before its first keyframe, or after a skip).
fn take(batch: &mut BytesMut, p: &Packet, keyed: &mut bool) {
    if p.frame.kind == VIDEO && !*keyed {
        if !p.frame.keyframe {
            return;
        }
        *keyed = true;
    }
    batch.extend_from_slice(&p.frame.bytes);
}

/// A viewer fell behind: cut, or (with `slow_viewer: skip`) drop what it has
/// not sent and go on from the next keyframe at the live edge.
fn slow(viewer: &Viewer<'_>, pull: &Pull, why: &str) -> Result<()> {
    crate::metrics::fanout_slow();
    match viewer.settings.slow {
        SlowViewer::Cut => {
            log::info!("slow viewer of {} cut: {why}", pull.key.target);
            cut("slow viewer").map(drop)
        }
        SlowViewer::Skip => {
            log::info!(
                "slow viewer of {} skips to the next keyframe: {why}",
                pull.key.target
            );
            Ok(())
        }
    }
}

/// Writes bytes to the viewer, unless its stream was cut; a socket that does not
/// take them within the queue's time is a slow viewer, always cut.
async fn write(session: &mut Session, viewer: &Viewer<'_>, bytes: Bytes) -> Result<()> {
    if viewer.ticket.is_some_and(Ticket::cut) {
        return cut("cut by the management API").map(drop);
    }
    let n = bytes.len();
    match tokio::time::timeout(
        viewer.settings.queue,
        session.write_response_body(Some(bytes), false),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => {
            crate::metrics::fanout_slow();
            log::info!(
                "slow viewer of {} cut: its socket stalled",
                viewer.key.target
            );
            return cut("slow viewer").map(drop);
        }
    }
    viewer.sent.inc_by(n as u64);
    if let Some(t) = viewer.ticket {
        t.sent(n);
    }
    Ok(())
}

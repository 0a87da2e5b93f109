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
use crate::media::flv::VIDEO;
use crate::streams::Ticket;

/// How long a viewer waits for the origin's answer.
const HEAD_WAIT: Duration = Duration::from_secs(30);
/// Tags already waiting are written together, up to this many bytes. The copy
/// is the viewer's own memory while its write waits on the socket (a join
/// copies its GOP this way), so it is kept small: 16 KiB joins a video frame
/// and the audio around it. 64 KiB cost a joining viewer 51 KB of heap
/// (`benches/heap_viewer.sh`).
const BATCH: usize = 16 << 10;

/// One admitted viewer, as the proxy describes it.
pub struct Viewer<'a> {
    pub key: PullKey,
    /// The target as log lines name it (redacted).
    pub shown: &'a str,
    pub settings: &'a Settings,
    /// Cut by the management API (forbid, drop).
    pub ticket: Option<&'a Ticket>,
    /// Counts body bytes sent (`livegate_sent_bytes_total`).
    pub sent: &'a pingora_prometheus::prometheus::IntCounter,
    /// Adds the edge's own response headers (CORS).
    pub decorate: &'a (dyn Fn(&mut ResponseHeader) -> Result<()> + Sync),
    /// Set to the origin peer the pull is served by, once it answered.
    pub origin: &'a mut Option<std::net::SocketAddr>,
    /// `cut_on_expiry`: when its signature expires (Unix seconds).
    pub cut_at: Option<i64>,
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
    *viewer.origin = pull.peer.get().copied();
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
    // The joining bytes are slices of the origin's own buffers: written in
    // batches of at most `BATCH` copied bytes, never one copy of the whole GOP.
    let mut batch = Batch::default();
    for b in start {
        if let Some(full) = batch.add(b) {
            write(session, &viewer, full).await?;
        }
    }
    if let Some(rest) = batch.take() {
        write(session, &viewer, rest).await?;
    }
    // What the coalescing wait received that was not a packet, for the loop.
    let mut carried: Option<Result<Packet, RecvError>> = None;
    loop {
        let got = match carried.take() {
            Some(r) => r,
            None => ring.recv().await,
        };
        let packet = match got {
            Ok(p) => p,
            Err(RecvError::Lagged(_)) => {
                slow(&viewer, "more than the ring behind")?;
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
            slow(&viewer, "over its queue")?;
            (ring, keyed) = (ring.resubscribe(), false);
            continue;
        }
        let mut batch = Batch::default();
        let mut next = Some(packet);
        let until = viewer
            .settings
            .coalesce
            .map(|c| tokio::time::Instant::now() + c);
        loop {
            while let Some(p) = next.take() {
                if let Some(full) = batch.add_tag(&p, &mut keyed) {
                    write(session, &viewer, full).await?;
                }
                next = ring.try_recv().ok();
            }
            // Caught up: with coalescing, what comes within the window joins
            // this write.
            let Some(until) = until.filter(|_| !batch.is_empty()) else {
                break;
            };
            match tokio::time::timeout_at(until, ring.recv()).await {
                Ok(Ok(p)) => next = Some(p),
                Ok(Err(e)) => {
                    carried = Some(Err(e));
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(rest) = batch.take() {
            write(session, &viewer, rest).await?;
        }
    }
}

/// What a viewer writes next: one buffer as it came (no copy), or several
/// small ones copied together up to `BATCH` bytes (one write, not many).
#[derive(Default)]
struct Batch {
    one: Option<Bytes>,
    many: BytesMut,
}

impl Batch {
    /// Adds bytes; returns what is to be written first when they would not fit
    /// in the batch (a buffer alone is never copied).
    fn add(&mut self, b: Bytes) -> Option<Bytes> {
        if let Some(first) = self.one.take() {
            if first.len() + b.len() > BATCH {
                self.one = Some(b);
                return Some(first);
            }
            if self.many.capacity() == 0 {
                // Exactly one batch, not what doubling would round it up to.
                self.many.reserve(BATCH);
            }
            self.many.extend_from_slice(&first);
        }
        if self.many.is_empty() {
            self.one = Some(b);
            return None;
        }
        if self.many.len() + b.len() > BATCH {
            let out = self.many.split().freeze();
            self.one = Some(b);
            return Some(out);
        }
        self.many.extend_from_slice(&b);
        None
    }

    /// Adds a tag — unless it is video the viewer cannot decode yet (before its
    /// first keyframe, or after a skip).
    fn add_tag(&mut self, p: &Packet, keyed: &mut bool) -> Option<Bytes> {
        if p.frame.kind == VIDEO && !*keyed {
            if !p.frame.keyframe {
                return None;
            }
            *keyed = true;
        }
        self.add(p.frame.bytes.clone())
    }

    /// What is left to write.
    fn is_empty(&self) -> bool {
        self.one.is_none() && self.many.is_empty()
    }

    fn take(&mut self) -> Option<Bytes> {
        self.one
            .take()
            .or_else(|| (!self.many.is_empty()).then(|| self.many.split().freeze()))
    }
}

/// A viewer fell behind: cut, or (with `slow_viewer: skip`) drop what it has
/// not sent and go on from the next keyframe at the live edge.
fn slow(viewer: &Viewer<'_>, why: &str) -> Result<()> {
    crate::metrics::fanout_slow();
    match viewer.settings.slow {
        SlowViewer::Cut => {
            log::info!("slow viewer of {} cut: {why}", viewer.shown);
            cut("slow viewer").map(drop)
        }
        SlowViewer::Skip => {
            log::info!(
                "slow viewer of {} skips to the next keyframe: {why}",
                viewer.shown
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
    if viewer.cut_at.is_some_and(crate::streams::expired) {
        log::info!("viewer of {} cut: its signature expired", viewer.shown);
        return cut("signature expired").map(drop);
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
            log::info!("slow viewer of {} cut: its socket stalled", viewer.shown);
            return cut("slow viewer").map(drop);
        }
    }
    viewer.sent.inc_by(n as u64);
    if let Some(t) = viewer.ticket {
        t.sent(n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_are_joined_and_a_big_one_goes_alone_uncopied() {
        let mut b = Batch::default();
        assert!(b.add(Bytes::from_static(b"ab")).is_none());
        assert!(b.add(Bytes::from_static(b"cd")).is_none());
        let big = Bytes::from(vec![7u8; BATCH]);
        assert_eq!(b.add(big.clone()).as_deref(), Some(&b"abcd"[..]));
        let out = b.add(Bytes::from_static(b"e")).unwrap();
        assert_eq!(out.as_ptr(), big.as_ptr(), "the big buffer was copied");
        assert_eq!(b.take().as_deref(), Some(&b"e"[..]));
        assert!(b.take().is_none());
    }
}

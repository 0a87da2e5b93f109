//! The viewer side of a fan-out: the origin's response head, the joining bytes
//! (header, metadata, sequence headers, the GOP cache), then live tags — each
//! viewer at its own pace, within bounds.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora_core::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::{Head, Hub, Packet, Pull, PullKey, Settings, Source};
use crate::config::SlowViewer;
use crate::conn::MAX_PARTS;
use crate::media::flv::VIDEO;
use crate::streams::Ticket;

/// How long a viewer waits for the origin's answer.
const HEAD_WAIT: Duration = Duration::from_secs(30);
/// Through Pingora's session, tags already waiting are copied together into
/// one write of up to this many bytes. The copy is the viewer's own memory
/// while its write waits on the socket (a join copies its GOP this way), so it
/// is kept small: 16 KiB joins a video frame and the audio around it. 64 KiB
/// cost a joining viewer 51 KB of heap (`benches/heap_viewer.sh`). A taken
/// connection writes the shared buffers themselves, uncopied.
const BATCH: usize = 16 << 10;

/// One admitted viewer's stream, as the proxy describes it: what its body's
/// writes check and count.
pub struct Viewer<'a> {
    /// The target as log lines name it (redacted).
    pub shown: &'a str,
    pub settings: &'a Settings,
    /// Cut by the management API (forbid, drop).
    pub ticket: Option<&'a Ticket>,
    /// Counts body bytes sent (`livegate_sent_bytes_total`).
    pub sent: &'a pingora_prometheus::prometheus::IntCounter,
    /// `cut_on_expiry`: when its signature expires (Unix seconds).
    pub cut_at: Option<i64>,
}

/// A viewer joining: what it asks, and what its answer's head needs.
pub struct Join<'a> {
    pub key: PullKey,
    /// Adds the edge's own response headers (CORS).
    pub decorate: &'a (dyn Fn(&mut ResponseHeader) -> Result<()> + Sync),
    /// Set to the origin peer the pull is served by, once it answered.
    pub origin: &'a mut Option<std::net::SocketAddr>,
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

/// How a join went.
pub enum Joined {
    /// The origin refused or failed: the answer was sent, the request is done.
    Answered,
    /// The live stream's head was sent; its body follows ([`Live::stream`]).
    Live(Live),
}

/// A joined viewer's place in its pull, from the head on.
pub struct Live {
    pull: Arc<Pull>,
    _leave: Leave,
    /// The joining bytes (header, metadata, sequence headers, the GOP).
    start: Vec<Bytes>,
    keyed: bool,
    /// `None`: the pull ended as the viewer joined.
    ring: Option<broadcast::Receiver<Packet>>,
    /// Whether the body is chunked (HTTP/1.1).
    pub chunked: bool,
}

/// Joins the pull for the viewer's key (started with `source` if none runs),
/// waits for the origin's answer and writes its head through the session.
pub async fn join(
    hub: &Arc<Hub>,
    session: &mut Session,
    joining: Join<'_>,
    source: impl FnOnce() -> Source,
) -> Result<Joined> {
    let pull = hub.join(joining.key, source);
    crate::metrics::fanout_viewers(1);
    let leave = Leave(pull.clone());
    let mut head = pull.head.subscribe();
    let answered = tokio::time::timeout(HEAD_WAIT, head.wait_for(|h| !matches!(h, Head::Pending)))
        .await
        .ok()
        .and_then(|r| r.ok().map(|h| h.clone()));
    *joining.origin = pull.peer.get().copied();
    let resp = match answered {
        Some(Head::Live(resp)) => resp,
        Some(Head::Refused(resp, body)) => {
            let mut resp = (*resp).clone();
            (joining.decorate)(&mut resp)?;
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await?;
            return Ok(Joined::Answered);
        }
        Some(Head::Failed(status)) => {
            session.respond_error(status).await?;
            return Ok(Joined::Answered);
        }
        _ => {
            session.respond_error(504).await?;
            return Ok(Joined::Answered);
        }
    };
    let mut resp = (*resp).clone();
    let chunked = session.req_header().version == http::Version::HTTP_11;
    if chunked {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    (joining.decorate)(&mut resp)?;
    session.write_response_header(Box::new(resp), false).await?;
    let (start, keyed, ring) = {
        let shared = pull.shared();
        let ring = shared.ring.as_ref().map(|r| r.subscribe());
        (shared.gop.start(), shared.gop.ready(), ring)
    };
    Ok(Joined::Live(Live {
        pull,
        _leave: leave,
        start,
        keyed,
        ring,
        chunked,
    }))
}

/// Where a joined viewer's body goes.
pub enum Out<'a> {
    /// Through Pingora's session (HTTP/2, or a connection that was not taken).
    Session(&'a mut Session),
    /// Straight to the connection, Pingora's request state gone.
    Conn(crate::conn::Body),
}

impl Out<'_> {
    /// The most bytes a batch holds: the session path copies a batch into one
    /// buffer (the viewer's own memory while its write waits), the connection
    /// path writes the shared buffers as they are.
    fn batch_bytes(&self) -> usize {
        match self {
            Out::Session(_) => BATCH,
            Out::Conn(_) => usize::MAX,
        }
    }

    async fn send(&mut self, parts: &[Bytes], len: usize) -> Result<()> {
        match self {
            Out::Session(s) => {
                let body = match parts {
                    [one] => one.clone(),
                    _ => {
                        let mut b = BytesMut::with_capacity(len);
                        parts.iter().for_each(|p| b.extend_from_slice(p));
                        b.freeze()
                    }
                };
                s.write_response_body(Some(body), false).await
            }
            Out::Conn(c) => c.send(parts).await.map_err(gone),
        }
    }

    async fn end(self) -> Result<()> {
        match self {
            Out::Session(s) => s.write_response_body(None, true).await,
            Out::Conn(c) => c.end().await.map_err(gone),
        }
    }
}

/// A write to the viewer's connection failed: the viewer went away.
fn gone(e: std::io::Error) -> Box<Error> {
    Error::because(ErrorType::WriteError, "writing to the viewer", e).into_down()
}

impl Live {
    /// Writes the joining bytes, then the live tags until the pull ends or the
    /// viewer leaves or is cut (`Ok`: the body ended cleanly); and the body
    /// bytes it sent.
    pub async fn stream(self, out: Out<'_>, viewer: &Viewer<'_>) -> (Result<()>, usize) {
        let mut batch = Batch::default();
        let streamed = self.run(out, viewer, &mut batch).await;
        (streamed, batch.sent)
    }

    async fn run(self, mut out: Out<'_>, viewer: &Viewer<'_>, batch: &mut Batch) -> Result<()> {
        let Live {
            pull,
            _leave,
            start,
            mut keyed,
            ring,
            ..
        } = self;
        let Some(mut ring) = ring else {
            return out.end().await;
        };
        // The joining bytes are slices of the origin's own buffers.
        for b in start {
            batch.add(&mut out, viewer, b).await?;
        }
        batch.flush(&mut out, viewer).await?;
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
                    slow(viewer, "more than the ring behind")?;
                    (ring, keyed) = (ring.resubscribe(), false);
                    continue;
                }
                // The origin ended the stream: end cleanly, players reconnect.
                Err(RecvError::Closed) => return out.end().await,
            };
            let (edge_bytes, edge_ms) = pull.edge();
            let behind_ms = edge_ms.saturating_sub(u64::from(packet.frame.timestamp));
            if edge_bytes.saturating_sub(packet.end) > viewer.settings.queue_bytes
                || behind_ms > viewer.settings.queue.as_millis() as u64
            {
                slow(viewer, "over its queue")?;
                (ring, keyed) = (ring.resubscribe(), false);
                continue;
            }
            let mut next = Some(packet);
            let until = viewer
                .settings
                .coalesce
                .map(|c| tokio::time::Instant::now() + c);
            loop {
                while let Some(p) = next.take() {
                    if let Some(b) = decodable(&p, &mut keyed) {
                        batch.add(&mut out, viewer, b).await?;
                    }
                    next = ring.try_recv().ok();
                }
                // Caught up: with coalescing, what comes within the window joins
                // this write.
                let Some(until) = until.filter(|_| !batch.parts.is_empty()) else {
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
            batch.flush(&mut out, viewer).await?;
        }
    }
}

/// A tag's bytes — unless it is video the viewer cannot decode yet (before its
/// first keyframe, or after a skip).
fn decodable(p: &Packet, keyed: &mut bool) -> Option<Bytes> {
    if p.frame.kind == VIDEO && !*keyed {
        if !p.frame.keyframe {
            return None;
        }
        *keyed = true;
    }
    Some(p.frame.bytes.clone())
}

/// What a viewer writes next: buffers as they came, written together (one
/// write, not many) up to the output's batch size and [`MAX_PARTS`] buffers.
#[derive(Default)]
struct Batch {
    parts: Vec<Bytes>,
    len: usize,
    /// Body bytes written so far.
    sent: usize,
}

impl Batch {
    /// Whether `b` joins the batch (an empty batch takes anything).
    fn fits(&self, b: &Bytes, max_bytes: usize) -> bool {
        self.parts.is_empty()
            || (self.parts.len() < MAX_PARTS && self.len.saturating_add(b.len()) <= max_bytes)
    }

    /// Adds bytes, writing what is batched first when they would not fit.
    async fn add(&mut self, out: &mut Out<'_>, viewer: &Viewer<'_>, b: Bytes) -> Result<()> {
        if !self.fits(&b, out.batch_bytes()) {
            self.flush(out, viewer).await?;
        }
        self.len += b.len();
        self.parts.push(b);
        Ok(())
    }

    /// Writes what is batched.
    async fn flush(&mut self, out: &mut Out<'_>, viewer: &Viewer<'_>) -> Result<()> {
        if self.parts.is_empty() {
            return Ok(());
        }
        write(out, viewer, &self.parts, self.len).await?;
        self.sent += self.len;
        self.parts.clear();
        self.len = 0;
        Ok(())
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
async fn write(out: &mut Out<'_>, viewer: &Viewer<'_>, parts: &[Bytes], n: usize) -> Result<()> {
    if viewer.ticket.is_some_and(Ticket::cut) {
        return cut("cut by the management API").map(drop);
    }
    if viewer.cut_at.is_some_and(crate::streams::expired) {
        log::info!("viewer of {} cut: its signature expired", viewer.shown);
        return cut("signature expired").map(drop);
    }
    match tokio::time::timeout(viewer.settings.queue, out.send(parts, n)).await {
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
    fn a_batch_holds_what_fits_and_always_takes_one_buffer() {
        let mut b = Batch::default();
        let big = Bytes::from(vec![7u8; BATCH + 1]);
        assert!(b.fits(&big, BATCH), "an empty batch refused a big buffer");
        b.len = 10;
        b.parts.push(Bytes::from_static(b"0123456789"));
        assert!(!b.fits(&big, BATCH));
        assert!(b.fits(&big, usize::MAX));
        b.parts.resize(MAX_PARTS, Bytes::new());
        assert!(!b.fits(&Bytes::from_static(b"x"), usize::MAX));
    }
}

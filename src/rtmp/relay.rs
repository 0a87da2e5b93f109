//! An admitted session relayed both ways: audio and video chunk by chunk as they
//! arrive (never a whole keyframe held), data and commands message by message,
//! all unchanged (Enhanced RTMP's HEVC and AV1 tags included) on the other
//! side's message stream. Protocol control stays per hop (window and
//! acknowledgements, pings answered where they come from) except the chunk
//! size: each side is sent with the chunk size the other sends with, so that a
//! chunk passes as one chunk. A forbid or drop cuts the session within half a
//! second.

use std::time::Duration;

use pingora_prometheus::prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite};

use super::origin::Upstream;
use super::peer::{Ended, Reader, Writer};
use crate::media::rtmp::chunk::{Item, Limits};
use crate::media::rtmp::{Message, PING_REQUEST, PING_RESPONSE, SET_CHUNK_SIZE, USER_CONTROL};
use crate::streams::Ticket;

/// After a read that did not fill its buffer (nothing more waiting), the relay
/// waits until the next tick of this grid before reading again, so that each
/// wakeup carries several messages (fewer reads, writes and wakeups per second)
/// at a latency well inside what players buffer.
const PACE: Duration = Duration::from_millis(20);

/// The next tick of the pacing grid, shared by every session of the process:
/// sessions that wait wake together, in one wakeup of the edge's thread,
/// instead of each at its own moment (measured: context switches were the
/// largest cost of relaying).
fn next_tick() -> tokio::time::Instant {
    static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
    let ticks = epoch.elapsed().as_nanos() / PACE.as_nanos() + 1;
    epoch + PACE * u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// How a relay ended.
#[derive(Debug)]
pub enum End {
    /// The encoder or player went away (or failed).
    Client(Ended),
    /// The origin ended the session (or failed).
    Origin(Ended),
    /// The management API cut it (forbid, drop, a replacing publisher).
    Cut,
    /// Its signature expired (`cut_on_expiry`).
    Expired,
    /// A write failed.
    Write(std::io::Error),
}

/// What the relay counts and watches.
pub struct Watch<'a> {
    pub ticket: Option<&'a Ticket>,
    /// `[in, out]` bytes of the domain.
    pub bytes: &'a [IntCounter; 2],
    /// The message stream the client was given.
    pub client_stream: u32,
    /// `cut_on_expiry`: when its signature expires (Unix seconds).
    pub cut_at: Option<i64>,
}

/// The largest chunk size passed on: nginx-rtmp's bound, and the relaying
/// decoder's, so a chunk size read is always one the other side accepts.
const MAX_PASSED_CHUNK: u32 = Limits::RELAYING.max_chunk_size as u32;

/// The Set Chunk Size that makes `writer_size` the sender's `reader_size`, if
/// they differ.
fn chunk_size_for(reader_size: usize, writer_size: usize) -> Option<Message> {
    let size = (reader_size as u32).min(MAX_PASSED_CHUNK);
    (size as usize != writer_size).then(|| Message::control(SET_CHUNK_SIZE, size))
}

/// What one side sent, as the other gets it, or what to answer the sender:
/// `(forward, answer)`.
fn route_item(item: Item, from: u32, to: u32) -> (Option<Item>, Option<Message>) {
    match item {
        Item::Piece(mut p) => {
            if p.stream_id == from {
                p.stream_id = to;
            }
            (Some(Item::Piece(p)), None)
        }
        Item::Message(m) => {
            let (fwd, answer) = route(m, from, to);
            (fwd.map(Item::Message), answer)
        }
    }
}

/// A message from one side as the other gets it, or what to answer the sender:
/// `(forward, answer)`.
fn route(m: Message, from: u32, to: u32) -> (Option<Message>, Option<Message>) {
    match m.kind {
        // The sender's chunk size (applied by the decoder) becomes ours to the
        // other side.
        SET_CHUNK_SIZE => {
            let size = m.u32().unwrap_or(0) & 0x7fff_ffff;
            let size = size.clamp(1, MAX_PASSED_CHUNK);
            (Some(Message::control(SET_CHUNK_SIZE, size)), None)
        }
        // Abort, ack, window, bandwidth: per hop.
        2 | 3 | 5 | 6 => (None, None),
        USER_CONTROL => match m.event() {
            Some((PING_REQUEST, data)) => (None, Some(Message::user_control(PING_RESPONSE, data))),
            Some((PING_RESPONSE, _)) | None => (None, None),
            // Stream begin/EOF/dry/set buffer length/recorded: their first four
            // bytes name a message stream.
            Some((event @ 0..=4, data)) if data.len() >= 4 => {
                let id = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let id = if id == from { to } else { id };
                let mut p = id.to_be_bytes().to_vec();
                p.extend_from_slice(&data[4..]);
                (Some(Message::user_control(event, &p)), None)
            }
            Some(_) => (None, None),
        },
        _ => {
            let stream_id = if m.stream_id == from { to } else { m.stream_id };
            (Some(Message { stream_id, ..m }), None)
        }
    }
}

/// Relays until one side ends or the session is cut.
pub async fn run<CR, CW>(
    client_r: &mut Reader<CR>,
    client_w: &mut Writer<CW>,
    origin: &mut Upstream,
    watch: Watch<'_>,
) -> End
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    let (from_client, to_origin) = (watch.client_stream, origin.stream_id);
    // What the origin sends a player passes through chunk by chunk too.
    origin.reader.decoder.pass_media();
    let period = Duration::from_millis(250);
    let mut tick = tokio::time::interval(period);
    let mut up: Vec<Item> = Vec::new();
    let mut down: Vec<Item> = Vec::new();
    // Each side is sent with the chunk size the other sends with.
    up.extend(
        chunk_size_for(client_r.decoder.chunk_size(), origin.writer.chunk_size())
            .map(Item::Message),
    );
    down.extend(
        chunk_size_for(origin.reader.decoder.chunk_size(), client_w.chunk_size())
            .map(Item::Message),
    );
    loop {
        if watch.ticket.is_some_and(Ticket::cut) {
            return End::Cut;
        }
        if watch.cut_at.is_some_and(crate::streams::expired) {
            return End::Expired;
        }
        let mut drained = false;
        tokio::select! {
            r = client_r.fill() => {
                match r {
                    Ok(full) => drained = !full,
                    Err(e) => return End::Client(e),
                }
                loop {
                    match client_r.buffered_item() {
                        Ok(Some(item)) => {
                            let (fwd, answer) = route_item(item, from_client, to_origin);
                            if let Some(item) = fwd {
                                watch.bytes[0].inc_by(payload_len(&item) as u64);
                                up.push(item);
                            }
                            down.extend(answer.map(Item::Message));
                        }
                        Ok(None) => break,
                        Err(e) => return End::Client(e),
                    }
                }
                down.extend(client_r.ack_due().map(Item::Message));
            }
            r = origin.reader.fill() => {
                match r {
                    Ok(full) => drained = !full,
                    Err(e) => return End::Origin(e),
                }
                loop {
                    match origin.reader.buffered_item() {
                        Ok(Some(item)) => {
                            let (fwd, answer) = route_item(item, to_origin, from_client);
                            if let Some(item) = fwd {
                                let n = payload_len(&item);
                                watch.bytes[1].inc_by(n as u64);
                                if let Some(t) = watch.ticket {
                                    t.sent(n);
                                }
                                down.push(item);
                            }
                            up.extend(answer.map(Item::Message));
                        }
                        Ok(None) => break,
                        Err(e) => return End::Origin(e),
                    }
                }
                up.extend(origin.reader.ack_due().map(Item::Message));
            }
            _ = tick.tick() => {
                client_r.pace(period);
                origin.reader.pace(period);
            }
        }
        if !up.is_empty() {
            if let Err(e) = origin.writer.relay(&up).await {
                return End::Write(e);
            }
            up.clear();
        }
        if !down.is_empty() {
            if let Err(e) = client_w.relay(&down).await {
                return End::Write(e);
            }
            down.clear();
        }
        if drained {
            tokio::time::sleep_until(next_tick()).await;
        }
    }
}

fn payload_len(item: &Item) -> usize {
    match item {
        Item::Message(m) => m.payload.len(),
        Item::Piece(p) => p.payload.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn media_moves_to_the_other_stream_and_control_stays_per_hop() {
        let video = Message {
            kind: 9,
            timestamp: 40,
            stream_id: 1,
            payload: Bytes::from_static(b"frame"),
        };
        let (fwd, answer) = route(video.clone(), 1, 7);
        assert_eq!(
            fwd.unwrap(),
            Message {
                stream_id: 7,
                ..video
            }
        );
        assert!(answer.is_none());
        let ack = Message::control(3, 100);
        assert_eq!(route(ack, 1, 7), (None, None));
        let ping = Message::user_control(PING_REQUEST, &[0, 0, 0, 9]);
        let (fwd, answer) = route(ping, 1, 7);
        assert!(fwd.is_none());
        assert_eq!(
            answer.unwrap().event(),
            Some((PING_RESPONSE, &[0u8, 0, 0, 9][..]))
        );
        let begin = Message::user_control(0, &7u32.to_be_bytes());
        let (fwd, _) = route(begin, 7, 1);
        assert_eq!(fwd.unwrap().event(), Some((0, &1u32.to_be_bytes()[..])));
    }
}

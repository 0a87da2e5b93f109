//! An admitted session relayed both ways, message by message: media, data and
//! commands pass unchanged (Enhanced RTMP's HEVC and AV1 tags included) on the
//! other side's message stream; protocol control stays per hop (each side gets
//! livegate's chunk size, window and acknowledgements, pings are answered where
//! they come from). A forbid or drop cuts the session within half a second.

use std::time::Duration;

use pingora_prometheus::prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite};

use super::origin::Upstream;
use super::peer::{Ended, Reader, Writer};
use crate::media::rtmp::{Message, PING_REQUEST, PING_RESPONSE, USER_CONTROL};
use crate::streams::Ticket;

/// After a read that did not fill its buffer (nothing more waiting), the relay
/// waits this long before reading again, so that each wakeup carries several
/// messages (fewer reads, writes and wakeups per second) at a latency well inside
/// what players buffer.
const PACE: Duration = Duration::from_millis(20);

/// How a relay ended.
#[derive(Debug)]
pub enum End {
    /// The encoder or player went away (or failed).
    Client(Ended),
    /// The origin ended the session (or failed).
    Origin(Ended),
    /// The management API cut it (forbid, drop, a replacing publisher).
    Cut,
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
}

/// A message from one side as the other gets it, or what to answer the sender:
/// `(forward, answer)`.
fn route(m: Message, from: u32, to: u32) -> (Option<Message>, Option<Message>) {
    match m.kind {
        // Chunk size (applied by the decoder), abort, ack, window, bandwidth:
        // per hop.
        1..=3 | 5 | 6 => (None, None),
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
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut up: Vec<Message> = Vec::new();
    let mut down: Vec<Message> = Vec::new();
    loop {
        if watch.ticket.is_some_and(Ticket::cut) {
            return End::Cut;
        }
        let mut drained = false;
        tokio::select! {
            r = client_r.fill() => {
                match r {
                    Ok(full) => drained = !full,
                    Err(e) => return End::Client(e),
                }
                loop {
                    match client_r.buffered() {
                        Ok(Some(m)) => {
                            let (fwd, answer) = route(m, from_client, to_origin);
                            if let Some(m) = fwd {
                                watch.bytes[0].inc_by(m.payload.len() as u64);
                                up.push(m);
                            }
                            down.extend(answer);
                        }
                        Ok(None) => break,
                        Err(e) => return End::Client(e),
                    }
                }
                down.extend(client_r.ack_due());
            }
            r = origin.reader.fill() => {
                match r {
                    Ok(full) => drained = !full,
                    Err(e) => return End::Origin(e),
                }
                loop {
                    match origin.reader.buffered() {
                        Ok(Some(m)) => {
                            let (fwd, answer) = route(m, to_origin, from_client);
                            if let Some(m) = fwd {
                                let n = m.payload.len();
                                watch.bytes[1].inc_by(n as u64);
                                if let Some(t) = watch.ticket {
                                    t.sent(n);
                                }
                                down.push(m);
                            }
                            up.extend(answer);
                        }
                        Ok(None) => break,
                        Err(e) => return End::Origin(e),
                    }
                }
                up.extend(origin.reader.ack_due());
            }
            _ = tick.tick() => {}
        }
        if !up.is_empty() {
            if let Err(e) = origin.writer.send(&up).await {
                return End::Write(e);
            }
            up.clear();
        }
        if !down.is_empty() {
            if let Err(e) = client_w.send(&down).await {
                return End::Write(e);
            }
            down.clear();
        }
        if drained {
            tokio::time::sleep(PACE).await;
        }
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

//! The RTMP chunk stream, pure: bytes in, whole messages out ([`Decoder`]), and
//! messages in, chunks out ([`encode`]). A relaying decoder passes audio and
//! video through as [`Piece`]s — each chunk's payload as it arrives, re-headed
//! by [`piece_head`] — so a keyframe is never held whole.
//!
//! A decoder holds at most one partial message per chunk stream, a bounded
//! number of chunk streams, and refuses a message longer than its bound before
//! buffering a byte of it — so what a peer can make it hold is fixed by its
//! [`Limits`], not by what the peer claims.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use super::Message;

/// The chunk size every RTMP connection starts with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;

/// What a decoder accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest message (its declared length).
    pub max_message: usize,
    /// The most chunk streams with state at once.
    pub max_streams: usize,
    /// The largest chunk size a peer may set.
    pub max_chunk_size: usize,
}

impl Limits {
    /// Before admission: commands only, a few KB.
    pub const HANDSHAKING: Limits = Limits {
        max_message: 4 << 10,
        max_streams: 8,
        max_chunk_size: 64 << 10,
    };
    /// A relayed session: a keyframe of a high-bitrate stream fits; the chunk
    /// size is at most nginx-rtmp's bound (a relay sends with what it reads).
    pub const RELAYING: Limits = Limits {
        max_message: 16 << 20,
        max_streams: 64,
        max_chunk_size: 10_485_760,
    };
}

/// Why a chunk stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    #[error("a message of {0} bytes is over the bound of {1}")]
    TooLong(usize, usize),
    #[error("messages in progress on several chunk streams would hold over {0} bytes")]
    TooMuchInProgress(usize),
    #[error("more than {0} chunk streams")]
    TooManyStreams(usize),
    #[error("chunk stream {0} continues a message it never started")]
    NoPrevious(u32),
    #[error("set chunk size {0} is out of range (1..={1})")]
    BadChunkSize(u32, usize),
    #[error("message type {0} is malformed")]
    Malformed(u8),
}

/// What a chunk stream remembers of its previous message (for headers of type 1–3).
#[derive(Debug, Clone, Default)]
struct Stream {
    timestamp: u32,
    delta: u32,
    length: usize,
    kind: u8,
    stream_id: u32,
    /// The previous header carried an extended timestamp (type 3 chunks repeat it).
    extended: bool,
    /// The message being assembled.
    partial: Option<BytesMut>,
    /// The message being passed through: its bytes passed so far.
    passed: Option<usize>,
    /// The lane its media passes on (see [`lane_csid`]).
    lane: Option<u8>,
}

/// How many chunk streams of one peer may carry media passed through: each gets
/// its own outgoing chunk stream, all below 32 (nginx-rtmp's bound).
pub const LANES: usize = 24;

/// The chunk stream a lane of passed media goes out on (8..32: clear of the
/// ones [`csid_for`] uses).
pub fn lane_csid(lane: u8) -> u32 {
    8 + u32::from(lane)
}

/// One chunk of an audio or video message passed through as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub kind: u8,
    pub timestamp: u32,
    pub stream_id: u32,
    /// The whole message's length.
    pub length: usize,
    /// The message's first chunk (its header goes out in full).
    pub first: bool,
    pub lane: u8,
    pub payload: Bytes,
}

/// What a relaying decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Message(Message),
    Piece(Piece),
}

/// Turns a peer's bytes into messages.
#[derive(Debug)]
pub struct Decoder {
    chunk_size: usize,
    limits: Limits,
    streams: HashMap<u32, Stream>,
    /// The declared lengths of the messages in progress, summed: at most two
    /// messages' bound, however many chunk streams carry them.
    held: usize,
    /// Pass audio and video through as pieces (a relaying decoder).
    pass: bool,
    /// Lanes given out so far.
    lanes: u8,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            held: 0,
            pass: false,
            lanes: 0,
        }
    }

    /// From now on audio and video pass through as [`Piece`]s ([`Decoder::item`]).
    pub fn pass_media(&mut self) {
        self.pass = true;
    }

    /// The chunk size the peer sends with.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The next message, or piece of passed media, in `buf` (consuming what it
    /// took); `None` when more bytes are needed.
    pub fn item(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, ChunkError> {
        loop {
            let Some(c) = self.chunk(&buf[..])? else {
                return Ok(None);
            };
            let mut payload = buf.split_to(c.end);
            payload.advance(c.start);
            if let Some(p) = self.pass_piece(c.csid, &payload) {
                return Ok(Some(Item::Piece(Piece {
                    payload: payload.freeze(),
                    ..p
                })));
            }
            if let Some(m) = self.absorb(c.csid, payload)? {
                return Ok(Some(Item::Message(m)));
            }
        }
    }

    /// The piece a chunk's payload makes (without its payload), if its message
    /// passes through: audio or video, on a chunk stream with a lane.
    fn pass_piece(&mut self, csid: u32, payload: &[u8]) -> Option<Piece> {
        if !self.pass {
            return None;
        }
        let lanes = &mut self.lanes;
        let s = self.streams.get_mut(&csid)?;
        if s.partial.is_some() || !matches!(s.kind, super::AUDIO | super::VIDEO) {
            return None;
        }
        let lane = match s.lane {
            Some(l) => l,
            None if usize::from(*lanes) < LANES => {
                let l = *lanes;
                *lanes += 1;
                s.lane = Some(l);
                l
            }
            None => return None,
        };
        let done = s.passed.unwrap_or(0);
        let passed = done + payload.len();
        s.passed = (passed < s.length).then_some(passed);
        Some(Piece {
            kind: s.kind,
            timestamp: s.timestamp,
            stream_id: s.stream_id,
            length: s.length,
            first: done == 0,
            lane,
            payload: Bytes::new(),
        })
    }

    /// After admission the bounds of a relayed session apply.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The next whole message in `buf` (consuming the chunks it took), `None`
    /// when more bytes are needed. A Set Chunk Size message is applied here (and
    /// returned too).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        loop {
            let Some(c) = self.chunk(&buf[..])? else {
                return Ok(None);
            };
            let mut payload = buf.split_to(c.end);
            payload.advance(c.start);
            if let Some(m) = self.absorb(c.csid, payload)? {
                return Ok(Some(m));
            }
        }
    }

    /// Parses the chunk at the start of `b` and, once it is all there, records
    /// its header in its chunk stream; where its payload lies.
    fn chunk(&mut self, b: &[u8]) -> Result<Option<Chunk>, ChunkError> {
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut at) = match first & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (64 + x as u32, 2),
                None => return Ok(None),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&x), Some(&y)) => (64 + x as u32 + 256 * y as u32, 3),
                _ => return Ok(None),
            },
            n => (n as u32, 1),
        };
        let header_len = [11, 7, 3, 0][fmt as usize];
        if b.len() < at + header_len {
            return Ok(None);
        }
        let h = &b[at..at + header_len];
        at += header_len;
        let prev = match self.streams.get(&csid) {
            Some(s) => Some(s),
            None if fmt != 0 => return Err(ChunkError::NoPrevious(csid)),
            None if self.streams.len() >= self.limits.max_streams => {
                return Err(ChunkError::TooManyStreams(self.limits.max_streams))
            }
            None => None,
        };
        let u24 = |s: &[u8]| u32::from_be_bytes([0, s[0], s[1], s[2]]);
        let (p_time, p_delta, p_len, p_kind, p_id, p_ext) =
            prev.map_or((0, 0, 0, 0, 0, false), |s| {
                (
                    s.timestamp,
                    s.delta,
                    s.length,
                    s.kind,
                    s.stream_id,
                    s.extended,
                )
            });
        let have = prev.and_then(|s| s.partial.as_ref().map(BytesMut::len).or(s.passed));
        let (length, kind, stream_id) = match fmt {
            0 => (
                u24(&h[3..6]) as usize,
                h[6],
                u32::from_le_bytes([h[7], h[8], h[9], h[10]]),
            ),
            1 => (u24(&h[3..6]) as usize, h[6], p_id),
            _ => (p_len, p_kind, p_id),
        };
        let stamp = (fmt < 3).then(|| u24(&h[0..3]));
        let extended = stamp.map_or(p_ext, |s| s == 0xff_ffff);
        let mut field = stamp.unwrap_or(0);
        if extended {
            if b.len() < at + 4 {
                return Ok(None);
            }
            field = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            at += 4;
        }
        if length > self.limits.max_message {
            return Err(ChunkError::TooLong(length, self.limits.max_message));
        }
        // A type 3 chunk continues the message in progress; any other header
        // (or a type 3 after a whole message) starts a message.
        let continuing = fmt == 3 && have.is_some();
        let (timestamp, delta) = match fmt {
            _ if continuing => (p_time, p_delta),
            0 => (field, 0),
            1 | 2 => (p_time.wrapping_add(field), field),
            _ => (p_time.wrapping_add(p_delta), p_delta),
        };
        let have = if continuing { have.unwrap_or(0) } else { 0 };
        let len = (length - have.min(length)).min(self.chunk_size);
        if b.len() < at + len {
            return Ok(None);
        }
        let s = self.streams.entry(csid).or_default();
        if !continuing && s.partial.take().is_some() {
            self.held -= s.length.min(self.held);
        }
        if !continuing {
            s.passed = None;
        }
        s.timestamp = timestamp;
        s.delta = delta;
        s.length = length;
        s.kind = kind;
        s.stream_id = stream_id;
        s.extended = extended;
        Ok(Some(Chunk {
            csid,
            start: at,
            end: at + len,
        }))
    }

    /// Adds one chunk's payload to its message; the message when whole.
    fn absorb(&mut self, csid: u32, chunk: BytesMut) -> Result<Option<Message>, ChunkError> {
        let Some(s) = self.streams.get_mut(&csid) else {
            return Ok(None);
        };
        let whole = match s.partial.as_mut() {
            None if chunk.len() >= s.length => chunk,
            None => {
                let cap = 2 * self.limits.max_message;
                if self.held + s.length > cap {
                    return Err(ChunkError::TooMuchInProgress(cap));
                }
                self.held += s.length;
                // The message's whole length at once: a keyframe is not grown by
                // doubling.
                let mut p = BytesMut::with_capacity(s.length);
                p.extend_from_slice(&chunk);
                s.partial = Some(p);
                return Ok(None);
            }
            Some(p) => {
                p.extend_from_slice(&chunk);
                if p.len() < s.length {
                    return Ok(None);
                }
                self.held -= s.length.min(self.held);
                s.partial.take().unwrap_or_default()
            }
        };
        self.finish(csid, whole.freeze())
    }

    fn finish(&mut self, csid: u32, payload: Bytes) -> Result<Option<Message>, ChunkError> {
        let Some(s) = self.streams.get(&csid) else {
            return Ok(None);
        };
        let m = Message {
            kind: s.kind,
            timestamp: s.timestamp,
            stream_id: s.stream_id,
            payload,
        };
        if m.kind == super::SET_CHUNK_SIZE {
            let size = m.u32().ok_or(ChunkError::Malformed(m.kind))? & 0x7fff_ffff;
            if size == 0 || size as usize > self.limits.max_chunk_size {
                return Err(ChunkError::BadChunkSize(size, self.limits.max_chunk_size));
            }
            self.chunk_size = size as usize;
        }
        if m.kind == super::ABORT {
            let id = m.u32().ok_or(ChunkError::Malformed(m.kind))?;
            if let Some(s) = self.streams.get_mut(&id) {
                if s.partial.take().is_some() {
                    self.held -= s.length.min(self.held);
                }
                s.passed = None;
            }
        }
        Ok(Some(m))
    }
}

/// Where one parsed chunk's payload lies in the buffer.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    csid: u32,
    start: usize,
    end: usize,
}

/// The chunk stream a message goes out on: control, commands, audio, video and
/// data each their own, all below 32 (nginx-rtmp closes sessions past that).
pub fn csid_for(kind: u8) -> u32 {
    match kind {
        1..=6 => 2,
        super::AUDIO => 4,
        super::VIDEO => 6,
        super::DATA_AMF0 | super::DATA_AMF3 => 5,
        _ => 3,
    }
}

/// `m` as chunks of `chunk_size` — a full (type 0) header, then type 3
/// continuations, with the extended timestamp where it is due — without copying
/// its payload: each chunk's header is appended to `heads`, and `chunk` is told
/// where that header lies in `heads` and which payload bytes follow it.
pub fn chunks(
    m: &Message,
    chunk_size: usize,
    heads: &mut Vec<u8>,
    mut chunk: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>),
) {
    let csid = csid_for(m.kind);
    let extended = m.timestamp >= 0xff_ffff;
    let stamp = if extended { 0xff_ffff } else { m.timestamp };
    let len = m.payload.len();
    let size = chunk_size.max(1);
    let mut at = 0;
    loop {
        let start = heads.len();
        if at == 0 {
            heads.push(csid as u8);
            heads.extend_from_slice(&stamp.to_be_bytes()[1..]);
            heads.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
            heads.push(m.kind);
            heads.extend_from_slice(&m.stream_id.to_le_bytes());
        } else {
            heads.push(0xc0 | csid as u8);
        }
        if extended {
            heads.extend_from_slice(&m.timestamp.to_be_bytes());
        }
        let end = (at + size).min(len);
        chunk(start..heads.len(), at..end);
        at = end;
        if at >= len {
            return;
        }
    }
}

/// The header of a passed piece as it goes out, appended to `heads`: a full
/// (type 0) header on its lane for a message's first chunk, a type 3 one for
/// the others. The receiver must read with the sender's chunk size, so that
/// every piece is one chunk (a relay sends with the chunk size it receives with).
pub fn piece_head(p: &Piece, heads: &mut Vec<u8>) -> std::ops::Range<usize> {
    let start = heads.len();
    let csid = lane_csid(p.lane) as u8;
    let extended = p.timestamp >= 0xff_ffff;
    if p.first {
        let stamp = if extended { 0xff_ffff } else { p.timestamp };
        heads.push(csid);
        heads.extend_from_slice(&stamp.to_be_bytes()[1..]);
        heads.extend_from_slice(&(p.length as u32).to_be_bytes()[1..]);
        heads.push(p.kind);
        heads.extend_from_slice(&p.stream_id.to_le_bytes());
    } else {
        heads.push(0xc0 | csid);
    }
    if extended {
        heads.extend_from_slice(&p.timestamp.to_be_bytes());
    }
    start..heads.len()
}

/// Appends `m` as chunks of `chunk_size` (see [`chunks`]), copied.
pub fn encode(m: &Message, chunk_size: usize, out: &mut BytesMut) {
    let mut heads = Vec::new();
    let mut pieces = Vec::new();
    chunks(m, chunk_size, &mut heads, |h, b| pieces.push((h, b)));
    for (h, b) in pieces {
        out.extend_from_slice(&heads[h]);
        out.extend_from_slice(&m.payload[b]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtmp::{AUDIO, VIDEO};
    use proptest::prelude::*;

    fn msg(kind: u8, timestamp: u32, len: usize) -> Message {
        Message {
            kind,
            timestamp,
            stream_id: 1,
            payload: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>()),
        }
    }

    fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Message>, ChunkError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(m) = d.decode(&mut buf)? {
            out.push(m);
        }
        Ok(out)
    }

    /// A relay's two hops: `wire` (chunked at `size`) decoded with media passed
    /// through, sent on again as [`Writer`] does it at the same chunk size, and
    /// decoded whole at the far end.
    fn relayed(wire: &[u8], size: usize) -> (Vec<Message>, usize) {
        let mut near = Decoder::new(Limits::RELAYING);
        near.pass_media();
        let mut buf = BytesMut::from(wire);
        let (mut out, mut pieces) = (BytesMut::new(), 0);
        let mut heads = Vec::new();
        let set = Message::control(super::super::SET_CHUNK_SIZE, size as u32);
        encode(&set, DEFAULT_CHUNK_SIZE, &mut out);
        while let Some(item) = near.item(&mut buf).unwrap() {
            match item {
                Item::Piece(p) => {
                    assert!(p.payload.len() <= size);
                    heads.clear();
                    let h = piece_head(&p, &mut heads);
                    out.extend_from_slice(&heads[h]);
                    out.extend_from_slice(&p.payload);
                    pieces += 1;
                }
                Item::Message(m) => encode(&m, size, &mut out),
            }
        }
        let mut far = Decoder::new(Limits::RELAYING);
        let got = decode_all(&mut far, &out).unwrap();
        (
            got.into_iter()
                .filter(|m| m.kind != super::super::SET_CHUNK_SIZE)
                .collect(),
            pieces,
        )
    }

    #[test]
    fn media_passes_chunk_by_chunk_and_arrives_whole() {
        for size in [1, 128, 4096] {
            let sent = vec![
                msg(VIDEO, 0, 9000),
                msg(AUDIO, 23, 300),
                msg(crate::media::rtmp::DATA_AMF0, 30, 50),
                msg(VIDEO, 0x0100_0000, 5000),
                msg(AUDIO, 0x0100_0017, 0),
            ];
            // Interleaved as encoders send them: audio chunks between video ones.
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            let set = Message::control(super::super::SET_CHUNK_SIZE, size as u32);
            encode(&set, DEFAULT_CHUNK_SIZE, &mut a);
            for m in &sent {
                let mut one = BytesMut::new();
                encode(m, size, &mut one);
                match m.kind {
                    VIDEO => a.extend_from_slice(&one),
                    _ => b.extend_from_slice(&one),
                }
            }
            a.extend_from_slice(&b);
            let (got, pieces) = relayed(&a, size);
            let key = |m: &Message| (m.kind, m.timestamp, m.payload.clone());
            let mut want: Vec<_> = sent.iter().map(key).collect();
            let mut have: Vec<_> = got.iter().map(key).collect();
            want.sort();
            have.sort();
            assert_eq!(have, want, "chunk size {size}");
            assert!(pieces >= 4, "media passed as pieces ({pieces})");
        }
    }

    #[test]
    fn messages_round_trip_through_chunks_of_any_size() {
        for size in [1, 128, 4096] {
            let sent = vec![
                msg(VIDEO, 0, 5000),
                msg(AUDIO, 40, 3),
                msg(VIDEO, 0x0100_0000, 300),
                msg(VIDEO, 0x0100_0040, 0),
            ];
            let mut wire = BytesMut::new();
            if size != DEFAULT_CHUNK_SIZE {
                let set = Message::control(crate::media::rtmp::SET_CHUNK_SIZE, size as u32);
                encode(&set, DEFAULT_CHUNK_SIZE, &mut wire);
            }
            for m in &sent {
                encode(m, size, &mut wire);
            }
            let mut d = Decoder::new(Limits::RELAYING);
            let got = decode_all(&mut d, &wire).unwrap();
            let got: Vec<_> = got.into_iter().filter(|m| m.kind != 1).collect();
            assert_eq!(got, sent, "chunk size {size}");
        }
    }

    #[test]
    fn compressed_headers_reuse_the_previous_ones() {
        // fmt 0 on csid 4, then fmt 1 (delta 20, new length), fmt 2 (delta 20), fmt 3.
        let mut wire = vec![0x04, 0, 0, 10, 0, 0, 2, 8, 1, 0, 0, 0, b'a', b'b'];
        wire.extend_from_slice(&[0x44, 0, 0, 20, 0, 0, 1, 8, b'c']);
        wire.extend_from_slice(&[0x84, 0, 0, 20, b'd']);
        wire.extend_from_slice(&[0xc4, b'e']);
        let mut d = Decoder::new(Limits::RELAYING);
        let got = decode_all(&mut d, &wire).unwrap();
        let stamps: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(stamps, [10, 30, 50, 70]);
        assert_eq!(&got[3].payload[..], b"e");
        assert!(got.iter().all(|m| m.stream_id == 1 && m.kind == 8));
    }

    #[test]
    fn hostile_chunk_streams_are_refused_before_they_are_held() {
        let mut d = Decoder::new(Limits::HANDSHAKING);
        // A 16 MB message declared before connect.
        let huge = [0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0];
        assert!(matches!(
            decode_all(&mut d, &huge),
            Err(ChunkError::TooLong(_, _))
        ));
        let mut d = Decoder::new(Limits::HANDSHAKING);
        assert_eq!(
            decode_all(&mut d, &[0xc9, 1]),
            Err(ChunkError::NoPrevious(9))
        );
        let mut many = Vec::new();
        for csid in 2..20u8 {
            many.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 1, 20, 0, 0, 0, 0, 1]);
        }
        let mut d = Decoder::new(Limits::HANDSHAKING);
        assert_eq!(
            decode_all(&mut d, &many),
            Err(ChunkError::TooManyStreams(8))
        );
        // Big messages begun on many chunk streams at once: refused before the
        // sum is held.
        let mut wide = Vec::new();
        for csid in 2..40u8 {
            wide.extend_from_slice(&[csid, 0, 0, 0, 0xf0, 0, 0, 9, 1, 0, 0, 0]);
            wide.extend_from_slice(&[7; DEFAULT_CHUNK_SIZE]);
        }
        let mut d = Decoder::new(Limits::RELAYING);
        assert_eq!(
            decode_all(&mut d, &wide),
            Err(ChunkError::TooMuchInProgress(32 << 20))
        );
        assert!(d.held <= 32 << 20);
        for size in [0u32, 1 << 30] {
            let mut wire = BytesMut::new();
            encode(
                &Message::control(crate::media::rtmp::SET_CHUNK_SIZE, size),
                128,
                &mut wire,
            );
            let mut d = Decoder::new(Limits::HANDSHAKING);
            assert!(matches!(
                decode_all(&mut d, &wire),
                Err(ChunkError::BadChunkSize(_, _))
            ));
        }
    }

    /// A million inputs through the decoder and the command parser: chunk
    /// headers of every format on a few chunk streams, with lengths, types and
    /// payload bytes (AMF markers, strings, objects) drawn at random, cut into
    /// random reads. Errors are fine; a panic, or holding past the bounds, is not.
    #[test]
    fn a_million_random_inputs_decode_or_fail_cleanly() {
        use crate::media::rtmp::command::Command;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut wire = Vec::with_capacity(256);
        let (mut messages, mut errors) = (0u64, 0u64);
        for _ in 0..1_000_000 {
            wire.clear();
            for _ in 0..(next() % 4 + 1) {
                let r = next();
                let fmt = if wire.is_empty() { 0 } else { (r % 4) as u8 };
                let csid = [2u8, 3, 4, 63][(r >> 2) as usize % 4];
                wire.push(fmt << 6 | csid);
                let len = (r >> 8) % 48;
                let kind = [1u8, 4, 8, 9, 18, 20, 17, 2, 99][(r >> 16) as usize % 9];
                match fmt {
                    0 => wire.extend_from_slice(&[
                        0,
                        0,
                        (r >> 24) as u8,
                        0,
                        0,
                        len as u8,
                        kind,
                        1,
                        0,
                        0,
                        0,
                    ]),
                    1 => wire.extend_from_slice(&[0, 0, 1, 0, 0, len as u8, kind]),
                    2 => wire.extend_from_slice(&[0, 0, 1]),
                    _ => {}
                }
                for i in 0..len {
                    let b = next();
                    // Mostly AMF-shaped bytes, sometimes anything.
                    wire.push(match (b % 7, i) {
                        (0, _) => 2,
                        (1, _) => 3,
                        (2, _) => 0,
                        (3, _) => 9,
                        _ => (b >> 8) as u8,
                    });
                }
            }
            let mut d = Decoder::new(Limits::HANDSHAKING);
            let mut buf = BytesMut::new();
            let cut = (next() as usize) % (wire.len() + 1);
            'pieces: for piece in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(piece);
                loop {
                    match d.decode(&mut buf) {
                        Ok(Some(m)) => {
                            messages += 1;
                            assert!(m.payload.len() <= Limits::HANDSHAKING.max_message);
                            if m.is_command() {
                                let _ = Command::parse(&m);
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            errors += 1;
                            break 'pieces;
                        }
                    }
                }
            }
        }
        assert!(
            messages > 100_000 && errors > 100_000,
            "{messages} messages, {errors} errors"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Whatever the bytes, in whatever pieces: messages or an error, never a
        /// panic, and never more held than the bounds allow.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            split in 0usize..600,
        ) {
            let mut d = Decoder::new(Limits::HANDSHAKING);
            let mut buf = BytesMut::new();
            let cut = split.min(bytes.len());
            for piece in [&bytes[..cut], &bytes[cut..]] {
                buf.extend_from_slice(piece);
                loop {
                    match d.decode(&mut buf) {
                        Ok(Some(m)) => prop_assert!(m.payload.len() <= Limits::HANDSHAKING.max_message),
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
            }
            let held: usize = d.streams.values().map(|s| s.partial.as_ref().map_or(0, |p| p.len())).sum();
            prop_assert!(held <= Limits::HANDSHAKING.max_message * Limits::HANDSHAKING.max_streams);
        }

        /// A relaying decoder, passing media through: items or an error, never a
        /// panic; no piece larger than the chunk size it was read with, and the
        /// pieces of a message never more than its length.
        #[test]
        fn any_bytes_pass_or_fail_cleanly(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            split in 0usize..600,
        ) {
            let mut d = Decoder::new(Limits::HANDSHAKING);
            d.pass_media();
            let mut buf = BytesMut::new();
            let cut = split.min(bytes.len());
            let mut passed: HashMap<u8, usize> = HashMap::new();
            for piece in [&bytes[..cut], &bytes[cut..]] {
                buf.extend_from_slice(piece);
                loop {
                    match d.item(&mut buf) {
                        Ok(Some(Item::Piece(p))) => {
                            prop_assert!(p.payload.len() <= d.chunk_size());
                            let n = passed.entry(p.lane).or_default();
                            if p.first {
                                *n = 0;
                            }
                            *n += p.payload.len();
                            prop_assert!(*n <= p.length);
                            prop_assert!(usize::from(p.lane) < LANES);
                        }
                        Ok(Some(Item::Message(m))) => prop_assert!(m.payload.len() <= Limits::HANDSHAKING.max_message),
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
            }
        }
    }
}

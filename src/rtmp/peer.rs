//! One side of an RTMP session (the encoder or player, or the origin) as
//! messages: reads through a bounded buffer and the chunk decoder, writes
//! through the chunk encoder, and acknowledges what it received as the peer's
//! window asks.

use std::io::IoSlice;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::media::rtmp::chunk::{self, ChunkError, Decoder, Limits};
use crate::media::rtmp::{Message, ACK, WINDOW_ACK_SIZE};

/// The chunk size livegate sends with (announced to both sides).
pub const OUT_CHUNK: usize = 4096;
/// The window livegate announces (nginx-rtmp's `ack_window`).
pub const WINDOW: u32 = 5_000_000;

/// Why a side stopped.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    #[error("the connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Chunk(#[from] ChunkError),
    #[error("over {0} bytes buffered")]
    Buffer(usize),
}

/// The reading half of a side.
pub struct Reader<R> {
    pub io: R,
    buf: BytesMut,
    pub decoder: Decoder,
    /// The most bytes held before a chunk completes.
    max_buf: usize,
    received: u64,
    acked: u64,
    /// The peer's window: acknowledge every half of it.
    window: u32,
    /// How much the next read reserves: doubled after a read that filled it,
    /// halved after one that used a quarter (the origin side of a publisher
    /// carries acknowledgements only).
    step: usize,
}

/// The writing half of a side.
pub struct Writer<W> {
    pub io: W,
    /// Chunk headers of the batch being written (its payloads are written from
    /// the messages themselves), and each chunk's header and payload ranges.
    heads: Vec<u8>,
    spans: Vec<Span>,
    /// Bytes written, for metrics.
    pub sent: u64,
}

/// One chunk of a batch: its header in `heads`, its payload in message `.2`.
type Span = (std::ops::Range<usize>, std::ops::Range<usize>, usize);

/// The most slices one vectored write is given (below every IOV_MAX).
const SLICES: usize = 512;

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R, limits: Limits, max_buf: usize) -> Reader<R> {
        Reader {
            io,
            buf: BytesMut::new(),
            decoder: Decoder::new(limits),
            max_buf,
            received: 0,
            acked: 0,
            window: 2_500_000,
            step: 2 << 10,
        }
    }

    /// After admission: a relayed session's bounds.
    pub fn relaying(&mut self, max_buf: usize) {
        self.decoder.set_limits(Limits::RELAYING);
        self.max_buf = max_buf;
    }

    /// The next whole message already buffered, if any (no reading).
    pub fn buffered(&mut self) -> Result<Option<Message>, Ended> {
        let m = self.decoder.decode(&mut self.buf)?;
        if let Some(m) = &m {
            if m.kind == WINDOW_ACK_SIZE {
                self.window = m.u32().unwrap_or(self.window).max(1);
            }
        }
        Ok(m)
    }

    /// Reads once more into the buffer (cancel-safe: for `select!`); whether the
    /// read filled what it reserved (more may be waiting).
    pub async fn fill(&mut self) -> Result<bool, Ended> {
        let room = self.max_buf.saturating_sub(self.buf.len());
        if room == 0 {
            return Err(Ended::Buffer(self.max_buf));
        }
        // Grown as chunks need it: a handshake holds ~2 KB, a relay reads 2 to
        // 16 KB at a time (more reads of a fast stream beat more memory per
        // session); what a chunk leaves is kept.
        let want = room.min(self.step);
        self.buf.reserve(want);
        let n = (&mut self.io)
            .take(want as u64)
            .read_buf(&mut self.buf)
            .await?;
        let top = if self.max_buf > 64 << 10 {
            16 << 10
        } else {
            2 << 10
        };
        if n >= want {
            self.step = (self.step * 2).min(top);
        } else if n < want / 4 {
            self.step = (self.step / 2).max(2 << 10);
        }
        if n == 0 {
            return Err(Ended::Closed);
        }
        self.received += n as u64;
        Ok(n >= want)
    }

    /// The next message, reading as needed.
    pub async fn next(&mut self) -> Result<Message, Ended> {
        loop {
            if let Some(m) = self.buffered()? {
                return Ok(m);
            }
            self.fill().await?;
        }
    }

    /// An acknowledgement due to the peer, if half its window went unacknowledged.
    pub fn ack_due(&mut self) -> Option<Message> {
        if self.received - self.acked < (self.window / 2) as u64 {
            return None;
        }
        self.acked = self.received;
        Some(Message::control(ACK, self.received as u32))
    }

    /// Raw bytes of the handshake (before chunks).
    pub async fn exact(&mut self, n: usize) -> Result<BytesMut, Ended> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.split_to(n))
    }
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Writer<W> {
        Writer {
            io,
            heads: Vec::new(),
            spans: Vec::new(),
            sent: 0,
        }
    }

    /// Writes messages, chunked at [`OUT_CHUNK`]: headers and payloads in
    /// vectored writes, no payload copied.
    pub async fn send(&mut self, messages: &[Message]) -> std::io::Result<()> {
        let mut heads = std::mem::take(&mut self.heads);
        let mut spans = std::mem::take(&mut self.spans);
        heads.clear();
        spans.clear();
        for (i, m) in messages.iter().enumerate() {
            chunk::chunks(m, OUT_CHUNK, &mut heads, |h, b| spans.push((h, b, i)));
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(spans.len() * 2);
        for (h, b, i) in spans.drain(..) {
            slices.push(IoSlice::new(&heads[h]));
            if !b.is_empty() {
                slices.push(IoSlice::new(&messages[i].payload[b]));
            }
        }
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let k = rest.len().min(SLICES);
            let n = self.io.write_vectored(&rest[..k]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.sent += n as u64;
            IoSlice::advance_slices(&mut rest, n);
        }
        drop(slices);
        self.io.flush().await?;
        // A keyframe's headers are not kept for the deltas that follow.
        if heads.capacity() <= 4 << 10 {
            self.heads = heads;
            self.spans = spans;
        }
        Ok(())
    }

    /// Writes bytes as they are (the handshake).
    pub async fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        self.sent += bytes.len() as u64;
        Ok(())
    }
}

//! One side of an RTMP session (the encoder or player, or the origin) as
//! messages: reads through a bounded buffer and the chunk decoder, writes
//! through the chunk encoder, and acknowledges what it received as the peer's
//! window asks.

use std::io::IoSlice;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::media::rtmp::chunk::{self, ChunkError, Decoder, Item, Limits};
use crate::media::rtmp::{Message, ACK, SET_CHUNK_SIZE, WINDOW_ACK_SIZE};

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
    /// The socket, to pace its wakeups ([`Reader::pace`]).
    fd: Option<std::os::fd::RawFd>,
    /// `received` and the SO_RCVLOWAT set at the last [`Reader::pace`].
    paced: (u64, i32),
}

/// The writing half of a side.
pub struct Writer<W> {
    pub io: W,
    /// Chunk headers of the batch being written (its payloads are written from
    /// the messages themselves), and each chunk's header and payload ranges.
    heads: Vec<u8>,
    spans: Vec<Span>,
    /// The chunk size it sends with: [`OUT_CHUNK`] as announced at setup, then
    /// what each Set Chunk Size it sends says.
    chunk_size: usize,
    /// Bytes written, for metrics.
    pub sent: u64,
}

/// One chunk of a batch: its header in `heads`, its payload in item `.2`.
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
            fd: None,
            paced: (0, 1),
        }
    }

    /// The socket it reads, for [`Reader::pace`].
    pub fn on_socket(mut self, fd: std::os::fd::RawFd) -> Reader<R> {
        self.fd = Some(fd);
        self
    }

    /// Called every `period`: asks the kernel to signal the socket readable
    /// only once about 40 ms of what it carried over the period is waiting
    /// (SO_RCVLOWAT, at most 16 KB: about a frame of a 4 Mbit/s stream), so a
    /// stream wakes the edge's thread about once per frame instead of once per
    /// TCP segment (measured: those wakeups were most of relaying's cost). A
    /// slow or paused one gets 1 byte again at the next call (lowering it
    /// signals what is waiting at once), so nothing waits longer than `period`.
    pub fn pace(&mut self, period: Duration) {
        let Some(fd) = self.fd else { return };
        let got = self.received - self.paced.0;
        let per_40ms = got as u128 * 40 / period.as_millis().max(1);
        let lowat = per_40ms.clamp(1, 16 << 10) as i32;
        self.paced.0 = self.received;
        if lowat == self.paced.1 {
            return;
        }
        self.paced.1 = lowat;
        // SAFETY: setsockopt on the socket this reader reads, with a valid int.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&lowat as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            );
        }
    }

    /// After admission: a relayed session's bounds; audio and video pass
    /// through as pieces.
    pub fn relaying(&mut self, max_buf: usize) {
        self.decoder.set_limits(Limits::RELAYING);
        self.decoder.pass_media();
        self.max_buf = max_buf;
    }

    /// The next message or piece already buffered, if any (no reading).
    pub fn buffered_item(&mut self) -> Result<Option<Item>, Ended> {
        let item = self.decoder.item(&mut self.buf)?;
        if let Some(Item::Message(m)) = &item {
            if m.kind == WINDOW_ACK_SIZE {
                self.window = m.u32().unwrap_or(self.window).max(1);
            }
        }
        Ok(item)
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
            chunk_size: OUT_CHUNK,
            sent: 0,
        }
    }

    /// The chunk size it sends with.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Writes messages (see [`Writer::relay`]).
    pub async fn send(&mut self, messages: &[Message]) -> std::io::Result<()> {
        let items: Vec<Item> = messages.iter().cloned().map(Item::Message).collect();
        self.relay(&items).await
    }

    /// Writes messages, chunked at its chunk size, and passed pieces, one chunk
    /// each: headers and payloads in vectored writes, no payload copied. A Set
    /// Chunk Size among them applies to what follows it.
    pub async fn relay(&mut self, items: &[Item]) -> std::io::Result<()> {
        let mut heads = std::mem::take(&mut self.heads);
        let mut spans = std::mem::take(&mut self.spans);
        heads.clear();
        spans.clear();
        for (i, item) in items.iter().enumerate() {
            match item {
                Item::Message(m) => {
                    chunk::chunks(m, self.chunk_size, &mut heads, |h, b| spans.push((h, b, i)));
                    if m.kind == SET_CHUNK_SIZE {
                        let size = m.u32().unwrap_or(OUT_CHUNK as u32) & 0x7fff_ffff;
                        self.chunk_size = (size as usize).max(1);
                    }
                }
                Item::Piece(p) => {
                    let h = chunk::piece_head(p, &mut heads);
                    spans.push((h, 0..p.payload.len(), i));
                }
            }
        }
        let payload = |i: usize| match &items[i] {
            Item::Message(m) => &m.payload,
            Item::Piece(p) => &p.payload,
        };
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(spans.len() * 2);
        for (h, b, i) in spans.drain(..) {
            slices.push(IoSlice::new(&heads[h]));
            if !b.is_empty() {
                slices.push(IoSlice::new(&payload(i)[b]));
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

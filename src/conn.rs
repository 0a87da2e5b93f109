//! Slow and excess clients, bounded before they cost memory.
//!
//! Pingora times out each read of a request head, not the whole head: a client that
//! sends one header line every few seconds is held forever, and nothing caps how many
//! connections a process holds. [`Guard`] wraps the proxy's server app:
//!
//! - at most `server.max_connections` client connections at once; one more is closed
//!   as soon as it is accepted and counted in `livegate_connections_refused_total`;
//! - every request head must arrive whole within `server.header_timeout_ms` — counted
//!   from the connection's accept for its first request, and from the first byte of
//!   each later one (the wait between keep-alive requests is Pingora's keep-alive
//!   timeout). A client past the deadline is disconnected.
//!
//! The deadline is enforced by [`HeadDeadline`], a thin wrapper around the accepted
//! stream that watches the bytes Pingora reads for the blank line that ends a head.
//! Bodies and responses pass through untouched: a live stream is never cut by it.
//!
//! [`Guard`] also runs HTTP/1 keep-alive itself, so that a connection costs little
//! when it holds no request:
//!
//! - between requests it waits for the next request's first byte with nothing but
//!   the stream (Pingora's loop would wait inside a new session and the proxy's
//!   request future, about 40 KB);
//! - a request may hand its connection over ([`take`]): the proxy serves an
//!   endless answer (a fan-out viewer) from its own small future, run here after
//!   Pingora's per-request state is gone.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::{HttpServerApp, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as TcpStream;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::Stream;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora_core::server::ShutdownWatch;
use rustix::net::RecvFlags;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics::metrics;

/// Pingora's keep-alive timeout: it gives every HTTP/1 session 60 s between
/// requests, and nothing in livegate changes it.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// What a request that took its connection over runs on it to the end.
pub type Handed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a connection's [`Guard`] and the requests read from it share.
#[derive(Default)]
struct Shared {
    /// Set when a request is done and the next head may follow.
    next_head: AtomicBool,
    /// A request's connection, taken over ([`Taken::run`]).
    handed: Mutex<Option<Handed>>,
}

/// A connection taken from Pingora's request machinery by [`take`]: its stream,
/// and where to leave what is to run on it.
pub struct Taken {
    pub stream: Stream,
    shared: Arc<Shared>,
}

impl Taken {
    /// Leaves `answer` to the connection's [`Guard`]: it runs once Pingora has
    /// finished the request (whose session now holds an empty stream), in the
    /// connection's task and slot.
    pub fn run(self, answer: impl FnOnce(Stream) -> Handed) {
        let handed = answer(self.stream);
        *self.shared.handed.lock().unwrap_or_else(|e| e.into_inner()) = Some(handed);
    }
}

/// Takes an HTTP/1 request's connection out of its Pingora session, leaving an
/// empty stream there that will not be reused. `None` (nothing changed) for
/// HTTP/2, or a connection not accepted through a [`Guard`]. What the session
/// buffered unwritten is flushed by the taker.
pub fn take(session: &mut ServerSession) -> Option<Taken> {
    let ServerSession::H1(h1) = &*session else {
        return None;
    };
    let shared = h1
        .stream()
        .as_any()
        .downcast_ref::<HeadDeadline>()?
        .shared
        .clone();
    session.set_keepalive(None);
    let empty: Stream = Box::new(std::io::Cursor::new(Vec::new()));
    let ServerSession::H1(h1) = std::mem::replace(session, ServerSession::new_http1(empty)) else {
        return None;
    };
    Some(Taken {
        stream: h1.into_inner(),
        shared,
    })
}

/// The most buffers one [`Body::send`] takes (one `writev`).
pub const MAX_PARTS: usize = 32;

/// An HTTP/1 response body written straight to a taken connection: the head went
/// out through Pingora, the body's framing (`chunked` for HTTP/1.1, the
/// connection's end for HTTP/1.0) is written here, each piece one `writev` of
/// the caller's buffers, none of them copied.
pub struct Body {
    stream: Stream,
    chunked: bool,
}

impl Body {
    /// Flushes what the session left buffered (the response head).
    pub async fn new(mut stream: Stream, chunked: bool) -> io::Result<Body> {
        stream.flush().await?;
        Ok(Body { stream, chunked })
    }

    /// Writes `parts` (at most [`MAX_PARTS`]) as one piece of the body.
    pub async fn send(&mut self, parts: &[bytes::Bytes]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len == 0 {
            return Ok(());
        }
        if parts.len() > MAX_PARTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "too many parts",
            ));
        }
        let mut line = [0u8; 20];
        let size = {
            let mut rest = &mut line[..];
            io::Write::write_fmt(&mut rest, format_args!("{len:x}\r\n"))?;
            let written = 20 - rest.len();
            &line[..written]
        };
        let mut slices = [io::IoSlice::new(&[]); MAX_PARTS + 2];
        let framing: (&[u8], &[u8]) = match self.chunked {
            true => (size, b"\r\n"),
            false => (&[], &[]),
        };
        let mut n = 0;
        for b in std::iter::once(framing.0)
            .chain(parts.iter().map(|p| &p[..]))
            .chain(std::iter::once(framing.1))
            .filter(|b| !b.is_empty())
        {
            slices[n] = io::IoSlice::new(b);
            n += 1;
        }
        let mut left = &mut slices[..n];
        while !left.is_empty() {
            match self.stream.write_vectored(left).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                sent => io::IoSlice::advance_slices(&mut left, sent),
            }
        }
        self.stream.flush().await
    }

    /// Ends the body (the last chunk), and the connection.
    pub async fn end(mut self) -> io::Result<()> {
        if self.chunked {
            self.stream.write_all(b"0\r\n\r\n").await?;
        }
        self.stream.flush().await?;
        AsyncWriteExt::shutdown(&mut self.stream).await
    }
}

/// A server app with livegate's connection limits around it.
pub struct Guard<A> {
    inner: Arc<A>,
    connections: Arc<Connections>,
    header_timeout: Duration,
}

/// The process's client connections, HTTP and RTMP alike: at most
/// `server.max_connections` at once.
pub struct Connections {
    max_connections: usize,
    open: AtomicUsize,
    /// Unix second of the last "refused" warning (one a second at most).
    warned: AtomicI64,
}

impl<A> Guard<A> {
    pub fn new(inner: A, connections: Arc<Connections>, header_timeout: Duration) -> Guard<A> {
        Guard {
            inner: Arc::new(inner),
            connections,
            header_timeout,
        }
    }
}

impl Connections {
    pub fn new(max_connections: usize) -> Connections {
        metrics()
            .client_connections_max
            .set(i64::try_from(max_connections).unwrap_or(i64::MAX));
        Connections {
            max_connections,
            open: AtomicUsize::new(0),
            warned: AtomicI64::new(0),
        }
    }

    /// Takes a connection slot, or `None` (counted and warned about) when every
    /// slot is in use.
    pub fn slot(&self) -> Option<Slot<'_>> {
        let taken = self.open.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.open);
        if taken < self.max_connections {
            metrics().client_connections.set((taken + 1) as i64);
            return Some(slot);
        }
        drop(slot);
        self.refused();
        None
    }

    fn refused(&self) {
        metrics().connections_refused.inc();
        let now = crate::unix_now();
        if self.warned.swap(now, Ordering::Relaxed) != now {
            log::warn!(
                "refusing connections: {} are open, server.max_connections is {}",
                self.open.load(Ordering::Relaxed),
                self.max_connections
            );
        }
    }
}

/// One open connection's place in the count, given back when dropped.
pub struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let was = self.0.fetch_sub(1, Ordering::AcqRel);
        metrics()
            .client_connections
            .set(was.saturating_sub(1) as i64);
    }
}

impl<A: HttpServerApp + Send + Sync + 'static> Guard<A> {
    /// Whether this connection speaks plain HTTP/1 (else Pingora's own loop
    /// serves it: HTTP/2 by ALPN, h2c, custom protocols).
    fn h1(&self, stream: &Stream) -> bool {
        let options = self.inner.server_options();
        !options.is_some_and(|o| o.h2c || o.force_custom)
            && matches!(stream.selected_alpn_proto(), None | Some(ALPN::H1))
    }

    /// Serves an HTTP/1 connection's requests, as Pingora's loop does, but waits
    /// for each next request without a session, and runs what a request handed
    /// over (see the module documentation).
    async fn keep_alive(
        self: &Arc<Self>,
        stream: Stream,
        shared: &Shared,
        shutdown: &ShutdownWatch,
    ) {
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive((!*shutdown.borrow()).then_some(KEEPALIVE_IDLE.as_secs()));
        session.set_keepalive_reuses_remaining(
            self.inner
                .server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        // Registered with the reactor at the first wait for a next request.
        let mut waiter = None;
        loop {
            let reused = self.inner.process_new_http(session, shutdown).await;
            shared.next_head.store(true, Ordering::Release);
            let handed = shared
                .handed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(handed) = handed {
                return handed.await;
            }
            let Some((stream, settings)) = reused.map(|r| r.consume()) else {
                return;
            };
            if !next_request(&stream, &mut waiter, shutdown).await {
                return;
            }
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
        }
    }
}

/// The accepted socket under a guarded stream, when it is plain TCP (not TLS):
/// what livegate may wait on or write to itself.
pub fn tcp_socket(stream: &Stream) -> Option<BorrowedFd<'_>> {
    let accepted = stream.as_any().downcast_ref::<HeadDeadline>()?.inner();
    let tcp = accepted.as_any().downcast_ref::<TcpStream>()?;
    // SAFETY: the descriptor belongs to the stream borrowed for the same
    // lifetime; it is neither closed nor replaced while that borrow lives.
    Some(unsafe { BorrowedFd::borrow_raw(tcp.as_raw_fd()) })
}

/// Waits, holding nothing but the stream, until the next request's first byte
/// is in (true), or the client closed, the keep-alive timeout passed or the
/// server is shutting down (false: the connection is closed, as Pingora closes
/// idle ones). Bytes already there cost one non-blocking peek; the wait itself
/// is on a duplicate of the socket registered with the reactor (`waiter`, made
/// at the connection's first wait), so nothing is read and Pingora reads the
/// head in one go. A TLS stream goes on at once, to Pingora's own wait.
async fn next_request(
    stream: &Stream,
    waiter: &mut Option<AsyncFd<OwnedFd>>,
    shutdown: &ShutdownWatch,
) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    let Some(socket) = tcp_socket(stream) else {
        return true;
    };
    let mut first = [0u8; 1];
    let flags = RecvFlags::PEEK | RecvFlags::DONTWAIT;
    let mut watch = shutdown.clone();
    let wait = async {
        loop {
            match rustix::net::recv(socket, &mut first, flags) {
                Ok((n, _)) => return n > 0,
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {}
                Err(_) => return false,
            }
            let ready = match waiter {
                Some(w) => w,
                None => {
                    let registered = socket.try_clone_to_owned().and_then(|dup| {
                        // SAFETY: `dup` is owned by the AsyncFd, which closes
                        // it when dropped.
                        unsafe { AsyncFd::register_with_interest(dup, Interest::READABLE) }
                            .map_err(io::Error::from)
                    });
                    match registered {
                        Ok(w) => waiter.insert(w),
                        // Not waitable here: Pingora's own wait.
                        Err(_) => return true,
                    }
                }
            };
            tokio::select! {
                readable = ready.readable() => match readable {
                    // Clearing first is safe: the peek above runs again.
                    Ok(mut guard) => guard.clear_ready(),
                    Err(_) => return true,
                },
                changed = watch.changed() => {
                    if changed.is_err() || *watch.borrow() {
                        // Shutting down (or no server left to say so).
                        return changed.is_err();
                    }
                }
            }
        }
    };
    pingora::prelude::timeout(KEEPALIVE_IDLE, wait)
        .await
        .unwrap_or(false)
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Guard<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _slot = self.connections.slot()?;
        let shared = Arc::new(Shared::default());
        let stream: Stream = Box::new(HeadDeadline::new(
            stream,
            self.header_timeout,
            shared.clone(),
        ));
        // The slot is held for the connection's life, and each head gets its clock.
        match self.h1(&stream) {
            true => self.keep_alive(stream, &shared, shutdown).await,
            false => {
                ServerApp::process_new(&self.inner, stream, shutdown).await;
            }
        }
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Where a connection is in reading a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: the clock starts with the next byte.
    Idle,
    /// Reading a head that must be complete by the deadline.
    Head,
    /// The head is in; bodies and later bytes are not watched.
    Done,
    /// HTTP/2 (negotiated by ALPN): its frames are not HTTP/1 heads.
    Off,
}

/// Finds the blank line that ends an HTTP/1 head, across reads. Leading blank
/// lines (allowed before a request line) do not count.
#[derive(Debug, Default, Clone, Copy)]
struct HeadEnd {
    /// Whether the request line has begun.
    started: bool,
    /// Whether the current line holds anything but a `\r` before its `\n`.
    filled: bool,
    cr: bool,
}

impl HeadEnd {
    /// Feeds bytes; true once the head ended within them.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            match b {
                b'\n' => {
                    if self.started && !self.filled {
                        return true;
                    }
                    self.filled = false;
                    self.cr = false;
                }
                b'\r' if !self.cr => self.cr = true,
                _ => {
                    self.started = true;
                    self.filled = true;
                    self.cr = false;
                }
            }
        }
        false
    }
}

/// The accepted stream, with a deadline on each request head (see the module
/// documentation). Everything but reading is passed straight through.
pub struct HeadDeadline {
    inner: Stream,
    timeout: Duration,
    phase: Phase,
    deadline: Instant,
    scan: HeadEnd,
    /// Created the first time a head read has to wait, then reset for each head.
    sleep: Option<Pin<Box<Sleep>>>,
    /// What the connection's [`Guard`] shares with its requests.
    shared: Arc<Shared>,
}

impl fmt::Debug for HeadDeadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadDeadline")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

impl HeadDeadline {
    /// The stream as accepted (plain TCP, or TLS over it): what
    /// [`tcp_socket`] looks through.
    fn inner(&self) -> &Stream {
        &self.inner
    }

    /// The first head's clock starts now (at accept), as nginx's
    /// `client_header_timeout` does.
    fn new(inner: Stream, timeout: Duration, shared: Arc<Shared>) -> HeadDeadline {
        let h2 = inner.selected_alpn_proto() == Some(ALPN::H2);
        HeadDeadline {
            inner,
            timeout,
            phase: if h2 { Phase::Off } else { Phase::Head },
            deadline: Instant::now() + timeout,
            scan: HeadEnd::default(),
            sleep: None,
            shared,
        }
    }

    fn timed_out() -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "the request head did not arrive within server.header_timeout_ms",
        )
    }

    /// Reacts to bytes just read; an error when the head is overdue.
    fn saw(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            self.deadline = Instant::now() + self.timeout;
            self.scan = HeadEnd::default();
        }
        if self.scan.feed(bytes) {
            self.phase = Phase::Done;
            return Ok(());
        }
        match Instant::now() >= self.deadline {
            true => Err(Self::timed_out()),
            false => Ok(()),
        }
    }

    /// While a head read waits: whether the deadline has passed (registering the
    /// timer's wake-up otherwise).
    fn overdue(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for HeadDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.shared.next_head.swap(false, Ordering::AcqRel) && this.phase != Phase::Off {
            this.phase = Phase::Idle;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                match new.is_empty() || this.phase == Phase::Done || this.phase == Phase::Off {
                    true => Poll::Ready(Ok(())),
                    false => Poll::Ready(this.saw(new)),
                }
            }
            Poll::Pending if this.phase == Phase::Head && this.overdue(cx) => {
                Poll::Ready(Err(Self::timed_out()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::HeadEnd;

    #[test]
    fn finds_the_end_of_a_head_across_reads() {
        let head = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nbody";
        for split in 0..head.len() {
            let mut s = HeadEnd::default();
            let (a, b) = head.split_at(split);
            let ended = s.feed(a) || s.feed(b);
            assert!(ended, "split at {split}");
        }
        let mut s = HeadEnd::default();
        assert!(!s.feed(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n"));
        assert!(s.feed(b"\n"));
        let mut s = HeadEnd::default();
        assert!(s.feed(b"GET /a HTTP/1.0\n\n"));
        let mut s = HeadEnd::default();
        assert!(!s.feed(b"GET /a HTTP/1.1\r\nX: a\r\rb\r\n"));
    }
}

//! A cached segment written to a plain-TCP HTTP/1 client with `sendfile(2)`.
//!
//! Pingora writes a body from memory: each `write` copies the bytes into the
//! kernel, and a 1 MB segment served to a thousand viewers is a gigabyte copied.
//! A segment kept in a sealed memfd ([`crate::cache::sealed`]) can instead be
//! handed to the kernel by reference, as nginx serves `proxy_cache` with
//! `sendfile on`. Pingora 0.9 has no way to send a file, so for these answers the
//! head and body are written here, on the client's socket, and Pingora is told
//! nothing was written: its session then finishes the request as one whose
//! filter answered it and keeps the connection alive as usual (it flushed
//! before, and holds nothing buffered for this response).
//!
//! Only a plain-TCP HTTP/1 connection qualifies ([`socket`]): TLS must encrypt
//! in user space and HTTP/2 frames its data, so those keep Pingora's writes.

use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use pingora_http::ResponseHeader;
use rustix::net::SendFlags;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// How long a client may accept no byte of a segment before it is dropped (a
/// player that stopped reading must not hold its connection forever).
pub const STALL: Duration = Duration::from_secs(30);

/// The client's socket, when the request came over plain TCP (not TLS, not
/// HTTP/2): what `sendfile` may write to.
pub fn socket(session: &pingora_proxy::Session) -> Option<BorrowedFd<'_>> {
    crate::conn::tcp_socket(session.stream()?)
}

/// A response head as HTTP/1.1 writes it: what Pingora's session would write,
/// with the `Date` and `Connection` headers it adds (set on `head`, as the
/// session would set them).
pub fn head_bytes(head: &mut ResponseHeader, keepalive: bool) -> Result<BytesMut, io::Error> {
    let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}"));
    head.insert_header(
        http::header::DATE,
        pingora_core::protocols::http::date::get_cached_date(),
    )
    .map_err(invalid)?;
    head.insert_header(
        http::header::CONNECTION,
        if keepalive { "keep-alive" } else { "close" },
    )
    .map_err(invalid)?;
    let mut buf = BytesMut::with_capacity(512);
    buf.put_slice(b"HTTP/1.1 ");
    buf.put_slice(head.status.as_str().as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(head.get_reason_phrase().unwrap_or("").as_bytes());
    buf.put_slice(b"\r\n");
    head.header_to_h1_wire(&mut buf);
    buf.put_slice(b"\r\n");
    Ok(buf)
}

/// Writes `head`, then all of `file`, to `sock`: the head in one `send` held
/// back for the body (`MSG_MORE`), the body by `sendfile`. Waits for the socket
/// when it is full, at most [`STALL`] at a time. Returns the body bytes sent;
/// an error says how many went before it.
pub async fn send(
    sock: BorrowedFd<'_>,
    head: &[u8],
    file: &File,
    len: u64,
) -> Result<u64, Interrupted> {
    let total = head.len() as u64 + len;
    let mut pos = 0u64;
    // Registered with the reactor only if the socket is ever full: most
    // segments fit in the socket's buffer at once.
    let mut ready: Option<AsyncFd<OwnedFd>> = None;
    let step = |fd: BorrowedFd<'_>, pos: u64| -> io::Result<usize> {
        if pos < head.len() as u64 {
            let flags = SendFlags::MORE | SendFlags::NOSIGNAL;
            Ok(rustix::net::send(fd, &head[pos as usize..], flags)?)
        } else {
            let mut offset = pos - head.len() as u64;
            let count = (total - pos).min(1 << 30) as usize;
            Ok(rustix::fs::sendfile(fd, file, Some(&mut offset), count)?)
        }
    };
    let interrupted = |error: io::Error, pos: u64| Interrupted {
        error,
        sent: pos.saturating_sub(head.len() as u64),
    };
    while pos < total {
        let done = match step(sock, pos) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let waiter = match &mut ready {
                    Some(w) => w,
                    None => {
                        let dup = sock.try_clone_to_owned().map_err(|e| interrupted(e, pos))?;
                        // SAFETY: `dup` is owned here and stays open for the
                        // AsyncFd's life (it closes it when dropped).
                        let w = unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) }
                            .map_err(|e| interrupted(e.into(), pos))?;
                        ready.insert(w)
                    }
                };
                match tokio::time::timeout(STALL, waiter.writable()).await {
                    // Writable again: retry. Clearing first is safe: a new
                    // edge sets readiness again, and a missed one means the
                    // retry succeeds.
                    Ok(Ok(mut guard)) => {
                        guard.clear_ready();
                        continue;
                    }
                    Ok(Err(e)) => return Err(interrupted(e, pos)),
                    Err(_) => {
                        let stalled = io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the client took no byte for {} s", STALL.as_secs()),
                        );
                        return Err(interrupted(stalled, pos));
                    }
                }
            }
            Err(e) => return Err(interrupted(e, pos)),
        };
        if done == 0 {
            // The file is shorter than the object says: never expected of a
            // sealed file, but never a loop either.
            let short = io::Error::new(io::ErrorKind::UnexpectedEof, "the cached file ended early");
            return Err(interrupted(short, pos));
        }
        pos += done as u64;
    }
    Ok(len)
}

/// A `send` that stopped: why, and how much of the body went before.
#[derive(Debug)]
pub struct Interrupted {
    pub error: io::Error,
    pub sent: u64,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} after {} body bytes", self.error, self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 256) as u8).collect()
    }

    /// Head and body arrive whole and in order, including when the reader is
    /// slower than the socket buffer (the sender waits for writability).
    #[tokio::test]
    async fn head_then_file_arrive_whole() {
        let bytes = body(6 << 20);
        let sealed = crate::cache::sealed::seal(&bytes).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                // Slow at first, so the sender meets a full socket.
                if got.len() < 64 << 10 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                match c.read(&mut buf).unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        });
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::TcpStream::from_std(server).unwrap();
        let sent = send(
            server.as_fd(),
            b"HEAD\r\n\r\n",
            sealed.file.file(),
            bytes.len() as u64,
        )
        .await
        .unwrap();
        assert_eq!(sent, bytes.len() as u64);
        drop(server);
        let got = reader.join().unwrap();
        assert_eq!(&got[..8], b"HEAD\r\n\r\n");
        assert!(got[8..] == bytes[..], "the body arrived changed");
    }

    #[tokio::test]
    async fn a_client_that_left_is_an_error_not_a_hang() {
        let sealed = crate::cache::sealed::seal(&body(8 << 20)).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        drop(c);
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::TcpStream::from_std(server).unwrap();
        let err = send(server.as_fd(), b"H\r\n\r\n", sealed.file.file(), 8 << 20)
            .await
            .unwrap_err();
        assert!(err.sent < 8 << 20, "{err}");
    }

    #[test]
    fn head_carries_date_and_connection() {
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.insert_header("content-length", "3").unwrap();
        let b = head_bytes(&mut h, true).unwrap();
        let s = std::str::from_utf8(&b).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
        assert!(
            s.to_ascii_lowercase()
                .contains("connection: keep-alive\r\n"),
            "{s}"
        );
        assert!(s.to_ascii_lowercase().contains("date: "), "{s}");
        assert!(s.ends_with("\r\n\r\n"));
        let b = head_bytes(&mut h, false).unwrap();
        assert!(std::str::from_utf8(&b)
            .unwrap()
            .to_ascii_lowercase()
            .contains("connection: close"));
    }
}

//! Auth servers for remote-authentication tests: a real one whose answer depends
//! on the path, and broken ones (reset mid-response, not HTTP).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::server::Server;
use super::Seen;

/// A real auth server. Its answer depends on the path it is asked about:
/// `allow` → 200 with `X-User-Id: 42`; `deny` → 403; `s206`, `s304`, `s500` → that
/// status; `slow` → 200 after 3 s; `lag` → 200 after 300 ms.
pub struct AuthServer {
    pub addr: SocketAddr,
    calls: Arc<Mutex<Vec<Seen>>>,
    server: Server,
}

fn answer(path: &str) -> u16 {
    for (word, status) in [("deny", 403), ("s206", 206), ("s304", 304), ("s500", 500)] {
        if path.contains(word) {
            return status;
        }
    }
    200
}

async fn respond(req: Request<Incoming>, calls: Arc<Mutex<Vec<Seen>>>) -> Response<Full<Bytes>> {
    calls.lock().unwrap().push(Seen::of(&req));
    let path = req.uri().path().to_owned();
    if path.contains("slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    } else if path.contains("lag") {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status = answer(&path);
    let body = if status == 304 {
        Bytes::new()
    } else {
        Bytes::from_static(b"auth answer body")
    };
    Response::builder()
        .status(status)
        .header("x-user-id", "42")
        .header("x-not-copied", "1")
        .body(Full::new(body))
        .unwrap()
}

impl AuthServer {
    /// Plain HTTP on a free loopback port.
    pub async fn start() -> AuthServer {
        AuthServer::start_with(None).await
    }

    /// With `tls`, HTTPS with that server configuration.
    pub async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> AuthServer {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let server = Server::start(tls, move |req| respond(req, recorded.clone())).await;
        AuthServer {
            addr: server.addr,
            calls,
            server,
        }
    }

    pub fn calls(&self) -> Vec<Seen> {
        self.calls.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }
}

/// A server that reads the request, starts an answer and resets the connection.
pub async fn resetting_server() -> SocketAddr {
    broken_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
        true,
    )
    .await
}

/// A server that answers something that is not HTTP.
pub async fn garbage_server() -> SocketAddr {
    broken_server(b"this is not HTTP at all\r\n\r\n", false).await
}

async fn broken_server(reply: &'static [u8], reset: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp.write_all(reply).await;
                if reset {
                    let _ = tcp.set_zero_linger();
                }
                drop(tcp);
            });
        }
    });
    addr
}

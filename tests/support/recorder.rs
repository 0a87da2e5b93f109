//! A recording origin that keeps each request exactly as it arrived on the wire —
//! the request line's target bytes and every header line — so a test sees what an
//! origin would act on, not what an HTTP library made of it. Answers every request
//! with `200 ok` (keep-alive; `Content-Length` bodies are read and discarded).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as the origin read it.
#[derive(Debug, Clone)]
pub struct Wire {
    pub method: String,
    /// The request-target exactly as sent.
    pub target: String,
    /// Header lines as sent: (name as spelt, value).
    pub headers: Vec<(String, String)>,
}

impl Wire {
    /// Every value of headers whose name is `name` (ASCII case ignored, `_` kept).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Wire>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn parse(head: &str) -> Option<Wire> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.splitn(3, ' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect();
    Some(Wire {
        method,
        target,
        headers,
    })
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    continue;
                };
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match tcp.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let Some(wire) = parse(&head) else { return };
                        let length: usize = wire
                            .values("content-length")
                            .first()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        while buf.len() < length {
                            match tcp.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..length);
                        recorded.lock().unwrap().push(wire);
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
                        if tcp.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Recorder { addr, seen, task }
    }

    pub fn seen(&self) -> Vec<Wire> {
        self.seen.lock().unwrap().clone()
    }

    /// The targets the origin received, in order.
    pub fn targets(&self) -> Vec<String> {
        self.seen().into_iter().map(|w| w.target).collect()
    }
}

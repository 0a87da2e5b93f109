//! A real receiver for event notifications: records each JSON body, and can fail
//! its first answers or never answer, to exercise retries and the queue.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::server::Server;

/// How the receiver answers.
#[derive(Clone, Copy)]
pub enum Mode {
    /// 200 to everything.
    Ok,
    /// 500 to the first `n` posts, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

pub struct Receiver {
    pub addr: SocketAddr,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    posts: Arc<AtomicUsize>,
    _server: Server,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let posts = Arc::new(AtomicUsize::new(0));
        let (accepted, counted) = (bodies.clone(), posts.clone());
        let server = Server::start(None, move |req: Request<Incoming>| {
            let (bodies, posts) = (accepted.clone(), counted.clone());
            async move {
                let n = posts.fetch_add(1, Ordering::SeqCst);
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let status = match mode {
                    Mode::Hang => std::future::pending().await,
                    Mode::FailFirst(k) if n < k => 500,
                    _ => 200,
                };
                if status == 200 {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        bodies.lock().unwrap().push(v);
                    }
                }
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
        })
        .await;
        Receiver {
            addr: server.addr,
            bodies,
            posts,
            _server: server,
        }
    }

    /// Bodies accepted (answered 200), in arrival order.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// POSTs received, failed ones included.
    pub fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
}

//! A real receiver for event notifications: records each JSON body, and can fail
//! its first answers or never answer, to exercise retries and the queue.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

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
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let posts = Arc::new(AtomicUsize::new(0));
        let (b2, p2) = (bodies.clone(), posts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (bodies, posts) = (b2.clone(), p2.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (bodies, posts) = (bodies.clone(), posts.clone());
                        async move {
                            let n = posts.fetch_add(1, Ordering::SeqCst);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let status = match mode {
                                Mode::Hang => {
                                    std::future::pending::<()>().await;
                                    200
                                }
                                Mode::FailFirst(k) if n < k => 500,
                                _ => 200,
                            };
                            if status == 200 {
                                if let Ok(v) = serde_json::from_slice(&body) {
                                    bodies.lock().unwrap().push(v);
                                }
                            }
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            bodies,
            posts,
            task,
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

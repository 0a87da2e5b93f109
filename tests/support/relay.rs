//! A TCP relay between loopback ports that a test can cut and restore, and that
//! counts connections: to take one edge off etcd, to count origin connections,
//! to kill an origin's connections mid-stream.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::free_port;

/// A TCP relay from a loopback port to another that can be cut and restored,
/// and counts the connections it relayed.
pub struct Relay {
    pub port: u16,
    target: u16,
    on: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Relay {
    /// Starts relaying `port` → `target`.
    pub async fn start(target: u16) -> Relay {
        let r = Relay {
            port: free_port(),
            target,
            on: Arc::new(AtomicBool::new(false)),
            accepted: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(AtomicUsize::new(0)),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        };
        r.restore().await;
        r
    }

    /// Its address, `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connections relayed so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Its URL, to give an edge as its etcd endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Drops every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.on.store(false, Ordering::SeqCst);
        self.tasks.lock().unwrap().abort_all();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the relay did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Relays again.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.on.store(true, Ordering::SeqCst);
        let (on, tasks, target) = (self.on.clone(), self.tasks.clone(), self.target);
        let (accepted, open) = (self.accepted.clone(), self.open.clone());
        let accept = async move {
            while on.load(Ordering::SeqCst) {
                let Ok(Ok((mut client, _))) =
                    tokio::time::timeout(Duration::from_millis(50), listener.accept()).await
                else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let open = open.clone();
                tasks.lock().unwrap().spawn(async move {
                    open.fetch_add(1, Ordering::SeqCst);
                    let _counted = Counted(open);
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        };
        self.tasks.lock().unwrap().spawn(accept);
    }
}

/// Counts a relayed connection as open until it ends (or its task is aborted).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

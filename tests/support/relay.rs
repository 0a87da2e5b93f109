//! A TCP relay between loopback ports that a test can cut and restore, and that
//! counts connections: to take one edge off etcd, to count origin connections,
//! to kill an origin's connections mid-stream.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A TCP relay from a loopback port to another that can be cut and restored,
/// and counts the connections it relayed. Its port stays bound throughout (a cut
/// relay closes what it accepts at once), so nothing else can take it meanwhile.
pub struct Relay {
    pub port: u16,
    on: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    /// The relayed connections.
    tasks: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.tasks.lock().unwrap().abort_all();
    }
}

impl Relay {
    /// Starts relaying a free port → `target`.
    pub async fn start(target: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let on = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let tasks: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let accept = tokio::spawn({
            let (on, accepted, open, tasks) =
                (on.clone(), accepted.clone(), open.clone(), tasks.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !on.load(Ordering::SeqCst) {
                        continue; // cut: closed at once
                    }
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
            }
        });
        Relay {
            port,
            on,
            accepted,
            open,
            tasks,
            accept,
        }
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

    /// Drops every relayed connection and closes new ones at once.
    pub fn cut(&self) {
        self.on.store(false, Ordering::SeqCst);
        self.tasks.lock().unwrap().abort_all();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.open() > 0 {
            assert!(Instant::now() < deadline, "the relay did not cut");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Relays again.
    pub async fn restore(&self) {
        self.on.store(true, Ordering::SeqCst);
    }
}

/// Counts a relayed connection as open until it ends (or its task is aborted).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

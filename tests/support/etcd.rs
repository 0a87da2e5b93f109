//! A real etcd (Debian's `etcd-server`) on free loopback ports with a temporary
//! data dir, that a test can stop and start again; and a TCP relay in front of it
//! that a test can cut, to take one edge off etcd while the others stay on.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::free_port;
use super::media::{need, wait_listening, Proc};

/// One etcd member.
pub struct Etcd {
    pub port: u16,
    peer: u16,
    dir: tempfile::TempDir,
    proc: Option<Proc>,
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub async fn start() -> Etcd {
        need("etcd", "etcd-server");
        let mut e = Etcd {
            port: free_port(),
            peer: free_port(),
            dir: tempfile::tempdir().unwrap(),
            proc: None,
        };
        e.resume().await;
        e
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL: as a crashed or cut-off member).
    pub fn stop(&mut self) {
        self.proc = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "etcd did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same ports and data.
    pub async fn resume(&mut self) {
        let (c, p) = (self.port, self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{c}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{c}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{p}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{p}"),
                "--initial-cluster",
                &format!("t=http://127.0.0.1:{p}"),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.proc = Some(Proc(child));
        wait_listening(c, "etcd");
        // Listening is not yet serving: wait for a read to answer.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.client_quick().await.is_none() {
            assert!(Instant::now() < deadline, "etcd did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn client_quick(&self) -> Option<()> {
        let mut c = tokio::time::timeout(Duration::from_secs(2), self.client())
            .await
            .ok()?;
        tokio::time::timeout(Duration::from_secs(2), c.get("x", None))
            .await
            .ok()?
            .ok()
            .map(drop)
    }

    /// A client of its own, for reading keys and compacting.
    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.url()], None)
            .await
            .expect("connect to etcd")
    }

    /// Compacts etcd's history up to its current revision.
    pub async fn compact(&self) -> i64 {
        let mut c = self.client().await;
        let rev = c.get("x", None).await.unwrap().header().unwrap().revision();
        c.compact(rev, None).await.unwrap();
        rev
    }
}

/// A TCP relay from a loopback port to etcd that can be cut and restored.
pub struct Relay {
    pub port: u16,
    target: u16,
    on: Arc<AtomicBool>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Relay {
    /// Starts relaying `port` → `target`.
    pub async fn start(target: u16) -> Relay {
        let r = Relay {
            port: free_port(),
            target,
            on: Arc::new(AtomicBool::new(false)),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        };
        r.restore().await;
        r
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
        let accept = async move {
            while on.load(Ordering::SeqCst) {
                let Ok(Ok((mut client, _))) =
                    tokio::time::timeout(Duration::from_millis(50), listener.accept()).await
                else {
                    continue;
                };
                tasks.lock().unwrap().spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        };
        self.tasks.lock().unwrap().spawn(accept);
    }
}

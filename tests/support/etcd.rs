//! A real etcd (Debian's `etcd-server`) on free loopback ports with a temporary
//! data dir, that a test can stop and start again.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::media::{need, wait_listening, Proc};

/// One etcd member.
pub struct Etcd {
    pub port: u16,
    peer: u16,
    pub dir: tempfile::TempDir,
    proc: Option<Proc>,
    /// With TLS: client certificates required, all files under `dir`.
    tls: bool,
    /// A user and password for this helper's own client (etcd auth on).
    user: Option<(String, String)>,
}

/// PEM files of a test PKI under a directory: `ca.pem`, `server.pem`/`server.key`
/// (for 127.0.0.1), `client.pem`/`client.key`.
fn make_pki(dir: &std::path::Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, san, usage) in [
        (
            "server",
            "127.0.0.1",
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ),
        ("client", "edge", rcgen::ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![san.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub async fn start() -> Etcd {
        Etcd::start_with(false).await
    }

    /// Starts etcd serving TLS only, asking clients for a certificate.
    pub async fn start_tls() -> Etcd {
        Etcd::start_with(true).await
    }

    async fn start_with(tls: bool) -> Etcd {
        need("etcd", "etcd-server");
        let mut e = Etcd {
            port: free_port(),
            peer: free_port(),
            dir: tempfile::tempdir().unwrap(),
            proc: None,
            tls,
            user: None,
        };
        if tls {
            make_pki(e.dir.path());
        }
        e.resume().await;
        e
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A file of the test PKI (`ca.pem`, `client.pem`, `client.key`).
    pub fn pki(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Turns etcd's authentication on with a `root` user of `password`.
    pub async fn enable_auth(&mut self, password: &str) {
        let mut c = self.client().await;
        c.user_add("root", password, None).await.unwrap();
        c.user_grant_role("root", "root").await.unwrap();
        c.auth_enable().await.unwrap();
        self.user = Some(("root".into(), password.into()));
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
        let url = self.url();
        let mut etcd = Command::new("etcd");
        if self.tls {
            let f = |n: &str| self.pki(n).display().to_string();
            etcd.args([
                "--cert-file",
                &f("server.pem"),
                "--key-file",
                &f("server.key"),
            ])
            .args(["--trusted-ca-file", &f("ca.pem"), "--client-cert-auth"]);
        }
        let child = etcd
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
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
        let mut options = etcd_client::ConnectOptions::new();
        if self.tls {
            let read = |n: &str| std::fs::read(self.pki(n)).unwrap();
            options = options.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(read("ca.pem")))
                    .identity(etcd_client::Identity::from_pem(
                        read("client.pem"),
                        read("client.key"),
                    )),
            );
        }
        if let Some((u, p)) = &self.user {
            options = options.with_user(u.clone(), p.clone());
        }
        etcd_client::Client::connect([self.url()], Some(options))
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

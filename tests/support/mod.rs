//! Test fixtures: a real HTTP origin (hyper, in-process), the real livegate binary
//! with a temporary config, and raw-socket clients for requests that a
//! well-behaved client library would refuse or normalise.

#![allow(dead_code)]

pub mod api;
pub mod auth;
pub mod browser;
pub mod etcd;
pub mod llhls;
pub mod media;
pub mod nginx;
pub mod receiver;
pub mod recorder;
pub mod relay;
pub mod server;

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
pub use reqwest::Method;

/// What the origin received, one entry per request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as received.
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// What a server saw of `req`.
    pub fn of<B>(req: &Request<B>) -> Seen {
        Seen {
            method: req.method().to_string(),
            uri: req.uri().to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A real HTTP/1.1 origin on a free loopback port. Paths:
/// - `/file/<n>.<ext>`: `n` deterministic bytes (see [`file_bytes`]); honours `Range`.
/// - `*.flv`: an endless chunked stream.
/// - `/status/<code>/*`: that status.
/// - `/stall/*`: headers and one chunk, then silence.
/// - anything else: 200 with `x-origin: <id>` and the request line as the body.
pub struct Origin {
    pub addr: SocketAddr,
    pub id: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _server: server::Server,
}

type Body = BoxBody<Bytes, Infallible>;

/// Deterministic content for `/file/<n>`: distinguishes every offset, so a
/// shifted, truncated or re-ordered body never compares equal.
pub fn file_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// `first`, then (when `endless`) an endless live stream of 64 KB FLV video
/// keyframe tags, one every 10 ms in both stream and wall time (6.4 MB/s, paced
/// like a live origin); otherwise nothing more, ever.
fn stream_body(first: Option<Bytes>, endless: bool) -> Body {
    let s = futures_util::stream::unfold((first, 0u32), move |(state, n)| async move {
        match state {
            Some(b) => Some((Ok::<_, Infallible>(Frame::data(b)), (None, n))),
            None if endless => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let mut tag = Vec::with_capacity(64 * 1024);
                let mut payload = vec![0x09u8; 64 * 1024 - 15];
                payload[..2].copy_from_slice(&[0x17, 0x01]);
                livegate::media::flv::write_tag(
                    &mut tag,
                    livegate::media::flv::VIDEO,
                    n * 10,
                    &payload,
                );
                Some((Ok(Frame::data(Bytes::from(tag))), (None, n + 1)))
            }
            None => {
                std::future::pending::<()>().await;
                None
            }
        }
    });
    StreamBody::new(s).boxed()
}

fn answer(req: &Request<Incoming>, id: &str) -> Response<Body> {
    let path = req.uri().path();
    let mut resp = Response::builder().header("x-origin", id);
    if let Some(name) = path.strip_prefix("/file/") {
        let n: usize = name
            .split('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let body = file_bytes(n);
        let range = req
            .headers()
            .get("range")
            .and_then(|r| r.to_str().ok())
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        if let Some((a, b)) = range.filter(|&(a, b)| a <= b && b < n) {
            resp = resp
                .status(206)
                .header("content-range", format!("bytes {a}-{b}/{n}"));
            return resp.body(full(body[a..=b].to_vec())).unwrap();
        }
        return resp
            .header("accept-ranges", "bytes")
            .body(full(body))
            .unwrap();
    }
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|c| c.split('/').next()?.parse::<u16>().ok())
    {
        return resp.status(code).body(full("status\n")).unwrap();
    }
    if path.starts_with("/stall/") {
        return resp
            .body(stream_body(Some(Bytes::from_static(b"first")), false))
            .unwrap();
    }
    if path.ends_with(".flv") {
        return resp
            .header("content-type", "video/x-flv")
            .body(stream_body(
                Some(Bytes::from_static(livegate::media::flv::HEADER)),
                true,
            ))
            .unwrap();
    }
    let line = format!("{} {}\n", req.method(), req.uri());
    resp.body(full(line)).unwrap()
}

impl Origin {
    /// Starts an origin identified by `id` (sent back as `x-origin`).
    pub async fn start(id: &str) -> Origin {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (recorded, answered_as) = (seen.clone(), id.to_owned());
        let server = server::Server::start(None, move |req: Request<Incoming>| {
            recorded.lock().unwrap().push(Seen::of(&req));
            std::future::ready(answer(&req, &answered_as))
        })
        .await;
        Origin {
            addr: server.addr,
            id: id.into(),
            seen,
            _server: server,
        }
    }

    /// TCP connections it accepted so far.
    pub fn connections(&self) -> usize {
        self._server.connections()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the origin saw no request")
    }
}

/// A domain's `origin:` value (flow-style YAML) for `peers`, plus `extra` keys
/// (each starting with `, `). The connect timeout is 10 s: the 1 s default is
/// right for an edge, but on a shared 2-core CI box 200 simultaneous loopback
/// connects from a starved scheduler can exceed it, and no test here is about
/// connect timing (dead peers refuse at once).
pub fn origin_yaml<S: std::fmt::Display>(peers: &[S], extra: &str) -> String {
    let peers = peers
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{ peers: [{peers}], connect_timeout_ms: 10000{extra} }}")
}

/// What a command printed, stdout then stderr.
pub fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loopback port that refuses connections and stays so while the socket is
/// held: bound, never listening, so no other test's server can take it (a port
/// from [`free_port`] may be reused by a parallel test and answer).
pub fn refusing_port() -> (socket2::Socket, u16) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = sock.local_addr().unwrap().as_socket().unwrap().port();
    (sock, port)
}

/// A loopback port nobody listens on (for a dead origin) or that livegate may take.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real livegate binary running a temporary config.
pub struct Livegate {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    child: Child,
    env: Vec<(String, String)>,
    /// The binary: this build's, or another one a benchmark compares.
    program: PathBuf,
}

impl Drop for Livegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Livegate {
    /// Starts livegate with `domains_yaml` (the `domains:` list, indented two
    /// spaces) and `extra_listen` listeners besides a plain one on a free port.
    pub fn start(domains_yaml: &str) -> Livegate {
        Livegate::start_with(domains_yaml, "")
    }

    pub fn start_with(domains_yaml: &str, extra_listen: &str) -> Livegate {
        Livegate::start_env(domains_yaml, extra_listen, &[])
    }

    /// As [`Livegate::start_with`], with extra environment variables for the process.
    pub fn start_env(domains_yaml: &str, extra_listen: &str, env: &[(&str, &str)]) -> Livegate {
        Livegate::start_full(domains_yaml, extra_listen, "", env)
    }

    /// With top-level sections (`metrics:`, `access_log:`, `notify:` …) as YAML.
    pub fn start_top(domains_yaml: &str, top: &str) -> Livegate {
        Livegate::start_full(domains_yaml, "", top, &[])
    }

    pub fn start_full(
        domains_yaml: &str,
        extra_listen: &str,
        top: &str,
        env: &[(&str, &str)],
    ) -> Livegate {
        Livegate::start_all(domains_yaml, extra_listen, top, env, "")
    }

    /// With extra `server:` keys (flow style, each starting with `, `).
    pub fn start_server(domains_yaml: &str, top: &str, server_extra: &str) -> Livegate {
        Livegate::start_all(domains_yaml, "", top, &[], server_extra)
    }

    /// Another livegate binary (a benchmark's `VARIANT_BIN`) on `domains_yaml`.
    pub fn start_program(program: &std::path::Path, domains_yaml: &str) -> Livegate {
        Livegate::start_in(program, domains_yaml, "", "", &[], "")
    }

    fn start_all(
        domains_yaml: &str,
        extra_listen: &str,
        top: &str,
        env: &[(&str, &str)],
        server_extra: &str,
    ) -> Livegate {
        let program = std::path::Path::new(env!("CARGO_BIN_EXE_livegate"));
        Livegate::start_in(program, domains_yaml, extra_listen, top, env, server_extra)
    }

    fn start_in(
        program: &std::path::Path,
        domains_yaml: &str,
        extra_listen: &str,
        top: &str,
        env: &[(&str, &str)],
        server_extra: &str,
    ) -> Livegate {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let config = dir.path().join("livegate.yaml");
        // Never the machine's /var/lib/livegate: each instance its own state.
        let state = match top.contains("state_dir:") {
            true => String::new(),
            false => format!("state_dir: {d}/state\n"),
        };
        let text = format!(
            "server: {{ threads: 2, pid_file: {d}/lg.pid, upgrade_sock: {d}/up.sock{server_extra} }}\n\
             listen:\n  - \"127.0.0.1:{port}\"\n{extra_listen}{top}{state}domains:\n{domains_yaml}"
        );
        std::fs::write(&config, text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = Livegate::spawn(program, &config, dir.path(), &env);
        let mut lg = Livegate {
            port,
            dir,
            config,
            child,
            env,
            program: program.to_owned(),
        };
        lg.wait_ready();
        lg
    }

    fn spawn(
        program: &std::path::Path,
        config: &std::path::Path,
        dir: &std::path::Path,
        env: &[(String, String)],
    ) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("livegate.log"))
            .unwrap();
        Command::new(program)
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start livegate")
    }

    /// Kills the process at once (SIGKILL, as a crash would) and starts it again
    /// on the same configuration.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The old process's sockets may linger a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Livegate::spawn(&self.program, &self.config, self.dir.path(), &self.env);
        self.wait_ready();
    }

    /// Waits until something listens on `port` (another listener of this process).
    pub fn wait_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nothing listens on {port}: {}",
                self.log()
            );
            assert!(self.alive(), "livegate exited: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("livegate exited with {status}: {}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("livegate did not listen within 20 s: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("livegate.log")).unwrap_or_default()
    }

    /// Sends a signal (`-INT`, `-TERM`…) to the process.
    pub fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The process id (for its memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `livegate sign` on this instance's config.
    pub fn sign(&self, url: &str, extra: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_livegate"))
            .arg("sign")
            .arg("-c")
            .arg(&self.config)
            .args(["--url", url])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The path-and-query of a URL signed for `host`.
    pub fn signed_path(&self, host: &str, path: &str) -> String {
        let url = self.sign(&format!("http://{host}{path}"), &[]);
        url[url.find("://").unwrap() + 3..]
            .split_once('/')
            .map(|(_, p)| format!("/{p}"))
            .unwrap()
    }

    /// `GET path` with `host` as the Host header.
    pub async fn get(&self, host: &str, path: &str) -> reqwest::Response {
        send(self.request(Method::GET, host, path)).await
    }

    /// A request to this instance for `host`, ready for more headers or a body.
    pub fn request(&self, method: Method, host: &str, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, self.url(path))
            .header("host", host)
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }
}

/// One raw HTTP/1.1 request; returns the status and the body (Connection: close).
pub fn raw(port: u16, request: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {:?}", &text[..text.len().min(200)]));
    let body = match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => buf[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

/// A connection to livegate on loopback from the address `source` (e.g.
/// 127.0.0.2), so that tests can be several clients.
pub fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(&to.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// One read of `s` (waiting at most its read timeout): whether the peer closed or
/// failed the connection. Data or a quiet wait mean it is still open.
pub fn closed_now(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 65536];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Reads from `s` until the peer closes or fails the connection: how long that
/// took, or `None` if it is still open at `limit`.
pub fn wait_closed(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while started.elapsed() < limit {
        if closed_now(s) {
            return Some(started.elapsed());
        }
    }
    None
}

/// One raw HTTP/1.1 request from the loopback address `source`; returns the status.
pub fn raw_from(source: &str, port: u16, request: &[u8]) -> u16 {
    let mut s = connect_from(source, port);
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {:?}", &text[..text.len().min(200)]))
}

/// `GET path` with a Host header, over a raw socket.
pub fn raw_get(port: u16, host: &str, path: &str) -> (u16, Vec<u8>) {
    raw(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A client that talks to livegate on loopback whatever the Host.
/// Sends a request built by [`Livegate::request`]; any transport error fails the test.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The body of a GET of `url` (any status).
pub async fn text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// GETs a Prometheus endpoint.
pub async fn scrape(port: u16) -> String {
    text(&format!("http://127.0.0.1:{port}/metrics")).await
}

/// The value of the sample `name` whose labels include all of `labels`, if any.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        if n != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

/// A URL signed by hand with the Tencent scheme and `key`.
pub fn tencent(path: &str, key: &str) -> String {
    use md5::{Digest, Md5};
    let stream = path.rsplit('/').next().unwrap().split('.').next().unwrap();
    let t = format!("{:X}", api::now() + 3600);
    let sig = Md5::digest(format!("{key}{stream}{t}").as_bytes());
    format!("{path}?txSecret={sig:x}&txTime={t}")
}

/// Reads an open FLV response until it ends; how long that took.
pub async fn until_cut(mut r: reqwest::Response, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        match tokio::time::timeout(limit, r.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            _ => return Some(started.elapsed()),
        }
    }
    None
}

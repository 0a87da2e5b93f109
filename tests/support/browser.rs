//! Real players in a real browser: headless Chromium (playwright-core) opens
//! `tests/browser/players.html` from a page server of its own (another origin
//! than the stream, so CORS decides) with hls.js, Shaka or mpegts.js, and
//! reports what it played.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::media::need;
use super::server::Server;

/// Serves `players.html` and the players (`/hls.js`, `/shaka.js`,
/// `/mpegts.js`) from node_modules; its origin is `http://localhost:<port>`.
pub async fn page_server() -> Server {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let read = |file: &str| {
        std::fs::read(browser.join(file)).unwrap_or_else(|_| {
            panic!("{file} is needed: npm install --prefix tests/browser (scripts/test.sh runs it)")
        })
    };
    let files: Vec<(&'static str, Vec<u8>)> = vec![
        ("/hls.js", read("node_modules/hls.js/dist/hls.min.js")),
        (
            "/shaka.js",
            read("node_modules/shaka-player/dist/shaka-player.compiled.js"),
        ),
        ("/mpegts.js", read("node_modules/mpegts.js/dist/mpegts.js")),
    ];
    let page = read("players.html");
    let files = std::sync::Arc::new(files);
    Server::start(None, move |req: hyper::Request<hyper::body::Incoming>| {
        let script = files.iter().find(|(p, _)| *p == req.uri().path());
        let (ctype, body) = match script {
            Some((_, b)) => ("text/javascript", b.clone()),
            None => ("text/html", page.clone()),
        };
        std::future::ready(
            hyper::Response::builder()
                .header("content-type", ctype)
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap(),
        )
    })
    .await
}

/// The origin (scheme, host, port) pages of `site` are served from.
pub fn page_origin(site: &Server) -> String {
    format!("http://localhost:{}", site.addr.port())
}

/// What to play, and how to start the browser.
pub struct Play<'a> {
    /// `hls` (hls.js, low-latency mode), `shaka` or `mpegts` (HTTP-FLV).
    pub player: &'a str,
    pub src: &'a str,
    /// Seconds of video to play.
    pub seconds: u32,
    /// More Chromium flags (`--host-resolver-rules=…`).
    pub args: Vec<String>,
    /// A `HOME` whose `.pki/nssdb` holds the CA the browser trusts.
    pub home: Option<PathBuf>,
}

impl Play<'_> {
    /// Opens the page of `site` (a [`page_server`]) and plays; the page's state
    /// (`t` seconds played, `latency` ms, `fatal`).
    pub async fn run(self, site: &Server) -> serde_json::Value {
        need("node", "nodejs");
        need("chromium", "chromium");
        let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let src: String = form_urlencoded::byte_serialize(self.src.as_bytes()).collect();
        let url = format!("{}/?player={}&src={src}", page_origin(site), self.player);
        let (args, home, seconds) = (self.args.join("\n"), self.home, self.seconds);
        let out = tokio::task::spawn_blocking(move || {
            let mut c = Command::new("node");
            c.arg(browser.join("play.mjs"))
                .arg(url)
                .arg(seconds.to_string())
                .env("CHROMIUM_ARGS", args);
            if let Some(home) = home {
                c.env("HOME", home);
            }
            c.output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
            panic!(
                "no state from the browser: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

/// A `HOME` for Chromium whose NSS database trusts `ca_pem` (as a site's users
/// trust their CA): `certutil` from libnss3-tools.
pub fn trusting_home(dir: &Path, ca_pem: &Path) -> PathBuf {
    need("certutil", "libnss3-tools");
    let db = dir.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let sql = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let out = Command::new("certutil").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-N", "-d", &sql, "--empty-password"]);
    let ca = ca_pem.to_string_lossy();
    run(&[
        "-A",
        "-d",
        &sql,
        "-n",
        "livegate test CA",
        "-t",
        "C,,",
        "-i",
        &ca,
    ]);
    dir.to_path_buf()
}

//! Real media tools for tests: a check that a tool is installed (failing with the
//! package to install, never skipping), child processes stopped when dropped, the
//! demo origin, and ffmpeg as a player.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fails the test, naming the Debian package, when `tool` is missing.
pub fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{tool} is needed: apt-get install -y {package}"
    );
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on `port`.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `livegate demo-origin` on a free port.
pub struct DemoOrigin {
    pub port: u16,
    _proc: Proc,
}

pub fn demo_origin() -> DemoOrigin {
    let port = super::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["demo-origin", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    wait_listening(port, "the demo origin");
    DemoOrigin { port, _proc: proc }
}

/// The video frames ffmpeg decodes from `url` in `seconds`; fails on any complaint.
pub fn frames(url: &str, seconds: u32) -> usize {
    need("ffmpeg", "ffmpeg");
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-xerror",
            "-i",
            url,
            "-t",
            &seconds.to_string(),
        ])
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "ffmpeg on {url}: {errors}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

/// The codecs ffprobe finds at `url`, one per line.
pub fn codecs(url: &str) -> String {
    need("ffprobe", "ffmpeg");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

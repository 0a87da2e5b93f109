//! nginx with the RTMP module on free loopback ports, in its own directory: a
//! real live origin (RTMP in, HLS out over HTTP).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::media::{need, Proc};

const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub http: u16,
    pub rtmp: u16,
    _proc: Proc,
}

impl Nginx {
    /// nginx whose RTMP server holds `applications` (`{dir}` stands for its
    /// directory), and whose HTTP server serves `{dir}/www`.
    pub fn start(applications: &str) -> Nginx {
        need("nginx", "nginx");
        assert!(
            Path::new(RTMP_MODULE).exists(),
            "the RTMP module is needed: apt-get install -y libnginx-mod-rtmp"
        );
        let dir = tempfile::tempdir().unwrap();
        let (http, rtmp) = (free_port(), free_port());
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("www/mv")).unwrap();
        let applications = applications.replace("{dir}", &d);
        let conf = format!(
            "load_module {RTMP_MODULE};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {d}/error.log info;\npid {d}/nginx.pid;\nevents {{ worker_connections 1024; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{rtmp}; {applications} }} }}\n\
             http {{ access_log off; client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; \
             fastcgi_temp_path {d}/t3; uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;\n\
             types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}\n\
             server {{ listen 127.0.0.1:{http}; root {d}/www; add_header Cache-Control no-cache; }} }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .args(["-p", &d, "-c", &format!("{d}/nginx.conf")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", rtmp)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            dir,
            http,
            rtmp,
            _proc: proc,
        }
    }

    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// ffmpeg encoding a live test pattern and 440 Hz tone in real time (H.264 with a
/// keyframe a second, AAC), streams chosen by `maps`; the caller adds the output.
pub fn live_source(maps: &[&str]) -> Command {
    need("ffmpeg", "ffmpeg");
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-v", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(maps)
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "25", "-bf", "0", "-c:a", "aac", "-b:a", "48k"])
        .stderr(Stdio::null());
    c
}

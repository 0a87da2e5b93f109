//! Deployment: the systemd unit verifies, and a zero-downtime upgrade under load
//! (daemonised livegate, a new process with -u, SIGQUIT to the old) fails nothing.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::api::{Api, ADMIN_KEY};
use support::{free_port, origin_yaml, Origin};

#[test]
fn systemd_unit_verifies_cleanly() {
    let found = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "systemd-analyze is needed: apt-get install -y systemd"
    );
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/livegate.service"
    ))
    .unwrap();
    for directive in [
        "Type=forking",
        "PIDFile=/run/livegate/livegate.pid",
        "ExecStartPre=/usr/local/bin/livegate -t -c",
        "ExecStart=/usr/local/bin/livegate -d -c",
        "ExecReload=/usr/local/bin/livegate -s reload -c",
        "User=livegate",
        "LimitNOFILE=",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/livegate",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    ] {
        assert!(unit.contains(directive), "the unit lacks {directive}");
    }
    // Point it at the binary just built, so verify can check the executables.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("livegate.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/livegate", env!("CARGO_BIN_EXE_livegate")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = support::said(&out);
    // verify exits 0 on unknown keys and bad values and only warns: any word is a failure.
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

fn read_pid(file: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Kills the daemons a test started, whatever happens.
struct Pids(Vec<i32>);

impl Drop for Pids {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

async fn wait_for<F: FnMut() -> bool>(what: &str, secs: u64, mut f: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_under_load_fails_no_request_and_keeps_streams_through_the_grace_period() {
    let o = Origin::start("o1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let port = free_port();
    let admin_port = free_port();
    let conf = dir.path().join("livegate.yaml");
    std::fs::write(
        &conf,
        format!(
            "server: {{ threads: 2, pid_file: {d}/livegate.pid, upgrade_sock: {d}/upgrade.sock, error_log: {d}/error.log, \
             grace_period_seconds: 3, graceful_shutdown_timeout_seconds: 1 }}\n\
             listen: [\"127.0.0.1:{port}\"]\n\
             admin: {{ listen: \"127.0.0.1:{admin_port}\", key: {ADMIN_KEY} }}\n\
             state_dir: {d}/state\n\
             domains:\n  - {{ name: live.example.com, origin: {}, \
             auth: [ {{ scene: pull, scheme: tencent, keys: [upgradeKey1] }} ] }}\n",
            origin_yaml(&[o.addr], "")
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_livegate");
    let pid_file = dir.path().join("livegate.pid");
    let mut pids = Pids(Vec::new());

    let started = Command::new(bin)
        .args(["-d", "-c"])
        .arg(&conf)
        .status()
        .unwrap();
    assert!(started.success(), "daemon start failed");
    wait_for("the old process's pid file", 20, || {
        read_pid(&pid_file).is_some()
    })
    .await;
    let old = read_pid(&pid_file).unwrap();
    pids.0.push(old);
    wait_for("the old process to listen", 20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;

    let sign = |path: &str| {
        let out = Command::new(bin)
            .args(["sign", "-c"])
            .arg(&conf)
            .args(["--url", &format!("http://live.example.com{path}")])
            .output()
            .unwrap();
        let url = String::from_utf8(out.stdout).unwrap();
        format!(
            "http://127.0.0.1:{port}{}",
            &url.trim()["http://live.example.com".len()..]
        )
    };
    // A fresh connection per request: every request exercises the listening socket.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let m3u8 = sign("/file/2000.m3u8");
    let (ok, failed, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, ok, failed, stop) = (
                fresh.clone(),
                m3u8.clone(),
                ok.clone(),
                failed.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let r = client
                        .get(&url)
                        .header("host", "live.example.com")
                        .send()
                        .await;
                    let body = match r {
                        Ok(r) if r.status() == 200 => r.bytes().await.map(|b| b.len()),
                        Ok(r) => panic!("status {} during the upgrade", r.status()),
                        Err(e) => Err(e),
                    };
                    match body {
                        Ok(2000) => ok.fetch_add(1, Ordering::SeqCst),
                        Ok(n) => panic!("{n} bytes instead of 2000 during the upgrade"),
                        Err(e) => {
                            eprintln!("request failed: {e}");
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            })
        })
        .collect();
    // And a stream of management API calls, each on a fresh connection.
    let api = Api::new(admin_port);
    let (admin_ok, admin_failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let admin_load = {
        let (client, ok, failed, stop) = (
            fresh.clone(),
            admin_ok.clone(),
            admin_failed.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let url = format!(
                    "http://127.0.0.1:{}{}",
                    api.port,
                    api.signed("/v1/streams/forbidden")
                );
                match client.get(url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(r) => panic!("management API status {} during the upgrade", r.status()),
                    Err(e) => {
                        eprintln!("management API call failed: {e}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
                // Well under the 100 reads/s limit.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let mut flv = fresh
        .get(sign("/live/keep.flv"))
        .header("host", "live.example.com")
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(flv.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ok.load(Ordering::SeqCst);
    assert!(before > 10, "the load is not running: {before}");

    // The upgrade: the new process waits for the sockets, SIGQUIT makes the old hand them over.
    let mut new = Command::new(bin)
        .args(["-u", "-d", "-c"])
        .arg(&conf)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quit_at = Instant::now();
    assert!(Command::new("kill")
        .args(["-QUIT", &old.to_string()])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || new.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "the new process failed to take over: {}",
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
    );
    wait_for("the new process's pid", 20, || {
        read_pid(&pid_file).is_some_and(|p| p != old)
    })
    .await;
    let new_pid = read_pid(&pid_file).unwrap();
    pids.0.push(new_pid);

    // The FLV stream opened before the upgrade keeps flowing through the grace period…
    let mut flowed = 0usize;
    while quit_at.elapsed() < Duration::from_secs(2) {
        let chunk = tokio::time::timeout(Duration::from_secs(2), flv.chunk()).await;
        let chunk = chunk
            .expect("the old stream stalled")
            .expect("the old stream broke");
        flowed += chunk
            .expect("the old stream ended within the grace period")
            .len();
    }
    assert!(
        flowed > 100_000,
        "only {flowed} bytes flowed during the grace period"
    );
    let during = ok.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    admin_load.await.unwrap();
    assert_eq!(
        admin_failed.load(Ordering::SeqCst),
        0,
        "management API calls failed during the upgrade"
    );
    assert!(
        admin_ok.load(Ordering::SeqCst) > 20,
        "the management API calls did not run"
    );
    let total = ok.load(Ordering::SeqCst);
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the upgrade"
    );
    assert!(
        total > during && during > before,
        "the load stalled: {before} {during} {total}"
    );

    // …and is cut once grace_period_seconds + graceful_shutdown_timeout_seconds are over,
    // when the old process exits.
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(_)) = flv.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the old stream outlived its process's shutdown"
    );
    wait_for("the old process to exit", 15, || !alive(old)).await;
    assert!(
        quit_at.elapsed() >= Duration::from_secs(3),
        "the old process did not wait for the grace period"
    );
    assert!(alive(new_pid));
    // The new process serves.
    let r = fresh
        .get(&m3u8)
        .header("host", "live.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The logrotate recipe (`deploy/logrotate`): a daemonised livegate moved off its
/// log file writes to a new one after SIGUSR1; `livegate -s reload` reaches it
/// through its PID file.
#[tokio::test(flavor = "multi_thread")]
async fn sigusr1_reopens_the_log_and_a_daemon_reloads() {
    let o = Origin::start("o1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let port = free_port();
    let conf = dir.path().join("livegate.yaml");
    let write = |host: &str| {
        std::fs::write(
            &conf,
            format!(
                "server: {{ threads: 1, pid_file: {d}/livegate.pid, upgrade_sock: {d}/upgrade.sock, error_log: {d}/error.log }}\n\
                 listen: [\"127.0.0.1:{port}\"]\naccess_log: {{ format: combined }}\nstate_dir: {d}/state\n\
                 domains:\n  - {{ name: {host}, origin: {}, auth: [ {{ scene: pull, enabled: false }} ] }}\n",
                origin_yaml(&[o.addr], "")
            ),
        )
        .unwrap()
    };
    write("one.example.com");
    // The daemon runs from its own link to the binary, so that the test can
    // install a "new" one under it, as a package upgrade does.
    let installed = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let bin_path = installed.path().join("livegate");
    let install = || {
        let _ = std::fs::remove_file(&bin_path);
        if std::fs::hard_link(env!("CARGO_BIN_EXE_livegate"), &bin_path).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_livegate"), &bin_path).unwrap();
        }
    };
    install();
    let bin = bin_path.to_str().unwrap();
    let pid_file = dir.path().join("livegate.pid");
    assert!(Command::new(bin)
        .args(["-d", "-c"])
        .arg(&conf)
        .status()
        .unwrap()
        .success());
    wait_for("the pid file", 20, || read_pid(&pid_file).is_some()).await;
    let mut pids = Pids(vec![read_pid(&pid_file).unwrap()]);
    wait_for("the listener", 20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let get = |host: &'static str, path: &'static str| async move {
        support::client()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("host", host)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get("one.example.com", "/live/before.m3u8").await, 200);
    let (log, rotated) = (dir.path().join("error.log"), dir.path().join("error.log.1"));
    wait_for("the first access line", 20, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("before.m3u8"))
    })
    .await;
    std::fs::rename(&log, &rotated).unwrap();
    assert!(Command::new("kill")
        .args(["-USR1", &pids.0[0].to_string()])
        .status()
        .unwrap()
        .success());
    wait_for("the reopened log", 20, || log.exists()).await;
    assert_eq!(get("one.example.com", "/live/after.m3u8").await, 200);
    wait_for("the access line in the new file", 20, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("after.m3u8"))
    })
    .await;
    assert!(!std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("after.m3u8"));

    // The daemon reloads: the new domain serves, the old one is gone.
    write("two.example.com");
    let out = Command::new(bin)
        .args(["-s", "reload", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::said(&out));
    assert_eq!(get("two.example.com", "/live/x.m3u8").await, 200);
    assert_eq!(get("one.example.com", "/live/x.m3u8").await, 404);
    assert_eq!(read_pid(&pid_file), Some(pids.0[0]), "the same process");

    // A new binary installed under the running one: reload upgrades to it (a new
    // process takes the sockets over), with the file applied.
    install();
    write("three.example.com");
    let out = Command::new(bin)
        .args(["-s", "reload", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    let said = support::said(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("upgraded without downtime"), "{said}");
    let new = read_pid(&pid_file).unwrap();
    pids.0.push(new);
    assert_ne!(new, pids.0[0]);
    // The old process may finish the accepts it had begun: soon every
    // connection lands on the new one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get("three.example.com", "/live/x.m3u8").await != 200 {
        assert!(
            Instant::now() < deadline,
            "the new process does not serve the new file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

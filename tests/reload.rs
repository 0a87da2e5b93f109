//! `livegate -s reload` against the real binary: under load (endless FLV viewers
//! and HLS players on the demo origin) every reload takes effect for the next
//! request and cuts nobody; a broken file changes nothing; a new certificate is
//! served by the next handshake; a removed domain's viewers are cut.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::media::demo_origin;
use support::{client, free_port, tencent, Livegate};

const MAIN: &str = "main.example.com";
const SIDE: &str = "side.example.com";
const KEY: &str = "reloadKey2026";

/// A domain on the demo origin. A viewer that falls behind skips ahead instead
/// of being cut (`slow_viewer: skip`): on a loaded test machine the test's own
/// readers may lag, and what is tested is that a reload cuts nobody.
fn domain(name: &str, origin: u16, key: &str) -> String {
    format!(
        "  - name: \"{name}\"\n    origin: {{ peers: [\"127.0.0.1:{origin}\"], fanout: {{ slow_viewer: skip }} }}\n    auth:\n      - {{ scene: pull, scheme: tencent, keys: [{key}] }}\n"
    )
}

/// Replaces the `domains:` list of the running instance's file.
fn write_domains(lg: &Livegate, domains: &str) {
    let text = std::fs::read_to_string(&lg.config).unwrap();
    let head = &text[..text.find("domains:\n").unwrap()];
    std::fs::write(&lg.config, format!("{head}domains:\n{domains}")).unwrap();
}

fn reload(lg: &Livegate) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["-s", "reload", "-c"])
        .arg(&lg.config)
        .output()
        .unwrap()
}

fn reloaded(lg: &Livegate) -> String {
    let out = reload(lg);
    let said = support::said(&out);
    assert!(out.status.success(), "reload failed: {said}\n{}", lg.log());
    said
}

/// An endless FLV viewer of `host`'s `cam` (a client with no overall timeout:
/// on a loaded machine these tests take a minute).
async fn watch(lg: &Livegate, host: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .read_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(lg.url(&tencent("/live/cam.flv", KEY)))
        .header("host", host)
        .send()
        .await
        .unwrap()
}

async fn status(lg: &Livegate, host: &str, path: &str, key: &str) -> u16 {
    lg.get(host, &tencent(path, key)).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_reloads_under_load_cut_nobody_and_take_effect_at_once() {
    let origin = demo_origin();
    let o = origin.port;
    let lg = Livegate::start(&(domain(MAIN, o, KEY) + &domain(SIDE, o, "side0")));
    let stop = Arc::new(AtomicBool::new(false));

    // 50 FLV viewers of one stream (one fan-out pull), each counting its bytes
    // (endless: a client with no overall timeout; a loaded machine makes this
    // test take a minute).
    let mut viewers = Vec::new();
    for _ in 0..50 {
        let r = watch(&lg, MAIN).await;
        assert_eq!(r.status(), 200);
        let bytes = Arc::new(AtomicU64::new(0));
        let (b, stop) = (bytes.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut r = r;
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_secs(10), r.chunk()).await {
                    Ok(Ok(Some(c))) => b.fetch_add(c.len() as u64, Ordering::Relaxed),
                    _ => return false,
                };
            }
            true
        });
        viewers.push((bytes, task));
    }
    // 100 HLS players: playlist, then its newest segment, again and again.
    let failed = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let mut players = Vec::new();
    for i in 0..100 {
        let (stop, failed, served) = (stop.clone(), failed.clone(), served.clone());
        let base = lg.url("");
        players.push(tokio::spawn(async move {
            let c = client();
            let stream = format!("hls{}", i % 10);
            while !stop.load(Ordering::Relaxed) {
                let playlist = tencent(&format!("/live/{stream}.m3u8"), KEY);
                let ok = async {
                    let r = c
                        .get(format!("{base}{playlist}"))
                        .header("host", MAIN)
                        .send()
                        .await
                        .ok()?;
                    let text = (r.status() == 200).then_some(r.text().await.ok()?)?;
                    // As a player does: the URI as the playlist gives it (with
                    // its segment token).
                    let segment = text.lines().rfind(|l| l.contains(".ts"))?.to_owned();
                    let r = c
                        .get(format!("{base}/live/{segment}"))
                        .header("host", MAIN)
                        .send()
                        .await
                        .ok()?;
                    (r.status() == 200 && !r.bytes().await.ok()?.is_empty()).then_some(())
                };
                match ok.await {
                    Some(()) => served.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut domains = domain(MAIN, o, KEY) + &domain(SIDE, o, "side0");
    for i in 1..=20 {
        if i % 2 == 1 {
            // Add a domain: it serves on the next request.
            let name = format!("new{i}.example.com");
            domains += &domain(&name, o, &format!("new{i}key"));
            write_domains(&lg, &domains);
            assert_eq!(
                status(&lg, &name, "/live/x.m3u8", &format!("new{i}key")).await,
                404
            );
            reloaded(&lg);
            assert_eq!(
                status(&lg, &name, "/live/x.m3u8", &format!("new{i}key")).await,
                200
            );
        } else {
            // Rotate the side domain's key: the old one is refused at once.
            let (old, new) = (format!("side{}", i - 2), format!("side{i}"));
            domains = domains.replace(&format!("keys: [{old}]"), &format!("keys: [{new}]"));
            write_domains(&lg, &domains);
            reloaded(&lg);
            assert_eq!(status(&lg, SIDE, "/live/x.m3u8", &new).await, 200);
            assert_eq!(status(&lg, SIDE, "/live/x.m3u8", &old).await, 403);
        }
    }

    // A broken file is refused whole: exit 1, the -t message, nothing changed.
    let broken = domains.clone()
        + &domain("broken.example.com", o, KEY)
            .replace(&format!("127.0.0.1:{o}"), "not-an-address");
    write_domains(&lg, &broken);
    let out = reload(&lg);
    let said = support::said(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("not-an-address"), "{said}");
    assert_eq!(
        status(&lg, "broken.example.com", "/live/x.m3u8", KEY).await,
        404
    );
    assert_eq!(status(&lg, SIDE, "/live/x.m3u8", "side20").await, 200);

    // Every viewer is still streaming: bytes keep coming after the last reload.
    let before: Vec<u64> = viewers
        .iter()
        .map(|(b, _)| b.load(Ordering::Relaxed))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while viewers
        .iter()
        .zip(&before)
        .any(|((b, _), was)| b.load(Ordering::Relaxed) <= *was)
    {
        if Instant::now() > deadline {
            let stuck: Vec<_> = viewers
                .iter()
                .zip(&before)
                .enumerate()
                .filter(|(_, ((b, _), was))| b.load(Ordering::Relaxed) <= **was)
                .map(|(i, ((b, t), _))| (i, b.load(Ordering::Relaxed), t.is_finished()))
                .collect();
            panic!(
                "viewers stopped receiving (index, bytes, task ended): {stuck:?}\n{}",
                lg.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for (_, task) in viewers {
        assert!(task.await.unwrap(), "an FLV viewer was cut by a reload");
    }
    for p in players {
        p.await.unwrap();
    }
    let (failed, served) = (
        failed.load(Ordering::Relaxed),
        served.load(Ordering::Relaxed),
    );
    assert_eq!(failed, 0, "{failed} HLS fetches failed ({served} served)");
    assert!(served >= 100, "only {served} HLS fetches");
    assert!(!lg.log().contains("ERROR pingora"), "{}", lg.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_domain_cuts_its_viewers_and_a_listener_change_needs_a_new_process() {
    let origin = demo_origin();
    let o = origin.port;
    let lg = Livegate::start(&(domain(MAIN, o, KEY) + &domain(SIDE, o, KEY)));
    let main_viewer = watch(&lg, MAIN).await;
    let side_viewer = watch(&lg, SIDE).await;
    assert_eq!(
        (main_viewer.status().as_u16(), side_viewer.status().as_u16()),
        (200, 200)
    );
    write_domains(&lg, &domain(MAIN, o, KEY));
    let said = reloaded(&lg);
    assert!(said.contains("cut 1 connection"), "{said}");
    let cut = support::until_cut(side_viewer, Duration::from_secs(20)).await;
    assert!(cut.is_some(), "the removed domain's viewer kept streaming");
    assert!(
        support::until_cut(main_viewer, Duration::from_secs(2))
            .await
            .is_none(),
        "the kept domain's viewer was cut"
    );
    assert_eq!(status(&lg, SIDE, "/live/x.m3u8", KEY).await, 404);
    // It comes back in its old place.
    write_domains(&lg, &(domain(MAIN, o, KEY) + &domain(SIDE, o, KEY)));
    reloaded(&lg);
    assert_eq!(status(&lg, SIDE, "/live/x.m3u8", KEY).await, 200);

    // A new listener address is reported with the command that applies it.
    let text = std::fs::read_to_string(&lg.config).unwrap();
    let moved = text.replace(
        &format!("127.0.0.1:{}", lg.port),
        &format!("127.0.0.1:{}", free_port()),
    );
    std::fs::write(&lg.config, moved).unwrap();
    let said = reloaded(&lg);
    assert!(
        said.contains("needs a new process: listen") && said.contains("livegate -u"),
        "{said}"
    );
    assert_eq!(
        status(&lg, MAIN, "/live/x.m3u8", KEY).await,
        200,
        "still on the old address"
    );
}

/// The SHA-256 of the certificate a TLS handshake with `port` presents.
async fn served_certificate(port: u16) -> Vec<u8> {
    use tokio_rustls::rustls;
    #[derive(Debug)]
    struct Any;
    impl rustls::client::danger::ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(Any))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(MAIN).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    ring::digest::digest(&ring::digest::SHA256, &cert)
        .as_ref()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_certificate_is_served_by_the_next_handshake() {
    let origin = demo_origin();
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let write_cert = || {
        let c = rcgen::generate_simple_self_signed(vec![MAIN.into()]).unwrap();
        std::fs::write(&crt, c.cert.pem()).unwrap();
        std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
        ring::digest::digest(&ring::digest::SHA256, c.cert.der())
            .as_ref()
            .to_vec()
    };
    let first = write_cert();
    let tls_port = free_port();
    let extra = format!(
        "  - {{ addr: \"127.0.0.1:{tls_port}\", tls: {{ cert: {}, key: {} }} }}\n",
        crt.display(),
        key.display()
    );
    let mut lg = Livegate::start_with(&domain(MAIN, origin.port, KEY), &extra);
    lg.wait_port(tls_port);
    assert_eq!(served_certificate(tls_port).await, first);
    let second = write_cert();
    assert_ne!(first, second);
    assert_eq!(
        served_certificate(tls_port).await,
        first,
        "not before the reload"
    );
    reloaded(&lg);
    assert_eq!(served_certificate(tls_port).await, second);
    // A key that is not the certificate's is refused whole; the served one stays.
    let other = rcgen::generate_simple_self_signed(vec![MAIN.into()]).unwrap();
    std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
    let out = reload(&lg);
    assert_eq!(out.status.code(), Some(1), "{}", support::said(&out));
    assert!(
        support::said(&out).contains("does not go with"),
        "{}",
        support::said(&out)
    );
    assert_eq!(served_certificate(tls_port).await, second);
}

//! The framework floor for `benches/offload.sh`: a bare Pingora reverse proxy
//! with livegate's tuning (one thread, no work stealing, the same small read
//! buffer) and nothing else — no auth, no sessions, no fan-out — so each ratio
//! shows how much of a cost is livegate's and how much Pingora's.
//!
//! `cargo run --release --example bare_proxy -- LISTEN ORIGIN`

use async_trait::async_trait;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::prelude::HttpPeer;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

struct Bare {
    origin: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.origin.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(origin)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bare_proxy LISTEN ORIGIN");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        pid_file: format!("/tmp/bare-proxy-{}.pid", std::process::id()),
        upgrade_sock: format!("/tmp/bare-proxy-{}.sock", std::process::id()),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(
        &server.configuration,
        Bare {
            origin: origin.clone(),
        },
    );
    proxy.add_listener(
        ListenerConfig::tcp(listen)
            .l4_buffer(L4BufferSettings::default().read(livegate::server::PLAIN_READ_BUFFER)),
    );
    server.add_service(proxy);
    server.run_forever()
}

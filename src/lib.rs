//! livegate: an edge reverse proxy for live streaming that authenticates every
//! request inline (signed URLs, then optionally a remote auth server) and streams
//! approved traffic to origin servers. Built on Pingora.

pub mod access;
pub mod access_log;
pub mod admin;
pub mod admission;
pub mod api;
pub mod auth;
pub mod cache;
pub mod canon;
pub mod check;
pub mod config;
pub mod conn;
pub mod console;
pub mod cors;
pub mod demo;
pub mod fanout;
pub mod hls;
pub mod hygiene;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod origin;
pub mod proxy;
pub mod redact;
pub mod reload;
pub mod route;
pub mod rtmp;
pub mod sendfile;
pub mod server;
pub mod sign;
pub mod state;
pub mod streams;
pub mod tls;
pub mod verdict;
pub mod watchdog;

/// Unix seconds now. Only the binary's edges read the clock; everything that
/// decides takes the time as a parameter.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

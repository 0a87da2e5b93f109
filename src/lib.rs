//! livegate: an edge reverse proxy for live streaming that authenticates every
//! request inline (signed URLs, then optionally a remote auth server) and streams
//! approved traffic to origin servers. Built on Pingora.

pub mod auth;
pub mod check;
pub mod config;
pub mod route;
pub mod sign;
pub mod verdict;

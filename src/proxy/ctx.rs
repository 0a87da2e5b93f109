//! What one request carries from phase to phase of the proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, HeaderValue};

use super::request::IpText;
use crate::cors::Cors;
use crate::hls::{Grant, Rewrite};
use crate::route::Scene;
use crate::streams::{StreamKey, Ticket};
use crate::verdict::Reason;

/// What one request carries from phase to phase.
pub struct Ctx {
    pub(super) started: Instant,
    /// The domain once the Host matched one.
    pub(super) domain: Option<usize>,
    /// The admitted domain's admission state and site, as the configuration
    /// stood at admission: the request keeps them through a reload.
    pub(super) door: Option<Arc<crate::admission::Door>>,
    pub(super) site: Option<Arc<super::Site>>,
    pub(super) scene: Option<Scene>,
    pub(super) client: Option<IpAddr>,
    /// `client` as text, formatted once per request (empty when unknown).
    pub(super) client_ip: IpText,
    /// The URI to send upstream when it differs from the canonical target (prefix
    /// or auth parameters removed).
    pub(super) upstream_uri: Option<http::Uri>,
    /// `app/stream`, the consistent-hashing key, when the pool hashes.
    pub(super) hash_key: String,
    /// Peers that refused a connection for this request.
    pub(super) tried: Vec<SocketAddr>,
    pub(super) peer: Option<SocketAddr>,
    /// Headers the auth server's answer asks to pass to the origin.
    pub(super) upstream_headers: Option<Arc<[(HeaderName, HeaderValue)]>>,
    /// `cut_on_expiry`: when the stream is cut (its signature's expiry).
    pub(super) cut_at: Option<i64>,
    /// A cookie or header token, left out of what the origin gets.
    pub(super) credential: Option<Arc<crate::sign::cdn::rule::TokenRule>>,
    /// The stream session this connection counts in, once admitted.
    pub(super) stream: Option<StreamKey>,
    /// Tells an admitted connection when the management API cut its stream.
    pub(super) ticket: Option<Ticket>,
    /// The client whose connection slot (access limits) this request holds.
    pub(super) slot: Option<IpAddr>,
    /// A pull on a domain with segment authorisation: what the tokens written
    /// into its response (if a playlist) grant.
    pub(super) playlist: Option<Grant>,
    /// The playlist being rewritten.
    pub(super) rewrite: Option<Rewrite>,
    /// A refused playlist's body is dropped (its head became a 502).
    pub(super) swallow: bool,
    /// Whether the client came over TLS (playlist URIs resolve against https).
    pub(super) tls: bool,
    /// Admitted by a segment token: the stream it opens.
    pub(super) session: Option<String>,
    /// The domain's CORS policy and the allowed `Origin` of this request (none
    /// when it is not allowed: the answer then carries no CORS header at all).
    pub(super) cors: Option<(Arc<Cors>, Option<HeaderValue>)>,
    /// An `.flv` request (fan-out candidate).
    pub(super) flv: bool,
    /// An HLS object (cache candidate).
    pub(super) hls: bool,
    /// An answer written past Pingora's session (a cached segment sent by
    /// `sendfile`): its status and body bytes, for the access log.
    pub(super) answered: Option<(u16, usize)>,
    /// The connection was handed over (a fan-out viewer on HTTP/1): the
    /// request's context moved with it, and it ends, and is logged, there.
    pub(super) handed: bool,
    /// Why the request was refused.
    pub(super) reason: Option<Reason>,
    /// Admission counted the verdict (else the proxy counts what it refused).
    pub(super) counted: bool,
}

impl Ctx {
    /// A request's context before any phase ran.
    pub(super) fn new() -> Ctx {
        Ctx {
            started: Instant::now(),
            domain: None,
            door: None,
            site: None,
            scene: None,
            client: None,
            client_ip: IpText::default(),
            upstream_uri: None,
            hash_key: String::new(),
            tried: Vec::new(),
            peer: None,
            upstream_headers: None,
            cut_at: None,
            credential: None,
            stream: None,
            ticket: None,
            slot: None,
            playlist: None,
            rewrite: None,
            swallow: false,
            tls: false,
            session: None,
            cors: None,
            flv: false,
            hls: false,
            answered: None,
            handed: false,
            reason: None,
            counted: false,
        }
    }
}

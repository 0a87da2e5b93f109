//! The YAML configuration: schema, defaults, and loading with errors that name the
//! file, the key path and (where the YAML parser knows it) the line.
//!
//! Unknown keys are errors, not ignored: a misspelt `valid_duraton` silently
//! ignored would leave an edge open or every URL expired.

mod load;

use std::fmt;
use std::path::PathBuf;

pub use load::{load, ConfigError, Loaded, Problem, Problems};

use serde::{Deserialize, Serialize};

use crate::route::Scene;
use crate::sign::{Scheme, TimeFormat};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub listen: Vec<Listen>,
    #[serde(default)]
    pub domains: Vec<DomainConfig>,
    /// Prometheus metrics endpoint; none when absent.
    pub metrics: Option<MetricsConfig>,
    /// One line per request (log target `access`); none when absent.
    pub access_log: Option<AccessLogConfig>,
    /// Event callbacks to the customer's backend; none when absent.
    pub notify: Option<NotifyConfig>,
    /// The management API; none when absent.
    pub admin: Option<AdminConfig>,
    /// Where rules and forbids set through the management API are kept.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Which store holds them: `{backend: file}` (the default, under `state_dir`).
    #[serde(default)]
    pub state: StateConfig,
    /// RTMP publish and play through the gate; none when absent.
    pub rtmp: Option<RtmpConfig>,
}

/// `rtmp:` — listeners (plain and `rtmps`) and how sessions are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtmpConfig {
    pub listen: Vec<Listen>,
    /// Handshake, `connect` and `publish`/`play` must arrive within this.
    #[serde(default = "default_rtmp_handshake_timeout")]
    pub handshake_timeout_ms: u64,
    /// A second publisher of a stream live on this edge.
    #[serde(default)]
    pub duplicate_publish: DuplicatePublish,
}

fn default_rtmp_handshake_timeout() -> u64 {
    10_000
}

/// What a second publisher of a live stream gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicatePublish {
    /// Refused (`DUPLICATE_PUBLISH`) while the first keeps going.
    #[default]
    Reject,
    /// The first is cut and the second goes on.
    Replace,
}

/// The state store: `{backend: file}` (the default, under `state_dir`) or
/// `{backend: etcd, endpoints, prefix, …}` for a fleet of edges sharing rules,
/// forbids and the HLS token secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default)]
    pub backend: StateBackend,
    /// etcd's client URLs (`http://10.0.0.9:2379`, `https://…` with `tls`).
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Where this fleet's keys live in etcd (default `/livegate`).
    pub prefix: Option<String>,
    /// etcd user and password, when etcd has authentication on.
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// TLS to etcd: the CA that signed etcd's certificate, and this edge's client
    /// certificate and key when etcd asks for one.
    pub tls: Option<EtcdTls>,
    /// This edge's name in `GET /v1/state` and online lists (default: the host name).
    pub edge: Option<String>,
}

/// TLS settings for the connection to etcd.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    #[default]
    File,
    Etcd,
}

/// The management API's listener and the key its calls are signed with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// `sign = md5(key + t)` on every call: this key, or the one in `key_file`.
    pub key: Option<SecretString>,
    /// A file holding the key (its first line): keeps the key out of the
    /// configuration, which is often shared or checked in.
    pub key_file: Option<PathBuf>,
}

impl AdminConfig {
    /// The key calls are signed with: `key`, or the first line of `key_file`.
    pub fn key(&self) -> Result<String, String> {
        match (&self.key, &self.key_file) {
            (Some(k), None) => Ok(k.0.clone()),
            (None, Some(f)) => read_key_file(f),
            (Some(_), Some(_)) => Err("give key or key_file, not both".into()),
            (None, None) => Err(
                "the management API needs a key (key: or key_file:, 1-100 of A-Z a-z 0-9): every call is signed with it"
                    .into(),
            ),
        }
    }
}

/// The first line of a key file, without surrounding white space.
pub fn read_key_file(f: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(f).map_err(|e| format!("key_file {}: {e}", f.display()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

fn default_admin_listen() -> String {
    "127.0.0.1:9180".into()
}

fn default_state_dir() -> PathBuf {
    "/var/lib/livegate".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// nginx's `combined`, plus duration, origin, verdict and reason.
    #[default]
    Combined,
    Json,
}

/// Which events are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    StreamStart,
    StreamEnd,
    AuthDenied,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub url: String,
    /// Signs each body: `sign = md5(key + t)`.
    pub key: SecretString,
    #[serde(default = "default_events")]
    pub events: Vec<EventKind>,
    #[serde(default = "default_notify_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// A stream ends when no connection came back within this.
    #[serde(default = "default_linger")]
    pub linger_ms: u64,
    /// Events waiting for delivery, at most; more are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

/// Pingora's own server settings, passed through. Only the keys listed here are
/// accepted; livegate's defaults are the measured fast ones (`work_stealing: false`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub threads: Option<usize>,
    pub work_stealing: Option<bool>,
    pub listener_tasks_per_fd: Option<usize>,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    pub error_log: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub grace_period_seconds: Option<u64>,
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    pub upstream_keepalive_pool_size: Option<usize>,
    pub max_retries: Option<usize>,
    pub daemon_wait_for_ready: Option<bool>,
    /// livegate's own: the whole request head must arrive within this.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// livegate's own: concurrent client connections per process; more are closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// A listening address: `"0.0.0.0:8080"` or `{addr, tls: {cert, key}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Listen {
    Plain(String),
    Full(ListenFull),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFull {
    pub addr: String,
    pub tls: Option<Tls>,
    /// TLS: HTTP/2 by ALPN (default true); plain: `h2c` for HTTP/2 with prior
    /// knowledge (default false).
    pub http2: Option<Http2Setting>,
}

/// `listen[].http2`: a switch, or `h2c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Http2Setting {
    Switch(bool),
    Word(H2c),
}

/// The word `h2c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum H2c {
    H2c,
}

/// How a listener speaks HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http2 {
    Off,
    /// Offered by ALPN (TLS).
    Alpn,
    /// Cleartext HTTP/2 with prior knowledge, beside HTTP/1.1.
    H2c,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Listen {
    pub fn addr(&self) -> &str {
        match self {
            Listen::Plain(a) => a,
            Listen::Full(f) => &f.addr,
        }
    }

    pub fn tls(&self) -> Option<&Tls> {
        match self {
            Listen::Plain(_) => None,
            Listen::Full(f) => f.tls.as_ref(),
        }
    }

    /// How it speaks HTTP/2: TLS listeners offer h2 unless `http2: false`;
    /// plain ones speak h2c only with `http2: h2c`.
    pub fn http2(&self) -> Http2 {
        let setting = match self {
            Listen::Plain(_) => None,
            Listen::Full(f) => f.http2,
        };
        match (self.tls().is_some(), setting) {
            (true, None | Some(Http2Setting::Switch(true))) => Http2::Alpn,
            (false, Some(Http2Setting::Word(H2c::H2c))) => Http2::H2c,
            _ => Http2::Off,
        }
    }
}

/// One domain: which Hosts it serves, where it forwards, how it authenticates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// Exact Host (port ignored), `*.example.com`, or `*`.
    pub name: String,
    pub origin: OriginConfig,
    #[serde(default = "yes")]
    pub strip_auth_params: bool,
    #[serde(default)]
    pub auth: Vec<RuleConfig>,
    pub remote_auth: Option<RemoteAuthConfig>,
    /// Referer, User-Agent and IP lists and per-client limits, checked before the
    /// signature.
    pub access: Option<AccessConfig>,
    /// `flat` (default): the stream is the file name (`/live/cam1.m3u8`);
    /// `nested`: the directory (`/live/cam1/index.m3u8`).
    #[serde(default)]
    pub stream_path: StreamPath,
    /// Segment authorisation: tokens on the URIs inside passing playlists.
    pub hls: Option<HlsConfig>,
    /// Browser players on other origins.
    pub cors: Option<CorsConfig>,
    /// The HLS micro-cache (on by default).
    #[serde(default)]
    pub cache: CacheConfig,
    /// Cut a stream (FLV viewer, RTMP session) when its signature or token
    /// expires, instead of letting it play on (the clouds' default).
    #[serde(default)]
    pub cut_on_expiry: bool,
    /// Removed by a reload while the process runs: kept in its place (so every
    /// index of the running edge stays that domain's) but serving no host.
    #[serde(skip)]
    pub retired: bool,
}

/// Where a path names its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamPath {
    #[default]
    Flat,
    Nested,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HlsConfig {
    /// Default: on when the domain has a pull rule that signs.
    pub rewrite: Option<bool>,
    #[serde(default = "default_token_param")]
    pub token_param: String,
    /// Token lifetime for playlists whose URL has no expiry (seconds).
    #[serde(default = "default_token_ttl")]
    pub token_ttl: u64,
}

fn default_token_param() -> String {
    "lgt".into()
}

fn default_token_ttl() -> u64 {
    3600
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to read responses (`https://player.example.com`), or `"*"`.
    pub allow_origins: Vec<String>,
    #[serde(default = "default_cors_max_age")]
    pub max_age: u64,
}

fn default_cors_max_age() -> u64 {
    600
}

/// Access control for a domain (and, under `apps`, per app: an app's entry
/// replaces the domain's lists and limits, as an exact app's rule wins over `*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referer: Option<RefererList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<AllowDeny>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<AllowDeny>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsConfig>,
    /// CIDRs of balancers in front whose `X-Forwarded-For` names the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Per app: replaces the domain's lists and limits for that app.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub apps: std::collections::BTreeMap<String, AccessConfig>,
}

/// An allow list or a deny list (exactly one of the two).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowDeny {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
}

/// Referer hosts allowed or denied, and what a request without a Referer gets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefererList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
    /// Players and apps often send no Referer: allowed by default.
    #[serde(default = "yes")]
    pub allow_empty: bool,
}

/// Per client IP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Requests one second may reach (default: `requests_per_second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Concurrent admitted connections (long-lived streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}

/// Asking the customer's own auth server after the signature passed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteAuthConfig {
    /// Base URL; the client's path and query are appended (a path here is a prefix).
    pub url: String,
    #[serde(default)]
    pub method: RemoteMethod,
    #[serde(default)]
    pub scope: Scope,
    /// Bounds the whole exchange, connect included.
    #[serde(default = "default_remote_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub timeout_action: TimeoutAction,
    /// Response headers of a passing answer copied onto the origin request.
    #[serde(default)]
    pub upstream_headers: Vec<String>,
    pub cache: Option<RemoteCacheConfig>,
}

/// The method of the auth request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum RemoteMethod {
    /// The client's own method.
    #[default]
    #[serde(rename = "follow")]
    Follow,
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "HEAD")]
    Head,
}

/// Which requests go to the auth server: `all` (default), `{extensions: [...]}`
/// or `{paths: [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Scope {
    Word(ScopeWord),
    Extensions(ExtensionScope),
    Paths(PathScope),
}

impl Default for Scope {
    fn default() -> Scope {
        Scope::Word(ScopeWord::All)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeWord {
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionScope {
    /// Case-insensitive, without the dot.
    pub extensions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathScope {
    /// Exact paths, or prefixes when they end with `*`.
    pub paths: Vec<String>,
}

/// What an unreachable or too slow auth server means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutAction {
    /// Let the request through, as the cloud providers do.
    #[default]
    Allow,
    /// Answer 403 (`REMOTE_TIMEOUT` or `REMOTE_ERROR`).
    Block,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteCacheConfig {
    #[serde(default = "default_allow_ttl")]
    pub allow_ttl_ms: u64,
    #[serde(default = "default_deny_ttl")]
    pub deny_ttl_ms: u64,
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Off (default): an answer is cached per client (its IP, Cookie,
    /// Authorization, User-Agent and Referer are part of the key), because the auth
    /// server is told them and may decide by them. On: clients share answers, for
    /// auth servers that decide by the URL alone.
    #[serde(default)]
    pub share_between_clients: bool,
}

/// How a peer is picked from the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    /// Ketama on `app/stream`: every viewer of a stream lands on the same origin.
    Consistent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    pub peers: Vec<String>,
    #[serde(default)]
    pub balance: Balance,
    /// Host header sent upstream instead of the client's.
    pub host: Option<String>,
    pub health_check: Option<HealthCheck>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Per read: a live stream that keeps sending is never cut.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// One origin pull per `.flv` stream shared by its viewers: `true` (the
    /// default), `false`, or settings.
    #[serde(default)]
    pub fanout: FanoutConfig,
    /// RTMP origins (`host:port`) for publishers and players through `rtmp.listen`,
    /// balanced like `peers`.
    #[serde(default)]
    pub rtmp_peers: Vec<String>,
}

/// `domains[].cache`: the HLS micro-cache of segments and playlists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The most the domain's cache holds (default 256 MB).
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
    /// Query parameters left out of the cache key and of the shared fill (an
    /// origin's per-viewer `session=` would make every viewer a miss).
    #[serde(default)]
    pub ignore_params: Vec<String>,
    /// An origin answer with `Set-Cookie` is cached without it (default: passed
    /// through uncached).
    #[serde(default)]
    pub strip_cookies: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_bytes: default_cache_bytes(),
            ignore_params: Vec::new(),
            strip_cookies: false,
        }
    }
}

fn default_cache_bytes() -> u64 {
    256 << 20
}

/// `origin.fanout`: a switch, or the settings of FLV fan-out.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FanoutConfig {
    Switch(bool),
    Settings(FanoutSettings),
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig::Switch(true)
    }
}

impl FanoutConfig {
    /// The settings in force; `None` when fan-out is off.
    pub fn settings(&self) -> Option<FanoutSettings> {
        match self {
            FanoutConfig::Switch(false) => None,
            FanoutConfig::Switch(true) => Some(FanoutSettings::default()),
            FanoutConfig::Settings(s) => s.enabled.then(|| s.clone()),
        }
    }
}

/// How FLV fan-out treats its pulls and viewers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanoutSettings {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A pull with no viewer ends this long after the last one left.
    #[serde(default = "default_fanout_linger")]
    pub linger_ms: u64,
    /// A viewer further behind the live edge than this (in stream time) is slow.
    #[serde(default = "default_queue_ms")]
    pub queue_ms: u64,
    /// … or than this many bytes.
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes: u64,
    /// What happens to a slow viewer.
    #[serde(default)]
    pub slow_viewer: SlowViewer,
    /// A caught-up viewer's writes gather what arrives within this long into
    /// one (0: every batch of tags is written as it comes). Fewer, larger
    /// writes cost less CPU per byte; each adds up to this much latency.
    #[serde(default)]
    pub coalesce_ms: u64,
}

impl Default for FanoutSettings {
    fn default() -> Self {
        FanoutSettings {
            enabled: true,
            linger_ms: default_fanout_linger(),
            queue_ms: default_queue_ms(),
            queue_bytes: default_queue_bytes(),
            slow_viewer: SlowViewer::default(),
            coalesce_ms: 0,
        }
    }
}

/// A slow viewer is cut (players reconnect at the live edge), or skips to the
/// next keyframe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowViewer {
    #[default]
    Cut,
    Skip,
}

fn default_fanout_linger() -> u64 {
    5_000
}
fn default_queue_ms() -> u64 {
    10_000
}
fn default_queue_bytes() -> u64 {
    16 << 20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub interval_ms: u64,
}

/// One signing rule as written in YAML and sent to the management API (which
/// serialises it back, keys masked, and keeps it in the state file).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub scene: Scene,
    #[serde(default = "star")]
    pub app: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    #[serde(default)]
    pub keys: Vec<SecretString>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_duration: Option<i64>,
    #[serde(default)]
    pub skew: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param_names: Option<ParamNames>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_format: Option<TimeFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypt_fields: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// `akamai_token`, `jwt`: where the token is read (query parameter,
    /// cookie, header); each scheme has defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenPlaces>,
    /// `akamai_token`: the HMAC's hash, `sha256` (default), `sha1` or `md5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<HmacAlgorithm>,
    /// `akamai_token`: the generator's `salt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salt: Option<SecretString>,
    /// `akamai_token`: the generator's `escape_early`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub escape_early: bool,
    /// `jwt`: the `aud` every token must name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `jwt`: the `iss` every token must name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `jwt`: claims that scope a token to a stream or a path prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<ScopeClaims>,
    /// `jwt`: a JWKS document of public keys, read with the configuration
    /// (and so re-read on every reload), besides `keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// `cloudfront`, `jwt` (RS256/ES256): the backend's private key, read only
    /// by `livegate sign`; the edge verifies with public keys alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
}

/// Where a token rule reads its token. A name left out keeps the scheme's
/// default; `""` turns that place off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPlaces {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// The HMAC hash of an Akamai token rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha256,
    Sha1,
    Md5,
}

/// The claims that scope a JWT: `stream` names a claim that must equal the
/// request's stream, `path` one whose value the request's path must start with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A key as written in the configuration: `Debug` never shows it, so printing a
/// configuration for diagnosis cannot leak keys.
#[derive(Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParamNames {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

fn yes() -> bool {
    true
}
fn star() -> String {
    "*".into()
}
fn default_connect_timeout() -> u64 {
    1000
}
fn default_read_timeout() -> u64 {
    10_000
}
fn default_events() -> Vec<EventKind> {
    vec![EventKind::StreamStart, EventKind::StreamEnd]
}
fn default_queue() -> usize {
    10_000
}
fn default_notify_timeout() -> u64 {
    2000
}
fn default_retries() -> u32 {
    3
}
/// Also the stream linger when no `notify` section exists.
impl Default for ServerSection {
    fn default() -> ServerSection {
        ServerSection {
            threads: None,
            work_stealing: None,
            listener_tasks_per_fd: None,
            pid_file: None,
            upgrade_sock: None,
            error_log: None,
            user: None,
            group: None,
            grace_period_seconds: None,
            graceful_shutdown_timeout_seconds: None,
            upstream_keepalive_pool_size: None,
            max_retries: None,
            daemon_wait_for_ready: None,
            header_timeout_ms: default_header_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

/// nginx's `client_header_timeout` is 60 s; a live edge has no client that needs
/// more than a few.
fn default_header_timeout() -> u64 {
    10_000
}

/// ~45 KB of Pingora state per idle connection (docs/performance.md, "Where the memory goes")
/// times 20,000 stays under ~1 GB.
fn default_max_connections() -> usize {
    20_000
}

pub fn default_linger() -> u64 {
    5000
}
fn default_remote_timeout() -> u64 {
    1500
}
fn default_allow_ttl() -> u64 {
    5000
}
fn default_deny_ttl() -> u64 {
    1000
}
fn default_max_entries() -> usize {
    100_000
}

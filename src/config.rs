//! The YAML configuration: schema, defaults, and loading with errors that name the
//! file, the key path and (where the YAML parser knows it) the line.
//!
//! Unknown keys are errors, not ignored: a misspelt `valid_duraton` silently
//! ignored would leave an edge open or every URL expired.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
#[derive(Debug, Clone, Default, Deserialize)]
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub interval_ms: u64,
}

/// One signing rule as written in YAML (and, later, sent to the management API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub scene: Scene,
    #[serde(default = "star")]
    pub app: String,
    pub scheme: Option<Scheme>,
    #[serde(default)]
    pub keys: Vec<SecretString>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub valid_duration: Option<i64>,
    #[serde(default)]
    pub skew: i64,
    pub param_names: Option<ParamNames>,
    pub time_format: Option<TimeFormat>,
    pub encrypt_fields: Option<Vec<String>>,
    pub template: Option<String>,
}

/// A key as written in the configuration: `Debug` never shows it, so printing a
/// configuration for diagnosis cannot leak keys.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamNames {
    pub sign: Option<String>,
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

/// One thing wrong with a configuration, at a key path such as
/// `domains[0].auth[1].keys[2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Collects problems so that `livegate -t` reports all of them at once.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn add(&mut self, at: impl Into<String>, message: impl fmt::Display) {
        self.0.push(Problem {
            at: at.into(),
            message: message.to_string(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads and parses a file (structure only; [`load`] also runs the semantic checks).
    pub fn read(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Parse {
            file: file.to_owned(),
            message,
        })
    }

    /// Parses YAML text; the error names the key path and line, as serde_yaml reports them.
    pub fn parse(text: &str) -> Result<Config, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks what the schema cannot: addresses, ranges, files.
    pub fn validate_server(&self, problems: &mut Problems) {
        for (i, l) in self.listen.iter().enumerate() {
            if l.addr().parse::<std::net::SocketAddr>().is_err() {
                problems.add(
                    format!("listen[{i}]"),
                    format!("{:?} is not an IP:port address", l.addr()),
                );
            }
            if let Some(tls) = l.tls() {
                for (what, p) in [("cert", &tls.cert), ("key", &tls.key)] {
                    if !p.is_file() {
                        problems.add(
                            format!("listen[{i}].tls.{what}"),
                            format!("{} is not a readable file", p.display()),
                        );
                    }
                }
            }
        }
        if self.server.threads == Some(0) {
            problems.add("server.threads", "must be at least 1");
        }
        if let Some(m) = &self.metrics {
            if m.listen.parse::<std::net::SocketAddr>().is_err() {
                problems.add(
                    "metrics.listen",
                    format!("{:?} is not an IP:port address", m.listen),
                );
            }
        }
        if let Some(n) = &self.notify {
            n.validate(problems);
        }
    }
}

fn is_http_url(u: &str) -> bool {
    u.parse::<http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
}

impl NotifyConfig {
    fn validate(&self, problems: &mut Problems) {
        if !is_http_url(&self.url) {
            problems.add(
                "notify.url",
                format!("{:?} is not an http(s) URL", self.url),
            );
        }
        if let Err(e) = crate::sign::Key::new(&self.key.0) {
            problems.add("notify.key", e);
        }
        if self.events.is_empty() {
            problems.add(
                "notify.events",
                "list at least one of stream_start, stream_end, auth_denied",
            );
        }
        if !(1..=30_000).contains(&self.timeout_ms) {
            problems.add("notify.timeout_ms", "must be 1..=30000");
        }
        if self.retries > 10 {
            problems.add("notify.retries", "must be 0..=10");
        }
        if !(1..=1_000_000).contains(&self.queue) {
            problems.add("notify.queue", "must be 1..=1000000");
        }
        if self.linger_ms > 600_000 {
            problems.add("notify.linger_ms", "must be 0..=600000");
        }
    }
}

impl RemoteAuthConfig {
    /// Checks the URL, ranges, scope and header names.
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        match self.url.parse::<http::Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https"))
                    && u.host().is_some()
                    && u.query().is_none() => {}
            _ => problems.add(
                format!("{at}.url"),
                format!("{:?} is not an http(s) URL without a query", self.url),
            ),
        }
        if !(1..=30_000).contains(&self.timeout_ms) {
            problems.add(format!("{at}.timeout_ms"), "must be 1..=30000");
        }
        match &self.scope {
            Scope::Extensions(e) if e.extensions.is_empty() => problems.add(
                format!("{at}.scope.extensions"),
                "list at least one extension",
            ),
            Scope::Paths(p)
                if p.paths.is_empty() || p.paths.iter().any(|p| !p.starts_with('/')) =>
            {
                problems.add(
                    format!("{at}.scope.paths"),
                    "list at least one path, each starting with /",
                )
            }
            _ => {}
        }
        for (i, h) in self.upstream_headers.iter().enumerate() {
            let ok = http::HeaderName::from_bytes(h.as_bytes()).is_ok()
                && !["host", "connection", "content-length", "transfer-encoding"]
                    .contains(&h.to_ascii_lowercase().as_str());
            if !ok {
                problems.add(
                    format!("{at}.upstream_headers[{i}]"),
                    format!("{h:?} is not a header livegate can copy"),
                );
            }
        }
        if let Some(c) = &self.cache {
            if c.allow_ttl_ms > 86_400_000 || c.deny_ttl_ms > 86_400_000 {
                problems.add(
                    format!("{at}.cache"),
                    "TTLs are at most 86400000 ms (a day)",
                );
            }
            if !(1..=10_000_000).contains(&c.max_entries) {
                problems.add(format!("{at}.cache.max_entries"), "must be 1..=10000000");
            }
        }
    }
}

impl OriginConfig {
    /// Checks peers and timeouts.
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        use std::net::ToSocketAddrs;
        if self.peers.is_empty() {
            problems.add(format!("{at}.peers"), "at least one origin peer is needed");
        }
        for (i, p) in self.peers.iter().enumerate() {
            if p.to_socket_addrs()
                .map(|mut a| a.next().is_none())
                .unwrap_or(true)
            {
                problems.add(
                    format!("{at}.peers[{i}]"),
                    format!("{p:?} is not a host:port that resolves"),
                );
            }
        }
        if let Some(h) = &self.host {
            if http::HeaderValue::from_str(h).is_err() || h.is_empty() {
                problems.add(format!("{at}.host"), "not a valid Host header value");
            }
        }
        if !(1..=60_000).contains(&self.connect_timeout_ms) {
            problems.add(format!("{at}.connect_timeout_ms"), "must be 1..=60000");
        }
        if !(1..=3_600_000).contains(&self.read_timeout_ms) {
            problems.add(format!("{at}.read_timeout_ms"), "must be 1..=3600000");
        }
        if let Some(hc) = &self.health_check {
            if !(100..=3_600_000).contains(&hc.interval_ms) {
                problems.add(
                    format!("{at}.health_check.interval_ms"),
                    "must be 100..=3600000",
                );
            }
        }
    }
}

/// A configuration that passed every check, with its compiled rule table.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub table: crate::auth::Table,
    /// Legal but probably unintended settings, for the log and `livegate -t`.
    pub warnings: Vec<String>,
}

/// Reads, parses and checks a configuration file.
pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
    let config = Config::read(file)?;
    let mut problems = Problems::default();
    let mut warnings = Vec::new();
    config.validate_server(&mut problems);
    let table = crate::auth::Table::build(&config.domains, &mut problems, &mut warnings);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            file: file.to_owned(),
            problems: problems.0,
        });
    }
    Ok(Loaded {
        config,
        table,
        warnings,
    })
}

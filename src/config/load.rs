//! Loading a configuration: reading, parsing, and the checks the schema cannot
//! express (addresses, ranges, URLs, files), every problem reported at its key
//! path so that `livegate -t` lists them all at once.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Config, NotifyConfig, OriginConfig, RemoteAuthConfig, Scope};

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
    #[error(transparent)]
    State(#[from] crate::state::StateError),
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
        let mut c = Config::parse(&text).map_err(|message| ConfigError::Parse {
            file: file.to_owned(),
            message,
        })?;
        // Key files are found beside the configuration, wherever it is run from.
        if let Some(dir) = file.parent() {
            let rules = c.domains.iter_mut().flat_map(|d| d.auth.iter_mut());
            let files = rules
                .flat_map(|r| [r.jwks_file.as_mut(), r.private_key_file.as_mut()])
                .chain([c.admin.as_mut().and_then(|a| a.key_file.as_mut())])
                .flatten();
            for f in files {
                if f.is_relative() {
                    *f = dir.join(&*f);
                }
            }
        }
        Ok(c)
    }

    /// Parses YAML text; the error names the key path and line, as serde_yaml
    /// reports them, and says so when the culprit is a tab.
    pub fn parse(text: &str) -> Result<Config, String> {
        serde_yaml::from_str(text).map_err(|e| {
            // Never the value: a wrong-typed `keys` would be echoed.
            let e = crate::redact::parse_error(&e.to_string());
            match text.lines().position(|l| l.contains('\t')) {
                Some(i) => format!(
                    "{e} (line {} holds a tab: YAML indents with spaces only)",
                    i + 1
                ),
                None => e,
            }
        })
    }

    /// Checks what the schema cannot: addresses, ranges, files.
    pub fn validate_server(&self, problems: &mut Problems) {
        let rtmp = self.rtmp.iter().flat_map(|r| &r.listen);
        let listeners = self
            .listen
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("listen[{i}]"), l))
            .chain(
                rtmp.enumerate()
                    .map(|(i, l)| (format!("rtmp.listen[{i}]"), l)),
            );
        for (at, l) in listeners {
            if l.addr().parse::<std::net::SocketAddr>().is_err() {
                problems.add(&at, format!("{:?} is not an IP:port address", l.addr()));
            }
            if let super::Listen::Full(f) = l {
                match (f.tls.is_some(), f.http2) {
                    (true, Some(super::Http2Setting::Word(_))) => problems.add(
                        format!("{at}.http2"),
                        "h2c is for plain listeners; a TLS listener offers h2 by ALPN (http2: true, the default)",
                    ),
                    (false, Some(super::Http2Setting::Switch(true))) => problems.add(
                        format!("{at}.http2"),
                        "a plain listener speaks HTTP/2 only as h2c (http2: h2c); true is for TLS listeners",
                    ),
                    _ => {}
                }
            }
            if let Some(tls) = l.tls() {
                for (what, p) in [("cert", &tls.cert), ("key", &tls.key)] {
                    if !p.is_file() {
                        problems.add(
                            format!("{at}.tls.{what}"),
                            format!("{} is not a readable file", p.display()),
                        );
                    }
                }
            }
        }
        if let Some(r) = &self.rtmp {
            if r.listen.is_empty() {
                problems.add(
                    "rtmp.listen",
                    "give at least one address (or leave rtmp out)",
                );
            }
            if !(100..=600_000).contains(&r.handshake_timeout_ms) {
                problems.add("rtmp.handshake_timeout_ms", "must be 100..=600000");
            }
        }
        if self.server.threads == Some(0) {
            problems.add("server.threads", "must be at least 1");
        }
        if !(100..=600_000).contains(&self.server.header_timeout_ms) {
            problems.add("server.header_timeout_ms", "must be 100..=600000");
        }
        if !(1..=10_000_000).contains(&self.server.max_connections) {
            problems.add("server.max_connections", "must be 1..=10000000");
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
        self.state.validate(problems);
        if let Some(a) = &self.admin {
            if a.listen.parse::<std::net::SocketAddr>().is_err() {
                problems.add(
                    "admin.listen",
                    format!("{:?} is not an IP:port address", a.listen),
                );
            }
            let at = if a.key_file.is_some() {
                "admin.key_file"
            } else {
                "admin.key"
            };
            match a.key() {
                Err(e) => problems.add(at, e),
                Ok(k) => {
                    if let Err(e) = crate::sign::Key::new(&k) {
                        problems.add(at, e);
                    }
                }
            }
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

impl super::StateConfig {
    fn validate(&self, problems: &mut Problems) {
        if self.backend == super::StateBackend::File {
            if !self.endpoints.is_empty()
                || self.prefix.is_some()
                || self.username.is_some()
                || self.password.is_some()
                || self.tls.is_some()
            {
                problems.add(
                    "state",
                    "endpoints, prefix, username, password and tls belong to backend: etcd",
                );
            }
            return;
        }
        if self.endpoints.is_empty() {
            problems.add(
                "state.endpoints",
                "backend: etcd needs etcd's client URLs, e.g. [\"http://10.0.0.9:2379\"]",
            );
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            let scheme_ok = e.starts_with("http://") || e.starts_with("https://");
            if !scheme_ok || e.parse::<http::Uri>().is_err() {
                problems.add(
                    format!("state.endpoints[{i}]"),
                    format!("{e:?} is not a URL like http://10.0.0.9:2379"),
                );
            } else if e.starts_with("https://") && self.tls.is_none() {
                problems.add(
                    format!("state.endpoints[{i}]"),
                    "an https endpoint needs state.tls.ca (the CA that signed etcd's certificate)",
                );
            }
        }
        if let Some(p) = &self.prefix {
            if !p.starts_with('/') || p.len() < 2 || p.contains("//") || p.ends_with('/') {
                problems.add(
                    "state.prefix",
                    format!("{p:?} must be a key path like /livegate (a leading /, no trailing /)"),
                );
            }
        }
        if self.username.is_some() != self.password.is_some() {
            problems.add("state", "username and password go together");
        }
        if let Some(t) = &self.tls {
            if t.cert.is_some() != t.key.is_some() {
                problems.add("state.tls", "cert and key go together");
            }
        }
        if let Some(e) = &self.edge {
            if e.is_empty() || e.len() > 64 || e.chars().any(|c| c.is_control()) {
                problems.add("state.edge", "must be 1 to 64 printable characters");
            }
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
        if let super::FanoutConfig::Settings(f) = &self.fanout {
            if !(0..=600_000).contains(&f.linger_ms) {
                problems.add(format!("{at}.fanout.linger_ms"), "must be 0..=600000");
            }
            if !(100..=600_000).contains(&f.queue_ms) {
                problems.add(format!("{at}.fanout.queue_ms"), "must be 100..=600000");
            }
            if !((64 << 10)..=(1 << 30)).contains(&f.queue_bytes) {
                problems.add(
                    format!("{at}.fanout.queue_bytes"),
                    "must be 65536..=1073741824",
                );
            }
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
    /// The rules in force: the YAML's with those set through the management API
    /// (the state file under `state_dir`) laid over them.
    pub table: crate::auth::Table,
    /// What the management API has set, as read at load.
    pub saved: crate::state::Saved,
    /// Legal but probably unintended settings, for the log and `livegate -t`.
    pub warnings: Vec<String>,
}

impl Loaded {
    /// What only running needs (`sign` and `check` do without): a listener and a
    /// domain. `livegate -t` checks this too, so the unit's pre-start check refuses
    /// what start-up would.
    pub fn runnable(&self, file: &Path) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        if self.config.listen.is_empty() {
            problems.add(
                "listen",
                "no listen address; add e.g. listen: [\"0.0.0.0:8080\"]",
            );
        }
        if self.config.domains.is_empty() {
            problems.add(
                "domains",
                "no domain: nothing would be served; add one (name, origin, auth)",
            );
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(ConfigError::Invalid {
                file: file.to_owned(),
                problems: problems.0,
            }),
        }
    }
}

/// Reads, parses and checks a configuration file.
pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
    let config = Config::read(file)?;
    let mut problems = Problems::default();
    let mut warnings = Vec::new();
    config.validate_server(&mut problems);
    let saved = crate::state::read_local(&config.state_dir, config.state.backend)?;
    let domains = saved.effective(&config.domains, &mut warnings);
    let table = crate::auth::Table::build(&domains, &mut problems, &mut warnings);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            file: file.to_owned(),
            problems: problems.0,
        });
    }
    Ok(Loaded {
        config,
        table,
        saved,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(listen: &str) -> Vec<String> {
        let c = Config::parse(&format!("listen:\n{listen}domains: []\n")).unwrap();
        let mut p = Problems::default();
        c.validate_server(&mut p);
        p.0.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn http2_is_alpn_on_tls_and_h2c_on_plain_only_when_asked() {
        use super::super::Http2;
        let c = Config::parse(
            "listen:\n  - \"127.0.0.1:1\"\n  - { addr: \"127.0.0.1:2\", http2: h2c }\n  - { addr: \"127.0.0.1:3\", tls: { cert: c, key: k } }\n  - { addr: \"127.0.0.1:4\", tls: { cert: c, key: k }, http2: false }\n",
        )
        .unwrap();
        let modes: Vec<Http2> = c.listen.iter().map(|l| l.http2()).collect();
        assert_eq!(modes, [Http2::Off, Http2::H2c, Http2::Alpn, Http2::Off]);
        let tls_h2c = problems("  - { addr: \"127.0.0.1:3\", tls: { cert: /nonexistent, key: /nonexistent }, http2: h2c }\n");
        assert!(
            tls_h2c
                .iter()
                .any(|p| p.contains("h2c is for plain listeners")),
            "{tls_h2c:?}"
        );
        let plain_true = problems("  - { addr: \"127.0.0.1:3\", http2: true }\n");
        assert!(
            plain_true.iter().any(|p| p.contains("only as h2c")),
            "{plain_true:?}"
        );
        assert!(Config::parse("listen:\n  - { addr: \"127.0.0.1:3\", http2: h3 }\n").is_err());
    }
}

//! Remote authentication: after the signature passed, ask the customer's auth
//! server and obey its status (200/206/304 pass, anything else denies), within a
//! deadline and with a timeout action, as cloud CDNs do.
//!
//! Results are cached in Pingora's read-through cache, which also coalesces
//! concurrent identical lookups into one call. The key holds everything the auth
//! server is told that can change its answer (see [`Remote::key`]), so a cached
//! answer is never lent to a request the auth server might have answered otherwise.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use pingora_memory_cache::{Lookup, RTCache};

use crate::config::{RemoteAuthConfig, RemoteMethod, Scope, ScopeWord, TimeoutAction};

/// The client's request, as much of it as the auth server sees.
pub struct Asked<'a> {
    pub domain: &'a str,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    /// The client's request headers (User-Agent, Referer, Cookie, Authorization
    /// are forwarded; X-Forwarded-* are set by livegate).
    pub headers: &'a HeaderMap,
    pub host: &'a str,
    pub client_ip: &'a str,
    pub https: bool,
    /// For a request admitted by an HLS segment token: the stream the token opens.
    /// The cache keys such requests by it instead of by path and query, so remote
    /// auth is asked once per stream session, not once per segment.
    pub session: Option<&'a str>,
}

/// The auth server's answer, as cached.
#[derive(Clone)]
pub struct Decision {
    /// The full cache key, compared on every hit: a 64-bit hash collision must
    /// never hand one request another's decision.
    key: Arc<str>,
    pub allowed: bool,
    pub status: u16,
    /// Headers to copy onto the origin request (from `upstream_headers`).
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
}

/// What remote authentication concluded for one request.
pub enum Outcome {
    Allowed {
        headers: Arc<[(HeaderName, HeaderValue)]>,
        cached: bool,
    },
    Denied {
        status: u16,
        cached: bool,
    },
    /// No answer within the deadline.
    TimedOut,
    /// Unreachable, reset, or not HTTP.
    Failed(String),
}

/// Why a call produced no decision (never cached).
#[derive(Debug)]
struct CallError {
    timeout: bool,
    message: String,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for CallError {}

/// Everything one call needs: `RTCache` lookups are static functions, so the call
/// travels as the lookup's `extra`.
pub struct Call {
    client: reqwest::Client,
    method: Method,
    url: String,
    headers: HeaderMap,
    timeout: Duration,
    ttls: (Duration, Duration),
    copy: Arc<[HeaderName]>,
    key: Arc<str>,
}

impl Call {
    async fn run(&self) -> Result<Decision, CallError> {
        let send = async {
            let resp = self
                .client
                .request(self.method.clone(), &self.url)
                .headers(self.headers.clone())
                .send()
                .await?;
            let status = resp.status().as_u16();
            let headers: Arc<[(HeaderName, HeaderValue)]> = self
                .copy
                .iter()
                .filter_map(|n| resp.headers().get(n).map(|v| (n.clone(), v.clone())))
                .collect();
            // Read (and discard) the body so the connection goes back to the pool.
            resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers))
        };
        let (status, headers) = match tokio::time::timeout(self.timeout, send).await {
            Err(_) => {
                return Err(CallError {
                    timeout: true,
                    message: "no answer in time".into(),
                })
            }
            // The URL carries the viewer's query (signatures, tokens): never in a
            // message that reaches the log.
            Ok(Err(e)) => {
                return Err(CallError {
                    timeout: e.is_timeout(),
                    message: error_chain(&e.without_url()),
                })
            }
            Ok(Ok(r)) => r,
        };
        let allowed = matches!(status, 200 | 206 | 304);
        Ok(Decision {
            key: self.key.clone(),
            allowed,
            status,
            headers: if allowed { headers } else { Arc::from([]) },
        })
    }
}

fn error_chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The read-through cache's lookup: one call to the auth server.
pub struct Caller;

#[async_trait]
impl Lookup<Arc<str>, Decision, Call> for Caller {
    async fn lookup(
        _key: &Arc<str>,
        extra: Option<&Call>,
    ) -> Result<(Decision, Option<Duration>), Box<dyn StdError + Send + Sync>> {
        let call = extra.ok_or("remote auth lookup without a call")?;
        let d = call.run().await?;
        let ttl = if d.allowed { call.ttls.0 } else { call.ttls.1 };
        Ok((d, Some(ttl)))
    }
}

type Cache = RTCache<Arc<str>, Decision, Caller, Call>;

/// One domain's remote authentication.
pub struct Remote {
    base: String,
    method: RemoteMethod,
    scope: Scope,
    timeout: Duration,
    pub action: TimeoutAction,
    /// Header names copied from the auth answer (and stripped from the client's request).
    pub copy: Arc<[HeaderName]>,
    cache: Option<(Cache, (Duration, Duration))>,
    /// Whether cached answers are shared between clients (`share_between_clients`).
    shared: bool,
    /// Built on first use, inside Pingora's runtime (daemonising forks first).
    client: OnceLock<reqwest::Client>,
}

const FORWARDED: [HeaderName; 4] = [
    http::header::USER_AGENT,
    http::header::REFERER,
    http::header::COOKIE,
    http::header::AUTHORIZATION,
];

impl Remote {
    /// From a validated configuration.
    pub fn new(cfg: &RemoteAuthConfig) -> Remote {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let cache = cfg.cache.as_ref().map(|c| {
            let ttls = (
                Duration::from_millis(c.allow_ttl_ms),
                Duration::from_millis(c.deny_ttl_ms),
            );
            (
                Cache::new(c.max_entries, Some(timeout), Some(timeout)),
                ttls,
            )
        });
        Remote {
            base: cfg.url.trim_end_matches('/').to_owned(),
            method: cfg.method,
            scope: cfg.scope.clone(),
            timeout,
            action: cfg.timeout_action,
            copy: cfg
                .upstream_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            shared: cfg.cache.as_ref().is_some_and(|c| c.share_between_clients),
            cache,
            client: OnceLock::new(),
        }
    }

    /// Whether a request for `path` goes to the auth server.
    pub fn in_scope(&self, path: &str) -> bool {
        match &self.scope {
            Scope::Word(ScopeWord::All) => true,
            Scope::Extensions(e) => {
                let ext = crate::route::Route::of_path(path).ext;
                e.extensions.iter().any(|x| x.eq_ignore_ascii_case(ext))
            }
            // Case-insensitive: origins that fold case serve `/VIP/` as `/vip/`.
            Scope::Paths(p) => p.paths.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => path
                    .get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
                None => path.eq_ignore_ascii_case(p),
            }),
        }
    }

    fn client(&self) -> reqwest::Client {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .tcp_nodelay(true)
                    .pool_idle_timeout(Duration::from_secs(60))
                    .build()
                    .unwrap_or_default()
            })
            .clone()
    }

    /// The method of the auth request for a client's `method`.
    fn method(&self, client: &Method) -> Method {
        match self.method {
            RemoteMethod::Follow => client.clone(),
            RemoteMethod::Get => Method::GET,
            RemoteMethod::Post => Method::POST,
            RemoteMethod::Head => Method::HEAD,
        }
    }

    fn call(&self, a: &Asked<'_>, method: Method, key: Arc<str>) -> Call {
        let mut headers = HeaderMap::new();
        for name in FORWARDED {
            if let Some(v) = a.headers.get(&name) {
                headers.insert(name, v.clone());
            }
        }
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        set("x-forwarded-for", a.client_ip);
        set("x-forwarded-host", a.host);
        set("x-forwarded-proto", if a.https { "https" } else { "http" });
        set("x-original-method", a.method.as_str());
        set("content-length", "0");
        let url = match a.query {
            "" => format!("{}{}", self.base, a.path),
            q => format!("{}{}?{q}", self.base, a.path),
        };
        Call {
            client: self.client(),
            method,
            url,
            headers,
            timeout: self.timeout,
            ttls: self
                .cache
                .as_ref()
                .map_or((Duration::ZERO, Duration::ZERO), |c| c.1),
            copy: self.copy.clone(),
            key,
        }
    }

    /// The cache key: the method, Host, path and query the auth server is asked
    /// with, and — unless answers are shared between clients — the client's address
    /// and every client header it is sent. Fields are separated by a byte no field
    /// can hold, so two requests never make one key.
    fn key(&self, a: &Asked<'_>, method: &Method) -> Arc<str> {
        let mut key = String::with_capacity(128);
        let (path, query) = match a.session {
            Some(stream) => ("\u{1}token", stream),
            None => (a.path, a.query),
        };
        for field in [a.domain, method.as_str(), a.host, path, query] {
            key.push_str(field);
            key.push('\n');
        }
        if !self.shared {
            key.push_str(a.client_ip);
            for name in &FORWARDED {
                key.push('\n');
                // Tagged, so a value that is not UTF-8 can neither collide with
                // another such value nor with a text one.
                match a
                    .headers
                    .get(name)
                    .map(|v| std::str::from_utf8(v.as_bytes()))
                {
                    None => {}
                    Some(Ok(text)) => {
                        key.push('t');
                        key.push_str(text);
                    }
                    Some(Err(_)) => {
                        key.push('b');
                        let raw = a.headers.get(name).map_or(&[][..], |v| v.as_bytes());
                        key.push_str(&hex::encode(raw));
                    }
                }
            }
        }
        key.into()
    }

    /// Asks the auth server (or the cache). Answers within the timeout: a lookup
    /// another request started is waited for only until this request's deadline.
    pub async fn check(&self, a: &Asked<'_>) -> Outcome {
        let method = self.method(a.method);
        let key = self.key(a, &method);
        let call = self.call(a, method, key.clone());
        let Some((cache, _)) = &self.cache else {
            return match call.run().await {
                Ok(d) => decided(d, false),
                Err(e) => failed(e),
            };
        };
        let got = tokio::time::timeout(self.timeout, cache.get(&key, None, Some(&call))).await;
        match got {
            Err(_) => Outcome::TimedOut,
            Ok((Ok(d), status)) if d.key == key => decided(d, status.is_hit()),
            // A hash collision in the cache: never trust it, ask directly.
            Ok((Ok(_), _)) => match call.run().await {
                Ok(d) => decided(d, false),
                Err(e) => failed(e),
            },
            Ok((Err(e), _)) => match e.root_cause().downcast_ref::<CallError>() {
                Some(c) if c.timeout => Outcome::TimedOut,
                Some(c) => Outcome::Failed(c.message.clone()),
                None => Outcome::Failed(e.to_string()),
            },
        }
    }
}

fn decided(d: Decision, cached: bool) -> Outcome {
    if d.allowed {
        Outcome::Allowed {
            headers: d.headers,
            cached,
        }
    } else {
        Outcome::Denied {
            status: d.status,
            cached,
        }
    }
}

fn failed(e: CallError) -> Outcome {
    if e.timeout {
        Outcome::TimedOut
    } else {
        Outcome::Failed(e.message)
    }
}

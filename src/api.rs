//! `livegate api`: the management API from the shell. Each call is signed here
//! (`t` five minutes ahead, `sign = md5(key + t)`), so an operator never
//! computes a signature by hand, and the answer is printed as a table (or, with
//! `--json`, as the API gave it). Exit codes are `check`'s: 0 done (or pass),
//! 1 the API refused (or the URL fails), 2 a usage, configuration or connection
//! problem.

use std::path::Path;

use serde_json::{json, Value};

use crate::config;
use crate::sign::tsign::Tsign;
use crate::sign::Key;

/// How long a call's signature is valid.
const VALIDITY: i64 = 300;

/// Why a call could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ApiCliError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0} has no admin: section; turn the management API on (admin: {{ listen: \"127.0.0.1:9180\", key_file: … }})")]
    NoAdmin(String),
    #[error("admin key: {0}")]
    Key(String),
    #[error(
        "cannot reach the management API at {url}: {why} (is livegate running with admin: on?)"
    )]
    Unreachable { url: String, why: String },
    #[error("{0}")]
    Usage(String),
}

/// Where the API is and the key calls are signed with.
pub struct Endpoint {
    base: String,
    tsign: Tsign,
}

impl Endpoint {
    /// The `admin:` section of a configuration file.
    pub fn from_config(file: &Path) -> Result<Endpoint, ApiCliError> {
        let c = config::Config::read(file)?;
        let a = c
            .admin
            .ok_or_else(|| ApiCliError::NoAdmin(file.display().to_string()))?;
        let key = a.key().map_err(ApiCliError::Key)?;
        Endpoint::new(&format!("http://{}", a.listen), &key)
    }

    /// An API at `url` (`http://127.0.0.1:9180`) with the key in `key_file`.
    pub fn from_key_file(url: &str, key_file: &Path) -> Result<Endpoint, ApiCliError> {
        let key = config::read_key_file(key_file).map_err(ApiCliError::Key)?;
        Endpoint::new(url, &key)
    }

    fn new(url: &str, key: &str) -> Result<Endpoint, ApiCliError> {
        let key = Key::new(key).map_err(|e| ApiCliError::Key(e.to_string()))?;
        let tsign = Tsign::new(key).map_err(|e| ApiCliError::Key(e.to_string()))?;
        Ok(Endpoint {
            base: url.trim_end_matches('/').to_owned(),
            tsign,
        })
    }

    /// One signed call; the status and the JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<(u16, Value), ApiCliError> {
        let t = crate::unix_now() + VALIDITY;
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ApiCliError::Usage(format!("--admin {}: {e}", self.base)))?;
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
            .append_pair("t", &t.to_string())
            .append_pair("sign", &self.tsign.sign(t));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ApiCliError::Usage(e.to_string()))?;
        let mut req = client.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        // reqwest's own message ("error sending request") hides the cause.
        let unreachable = |e: reqwest::Error| {
            let e = e.without_url();
            let mut why = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                why = c.to_string();
                cause = c.source();
            }
            ApiCliError::Unreachable {
                url: self.base.clone(),
                why,
            }
        };
        let r = req.send().await.map_err(unreachable)?;
        let status = r.status().as_u16();
        let v = r.json::<Value>().await.map_err(unreachable)?;
        Ok((status, v))
    }
}

/// One `livegate api` call.
#[derive(Debug, Clone)]
pub enum Call {
    Online {
        domain: Option<String>,
    },
    Connections {
        domain: String,
        app: String,
        stream: String,
    },
    Forbid {
        domain: String,
        app: String,
        stream: String,
        until: Option<i64>,
        reason: Option<String>,
    },
    Resume {
        domain: String,
        app: String,
        stream: String,
    },
    Drop {
        domain: String,
        app: String,
        stream: String,
        scene: Option<String>,
    },
    Check {
        url: String,
        scene: Option<String>,
    },
    Rules {
        domain: String,
    },
    /// `PATCH /v1/auth/rules`: the rule in force changed without sending keys.
    Rule {
        domain: String,
        app: String,
        scene: String,
        enabled: Option<bool>,
        add_key: Option<String>,
        remove_key: Option<usize>,
    },
    Access {
        domain: String,
    },
    State,
}

impl Call {
    /// Method, path, query and body of the call.
    fn request(
        &self,
    ) -> (
        reqwest::Method,
        &'static str,
        Vec<(&'static str, String)>,
        Option<Value>,
    ) {
        use reqwest::Method;
        let stream = |d: &str, a: &str, s: &str| json!({ "domain": d, "app": a, "stream": s });
        match self {
            Call::Online { domain } => {
                let q = domain.iter().map(|d| ("domain", d.clone())).collect();
                (Method::GET, "/v1/streams/online", q, None)
            }
            Call::Connections {
                domain,
                app,
                stream,
            } => (
                Method::GET,
                "/v1/streams/connections",
                vec![
                    ("domain", domain.clone()),
                    ("app", app.clone()),
                    ("stream", stream.clone()),
                ],
                None,
            ),
            Call::Forbid {
                domain,
                app,
                stream: s,
                until,
                reason,
            } => {
                let mut b = stream(domain, app, s);
                if let Some(u) = until {
                    b["until"] = json!(u);
                }
                if let Some(r) = reason {
                    b["reason"] = json!(r);
                }
                (Method::POST, "/v1/streams/forbid", Vec::new(), Some(b))
            }
            Call::Resume {
                domain,
                app,
                stream: s,
            } => (
                Method::POST,
                "/v1/streams/resume",
                Vec::new(),
                Some(stream(domain, app, s)),
            ),
            Call::Drop {
                domain,
                app,
                stream: s,
                scene,
            } => {
                let mut b = stream(domain, app, s);
                if let Some(scene) = scene {
                    b["scene"] = json!(scene);
                }
                (Method::POST, "/v1/streams/drop", Vec::new(), Some(b))
            }
            Call::Check { url, scene } => {
                let mut q = vec![("url", url.clone())];
                q.extend(scene.iter().map(|s| ("scene", s.clone())));
                (Method::GET, "/v1/auth/check", q, None)
            }
            Call::Rules { domain } => (
                Method::GET,
                "/v1/auth/rules",
                vec![("domain", domain.clone())],
                None,
            ),
            Call::Rule {
                domain,
                app,
                scene,
                enabled,
                add_key,
                remove_key,
            } => {
                let mut b = json!({ "domain": domain, "app": app, "scene": scene });
                if let Some(e) = enabled {
                    b["enabled"] = json!(e);
                }
                if let Some(k) = add_key {
                    b["add_key"] = json!(k);
                }
                if let Some(i) = remove_key {
                    b["remove_key"] = json!(i);
                }
                (Method::PATCH, "/v1/auth/rules", Vec::new(), Some(b))
            }
            Call::Access { domain } => (
                Method::GET,
                "/v1/access",
                vec![("domain", domain.clone())],
                None,
            ),
            Call::State => (Method::GET, "/v1/state", Vec::new(), None),
        }
    }
}

/// Makes the call and prints its answer; the exit code.
pub fn run(endpoint: &Endpoint, call: &Call, as_json: bool) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("livegate: {e}");
            return 2;
        }
    };
    let (method, path, query, body) = call.request();
    let answer = runtime.block_on(endpoint.call(method, path, &query, body));
    let (status, v) = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("livegate: {e}");
            return 2;
        }
    };
    if !(200..300).contains(&status) {
        match as_json {
            true => println!("{v}"),
            false => eprintln!(
                "livegate: the API refused ({status} {}): {}",
                v["code"].as_str().unwrap_or("?"),
                v["message"].as_str().unwrap_or("")
            ),
        }
        return 1;
    }
    match as_json {
        true => println!("{v}"),
        false => print!("{}", render(call, &v)),
    }
    match call {
        Call::Check { .. } if v["status"] != "pass" => 1,
        _ => 0,
    }
}

/// An answer as a person reads it.
pub fn render(call: &Call, v: &Value) -> String {
    match call {
        Call::Online { .. } => table(
            &v["streams"],
            &[
                ("DOMAIN", "domain"),
                ("APP", "app"),
                ("STREAM", "stream"),
                ("SCENE", "scene"),
                ("PROTOCOL", "protocol"),
                ("CONNECTIONS", "connections"),
                ("BYTES", "bytes"),
                ("SINCE", "since"),
            ],
        ),
        Call::Connections { .. } => table(
            &v["connections"],
            &[
                ("CLIENT_IP", "client_ip"),
                ("SCENE", "scene"),
                ("PROTOCOL", "protocol"),
                ("SINCE", "since"),
                ("BYTES", "bytes"),
                ("EDGE", "edge"),
            ],
        ),
        Call::Rules { .. } => table(
            &v["rules"],
            &[
                ("APP", "app"),
                ("SCENE", "scene"),
                ("SCHEME", "scheme"),
                ("KEYS", "keys"),
                ("ENABLED", "enabled"),
                ("SOURCE", "source"),
            ],
        ),
        Call::Access { .. } => format!(
            "source: {}\n{}\n",
            text(&v["source"]),
            serde_json::to_string_pretty(&v["access"]).unwrap_or_default()
        ),
        _ => fields(v),
    }
}

/// A JSON value as a cell: strings bare, `since` and `until` as UTC times,
/// lists joined.
fn cell(key: &str, v: &Value) -> String {
    match (key, v) {
        ("since" | "until", Value::Number(n)) => n
            .as_i64()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or_else(
                || n.to_string(),
                |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            ),
        (_, Value::Array(a)) => a.iter().map(|x| cell("", x)).collect::<Vec<_>>().join(","),
        _ => text(v),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Rows of `list` under `columns` (header, field), aligned.
fn table(list: &Value, columns: &[(&str, &str)]) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| columns.iter().map(|(_, k)| cell(k, &r[*k])).collect())
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.iter().map(|(h, _)| *h).collect());
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// An object's fields, one `key: value` a line.
fn fields(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o
            .iter()
            .map(|(k, x)| format!("{k}: {}\n", cell(k, x)))
            .collect(),
        None => format!("{}\n", text(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_times_read_as_utc() {
        let v = json!({ "connections": [
            { "client_ip": "192.0.2.10", "scene": "pull", "protocol": "http", "since": 1_700_000_000, "bytes": 5, "edge": "e1" },
            { "client_ip": "::1", "scene": "push", "protocol": "rtmp", "since": 1_700_000_001, "bytes": 123456, "edge": "e1" },
        ]});
        let call = Call::Connections {
            domain: "d".into(),
            app: "a".into(),
            stream: "s".into(),
        };
        let out = render(&call, &v);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "CLIENT_IP   SCENE  PROTOCOL  SINCE                 BYTES   EDGE"
        );
        assert_eq!(
            lines[1],
            "192.0.2.10  pull   http      2023-11-14 22:13:20Z  5       e1"
        );
        assert_eq!(
            lines[2],
            "::1         push   rtmp      2023-11-14 22:13:21Z  123456  e1"
        );
        assert_eq!(
            render(&Call::Online { domain: None }, &json!({ "streams": [] })),
            "(none)\n"
        );
        assert_eq!(
            fields(&json!({ "cut": 2, "edge": "e1" })),
            "cut: 2\nedge: e1\n"
        );
    }
}

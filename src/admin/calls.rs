//! What each management API call does. Writes go through
//! [`Live::change`](crate::state::live::Live::change): validated, written durably,
//! then applied — answered 200 only once all three happened.

use crate::redact::parse_error;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Answer, ApiError, Code};
use crate::access::{Access, Seen};
use crate::auth::rules;
use crate::check::{check_url, split_url};
use crate::config::{AccessConfig, Problems, RuleConfig};
use crate::route::Scene;
use crate::sign::Key;
use crate::state::live::{Live, Refusal, Store};
use crate::state::{domain_key, same_slot, Forbid, SavedAccess};
use crate::streams::Streams;

/// Shortest and longest `valid_duration` the API accepts (the providers' console
/// range; the YAML also allows 0).
const VALID_DURATION: std::ops::RangeInclusive<i64> = 60..=2_592_000;
/// Most online streams per page.
const MAX_PAGE_SIZE: usize = 1000;

/// One call's inputs.
pub struct Ctx<'a> {
    pub live: &'a Live,
    pub streams: &'a Streams,
    pub query: &'a str,
    pub body: &'a [u8],
    pub now: i64,
}

/// A query parameter, decoded.
pub fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Invalid(m) => ApiError::invalid(m),
        Refusal::NotFound(m) => ApiError::new(Code::ResourceNotFound, m),
        Refusal::Store(e) => {
            log::error!("management API: {e}");
            ApiError::new(
                Code::StoreUnavailable,
                "the state could not be stored; nothing changed",
            )
        }
    }
}

/// A stream named in a body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamRef {
    domain: String,
    app: String,
    stream: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessBody {
    domain: String,
    access: AccessConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DropRef {
    domain: String,
    app: String,
    stream: String,
    scene: Option<Scene>,
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(format!("{field} is empty")));
    }
    if value.len() > max {
        return Err(ApiError::new(
            Code::InvalidParamLength,
            format!("{field} should not be longer than {max}"),
        ));
    }
    Ok(())
}

impl Ctx<'_> {
    fn required(&self, name: &str) -> Result<String, ApiError> {
        param(self.query, name).ok_or_else(|| ApiError::invalid(format!("{name} is required")))
    }

    fn body_json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(self.body).map_err(|e| {
            ApiError::invalid(format!(
                "the body is not the expected JSON: {}",
                parse_error(&e.to_string())
            ))
        })
    }

    fn scene(&self) -> Result<Option<Scene>, ApiError> {
        param(self.query, "scene")
            .map(|s| {
                s.parse()
                    .map_err(|e: String| ApiError::invalid(format!("scene: {e}")))
            })
            .transpose()
    }

    /// The registry index of a configured domain, or 404 `ResourceNotFound`.
    fn domain_index(&self, name: &str) -> Result<usize, ApiError> {
        self.live.domain_index(name).ok_or_else(|| {
            ApiError::new(
                Code::ResourceNotFound,
                format!("domain {name:?} is not configured"),
            )
        })
    }

    /// `GET /v1/auth/check`: the verdict `livegate check` gives, with the
    /// providers' wording. Remote auth is not asked.
    pub fn check(&self) -> Answer {
        let url = self.required("url")?;
        let scene = self.scene()?.unwrap_or(Scene::Pull);
        let url = match param(self.query, "domain") {
            None => url,
            Some(d) => {
                let parts = split_url(&url).map_err(|e| ApiError::invalid(format!("url: {e}")))?;
                let q = if parts.query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", parts.query)
                };
                format!("http://{d}{}{q}", parts.path)
            }
        };
        let snap = self.live.load();
        let client = param(self.query, "client_ip");
        let referer = param(self.query, "referer");
        let user_agent = param(self.query, "user_agent");
        let who = Seen {
            client: match &client {
                None => None,
                Some(ip) => Some(ip.parse().map_err(|_| {
                    ApiError::invalid(format!("client_ip: {ip:?} is not an IP address"))
                })?),
            },
            referer: referer.as_deref(),
            user_agent: user_agent.as_deref(),
        };
        let verdict = check_url(&snap, &url, scene, &who, self.now)
            .map_err(|e| ApiError::invalid(format!("url: {e}")))?;
        Ok((
            200,
            match verdict {
                Ok(()) => json!({ "status": "pass" }),
                Err(f) => {
                    let mut v = json!({ "status": "fail", "reason": f.reason.as_str(), "detail": f.detail });
                    if let Some(d) = f.reason.description() {
                        v["description"] = json!(d);
                    }
                    v
                }
            },
        ))
    }

    /// `PUT /v1/auth/rules`: add or fully replace the rule for (domain, app, scene).
    pub async fn put_rule(&self) -> Answer {
        let mut body: Value = serde_json::from_slice(self.body).map_err(|e| {
            ApiError::invalid(format!(
                "the body is not JSON: {}",
                parse_error(&e.to_string())
            ))
        })?;
        let obj = body
            .as_object_mut()
            .ok_or_else(|| ApiError::invalid("the body must be one rule, a JSON object"))?;
        let domain = match obj.remove("domain") {
            Some(Value::String(d)) => d,
            _ => return Err(ApiError::invalid("domain is required (a string)")),
        };
        let enabled_given = obj.contains_key("enabled");
        let mut rule: RuleConfig = serde_json::from_value(body).map_err(|e| {
            ApiError::invalid(format!(
                "the rule is not valid: {}",
                parse_error(&e.to_string())
            ))
        })?;
        if !self.live.has_domain(&domain) {
            return Err(ApiError::new(
                Code::ResourceNotFound,
                format!("domain {domain:?} is not configured"),
            ));
        }
        validate(&rule)?;
        let answer =
            json!({ "domain": domain, "app": rule.app, "scene": rule.scene, "source": "api" });
        self.live
            .change(|saved, yaml| {
                if !enabled_given {
                    // New: enabled (secure by default). Replacing: unchanged.
                    let effective = saved.effective(yaml, &mut Vec::new());
                    let key = domain_key(&domain);
                    rule.enabled = effective
                        .iter()
                        .filter(|d| domain_key(&d.name) == key)
                        .flat_map(|d| &d.auth)
                        .find(|r| same_slot(r, &rule))
                        .is_none_or(|r| r.enabled);
                }
                saved.set_rule(&domain, rule.clone());
                Ok(())
            })
            .await
            .map_err(refused)?;
        Ok((200, answer))
    }

    /// `PATCH /v1/auth/rules`: change the rule in force for (domain, app, scene)
    /// — from the YAML or the API — without sending its keys back, which no one
    /// can read: `enabled`, `add_key` (put first, so it signs), `remove_key` (an
    /// index into the listed keys). The result is kept as an API rule.
    pub async fn patch_rule(&self) -> Answer {
        let p: RulePatch = self.body_json()?;
        self.domain_index(&p.domain)?;
        // The key is checked with the rule it joins (its scheme says what a key is).
        let answer = json!({ "domain": p.domain, "app": p.app, "scene": p.scene, "source": "api" });
        self.live
            .change(|saved, yaml| {
                let key = domain_key(&p.domain);
                let mut rule = saved
                    .effective(yaml, &mut Vec::new())
                    .iter()
                    .filter(|d| !d.retired && domain_key(&d.name) == key)
                    .flat_map(|d| &d.auth)
                    .find(|r| r.scene == p.scene && r.app.eq_ignore_ascii_case(&p.app))
                    .cloned()
                    .ok_or_else(|| {
                        Refusal::NotFound(format!(
                            "no rule for domain {:?}, app {:?}, scene {}",
                            p.domain, p.app, p.scene
                        ))
                    })?;
                if let Some(i) = p.remove_key {
                    if i >= rule.keys.len() {
                        return Err(Refusal::Invalid(format!(
                            "remove_key: the rule has {} keys (0 to {})",
                            rule.keys.len(),
                            rule.keys.len().saturating_sub(1)
                        )));
                    }
                    rule.keys.remove(i);
                }
                if let Some(k) = &p.add_key {
                    rule.keys.retain(|old| old.0 != *k);
                    rule.keys.insert(0, crate::config::SecretString(k.clone()));
                }
                if let Some(on) = p.enabled {
                    rule.enabled = on;
                }
                validate(&rule).map_err(|e| Refusal::Invalid(e.message))?;
                saved.set_rule(&p.domain, rule);
                Ok(())
            })
            .await
            .map_err(refused)?;
        Ok((200, answer))
    }

    /// `DELETE /v1/auth/rules`: remove an API-set rule; the YAML's applies again.
    pub async fn delete_rule(&self) -> Answer {
        let domain = self.required("domain")?;
        let app = self.required("app")?;
        let scene = self
            .scene()?
            .ok_or_else(|| ApiError::invalid("scene is required"))?;
        self.live
            .change(|saved, _| {
                let i = saved.rule_at(&domain, &app, scene).ok_or_else(|| {
                    Refusal::NotFound(format!("no rule set through the API for domain {domain:?}, app {app:?}, scene {scene}"))
                })?;
                saved.rules.remove(i);
                Ok(())
            })
            .await
            .map_err(refused)?;
        Ok((200, json!({ "deleted": true })))
    }

    /// `GET /v1/auth/rules`: the rules in force for a domain, with their source and
    /// keys masked.
    pub async fn rules(&self) -> Answer {
        let domain = self.required("domain")?;
        self.domain_index(&domain)?;
        let saved = self.live.saved().await;
        let key = domain_key(&domain);
        let effective = saved.effective(&self.live.yaml(), &mut Vec::new());
        let rules: Vec<Value> = effective
            .iter()
            .filter(|d| !d.retired && domain_key(&d.name) == key)
            .flat_map(|d| &d.auth)
            .map(|r| {
                let source = match saved.rule_at(&domain, &r.app, r.scene) {
                    Some(_) => "api",
                    None => "yaml",
                };
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                v["keys"] = r.keys.iter().map(|k| masked(&k.0)).collect();
                if r.salt.is_some() {
                    v["salt"] = json!("*****");
                }
                v["source"] = json!(source);
                v
            })
            .collect();
        Ok((200, json!({ "domain": domain, "rules": rules })))
    }

    /// `POST /v1/streams/forbid`: new requests 403, open connections cut.
    pub async fn forbid(&self) -> Answer {
        let f: Forbid = self.body_json()?;
        let d = self.domain_index(&f.domain)?;
        check_len("app", &f.app, 30)?;
        check_len("stream", &f.stream, 256)?;
        if let Some(r) = &f.reason {
            check_len("reason", r, 256)?;
        }
        if f.until.is_some_and(|u| u <= self.now) {
            return Err(ApiError::invalid("until is in the past"));
        }
        let (app, stream) = (f.app.to_ascii_lowercase(), f.stream.clone());
        self.live
            .change(|saved, _| {
                let now = self.now;
                saved.forbids.retain(|x| x.holds(now));
                match saved.forbid_at(&f.domain, &f.app, &f.stream) {
                    Some(i) => saved.forbids[i] = f.clone(),
                    None => saved.forbids.push(f.clone()),
                }
                Ok(())
            })
            .await
            .map_err(refused)?;
        let cut = self.streams.cut(d, &app, &stream, None);
        Ok((200, json!({ "forbidden": true, "cut": cut })))
    }

    /// `POST /v1/streams/resume`: lift a forbid.
    pub async fn resume(&self) -> Answer {
        let s: StreamRef = self.body_json()?;
        self.domain_index(&s.domain)?;
        self.live
            .change(|saved, _| {
                let i = saved
                    .forbid_at(&s.domain, &s.app, &s.stream)
                    .ok_or_else(|| {
                        Refusal::NotFound(format!("stream {}/{} is not forbidden", s.app, s.stream))
                    })?;
                saved.forbids.remove(i);
                Ok(())
            })
            .await
            .map_err(refused)?;
        Ok((200, json!({ "resumed": true })))
    }

    /// `POST /v1/streams/drop`: cut the open connections now, no forbid.
    pub fn drop_stream(&self) -> Answer {
        let s: DropRef = self.body_json()?;
        let d = self.domain_index(&s.domain)?;
        match self
            .streams
            .cut(d, &s.app.to_ascii_lowercase(), &s.stream, s.scene)
        {
            0 => Err(ApiError::new(
                Code::StreamNotOnline,
                format!(
                    "stream {}/{} has no open connection on this edge",
                    s.app, s.stream
                ),
            )),
            n => Ok((200, json!({ "cut": n }))),
        }
    }

    /// `GET /v1/streams/forbidden`: forbids in force.
    pub fn forbidden(&self) -> Answer {
        let only = param(self.query, "domain").map(|d| domain_key(&d));
        let snap = self.live.load();
        let mut list: Vec<&Forbid> = snap
            .forbids(self.now)
            .filter(|f| only.as_ref().is_none_or(|d| domain_key(&f.domain) == *d))
            .collect();
        list.sort_by(|a, b| (&a.domain, &a.app, &a.stream).cmp(&(&b.domain, &b.app, &b.stream)));
        Ok((200, json!({ "forbidden": list })))
    }

    /// `GET /v1/streams/online`: streams with open connections on this edge,
    /// of one domain (or, without `domain`, of every one).
    pub fn online(&self) -> Answer {
        let domain = param(self.query, "domain");
        let slots: Vec<usize> = match &domain {
            Some(name) => vec![self.domain_index(name)?],
            None => (0..self.live.yaml().len())
                .filter(|&d| !self.live.yaml()[d].retired)
                .collect(),
        };
        let number = |name: &str, default: usize| -> Result<usize, ApiError> {
            param(self.query, name).map_or(Ok(default), |v| {
                v.parse::<usize>().ok().filter(|&n| n >= 1).ok_or_else(|| {
                    ApiError::invalid(format!("{name} must be a whole number from 1"))
                })
            })
        };
        let page = number("page", 1)?;
        let page_size = number("page_size", 100)?;
        if page_size > MAX_PAGE_SIZE {
            return Err(ApiError::invalid(format!(
                "page_size must be at most {MAX_PAGE_SIZE}"
            )));
        }
        let app = param(self.query, "app").map(|a| a.to_ascii_lowercase());
        let stream = param(self.query, "stream");
        let all: Vec<_> = slots
            .into_iter()
            .flat_map(|d| self.streams.online(d, app.as_deref(), stream.as_deref()))
            .collect();
        if all.is_empty() && stream.is_some() {
            return Err(ApiError::new(
                Code::StreamNotOnline,
                "the stream has no open connection on this edge",
            ));
        }
        let total = all.len();
        let streams: Vec<_> = all
            .into_iter()
            .skip((page - 1).saturating_mul(page_size))
            .take(page_size)
            .collect();
        Ok((
            200,
            json!({ "edge": self.live.edge(), "domain": domain, "total": total, "page": page,
                    "page_size": page_size, "streams": streams }),
        ))
    }

    /// `GET /v1/streams/connections`: each open connection of one stream.
    pub fn connections(&self) -> Answer {
        let domain = self.required("domain")?;
        let d = self.domain_index(&domain)?;
        let app = self.required("app")?.to_ascii_lowercase();
        let stream = self.required("stream")?;
        let edge = self.live.edge();
        let list: Vec<Value> = self
            .streams
            .connections(d, &app, &stream)
            .into_iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                v["edge"] = json!(edge);
                v
            })
            .collect();
        if list.is_empty() {
            return Err(ApiError::new(
                Code::StreamNotOnline,
                "the stream has no open connection on this edge",
            ));
        }
        Ok((
            200,
            json!({ "edge": edge, "domain": domain, "app": app, "stream": stream,
                    "total": list.len(), "connections": list }),
        ))
    }

    /// `PUT /v1/access`: replace a domain's access control (`{domain, access}`).
    pub async fn put_access(&self) -> Answer {
        let body: AccessBody = self.body_json()?;
        self.domain_index(&body.domain)?;
        let mut problems = Problems::default();
        Access::compile(&body.access, "access", &mut problems);
        if let Some(p) = problems.0.first() {
            return Err(ApiError::invalid(p.to_string()));
        }
        self.live
            .change(|saved, _| {
                let entry = SavedAccess {
                    domain: body.domain.clone(),
                    access: body.access.clone(),
                };
                match saved.access_at(&body.domain) {
                    Some(i) => saved.access[i] = entry,
                    None => saved.access.push(entry),
                }
                Ok(())
            })
            .await
            .map_err(refused)?;
        Ok((200, json!({ "domain": body.domain, "source": "api" })))
    }

    /// `GET /v1/access`: a domain's access control in force and where it came from.
    pub async fn access(&self) -> Answer {
        let domain = self.required("domain")?;
        self.domain_index(&domain)?;
        let saved = self.live.saved().await;
        let key = domain_key(&domain);
        let effective = saved.effective(&self.live.yaml(), &mut Vec::new());
        let access = effective
            .iter()
            .find(|d| !d.retired && domain_key(&d.name) == key)
            .and_then(|d| d.access.clone());
        let source = match (saved.access_at(&domain), &access) {
            (Some(_), _) => "api",
            (None, Some(_)) => "yaml",
            (None, None) => "none",
        };
        Ok((
            200,
            json!({ "domain": domain, "access": access, "source": source }),
        ))
    }

    /// `DELETE /v1/access`: remove the API's access control; the YAML's applies again.
    pub async fn delete_access(&self) -> Answer {
        let domain = self.required("domain")?;
        self.live
            .change(|saved, _| {
                let i = saved.access_at(&domain).ok_or_else(|| {
                    Refusal::NotFound(format!(
                        "no access control set through the API for domain {domain:?}"
                    ))
                })?;
                saved.access.remove(i);
                Ok(())
            })
            .await
            .map_err(refused)?;
        Ok((200, json!({ "deleted": true })))
    }

    /// `GET /v1/state`: this edge, its state backend and what it applied — in a
    /// fleet, the etcd revision and whether the watch is live, so an operator can
    /// see that every edge agrees.
    pub async fn state(&self) -> (u16, Value) {
        let revision = self.live.revision();
        let mut answer = match self.live.store() {
            Store::File => json!({ "edge": self.live.edge(), "backend": "file",
                "state_dir": self.live.dir(), "revision": revision, "watch": false }),
            Store::Etcd(f) => {
                let mut a = json!({ "edge": self.live.edge(), "backend": "etcd",
                    "endpoints": f.endpoints(), "prefix": f.prefix,
                    "revision": revision, "watch": f.watching() });
                // The fleet's edges, as they registered; asked only while the
                // watch is up, so that this answer stays quick with etcd down.
                let edges = match f.watching() {
                    true => f.edges().await.map_err(|e| e.to_string()),
                    false => Err("the etcd watch is down".to_owned()),
                };
                match edges {
                    Ok(edges) => a["edges"] = json!(edges),
                    Err(e) => a["edges_error"] = json!(e),
                }
                a
            }
        };
        // The domains configured (what the console lists its pages by).
        answer["domains"] = self
            .live
            .yaml()
            .iter()
            .filter(|d| !d.retired)
            .map(|d| json!(d.name))
            .collect();
        (200, answer)
    }
}

/// Checks a rule as the configuration would, plus the API's stricter ranges.
fn validate(rule: &RuleConfig) -> Result<(), ApiError> {
    if let Some(d) = rule.valid_duration {
        if !VALID_DURATION.contains(&d) {
            return Err(ApiError::invalid(format!(
                "valid_duration must be {}..={} seconds",
                VALID_DURATION.start(),
                VALID_DURATION.end()
            )));
        }
    }
    let mut problems = Problems::default();
    rules::build(rule, "", &mut problems, &mut Vec::new());
    let Some(p) = problems.0.first() else {
        return Ok(());
    };
    let at = p.at.trim_start_matches('.');
    if p.message.contains("characters long") {
        return Err(ApiError::new(
            Code::InvalidParamLength,
            format!(
                "{at} should not be longer than {}",
                crate::sign::keys::MAX_KEY_LEN
            ),
        ));
    }
    Err(ApiError::invalid(format!("{at}: {}", p.message)))
}

/// The body of `PATCH /v1/auth/rules`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulePatch {
    domain: String,
    #[serde(default = "star")]
    app: String,
    scene: Scene,
    enabled: Option<bool>,
    add_key: Option<String>,
    remove_key: Option<usize>,
}

fn star() -> String {
    "*".into()
}

/// A key as the API shows it: a secret masked as the consoles mask one
/// (`fi*****11`), a public key (CloudFront's `id:PEM`, a JWT rule's PEM) by
/// its id — public keys are not secret, but a page of PEM helps no one.
fn masked(key: &str) -> String {
    match key.find("-----BEGIN") {
        Some(0) => "<public key>".to_owned(),
        Some(i) => format!("{}<public key>", &key[..i]),
        None => Key::new(key).map_or_else(|_| "*****".to_owned(), |k| k.masked()),
    }
}

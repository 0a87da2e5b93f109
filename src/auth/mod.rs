//! Which rule applies to a request: Host → domain (exact, then the longest
//! `*.suffix`, then `*`), then (scene, app) → rule (the exact app, then `*`).
//! Lookups allocate nothing on the common path.

pub mod remote;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;

use crate::access::Access;
use crate::config::StreamPath;
use crate::cors::Cors;
use crate::hls::Hls;

use crate::config::{DomainConfig, Problems};
use crate::route::{Route, Scene};
use crate::sign::cdn::rule::TokenRule;
use crate::sign::{self, Pass, Request, Scheme};
use crate::verdict::{Failure, Reason};
pub use rules::Entry;

/// One domain's rules.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub strip_auth_params: bool,
    /// Access lists and limits, checked before the signature.
    pub access: Option<Arc<Access>>,
    /// `stream_path: nested`: the stream is the directory.
    pub nested: bool,
    /// Segment authorisation (tokens in playlists), when on.
    pub hls: Option<Hls>,
    /// Browser players on other origins.
    pub cors: Option<Arc<Cors>>,
    /// Per scene (pull, push): app → entry, and the `*` entry.
    apps: [HashMap<Box<str>, Entry>; 2],
    default: [Option<Entry>; 2],
    /// Whether any rule carries its signature in a path prefix (types B and C), in
    /// which case the app is read after the prefix.
    prefix_rules: bool,
    /// Removed by a reload: routes no host (see `DomainConfig::retired`).
    pub retired: bool,
    /// `cut_on_expiry`: admitted streams end when their signature does.
    pub cut_on_expiry: bool,
}

fn slot(scene: Scene) -> usize {
    match scene {
        Scene::Pull => 0,
        Scene::Push => 1,
    }
}

impl Domain {
    /// The entry for a request path: a type B/C rule for the app *behind* a
    /// `/time/sig` prefix first, then the path's own app, then `*`.
    pub fn entry(&self, scene: Scene, path: &str) -> Result<&Entry, Failure> {
        let apps = &self.apps[slot(scene)];
        if self.prefix_rules {
            if let Some((_, _, rest)) = sign::split_prefix(path) {
                let inner = app_entry(apps, Route::of_path(rest).app);
                if let Some(e @ Entry::Rule(r)) = inner {
                    if r.scheme().path_prefixed() {
                        return Ok(e);
                    }
                }
            }
        }
        // Most domains have one rule for every app: no path scan, no hashing.
        let by_app = match apps.is_empty() {
            true => None,
            false => app_entry(apps, Route::of_path(path).app),
        };
        by_app
            .or(self.default[slot(scene)].as_ref())
            .ok_or(Failure::new(
                Reason::NoRule,
                "no rule for this app and scene",
            ))
    }

    /// The token rule for a request, when its entry is one.
    pub fn token_rule(&self, scene: Scene, path: &str) -> Option<Arc<TokenRule>> {
        match self.entry(scene, path) {
            Ok(Entry::Token(t)) => Some(t.clone()),
            _ => None,
        }
    }

    /// The verdict for a request of `scene` at Unix time `now`. A scene with
    /// `enabled: false` passes with nothing to strip.
    pub fn verify<'a>(
        &self,
        scene: Scene,
        req: &Request<'a>,
        now: i64,
    ) -> Result<Pass<'a>, Failure> {
        match self.entry(scene, req.path)? {
            Entry::Disabled => Ok(Pass {
                path: req.path,
                key_index: 0,
                auth: Default::default(),
                expires: None,
                binds: Default::default(),
                carried: Default::default(),
            }),
            Entry::Rule(r) => r.verify(req, now),
            Entry::Token(t) => t.verify(req, now),
        }
    }
}

/// The entry for an app: apps match case-insensitively (keys are stored
/// lowercase), because origins that fold case serve `/LIVE/` as `/live/` and the
/// stricter rule must hold for both.
fn app_entry<'m>(apps: &'m HashMap<Box<str>, Entry>, app: &str) -> Option<&'m Entry> {
    match app.bytes().any(|b| b.is_ascii_uppercase()) {
        true => apps.get(app.to_ascii_lowercase().as_str()),
        false => apps.get(app),
    }
}

/// All domains, indexed for Host lookup.
#[derive(Debug, Clone, Default)]
pub struct Table {
    domains: Vec<Domain>,
    exact: HashMap<String, usize>,
    /// (".example.com", index), longest suffix first.
    wildcards: Vec<(String, usize)>,
    any: Option<usize>,
}

impl Table {
    /// Builds the table from configuration, recording every problem.
    pub fn build(
        domains: &[DomainConfig],
        problems: &mut Problems,
        warnings: &mut Vec<String>,
    ) -> Table {
        let mut t = Table::default();
        for (i, dc) in domains.iter().enumerate() {
            let at = format!("domains[{i}]");
            let name = dc.name.to_ascii_lowercase();
            let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
            if dc.retired {
                // Validated when it was configured; it routes no host any more.
                let mut ignored = Problems::default();
                let d = build_domain(dc, name, &at, &mut ignored, &mut Vec::new());
                t.domains.push(d);
                continue;
            }
            let taken = if name == "*" {
                t.any.replace(i).is_some()
            } else if let Some(suffix) = name.strip_prefix('*') {
                if !suffix.starts_with('.') || !valid_host(&suffix[1..]) {
                    problems.add(
                        format!("{at}.name"),
                        format!(
                            "{:?}: a wildcard is \"*.\" followed by a host name",
                            dc.name
                        ),
                    );
                }
                let dup = t.wildcards.iter().any(|(s, _)| s == suffix);
                t.wildcards.push((suffix.to_owned(), i));
                dup
            } else {
                if !valid_host(&name) {
                    problems.add(
                        format!("{at}.name"),
                        format!("{:?} is not a host name", dc.name),
                    );
                }
                t.exact.insert(name.clone(), i).is_some()
            };
            if taken {
                problems.add(
                    format!("{at}.name"),
                    format!("{:?} is configured twice", dc.name),
                );
            }
            dc.origin.validate(&format!("{at}.origin"), problems);
            for (k, name) in dc.cache.ignore_params.iter().enumerate() {
                if !rules::valid_param_name(name) {
                    problems.add(
                        format!("{at}.cache.ignore_params[{k}]"),
                        format!("{name:?} is not a query parameter name"),
                    );
                }
            }
            if let Some(r) = &dc.remote_auth {
                r.validate(&format!("{at}.remote_auth"), problems);
            }
            t.domains
                .push(build_domain(dc, name, &at, problems, warnings));
        }
        t.wildcards.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        t
    }

    /// The domain serving `host` (port and trailing dot already removed, any case),
    /// with its index in configuration order.
    pub fn domain(&self, host: &str) -> Option<(usize, &Domain)> {
        let i = self.find(host)?;
        Some((i, &self.domains[i]))
    }

    fn find(&self, host: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            if let Some(&i) = self.exact.get(&host.to_ascii_lowercase()) {
                return Some(i);
            }
        }
        let ends_with = |s: &str| {
            host.len() > s.len()
                && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
        };
        self.wildcards
            .iter()
            .find(|(s, _)| ends_with(s))
            .map(|&(_, i)| i)
            .or(self.any)
    }

    /// The index of the domain configured as `name` (lowercase, no trailing dot).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.domains
            .iter()
            .position(|d| d.name == name && !d.retired)
    }

    pub fn domains(&self) -> &[Domain] {
        &self.domains
    }

    /// Every query parameter name that may carry a signature or time: each
    /// scheme's defaults and every rule's renames. Their values are never logged.
    pub fn auth_param_names(&self) -> Vec<String> {
        let defaults = Scheme::URL_SCHEMES
            .iter()
            .flat_map(|s| {
                let (a, b) = s.param_names();
                [a, b]
            })
            .chain(
                Scheme::TOKEN_SCHEMES
                    .iter()
                    .flat_map(|s| s.token_names().iter().copied()),
            );
        let configured = self.domains.iter().flat_map(|d| {
            d.apps
                .iter()
                .flat_map(|m| m.values())
                .chain(d.default.iter().flatten())
                .flat_map(Entry::auth_names)
        });
        let tokens = self
            .domains
            .iter()
            .filter_map(|d| d.hls.as_ref().map(|h| &*h.token_param));
        defaults
            .chain(configured)
            .chain(tokens)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn build_domain(
    dc: &DomainConfig,
    name: String,
    at: &str,
    problems: &mut Problems,
    warnings: &mut Vec<String>,
) -> Domain {
    let mut d = Domain {
        name,
        strip_auth_params: dc.strip_auth_params,
        access: dc
            .access
            .as_ref()
            .map(|a| Arc::new(Access::compile(a, &format!("{at}.access"), problems))),
        nested: dc.stream_path == StreamPath::Nested,
        hls: None,
        cors: dc.cors.as_ref().map(|c| Arc::new(Cors::new(c))),
        apps: Default::default(),
        default: Default::default(),
        prefix_rules: false,
        retired: dc.retired,
        cut_on_expiry: dc.cut_on_expiry,
    };
    for (j, rc) in dc.auth.iter().enumerate() {
        let at = format!("{at}.auth[{j}]");
        let Some(entry) = rules::build(rc, &at, problems, warnings) else {
            continue;
        };
        if let Entry::Rule(r) = &entry {
            d.prefix_rules |= r.scheme().path_prefixed();
        }
        let s = slot(rc.scene);
        let dup = if rc.app == "*" {
            d.default[s].replace(entry).is_some()
        } else {
            d.apps[s]
                .insert(rc.app.to_ascii_lowercase().into(), entry)
                .is_some()
        };
        if dup {
            problems.add(
                at,
                format!("a second rule for scene {} and app {:?}", rc.scene, rc.app),
            );
        }
    }
    let pull = slot(Scene::Pull);
    let signs = d.apps[pull]
        .values()
        .chain(d.default[pull].iter())
        .any(Entry::signs);
    d.hls = Hls::new(dc.hls.as_ref(), signs);
    if let Some(h) = &dc.hls {
        if !rules::valid_param_name(&h.token_param) {
            problems.add(
                format!("{at}.hls.token_param"),
                "must be 1-64 of A-Z a-z 0-9 _ . -",
            );
        }
        if !(1..=86_400 * 30).contains(&h.token_ttl) {
            problems.add(format!("{at}.hls.token_ttl"), "must be 1..=2592000 seconds");
        }
    }
    if dc.cors.as_ref().is_some_and(|c| c.allow_origins.is_empty()) {
        problems.add(
            format!("{at}.cors.allow_origins"),
            "list the origins allowed (or \"*\")",
        );
    }
    d
}

#[cfg(test)]
mod tests;

//! What the management API changes — rules and forbids — kept durably under
//! `state_dir` and applied over the YAML.
//!
//! - [`Saved`] is the state file (`state_dir/state.json`): written to a temporary
//!   file, fsynced, renamed over the old one and the directory fsynced, so a crash at
//!   any moment leaves the old state or the new one, never a torn one.
//! - [`Saved::effective`] lays the API's rules over the YAML's: an API rule replaces
//!   the YAML rule for the same (domain, app, scene); deleting it brings the YAML's
//!   back. A rule for a domain no longer in the YAML is kept and warned about.
//! - [`live::Live`] is what the request path reads: the rule table and the forbids,
//!   swapped whole (`arc-swap`) so a burst of API writes never blocks a viewer.

pub mod fleet;
pub mod keys;
pub mod live;
pub mod sync;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{AccessConfig, DomainConfig, RuleConfig};
use crate::route::Scene;

/// The state file's name under `state_dir`.
pub const FILE: &str = "state.json";

/// Why the state could not be read or written.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("state file {file}: {message}; fix or move it away (it holds the rules and forbids set through the management API)")]
    Unreadable { file: PathBuf, message: String },
    #[error("{0}")]
    Etcd(String),
    #[error("cannot write the state under {dir}: {source}")]
    Write {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Everything the management API has set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    #[serde(default)]
    pub rules: Vec<SavedRule>,
    #[serde(default)]
    pub forbids: Vec<Forbid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<SavedAccess>,
}

/// A domain's access control set through the API (replacing the YAML's).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedAccess {
    pub domain: String,
    pub access: AccessConfig,
}

/// A rule set through the API, for one domain (by its configured name).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedRule {
    pub domain: String,
    pub rule: RuleConfig,
}

/// A forbidden stream: new requests get 403 `FORBIDDEN_STREAM` until `until`
/// (Unix seconds; `None` until resumed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forbid {
    pub domain: String,
    pub app: String,
    pub stream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Forbid {
    /// Whether it still holds at `now`.
    pub fn holds(&self, now: i64) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// The state as this machine last knew it, without asking a store (for
/// `livegate check`, `sign` and `-t`): the state file, or in fleet mode the
/// snapshot of the last sync with etcd (empty before the first).
pub fn read_local(dir: &Path, backend: crate::config::StateBackend) -> Result<Saved, StateError> {
    match backend {
        crate::config::StateBackend::File => Saved::read(dir),
        crate::config::StateBackend::Etcd => Ok(fleet::read_snapshot(&dir.join(fleet::SNAPSHOT))?
            .map_or_else(Saved::default, |s| s.state)),
    }
}

/// Writes `dir/name` durably and privately (mode 0600: state holds keys):
/// temporary file, fsync, rename, fsync of the directory. A crash at any moment
/// leaves the old file or the new one, never a torn one.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let fail = |source| StateError::Write {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(dir.join(name)).map_err(|e| fail(e.error))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
    Ok(())
}

/// A domain name as configured, compared the way Hosts are: lowercase, without a
/// trailing dot.
pub fn domain_key(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    n.strip_suffix('.').map(str::to_owned).unwrap_or(n)
}

/// Whether two rules are for the same (app, scene); apps match case-insensitively.
pub fn same_slot(a: &RuleConfig, b: &RuleConfig) -> bool {
    a.scene == b.scene && a.app.eq_ignore_ascii_case(&b.app)
}

impl Saved {
    /// Reads `dir/state.json`; no file is an empty state.
    pub fn read(dir: &Path) -> Result<Saved, StateError> {
        let file = dir.join(FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
            Err(e) => {
                return Err(StateError::Unreadable {
                    file,
                    message: e.to_string(),
                })
            }
        };
        serde_json::from_str(&text).map_err(|e| StateError::Unreadable {
            file,
            message: crate::redact::parse_error(&e.to_string()),
        })
    }

    /// Writes `dir/state.json` durably: temporary file, fsync, rename, fsync of the
    /// directory. Only then is a change acknowledged.
    pub fn write(&self, dir: &Path) -> Result<(), StateError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| StateError::Write {
            dir: dir.to_owned(),
            source: e.into(),
        })?;
        write_atomic(dir, FILE, &text)
    }

    /// The YAML's domains with the API's rules laid over them. `warnings` receives
    /// API rules whose domain is no longer configured (they stay in the file).
    pub fn effective(
        &self,
        domains: &[DomainConfig],
        warnings: &mut Vec<String>,
    ) -> Vec<DomainConfig> {
        let mut out = domains.to_vec();
        for saved in &self.rules {
            let key = domain_key(&saved.domain);
            let Some(d) = out.iter_mut().find(|d| domain_key(&d.name) == key) else {
                warnings.push(format!(
                    "the state file holds a {} rule for app {:?} of domain {:?}, which is not configured; it is kept and applies again if the domain returns",
                    saved.rule.scene, saved.rule.app, saved.domain
                ));
                continue;
            };
            d.auth.retain(|r| !same_slot(r, &saved.rule));
            d.auth.push(saved.rule.clone());
        }
        for saved in &self.access {
            let key = domain_key(&saved.domain);
            match out.iter_mut().find(|d| domain_key(&d.name) == key) {
                Some(d) => d.access = Some(saved.access.clone()),
                None => warnings.push(format!(
                    "the state file holds access control for domain {:?}, which is not configured; it is kept",
                    saved.domain
                )),
            }
        }
        out
    }

    /// The index of the API-set access control of a domain, if any.
    pub fn access_at(&self, domain: &str) -> Option<usize> {
        let key = domain_key(domain);
        self.access
            .iter()
            .position(|a| domain_key(&a.domain) == key)
    }

    /// The index of an API rule for (domain, app, scene), if any.
    /// Adds `rule` for `domain`, or replaces the API rule of its (app, scene).
    pub fn set_rule(&mut self, domain: &str, rule: RuleConfig) {
        let saved = SavedRule {
            domain: domain.to_owned(),
            rule,
        };
        match self.rule_at(domain, &saved.rule.app, saved.rule.scene) {
            Some(i) => self.rules[i] = saved,
            None => self.rules.push(saved),
        }
    }

    pub fn rule_at(&self, domain: &str, app: &str, scene: Scene) -> Option<usize> {
        let key = domain_key(domain);
        self.rules.iter().position(|r| {
            domain_key(&r.domain) == key
                && r.rule.scene == scene
                && r.rule.app.eq_ignore_ascii_case(app)
        })
    }

    /// The index of the forbid of (domain, app, stream), if any.
    pub fn forbid_at(&self, domain: &str, app: &str, stream: &str) -> Option<usize> {
        let key = domain_key(domain);
        self.forbids.iter().position(|f| {
            domain_key(&f.domain) == key && f.app.eq_ignore_ascii_case(app) && f.stream == stream
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_and_refuses_a_torn_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Saved::read(dir.path()).unwrap().forbids.is_empty());
        let mut s = Saved::default();
        s.forbids.push(Forbid {
            domain: "d".into(),
            app: "live".into(),
            stream: "a".into(),
            until: Some(5),
            reason: None,
        });
        s.write(dir.path()).unwrap();
        assert_eq!(Saved::read(dir.path()).unwrap().forbids, s.forbids);
        std::fs::write(dir.path().join(FILE), "{\"forbids\": [").unwrap();
        let e = Saved::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("state.json"), "{e}");
    }
}

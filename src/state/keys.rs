//! How a fleet's state is laid out in etcd: one key per API-set rule, per forbid
//! and per domain's access control, each value in the JSON the management API
//! takes, so an operator reading etcd sees what they sent:
//!
//! ```text
//! {prefix}/rules/{domain}/{scene}/{app}      {"domain": …, "app": …, "scene": …, "keys": …}
//! {prefix}/forbids/{domain}/{app}/{stream}   {"domain": …, "app": …, "stream": …, "until"?: …}
//! {prefix}/access/{domain}                   {"domain": …, "access": {…}}
//! {prefix}/hls/secret                        64 hex digits
//! ```
//!
//! Domains and apps are lowercased (they match case-insensitively), every part is
//! percent-encoded. Pure: a [`Saved`] in, key/value pairs out, and back — no I/O,
//! so the mapping is tested on its own.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{domain_key, Forbid, Saved, SavedAccess, SavedRule};
use crate::config::RuleConfig;

/// The key layout under one prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The prefix with a trailing `/`: every key of the fleet starts with it.
    root: String,
}

/// One key a commit writes (`value`) or deletes (`None`), on the condition that
/// its modification revision is still `seen` (0: the key must not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub seen: i64,
}

/// What this edge last saw of one key: the revision of its last change, and
/// whether that change left it holding a value. A write is conditional on the
/// key's modification revision being what was seen — or, for a key seen
/// deleted, on its not existing (a deleted key's modification revision is 0,
/// never the revision of the delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub revision: i64,
    pub present: bool,
}

impl Seen {
    /// The modification revision a write of this key is conditional on.
    pub fn expected(self) -> i64 {
        if self.present {
            self.revision
        } else {
            0
        }
    }
}

/// What one key holds.
#[derive(Debug)]
enum Entry {
    Rule(SavedRule),
    Forbid(Forbid),
    Access(SavedAccess),
}

/// Why a key's value was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not one of the fleet's kinds (the HLS secret, or something unknown).
    Other,
    /// The value does not parse, or names another key than the one it is at.
    Bad(String),
}

/// Percent-encodes one key part: everything but unreserved characters.
fn part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Layout {
    /// The layout under `prefix` (`/livegate`, no trailing `/`).
    pub fn new(prefix: &str) -> Layout {
        Layout {
            root: format!("{}/", prefix.trim_end_matches('/')),
        }
    }

    /// The prefix every key starts with (for reads and the watch).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The key of the HLS token secret.
    pub fn secret(&self) -> String {
        format!("{}hls/secret", self.root)
    }

    fn rule_key(&self, r: &SavedRule) -> String {
        format!(
            "{}rules/{}/{}/{}",
            self.root,
            part(&domain_key(&r.domain)),
            r.rule.scene,
            part(&r.rule.app.to_ascii_lowercase())
        )
    }

    fn forbid_key(&self, f: &Forbid) -> String {
        format!(
            "{}forbids/{}/{}/{}",
            self.root,
            part(&domain_key(&f.domain)),
            part(&f.app.to_ascii_lowercase()),
            part(&f.stream)
        )
    }

    fn access_key(&self, a: &SavedAccess) -> String {
        format!("{}access/{}", self.root, part(&domain_key(&a.domain)))
    }

    /// Every key and value of a state, as they are written to etcd.
    pub fn entries(&self, saved: &Saved) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for r in &saved.rules {
            out.insert(self.rule_key(r), rule_json(r));
        }
        for f in &saved.forbids {
            out.insert(self.forbid_key(f), json_bytes(f));
        }
        for a in &saved.access {
            out.insert(self.access_key(a), json_bytes(a));
        }
        out
    }

    /// The writes that turn `before` into `after`, each conditional on the
    /// revision `seen` records for its key (unknown: 0, the key must not exist).
    pub fn diff(
        &self,
        before: &Saved,
        after: &Saved,
        seen: &std::collections::HashMap<String, Seen>,
    ) -> Vec<Op> {
        let (old, new) = (self.entries(before), self.entries(after));
        let seen_of = |k: &str| seen.get(k).map_or(0, |s| s.expected());
        let puts = new
            .iter()
            .filter(|(k, v)| old.get(*k) != Some(*v))
            .map(|(k, v)| Op {
                key: k.clone(),
                value: Some(v.clone()),
                seen: seen_of(k),
            });
        let deletes = old.keys().filter(|k| !new.contains_key(*k)).map(|k| Op {
            key: k.clone(),
            value: None,
            seen: seen_of(k),
        });
        puts.chain(deletes).collect()
    }

    /// Applies one key's new value (`None`: deleted) to a state. A value that
    /// is not taken ([`Skip::Bad`]) leaves the state as it was: the key keeps
    /// its previous good value (a forbid stays, a rule keeps protecting).
    pub fn apply(&self, saved: &mut Saved, key: &str, value: Option<&[u8]>) -> Result<(), Skip> {
        let kind = key
            .strip_prefix(&self.root)
            .and_then(|rest| rest.split_once('/'))
            .map(|(kind, _)| kind)
            .ok_or(Skip::Other)?;
        if !matches!(kind, "rules" | "forbids" | "access") {
            return Err(Skip::Other);
        }
        let entry = match value {
            None => None,
            Some(v) => {
                let entry = parse(kind, v).map_err(Skip::Bad)?;
                let at = match &entry {
                    Entry::Rule(r) => self.rule_key(r),
                    Entry::Forbid(f) => self.forbid_key(f),
                    Entry::Access(a) => self.access_key(a),
                };
                if at != key {
                    return Err(Skip::Bad(format!("the value belongs at {at}")));
                }
                Some(entry)
            }
        };
        // Whatever is at the key goes; a deletion ends there.
        saved.rules.retain(|r| self.rule_key(r) != key);
        saved.forbids.retain(|f| self.forbid_key(f) != key);
        saved.access.retain(|a| self.access_key(a) != key);
        let Some(entry) = entry else { return Ok(()) };
        match entry {
            Entry::Rule(r) => saved.rules.push(r),
            Entry::Forbid(f) => saved.forbids.push(f),
            Entry::Access(a) => saved.access.push(a),
        }
        Ok(())
    }
}

fn json_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Plain data structures: serialising them cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// A rule as the API's `PUT /v1/auth/rules` body: the rule's fields plus `domain`.
fn rule_json(r: &SavedRule) -> Vec<u8> {
    let mut v = serde_json::to_value(&r.rule).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("domain".into(), Value::String(r.domain.clone()));
    }
    json_bytes(&v)
}

fn parse(kind: &str, value: &[u8]) -> Result<Entry, String> {
    let bad = |e: serde_json::Error| crate::redact::parse_error(&e.to_string());
    Ok(match kind {
        "rules" => {
            let mut v: Value = serde_json::from_slice(value).map_err(bad)?;
            let domain = match v.as_object_mut().and_then(|o| o.remove("domain")) {
                Some(Value::String(d)) => d,
                _ => return Err("no domain (a string)".into()),
            };
            let rule: RuleConfig = serde_json::from_value(v).map_err(bad)?;
            Entry::Rule(SavedRule { domain, rule })
        }
        "forbids" => Entry::Forbid(serde_json::from_slice(value).map_err(bad)?),
        _ => Entry::Access(serde_json::from_slice(value).map_err(bad)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Saved {
        let rule: RuleConfig = serde_json::from_str(
            r#"{"scene":"pull","app":"Live","scheme":"tencent","keys":["k1"]}"#,
        )
        .unwrap();
        Saved {
            rules: vec![SavedRule {
                domain: "Play.Example.com".into(),
                rule,
            }],
            forbids: vec![Forbid {
                domain: "play.example.com".into(),
                app: "live".into(),
                stream: "cam 1/x%".into(),
                until: Some(9),
                reason: None,
            }],
            access: vec![],
        }
    }

    #[test]
    fn entries_read_back_into_the_same_state() {
        let l = Layout::new("/livegate");
        let s = saved();
        let e = l.entries(&s);
        let keys: Vec<_> = e.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "/livegate/forbids/play.example.com/live/cam%201%2Fx%25",
                "/livegate/rules/play.example.com/pull/live",
            ]
        );
        let mut back = Saved::default();
        for (k, v) in &e {
            l.apply(&mut back, k, Some(v)).unwrap();
        }
        assert_eq!(l.entries(&back), e);
        // A rule's value is the API's body: the rule plus its domain.
        let v: Value = serde_json::from_slice(&e[&keys[1]]).unwrap();
        assert_eq!(v["domain"], "Play.Example.com");
        assert_eq!(v["keys"][0], "k1");
    }

    #[test]
    fn a_put_replaces_and_a_delete_removes() {
        let l = Layout::new("/lg");
        let mut s = saved();
        let key = l.entries(&s).keys().next().unwrap().clone();
        let mut f = s.forbids[0].clone();
        f.reason = Some("rights".into());
        l.apply(&mut s, &key, Some(&json_bytes(&f))).unwrap();
        assert_eq!(s.forbids, vec![f]);
        l.apply(&mut s, &key, None).unwrap();
        assert!(s.forbids.is_empty());
        assert_eq!(s.rules.len(), 1);
    }

    #[test]
    fn diff_writes_only_what_changed_on_the_revisions_seen() {
        let l = Layout::new("/lg");
        let before = saved();
        let mut after = before.clone();
        after.forbids.clear();
        after.access.push(SavedAccess {
            domain: "play.example.com".into(),
            access: serde_json::from_str("{}").unwrap(),
        });
        let fkey = l.entries(&before).keys().next().unwrap().clone();
        let seen = [(
            fkey.clone(),
            Seen {
                revision: 7,
                present: true,
            },
        )]
        .into_iter()
        .collect();
        let ops = l.diff(&before, &after, &seen);
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert_eq!(ops[0].key, "/lg/access/play.example.com");
        assert_eq!((ops[0].seen, ops[0].value.is_some()), (0, true));
        assert_eq!(
            (ops[1].key.as_str(), ops[1].seen, &ops[1].value),
            (fkey.as_str(), 7, &None)
        );
        assert!(l.diff(&before, &before, &seen).is_empty());
        // A key seen deleted (at revision 9) is written on the condition that it
        // still does not exist: a deleted key's modification revision is 0.
        let gone = [(
            fkey.clone(),
            Seen {
                revision: 9,
                present: false,
            },
        )]
        .into_iter()
        .collect();
        let again = l.diff(&after, &before, &gone);
        let put = again.iter().find(|o| o.key == fkey).unwrap();
        assert_eq!((put.seen, put.value.is_some()), (0, true));
    }

    #[test]
    fn foreign_and_misplaced_values_are_skipped() {
        let l = Layout::new("/lg");
        let mut s = saved();
        assert_eq!(
            l.apply(&mut s, "/lg/hls/secret", Some(b"00")),
            Err(Skip::Other)
        );
        assert_eq!(l.apply(&mut s, "/other/x/y", None), Err(Skip::Other));
        assert!(matches!(
            l.apply(&mut s, "/lg/forbids/a/b/c", Some(b"{")),
            Err(Skip::Bad(_))
        ));
        let f = json_bytes(&s.forbids[0]);
        assert!(matches!(
            l.apply(&mut s, "/lg/forbids/a/b/c", Some(&f)),
            Err(Skip::Bad(m)) if m.contains("belongs at")
        ));
        assert_eq!(s.rules.len(), 1);
    }

    #[test]
    fn a_value_that_does_not_parse_keeps_the_keys_good_value() {
        let l = Layout::new("/lg");
        let good = saved();
        let entries = l.entries(&good);
        let other_forbid = l.entries(&Saved {
            forbids: vec![Forbid {
                stream: "other".into(),
                ..good.forbids[0].clone()
            }],
            ..Saved::default()
        });
        let (other_key, other_value) = other_forbid.iter().next().unwrap();
        for key in entries.keys() {
            let wrong_key = format!(
                "{{\"domain\":\"play.example.com\",\"app\":\"live\",\"stream\":{}}}",
                7
            );
            for junk in [
                b"not json".as_slice(),
                b"",
                b"[]",
                b"null",
                b"\"text\"",
                b"{\"domain\": 5}",
                b"{\"unknown_field\": true}",
                wrong_key.as_bytes(),
                other_value.as_slice(),
            ] {
                let mut s = good.clone();
                let taken = l.apply(&mut s, key, Some(junk));
                assert!(matches!(taken, Err(Skip::Bad(_))), "{key} {junk:?}");
                assert_eq!(l.entries(&s), entries, "{key} lost its value to {junk:?}");
            }
        }
        assert_ne!(other_key, entries.keys().next().unwrap());
    }
}

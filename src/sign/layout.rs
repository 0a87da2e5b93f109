//! What a scheme hashes: an ordered list of pieces, fed one by one into MD5.
//!
//! Every scheme is a layout — Tencent is `key + stream + time`, type A is
//! `uri-time-rand-uid-key`, a `secure_link` template or a Volcengine field list is
//! parsed into one — so one digest routine serves them all, and hashing never
//! builds the signed string in memory.

use md5::{Digest, Md5};
use thiserror::Error;

use super::keys::Key;

/// One element of a signed string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Fixed text, e.g. the `-` of type A or the space of nginx's default template.
    Lit(Box<str>),
    /// The secret key.
    Key,
    /// The time field exactly as it appears in the URL.
    Time,
    /// The request path as sent (percent-encoded form), after any signature prefix.
    Uri,
    /// `"/" + app` (Volcengine's `AppName`).
    SlashApp,
    /// The stream name alone (Tencent's `StreamName`).
    Stream,
    /// `"/" + stream` (Volcengine's `StreamName`).
    SlashStream,
    /// The host without port.
    Host,
    /// The client address.
    RemoteAddr,
    /// Type A's `rand` field.
    Rand,
    /// Type A's `uid` field.
    Uid,
}

/// The values a layout draws on for one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields<'a> {
    pub time: &'a str,
    pub uri: &'a str,
    pub app: &'a str,
    pub stream: &'a str,
    pub host: &'a str,
    pub remote_addr: &'a str,
    pub rand: &'a str,
    pub uid: &'a str,
}

/// An ordered list of pieces: the definition of a signed string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout(Vec<Piece>);

/// Why a `template` or `encrypt_fields` list was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("unknown placeholder {{{0}}}; use {{expires}}, {{uri}}, {{key}}, {{remote_addr}} or {{host}}")]
    UnknownPlaceholder(String),
    #[error("a '{{' is never closed by '}}'")]
    Unclosed,
    #[error("the template has no {{key}}: anyone could sign URLs")]
    NoKey,
    #[error("unknown field {0:?}; use AppName, StreamName, Domain, key or volcTime")]
    UnknownField(String),
    #[error("the field list has no \"key\": anyone could sign URLs")]
    NoKeyField,
}

impl Layout {
    pub fn new(pieces: Vec<Piece>) -> Layout {
        Layout(pieces)
    }

    /// Parses an nginx-style template such as `{expires}{uri} {key}`.
    pub fn template(t: &str) -> Result<Layout, LayoutError> {
        let mut pieces = Vec::new();
        let mut rest = t;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or(LayoutError::Unclosed)?;
                    pieces.push(match &rest[1..end] {
                        "expires" => Piece::Time,
                        "uri" => Piece::Uri,
                        "key" => Piece::Key,
                        "remote_addr" => Piece::RemoteAddr,
                        "host" => Piece::Host,
                        other => return Err(LayoutError::UnknownPlaceholder(other.into())),
                    });
                    rest = &rest[end + 1..];
                }
                Some(i) => {
                    pieces.push(Piece::Lit(rest[..i].into()));
                    rest = &rest[i..];
                }
                None => {
                    pieces.push(Piece::Lit(rest.into()));
                    rest = "";
                }
            }
        }
        if !pieces.contains(&Piece::Key) {
            return Err(LayoutError::NoKey);
        }
        Ok(Layout(pieces))
    }

    /// Parses Volcengine's `encrypt_fields`, e.g. `["AppName","StreamName","key","volcTime"]`.
    pub fn volc_fields<S: AsRef<str>>(fields: &[S]) -> Result<Layout, LayoutError> {
        let pieces = fields
            .iter()
            .map(|f| match f.as_ref() {
                "AppName" => Ok(Piece::SlashApp),
                "StreamName" => Ok(Piece::SlashStream),
                "Domain" => Ok(Piece::Host),
                "key" => Ok(Piece::Key),
                "volcTime" => Ok(Piece::Time),
                other => Err(LayoutError::UnknownField(other.into())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !pieces.contains(&Piece::Key) {
            return Err(LayoutError::NoKeyField);
        }
        Ok(Layout(pieces))
    }

    /// Whether the signed string covers the time field (a URL without it never expires).
    pub fn signs_time(&self) -> bool {
        self.0.contains(&Piece::Time)
    }

    /// Whether the signed string draws on the app or stream (a path scan to find).
    pub fn uses_route(&self) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, Piece::SlashApp | Piece::Stream | Piece::SlashStream))
    }

    /// Whether the signed string depends on the client address.
    pub fn uses(&self, piece: &Piece) -> bool {
        self.0.contains(piece)
    }

    /// MD5 of the signed string for `key`, fed piece by piece.
    pub fn digest(&self, f: &Fields<'_>, key: &Key) -> [u8; 16] {
        let mut h = Md5::new();
        for p in &self.0 {
            match p {
                Piece::Lit(s) => h.update(s.as_bytes()),
                Piece::Key => h.update(key.as_bytes()),
                Piece::Time => h.update(f.time),
                Piece::Uri => h.update(f.uri),
                Piece::SlashApp => {
                    h.update(b"/");
                    h.update(f.app)
                }
                Piece::Stream => h.update(f.stream),
                Piece::SlashStream => {
                    h.update(b"/");
                    h.update(f.stream)
                }
                Piece::Host => h.update(f.host),
                Piece::RemoteAddr => h.update(f.remote_addr),
                Piece::Rand => h.update(f.rand),
                Piece::Uid => h.update(f.uid),
            }
        }
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nginx_default_template() {
        let l = Layout::template("{expires}{uri} {key}").unwrap();
        assert_eq!(
            l,
            Layout::new(vec![
                Piece::Time,
                Piece::Uri,
                Piece::Lit(" ".into()),
                Piece::Key
            ])
        );
    }

    #[test]
    fn refuses_bad_templates() {
        assert_eq!(
            Layout::template("{expires}{path} {key}"),
            Err(LayoutError::UnknownPlaceholder("path".into()))
        );
        assert_eq!(
            Layout::template("{expires{uri}"),
            Err(LayoutError::UnknownPlaceholder("expires{uri".into()))
        );
        assert_eq!(Layout::template("{key"), Err(LayoutError::Unclosed));
        assert_eq!(Layout::template("{expires}{uri}"), Err(LayoutError::NoKey));
        assert_eq!(
            Layout::volc_fields(&["AppName", "volcTime"]),
            Err(LayoutError::NoKeyField)
        );
        assert_eq!(
            Layout::volc_fields(&["Appname", "key"]),
            Err(LayoutError::UnknownField("Appname".into()))
        );
    }
}

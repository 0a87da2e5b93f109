//! Playlist rewriting, pure: every URI of an HLS playlist (RFC 8216) that this
//! edge serves gets the segment token, so players fetch segments and variants
//! with it.
//!
//! URI lines and the `URI="…"` attribute of any tag (`EXT-X-KEY`, `EXT-X-MAP`,
//! `EXT-X-MEDIA`, `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`,
//! `EXT-X-I-FRAME-STREAM-INF`, …) are considered; a URI's own query is kept and
//! the token added to it.
//!
//! "Ours" is decided the way a WHATWG URL parser (every browser, hls.js) resolves
//! the URI against the playlist's URL, and a URI that parsers could read two ways
//! gets no token: relative references and absolute paths are ours;
//! `//host[:port]/…` and `http(s)://host[:port]/…` are ours only on the
//! playlist's own host *and* port (and scheme); anything holding a backslash, a
//! control character or a space (which WHATWG strips or reads as `/`, and other
//! parsers do not), userinfo, percent-encoded hosts, a third slash, or any other
//! scheme (`data:`, `skd:`) is not ours.
//!
//! A playlist is parsed once into a [`Template`] (the text and where tokens go),
//! which is then filled per viewer: a cached playlist is not rewritten again for
//! each of its viewers when only the token differs.

use bytes::Bytes;

/// Where a playlist was fetched from, as its player resolves URIs against it.
#[derive(Debug, Clone, Copy)]
pub struct Base<'a> {
    /// Lowercase, without port or trailing dot.
    pub host: &'a str,
    /// The port the player connected to (the Host header's, else the scheme's).
    pub port: u16,
    /// `https`.
    pub tls: bool,
}

impl<'a> Base<'a> {
    /// The base of a request from its `Host` header (already lowercased by the
    /// caller into `host`) and whether it came over TLS.
    pub fn of(host_header: &str, host: &'a str, tls: bool) -> Base<'a> {
        let port = match host_header.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => p.parse::<u16>().ok(),
            _ => None,
        };
        Base {
            host,
            port: port.unwrap_or(default_port(tls)),
            tls,
        }
    }
}

fn default_port(tls: bool) -> u16 {
    if tls {
        443
    } else {
        80
    }
}

/// Which viewers a URI is ours for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// Relative, or an absolute path: on whatever host served the playlist.
    Always,
    /// Absolute (or scheme-relative): only when the playlist came from this host
    /// and port (and scheme, when it names one).
    At {
        host: Box<str>,
        port: Option<u16>,
        tls: Option<bool>,
    },
}

impl Reach {
    fn holds(&self, base: &Base<'_>) -> bool {
        match self {
            Reach::Always => true,
            Reach::At { host, port, tls } => {
                let tls = tls.unwrap_or(base.tls);
                tls == base.tls
                    && **host == *base.host
                    && port.unwrap_or(default_port(tls)) == base.port
            }
        }
    }
}

/// The reach of a URI's authority (`host[:port]`), or `None` when it is not one
/// that parsers all read the same way.
fn authority(a: &str, tls: Option<bool>) -> Option<Reach> {
    if a.is_empty() || a.contains(['@', '%']) {
        return None;
    }
    let (host, port) = match a.strip_prefix('[') {
        Some(rest) => {
            let end = rest.find(']')?;
            let after = &rest[end + 1..];
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (&a[..end + 2], port)
        }
        None => match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        },
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    let host = host.to_ascii_lowercase();
    let plain = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if host.is_empty() || host.ends_with('.') || !plain {
        return None;
    }
    Some(Reach::At {
        host: host.into(),
        port,
        tls,
    })
}

/// The reach of a URI, or `None` when it is not ours for anyone.
fn reach(uri: &str) -> Option<Reach> {
    if uri.is_empty() || uri.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'\\') {
        return None;
    }
    let authority_of = |rest: &str, tls| {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        authority(&rest[..end], tls)
    };
    if let Some(rest) = uri.strip_prefix("//") {
        return authority_of(rest, None);
    }
    if uri.starts_with('/') {
        return Some(Reach::Always);
    }
    let scheme_end = uri.find(':').filter(|&i| {
        let s = uri.as_bytes();
        s[0].is_ascii_alphabetic()
            && s[..i]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
    });
    let Some(i) = scheme_end else {
        return Some(Reach::Always);
    };
    let tls = match &uri[..i] {
        s if s.eq_ignore_ascii_case("http") => false,
        s if s.eq_ignore_ascii_case("https") => true,
        _ => return None,
    };
    let rest = uri[i + 1..].strip_prefix("//")?;
    if rest.starts_with('/') {
        return None;
    }
    authority_of(rest, Some(tls))
}

/// The byte range of a tag line's `URI="…"` value, if it has one.
fn uri_attribute(line: &str) -> Option<(usize, usize)> {
    let at = line.find("URI=\"")? + 5;
    let len = line[at..].find('"')?;
    Some((at, at + len))
}

/// Where a token goes: before byte `at` of the text, after `?` or `&`.
#[derive(Debug, Clone)]
struct Slot {
    at: usize,
    sep: u8,
    reach: Reach,
}

/// A playlist parsed once: its text, and where a token may go.
#[derive(Debug, Clone)]
pub struct Template {
    text: Bytes,
    slots: Vec<Slot>,
}

/// A rewritten playlist would exceed the bound it was filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge(pub usize);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a rewritten playlist would be over {} bytes", self.0)
    }
}

impl Template {
    /// Parses a playlist, or `None` when the body is not one (no `#EXTM3U`
    /// first, or not UTF-8).
    pub fn parse(body: Bytes) -> Option<Template> {
        let text = std::str::from_utf8(&body).ok()?;
        let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
        if !text[bom..].starts_with("#EXTM3U") {
            return None;
        }
        let mut slots = Vec::new();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let content = line.trim_end_matches(['\r', '\n']);
            let trimmed = content.trim();
            let uri = if trimmed.starts_with('#') {
                uri_attribute(content).map(|(a, b)| (a, &content[a..b]))
            } else if trimmed.is_empty() {
                None
            } else {
                let lead = content.len() - content.trim_start().len();
                Some((lead, trimmed))
            };
            if let Some((at, uri)) = uri {
                if let Some(reach) = reach(uri) {
                    let base = uri.find('#').map_or(uri, |i| &uri[..i]);
                    slots.push(Slot {
                        at: offset + at + base.len(),
                        sep: if base.contains('?') { b'&' } else { b'?' },
                        reach,
                    });
                }
            }
            offset += line.len();
        }
        Some(Template { text: body, slots })
    }

    /// The playlist with `name=token` on each URI that is ours for `base`, or
    /// [`TooLarge`] when that would be over `max` bytes (nothing is built then).
    pub fn fill(
        &self,
        base: &Base<'_>,
        name: &str,
        token: &str,
        max: usize,
    ) -> Result<Bytes, TooLarge> {
        let each = 2 + name.len() + token.len();
        let ours = self.slots.iter().filter(|s| s.reach.holds(base)).count();
        let len = self.text.len().saturating_add(ours.saturating_mul(each));
        if len > max {
            return Err(TooLarge(max));
        }
        if ours == 0 {
            return Ok(self.text.clone());
        }
        let mut out = Vec::with_capacity(len);
        let mut from = 0;
        for slot in self.slots.iter().filter(|s| s.reach.holds(base)) {
            out.extend_from_slice(&self.text[from..slot.at]);
            out.push(slot.sep);
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(token.as_bytes());
            from = slot.at;
        }
        out.extend_from_slice(&self.text[from..]);
        Ok(Bytes::from(out))
    }
}

/// The playlist with the token on each of its URIs that is ours for `base`, or
/// `None` when the body is not a playlist (unbounded: for tests and tools).
pub fn rewrite(body: &str, base: &Base<'_>, name: &str, token: &str) -> Option<String> {
    let t = Template::parse(Bytes::copy_from_slice(body.as_bytes()))?;
    let out = t.fill(base, name, token, usize::MAX).ok()?;
    String::from_utf8(out.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Base<'static> = Base {
        host: "play.example.com",
        port: 8080,
        tls: false,
    };

    fn r(p: &str) -> String {
        rewrite(p, &HOST, "lgt", "T").unwrap()
    }

    #[test]
    fn every_uri_of_ours_gets_the_token() {
        let p = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4\"\n\
                 #EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.other.com/k\",IV=0x1\n\
                 #EXTINF:2.0,\ncam1-1.ts\n#EXTINF:2.0,\nseg.ts?x=1\n\
                 #EXT-X-PART:DURATION=0.5,URI=\"p1.mp4\"\n\
                 #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p2.mp4\"\n\
                 #EXT-X-RENDITION-REPORT:URI=\"../hi/index.m3u8\",LAST-MSN=5\n\
                 http://play.example.com:8080/live/abs.ts\n\
                 HTTP://Play.Example.COM:08080/live/abs2.ts\n\
                 https://other.example.org/x.ts\n\
                 //play.example.com:8080/live/rel.ts\n\
                 /live/root.ts#frag\n";
        let out = r(p);
        for want in [
            "#EXT-X-MAP:URI=\"init.mp4?lgt=T\"",
            "URI=\"https://keys.other.com/k\"",
            "\ncam1-1.ts?lgt=T\n",
            "\nseg.ts?x=1&lgt=T\n",
            "URI=\"p1.mp4?lgt=T\"",
            "URI=\"p2.mp4?lgt=T\"",
            "URI=\"../hi/index.m3u8?lgt=T\"",
            "\nhttp://play.example.com:8080/live/abs.ts?lgt=T\n",
            "\nHTTP://Play.Example.COM:08080/live/abs2.ts?lgt=T\n",
            "\nhttps://other.example.org/x.ts\n",
            "\n//play.example.com:8080/live/rel.ts?lgt=T\n",
            "\n/live/root.ts?lgt=T#frag\n",
            "#EXTINF:2.0,\n",
        ] {
            assert!(out.contains(want), "{want} not in\n{out}");
        }
    }

    #[test]
    fn uris_a_browser_resolves_elsewhere_get_no_token() {
        for uri in [
            "\\\\evil.test\\c.ts",
            "/\\evil.test/d.ts",
            "\\/evil.test/e.ts",
            "ht\ttp://evil.test/f.ts",
            "/\t/evil.test/g.ts",
            "http:\\\\evil.test/h.ts",
            "http:evil.test/i.ts",
            "https:/evil.test/j.ts",
            "http:///evil.test/k.ts",
            "http://play.example.com@evil.test/l.ts",
            "http://evil.test\\@play.example.com/m.ts",
            "http://play%2eexample.com:8080/n.ts",
            "http://play.example.com.:8080/o.ts",
            "//evil.test/p.ts",
            "javascript:alert(1)",
            "data:video/mp2t;base64,AAAA",
            "skd:key1",
        ] {
            let out = r(&format!("#EXTM3U\n#EXTINF:2,\n{uri}\n#X:URI=\"{uri}\"\n"));
            assert!(!out.contains("lgt=T"), "{uri:?} got a token:\n{out}");
        }
    }

    #[test]
    fn another_port_or_scheme_of_our_host_is_not_ours() {
        for uri in [
            "http://play.example.com/a.ts",
            "http://play.example.com:8081/a.ts",
            "https://play.example.com:8080/a.ts",
            "//play.example.com/a.ts",
            "//play.example.com:80/a.ts",
        ] {
            let out = r(&format!("#EXTM3U\n{uri}\n"));
            assert!(!out.contains("lgt=T"), "{uri} got a token");
        }
        let tls = Base {
            host: "play.example.com",
            port: 443,
            tls: true,
        };
        let p = "#EXTM3U\nhttps://play.example.com/a.ts\n//play.example.com/b.ts\nhttp://play.example.com:443/c.ts\n";
        let out = rewrite(p, &tls, "lgt", "T").unwrap();
        assert!(
            out.contains("a.ts?lgt=T") && out.contains("b.ts?lgt=T"),
            "{out}"
        );
        assert!(!out.contains("c.ts?lgt"), "{out}");
    }

    #[test]
    fn the_base_is_the_host_header_and_the_scheme() {
        let b = Base::of("Play.example.com:8080", "play.example.com", false);
        assert_eq!((b.port, b.tls), (8080, false));
        assert_eq!(Base::of("h", "h", true).port, 443);
        assert_eq!(Base::of("h", "h", false).port, 80);
        assert_eq!(Base::of("[::1]:9000", "[::1]", false).port, 9000);
        assert_eq!(Base::of("[::1]", "[::1]", false).port, 80);
    }

    #[test]
    fn variants_media_and_line_ends_are_kept() {
        let p = "#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=800000\r\nhi/index.m3u8\r\n\
                 #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8\"\r\n\
                 #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"iframes.m3u8\"\r\n";
        assert_eq!(
            r(p),
            "#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=800000\r\nhi/index.m3u8?lgt=T\r\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8?lgt=T\"\r\n\
             #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"iframes.m3u8?lgt=T\"\r\n"
        );
    }

    #[test]
    fn a_body_that_is_not_a_playlist_is_left_alone() {
        assert_eq!(rewrite("<html>", &HOST, "lgt", "T"), None);
        assert_eq!(rewrite("", &HOST, "lgt", "T"), None);
        assert!(rewrite("\u{feff}#EXTM3U\na.ts\n", &HOST, "lgt", "T")
            .unwrap()
            .ends_with("a.ts?lgt=T\n"));
    }

    #[test]
    fn a_fill_past_its_bound_is_refused_before_anything_is_built() {
        let body = format!("#EXTM3U\n{}", "a\n".repeat(1000));
        let t = Template::parse(Bytes::from(body.clone())).unwrap();
        let whole = t.fill(&HOST, "lgt", "TOKEN", usize::MAX).unwrap();
        assert_eq!(whole.len(), body.len() + 1000 * "?lgt=TOKEN".len());
        assert_eq!(
            t.fill(&HOST, "lgt", "TOKEN", whole.len() - 1),
            Err(TooLarge(whole.len() - 1))
        );
        assert_eq!(t.fill(&HOST, "lgt", "TOKEN", whole.len()).unwrap(), whole);
    }
}

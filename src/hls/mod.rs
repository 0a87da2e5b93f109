//! HLS that plays through a signing edge: when a playlist passes its rule, every
//! URI in it gets a segment token ([`token`]) that opens that stream's files, so
//! players fetch segments and variant playlists — which carry no signature of their
//! own — with it ([`playlist`]). The proxy decides; this module does the work.

pub mod blocking;
pub mod playlist;
pub mod token;

use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;

use crate::config::HlsConfig;
pub use token::{Grant, Scope, Secret};

/// The token secret's file under `state_dir`.
pub const SECRET_FILE: &str = "hls.key";
/// The largest playlist rewritten, decoded (a day of 2 s segments is ~4 MB): a
/// larger one is refused with 502, whatever its size on the wire.
pub const MAX_PLAYLIST: usize = 4 << 20;
/// The largest playlist a viewer gets, tokens written in.
pub const MAX_REWRITTEN: usize = 8 << 20;

/// Extensions of what HLS players fetch: playlists, segments, init sections,
/// subtitles — what a segment token opens and the micro-cache keeps.
const OBJECTS: [&str; 8] = ["m3u8", "ts", "m4s", "aac", "mp4", "m4a", "m4v", "vtt"];

/// Whether a path's extension is an HLS object.
pub fn is_object(ext: &str) -> bool {
    OBJECTS.iter().any(|e| ext.eq_ignore_ascii_case(e))
}

/// Why a playlist was not passed on (the client gets 502; this goes to the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the playlist is over {MAX_PLAYLIST} bytes decoded")]
    TooLarge,
    #[error("the playlist rewritten would be over {MAX_REWRITTEN} bytes")]
    RewrittenTooLarge,
    #[error("the playlist's gzip body does not decode")]
    Undecodable,
}

/// One domain's segment authorisation.
#[derive(Debug, Clone)]
pub struct Hls {
    /// The query parameter that carries the token.
    pub token_param: Box<str>,
    /// Token lifetime for playlists whose URL does not expire.
    pub ttl: i64,
}

impl Hls {
    /// From configuration; `signs` is whether the domain has a pull rule that signs
    /// (the default for `rewrite`).
    pub fn new(cfg: Option<&HlsConfig>, signs: bool) -> Option<Hls> {
        let on = cfg.and_then(|c| c.rewrite).unwrap_or(signs);
        on.then(|| Hls {
            token_param: cfg.map_or("lgt", |c| c.token_param.as_str()).into(),
            ttl: cfg.map_or(3600, |c| c.token_ttl as i64),
        })
    }
}

/// Whether a response is a playlist: by the request's extension or its type.
pub fn is_playlist(ext: &str, content_type: Option<&str>) -> bool {
    ext.eq_ignore_ascii_case("m3u8")
        || content_type.is_some_and(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case("application/vnd.apple.mpegurl")
                || t.eq_ignore_ascii_case("application/x-mpegurl")
                || t.eq_ignore_ascii_case("audio/mpegurl")
        })
}

/// The edge's token secret: read from `dir/hls.key`, or created there (32 random
/// bytes, mode 0600, written durably) on first start, so tokens survive restarts
/// and upgrades.
pub fn load_secret(dir: &Path) -> std::io::Result<Secret> {
    let file = dir.join(SECRET_FILE);
    let read = |file: &Path| -> std::io::Result<Secret> {
        let bytes = std::fs::read(file)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            std::io::Error::other(format!(
                "{} is not 32 bytes: move it away to make a new one",
                file.display()
            ))
        })?;
        Ok(Secret::new(key))
    };
    match read(&file) {
        Ok(s) => return Ok(s),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    std::fs::create_dir_all(dir)?;
    let key = random_secret()?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".hls.key.")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(&key)?;
    tmp.as_file().sync_all()?;
    match tmp.persist_noclobber(&file) {
        Ok(_) => {
            std::fs::File::open(dir)?.sync_all()?;
            Ok(Secret::new(key))
        }
        // Another process made it first: use theirs.
        Err(_) => read(&file),
    }
}

/// 32 random bytes for a new token secret.
pub fn random_secret() -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

/// A buffer that refuses to grow past its bound (decoding never holds more than
/// [`MAX_PLAYLIST`], however well the origin's body compresses).
struct Capped {
    buf: Vec<u8>,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > MAX_PLAYLIST {
            self.over = true;
            return Err(std::io::Error::other("over the playlist bound"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capped {
    fn new() -> Capped {
        Capped {
            buf: Vec::new(),
            over: false,
        }
    }
}

/// A playlist body as received, decoded (gzip streamed through a bounded
/// buffer), for the micro-cache which holds it whole.
pub fn decode(raw: &[u8], gzip: bool) -> Result<Bytes, Refused> {
    let mut out = Capped::new();
    if !gzip {
        out.write_all(raw).map_err(|_| Refused::TooLarge)?;
        return Ok(Bytes::from(out.buf));
    }
    let mut d = flate2::write::GzDecoder::new(out);
    let written = d.write_all(raw).and_then(|_| d.try_finish());
    if d.get_ref().over {
        return Err(Refused::TooLarge);
    }
    written.map_err(|_| Refused::Undecodable)?;
    let out = d.finish().map_err(|_| Refused::Undecodable)?;
    Ok(Bytes::from(out.buf))
}

/// What one viewer's copy of a playlist gets: its token, under the domain's
/// parameter name, on the URIs that are ours for where it fetched the playlist.
pub struct Fill {
    token: String,
    param: Box<str>,
    host: String,
    port: u16,
    tls: bool,
}

impl Fill {
    /// `host_header` is the request's `Host`; `tls` whether it came over TLS.
    pub fn new(token: String, param: &str, host_header: &str, tls: bool) -> Fill {
        let host = crate::route::host_key(host_header).into_owned();
        let base = playlist::Base::of(host_header, &host, tls);
        Fill {
            port: base.port,
            token,
            param: param.into(),
            host,
            tls,
        }
    }

    /// The viewer's copy of a parsed playlist.
    pub fn apply(&self, t: &playlist::Template) -> Result<Bytes, Refused> {
        let base = playlist::Base {
            host: &self.host,
            port: self.port,
            tls: self.tls,
        };
        t.fill(&base, &self.param, &self.token, MAX_REWRITTEN)
            .map_err(|_| Refused::RewrittenTooLarge)
    }

    /// A whole decoded body: rewritten when it is a playlist, else as it came.
    pub fn body(&self, body: Bytes) -> Result<Bytes, Refused> {
        match playlist::Template::parse(body.clone()) {
            Some(t) => self.apply(&t),
            None => Ok(body),
        }
    }
}

/// One proxied playlist response being rewritten: its body is decoded as it
/// arrives (bounded) and held until it is whole.
pub struct Rewrite {
    fill: Fill,
    plain: Capped,
    gzip: Option<flate2::write::GzDecoder<Capped>>,
}

impl Rewrite {
    pub fn new(fill: Fill, gzip: bool) -> Rewrite {
        Rewrite {
            fill,
            plain: Capped::new(),
            gzip: gzip.then(|| flate2::write::GzDecoder::new(Capped::new())),
        }
    }

    /// Takes one chunk of the origin's body; what to send the client now (the
    /// whole rewritten playlist at the end), or why it is refused.
    pub fn push(&mut self, chunk: Option<Bytes>, end: bool) -> Result<Option<Bytes>, Refused> {
        if let Some(c) = chunk {
            let written = match self.gzip.as_mut() {
                Some(d) => d.write_all(&c),
                None => self.plain.write_all(&c),
            };
            if written.is_err() {
                let over = self
                    .gzip
                    .as_ref()
                    .map_or(self.plain.over, |d| d.get_ref().over);
                return Err(if over {
                    Refused::TooLarge
                } else {
                    Refused::Undecodable
                });
            }
        }
        if !end {
            return Ok(None);
        }
        let body = match self.gzip.take() {
            Some(d) => match d.finish() {
                Ok(c) => c.buf,
                Err(_) => return Err(Refused::Undecodable),
            },
            None => std::mem::take(&mut self.plain.buf),
        };
        self.fill.body(Bytes::from(body)).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_secret(dir.path()).unwrap();
        let b = load_secret(dir.path()).unwrap();
        let t = |s: &Secret| {
            s.mint(
                "d",
                crate::route::Scene::Pull,
                &Scope::of("/a/b.m3u8", false),
                Grant {
                    expiry: 9,
                    binds: Default::default(),
                },
                &Default::default(),
            )
        };
        assert_eq!(t(&a), t(&b));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(SECRET_FILE), b"short").unwrap();
        assert!(load_secret(dir.path()).is_err());
    }

    #[test]
    fn a_playlist_is_rewritten_whole_whatever_its_chunks() {
        let fill = || Fill::new("T".into(), "lgt", "h:8080", false);
        let mut r = Rewrite::new(fill(), false);
        assert_eq!(
            r.push(Some(Bytes::from_static(b"#EXTM3U\n#EXTINF:2,\nse")), false),
            Ok(None)
        );
        let out = r
            .push(Some(Bytes::from_static(b"g.ts\n")), true)
            .unwrap()
            .unwrap();
        assert_eq!(&out[..], b"#EXTM3U\n#EXTINF:2,\nseg.ts?lgt=T\n");
        let mut r = Rewrite::new(fill(), true);
        let out = r
            .push(Some(gzip(b"#EXTM3U\na.ts\n")), true)
            .unwrap()
            .unwrap();
        assert_eq!(&out[..], b"#EXTM3U\na.ts?lgt=T\n");
        let mut r = Rewrite::new(fill(), false);
        assert_eq!(
            &r.push(Some(Bytes::from_static(b"<html>")), true)
                .unwrap()
                .unwrap()[..],
            b"<html>"
        );
        let mut r = Rewrite::new(fill(), true);
        assert_eq!(
            r.push(Some(Bytes::from_static(b"not gzip at all")), true),
            Err(Refused::Undecodable)
        );
        assert!(is_playlist("M3U8", None));
        assert!(is_playlist(
            "php",
            Some("application/vnd.apple.mpegurl; charset=utf-8")
        ));
        assert!(!is_playlist("ts", Some("video/mp2t")));
    }

    fn gzip(body: &[u8]) -> Bytes {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(body).unwrap();
        Bytes::from(gz.finish().unwrap())
    }

    #[test]
    fn a_gzip_bomb_is_refused_without_being_held() {
        // 8 KB on the wire that would decode to 64 MB.
        let bomb = gzip(&vec![b'a'; 64 << 20]);
        assert!(bomb.len() < 128 << 10, "{}", bomb.len());
        let fill = || Fill::new("T".into(), "lgt", "h", false);
        let mut r = Rewrite::new(fill(), true);
        let mut refused = None;
        for piece in bomb.chunks(4096) {
            if let Err(e) = r.push(Some(Bytes::copy_from_slice(piece)), false) {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused, Some(Refused::TooLarge));
        assert!(r.gzip.as_ref().unwrap().get_ref().buf.len() <= MAX_PLAYLIST);
        assert_eq!(decode(&bomb, true), Err(Refused::TooLarge));
        assert_eq!(
            decode(&vec![b'a'; MAX_PLAYLIST + 1], false),
            Err(Refused::TooLarge)
        );
        assert_eq!(
            &decode(&gzip(b"#EXTM3U\n"), true).unwrap()[..],
            b"#EXTM3U\n"
        );
    }

    #[test]
    fn a_playlist_that_rewrites_past_the_bound_is_refused() {
        // Short lines, each a URI: the tokens would multiply it.
        let body = format!("#EXTM3U\n{}", "a\n".repeat(MAX_PLAYLIST / 2 - 8));
        let token = "x".repeat(60);
        let mut r = Rewrite::new(Fill::new(token, "lgt", "h", false), false);
        assert_eq!(
            r.push(Some(Bytes::from(body)), true),
            Err(Refused::RewrittenTooLarge)
        );
    }
}

//! HLS that plays through a signing edge: when a playlist passes its rule, every
//! URI in it gets a segment token ([`token`]) that opens that stream's files, so
//! players fetch segments and variant playlists — which carry no signature of their
//! own — with it ([`playlist`]). The proxy decides; this module does the work.

pub mod playlist;
pub mod token;

use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;

use crate::config::HlsConfig;
pub use token::{Scope, Secret};

/// The token secret's file under `state_dir`.
pub const SECRET_FILE: &str = "hls.key";
/// Playlists larger than this are passed on unchanged (never truncated).
const MAX_PLAYLIST: usize = 4 << 20;

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

/// One playlist response being rewritten: its body is held until it is whole.
pub struct Rewrite {
    token: String,
    param: Box<str>,
    host: String,
    gzip: bool,
    body: Vec<u8>,
    /// Over [`MAX_PLAYLIST`]: everything passes through unchanged.
    passing: bool,
}

impl Rewrite {
    pub fn new(token: String, param: &str, host: &str, gzip: bool) -> Rewrite {
        Rewrite {
            token,
            param: param.into(),
            host: host.to_owned(),
            gzip,
            body: Vec::new(),
            passing: false,
        }
    }

    /// Takes one chunk of the origin's body; what to send the client now.
    pub fn push(&mut self, chunk: Option<Bytes>, end: bool) -> Option<Bytes> {
        if self.passing {
            return chunk;
        }
        if let Some(c) = chunk {
            self.body.extend_from_slice(&c);
        }
        if self.body.len() > MAX_PLAYLIST {
            log::warn!("a playlist over {MAX_PLAYLIST} bytes is passed on without segment tokens");
            self.passing = true;
            return Some(Bytes::from(std::mem::take(&mut self.body)));
        }
        end.then(|| self.finish())
    }

    /// The whole body, rewritten when it is a playlist, else as it came.
    fn finish(&mut self) -> Bytes {
        let raw = std::mem::take(&mut self.body);
        let rewrite = |text: &str| playlist::rewrite(text, &self.host, &self.param, &self.token);
        if self.gzip {
            // The encoding header is gone: what goes out is the decoded body,
            // rewritten when it is a playlist.
            let mut text = String::new();
            if flate2::read::GzDecoder::new(&raw[..])
                .read_to_string(&mut text)
                .is_err()
            {
                log::warn!("a gzip playlist that does not decode is passed on as it came");
                return Bytes::from(raw);
            }
            return Bytes::from(rewrite(&text).unwrap_or(text));
        }
        match std::str::from_utf8(&raw).ok().and_then(rewrite) {
            Some(p) => Bytes::from(p),
            // Not a playlist after all: unchanged.
            None => Bytes::from(raw),
        }
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
                9,
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
        let mut r = Rewrite::new("T".into(), "lgt", "h", false);
        assert_eq!(
            r.push(Some(Bytes::from_static(b"#EXTM3U\n#EXTINF:2,\nse")), false),
            None
        );
        let out = r.push(Some(Bytes::from_static(b"g.ts\n")), true).unwrap();
        assert_eq!(&out[..], b"#EXTM3U\n#EXTINF:2,\nseg.ts?lgt=T\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"#EXTM3U\na.ts\n").unwrap();
        let mut r = Rewrite::new("T".into(), "lgt", "h", true);
        let out = r
            .push(Some(Bytes::from(gz.finish().unwrap())), true)
            .unwrap();
        assert_eq!(&out[..], b"#EXTM3U\na.ts?lgt=T\n");
        let mut r = Rewrite::new("T".into(), "lgt", "h", false);
        assert_eq!(
            &r.push(Some(Bytes::from_static(b"<html>")), true).unwrap()[..],
            b"<html>"
        );
        assert!(is_playlist("M3U8", None));
        assert!(is_playlist(
            "php",
            Some("application/vnd.apple.mpegurl; charset=utf-8")
        ));
        assert!(!is_playlist("ts", Some("video/mp2t")));
    }
}

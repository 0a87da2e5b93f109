//! What the HLS micro-cache keeps and for how long: pure, bytes and headers in,
//! an answer out.

use std::time::Duration;

use pingora_http::ResponseHeader;

/// Longest a playlist is kept: never stale enough to stall a player.
const MAX_PLAYLIST_TTL: Duration = Duration::from_secs(1);

/// Whether an answer may be kept and served to every viewer: a 200 that the
/// origin does not forbid caching, that sets no cookie (one viewer's cookie must
/// never reach another) and that varies on no request header the key does not
/// hold. The key holds none: a fill sends no `Accept-Encoding` and livegate
/// answers CORS itself, so `Vary: Accept-Encoding, Origin` is harmless and any
/// other `Vary` (`Cookie`, `User-Agent`, `*`) is not stored.
pub fn shareable(head: &ResponseHeader) -> bool {
    head.status.as_u16() == 200 && shared_safe(head)
}

/// Whether the answer to a blocking playlist request (LL-HLS) may be shared by
/// every viewer that asked the same segment and part: whatever its status — the
/// origin's 400 for a part too far ahead, or its 503, is the same for all of
/// them, and is kept briefly so that they do not each ask again.
pub fn shareable_blocking(head: &ResponseHeader) -> bool {
    shared_safe(head)
}

/// Neither forbidden to cache, nor carrying a cookie, nor varying on a request
/// header the key does not hold.
fn shared_safe(head: &ResponseHeader) -> bool {
    let harmless = |name: &str| {
        name.eq_ignore_ascii_case("accept-encoding") || name.eq_ignore_ascii_case("origin")
    };
    !forbidden(head)
        && !head.headers.contains_key(http::header::SET_COOKIE)
        && head.headers.get_all(http::header::VARY).iter().all(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .all(|n| n.is_empty() || harmless(n))
            })
        })
}

/// `target` (path and query) without the query parameters named in `names`
/// (compared decoded): what a shared fill asks and is keyed by.
pub fn without_params<'a>(target: &'a str, names: &[String]) -> std::borrow::Cow<'a, str> {
    let Some((path, query)) = target.split_once('?').filter(|_| !names.is_empty()) else {
        return target.into();
    };
    match crate::sign::query::without(query, names) {
        std::borrow::Cow::Borrowed(_) => target.into(),
        std::borrow::Cow::Owned(q) if q.is_empty() => path.to_owned().into(),
        std::borrow::Cow::Owned(q) => format!("{path}?{q}").into(),
    }
}

/// A head without the cookies the origin set (what requests following another
/// request's fill get).
pub fn without_cookies(head: &ResponseHeader) -> ResponseHeader {
    let mut head = head.clone();
    head.remove_header(&http::header::SET_COOKIE);
    head
}

/// Whether the origin forbids caching this answer (`Cache-Control: no-store`
/// or `private`, `Pragma: no-cache` being advice for requests, not answers).
pub fn forbidden(head: &ResponseHeader) -> bool {
    head.headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().split('=').next().unwrap_or("").trim())
        .any(|d| d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("private"))
}

/// How long to keep the answer to a blocking playlist request: it is the
/// playlist as of that segment and part, so the origin's `s-maxage` or `max-age`
/// is honoured (at most [`MAX_BLOCKING_TTL`]); without one, as any playlist. An
/// error answer is kept [`BLOCKING_ERROR_TTL`]. Never less than
/// [`MIN_SHARED_TTL`]: the requests waiting on the fill must still find it.
pub fn blocking_ttl(head: &ResponseHeader, body: &[u8]) -> Duration {
    let ttl = match head.status.as_u16() {
        200 => max_age(head).unwrap_or_else(|| playlist_ttl(body)),
        _ => BLOCKING_ERROR_TTL,
    };
    ttl.clamp(MIN_SHARED_TTL, MAX_BLOCKING_TTL)
}

/// Longest a blocking playlist answer is kept, whatever its `max-age`.
pub const MAX_BLOCKING_TTL: Duration = Duration::from_secs(60);
/// How long an error answer to a blocking request is shared.
pub const BLOCKING_ERROR_TTL: Duration = Duration::from_millis(500);
/// Shortest a shared answer lives: long enough for the requests that waited on
/// its fill to be served from it.
pub const MIN_SHARED_TTL: Duration = Duration::from_millis(500);

/// The `s-maxage` (shared caches first) or else `max-age` of an answer.
fn max_age(head: &ResponseHeader) -> Option<Duration> {
    let directives: Vec<(String, Option<u64>)> = head
        .headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            let (name, value) = d.split_once('=').unwrap_or((d, ""));
            let value = value.trim().trim_matches('"').parse::<u64>().ok();
            (name.trim().to_ascii_lowercase(), value)
        })
        .collect();
    let find = |n: &str| directives.iter().find(|(d, _)| d == n).and_then(|d| d.1);
    find("s-maxage")
        .or_else(|| find("max-age"))
        .map(Duration::from_secs)
}

/// A playlist's `EXT-X-TARGETDURATION`: how long an LL-HLS origin may hold a
/// blocking request for it (three of them) is derived from it.
pub fn target_duration(body: &[u8]) -> Option<Duration> {
    body.split(|&b| b == b'\n')
        .filter_map(|l| l.strip_prefix(b"#EXT-X-TARGETDURATION:"))
        .filter_map(|v| std::str::from_utf8(v).ok())
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .find(|v| v.is_finite() && *v > 0.0 && *v < 3600.0)
        .map(Duration::from_secs_f64)
}

/// How long to keep a playlist: half its `EXT-X-TARGETDURATION`, at most 1 s
/// (1 s when it has none).
pub fn playlist_ttl(body: &[u8]) -> Duration {
    match target_duration(body) {
        Some(t) => (t / 2).min(MAX_PLAYLIST_TTL),
        None => MAX_PLAYLIST_TTL,
    }
}

/// A `Range` header that no byte of the object satisfies (answered 416).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A byte range of a `len`-byte object asked by a `Range` header: `Ok(None)`
/// for the whole object (no header, or one we do not serve partially: several
/// ranges), `Err` when it cannot be satisfied (416).
pub fn range(header: Option<&str>, len: usize) -> Result<Option<(usize, usize)>, Unsatisfiable> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') || len == 0 {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: usize = b.parse().map_err(|_| Unsatisfiable)?;
            if n == 0 {
                return Err(Unsatisfiable);
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let start: usize = a.parse().map_err(|_| Unsatisfiable)?;
            let end = match b.is_empty() {
                true => len - 1,
                false => b.parse::<usize>().map_err(|_| Unsatisfiable)?.min(len - 1),
            };
            (start, end)
        }
        (true, true) => return Err(Unsatisfiable),
    };
    if start > end || start >= len {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_params_leave_the_key_and_the_fill() {
        let names = vec!["session".to_owned(), "ctx".to_owned()];
        let cases = [
            ("/live/a-1.ts?session=x1", "/live/a-1.ts"),
            ("/live/a-1.ts?q=1&session=x1&r=2", "/live/a-1.ts?q=1&r=2"),
            ("/live/a-1.ts?sess%69on=x1&q=1", "/live/a-1.ts?q=1"),
            ("/live/a-1.ts?sessions=1", "/live/a-1.ts?sessions=1"),
            ("/live/a-1.ts", "/live/a-1.ts"),
            ("/live/a-1.ts?ctx=1&session=2", "/live/a-1.ts"),
        ];
        for (target, kept) in cases {
            assert_eq!(without_params(target, &names), kept, "{target}");
        }
        assert_eq!(without_params("/a?session=1", &[]), "/a?session=1");
    }

    #[test]
    fn playlists_live_half_their_target_duration_at_most_a_second() {
        let ttl = |b: &str| playlist_ttl(b.as_bytes());
        assert_eq!(
            ttl("#EXTM3U\n#EXT-X-TARGETDURATION:1\n"),
            Duration::from_millis(500)
        );
        assert_eq!(
            ttl("#EXTM3U\n#EXT-X-TARGETDURATION:6\n"),
            Duration::from_secs(1)
        );
        assert_eq!(ttl("#EXTM3U\n"), Duration::from_secs(1));
        assert_eq!(ttl("#EXT-X-TARGETDURATION:-3\n"), Duration::from_secs(1));
    }

    #[test]
    fn blocking_answers_live_their_max_age() {
        let head = |status: u16, cc: Option<&str>| {
            let mut h = ResponseHeader::build(status, None).unwrap();
            if let Some(cc) = cc {
                h.insert_header("cache-control", cc).unwrap();
            }
            h
        };
        let body = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n";
        let ttl = |s, cc| blocking_ttl(&head(s, cc), body);
        assert_eq!(ttl(200, Some("public, max-age=6")), Duration::from_secs(6));
        assert_eq!(
            ttl(200, Some("max-age=6, s-maxage=12")),
            Duration::from_secs(12)
        );
        assert_eq!(ttl(200, Some("max-age=86400")), MAX_BLOCKING_TTL);
        assert_eq!(ttl(200, Some("max-age=0")), MIN_SHARED_TTL);
        assert_eq!(ttl(200, None), Duration::from_secs(1));
        assert_eq!(ttl(503, Some("max-age=60")), BLOCKING_ERROR_TTL);
        assert!(shareable_blocking(&head(503, None)));
        assert!(!shareable_blocking(&head(200, Some("no-store"))));
        assert_eq!(target_duration(body), Some(Duration::from_secs(4)));
        assert_eq!(target_duration(b"#EXTM3U\n"), None);
    }

    #[test]
    fn no_store_and_private_are_honoured() {
        let mut h = ResponseHeader::build(200, None).unwrap();
        assert!(!forbidden(&h));
        h.insert_header("cache-control", "public, max-age=5")
            .unwrap();
        assert!(!forbidden(&h));
        h.insert_header("cache-control", "max-age=5, No-Store")
            .unwrap();
        assert!(forbidden(&h));
        h.insert_header("cache-control", "private=\"x\"").unwrap();
        assert!(forbidden(&h));
    }

    #[test]
    fn cookies_and_varying_answers_are_not_shared() {
        let head = |extra: &[(&str, &str)]| {
            let mut h = ResponseHeader::build(200, None).unwrap();
            for (k, v) in extra {
                h.append_header(k.to_string(), *v).unwrap();
            }
            h
        };
        assert!(shareable(&head(&[])));
        assert!(shareable(&head(&[("vary", "Accept-Encoding, Origin")])));
        assert!(!shareable(&head(&[("set-cookie", "s=1")])));
        assert!(!shareable(&head(&[("vary", "Cookie")])));
        assert!(!shareable(&head(&[("vary", "origin"), ("vary", "*")])));
        assert!(!shareable(&head(&[("cache-control", "private")])));
        assert!(!shareable(&ResponseHeader::build(404, None).unwrap()));
        let h = without_cookies(&head(&[("set-cookie", "s=1"), ("set-cookie", "t=2")]));
        assert!(!h.headers.contains_key("set-cookie"));
    }

    #[test]
    fn ranges() {
        assert_eq!(range(None, 10), Ok(None));
        assert_eq!(range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(range(Some("bytes=-4"), 10), Ok(Some((6, 9))));
        assert_eq!(range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(range(Some("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(range(Some("bytes=10-"), 10), Err(Unsatisfiable));
        assert_eq!(range(Some("bytes=4-2"), 10), Err(Unsatisfiable));
        assert_eq!(range(Some("bytes=x-2"), 10), Err(Unsatisfiable));
        assert_eq!(range(Some("bytes=-0"), 10), Err(Unsatisfiable));
    }
}

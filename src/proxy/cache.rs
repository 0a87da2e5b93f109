//! The proxy's side of the HLS micro-cache: which admitted requests are served
//! from it, how a fill asks the origin, and how a cached object is answered —
//! a playlist rewritten with this viewer's token, a `Range` cut from the whole.
//! The cache itself is [`crate::cache`].

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora_cache::CacheKey;
use pingora_core::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::{Ctx, Gate};
use crate::admission::Door;
use crate::cache::{self, policy, Feed, Fetched, Following, Got, Object};
use crate::hls::{self, blocking, playlist::Template};

impl Gate {
    /// An admitted `GET` or `HEAD` of an HLS object on a domain with the cache is answered
    /// from it; `None` for every other request (and when the auth server asked for
    /// headers to pass to the origin: a shared object cannot carry them).
    pub(super) async fn serve_cached(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Option<Result<bool>> {
        let d = ctx.domain?;
        let site = ctx.site.as_ref()?;
        let door = ctx.door.clone()?;
        let cache = site.cache.as_ref()?;
        let req = session.req_header();
        if !ctx.hls {
            return None;
        }
        // A `HEAD` is answered from the object a `GET` fills, as nginx's
        // `proxy_cache_convert_head` does.
        let (host, target) = self.asked_upstream(req, ctx, true)?;
        let target = policy::without_params(&target, &site.ignore_params);
        let path = target.split('?').next().unwrap_or("");
        let playlist = path.to_ascii_lowercase().ends_with(".m3u8");
        // Unambiguous: neither a Host nor a canonical target holds a NUL. A
        // playlist's target duration is remembered by its path.
        let stream_key = playlist.then(|| CacheKey::new(format!("{d}\0{host}\0{path}"), ""));
        let (target, directives) = match blocking::canonical(&target) {
            Ok((t, d)) => (t.into_owned(), d),
            Err(why) => {
                let shown = self.shown(req);
                log::info!("{shown}: {why}; answered 400");
                return Some(session.respond_error(400).await.map(|_| true));
            }
        };
        let hold = stream_key
            .as_ref()
            .filter(|_| directives.blocks())
            .map(|k| cache.hold(k));
        let key = CacheKey::new(format!("{d}\0{host}\0{target}"), "");
        let ranged = req.headers.contains_key(http::header::RANGE);
        // A fill runs as its own task: if the client that started it goes away,
        // the requests following it still get every byte.
        let live = self.admission.live.load();
        let shown = live.redact.url(&target);
        // Parsed for rewriting whenever the domain writes tokens into playlists,
        // whoever fills it: a viewer on a cookie token needs none, the next one
        // on a signed URL does.
        let rewrite = live
            .table
            .domains()
            .get(d)
            .is_some_and(|dm| dm.hls.is_some());
        drop(live);
        let fill = |feed| {
            let asked = Asked {
                origin: site.origin.clone(),
                metrics: door.metrics.clone(),
                hash_key: ctx.hash_key.clone(),
                host: host.clone(),
                target: target.clone(),
                shown: shown.clone(),
                playlist,
                rewrite,
                strip_cookies: site.strip_cookies,
                hold,
            };
            let task = tokio::spawn(fill(asked, feed));
            let (cache, stream_key) = (cache.clone(), stream_key.clone());
            async move {
                let fetched = task.await.unwrap_or(Fetched::Failed(502));
                if let (Fetched::Keep(o) | Fetched::Pass(o), Some(k)) = (&fetched, &stream_key) {
                    if let Some(t) = policy::target_duration(&o.body) {
                        cache.set_target(k, t);
                    }
                }
                fetched
            }
        };
        // The access log names the origin peer of the fill a request got (not
        // of a hit: the cache served that).
        let (served, peer) = match cache.get(&key, !playlist && !ranged, fill).await {
            Got::Object(object, status) => {
                door.metrics.cache(status.index());
                let peer = object.peer.filter(|_| status != cache::Status::Hit);
                let served = self
                    .answer(session, ctx, &door, &object, playlist, status)
                    .await;
                (served, peer)
            }
            Got::Following(f) => {
                door.metrics.cache(cache::Status::Following.index());
                let progress = f.0.clone();
                let served = self.follow(session, ctx, &door, f).await;
                let peer = progress.borrow().peer;
                (served, peer)
            }
            Got::Failed(code) => (session.respond_error(code).await.map(|_| true), None),
        };
        ctx.peer = peer.or(ctx.peer);
        Some(served)
    }

    /// Streams another request's fill to this client as it arrives.
    async fn follow(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        door: &Door,
        Following(mut progress): Following,
    ) -> Result<bool> {
        let head = match progress
            .wait_for(|p| p.head.is_some() || p.end.is_some())
            .await
        {
            Ok(p) => p.head.clone(),
            Err(_) => None,
        };
        let Some(mut head) = head else {
            session.respond_error(502).await?;
            return Ok(true);
        };
        if session.req_header().version == http::Version::HTTP_11 {
            head.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        head.insert_header("x-cache", cache::Status::Following.as_str())?;
        self.cors_headers(&mut head, ctx)?;
        session.write_response_header(Box::new(head), false).await?;
        let mut sent = 0;
        loop {
            let (chunks, end) = {
                let p = progress.borrow_and_update();
                (p.chunks[sent.min(p.chunks.len())..].to_vec(), p.end)
            };
            sent += chunks.len();
            for c in chunks {
                let n = c.len();
                session.write_response_body(Some(c), false).await?;
                door.metrics.sent.inc_by(n as u64);
                if let Some(t) = &ctx.ticket {
                    t.sent(n);
                }
            }
            match end {
                Some(true) => {
                    session.write_response_body(None, true).await?;
                    return Ok(true);
                }
                Some(false) => {
                    return pingora_core::Error::e_explain(
                        pingora_core::ErrorType::Custom("fill failed"),
                        "the origin fetch this request followed failed",
                    )
                }
                None if progress.changed().await.is_err() => {
                    return pingora_core::Error::e_explain(
                        pingora_core::ErrorType::Custom("fill failed"),
                        "the origin fetch this request followed ended",
                    )
                }
                None => {}
            }
        }
    }

    /// Writes a cached (or passed) object to the client.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        door: &Door,
        object: &Object,
        playlist: bool,
        status: cache::Status,
    ) -> Result<bool> {
        let mut head = object.head.clone();
        let mut body = object.body.clone();
        let template = object.template.as_ref().filter(|_| playlist);
        if let (Some(t), Some(grant), Some(d)) = (template, ctx.playlist, ctx.domain) {
            let req = session.req_header();
            match self.fill(req, ctx, d, grant).map(|f| f.apply(t)) {
                Some(Ok(rewritten)) => body = rewritten,
                Some(Err(why)) => {
                    self.refuse_playlist(session, ctx, &why);
                    session.respond_error(502).await?;
                    return Ok(true);
                }
                None => {}
            }
        }
        let range = session
            .req_header()
            .headers
            .get(http::header::RANGE)
            .and_then(|v| v.to_str().ok());
        if head.status.as_u16() == 200 {
            match policy::range(range, body.len()) {
                Ok(None) => {}
                Ok(Some((a, b))) => {
                    head.set_status(206)?;
                    head.insert_header(
                        http::header::CONTENT_RANGE,
                        format!("bytes {a}-{b}/{}", body.len()),
                    )?;
                    body = body.slice(a..=b);
                }
                Err(policy::Unsatisfiable) => {
                    let mut r = ResponseHeader::build(416, None)?;
                    r.insert_header(
                        http::header::CONTENT_RANGE,
                        format!("bytes */{}", body.len()),
                    )?;
                    r.insert_header(http::header::CONTENT_LENGTH, "0")?;
                    session.write_response_header(Box::new(r), true).await?;
                    return Ok(true);
                }
            }
            head.insert_header(http::header::ACCEPT_RANGES, "bytes")?;
        }
        head.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        head.insert_header("x-cache", status.as_str())?;
        self.cors_headers(&mut head, ctx)?;
        let n = body.len();
        // The whole object, unchanged, from its sealed file when the client's
        // socket allows it (a `HEAD` gets no body); else through Pingora's session.
        let get = session.req_header().method == http::Method::GET;
        let file = object
            .file
            .as_ref()
            .filter(|_| get && n == object.body.len());
        let sent = match file.zip(crate::sendfile::socket(session)) {
            Some((file, sock)) => send_file(session, sock, ctx, &mut head, file.file(), n).await,
            None => None,
        };
        let n = match sent {
            Some(n) => n,
            None => {
                session.write_response_header(Box::new(head), false).await?;
                session.write_response_body(Some(body), true).await?;
                // Pingora sends no body for a `HEAD`.
                if get {
                    n
                } else {
                    0
                }
            }
        };
        door.metrics.sent.inc_by(n as u64);
        if let Some(t) = &ctx.ticket {
            t.sent(n);
        }
        Ok(true)
    }
}

/// Writes `head` and `file` to the client's socket with `sendfile`; the body
/// bytes sent, or `None` (nothing sent) when the head cannot be written that
/// way. A client that leaves mid-body is logged and its connection shut: the
/// response is over either way.
async fn send_file(
    session: &Session,
    sock: std::os::fd::BorrowedFd<'_>,
    ctx: &mut Ctx,
    head: &mut ResponseHeader,
    file: &std::fs::File,
    len: usize,
) -> Option<usize> {
    let keepalive = session.as_http1().is_some_and(|s| s.will_keepalive());
    let wire = crate::sendfile::head_bytes(head, keepalive).ok()?;
    let sent = match crate::sendfile::send(sock, &wire, file, len as u64).await {
        Ok(n) => n,
        Err(stopped) => {
            log::info!(
                "{}: the client left during a cached segment: {stopped}",
                ctx.client_ip.as_str()
            );
            let _ = rustix::net::shutdown(sock, rustix::net::Shutdown::Both);
            stopped.sent
        }
    } as usize;
    ctx.answered = Some((head.status.as_u16(), sent));
    Some(sent)
}

/// What a fill asks, and of whom.
struct Asked {
    origin: Arc<crate::origin::Origin>,
    metrics: crate::metrics::DomainMetrics,
    hash_key: String,
    host: String,
    target: String,
    /// The target as log lines name it (redacted).
    shown: String,
    /// A playlist: held whole, decoded, kept briefly.
    playlist: bool,
    /// Its viewers get tokens written in: parsed once into a template.
    rewrite: bool,
    /// Cache an answer with `Set-Cookie` without it.
    strip_cookies: bool,
    /// A blocking playlist request (LL-HLS): how long the origin may hold it.
    hold: Option<Duration>,
}

/// Asks the origin for an object; a blocking playlist request no longer than
/// the origin may hold it, then 503 for every viewer waiting on it (the LL-HLS
/// spec's answer when the part does not come within three target durations).
async fn fill(asked: Asked, feed: Feed) -> Fetched {
    let Some(hold) = asked.hold else {
        return fetch(asked, feed).await;
    };
    let shown = asked.shown.clone();
    match tokio::time::timeout(hold, fetch(asked, feed)).await {
        Ok(fetched) => fetched,
        Err(_) => {
            log::info!(
                "blocking playlist {shown}: the origin did not answer within {} ms (three target durations); answered 503",
                hold.as_millis()
            );
            let mut head = match ResponseHeader::build(503, Some(1)) {
                Ok(h) => h,
                Err(_) => return Fetched::Failed(503),
            };
            let _ = head.insert_header(http::header::CACHE_CONTROL, "no-cache");
            let object = cache::object(head, Bytes::new(), None);
            Fetched::Keep(object.kept(Some(policy::BLOCKING_ERROR_TTL)))
        }
    }
}

/// Asks the origin for an object, whole — reporting its progress to `feed` for
/// requests that follow it: kept when it may be shared, passed otherwise.
async fn fetch(asked: Asked, mut feed: Feed) -> Fetched {
    let Asked {
        origin,
        metrics,
        hash_key,
        host,
        target,
        shown,
        playlist,
        rewrite,
        strip_cookies,
        hold,
    } = asked;
    let asked = origin
        .request(&hash_key, &host, &target, "livegate-cache", hold)
        .await;
    let (mut http, peer) = match asked {
        Ok(h) => h,
        Err(why) => {
            log::warn!("cache fill of {shown}: {why}");
            metrics.upstream_status(502);
            return Fetched::Failed(502);
        }
    };
    let Some(resp) = http.response_header() else {
        return Fetched::Failed(502);
    };
    metrics.upstream_status(resp.status.as_u16());
    let mut head = crate::origin::end_to_end(resp);
    if strip_cookies {
        head.remove_header(&http::header::SET_COOKIE);
    }
    // Followers never get a cookie the origin set for this one fill.
    feed.head(&policy::without_cookies(&head), peer);
    let limit = match playlist {
        true => hls::MAX_PLAYLIST,
        false => cache::MAX_OBJECT,
    };
    let mut body = BytesMut::new();
    loop {
        match http.read_response_body().await {
            Ok(Some(b)) => {
                feed.chunk(&b);
                body.extend_from_slice(&b);
                if body.len() > limit {
                    log::warn!("cache fill of {shown}: over {limit} bytes; answered 502");
                    return Fetched::Failed(502);
                }
            }
            Ok(None) => break,
            Err(e) => {
                log::warn!("cache fill of {shown}: {e}");
                return Fetched::Failed(502);
            }
        }
    }
    feed.done();
    let mut body: Bytes = body.freeze();
    let mut template = None;
    if playlist && head.status.as_u16() == 200 {
        let encoding = head
            .headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let gzip = match encoding.as_deref() {
            None | Some("identity") => Some(false),
            Some("gzip") => Some(true),
            Some(_) => None,
        };
        if let Some(gzip) = gzip {
            body = match hls::decode(&body, gzip) {
                Ok(b) => b,
                Err(why) => {
                    log::warn!("cache fill of {shown}: {why}; answered 502");
                    return Fetched::Failed(502);
                }
            };
            head.remove_header(&http::header::CONTENT_ENCODING);
            template = rewrite.then(|| Template::parse(body.clone())).flatten();
        }
    }
    // The answer to a blocking request is the playlist as of one part: the same
    // for every viewer that asked it, errors included.
    let (keep, ttl) = match (playlist, hold.is_some()) {
        (true, true) => (
            policy::shareable_blocking(&head),
            Some(policy::blocking_ttl(&head, &body)),
        ),
        (true, false) => (policy::shareable(&head), Some(policy::playlist_ttl(&body))),
        (false, _) => (policy::shareable(&head), None),
    };
    let mut object = cache::object(head, body, template);
    object.peer = Some(peer);
    match keep {
        true if !playlist => Fetched::Keep(object.sealed().kept(ttl)),
        true => Fetched::Keep(object.kept(ttl)),
        false => Fetched::Pass(object.kept(None)),
    }
}

/// The cache of a domain's configuration.
pub fn for_domain(cfg: &crate::config::CacheConfig) -> Option<Arc<cache::Cache>> {
    cfg.enabled
        .then(|| Arc::new(cache::Cache::new(cfg.max_bytes)))
}

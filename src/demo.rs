//! `livegate demo-origin`: a live origin with real media, so that a newcomer can
//! watch livegate work with one command. A 4-second H.264/AAC test pattern (made by
//! `scripts/make-demo-media.sh`, embedded in the binary) is served as an endless
//! HTTP-FLV stream (`*.flv`, timestamps increasing loop after loop, paced in real
//! time) and as a live HLS stream (`*.m3u8`, a sliding playlist of real MPEG-TS
//! segments `<stream>-<n>.ts`, each loop's timestamps moved on by [`ts::shift`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;

use crate::media::{flv, ts};
use crate::route::Route;

/// The demo origin application.
pub struct DemoOrigin;

/// The FLV clip: 4 s of 320x180 test pattern and a 440 Hz tone, keyframes every 2 s.
pub const CLIP: &[u8] = include_bytes!("../assets/demo.flv");
/// The same clip as two 2-second MPEG-TS segments.
const SEGMENTS: [&[u8]; 2] = [
    include_bytes!("../assets/demo-0.ts"),
    include_bytes!("../assets/demo-1.ts"),
];
/// HLS target duration and playlist window.
const SEGMENT_SECS: u64 = 2;
const WINDOW: u64 = 3;
/// How far ahead of real time FLV tags are sent (players start at once), and how
/// often the stream wakes up.
const LEAD_MS: u64 = 500;
const TICK: Duration = Duration::from_millis(40);

/// The clip, split for looping.
struct Clip {
    /// FLV header, metadata and sequence headers: sent once, at timestamp 0.
    prelude: Vec<u8>,
    /// Media tags: (kind, timestamp, payload).
    media: Vec<(u8, u32, &'static [u8])>,
    /// One loop's length in milliseconds.
    period: u32,
}

static LOOP: LazyLock<Option<Clip>> = LazyLock::new(|| {
    let tags = flv::parse(CLIP).ok()?;
    let mut prelude = flv::HEADER.to_vec();
    let mut media = Vec::new();
    for t in &tags {
        if t.is_end_of_sequence() {
            // A loop must not tell the decoder that the stream ended.
            continue;
        }
        if t.kind == flv::SCRIPT || t.is_sequence_header() {
            flv::write_tag(&mut prelude, t.kind, 0, t.data);
        } else {
            media.push((t.kind, t.timestamp, t.data));
        }
    }
    let video: Vec<u32> = media
        .iter()
        .filter(|m| m.0 == flv::VIDEO)
        .map(|m| m.1)
        .collect();
    let frame = match video.as_slice() {
        [.., a, b] => b - a,
        _ => 40,
    };
    // From the first frame to the end of the last: the encoder's delay before the
    // first frame is kept, and audio past the loop's end is dropped so that
    // timestamps keep increasing across loops.
    let period = video.last().copied().unwrap_or(0) - video.first().copied().unwrap_or(0) + frame;
    media.retain(|m| m.1 < period);
    (!media.is_empty()).then_some(Clip {
        prelude,
        media,
        period,
    })
});

fn header(status: u16, content_type: &str, len: Option<usize>) -> Option<Box<ResponseHeader>> {
    let mut h = ResponseHeader::build(status, None).ok()?;
    h.insert_header("content-type", content_type).ok()?;
    match len {
        Some(n) => h.insert_header("content-length", n.to_string()).ok()?,
        None => h.insert_header("transfer-encoding", "chunked").ok()?,
    }
    h.insert_header("server", "livegate-demo-origin").ok()?;
    Some(Box::new(h))
}

/// A sliding live playlist: the last `WINDOW` segments of a timeline that started
/// at the Unix epoch.
fn playlist(stream: &str, now: u64) -> String {
    let last = now / SEGMENT_SECS;
    let first = last.saturating_sub(WINDOW);
    let mut p = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{SEGMENT_SECS}\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for n in first..last {
        p.push_str(&format!("#EXTINF:{SEGMENT_SECS}.000,\n{stream}-{n}.ts\n"));
    }
    p
}

/// Each segment's continuity counters per PID (first, count).
static COUNTERS: LazyLock<[HashMap<u16, (u8, u64)>; 2]> =
    LazyLock::new(|| SEGMENTS.map(ts::counters));

/// Segment `<stream>-<n>.ts`, if the name carries a number: clip part `n % 2` moved
/// to loop `n / 2` — timestamps later by the loops before it, continuity counters
/// on from where the previous segment left them — so the stream never jumps back.
fn segment(stream: &str) -> Option<Vec<u8>> {
    let n: u64 = stream.rsplit_once('-')?.1.parse().ok()?;
    let (part, lap) = ((n % 2) as usize, n / 2);
    let loop_ticks = SEGMENT_SECS * SEGMENTS.len() as u64 * 90_000;
    let counters = &*COUNTERS;
    let advance = |pid: u16| -> u8 {
        let count = |i: usize| counters[i].get(&pid).map_or(0, |c| c.1);
        let first = |i: usize| counters[i].get(&pid).map_or(0, |c| c.0);
        let before: u64 = (0..part).map(count).sum();
        let wanted = u64::from(first(0)) + lap * (count(0) + count(1)) + before;
        (wanted.wrapping_sub(u64::from(first(part))) & 0x0f) as u8
    };
    Some(ts::shift(SEGMENTS[part], lap * loop_ticks, advance))
}

async fn respond(
    mut s: ServerSession,
    status: u16,
    ctype: &str,
    body: Vec<u8>,
) -> Option<ReusedHttpStream> {
    let head = s.req_header().method == http::Method::HEAD;
    s.write_response_header(header(status, ctype, Some(body.len()))?)
        .await
        .ok()?;
    if !head {
        s.write_response_body(Bytes::from(body), true).await.ok()?;
    }
    let settings = HttpPersistentSettings::for_session(&s);
    let reusable = s.finish().await.ok()??;
    Some(ReusedHttpStream::from_reusable_stream(reusable, settings))
}

async fn endless_flv(mut s: ServerSession, shutdown: &ShutdownWatch) -> Option<ReusedHttpStream> {
    let clip = LOOP.as_ref()?;
    s.write_response_header(header(200, "video/x-flv", None)?)
        .await
        .ok()?;
    if s.req_header().method == http::Method::HEAD {
        return None;
    }
    s.write_response_body(Bytes::from(clip.prelude.clone()), false)
        .await
        .ok()?;
    let started = Instant::now();
    let (mut i, mut offset) = (0usize, 0u64);
    while !*shutdown.borrow() {
        let due = started.elapsed().as_millis() as u64 + LEAD_MS;
        let mut batch = Vec::new();
        loop {
            let (kind, ts, data) = clip.media[i];
            let at = offset + u64::from(ts);
            if at > due {
                break;
            }
            flv::write_tag(&mut batch, kind, at as u32, data);
            i += 1;
            if i == clip.media.len() {
                i = 0;
                offset += u64::from(clip.period);
            }
        }
        if !batch.is_empty() {
            s.write_response_body(Bytes::from(batch), false)
                .await
                .ok()?;
        }
        tokio::time::sleep(TICK).await;
    }
    None
}

#[async_trait]
impl HttpServerApp for DemoOrigin {
    async fn process_new_http(
        self: &Arc<Self>,
        mut s: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !s.read_request().await.ok()? {
            return None;
        }
        let path = s.req_header().uri.path().to_owned();
        let route = Route::of_path(&path);
        match route.ext {
            "flv" => endless_flv(s, shutdown).await,
            "m3u8" => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let body = playlist(route.stream, now).into_bytes();
                respond(s, 200, "application/vnd.apple.mpegurl", body).await
            }
            "ts" => match segment(route.stream) {
                Some(seg) => respond(s, 200, "video/mp2t", seg).await,
                None => respond(s, 404, "text/plain", b"no such segment\n".to_vec()).await,
            },
            _ => respond(s, 404, "text/plain", b"no such stream\n".to_vec()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_playlist_slides_over_segments_that_continue_the_timeline() {
        let p = playlist("cam1", 1000);
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:497\n"), "{p}");
        assert!(
            p.ends_with("cam1-497.ts\n#EXTINF:2.000,\ncam1-498.ts\n#EXTINF:2.000,\ncam1-499.ts\n"),
            "{p}"
        );
        assert_eq!(segment("cam1-0"), Some(SEGMENTS[0].to_vec()));
        assert!(segment("cam1-498").is_some_and(|s| s.len() == SEGMENTS[0].len()));
        assert_eq!(segment("cam1"), None);
    }

    #[test]
    fn the_clip_loops_in_four_seconds() {
        let clip = LOOP.as_ref().unwrap();
        assert_eq!(clip.period, 4000);
        assert!(clip.prelude.starts_with(flv::HEADER));
    }
}

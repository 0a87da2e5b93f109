//! `livegate demo-origin`: a synthetic live origin so that a newcomer can watch
//! livegate work with one command. `.flv` is an endless chunked stream, `.m3u8` a
//! sliding live playlist, `.ts` a segment. The bytes only look like media.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;

use crate::route::Route;

/// The demo origin application.
pub struct DemoOrigin;

/// Bytes per FLV chunk and the pause between chunks: about 800 kbit/s.
const CHUNK: usize = 4096;
const PAUSE: Duration = Duration::from_millis(40);
/// HLS target duration and playlist window.
const SEGMENT_SECS: u64 = 2;
const WINDOW: u64 = 3;

const FLV_HEADER: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

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

fn playlist(stream: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let seq = now / SEGMENT_SECS;
    let mut p = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{SEGMENT_SECS}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
        seq - WINDOW
    );
    for n in seq - WINDOW..seq {
        p.push_str(&format!("#EXTINF:{SEGMENT_SECS}.000,\n{stream}-{n}.ts\n"));
    }
    p
}

fn segment() -> Vec<u8> {
    let mut packet = [0xffu8; 188];
    packet[0] = 0x47;
    packet.repeat(1000)
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
    s.write_response_header(header(200, "video/x-flv", None)?)
        .await
        .ok()?;
    if s.req_header().method == http::Method::HEAD {
        return None;
    }
    s.write_response_body(Bytes::from_static(FLV_HEADER), false)
        .await
        .ok()?;
    let chunk = Bytes::from(vec![0x09u8; CHUNK]);
    while !*shutdown.borrow() {
        s.write_response_body(chunk.clone(), false).await.ok()?;
        tokio::time::sleep(PAUSE).await;
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
                respond(
                    s,
                    200,
                    "application/vnd.apple.mpegurl",
                    playlist(route.stream).into_bytes(),
                )
                .await
            }
            "ts" => respond(s, 200, "video/mp2t", segment()).await,
            _ => respond(s, 404, "text/plain", b"no such stream\n".to_vec()).await,
        }
    }
}

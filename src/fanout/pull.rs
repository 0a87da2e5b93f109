//! The origin side of a fan-out: one request to the origin (failing over across
//! its peers like a proxied request), its body split into tags and sent to every
//! viewer, until the origin ends it or the last viewer left `linger` ago.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pingora_core::protocols::http::client::HttpSession;
use pingora_http::ResponseHeader;

use super::gop::Splitter;
use super::{Head, Hub, Packet, Pull, Source};

/// Most of a refused answer's body passed to the viewers that waited.
const MAX_REFUSAL_BODY: usize = 64 << 10;

/// Runs a pull to its end, then unregisters it.
pub(super) async fn run(hub: Arc<Hub>, pull: Arc<Pull>, source: Source) {
    let asked = source
        .origin
        .request(
            &source.hash_key,
            &pull.key.host,
            &pull.key.target,
            "livegate-fanout",
            None,
        )
        .await;
    match asked {
        Ok((mut http, peer)) => {
            let _ = pull.peer.set(peer);
            if let Some(resp) = http.response_header() {
                (source.on_status)(resp.status.as_u16());
            }
            match head_of(&mut http).await {
                Head::Live(resp) => {
                    let mut pending = Some(resp);
                    stream(&hub, &pull, &source, &mut http, &mut pending).await;
                    if pending.is_some() {
                        log::warn!(
                            "fan-out pull of {}: the origin's answer is not FLV (no FLV header); its viewers get 502",
                            source.shown
                        );
                        pull.head.send_replace(Head::Failed(502));
                    }
                }
                refused => {
                    pull.head.send_replace(refused);
                }
            }
        }
        Err(why) => {
            log::warn!("fan-out pull of {}: {why}", source.shown);
            pull.head.send_replace(Head::Failed(502));
        }
    }
    hub.remove(&pull);
    // Dropping the ring's sender ends every viewer's receiver: they finish
    // their responses cleanly and players reconnect.
    pull.shared().ring = None;
}

/// The origin's answer as viewers get it: hop-by-hop headers removed; a
/// refusal's body read (bounded).
async fn head_of(http: &mut HttpSession) -> Head {
    let Some(resp) = http.response_header() else {
        return Head::Failed(502);
    };
    let mut resp = crate::origin::end_to_end(resp);
    if resp.status.as_u16() == 200 {
        return Head::Live(Arc::new(resp));
    }
    let mut body = BytesMut::new();
    while body.len() < MAX_REFUSAL_BODY {
        match http.read_response_body().await {
            Ok(Some(b)) => body.extend_from_slice(&b),
            _ => break,
        }
    }
    body.truncate(MAX_REFUSAL_BODY);
    let _ = resp.insert_header("content-length", body.len().to_string());
    Head::Refused(Arc::new(resp), body.freeze())
}

/// Reads the origin's body and sends it on, tag by tag, until the origin ends
/// or the pull lingered without viewers. The response head (`pending`) goes to
/// the viewers once the body starts with an FLV header.
async fn stream(
    hub: &Hub,
    pull: &Pull,
    source: &Source,
    http: &mut HttpSession,
    pending: &mut Option<Arc<ResponseHeader>>,
) {
    let mut splitter = Splitter::default();
    let mut sent: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let chunk = tokio::select! {
            c = http.read_response_body() => c,
            _ = tick.tick() => {
                if pull.lingered(hub, source.settings.linger) {
                    log::debug!("fan-out pull of {} ends: no viewer", source.shown);
                    return;
                }
                continue;
            }
        };
        let chunk = match chunk {
            Ok(Some(c)) => c,
            Ok(None) => {
                log::info!(
                    "fan-out pull of {}: the origin ended the stream",
                    source.shown
                );
                return;
            }
            Err(e) => {
                log::warn!("fan-out pull of {}: {e}", source.shown);
                return;
            }
        };
        let split = match splitter.push(&chunk) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("fan-out pull of {}: not FLV ({e}); ending it", source.shown);
                return;
            }
        };
        let mut shared = pull.shared();
        if let Some(h) = split.header {
            shared.gop.header(h);
            if let Some(resp) = pending.take() {
                pull.head.send_replace(Head::Live(resp));
            }
        }
        for frame in split.frames {
            sent += frame.bytes.len() as u64;
            pull.edge_bytes.store(sent, Ordering::Release);
            pull.edge_ms
                .store(u64::from(frame.timestamp), Ordering::Release);
            // No receiver is not an error: viewers come and go.
            if let Some(ring) = &shared.ring {
                let _ = ring.send(Packet {
                    frame: frame.clone(),
                    end: sent,
                });
            }
            shared.gop.push(&frame);
        }
    }
}

//! The origin side of an admitted session: a connection to one of the domain's
//! `rtmp_peers` (the next one when a peer refuses, as the HTTP path fails over),
//! livegate's own handshake, and `connect` / `createStream` / `publish` or `play`
//! as the encoder or player sent them — `tcUrl rtmp://<peer>/<app>` and the
//! stream name without the rule's signature parameters.

use std::net::SocketAddr;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::peer::{Ended, Reader, Writer, OUT_CHUNK, WINDOW};
use super::setup::Intent;
use crate::media::rtmp::chunk::Limits;
use crate::media::rtmp::command::{self, Command};
use crate::media::rtmp::handshake;
use crate::media::rtmp::{
    Message, Value, PING_REQUEST, PING_RESPONSE, SET_CHUNK_SIZE, USER_CONTROL, WINDOW_ACK_SIZE,
};
use crate::origin::Origin;

/// An origin session ready to relay.
pub struct Upstream {
    pub reader: Reader<OwnedReadHalf>,
    pub writer: Writer<OwnedWriteHalf>,
    /// The message stream the origin gave `createStream`.
    pub stream_id: u32,
    pub peer: SocketAddr,
}

/// What the origin is asked.
pub struct Ask<'a> {
    pub intent: &'a Intent,
    pub app: &'a str,
    /// The stream name with the signature parameters removed.
    pub name: &'a str,
    pub hash_key: &'a str,
}

/// Connects to the first peer of `pool` that takes the session.
pub async fn dial(pool: &Origin, ask: &Ask<'_>) -> Result<Upstream, String> {
    let mut tried = Vec::new();
    let mut last = String::from("no RTMP origin peer");
    while let Some(backend) = pool.next(ask.hash_key.as_bytes(), &tried) {
        let Some(addr) = backend.addr.as_inet().copied() else {
            break;
        };
        tried.push(addr);
        match tokio::time::timeout(pool.connect_timeout * 4, session(addr, pool, ask)).await {
            Ok(Ok(up)) => return Ok(up),
            Ok(Err(why)) => last = format!("RTMP origin {addr}: {why}"),
            Err(_) => last = format!("RTMP origin {addr}: no answer in time"),
        }
        log::warn!("{last}");
    }
    Err(last)
}

async fn session(addr: SocketAddr, pool: &Origin, ask: &Ask<'_>) -> Result<Upstream, String> {
    let tcp = tokio::time::timeout(pool.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no connection within {:?}", pool.connect_timeout))?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
    let (r, w) = tcp.into_split();
    let mut reader = Reader::new(r, Limits::RELAYING, 1 << 20).on_socket(fd);
    let mut writer = Writer::new(w);
    let fail = |e: Ended| e.to_string();
    let mut hello = [0u8; handshake::SIZE];
    hello[8..].fill(0x5a);
    writer
        .raw(&handshake::client_hello(&hello))
        .await
        .map_err(|e| e.to_string())?;
    let s = reader.exact(1 + 2 * handshake::SIZE).await.map_err(fail)?;
    let mut s1 = [0u8; handshake::SIZE];
    s1.copy_from_slice(&s[1..1 + handshake::SIZE]);
    writer
        .raw(&handshake::client_ack(&s1))
        .await
        .map_err(|e| e.to_string())?;
    let tc_url = format!("rtmp://{addr}/{}", ask.app);
    let mut object = ask.intent.connect.clone();
    let theirs = ask.intent.property("tcUrl").map(str::to_owned);
    if object.get("swfUrl").and_then(Value::as_str) == theirs.as_deref() {
        object.set("swfUrl", Value::string(tc_url.clone()));
    }
    object.set("app", Value::string(ask.app));
    object.set("tcUrl", Value::string(tc_url));
    writer
        .send(&[
            Message::control(SET_CHUNK_SIZE, OUT_CHUNK as u32),
            Message::control(WINDOW_ACK_SIZE, WINDOW),
            command::call(0, "connect", 1.0, object, &[]),
        ])
        .await
        .map_err(|e| e.to_string())?;
    answer(&mut reader, &mut writer, 1.0).await?;
    writer
        .send(&[command::call(0, "createStream", 2.0, Value::Null, &[])])
        .await
        .map_err(|e| e.to_string())?;
    let created = answer(&mut reader, &mut writer, 2.0).await?;
    let stream_id = created
        .args
        .first()
        .and_then(Value::as_f64)
        .filter(|n| *n >= 1.0 && *n < u32::MAX as f64)
        .ok_or("createStream's answer names no stream")? as u32;
    let c = &ask.intent.command;
    let mut args = c.args.clone();
    if let Some(first) = args.first_mut() {
        *first = Value::string(ask.name);
    }
    writer
        .send(&[command::call(stream_id, &c.name, 3.0, Value::Null, &args)])
        .await
        .map_err(|e| e.to_string())?;
    Ok(Upstream {
        reader,
        writer,
        stream_id,
        peer: addr,
    })
}

/// Waits for the origin's `_result` to transaction `txn` (answering pings and
/// acknowledging on the way); its `_error` is a refusal.
async fn answer(
    r: &mut Reader<OwnedReadHalf>,
    w: &mut Writer<OwnedWriteHalf>,
    txn: f64,
) -> Result<Command, String> {
    loop {
        let m = r.next().await.map_err(|e| e.to_string())?;
        if let Some(ack) = r.ack_due() {
            w.send(&[ack]).await.map_err(|e| e.to_string())?;
        }
        if m.kind == USER_CONTROL {
            if let Some((PING_REQUEST, data)) = m.event() {
                let pong = Message::user_control(PING_RESPONSE, data);
                w.send(&[pong]).await.map_err(|e| e.to_string())?;
            }
            continue;
        }
        if !m.is_command() {
            continue;
        }
        let c = Command::parse(&m).map_err(|e| e.to_string())?;
        match c.name.as_str() {
            "_result" if c.txn == txn => return Ok(c),
            "_error" if c.txn == txn => {
                let code = command::info_code(&c).map_or("", |(_, code)| code);
                return Err(format!("refused: {code}"));
            }
            _ => {}
        }
    }
}

//! An encoder's or player's session up to the moment admission decides: the
//! handshake livegate answers itself, `connect` (accepted, as nginx-rtmp does,
//! before anything is known of the stream), `createStream`, and `publish` or
//! `play`. Nothing of it reaches an origin. Out of order, garbled or oversized
//! input ends the connection with a reason.

use tokio::io::{AsyncRead, AsyncWrite};

use super::peer::{Ended, Reader, Writer, OUT_CHUNK, WINDOW};
use crate::media::rtmp::command::{self, Command};
use crate::media::rtmp::handshake;
use crate::media::rtmp::{Message, Value, SET_CHUNK_SIZE, WINDOW_ACK_SIZE};
use crate::route::Scene;

/// The message stream id livegate gives an encoder's or player's `createStream`.
pub const CLIENT_STREAM: u32 = 1;

/// What a session asked for.
#[derive(Debug)]
pub struct Intent {
    /// `connect`'s command object (tcUrl, app, flashVer, pageUrl, fourCcList…).
    pub connect: Value,
    /// `publish` is push, `play` pull.
    pub scene: Scene,
    /// The `publish`/`play` command, as sent (its name holds the query).
    pub command: Command,
}

impl Intent {
    /// A string property of `connect`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.connect.get(key).and_then(Value::as_str)
    }

    /// The `publish`/`play` stream name as sent.
    pub fn name(&self) -> &str {
        self.command.name_arg().unwrap_or("")
    }
}

/// Why a setup ended without an intent.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Ended(#[from] Ended),
    #[error("{0}")]
    Handshake(#[from] handshake::HandshakeError),
    #[error("{0}")]
    Command(#[from] command::CommandError),
    #[error("{0} before connect")]
    OutOfOrder(String),
    #[error("a second connect")]
    Reconnect,
    #[error("connect has no tcUrl")]
    NoTcUrl,
    #[error("connect refused: {0}")]
    Rejected(String),
    #[error("could not write: {0}")]
    Write(std::io::Error),
}

/// 3072 random bytes for S1 and S2.
fn random() -> [u8; 2 * handshake::SIZE] {
    let mut r = [0u8; 2 * handshake::SIZE];
    // Not a secret: the handshake's random bytes are only echoed back.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    let mut x = seed | 1;
    for b in r.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    r
}

/// Answers the handshake and reads commands until `publish` or `play`. `accept`
/// judges `connect`'s tcUrl: a refusal is answered `_error`
/// `NetConnection.Connect.Rejected` with its reason.
pub async fn read<R, W>(
    r: &mut Reader<R>,
    w: &mut Writer<W>,
    accept: impl Fn(&str) -> Result<(), String>,
) -> Result<Intent, SetupError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let c0c1 = r.exact(1 + handshake::SIZE).await?;
    let mut c1 = [0u8; handshake::SIZE];
    c1.copy_from_slice(&c0c1[1..]);
    let answer = handshake::answer(c0c1[0], &c1, &random())?;
    w.raw(&answer).await.map_err(SetupError::Write)?;
    r.exact(handshake::SIZE).await?;
    let mut connect: Option<Value> = None;
    loop {
        let m = r.next().await?;
        if !m.is_command() {
            // Control messages are applied by the decoder; media before publish is
            // out of order.
            if matches!(m.kind, 8 | 9 | 15 | 18 | 22) {
                return Err(SetupError::OutOfOrder(format!("media (type {})", m.kind)));
            }
            continue;
        }
        let c = Command::parse(&m)?;
        let replies: Vec<Message> = match (c.name.as_str(), &connect) {
            ("connect", None) => {
                let Some(tc_url) = c.property("tcUrl") else {
                    return Err(SetupError::NoTcUrl);
                };
                if let Err(why) = accept(tc_url) {
                    let refusal = command::error(c.txn, "NetConnection.Connect.Rejected", &why);
                    w.send(&[refusal]).await.map_err(SetupError::Write)?;
                    return Err(SetupError::Rejected(why));
                }
                let encoding = c
                    .object
                    .get("objectEncoding")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                let replies = vec![
                    Message::control(WINDOW_ACK_SIZE, WINDOW),
                    Message::peer_bandwidth(WINDOW),
                    Message::control(SET_CHUNK_SIZE, OUT_CHUNK as u32),
                    command::connect_result(c.txn, encoding),
                ];
                connect = Some(c.object);
                replies
            }
            ("connect", Some(_)) => return Err(SetupError::Reconnect),
            (other, None) => return Err(SetupError::OutOfOrder(other.to_owned())),
            ("createStream", Some(_)) => vec![command::result(
                0,
                c.txn,
                Value::Null,
                Value::Number(CLIENT_STREAM as f64),
            )],
            ("publish" | "play", Some(object)) => {
                let scene = match c.name.as_str() {
                    "publish" => Scene::Push,
                    _ => Scene::Pull,
                };
                return Ok(Intent {
                    connect: object.clone(),
                    scene,
                    command: c,
                });
            }
            // releaseStream, FCPublish, FCSubscribe, getStreamLength, _checkbw…:
            // no client waits for these; answered when they ask (a transaction).
            _ if c.txn > 0.0 => vec![command::result(0, c.txn, Value::Null, Value::Undefined)],
            _ => Vec::new(),
        };
        w.send(&replies).await.map_err(SetupError::Write)?;
    }
}

/// The RTMP answer to a refused session, which encoders and players show: an
/// `onStatus` error on the stream with the reason as its description.
pub fn refusal(scene: Scene, reason: &str) -> Message {
    let code = match scene {
        Scene::Push => "NetStream.Publish.BadName",
        Scene::Pull => "NetStream.Play.Failed",
    };
    command::status(CLIENT_STREAM, "error", code, reason)
}

//! RTMP as encoders and origins speak it, pure: the handshake ([`handshake`]),
//! the chunk stream ([`chunk`]), AMF0 ([`amf0`]) and the few commands a gate
//! reads and answers ([`command`]). Bytes in, messages out (and back), no I/O, so
//! each is tested on its own and fuzzed; `crate::rtmp` runs sessions with them.

pub mod amf0;
pub mod chunk;
pub mod command;
pub mod handshake;

use bytes::Bytes;

pub use amf0::Value;

/// Message type ids (RTMP 1.0 §5.4, nginx-rtmp's `ngx_rtmp.h`).
pub const SET_CHUNK_SIZE: u8 = 1;
pub const ABORT: u8 = 2;
pub const ACK: u8 = 3;
pub const USER_CONTROL: u8 = 4;
pub const WINDOW_ACK_SIZE: u8 = 5;
pub const SET_PEER_BANDWIDTH: u8 = 6;
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const DATA_AMF3: u8 = 15;
pub const COMMAND_AMF3: u8 = 17;
pub const DATA_AMF0: u8 = 18;
pub const COMMAND_AMF0: u8 = 20;
pub const AGGREGATE: u8 = 22;

/// User control events.
pub const STREAM_BEGIN: u16 = 0;
pub const PING_REQUEST: u16 = 6;
pub const PING_RESPONSE: u16 = 7;

/// One whole RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: u8,
    pub timestamp: u32,
    /// The message stream (0: the connection's own).
    pub stream_id: u32,
    pub payload: Bytes,
}

impl Message {
    /// A protocol control message of one 32-bit value (Set Chunk Size, Ack,
    /// Window Acknowledgement Size).
    pub fn control(kind: u8, value: u32) -> Message {
        Message {
            kind,
            timestamp: 0,
            stream_id: 0,
            payload: Bytes::copy_from_slice(&value.to_be_bytes()),
        }
    }

    /// Set Peer Bandwidth (limit type 2: dynamic).
    pub fn peer_bandwidth(size: u32) -> Message {
        let mut p = size.to_be_bytes().to_vec();
        p.push(2);
        Message {
            kind: SET_PEER_BANDWIDTH,
            timestamp: 0,
            stream_id: 0,
            payload: Bytes::from(p),
        }
    }

    /// A user control event with its data (a stream id, a ping's time…).
    pub fn user_control(event: u16, data: &[u8]) -> Message {
        let mut p = event.to_be_bytes().to_vec();
        p.extend_from_slice(data);
        Message {
            kind: USER_CONTROL,
            timestamp: 0,
            stream_id: 0,
            payload: Bytes::from(p),
        }
    }

    /// An AMF0 command on a message stream.
    pub fn command(stream_id: u32, values: &[Value]) -> Message {
        Message {
            kind: COMMAND_AMF0,
            timestamp: 0,
            stream_id,
            payload: Bytes::from(amf0::encode_all(values)),
        }
    }

    /// The payload's first four bytes as a big-endian number.
    pub fn u32(&self) -> Option<u32> {
        let p = self.payload.get(..4)?;
        Some(u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
    }

    /// The user control event number and its data.
    pub fn event(&self) -> Option<(u16, &[u8])> {
        let p = self.payload.get(..2)?;
        Some((u16::from_be_bytes([p[0], p[1]]), &self.payload[2..]))
    }

    /// Whether this is a command (AMF0, or AMF3 with its AMF0 body).
    pub fn is_command(&self) -> bool {
        matches!(self.kind, COMMAND_AMF0 | COMMAND_AMF3)
    }
}

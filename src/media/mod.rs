//! Pure media formats: bytes in, structure (or bytes) out, no I/O — FLV tags
//! ([`flv`]), MPEG-TS timestamps ([`ts`]) and RTMP's handshake, chunk stream and
//! AMF0 commands ([`rtmp`]). What the edge does with them lives elsewhere
//! (`fanout`, `demo`, `rtmp`).

pub mod flv;
pub mod rtmp;
pub mod ts;

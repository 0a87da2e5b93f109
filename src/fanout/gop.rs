//! The pure core of FLV fan-out: an origin's byte stream split into tags
//! ([`Splitter`]), and what a viewer joining a running pull must get first so it
//! plays at once ([`Gop`]): the FLV header, the latest `onMetaData`, the AVC and AAC
//! sequence headers, then every tag since the latest keyframe. Bytes in, bytes
//! out, no I/O, no clock.

use bytes::{Bytes, BytesMut};

use crate::media::flv::{self, FlvError, Tag, AUDIO, SCRIPT, VIDEO};

/// One tag of the live stream, as it is sent: the 11-byte tag header, the
/// payload and the 4-byte `PreviousTagSize`.
#[derive(Debug, Clone)]
pub struct Frame {
    pub bytes: Bytes,
    pub kind: u8,
    /// Milliseconds.
    pub timestamp: u32,
    /// A video keyframe: where a viewer can start decoding video.
    pub keyframe: bool,
}

/// Longest tag accepted (a corrupt size field must not make us buffer gigabytes).
const MAX_TAG: usize = 8 << 20;

/// Splits an FLV byte stream, arriving in arbitrary chunks, into its header and
/// whole tags.
#[derive(Default)]
pub struct Splitter {
    buf: BytesMut,
    /// The FLV header (through `PreviousTagSize0`), once read.
    header: Option<Bytes>,
}

/// What one chunk of the origin's body gave.
#[derive(Debug, Default)]
pub struct Split {
    /// The FLV header, the first time it is complete.
    pub header: Option<Bytes>,
    pub frames: Vec<Frame>,
}

impl Splitter {
    /// Takes the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Split, FlvError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Split::default();
        if self.header.is_none() {
            if self.buf.len() < 9 {
                return Ok(out);
            }
            if &self.buf[..3] != b"FLV" {
                return Err(FlvError::NoHeader);
            }
            let offset =
                u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) as usize;
            if !(9..=1024).contains(&offset) {
                return Err(FlvError::NoHeader);
            }
            if self.buf.len() < offset + 4 {
                return Ok(out);
            }
            let header = self.buf.split_to(offset + 4).freeze();
            self.header = Some(header.clone());
            out.header = Some(header);
        }
        while self.buf.len() >= 11 {
            let size = u32::from_be_bytes([0, self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if size > MAX_TAG {
                return Err(FlvError::Truncated(0));
            }
            let whole = 11 + size + 4;
            if self.buf.len() < whole {
                break;
            }
            let bytes = self.buf.split_to(whole).freeze();
            let tag = Tag {
                kind: bytes[0] & 0x1f,
                timestamp: u32::from_be_bytes([bytes[7], bytes[4], bytes[5], bytes[6]]),
                data: &bytes[11..11 + size],
            };
            let (kind, timestamp, keyframe) = (tag.kind, tag.timestamp, tag.is_keyframe());
            out.frames.push(Frame {
                kind,
                timestamp,
                keyframe,
                bytes,
            });
        }
        Ok(out)
    }
}

/// What a joining viewer needs, kept up to date tag by tag.
#[derive(Default)]
pub struct Gop {
    header: Option<Bytes>,
    meta: Option<Frame>,
    avc: Option<Frame>,
    aac: Option<Frame>,
    /// Tags since the latest video keyframe (empty until one came).
    tags: Vec<Frame>,
    bytes: usize,
}

/// The GOP cache's bound: past it the cache is dropped, and viewers joining
/// before the next keyframe wait for it.
pub const MAX_GOP_BYTES: usize = 32 << 20;

fn payload(f: &Frame) -> &[u8] {
    &f.bytes[11..f.bytes.len() - 4]
}

fn is_sequence_header(f: &Frame) -> bool {
    Tag {
        kind: f.kind,
        timestamp: f.timestamp,
        data: payload(f),
    }
    .is_sequence_header()
}

fn is_metadata(f: &Frame) -> bool {
    // AMF0 string "onMetaData": type 2, length 10.
    f.kind == SCRIPT && payload(f).starts_with(b"\x02\x00\x0aonMetaData")
}

impl Gop {
    /// Sets the stream's FLV header.
    pub fn header(&mut self, header: Bytes) {
        self.header = Some(header);
    }

    /// Takes one tag of the live stream (after it is sent to the viewers
    /// already playing).
    pub fn push(&mut self, f: &Frame) {
        if is_metadata(f) {
            self.meta = Some(f.clone());
            return;
        }
        if is_sequence_header(f) {
            match f.kind {
                VIDEO => self.avc = Some(f.clone()),
                _ => self.aac = Some(f.clone()),
            }
            return;
        }
        match f.kind {
            VIDEO => {
                if f.keyframe {
                    self.tags.clear();
                    self.bytes = 0;
                } else if self.tags.is_empty() {
                    // No keyframe yet: nothing a joiner could decode.
                    return;
                }
            }
            // Audio is cached with the GOP it belongs to; audio-only streams
            // need no cache (any AAC frame starts playback).
            AUDIO if !self.tags.is_empty() => {}
            _ => return,
        }
        if self.bytes + f.bytes.len() > MAX_GOP_BYTES {
            self.tags.clear();
            self.bytes = 0;
            return;
        }
        self.bytes += f.bytes.len();
        self.tags.push(f.clone());
    }

    /// Whether a joiner's first bytes hold a keyframe: if not, the joiner must
    /// skip video until the next one (audio plays meanwhile).
    pub fn ready(&self) -> bool {
        self.tags.first().is_some_and(|f| f.keyframe)
    }

    /// A joining viewer's first bytes: header, metadata and sequence headers
    /// (stamped with the cached GOP's first timestamp, so timestamps never go
    /// backwards), then the cached tags.
    pub fn start(&self) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.tags.len() + 4);
        out.push(
            self.header
                .clone()
                .unwrap_or_else(|| Bytes::from_static(flv::HEADER)),
        );
        let at = self.tags.first().map(|f| f.timestamp);
        for f in [&self.meta, &self.avc, &self.aac].into_iter().flatten() {
            out.push(match at {
                Some(ts) if ts != f.timestamp => restamp(f, ts),
                _ => f.bytes.clone(),
            });
        }
        out.extend(self.tags.iter().map(|f| f.bytes.clone()));
        out
    }

    /// Bytes held by the cache (for limits and metrics).
    pub fn held(&self) -> usize {
        self.bytes
    }
}

/// A tag's bytes with another timestamp.
fn restamp(f: &Frame, ts: u32) -> Bytes {
    let mut out = Vec::with_capacity(f.bytes.len());
    flv::write_tag(&mut out, f.kind, ts, payload(f));
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let mut f = flv::HEADER.to_vec();
        let meta = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00";
        flv::write_tag(&mut f, SCRIPT, 0, meta);
        flv::write_tag(&mut f, VIDEO, 0, &[0x17, 0, 0, 0, 1]); // AVC sequence header
        flv::write_tag(&mut f, AUDIO, 0, &[0xaf, 0, 0x12, 0x10]); // AAC sequence header
        for gop in 0..3u32 {
            flv::write_tag(&mut f, VIDEO, 1000 * gop, &[0x17, 1, 0, 0, 0, gop as u8]);
            for i in 1..5u32 {
                flv::write_tag(&mut f, AUDIO, 1000 * gop + 40 * i - 20, &[0xaf, 1, 7]);
                flv::write_tag(&mut f, VIDEO, 1000 * gop + 40 * i, &[0x27, 1, 0, 0, 0]);
            }
        }
        f
    }

    #[test]
    fn any_chunking_gives_the_same_tags() {
        let bytes = stream();
        let whole = Splitter::default().push(&bytes).unwrap();
        assert_eq!(whole.frames.len(), 3 + 3 * 9);
        for size in [1, 7, 13, 100] {
            let mut s = Splitter::default();
            let mut frames = Vec::new();
            let mut header = None;
            for chunk in bytes.chunks(size) {
                let out = s.push(chunk).unwrap();
                header = header.or(out.header);
                frames.extend(out.frames);
            }
            assert_eq!(header.as_deref(), Some(flv::HEADER));
            let got: Vec<_> = frames.iter().map(|f| f.bytes.clone()).collect();
            let want: Vec<_> = whole.frames.iter().map(|f| f.bytes.clone()).collect();
            assert_eq!(got, want, "chunks of {size}");
        }
        assert!(Splitter::default().push(b"GIF89a\0\0\0\0").is_err());
        let mut huge = flv::HEADER.to_vec();
        huge.extend_from_slice(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert!(Splitter::default().push(&huge).is_err());
    }

    #[test]
    fn a_joiner_gets_configuration_then_the_latest_gop_and_decodes_from_a_keyframe() {
        let split = Splitter::default().push(&stream()).unwrap();
        let mut gop = Gop::default();
        gop.header(split.header.clone().unwrap());
        for f in &split.frames {
            gop.push(f);
        }
        assert!(gop.ready());
        let start = gop.start();
        let mut bytes = Vec::new();
        for b in &start {
            bytes.extend_from_slice(b);
        }
        let tags = flv::parse(&bytes).unwrap();
        // onMetaData, AVC and AAC headers, then the last GOP: keyframe + 8 tags.
        assert_eq!(tags.len(), 3 + 9);
        assert!(tags[1].is_sequence_header() && tags[2].is_sequence_header());
        assert!(tags[3].is_keyframe() && tags[3].data.ends_with(&[2]));
        // Timestamps never go backwards from the first tag on.
        assert!(tags.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        assert_eq!(tags[0].timestamp, 2000);
    }

    #[test]
    fn before_any_keyframe_a_joiner_must_wait_for_one() {
        let mut gop = Gop::default();
        let mut s = Splitter::default();
        let mut f = flv::HEADER.to_vec();
        flv::write_tag(&mut f, VIDEO, 40, &[0x27, 1, 0, 0, 0]);
        flv::write_tag(&mut f, AUDIO, 40, &[0xaf, 1, 7]);
        for fr in s.push(&f).unwrap().frames {
            gop.push(&fr);
        }
        assert!(!gop.ready());
        assert_eq!(gop.start().len(), 1, "only the header");
        // Audio-only streams cache nothing: a joiner starts with the next frame.
        let mut audio = Gop::default();
        let mut a = flv::HEADER.to_vec();
        flv::write_tag(&mut a, AUDIO, 40, &[0xaf, 1, 7]);
        for fr in Splitter::default().push(&a).unwrap().frames {
            audio.push(&fr);
        }
        assert_eq!((audio.start().len(), audio.held()), (1, 0));
    }
}

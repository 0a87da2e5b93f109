//! FLV tags, pure: bytes in, tags out, and tags back to bytes. Enough of the format
//! (Adobe FLV v10, "The FLV File Format") for a live edge: the header, each tag's
//! type, timestamp and payload, and which tags are sequence headers and keyframes.

use thiserror::Error;

/// The 9-byte FLV header of a file with audio and video, then `PreviousTagSize0`.
pub const HEADER: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

/// Tag types.
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const SCRIPT: u8 = 18;

/// One tag, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    pub kind: u8,
    /// Milliseconds (the 24-bit field and its extension byte).
    pub timestamp: u32,
    pub data: &'a [u8],
}

/// Why bytes are not an FLV stream.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("no FLV header")]
    NoHeader,
    #[error("a tag at byte {0} runs past the end")]
    Truncated(usize),
}

impl Tag<'_> {
    /// An AVC or AAC sequence header: decoder configuration a viewer needs before
    /// any frame.
    pub fn is_sequence_header(&self) -> bool {
        match (self.kind, self.data) {
            (VIDEO, [first, 0, ..]) => first & 0x0f == 7,
            (AUDIO, [first, 0, ..]) => first >> 4 == 10,
            _ => false,
        }
    }

    /// An AVC end-of-sequence marker (what a file's last video tag usually is).
    pub fn is_end_of_sequence(&self) -> bool {
        matches!((self.kind, self.data), (VIDEO, [first, 2, ..]) if first & 0x0f == 7)
    }

    /// A video keyframe (where a viewer can start decoding).
    pub fn is_keyframe(&self) -> bool {
        self.kind == VIDEO && self.data.first().is_some_and(|b| b >> 4 == 1)
    }
}

/// The tags of a whole FLV file (header and `PreviousTagSize` fields checked for
/// bounds, not trusted).
pub fn parse(bytes: &[u8]) -> Result<Vec<Tag<'_>>, FlvError> {
    if bytes.len() < 13 || &bytes[..3] != b"FLV" {
        return Err(FlvError::NoHeader);
    }
    let offset = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    let mut at = offset.checked_add(4).ok_or(FlvError::NoHeader)?;
    let mut tags = Vec::new();
    while at < bytes.len() {
        let head = bytes.get(at..at + 11).ok_or(FlvError::Truncated(at))?;
        let size = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
        let timestamp = u32::from_be_bytes([head[7], head[4], head[5], head[6]]);
        let data = bytes
            .get(at + 11..at + 11 + size)
            .ok_or(FlvError::Truncated(at))?;
        tags.push(Tag {
            kind: head[0] & 0x1f,
            timestamp,
            data,
        });
        at += 11 + size + 4;
    }
    Ok(tags)
}

/// Appends one tag (and its `PreviousTagSize`) at `timestamp`.
pub fn write_tag(out: &mut Vec<u8>, kind: u8, timestamp: u32, data: &[u8]) {
    let size = data.len() as u32;
    let ts = timestamp.to_be_bytes();
    out.push(kind);
    out.extend_from_slice(&size.to_be_bytes()[1..]);
    out.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0]]);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(data);
    out.extend_from_slice(&(size + 11).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_tags_parse_back() {
        let mut f = HEADER.to_vec();
        write_tag(&mut f, VIDEO, 0x0123_4567, &[0x17, 0, 1, 2]);
        write_tag(&mut f, AUDIO, 40, &[0xaf, 1, 9]);
        let tags = parse(&f).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].timestamp, 0x0123_4567);
        assert!(tags[0].is_sequence_header() && tags[0].is_keyframe());
        assert_eq!(
            tags[1],
            Tag {
                kind: AUDIO,
                timestamp: 40,
                data: &[0xaf, 1, 9]
            }
        );
        assert!(!tags[1].is_sequence_header());
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert_eq!(parse(b"nope"), Err(FlvError::NoHeader));
        let mut f = HEADER.to_vec();
        write_tag(&mut f, VIDEO, 0, &[1, 2, 3]);
        f.truncate(f.len() - 6);
        assert_eq!(parse(&f), Err(FlvError::Truncated(13)));
        assert!(parse(&[b'F', b'L', b'V', 1, 5, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_ok());
    }

    #[test]
    fn the_demo_clip_starts_with_its_decoder_configuration() {
        let tags = parse(crate::demo::CLIP).unwrap();
        let video = tags.iter().filter(|t| t.kind == VIDEO).count();
        assert!(video >= 100, "{video} video tags");
        assert!(tags
            .iter()
            .any(|t| t.kind == VIDEO && t.is_sequence_header()));
        assert!(tags
            .iter()
            .any(|t| t.kind == AUDIO && t.is_sequence_header()));
        let first_frame = tags
            .iter()
            .find(|t| t.kind == VIDEO && !t.is_sequence_header());
        assert!(first_frame.is_some_and(|t| t.is_keyframe()));
    }
}

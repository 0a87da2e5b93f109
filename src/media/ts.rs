//! MPEG-TS timelines, pure: moving every PTS, DTS and PCR of a segment by a
//! constant and advancing its continuity counters, so that a looped segment
//! continues the stream instead of jumping back (ISO/IEC 13818-1: 188-byte
//! packets, PES headers, adaptation fields).

use std::collections::HashMap;

const PACKET: usize = 188;
/// Timestamps are 33-bit counters of a 90 kHz clock.
const WRAP: u64 = 1 << 33;

/// A 33-bit PES timestamp from its 5 bytes.
fn read_pts(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}

/// Writes a 33-bit timestamp into 5 bytes, keeping the prefix nibble and markers.
fn write_pts(b: &mut [u8], v: u64) {
    b[0] = (b[0] & 0xf1) | (((v >> 30) as u8 & 0x07) << 1);
    b[1] = (v >> 22) as u8;
    b[2] = (b[2] & 0x01) | (((v >> 15) as u8) << 1);
    b[3] = (v >> 7) as u8;
    b[4] = (b[4] & 0x01) | ((v as u8) << 1);
}

fn shift_pts(b: &mut [u8], by: u64) {
    let v = (read_pts(b) + by) % WRAP;
    write_pts(b, v);
}

/// Shifts the 33-bit base of a PCR (6 bytes: base, 6 reserved bits, 9-bit extension).
fn shift_pcr(b: &mut [u8], by: u64) {
    let base = u64::from(b[0]) << 25
        | u64::from(b[1]) << 17
        | u64::from(b[2]) << 9
        | u64::from(b[3]) << 1
        | u64::from(b[4] >> 7);
    let v = (base + by) % WRAP;
    b[0] = (v >> 25) as u8;
    b[1] = (v >> 17) as u8;
    b[2] = (v >> 9) as u8;
    b[3] = (v >> 1) as u8;
    b[4] = (b[4] & 0x7f) | (((v & 1) as u8) << 7);
}

fn pid(p: &[u8]) -> u16 {
    u16::from(p[1] & 0x1f) << 8 | u16::from(p[2])
}

/// Per PID: the first continuity counter of a segment and how many packets
/// advance it (those that carry a payload).
pub fn counters(segment: &[u8]) -> HashMap<u16, (u8, u64)> {
    let mut out: HashMap<u16, (u8, u64)> = HashMap::new();
    for p in segment
        .chunks_exact(PACKET)
        .filter(|p| p[0] == 0x47 && p[3] & 0x10 != 0)
    {
        out.entry(pid(p)).or_insert((p[3] & 0x0f, 0)).1 += 1;
    }
    out
}

/// `segment` with every timestamp `by` ticks (90 kHz) later and each PID's
/// continuity counters advanced by `cc(pid)`. Packets that are not well formed are
/// copied unchanged.
pub fn shift(segment: &[u8], by: u64, cc: impl Fn(u16) -> u8) -> Vec<u8> {
    let mut out = segment.to_vec();
    for p in out.chunks_exact_mut(PACKET) {
        if p[0] != 0x47 {
            continue;
        }
        let start = p[1] & 0x40 != 0;
        let control = (p[3] >> 4) & 0x03;
        if control & 0x01 != 0 {
            p[3] = (p[3] & 0xf0) | ((p[3] & 0x0f).wrapping_add(cc(pid(p))) & 0x0f);
        }
        let mut at = 4;
        if control & 0x02 != 0 {
            let len = usize::from(p[4]);
            if len > 0 && 5 + len <= PACKET && p[5] & 0x10 != 0 && len >= 7 {
                shift_pcr(&mut p[6..12], by);
            }
            at = 5 + len;
        }
        if control & 0x01 == 0 || !start || at + 14 > PACKET {
            continue;
        }
        let pes = &mut p[at..];
        if pes[..3] != [0, 0, 1] {
            continue;
        }
        let flags = pes[7] >> 6;
        if flags & 0x02 != 0 {
            shift_pts(&mut pes[9..14], by);
        }
        if flags == 0x03 && at + 19 <= PACKET {
            shift_pts(&mut pes[14..19], by);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All PTS values of a segment, in order.
    fn pts(segment: &[u8]) -> Vec<u64> {
        segment
            .chunks_exact(PACKET)
            .filter_map(|p| {
                let control = (p[3] >> 4) & 0x03;
                let at = if control & 0x02 != 0 {
                    5 + usize::from(p[4])
                } else {
                    4
                };
                let pes = p.get(at..)?;
                (p[1] & 0x40 != 0 && pes.len() > 14 && pes[..3] == [0, 0, 1] && pes[7] & 0x80 != 0)
                    .then(|| read_pts(&pes[9..14]))
            })
            .collect()
    }

    #[test]
    fn timestamps_round_trip_with_their_markers() {
        for v in [0u64, 1, 90_000, 0x1_2345_6789, WRAP - 1] {
            let mut b = [0x21, 0, 1, 0, 1];
            write_pts(&mut b, v);
            assert_eq!(read_pts(&b), v);
            assert_eq!(b[0] & 0xf1, 0x21);
            assert_eq!((b[2] & 1, b[4] & 1), (1, 1));
        }
    }

    #[test]
    fn a_shifted_demo_segment_is_later_by_exactly_the_shift() {
        let seg = include_bytes!("../../assets/demo-0.ts");
        let before = pts(seg);
        assert!(before.len() > 50, "{} PES headers", before.len());
        let after = pts(&shift(seg, 360_000, |_| 0));
        assert_eq!(after.len(), before.len());
        for (a, b) in before.iter().zip(&after) {
            assert_eq!(*b, (a + 360_000) % WRAP);
        }
        assert_eq!(shift(seg, 0, |_| 0), seg.to_vec());
        assert_eq!(shift(b"not ts", 5, |_| 3), b"not ts".to_vec());
        // Counters advance per PID and wrap at 16.
        let moved = shift(seg, 0, |_| 15);
        let (before, after) = (counters(seg), counters(&moved));
        for (pid, (first, n)) in &before {
            assert_eq!(after[pid], ((first + 15) & 0x0f, *n));
        }
    }
}

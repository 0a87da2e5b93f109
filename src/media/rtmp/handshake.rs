//! The RTMP handshake, pure: a client's C0+C1 in, the server's S0+S1+S2 out (and
//! the client side livegate uses toward origins).
//!
//! Encoders send one of two C1s. A plain one (version bytes 0, librtmp and OBS
//! without RTMPE) is answered the old way: S1 with version 0, S2 echoing C1. A
//! digest one (ffmpeg, Flash-era clients) carries an HMAC-SHA256 at an offset the
//! C1 itself encodes; it is answered as nginx-rtmp and Adobe's servers do: S1
//! with a server digest, S2 signed with a key derived from the client's digest.
//! A C1 whose digest does not verify is answered the plain way. C2 is read and
//! ignored (clients differ in what they send; strict checks break real ones).

use ring::hmac;
use thiserror::Error;

/// C1, S1, C2 and S2 are this long.
pub const SIZE: usize = 1536;
/// RTMP's version byte (C0, S0).
pub const VERSION: u8 = 3;

const FMS_KEY: [u8; 68] = {
    let text = *b"Genuine Adobe Flash Media Server 001";
    let mut k = [0u8; 68];
    let mut i = 0;
    while i < 36 {
        k[i] = text[i];
        i += 1;
    }
    let mut j = 0;
    while j < 32 {
        k[36 + j] = KEY_TAIL[j];
        j += 1;
    }
    k
};
const FP_KEY_OPEN: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
/// The version livegate's S1 claims in the digest handshake (nginx-rtmp's).
const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    #[error("C0 is version {0}, not 3 (not RTMP, or RTMPE)")]
    Version(u8),
}

/// Where a digest sits in a 1536-byte block for the scheme based at `base` (8 or
/// 772): the block's four bytes there, summed, pick one of 728 places after them.
fn digest_at(block: &[u8; SIZE], base: usize) -> usize {
    let sum: usize = block[base..base + 4].iter().map(|&b| b as usize).sum();
    sum % 728 + base + 4
}

/// HMAC-SHA256 of the block without the 32 bytes at `at`.
fn digest(block: &[u8; SIZE], at: usize, key: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut c = hmac::Context::with_key(&key);
    c.update(&block[..at]);
    c.update(&block[at + 32..]);
    let mut out = [0u8; 32];
    out.copy_from_slice(c.sign().as_ref());
    out
}

/// The client digest of a C1, if it carries one that verifies (either scheme).
fn client_digest(c1: &[u8; SIZE]) -> Option<([u8; 32], usize)> {
    if c1[4..8] == [0, 0, 0, 0] {
        return None;
    }
    [772, 8].into_iter().find_map(|base| {
        let at = digest_at(c1, base);
        let d = digest(c1, at, FP_KEY_OPEN);
        (d[..] == c1[at..at + 32]).then_some((d, base))
    })
}

/// The server's answer to C0+C1: S0, S1 and S2 (`random` fills S1 and S2).
pub fn answer(c0: u8, c1: &[u8; SIZE], random: &[u8; 2 * SIZE]) -> Result<Vec<u8>, HandshakeError> {
    if c0 != VERSION {
        return Err(HandshakeError::Version(c0));
    }
    let mut s1 = [0u8; SIZE];
    s1.copy_from_slice(&random[..SIZE]);
    s1[..4].copy_from_slice(&[0; 4]);
    let mut out = Vec::with_capacity(1 + 2 * SIZE);
    out.push(VERSION);
    match client_digest(c1) {
        None => {
            s1[4..8].copy_from_slice(&[0; 4]);
            out.extend_from_slice(&s1);
            out.extend_from_slice(c1);
        }
        Some((theirs, base)) => {
            s1[4..8].copy_from_slice(&SERVER_VERSION);
            let at = digest_at(&s1, base);
            let d = digest(&s1, at, &FMS_KEY[..36]);
            s1[at..at + 32].copy_from_slice(&d);
            out.extend_from_slice(&s1);
            let mut s2 = [0u8; SIZE];
            s2.copy_from_slice(&random[SIZE..]);
            let key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &FMS_KEY), &theirs);
            let sig = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
                &s2[..SIZE - 32],
            );
            s2[SIZE - 32..].copy_from_slice(sig.as_ref());
            out.extend_from_slice(&s2);
        }
    }
    Ok(out)
}

/// What livegate sends an origin: C0 and a plain C1 (every server answers it).
pub fn client_hello(random: &[u8; SIZE]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + SIZE);
    out.push(VERSION);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&random[8..]);
    out
}

/// C2 for an origin's S1: its echo (servers that check, check that).
pub fn client_ack(s1: &[u8; SIZE]) -> Vec<u8> {
    s1.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(seed: u8) -> [u8; 2 * SIZE] {
        let mut r = [0u8; 2 * SIZE];
        for (i, b) in r.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        r
    }

    /// A C1 as ffmpeg makes it: version bytes set, a player digest at base 8.
    fn digest_c1() -> [u8; SIZE] {
        let mut c1 = [0u8; SIZE];
        c1.copy_from_slice(&random(7)[..SIZE]);
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        let at = digest_at(&c1, 8);
        let d = digest(&c1, at, FP_KEY_OPEN);
        c1[at..at + 32].copy_from_slice(&d);
        c1
    }

    #[test]
    fn a_plain_c1_gets_an_echo() {
        let mut c1 = [5u8; SIZE];
        c1[4..8].copy_from_slice(&[0; 4]);
        let out = answer(3, &c1, &random(1)).unwrap();
        assert_eq!(out.len(), 1 + 2 * SIZE);
        assert_eq!(out[0], 3);
        assert_eq!(&out[5..9], &[0; 4]);
        assert_eq!(&out[1 + SIZE..], &c1[..]);
    }

    #[test]
    fn a_digest_c1_gets_a_signed_answer_that_a_client_verifies() {
        let c1 = digest_c1();
        let out = answer(3, &c1, &random(1)).unwrap();
        let mut s1 = [0u8; SIZE];
        s1.copy_from_slice(&out[1..1 + SIZE]);
        // What ffmpeg checks when playing: the server digest in S1 (base 772 or 8)…
        let at = digest_at(&s1, 8);
        assert_eq!(&s1[at..at + 32], &digest(&s1, at, &FMS_KEY[..36])[..]);
        assert_eq!(&s1[4..8], &SERVER_VERSION);
        // …and S2 signed with HMAC(server key, the client's digest).
        let c_at = digest_at(&c1, 8);
        let key = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &FMS_KEY),
            &c1[c_at..c_at + 32],
        );
        let s2 = &out[1 + SIZE..];
        let sig = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            &s2[..SIZE - 32],
        );
        assert_eq!(&s2[SIZE - 32..], sig.as_ref());
    }

    #[test]
    fn a_c1_whose_digest_is_wrong_is_answered_plainly_and_rtmpe_refused() {
        let mut c1 = digest_c1();
        c1[100] ^= 1;
        c1[900] ^= 1;
        let out = answer(3, &c1, &random(1)).unwrap();
        assert_eq!(&out[1 + SIZE..], &c1[..]);
        assert_eq!(answer(6, &c1, &random(1)), Err(HandshakeError::Version(6)));
        assert_eq!(
            answer(b'G', &c1, &random(1)),
            Err(HandshakeError::Version(b'G'))
        );
    }
}

//! SSE-C at rest: AES-256-CTR with a random IV per stored segment, and the salted
//! fingerprint by which the server recognises a customer key without keeping it.
//!
//! CTR keeps ranged reads cheap (seek the keystream to any offset) and keeps the stored
//! size equal to the plaintext size, so file offsets are plaintext offsets. A single PUT is
//! one segment; a completed multipart object is one segment per part (each part was
//! encrypted with its own IV when it was uploaded, so Complete concatenates ciphertext).

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// A run of stored bytes encrypted with one IV, at plaintext offset `start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub start: u64,
    pub len: u64,
    /// 16-byte IV, hex.
    pub iv: String,
}

/// A random 16-byte IV.
pub fn new_iv() -> [u8; 16] {
    let mut iv = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut iv);
    iv
}

/// A CTR cipher positioned at `offset` bytes into the keystream of (`key`, `iv`).
pub fn cipher_at(key: &[u8; 32], iv: &[u8; 16], offset: u64) -> Aes256Ctr {
    let mut c = Aes256Ctr::new(key.into(), iv.into());
    c.seek(offset);
    c
}

/// Parses a segment IV back from hex.
pub fn iv_from_hex(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut iv = [0u8; 16];
    for (i, slot) in iv.iter_mut().enumerate() {
        *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(iv)
}

/// En/decrypts in place `buf`, which holds the stored bytes at plaintext offset `pos`,
/// using whichever segments cover it. Bytes outside every segment are left alone (there
/// are none in a well-formed object).
pub fn apply_segments(key: &[u8; 32], segments: &[Segment], pos: u64, buf: &mut [u8]) {
    let end = pos + buf.len() as u64;
    for seg in segments {
        let seg_end = seg.start + seg.len;
        if seg_end <= pos || seg.start >= end {
            continue;
        }
        let Some(iv) = iv_from_hex(&seg.iv) else {
            continue;
        };
        let from = pos.max(seg.start);
        let to = end.min(seg_end);
        let mut c = cipher_at(key, &iv, from - seg.start);
        c.apply_keystream(&mut buf[(from - pos) as usize..(to - pos) as usize]);
    }
}

/// What the server keeps to recognise an SSE-C key: a random salt and SHA-256(salt || key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFingerprint {
    pub salt: String,
    pub hash: String,
}

impl KeyFingerprint {
    pub fn new(key: &[u8; 32]) -> KeyFingerprint {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let salt = cos_wire::sign::hex(&salt);
        let hash = salted(&salt, key);
        KeyFingerprint { salt, hash }
    }

    /// Whether `key` is the key this fingerprint was made from (constant-time compare).
    pub fn matches(&self, key: &[u8; 32]) -> bool {
        let h = salted(&self.salt, key);
        h.len() == self.hash.len()
            && h.bytes()
                .zip(self.hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn salted(salt: &str, key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(key);
    cos_wire::sign::hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decrypt_any_subrange() {
        let key = [7u8; 32];
        let plain: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        // Two segments with their own IVs, as a two-part multipart object.
        let (iv1, iv2) = (new_iv(), new_iv());
        let segs = vec![
            Segment {
                start: 0,
                len: 3000,
                iv: cos_wire::sign::hex(&iv1),
            },
            Segment {
                start: 3000,
                len: 2000,
                iv: cos_wire::sign::hex(&iv2),
            },
        ];
        let mut stored = plain.clone();
        cipher_at(&key, &iv1, 0).apply_keystream(&mut stored[..3000]);
        cipher_at(&key, &iv2, 0).apply_keystream(&mut stored[3000..]);
        assert_ne!(stored, plain);
        for (a, b) in [
            (0usize, 5000usize),
            (17, 18),
            (2990, 3010),
            (3001, 4999),
            (100, 2900),
        ] {
            let mut buf = stored[a..b].to_vec();
            apply_segments(&key, &segs, a as u64, &mut buf);
            assert_eq!(buf, &plain[a..b], "range {a}..{b}");
        }
    }

    #[test]
    fn fingerprint_recognises_only_its_key() {
        let fp = KeyFingerprint::new(&[1u8; 32]);
        assert!(fp.matches(&[1u8; 32]));
        assert!(!fp.matches(&[2u8; 32]));
        assert_ne!(
            fp.salt,
            KeyFingerprint::new(&[1u8; 32]).salt,
            "salt is random"
        );
        assert!(!fp.hash.contains(&cos_wire::sign::hex(&[1u8; 32])));
    }

    #[test]
    fn iv_hex_round_trip() {
        let iv = new_iv();
        assert_eq!(iv_from_hex(&cos_wire::sign::hex(&iv)), Some(iv));
        assert_eq!(iv_from_hex("zz"), None);
    }
}

//! End-to-end read verification: the CRC-64 of what one handle was given, compared with
//! the CRC-64 COS reports for the object (`x-cos-hash-crc64ecma`).
//!
//! COS gives one CRC for the whole object and none for a range, so only a read of the
//! whole object can be checked. Each cached block carries the CRC of its bytes (computed
//! once, when it arrives); a handle records the blocks it was served, and as soon as it
//! has been served every block of the object (in any order: the kernel's read-ahead
//! delivers nearby reads out of order) the block CRCs are combined and compared. Blocks
//! are folded into a running CRC as the served prefix grows, so the state is a few words
//! plus the blocks served ahead of the prefix (bounded: a handle that jumps around more
//! than that simply is not verified).

use crate::cos::crc64;
use std::collections::BTreeMap;

/// Blocks served ahead of the contiguous prefix that are remembered before giving up.
const MAX_AHEAD: usize = 4096;

/// What recording a block concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not every block has been served yet (or this handle is not verifying).
    Pending,
    /// Every byte served matches the object's CRC-64.
    Verified,
    /// The object has no CRC-64 to compare with.
    NoChecksum,
    /// What was served does not match: `computed` against `expected`.
    Mismatch { expected: u64, computed: u64 },
}

/// The verification state of one handle for one object version.
#[derive(Debug, Default)]
pub struct Verifier {
    etag: String,
    blocks: u64,
    /// Blocks `0..next` are folded into `acc`.
    next: u64,
    acc: u64,
    ahead: BTreeMap<u64, (u64, u64)>,
    expected: Option<u64>,
    finished: bool,
    /// Prepared for the usual block length (every block but maybe the last).
    combiner: Option<crc64::Combiner>,
}

impl Verifier {
    /// Starts over when the handle reads another version (or for the first time).
    pub fn reset_for(&mut self, etag: &str, blocks: u64) {
        if self.etag != etag || self.blocks != blocks {
            *self = Verifier {
                etag: etag.to_string(),
                blocks,
                ..Verifier::default()
            };
        }
    }

    /// Remembers the object's CRC-64 as reported by COS.
    pub fn expect(&mut self, crc: Option<u64>) {
        if self.expected.is_none() {
            self.expected = crc;
        }
    }

    /// Appends the next block to the running CRC.
    fn fold(&mut self, crc: u64, len: u64) {
        if self.combiner.as_ref().map(|c| c.len()) != Some(len) && self.next == 0 {
            self.combiner = Some(crc64::Combiner::new(len));
        }
        self.acc = match &self.combiner {
            Some(c) if c.len() == len => c.combine(self.acc, crc),
            _ => crc64::combine(self.acc, crc, len),
        };
        self.next += 1;
    }

    /// Records that block `index` (`len` bytes, CRC-64 `crc`) was served.
    pub fn record(&mut self, index: u64, crc: u64, len: u64) -> Verdict {
        if self.finished || index < self.next || index >= self.blocks {
            return Verdict::Pending;
        }
        if index > self.next {
            self.ahead.insert(index, (crc, len));
            if self.ahead.len() > MAX_AHEAD {
                // Too scattered to follow: this handle is not verified.
                self.finished = true;
                self.ahead.clear();
            }
            return Verdict::Pending;
        }
        self.fold(crc, len);
        while let Some((c, l)) = self.ahead.remove(&self.next) {
            self.fold(c, l);
        }
        if self.next < self.blocks {
            return Verdict::Pending;
        }
        self.finished = true;
        match self.expected {
            None => Verdict::NoChecksum,
            Some(e) if e == self.acc => Verdict::Verified,
            Some(e) => Verdict::Mismatch {
                expected: e,
                computed: self.acc,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(data: &[u8], bs: usize) -> Vec<(u64, u64)> {
        data.chunks(bs)
            .map(|c| (crc64::crc64(c), c.len() as u64))
            .collect()
    }

    #[test]
    fn in_order_and_out_of_order_reads_verify() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let bl = blocks(&data, 1024);
        let whole = crc64::crc64(&data);
        for order in [
            (0..bl.len()).collect::<Vec<_>>(),
            (0..bl.len()).rev().collect(),
            vec![1, 0, 3, 2, 5, 4, 7, 6, 9, 8],
        ] {
            let mut v = Verifier::default();
            v.reset_for("e", bl.len() as u64);
            v.expect(Some(whole));
            let mut last = Verdict::Pending;
            for (n, &i) in order.iter().enumerate() {
                last = v.record(i as u64, bl[i].0, bl[i].1);
                if n + 1 < order.len() {
                    assert_eq!(last, Verdict::Pending);
                }
            }
            assert_eq!(last, Verdict::Verified, "{order:?}");
        }
    }

    #[test]
    fn a_flipped_bit_is_a_mismatch_and_a_missing_crc_is_said() {
        let mut data = vec![5u8; 3000];
        let whole = crc64::crc64(&data);
        data[1500] ^= 1;
        let bl = blocks(&data, 1024);
        let mut v = Verifier::default();
        v.reset_for("e", 3);
        v.expect(Some(whole));
        v.record(0, bl[0].0, bl[0].1);
        v.record(1, bl[1].0, bl[1].1);
        assert!(matches!(
            v.record(2, bl[2].0, bl[2].1),
            Verdict::Mismatch { expected, .. } if expected == whole
        ));
        let mut v = Verifier::default();
        v.reset_for("e", 1);
        assert_eq!(v.record(0, 1, 1), Verdict::NoChecksum);
        // Repeated reads after the end decide nothing again.
        assert_eq!(v.record(0, 1, 1), Verdict::Pending);
    }

    #[test]
    fn another_version_starts_over() {
        let mut v = Verifier::default();
        v.reset_for("a", 2);
        v.record(0, 1, 1);
        v.reset_for("a", 2);
        assert_eq!(v.next, 1);
        v.reset_for("b", 2);
        assert_eq!(v.next, 0);
    }
}

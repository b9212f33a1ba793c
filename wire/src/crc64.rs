//! CRC-64 as COS computes it (`x-cos-hash-crc64ecma`, which is CRC-64/XZ: reflected ECMA-182
//! polynomial, all-ones init and final xor), and the combination of two CRCs.
//!
//! `combine` lets the client check a multipart object end to end: each part's CRC is
//! computed locally when it is uploaded, and Complete's answer must equal the CRCs of the
//! parts combined in order. It uses the GF(2) matrix method (as zlib's `crc32_combine`):
//! appending `len2` zero bytes to a message is a linear map on the CRC register, built by
//! repeated squaring of the one-zero-bit operator, so the cost is O(log len2) matrix
//! products and never touches the data again.

/// The reflected ECMA-182 polynomial.
const POLY: u64 = 0xC96C_5795_D787_0F42;

/// CRC-64/XZ of `data`.
pub fn crc64(data: &[u8]) -> u64 {
    let mut d = crc64fast::Digest::new();
    d.write(data);
    d.sum64()
}

/// An incremental CRC-64/XZ.
#[derive(Clone)]
pub struct Crc64(crc64fast::Digest);

impl Default for Crc64 {
    fn default() -> Self {
        Crc64(crc64fast::Digest::new())
    }
}

impl Crc64 {
    pub fn update(&mut self, data: &[u8]) {
        self.0.write(data);
    }

    pub fn finish(&self) -> u64 {
        self.0.sum64()
    }
}

type Matrix = [u64; 64];

fn times(m: &Matrix, mut v: u64) -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while v != 0 {
        if v & 1 != 0 {
            sum ^= m[i];
        }
        v >>= 1;
        i += 1;
    }
    sum
}

fn square(m: &Matrix) -> Matrix {
    let mut out = [0u64; 64];
    for (n, row) in out.iter_mut().enumerate() {
        *row = times(m, m[n]);
    }
    out
}

/// The CRC of `A ‖ B` from `crc(A)`, `crc(B)` and `len(B)`.
pub fn combine(crc1: u64, crc2: u64, len2: u64) -> u64 {
    if len2 == 0 {
        return crc1;
    }
    // The operator for one zero bit: shift right, xor the polynomial when the low bit was set.
    let mut odd: Matrix = [0; 64];
    odd[0] = POLY;
    for (n, row) in odd.iter_mut().enumerate().skip(1) {
        *row = 1u64 << (n - 1);
    }
    let even = square(&odd); // two zero bits
    let mut odd = square(&even); // four zero bits
    let mut even;
    let mut crc1 = crc1;
    let mut len2 = len2;
    // Each pass squares once more (first 8 bits = one zero byte) and applies the operator
    // for the current bit of len2.
    loop {
        even = square(&odd);
        if len2 & 1 != 0 {
            crc1 = times(&even, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
        odd = square(&even);
        if len2 & 1 != 0 {
            crc1 = times(&odd, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
    }
    crc1 ^ crc2
}

/// `combine` for a fixed `len2`, with the operator built once: combining many pieces of
/// the same length (the blocks of a read) then costs 64 steps each instead of O(log len)
/// matrix products.
#[derive(Clone)]
pub struct Combiner {
    len: u64,
    op: Matrix,
}

impl Combiner {
    /// The operator that appends `len` zero bytes to a CRC register.
    pub fn new(len: u64) -> Combiner {
        let mut bit: Matrix = [0; 64];
        bit[0] = POLY;
        for (n, row) in bit.iter_mut().enumerate().skip(1) {
            *row = 1u64 << (n - 1);
        }
        // One zero byte = eight zero bits.
        let mut p = square(&square(&square(&bit)));
        let mut op: Matrix = [0; 64];
        for (n, row) in op.iter_mut().enumerate() {
            *row = 1u64 << n;
        }
        let mut n = len;
        while n > 0 {
            if n & 1 != 0 {
                op = product(&p, &op);
            }
            p = square(&p);
            n >>= 1;
        }
        Combiner { len, op }
    }

    /// The length this combiner appends.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it appends nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The CRC of `A ‖ B` from `crc(A)` and `crc(B)`, where `len(B)` is this combiner's.
    pub fn combine(&self, crc1: u64, crc2: u64) -> u64 {
        times(&self.op, crc1) ^ crc2
    }
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combiner").field("len", &self.len).finish()
    }
}

fn product(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = [0u64; 64];
    for (n, row) in out.iter_mut().enumerate() {
        *row = times(a, b[n]);
    }
    out
}

/// Combines the CRCs of consecutive pieces `(crc, len)` into the CRC of the whole; `None` if
/// the list is empty.
pub fn combine_all(pieces: impl IntoIterator<Item = (u64, u64)>) -> Option<u64> {
    let mut acc: Option<u64> = None;
    for (crc, len) in pieces {
        acc = Some(match acc {
            None => crc,
            Some(a) => combine(a, crc, len),
        });
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_of_crc64_xz() {
        // The catalogue check value of CRC-64/XZ for "123456789".
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn matches_the_cos_doc_example() {
        // COS documents a 16-byte example with CRC 16749565679157681890 without giving its bytes
        // literally, so pin the incremental form against the one-shot instead.
        let mut c = Crc64::default();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), crc64(b"123456789"));
    }

    #[test]
    fn combine_equals_a_direct_crc() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for split in [0usize, 1, 7, 8, 9, 255, 4096, 65_537, 69_999, 70_000] {
            let (a, b) = data.split_at(split);
            assert_eq!(
                combine(crc64(a), crc64(b), b.len() as u64),
                crc64(&data),
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_prepared_combiner_equals_combine() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| ((i * 31) ^ (i >> 3)) as u8)
            .collect();
        for len in [0u64, 1, 8, 4096, 65_536, 100_001] {
            let c = Combiner::new(len);
            let (a, b) = data.split_at(data.len() - len as usize);
            assert_eq!(c.combine(crc64(a), crc64(b)), crc64(&data), "len {len}");
            assert_eq!(
                c.combine(crc64(a), crc64(b)),
                combine(crc64(a), crc64(b), len)
            );
        }
    }

    #[test]
    fn combine_all_over_many_parts() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i ^ (i >> 5)) as u8).collect();
        let pieces: Vec<(u64, u64)> = data
            .chunks(12_345)
            .map(|c| (crc64(c), c.len() as u64))
            .collect();
        assert_eq!(combine_all(pieces), Some(crc64(&data)));
        assert_eq!(combine_all(Vec::new()), None);
    }
}

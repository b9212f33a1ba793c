//! CRC-64/XZ (what COS calls `crc64ecma`) helpers: the whole-object checksum of a multipart
//! object is combined from the part checksums, because SSE-C parts cannot be re-read as
//! plaintext at Complete time (the key is not sent then).

/// The reflected ECMA-182 polynomial used by CRC-64/XZ.
const POLY_REFLECTED: u64 = 0xC96C_5795_D787_0F42;

/// The CRC-64/XZ of `data`.
pub fn crc64(data: &[u8]) -> u64 {
    let mut d = crc64fast::Digest::new();
    d.write(data);
    d.sum64()
}

fn gf2_times(mat: &[u64; 64], mut vec: u64) -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while vec != 0 {
        if vec & 1 != 0 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

fn gf2_square(square: &mut [u64; 64], mat: &[u64; 64]) {
    for n in 0..64 {
        square[n] = gf2_times(mat, mat[n]);
    }
}

/// CRC of `A || B` from `crc(A)`, `crc(B)` and `len(B)` (the zlib `crc32_combine` method,
/// widened to 64 bits; it holds for CRCs whose init and final xor are all ones).
pub fn combine(mut crc1: u64, crc2: u64, mut len2: u64) -> u64 {
    if len2 == 0 {
        return crc1;
    }
    let mut even = [0u64; 64];
    let mut odd = [0u64; 64];
    // The operator for one zero bit.
    odd[0] = POLY_REFLECTED;
    let mut row = 1u64;
    for slot in odd.iter_mut().skip(1) {
        *slot = row;
        row <<= 1;
    }
    gf2_square(&mut even, &odd); // two zero bits
    gf2_square(&mut odd, &even); // four zero bits
    loop {
        gf2_square(&mut even, &odd);
        if len2 & 1 != 0 {
            crc1 = gf2_times(&even, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
        gf2_square(&mut odd, &even);
        if len2 & 1 != 0 {
            crc1 = gf2_times(&odd, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
    }
    crc1 ^ crc2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_cos_doc_value() {
        // cos-api.md §3.3: 16 bytes whose MD5 is ee8de918... have crc64ecma 16749565679157681890;
        // the check value of CRC-64/XZ over "123456789" is 0x995DC9BBDF1939FA.
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
    }

    #[test]
    fn combine_equals_crc_of_concatenation() {
        let a: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let b: Vec<u8> = (0..777u32).map(|i| (i * 13 + 1) as u8).collect();
        let mut ab = a.clone();
        ab.extend_from_slice(&b);
        assert_eq!(combine(crc64(&a), crc64(&b), b.len() as u64), crc64(&ab));
        assert_eq!(combine(crc64(&a), crc64(b""), 0), crc64(&a));
        assert_eq!(combine(crc64(b""), crc64(&b), b.len() as u64), crc64(&b));
    }
}

//! HTTP `Range` header parsing for GET Object: one `bytes=` range (`a-b`, `a-`, `-n`),
//! resolved against the object size into an inclusive byte span.

/// A parsed `Range: bytes=...` value, before the object size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `a-b`, inclusive.
    FromTo(u64, u64),
    /// `a-`: from `a` to the end.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// Parses a `Range` header. `Err` explains why it is malformed; COS takes a single range
/// only, so a list of ranges is refused rather than silently served whole.
pub fn parse_range(value: &str) -> Result<RangeSpec, String> {
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(|| format!("Range must start with bytes=: {value:?}"))?;
    if spec.contains(',') {
        return Err("only one byte range is supported".into());
    }
    let (a, b) = spec
        .split_once('-')
        .ok_or_else(|| format!("Range lacks '-': {value:?}"))?;
    let num = |s: &str| -> Result<u64, String> {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("Range has a bad number: {value:?}"))
    };
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => Err(format!("Range is empty: {value:?}")),
        (true, false) => Ok(RangeSpec::Suffix(num(b)?)),
        (false, true) => Ok(RangeSpec::From(num(a)?)),
        (false, false) => {
            let (x, y) = (num(a)?, num(b)?);
            if x > y {
                return Err(format!("Range end before start: {value:?}"));
            }
            Ok(RangeSpec::FromTo(x, y))
        }
    }
}

/// Resolves a range against `size`: the inclusive `(first, last)`, or `None` when it cannot
/// be satisfied (416 InvalidRange). An end beyond the object is clamped, as HTTP says.
pub fn resolve(spec: RangeSpec, size: u64) -> Option<(u64, u64)> {
    if size == 0 {
        return None;
    }
    match spec {
        RangeSpec::FromTo(a, b) if a < size => Some((a, b.min(size - 1))),
        RangeSpec::From(a) if a < size => Some((a, size - 1)),
        RangeSpec::Suffix(n) if n > 0 => Some((size - n.min(size), size - 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(parse_range("bytes=0-9"), Ok(RangeSpec::FromTo(0, 9)));
        assert_eq!(parse_range("bytes=5-"), Ok(RangeSpec::From(5)));
        assert_eq!(parse_range("bytes=-3"), Ok(RangeSpec::Suffix(3)));
    }

    #[test]
    fn refuses_malformed_ranges() {
        for bad in [
            "0-9",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=9-3",
            "bytes=0-1,3-4",
            "items=0-1",
        ] {
            assert!(parse_range(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn resolves_against_size() {
        assert_eq!(resolve(RangeSpec::FromTo(8, 14), 16), Some((8, 14)));
        assert_eq!(resolve(RangeSpec::FromTo(8, 100), 16), Some((8, 15)));
        assert_eq!(resolve(RangeSpec::From(15), 16), Some((15, 15)));
        assert_eq!(resolve(RangeSpec::From(16), 16), None);
        assert_eq!(resolve(RangeSpec::Suffix(4), 16), Some((12, 15)));
        assert_eq!(resolve(RangeSpec::Suffix(40), 16), Some((0, 15)));
        assert_eq!(resolve(RangeSpec::Suffix(0), 16), None);
        assert_eq!(resolve(RangeSpec::FromTo(0, 0), 0), None);
    }
}

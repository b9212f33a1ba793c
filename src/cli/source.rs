//! The first positional, `BUCKET-APPID[:/PREFIX]` (cosfs syntax): the bucket name with
//! its APPID suffix, and an optional key prefix the mount is rooted at, normalised to
//! `""` or `"a/b/"` as `FsConfig::prefix` wants.

use super::error::CliError;

/// A parsed mount source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `name-appid`.
    pub bucket: String,
    /// `""` or a prefix ending in `/`, without a leading `/`.
    pub prefix: String,
}

/// Parses `BUCKET-APPID`, `BUCKET-APPID:/PREFIX` or `BUCKET-APPID:PREFIX`.
pub fn parse_source(s: &str) -> Result<Source, CliError> {
    let (bucket, prefix) = match s.split_once(':') {
        Some((b, p)) => (b, p),
        None => (s, ""),
    };
    check_bucket(bucket)?;
    Ok(Source {
        bucket: bucket.to_string(),
        prefix: normalise_prefix(prefix)?,
    })
}

/// COS bucket names are lowercase letters, digits and `-`, and always end in `-APPID`.
fn check_bucket(b: &str) -> Result<(), CliError> {
    let valid_chars = !b.is_empty()
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !b.starts_with('-');
    let has_appid = b.rsplit_once('-').is_some_and(|(name, appid)| {
        !name.is_empty() && !appid.is_empty() && appid.bytes().all(|c| c.is_ascii_digit())
    });
    if !valid_chars || !has_appid {
        return Err(CliError::usage(format!(
            "invalid bucket '{b}': expected BUCKET-APPID such as examplebucket-1250000000 \
             (lowercase letters, digits and '-', ending in the numeric APPID)"
        )));
    }
    Ok(())
}

fn normalise_prefix(p: &str) -> Result<String, CliError> {
    let trimmed = p.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for part in trimmed.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(CliError::usage(format!(
                "invalid prefix '{p}': empty, '.' and '..' path components are not allowed"
            )));
        }
    }
    Ok(format!("{trimmed}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (String, String) {
        let src = parse_source(s).expect("valid");
        (src.bucket, src.prefix)
    }

    #[test]
    fn bucket_only() {
        assert_eq!(
            ok("examplebucket-1250000000"),
            ("examplebucket-1250000000".into(), "".into())
        );
        assert_eq!(ok("my-bkt-1:/"), ("my-bkt-1".into(), "".into()));
        assert_eq!(ok("my-bkt-1:"), ("my-bkt-1".into(), "".into()));
    }

    #[test]
    fn prefixes_normalised() {
        assert_eq!(ok("b-1:/data").1, "data/");
        assert_eq!(ok("b-1:/data/x/").1, "data/x/");
        assert_eq!(ok("b-1:data/x").1, "data/x/");
        assert_eq!(ok("b-1://data").1, "data/");
    }

    #[test]
    fn bad_buckets() {
        for b in [
            "", "bucket", "Bucket-1", "b_1-1", "b-", "-1", "b-12a", "b-1 ",
        ] {
            let e = parse_source(b).unwrap_err();
            assert!(e.message.contains("BUCKET-APPID"), "{b}: {}", e.message);
        }
    }

    #[test]
    fn bad_prefixes() {
        for p in ["b-1:/a//b", "b-1:/a/../b", "b-1:/./a"] {
            assert!(
                parse_source(p)
                    .unwrap_err()
                    .message
                    .contains("invalid prefix"),
                "{p}"
            );
        }
    }
}

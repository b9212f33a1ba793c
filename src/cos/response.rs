//! Reading what COS sent back, independent of the client that sent the request: response
//! headers into [`ObjectMeta`] (ETag, Content-Length, CRC-64, Content-Range, `x-cos-meta-*`,
//! SSE), the result body of Copy / Upload Part - Copy / Complete (`<Error>` inside a 200,
//! missing ETag), CRC-64 comparison, transport errors into [`CosError`], and which
//! failures may just be the wrong SSE-C key.

use super::error::{classify, CosError, CosErrorKind};
use super::op::CosOp;
use super::xml::{self, ResultBody};
use super::{Encryption, ObjectMeta};
use reqwest::header::HeaderMap;
use std::collections::BTreeMap;
use std::time::SystemTime;

pub(super) fn transport_error(op: CosOp, key: &str, e: reqwest::Error) -> CosError {
    let kind = if e.is_timeout() {
        CosErrorKind::Timeout
    } else {
        CosErrorKind::Transport
    };
    // The cause chain names what happened (reset, TLS, refused). The URL is left out;
    // reqwest errors never carry header values.
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    CosError::local(kind, op, key, msg)
}

pub(super) fn invalid(op: CosOp, key: &str, msg: &str) -> CosError {
    CosError::local(CosErrorKind::InvalidResponse, op, key, msg)
}

pub(super) fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// The Content-Length header itself (reqwest's `content_length()` is the body's size,
/// which is 0 for any HEAD response).
pub(super) fn content_length(h: &HeaderMap) -> Option<u64> {
    header(h, "content-length").and_then(|v| v.parse().ok())
}

pub(super) fn crc_header(h: &HeaderMap) -> Option<u64> {
    header(h, "x-cos-hash-crc64ecma").and_then(|v| v.parse().ok())
}

pub(super) fn etag_header(op: CosOp, key: &str, h: &HeaderMap) -> Result<String, CosError> {
    header(h, "etag")
        .map(|e| xml::unquote_etag(&e))
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid(op, key, "response without an ETag"))
}

/// `bytes first-last/total` → numbers.
pub(super) fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, t): (u64, u64, u64) = (
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (a <= b && b < t).then_some((a, b, t))
}

pub(super) fn meta_from_headers(
    op: CosOp,
    key: &str,
    h: &HeaderMap,
    size: u64,
) -> Result<ObjectMeta, CosError> {
    let etag = etag_header(op, key, h)?;
    let last_modified = header(h, "last-modified")
        .and_then(|v| httpdate::parse_http_date(&v).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut user_meta = BTreeMap::new();
    for (name, value) in h {
        if let Some(suffix) = name.as_str().strip_prefix("x-cos-meta-") {
            if let Ok(v) = value.to_str() {
                user_meta.insert(suffix.to_string(), v.to_string());
            }
        }
    }
    let encryption = if let Some(md5) = header(h, "x-cos-server-side-encryption-customer-key-md5") {
        Encryption::Customer { key_md5: md5 }
    } else {
        match header(h, "x-cos-server-side-encryption").as_deref() {
            Some("cos/kms") => Encryption::Kms {
                key_id: header(h, "x-cos-server-side-encryption-cos-kms-key-id"),
            },
            Some(_) => Encryption::CosManaged,
            None => Encryption::None,
        }
    };
    Ok(ObjectMeta {
        key: key.to_string(),
        size,
        etag,
        last_modified,
        content_type: header(h, "content-type"),
        user_meta,
        crc64: crc_header(h),
        storage_class: header(h, "x-cos-storage-class").filter(|s| s != "STANDARD"),
        encryption,
    })
}

/// Parses the body of Copy / Upload Part - Copy / Complete: `<Error>` inside a 200 and a
/// missing ETag are failures.
pub(super) fn result_body(
    op: CosOp,
    key: &str,
    body: &[u8],
) -> Result<(String, Option<u64>), CosError> {
    match xml::parse_result_with_etag(body) {
        Ok(ResultBody::Ok { etag, crc64 }) => Ok((etag, crc64)),
        Ok(ResultBody::Error(e)) => {
            let mut err = CosError::from_response(
                op,
                key,
                200,
                e.code,
                e.message
                    .unwrap_or_else(|| "error inside a 200 response".into()),
                e.request_id,
            );
            // Transient server-side failures stay retryable; anything else is a failed
            // request that a retry would not fix.
            err.kind = match err.code.as_deref() {
                Some("InternalError") | Some("ServiceUnavailable") | Some("SlowDown") => {
                    classify(500, err.code.as_deref())
                }
                _ => CosErrorKind::InvalidResponse,
            };
            Err(err)
        }
        Err(m) => Err(invalid(op, key, &m)),
    }
}

pub(super) fn check_crc(
    op: CosOp,
    key: &str,
    want: Option<u64>,
    got: Option<u64>,
    what: &str,
) -> Result<(), CosError> {
    match (want, got) {
        (Some(w), Some(g)) if w != g => Err(CosError::local(
            CosErrorKind::IntegrityMismatch,
            op,
            key,
            format!("CRC-64 mismatch: COS stored {g}, {what} has {w}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(parse_content_range("bytes 8-14/16"), Some((8, 14, 16)));
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0, 0, 1)));
        assert_eq!(parse_content_range("bytes 5-4/16"), None);
        assert_eq!(parse_content_range("bytes 0-16/16"), None);
        assert_eq!(parse_content_range("bytes */16"), None);
    }

    #[test]
    fn error_in_200_is_typed() {
        let b = b"<Error><Code>InternalError</Code></Error>";
        assert_eq!(
            result_body(CosOp::CopyObject, "k", b).unwrap_err().kind,
            CosErrorKind::ServerError
        );
        let b = b"<Error><Code>NoSuchKey</Code></Error>";
        assert_eq!(
            result_body(CosOp::CopyObject, "k", b).unwrap_err().kind,
            CosErrorKind::InvalidResponse
        );
        let b = b"<CopyObjectResult></CopyObjectResult>";
        assert_eq!(
            result_body(CosOp::CopyObject, "k", b).unwrap_err().kind,
            CosErrorKind::InvalidResponse
        );
    }
}

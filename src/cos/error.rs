//! `CosError`: what a COS request can end in, classified once at the HTTP edge.
//!
//! The kind is decided from the HTTP status and the XML `<Code>`, never from message
//! text. Every error keeps the operation, the object key, the COS request id and code so
//! a log line can name exactly what failed. Errors never carry secrets: header values are
//! not copied into them.

use super::op::CosOp;

/// The class of a failure; the filesystem maps these to errno values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CosErrorKind {
    /// 404 NoSuchKey / NoSuchUpload / NoSuchBucket / NoSuchCopySource.
    NotFound,
    /// 403 AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId, expired requests.
    AccessDenied,
    /// A read of an SSE-C object that no key of the key history (or no key at all) opens.
    SseKeyRejected,
    /// 412 PreconditionFailed or 304.
    PreconditionFailed,
    /// 416 InvalidRange.
    InvalidRange,
    /// 409 conflicts.
    Conflict,
    /// Any other 4xx: the request itself is wrong and retrying will not help.
    BadRequest,
    /// 503 SlowDown / ServiceUnavailable after the retries were used up.
    Throttled,
    /// 5xx after the retries were used up.
    ServerError,
    /// The request timed out (after retries).
    Timeout,
    /// Connection refused or reset, TLS failure, body cut off (after retries).
    Transport,
    /// A 2xx response that does not say what it must (no ETag, an `<Error>` inside a 200,
    /// unparseable XML).
    InvalidResponse,
    /// What COS says it stored disagrees with what we sent: CRC-64 or SSE echo mismatch.
    IntegrityMismatch,
    /// Refused locally before anything was sent (SSE-C over plain HTTP, a key the URL
    /// layer would rewrite, a size beyond COS limits).
    Refused,
    /// Not sent: the credentials have expired and no refresh has succeeded.
    CredentialsExpired,
}

impl CosErrorKind {
    /// Whether the retry loop may send the request again.
    pub fn is_retryable(self) -> bool {
        match self {
            CosErrorKind::Throttled
            | CosErrorKind::ServerError
            | CosErrorKind::Timeout
            | CosErrorKind::Transport => true,
            CosErrorKind::NotFound
            | CosErrorKind::AccessDenied
            | CosErrorKind::SseKeyRejected
            | CosErrorKind::PreconditionFailed
            | CosErrorKind::InvalidRange
            | CosErrorKind::Conflict
            | CosErrorKind::BadRequest
            | CosErrorKind::InvalidResponse
            | CosErrorKind::IntegrityMismatch
            | CosErrorKind::Refused
            | CosErrorKind::CredentialsExpired => false,
        }
    }
}

/// A failed COS request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} {key:?} failed: {kind:?}{}{}{}: {message}",
    .status.map(|s| format!(" (HTTP {s}")).unwrap_or_default(),
    .code.as_ref().map(|c| format!(", {c}")).unwrap_or_default(),
    if .status.is_some() { format!("{})", .request_id.as_ref().map(|r| format!(", request id {r}")).unwrap_or_default()) } else { String::new() })]
pub struct CosError {
    pub kind: CosErrorKind,
    pub op: CosOp,
    /// The object key (empty for bucket-level operations).
    pub key: String,
    pub status: Option<u16>,
    /// The `<Code>` of the error body, when there was one.
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
}

impl CosError {
    /// An error with no HTTP response behind it.
    pub fn local(kind: CosErrorKind, op: CosOp, key: &str, message: impl Into<String>) -> Self {
        CosError {
            kind,
            op,
            key: key.to_string(),
            status: None,
            code: None,
            message: message.into(),
            request_id: None,
        }
    }

    /// Classifies an HTTP error response from its status and `<Code>`.
    pub fn from_response(
        op: CosOp,
        key: &str,
        status: u16,
        code: Option<String>,
        message: String,
        request_id: Option<String>,
    ) -> Self {
        CosError {
            kind: classify(status, code.as_deref()),
            op,
            key: key.to_string(),
            status: Some(status),
            code,
            message,
            request_id,
        }
    }
}

/// Status + `<Code>` → kind. The code wins where it is more specific than the status.
pub fn classify(status: u16, code: Option<&str>) -> CosErrorKind {
    match code {
        Some("SlowDown") | Some("ServiceUnavailable") | Some("KmsFreqControl") => {
            return CosErrorKind::Throttled
        }
        Some("RequestTimeout") => return CosErrorKind::Timeout,
        Some("SsecDecryptHeaderInvalid") => return CosErrorKind::SseKeyRejected,
        _ => {}
    }
    match status {
        304 | 412 => CosErrorKind::PreconditionFailed,
        401 | 403 => CosErrorKind::AccessDenied,
        404 => CosErrorKind::NotFound,
        409 => CosErrorKind::Conflict,
        416 => CosErrorKind::InvalidRange,
        429 | 503 => CosErrorKind::Throttled,
        500..=599 => CosErrorKind::ServerError,
        _ => CosErrorKind::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_uses_code_then_status() {
        assert_eq!(classify(503, Some("SlowDown")), CosErrorKind::Throttled);
        assert_eq!(classify(400, Some("RequestTimeout")), CosErrorKind::Timeout);
        assert_eq!(classify(404, Some("NoSuchKey")), CosErrorKind::NotFound);
        assert_eq!(
            classify(403, Some("SignatureDoesNotMatch")),
            CosErrorKind::AccessDenied
        );
        assert_eq!(
            classify(400, Some("SSEHeaderNotAllowed")),
            CosErrorKind::BadRequest
        );
        assert_eq!(classify(500, None), CosErrorKind::ServerError);
        assert!(classify(502, None).is_retryable());
        assert!(!classify(400, Some("BadDigest")).is_retryable());
    }

    #[test]
    fn display_names_op_key_code_and_request_id() {
        let e = CosError::from_response(
            CosOp::GetObject,
            "a/b",
            404,
            Some("NoSuchKey".into()),
            "The specified key does not exist.".into(),
            Some("req-1".into()),
        );
        let s = e.to_string();
        assert!(s.contains("GetObject") && s.contains("a/b") && s.contains("NoSuchKey"));
        assert!(s.contains("req-1") && s.contains("404"), "{s}");
    }
}

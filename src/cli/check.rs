//! The start-up check: one HEAD Bucket before mounting, so wrong credentials, a wrong
//! endpoint or a missing bucket fail the `cosmount` command with a clear reason and exit
//! code instead of producing a mount whose every operation fails.

use super::error::CliError;
use crate::cos::{CosError, CosErrorKind, ObjectClient};
use std::time::Duration;

/// How long the check may take in total: under the parent's 30 s readiness limit even
/// when the retries and timeouts configured for normal operation are much longer.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(25);

/// HEADs the bucket, bounded by `limit`.
pub async fn check_bucket<C: ObjectClient>(
    client: &C,
    bucket: &str,
    endpoint: &str,
    credentials_origin: &str,
    limit: Duration,
) -> Result<(), CliError> {
    match tokio::time::timeout(limit, client.head_bucket()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(explain(&e, bucket, endpoint, credentials_origin)),
        Err(_) => Err(CliError::endpoint(format!(
            "cannot reach {endpoint}: no answer to HEAD bucket within {} s",
            limit.as_secs()
        ))),
    }
}

/// What the mount-time SSE-C check does when no key opens an object (`ssec_check=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SsecCheck {
    /// Say so (log and terminal), mount anyway.
    #[default]
    Warn,
    /// Refuse to mount (exit 2).
    Error,
    /// Do not look.
    Off,
}

/// Whether the configured SSE-C keys (or no key) open what is already under `prefix`:
/// HEADs the first object of one short listing with the key history. Some(message) when
/// no key opens it, naming the object; None when it opens, when there is nothing to
/// look at, or when the check itself could not run (the mount's own requests will say).
pub async fn check_sse_keys<C: ObjectClient>(
    client: &C,
    prefix: &str,
    limit: Duration,
) -> Option<String> {
    let look = async {
        let page = client.list(prefix, None, None, 20).await.ok()?;
        // A directory marker says nothing about the keys of files.
        let obj = page.objects.iter().find(|o| !o.key.ends_with('/'))?;
        match client.head(&obj.key).await {
            Err(e) if e.kind == CosErrorKind::SseKeyRejected => Some(format!(
                "SSE-C check: no configured key opens {:?}, the first object under the mount ({}); \
                 its files will give EIO. Check use_sse=custom:FILE (the key that wrote them \
                 must be in it; ssec_check=off skips this check, ssec_check=error refuses to mount)",
                obj.key, e.message
            )),
            _ => None,
        }
    };
    tokio::time::timeout(limit, look).await.ok().flatten()
}

/// Turns a failed HEAD Bucket into a message and exit code.
pub fn explain(e: &CosError, bucket: &str, endpoint: &str, origin: &str) -> CliError {
    let detail = detail(e);
    match e.kind {
        CosErrorKind::AccessDenied => CliError::credentials(format!(
            "credentials rejected by COS ({detail}) for bucket {bucket} at {endpoint}: check the \
             SecretId/SecretKey from {origin}, their permissions on the bucket, and the system clock"
        )),
        CosErrorKind::NotFound => CliError::endpoint(format!(
            "bucket {bucket} does not exist at {endpoint} ({detail}): check the bucket name, \
             its APPID suffix and the region/url"
        )),
        CosErrorKind::Refused => CliError::usage(format!("invalid configuration: {}", e.message)),
        CosErrorKind::CredentialsExpired => CliError::credentials(e.message.clone()),
        CosErrorKind::Transport | CosErrorKind::Timeout => {
            let hint = if detail.contains("certificate") {
                " (if the endpoint uses a private CA, pass ca_file=PEM)"
            } else {
                ""
            };
            CliError::endpoint(format!("cannot reach {endpoint}: {detail}{hint}"))
        }
        _ => CliError::endpoint(format!("HEAD bucket {bucket} at {endpoint} failed: {detail}")),
    }
}

fn detail(e: &CosError) -> String {
    let mut s = String::new();
    if let Some(st) = e.status {
        s.push_str(&format!("HTTP {st}"));
    }
    if let Some(c) = &e.code {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(c);
    }
    if !e.message.is_empty() {
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&e.message);
    }
    if let Some(r) = &e.request_id {
        s.push_str(&format!(", request id {r}"));
    }
    if s.is_empty() {
        s = format!("{:?}", e.kind);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::ExitCode;
    use crate::cos::CosOp;

    fn err(kind: CosErrorKind, status: Option<u16>, code: Option<&str>) -> CosError {
        CosError {
            kind,
            op: CosOp::HeadBucket,
            key: String::new(),
            status,
            code: code.map(String::from),
            message: "msg".into(),
            request_id: Some("rid".into()),
        }
    }

    #[test]
    fn classification() {
        let e = explain(
            &err(
                CosErrorKind::AccessDenied,
                Some(403),
                Some("SignatureDoesNotMatch"),
            ),
            "b-1",
            "https://h",
            "passwd file /p",
        );
        assert_eq!(e.code, ExitCode::Credentials);
        assert!(
            e.message.starts_with(
                "credentials rejected by COS (HTTP 403 SignatureDoesNotMatch: msg, request id rid)"
            ),
            "{}",
            e.message
        );
        assert!(e.message.contains("passwd file /p"));
        let e = explain(
            &err(CosErrorKind::NotFound, Some(404), None),
            "b-1",
            "https://h",
            "x",
        );
        assert_eq!(e.code, ExitCode::Endpoint);
        assert!(e.message.contains("does not exist"));
        let e = explain(
            &err(CosErrorKind::Transport, None, None),
            "b-1",
            "https://h",
            "x",
        );
        assert_eq!(e.code, ExitCode::Endpoint);
        assert!(
            e.message.starts_with("cannot reach https://h: msg"),
            "{}",
            e.message
        );
        let e = explain(
            &err(CosErrorKind::Refused, None, None),
            "b-1",
            "https://h",
            "x",
        );
        assert_eq!(e.code, ExitCode::Usage);
        let e = explain(
            &err(CosErrorKind::ServerError, Some(503), None),
            "b-1",
            "https://h",
            "x",
        );
        assert_eq!(e.code, ExitCode::Endpoint);
    }
}

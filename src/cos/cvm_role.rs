//! Credentials of a CVM instance's CAM role, from the metadata service (`cam_role=ROLE`).
//!
//! `GET <endpoint>/<role>` answers JSON with `TmpSecretId`, `TmpSecretKey`, `Token`,
//! `ExpiredTime` (Unix seconds) and/or `Expiration` (ISO-8601 UTC), and `Code` =
//! `Success` (the fields cos-go-sdk-v5, coscli and the Tencent Cloud SDK read). The
//! service is plain HTTP on a link-local address, reachable only from inside the
//! instance; nothing but these GETs is ever sent to it, unsigned. Answers are never
//! quoted in errors: they hold the secret key and token.

use super::config::Credentials;
use super::credentials::{CredentialSource, Fetch, Fresh};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The metadata service's role-credentials address (cos-api.md §5.2).
pub const DEFAULT_ENDPOINT: &str =
    "http://metadata.tencentyun.com/latest/meta-data/cam/security-credentials";
/// The metadata service answers at once or not at all.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Answers beyond this size are not credentials.
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug)]
pub struct CvmRoleSource {
    url: String,
    role: String,
    http: reqwest::Client,
}

impl CvmRoleSource {
    /// A source asking `endpoint` (without the role) for `role`'s credentials.
    pub fn new(endpoint: &str, role: &str) -> Result<CvmRoleSource, String> {
        if role.is_empty() || role.contains('/') {
            return Err(format!("cam_role={role:?} is not a role name"));
        }
        let base = endpoint.trim_end_matches('/');
        let url = format!("{base}/{role}");
        reqwest::Url::parse(&url)
            .map_err(|e| format!("cam_role_endpoint={endpoint} is not a URL: {e}"))?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the metadata client: {e}"))?;
        Ok(CvmRoleSource {
            url,
            role: role.to_string(),
            http,
        })
    }
}

impl CredentialSource for CvmRoleSource {
    fn describe(&self) -> String {
        format!("CVM role {} ({})", self.role, self.url)
    }

    fn fetch(&self) -> Fetch {
        let (http, url) = (self.http.clone(), self.url.clone());
        Box::pin(async move {
            // Not a COS request (nothing to sign, no SSE): the one request built outside
            // `Requester`, on a client of its own.
            #[allow(clippy::disallowed_methods)]
            let request = http.get(&url);
            let resp = request
                .send()
                .await
                .map_err(|e| format!("cannot reach the metadata service: {}", without_url(&e)))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!(
                    "the metadata service answered HTTP {status} (is the role attached to this instance?)"
                ));
            }
            let body = resp
                .bytes()
                .await
                .map_err(|e| format!("metadata answer cut short: {}", without_url(&e)))?;
            if body.len() > MAX_ANSWER {
                return Err(format!(
                    "metadata answer of {} bytes is not credentials",
                    body.len()
                ));
            }
            parse(&body)
        })
    }
}

/// reqwest's error text without the URL (it is in `describe` already).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<endpoint>");
    }
    s
}

/// Credentials from a metadata answer.
pub fn parse(body: &[u8]) -> Result<Fresh, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the metadata answer is not JSON".to_string())?;
    let field = |name: &str| {
        v.get(name)
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
    };
    if let Some(code) = v.get("Code").and_then(|c| c.as_str()) {
        if code != "Success" {
            return Err(format!("the metadata service says Code={code}"));
        }
    }
    let (Some(id), Some(key), Some(token)) =
        (field("TmpSecretId"), field("TmpSecretKey"), field("Token"))
    else {
        return Err("the metadata answer lacks TmpSecretId, TmpSecretKey or Token".into());
    };
    let expires = match (
        v.get("ExpiredTime").and_then(|x| x.as_i64()),
        field("Expiration"),
    ) {
        (Some(secs), _) if secs > 0 => UNIX_EPOCH + Duration::from_secs(secs as u64),
        (_, Some(iso)) => chrono::DateTime::parse_from_rfc3339(iso)
            .map(SystemTime::from)
            .map_err(|_| format!("the metadata answer's Expiration {iso:?} is not a time"))?,
        _ => return Err("the metadata answer has no ExpiredTime or Expiration".into()),
    };
    Ok(Fresh {
        credentials: Credentials::new(id, key, Some(token.to_string())),
        expires: Some(expires),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_answer() {
        let f = parse(
            br#"{"TmpSecretId":"AKIDtmp","TmpSecretKey":"sk","ExpiredTime":1615590047,
               "Expiration":"2021-03-12T23:00:47Z","Token":"tok","Code":"Success"}"#,
        )
        .unwrap();
        assert_eq!(f.credentials.secret_id, "AKIDtmp");
        assert_eq!(f.credentials.token(), Some("tok"));
        assert_eq!(
            f.expires,
            Some(UNIX_EPOCH + Duration::from_secs(1_615_590_047))
        );
        let iso_only = parse(
            br#"{"TmpSecretId":"a","TmpSecretKey":"b","Token":"c","Expiration":"2021-03-12T23:00:47Z"}"#,
        )
        .unwrap();
        assert_eq!(iso_only.expires, f.expires);
    }

    #[test]
    fn refuses_failures_without_quoting_secrets() {
        let e = parse(br#"{"Code":"Failed","TmpSecretKey":"SECRET"}"#).unwrap_err();
        assert!(e.contains("Code=Failed") && !e.contains("SECRET"), "{e}");
        let e = parse(br#"{"TmpSecretId":"a","TmpSecretKey":"SECRET","Token":"t"}"#).unwrap_err();
        assert!(e.contains("no ExpiredTime") && !e.contains("SECRET"), "{e}");
        assert!(parse(b"<html>").unwrap_err().contains("not JSON"));
        assert!(CvmRoleSource::new("http://127.0.0.1:1/x", "a/b").is_err());
        let s = CvmRoleSource::new("http://127.0.0.1:1/x/", "r").unwrap();
        assert_eq!(s.describe(), "CVM role r (http://127.0.0.1:1/x/r)");
    }
}

//! Request authentication: verifies the COS `q-sign` signature of every request against
//! the configured credentials, with the clock and token rules.
//!
//! The signature is recomputed from exactly the headers named in `q-header-list` (looked
//! up case-insensitively) and the query parameters named in `q-url-param-list`, over the
//! decoded request path, with `cos_wire::sign`. Presigned URLs (the `q-*` fields in the
//! query string) are accepted too.

use super::error::ApiError;
use super::ServerCredential;
use cos_wire::sign::{cos_encode, parse_authorization, sign_key, sign_with_key, SignInput};
use hyper::HeaderMap;
use std::collections::HashMap;

/// How far in the future a signature's start may lie (an S3-style assumption, §1.7).
pub const MAX_SKEW_SECS: u64 = 900;

/// What the verifier needs from a request.
pub struct AuthRequest<'a> {
    pub method: &'a str,
    /// The decoded path that was signed (`/key`, or `/bucket/key` for path-style).
    pub signed_path: &'a str,
    /// Decoded query pairs in URL order.
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    pub now: u64,
}

/// Verifies the request; `Ok(secret_id)` on success.
pub fn verify(
    creds: &HashMap<String, ServerCredential>,
    req: &AuthRequest<'_>,
) -> Result<String, ApiError> {
    let header_auth = req
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let auth_text = match header_auth {
        Some(v) => v.to_string(),
        None => presigned_fields(req.query).ok_or_else(|| {
            ApiError::new(
                403,
                "AccessDenied",
                "Anonymous access is not allowed on this bucket.",
            )
        })?,
    };
    let parsed = parse_authorization(&auth_text)
        .map_err(|m| ApiError::new(403, "AccessDenied", format!("Malformed Authorization: {m}")))?;
    if parsed.algorithm != "sha1" {
        return Err(ApiError::new(
            403,
            "AccessDenied",
            "q-sign-algorithm must be sha1",
        ));
    }
    let cred = creds.get(&parsed.secret_id).ok_or_else(|| {
        ApiError::new(
            403,
            "InvalidAccessKeyId",
            "The access key Id format you provided is invalid.",
        )
    })?;
    if req.now > parsed.sign_time.end || req.now > parsed.key_time.end {
        return Err(ApiError::new(
            403,
            "Request has expired",
            "Request has expired",
        ));
    }
    if parsed.sign_time.start > req.now + MAX_SKEW_SECS {
        return Err(ApiError::new(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the server's time is too large.",
        ));
    }
    if let Some(token) = &cred.token {
        let sent = req
            .headers
            .get("x-cos-security-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| query_value(req.query, "x-cos-security-token"));
        match sent {
            None => {
                return Err(ApiError::new(
                    403,
                    "InvalidAccessKeyId",
                    "This temporary SecretId needs x-cos-security-token.",
                ))
            }
            Some(s) if !ct_eq(s.as_bytes(), token.as_bytes()) => {
                return Err(ApiError::bad(
                    "ExpiredToken",
                    "The provided token has expired.",
                ))
            }
            Some(_) => {}
        }
    }

    let mut header_pairs: Vec<(String, String)> = Vec::with_capacity(parsed.header_list.len());
    for name in &parsed.header_list {
        let lookup = percent_decode_lossy(name);
        let value = req
            .headers
            .get(lookup.as_str())
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        header_pairs.push((lookup, value));
    }
    let mut param_pairs: Vec<(String, String)> = Vec::with_capacity(parsed.url_param_list.len());
    for name in &parsed.url_param_list {
        let found = req
            .query
            .iter()
            .find(|(n, _)| cos_encode(n).to_ascii_lowercase() == *name);
        match found {
            Some((n, v)) => param_pairs.push((n.clone(), v.clone())),
            None => param_pairs.push((percent_decode_lossy(name), String::new())),
        }
    }
    let hp: Vec<(&str, &str)> = header_pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let pp: Vec<(&str, &str)> = param_pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let input = SignInput {
        method: req.method,
        path: req.signed_path,
        params: &pp,
        headers: &hp,
        key_time: parsed.key_time,
    };
    let key = sign_key(&cred.secret_key, parsed.key_time);
    let parts = sign_with_key(&key, &input);
    // The official Python SDK signs `host` as the URL's host name without its port while
    // sending `Host: 127.0.0.1:PORT`; real COS never sees a port. Accept that form too.
    let matches_without_port = || {
        let Some(i) = header_pairs
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case("host"))
        else {
            return false;
        };
        let Some(bare) = strip_port(&header_pairs[i].1) else {
            return false;
        };
        let mut hp = hp.clone();
        hp[i].1 = bare;
        let alt = sign_with_key(
            &key,
            &SignInput {
                headers: &hp,
                ..input
            },
        );
        ct_eq(alt.signature.as_bytes(), parsed.signature.as_bytes())
    };
    if !ct_eq(parts.signature.as_bytes(), parsed.signature.as_bytes()) && !matches_without_port() {
        // The StringToSign holds only a SHA-1 of the HttpString: nothing secret. The
        // signed names (not values) help find which side disagrees.
        return Err(ApiError::new(
            403,
            "SignatureDoesNotMatch",
            format!(
                "The Signature you specified is invalid. Server StringToSign: {:?}; \
                 path {:?}; q-header-list {:?}; q-url-param-list {:?}",
                parts.string_to_sign, req.signed_path, parts.header_list, parts.url_param_list
            ),
        ));
    }
    Ok(parsed.secret_id)
}

/// `host:port` → `host` (also for `[v6]:port`); `None` when there is no port.
fn strip_port(host: &str) -> Option<&str> {
    let (h, port) = host.rsplit_once(':')?;
    let bracketed_or_plain = !h.contains(':') || (h.starts_with('[') && h.ends_with(']'));
    (bracketed_or_plain && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .then_some(h)
}

/// The `q-*` fields of a presigned URL, joined as an Authorization value.
fn presigned_fields(query: &[(String, String)]) -> Option<String> {
    query_value(query, "q-signature")?;
    let fields = [
        "q-sign-algorithm",
        "q-ak",
        "q-sign-time",
        "q-key-time",
        "q-header-list",
        "q-url-param-list",
        "q-signature",
    ];
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{f}={}", query_value(query, f).unwrap_or_default()))
        .collect();
    Some(parts.join("&"))
}

fn query_value(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// Decodes `%XX` escapes (names in the signature lists are encoded); bad escapes stay as is.
fn percent_decode_lossy(s: &str) -> String {
    super::route::percent_decode(s, false)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| s.to_string())
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use cos_wire::sign::{authorization, sign, KeyTime};
    use hyper::header::HeaderValue;

    const ID: &str = "AKIDtest";
    const SECRET: &str = "secret-key";

    fn creds(token: Option<&str>) -> HashMap<String, ServerCredential> {
        let c = ServerCredential {
            secret_id: ID.into(),
            secret_key: SECRET.into(),
            token: token.map(str::to_string),
        };
        HashMap::from([(ID.to_string(), c)])
    }

    /// Signs a GET of `/a b/ü+c%.txt?prefix=x y` the way a client would.
    fn signed_headers(kt: KeyTime, secret: &str, token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "host",
            HeaderValue::from_static("bkt-1250000000.cos.ap-guangzhou.myqcloud.com"),
        );
        h.insert("x-cos-meta-Foo", HeaderValue::from_static("Bar=1"));
        if let Some(t) = token {
            h.insert(
                "x-cos-security-token",
                HeaderValue::from_str(t).expect("ascii"),
            );
        }
        let mut hs: Vec<(&str, &str)> = vec![
            ("Host", "bkt-1250000000.cos.ap-guangzhou.myqcloud.com"),
            ("x-cos-meta-foo", "Bar=1"),
        ];
        if let Some(t) = token {
            hs.push(("x-cos-security-token", t));
        }
        let parts = sign(
            secret,
            &SignInput {
                method: "GET",
                path: "/a b/ü+c%.txt",
                params: &[("prefix", "x y"), ("uploads", "")],
                headers: &hs,
                key_time: kt,
            },
        );
        let auth = authorization(ID, kt, &parts);
        h.insert(
            "authorization",
            HeaderValue::from_str(&auth).expect("ascii"),
        );
        h
    }

    #[test]
    fn signature_over_the_host_without_its_port_is_accepted() {
        let kt = KeyTime {
            start: 1000,
            end: 5000,
        };
        let mut h = signed_headers(kt, SECRET, None);
        // Signed as the bare host name (what the Python SDK does), sent with a port.
        h.insert(
            "host",
            HeaderValue::from_static("bkt-1250000000.cos.ap-guangzhou.myqcloud.com:8443"),
        );
        assert_eq!(check(&h, &creds(None), 2000).expect("accepted"), ID);
        assert_eq!(strip_port("[::1]:80"), Some("[::1]"));
        assert_eq!(strip_port("::1"), None);
        assert_eq!(strip_port("a.b"), None);
    }

    fn check(
        h: &HeaderMap,
        c: &HashMap<String, ServerCredential>,
        now: u64,
    ) -> Result<String, ApiError> {
        let q = vec![
            ("prefix".to_string(), "x y".to_string()),
            ("uploads".to_string(), String::new()),
        ];
        verify(
            c,
            &AuthRequest {
                method: "GET",
                signed_path: "/a b/ü+c%.txt",
                query: &q,
                headers: h,
                now,
            },
        )
    }

    const KT: KeyTime = KeyTime {
        start: 1_700_000_000,
        end: 1_700_003_600,
    };

    #[test]
    fn accepts_a_correct_signature() {
        let h = signed_headers(KT, SECRET, None);
        assert_eq!(check(&h, &creds(None), KT.start + 10), Ok(ID.to_string()));
    }

    #[test]
    fn refuses_a_wrong_signature_without_leaking_values() {
        let h = signed_headers(KT, "not-the-secret", None);
        let e = check(&h, &creds(None), KT.start + 10).expect_err("wrong key");
        assert_eq!(e.code, "SignatureDoesNotMatch");
        assert_eq!(e.status, 403);
        assert!(!e.message.contains("Bar=1") && !e.message.contains(SECRET));
        // A tampered header value also breaks it.
        let mut h = signed_headers(KT, SECRET, None);
        h.insert("x-cos-meta-foo", HeaderValue::from_static("Bar=2"));
        assert_eq!(
            check(&h, &creds(None), KT.start + 10)
                .expect_err("tampered")
                .code,
            "SignatureDoesNotMatch"
        );
    }

    #[test]
    fn clock_rules() {
        let h = signed_headers(KT, SECRET, None);
        assert_eq!(
            check(&h, &creds(None), KT.end + 1).expect_err("late").code,
            "Request has expired"
        );
        let e = check(&h, &creds(None), KT.start - MAX_SKEW_SECS - 5).expect_err("early");
        assert_eq!(e.code, "RequestTimeTooSkewed");
        assert!(
            check(&h, &creds(None), KT.start - 60).is_ok(),
            "small skew tolerated"
        );
    }

    #[test]
    fn identity_and_token_rules() {
        let h = signed_headers(KT, SECRET, None);
        let other = HashMap::new();
        assert_eq!(
            check(&h, &other, KT.start).expect_err("unknown").code,
            "InvalidAccessKeyId"
        );
        assert_eq!(
            check(&h, &creds(Some("tok")), KT.start)
                .expect_err("no token")
                .code,
            "InvalidAccessKeyId"
        );
        let h = signed_headers(KT, SECRET, Some("old"));
        assert_eq!(
            check(&h, &creds(Some("tok")), KT.start)
                .expect_err("stale")
                .code,
            "ExpiredToken"
        );
        let h = signed_headers(KT, SECRET, Some("tok"));
        assert!(check(&h, &creds(Some("tok")), KT.start).is_ok());
        let anon = HeaderMap::new();
        assert_eq!(
            check(&anon, &creds(None), KT.start).expect_err("anon").code,
            "AccessDenied"
        );
    }
}

//! Request routing: which bucket addressing style a request uses (virtual-hosted,
//! path-style or custom domain), the decoded object key and signed path, the decoded
//! query, and which COS operation the request is.

use super::error::ApiError;
use cos_wire::CosOp;
use hyper::{HeaderMap, Method};

/// Decodes `%XX` escapes once; with `plus_space`, `+` becomes a space (query strings
/// only: in paths `+` is a literal plus). `None` on a malformed escape.
pub fn percent_decode(s: &str, plus_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = (*b.get(i + 1)? as char).to_digit(16)?;
                let lo = (*b.get(i + 2)? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

fn decode_utf8(s: &str, plus_space: bool, what: &str) -> Result<String, ApiError> {
    percent_decode(s, plus_space)
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or_else(|| {
            ApiError::bad(
                "InvalidURI",
                format!("{what} is not valid percent-encoded UTF-8"),
            )
        })
}

/// Decodes a raw query string into pairs, in URL order (`+` is a space).
pub fn parse_query(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (n, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((
            decode_utf8(n, true, "query")?,
            decode_utf8(v, true, "query")?,
        ));
    }
    Ok(out)
}

/// Where a request points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The object key (empty for bucket-level requests).
    pub key: String,
    /// The decoded path the client signed.
    pub signed_path: String,
}

/// Resolves the addressing style. `host` is the Host header without the port.
pub fn resolve(bucket: &str, host: &str, raw_path: &str) -> Result<Target, ApiError> {
    let path = decode_utf8(raw_path, false, "path")?;
    if !path.starts_with('/') {
        return Err(ApiError::bad("InvalidURI", "path must start with /"));
    }
    let host = host.to_ascii_lowercase();
    let virtual_hosted = host
        .strip_prefix(bucket)
        .is_some_and(|rest| rest.starts_with('.'));
    if !virtual_hosted {
        // A default COS domain naming another bucket.
        if let Some((first, rest)) = host.split_once('.') {
            if rest.starts_with("cos.")
                && rest.ends_with(".myqcloud.com")
                && !first.is_empty()
                && first != "cos"
            {
                return Err(ApiError::new(
                    404,
                    "NoSuchBucket",
                    "The specified bucket does not exist.",
                ));
            }
        }
        // Path-style: the first segment is the bucket.
        let after = &path[1..];
        let (first, rest) = after.split_once('/').unwrap_or((after, ""));
        if first == bucket {
            return Ok(Target {
                key: rest.to_string(),
                signed_path: path.clone(),
            });
        }
    }
    Ok(Target {
        key: path[1..].to_string(),
        signed_path: path,
    })
}

fn has(query: &[(String, String)], name: &str) -> bool {
    query.iter().any(|(n, _)| n == name)
}

/// Which operation a request is; `None` for anything coslocal does not implement.
pub fn classify(
    method: &Method,
    key: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Option<CosOp> {
    let copy = headers.contains_key("x-cos-copy-source");
    if key.is_empty() {
        return match *method {
            Method::HEAD => Some(CosOp::HeadBucket),
            Method::GET if has(query, "uploads") => Some(CosOp::ListMultipartUploads),
            Method::GET => Some(CosOp::ListObjects),
            Method::POST if has(query, "delete") => Some(CosOp::DeleteMultiple),
            _ => None,
        };
    }
    // Sub-resources coslocal does not implement (acl, tagging, append, ...).
    let known = [
        "uploads",
        "uploadId",
        "partNumber",
        "versionId",
        "max-parts",
        "part-number-marker",
        "encoding-type",
    ];
    if query.iter().any(|(n, _)| {
        !known.contains(&n.as_str())
            && !n.starts_with("response-")
            && !n.starts_with("q-")
            && n != "x-cos-security-token"
    }) {
        return None;
    }
    match *method {
        Method::HEAD => Some(CosOp::HeadObject),
        Method::GET if has(query, "uploadId") => Some(CosOp::ListParts),
        Method::GET => Some(CosOp::GetObject),
        Method::PUT if has(query, "uploadId") && has(query, "partNumber") => Some(if copy {
            CosOp::UploadPartCopy
        } else {
            CosOp::UploadPart
        }),
        Method::PUT if has(query, "uploadId") || has(query, "partNumber") => None,
        Method::PUT if copy => Some(CosOp::CopyObject),
        Method::PUT => Some(CosOp::PutObject),
        Method::POST if has(query, "uploads") => Some(CosOp::InitiateMultipart),
        Method::POST if has(query, "uploadId") => Some(CosOp::CompleteMultipart),
        Method::DELETE if has(query, "uploadId") => Some(CosOp::AbortMultipart),
        Method::DELETE => Some(CosOp::DeleteObject),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "bkt-1250000000";

    #[test]
    fn decodes_path_once_and_keeps_plus() {
        let t = resolve(
            B,
            "bkt-1250000000.cos.ap-guangzhou.myqcloud.com",
            "/a%20b/%C3%BC+c%2525.txt",
        )
        .expect("ok");
        assert_eq!(t.key, "a b/ü+c%25.txt");
        assert_eq!(t.signed_path, "/a b/ü+c%25.txt");
    }

    #[test]
    fn addressing_styles() {
        let v = resolve(B, "bkt-1250000000.localhost", "/k").expect("virtual");
        assert_eq!((v.key.as_str(), v.signed_path.as_str()), ("k", "/k"));
        let p = resolve(B, "127.0.0.1", "/bkt-1250000000/dir/k").expect("path-style");
        assert_eq!(
            (p.key.as_str(), p.signed_path.as_str()),
            ("dir/k", "/bkt-1250000000/dir/k")
        );
        let root =
            resolve(B, "cos.ap-guangzhou.myqcloud.com", "/bkt-1250000000").expect("bucket root");
        assert_eq!(root.key, "");
        let c = resolve(B, "127.0.0.1", "/dir/k").expect("custom domain");
        assert_eq!(c.key, "dir/k");
        let e =
            resolve(B, "other-1.cos.ap-guangzhou.myqcloud.com", "/k").expect_err("other bucket");
        assert_eq!(e.code, "NoSuchBucket");
        assert_eq!(
            resolve(B, "h", "/%zz").expect_err("bad escape").code,
            "InvalidURI"
        );
    }

    #[test]
    fn query_plus_is_space() {
        let q = parse_query(Some("marker=IMG+0001.jpg&uploads&prefix=a%2Bb")).expect("ok");
        assert_eq!(
            q,
            [
                ("marker".into(), "IMG 0001.jpg".into()),
                ("uploads".into(), String::new()),
                ("prefix".into(), "a+b".into())
            ]
        );
    }

    #[test]
    fn classifies_operations() {
        let h = HeaderMap::new();
        let q = |s: &str| parse_query(Some(s)).expect("query");
        assert_eq!(
            classify(&Method::GET, "", &q(""), &h),
            Some(CosOp::ListObjects)
        );
        assert_eq!(
            classify(&Method::GET, "", &q("uploads"), &h),
            Some(CosOp::ListMultipartUploads)
        );
        assert_eq!(
            classify(&Method::POST, "", &q("delete"), &h),
            Some(CosOp::DeleteMultiple)
        );
        assert_eq!(
            classify(&Method::PUT, "k", &q("partNumber=1&uploadId=x"), &h),
            Some(CosOp::UploadPart)
        );
        assert_eq!(
            classify(&Method::POST, "k", &q("uploads"), &h),
            Some(CosOp::InitiateMultipart)
        );
        assert_eq!(
            classify(&Method::POST, "k", &q("uploadId=x"), &h),
            Some(CosOp::CompleteMultipart)
        );
        assert_eq!(
            classify(&Method::DELETE, "k", &q("uploadId=x"), &h),
            Some(CosOp::AbortMultipart)
        );
        assert_eq!(classify(&Method::PUT, "k", &q("acl"), &h), None);
        let mut c = HeaderMap::new();
        c.insert("x-cos-copy-source", "b/k".parse().expect("value"));
        assert_eq!(
            classify(&Method::PUT, "k", &q(""), &c),
            Some(CosOp::CopyObject)
        );
        assert_eq!(
            classify(&Method::PUT, "k", &q("partNumber=2&uploadId=u"), &c),
            Some(CosOp::UploadPartCopy)
        );
    }
}

//! The only place a COS request is built and sent (clippy's `disallowed-methods` forbids
//! the `reqwest::Client` shortcuts everywhere else).
//!
//! `Requester::build` turns a [`RequestSpec`] (operation, method, key, query, extra headers,
//! body, and which key opens the object being read) into a signed `reqwest::Request`:
//! the URL (virtual-hosted, direct for IP/localhost endpoints, or path-style), the SSE
//! headers from the one `SsePolicy` (the customer key marked sensitive), the STS token,
//! the storage class on creating operations, Content-MD5/Length/Type, and the signature
//! over `host`, the content headers, `range` and every `x-cos-*` header. It is called once
//! per attempt, so every retry carries a fresh signature.
//!
//! Keys reach the server unchanged: every byte outside `A-Za-z0-9-_.~/` is percent-encoded,
//! and because the `url` crate folds `.` and `..` path segments, the `/` next to such a
//! segment is sent as `%2F` (COS decodes it back). Keys that cannot be sent at all are
//! refused before anything goes out.

use super::config::{CosClientConfig, Endpoint};
use super::credentials::{CredentialStore, Fresh};
use super::error::{CosError, CosErrorKind};
use super::limits;
use super::op::CosOp;
use super::sign::{self, cos_encode, KeyTime, SignInput};
use super::sse::{ReadKey, SsePolicy};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use std::sync::Arc;
use std::time::SystemTime;

/// How long a signature stays valid. One attempt never takes this long except a
/// Complete that streams keep-alive spaces; an hour covers that too.
const SIGN_LIFETIME_SECS: u64 = 3600;

/// One query parameter; `value: None` is a bare flag such as `uploads` (signed as `uploads=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParam {
    pub name: String,
    pub value: Option<String>,
}

impl QueryParam {
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        QueryParam {
            name: name.to_string(),
            value: Some(value.into()),
        }
    }

    pub fn flag(name: &str) -> Self {
        QueryParam {
            name: name.to_string(),
            value: None,
        }
    }
}

/// Everything that describes one COS request, independent of the attempt.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub op: CosOp,
    pub method: Method,
    /// The object key (empty for bucket operations).
    pub key: String,
    pub query: Vec<QueryParam>,
    /// Extra headers (lowercase names): range, copy source, metadata, directive...
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// base64(MD5(body)), computed once by the caller.
    pub content_md5: Option<String>,
    pub body: Option<Bytes>,
    /// Which customer key (if any) opens the object this request reads.
    pub read: ReadKey,
}

impl RequestSpec {
    pub fn new(op: CosOp, method: Method, key: &str) -> Self {
        RequestSpec {
            op,
            method,
            key: key.to_string(),
            query: Vec::new(),
            headers: Vec::new(),
            content_type: None,
            content_md5: None,
            body: None,
            read: ReadKey::Plain,
        }
    }

    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push(QueryParam::new(name, value));
        self
    }

    pub fn flag(mut self, name: &str) -> Self {
        self.query.push(QueryParam::flag(name));
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn body(mut self, body: Bytes, content_md5: Option<String>) -> Self {
        self.body = Some(body);
        self.content_md5 = content_md5;
        self
    }

    pub fn read(mut self, read: ReadKey) -> Self {
        self.read = read;
        self
    }

    pub fn content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }
}

/// base64(MD5(data)), the Content-MD5 value.
pub fn content_md5(data: &[u8]) -> String {
    use base64::Engine;
    use md5::{Digest, Md5};
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(data))
}

/// Whether the operation addresses an object (and so needs a key).
pub fn is_object_op(op: CosOp) -> bool {
    op.facts().addresses_object
}

/// Whether the operation creates an object (storage class and SSE choice apply).
fn creates_object(op: CosOp) -> bool {
    op.facts().chooses_encryption
}

/// Refuses keys that cannot be sent as they are.
pub fn check_key(op: CosOp, key: &str) -> Result<(), CosError> {
    let refuse = |why: &str| Err(CosError::local(CosErrorKind::Refused, op, key, why));
    if !is_object_op(op) {
        return Ok(());
    }
    if key.is_empty() {
        return refuse("an object operation needs a non-empty key");
    }
    if key == "." || key == ".." {
        return refuse(
            "the keys \".\" and \"..\" cannot be addressed: URL normalisation removes them",
        );
    }
    if key.len() > limits::MAX_KEY_LEN {
        return refuse(&format!(
            "key longer than COS allows ({} bytes)",
            limits::MAX_KEY_LEN
        ));
    }
    Ok(())
}

fn push_encoded(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Encodes a key for the URL path: each `/`-separated segment percent-encoded, and the
/// `/` beside a `.` or `..` segment sent as `%2F` so no segment is a dot segment.
pub fn encode_key_path(key: &str) -> String {
    let segs: Vec<&str> = key.split('/').collect();
    let dot = |s: &str| s == "." || s == "..";
    let mut out = String::with_capacity(key.len() * 3);
    for (i, seg) in segs.iter().enumerate() {
        if i > 0 {
            if dot(segs[i - 1]) || dot(seg) {
                out.push_str("%2F");
            } else {
                out.push('/');
            }
        }
        push_encoded(&mut out, seg);
    }
    out
}

/// Encodes a key for `x-cos-copy-source`: like the SDK's `quote(key, '/-_.~')`.
pub fn encode_copy_source_key(key: &str) -> String {
    key.split('/').map(cos_encode).collect::<Vec<_>>().join("/")
}

/// The query string, built by hand: `%20` for spaces (never `+`), bare flags without `=`.
pub fn encode_query(params: &[QueryParam]) -> String {
    params
        .iter()
        .map(|p| match &p.value {
            Some(v) => format!("{}={}", cos_encode(&p.name), cos_encode(v)),
            None => cos_encode(&p.name),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Where requests go, decided once from the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    pub scheme: String,
    /// `host[:port]` as sent in `Host` and signed.
    pub authority: String,
    /// `/<bucket>` for path-style, empty otherwise.
    pub path_prefix: String,
    /// The host part of `x-cos-copy-source` (`<bucket>.cos.<region>.myqcloud.com`), or
    /// `None` to use the path form `/<bucket>/<key>`.
    pub copy_source_host: Option<String>,
}

/// IP addresses (`[..]` for IPv6) and `localhost` are addressed directly, not virtual-hosted.
fn is_direct_host(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || host.starts_with('[')
        || host.eq_ignore_ascii_case("localhost")
}

/// The region in a COS host name `...cos.<region>.myqcloud.com` / `.tencentcos.cn`.
fn region_of_host(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').collect();
    let i = labels.iter().position(|l| *l == "cos")?;
    let region = labels.get(i + 1)?;
    (labels.len() > i + 2 && *region != "accelerate").then(|| region.to_string())
}

impl Addressing {
    pub fn new(cfg: &CosClientConfig) -> Result<Addressing, CosError> {
        let bad = |why: String| CosError::local(CosErrorKind::Refused, CosOp::HeadBucket, "", why);
        let bucket = &cfg.bucket;
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(format!(
                "bucket name {bucket:?} must be lowercase letters, digits and '-' (name-appid)"
            )));
        }
        match &cfg.endpoint {
            Endpoint::Region(r) => {
                if r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(bad(format!("region {r:?} is not a COS region name")));
                }
                let vhost = format!("{bucket}.cos.{r}.myqcloud.com");
                Ok(Addressing {
                    scheme: "https".into(),
                    authority: if cfg.path_style {
                        format!("cos.{r}.myqcloud.com")
                    } else {
                        vhost.clone()
                    },
                    path_prefix: if cfg.path_style {
                        format!("/{bucket}")
                    } else {
                        String::new()
                    },
                    copy_source_host: Some(vhost),
                })
            }
            Endpoint::Url(u) => {
                let url = Url::parse(u).map_err(|e| bad(format!("endpoint {u:?}: {e}")))?;
                if url.scheme() != "https" && url.scheme() != "http" {
                    return Err(bad(format!("endpoint {u:?} must be http:// or https://")));
                }
                if !(url.path().is_empty() || url.path() == "/")
                    || url.query().is_some()
                    || !url.username().is_empty()
                {
                    return Err(bad(format!(
                        "endpoint {u:?} must be a bare scheme://host[:port] URL"
                    )));
                }
                let host_str = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| bad(format!("endpoint {u:?} has no host")))?
                    .to_ascii_lowercase();
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                let region = cfg.region.clone().or_else(|| region_of_host(&host_str));
                let region_host = region.map(|r| format!("{bucket}.cos.{r}.myqcloud.com"));
                let direct = is_direct_host(&host_str);
                let (authority, path_prefix, copy_host) = if cfg.path_style {
                    (
                        format!("{host_str}{port}"),
                        format!("/{bucket}"),
                        region_host,
                    )
                } else if direct {
                    (format!("{host_str}{port}"), String::new(), region_host)
                } else if host_str.starts_with(&format!("{bucket}.")) {
                    // Already the bucket's own (or custom) domain.
                    (
                        format!("{host_str}{port}"),
                        String::new(),
                        Some(host_str.clone()),
                    )
                } else {
                    let v = format!("{bucket}.{host_str}");
                    (format!("{v}{port}"), String::new(), Some(v))
                };
                Ok(Addressing {
                    scheme: url.scheme().to_string(),
                    authority,
                    path_prefix,
                    copy_source_host: copy_host,
                })
            }
        }
    }

    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// The decoded path of `key` (what gets signed).
    pub fn decoded_path(&self, key: &str) -> String {
        format!("{}/{}", self.path_prefix, key)
    }

    /// The URL of a request. Verified after parsing: if the URL layer changed the path we
    /// built, the key is refused rather than sent somewhere else.
    pub fn url(&self, op: CosOp, key: &str, query: &[QueryParam]) -> Result<Url, CosError> {
        check_key(op, key)?;
        let path = format!("{}/{}", self.path_prefix, encode_key_path(key));
        let mut s = format!("{}://{}{}", self.scheme, self.authority, path);
        if !query.is_empty() {
            s.push('?');
            s.push_str(&encode_query(query));
        }
        let url = Url::parse(&s).map_err(|e| {
            CosError::local(
                CosErrorKind::Refused,
                op,
                key,
                format!("cannot build a URL: {e}"),
            )
        })?;
        if url.path() != path {
            return Err(CosError::local(
                CosErrorKind::Refused,
                op,
                key,
                "the key would be rewritten by URL normalisation",
            ));
        }
        Ok(url)
    }

    /// The value of `x-cos-copy-source` for `key` of this bucket.
    pub fn copy_source(&self, bucket: &str, key: &str) -> String {
        match &self.copy_source_host {
            Some(h) => format!("{h}/{}", encode_copy_source_key(key)),
            None => format!("/{bucket}/{}", encode_copy_source_key(key)),
        }
    }
}

/// Builds and sends requests for one bucket.
pub struct Requester {
    http: reqwest::Client,
    addr: Addressing,
    bucket: String,
    credentials: Arc<CredentialStore>,
    sse: SsePolicy,
    storage_class: Option<String>,
}

fn header_value(op: CosOp, key: &str, name: &str, v: &str) -> Result<HeaderValue, CosError> {
    HeaderValue::from_str(v).map_err(|_| {
        // The value is not echoed: it may be a secret.
        CosError::local(
            CosErrorKind::Refused,
            op,
            key,
            format!("header {name} has a value HTTP cannot carry"),
        )
    })
}

impl Requester {
    pub fn new(http: reqwest::Client, cfg: &CosClientConfig) -> Result<Requester, CosError> {
        let addr = Addressing::new(cfg)?;
        cfg.sse.check_transport(addr.is_https()).map_err(|e| {
            CosError::local(
                CosErrorKind::Refused,
                CosOp::HeadBucket,
                "",
                format!("{e} (use an https:// endpoint)"),
            )
        })?;
        Ok(Requester {
            http,
            addr,
            bucket: cfg.bucket.clone(),
            credentials: Arc::new(CredentialStore::new(
                Fresh {
                    credentials: cfg.credentials.clone(),
                    expires: cfg.credentials_expire,
                },
                cfg.credential_source.clone(),
            )),
            sse: cfg.sse.clone(),
            storage_class: cfg.storage_class.clone(),
        })
    }

    /// The credentials requests are signed with (and their refresh).
    pub fn credentials(&self) -> &Arc<CredentialStore> {
        &self.credentials
    }

    pub fn addressing(&self) -> &Addressing {
        &self.addr
    }

    pub fn sse(&self) -> &SsePolicy {
        &self.sse
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The value of `x-cos-copy-source` for `key`.
    pub fn copy_source(&self, key: &str) -> String {
        self.addr.copy_source(&self.bucket, key)
    }

    /// Builds one signed attempt of `spec`.
    pub fn build(&self, spec: &RequestSpec) -> Result<reqwest::Request, CosError> {
        self.build_signed(spec).map(|(r, _)| r)
    }

    /// Builds one signed attempt of `spec`, and says which generation of the credentials
    /// signed it (see `CredentialStore::refresh_after_rejection`). Expired credentials
    /// sign nothing: `CredentialsExpired`.
    pub fn build_signed(&self, spec: &RequestSpec) -> Result<(reqwest::Request, u64), CosError> {
        let op = spec.op;
        let key = spec.key.as_str();
        let current = self
            .credentials
            .usable(SystemTime::now())
            .map_err(|m| CosError::local(CosErrorKind::CredentialsExpired, op, key, m))?;
        let credentials = &current.fresh.credentials;
        let url = self.addr.url(op, key, &spec.query)?;
        // The transport was checked against the policy when this builder was made.
        let sse = self.sse.headers_for(op, spec.read);

        // (name, value, sensitive) of every header to send; all are signed except none.
        let mut hs: Vec<(String, String, bool)> = Vec::new();
        hs.push(("host".into(), self.addr.authority.clone(), false));
        let has_body = matches!(spec.method, Method::PUT | Method::POST);
        if has_body {
            let len = spec.body.as_ref().map_or(0, |b| b.len());
            hs.push(("content-length".into(), len.to_string(), false));
            // A copy keeping its source's attributes must not name a type of its own.
            let default_ct =
                (op != CosOp::CopyObject).then(|| "application/octet-stream".to_string());
            if let Some(ct) = spec.content_type.clone().or(default_ct) {
                hs.push(("content-type".into(), ct, false));
            }
        } else if let Some(ct) = &spec.content_type {
            hs.push(("content-type".into(), ct.clone(), false));
        }
        if let Some(md5) = &spec.content_md5 {
            hs.push(("content-md5".into(), md5.clone(), false));
        }
        for (n, v) in &spec.headers {
            hs.push((n.to_ascii_lowercase(), v.clone(), false));
        }
        if creates_object(op) {
            if let Some(sc) = &self.storage_class {
                hs.push(("x-cos-storage-class".into(), sc.clone(), false));
            }
        }
        for h in &sse {
            hs.push((h.name.to_ascii_lowercase(), h.value.clone(), h.sensitive));
        }
        if let Some(t) = credentials.token() {
            hs.push(("x-cos-security-token".into(), t.to_string(), true));
        }

        let signed: Vec<(&str, &str)> = hs
            .iter()
            .filter(|(n, _, _)| is_signed_header(n))
            .map(|(n, v, _)| (n.as_str(), v.as_str()))
            .collect();
        let params: Vec<(&str, &str)> = spec
            .query
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_deref().unwrap_or("")))
            .collect();
        let path = self.addr.decoded_path(key);
        let key_time = KeyTime::around_now(SIGN_LIFETIME_SECS);
        let parts = sign::sign(
            credentials.secret_key(),
            &SignInput {
                method: spec.method.as_str(),
                path: &path,
                params: &params,
                headers: &signed,
                key_time,
            },
        );
        let auth = sign::authorization(&credentials.secret_id, key_time, &parts);

        let mut map = HeaderMap::with_capacity(hs.len() + 1);
        for (n, v, sensitive) in &hs {
            let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                CosError::local(
                    CosErrorKind::Refused,
                    op,
                    key,
                    format!("bad header name {n}"),
                )
            })?;
            let mut value = header_value(op, key, n, v)?;
            value.set_sensitive(*sensitive);
            map.append(name, value);
        }
        let mut auth = header_value(op, key, "authorization", &auth)?;
        auth.set_sensitive(true);
        map.insert(reqwest::header::AUTHORIZATION, auth);

        let mut req = reqwest::Request::new(spec.method.clone(), url);
        *req.headers_mut() = map;
        if has_body {
            *req.body_mut() = Some(reqwest::Body::from(spec.body.clone().unwrap_or_default()));
        }
        Ok((req, current.generation))
    }

    /// Sends one built request.
    #[allow(clippy::disallowed_methods)] // the one sanctioned use
    pub async fn send(&self, req: reqwest::Request) -> Result<reqwest::Response, reqwest::Error> {
        self.http.execute(req).await
    }
}

/// The headers cosmount signs: `host`, the content headers, `range` and every `x-cos-*`.
fn is_signed_header(name: &str) -> bool {
    matches!(
        name,
        "host" | "content-type" | "content-length" | "content-md5" | "range"
    ) || name.starts_with("x-cos-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cos::config::Credentials;
    use crate::cos::sse::{CustomerKey, SseMode};

    fn cfg(endpoint: Endpoint) -> CosClientConfig {
        CosClientConfig::new(
            "test-1250000000",
            endpoint,
            Credentials::new("AKID", "SK", None),
        )
    }

    fn addr(endpoint: &str) -> Addressing {
        Addressing::new(&cfg(Endpoint::Url(endpoint.into()))).unwrap()
    }

    #[test]
    fn key_paths_keep_every_byte() {
        assert_eq!(encode_key_path("a/b c+d%e"), "a/b%20c%2Bd%25e");
        assert_eq!(encode_key_path("中"), "%E4%B8%AD");
        assert_eq!(encode_key_path("./x"), ".%2Fx");
        assert_eq!(encode_key_path("a/../b"), "a%2F..%2Fb");
        assert_eq!(encode_key_path("a/.."), "a%2F..");
        assert_eq!(encode_key_path("a/./../b/c"), "a%2F.%2F..%2Fb/c");
        assert_eq!(encode_key_path("a..b/.c/"), "a..b/.c/");
        assert_eq!(encode_key_path("dir/"), "dir/");
    }

    #[test]
    fn urls_survive_the_url_crate() {
        let a = addr("https://127.0.0.1:9000");
        for key in [
            "./x",
            "../x",
            "a/./b",
            "a/../b",
            "a/..",
            "a/.",
            "x/%2e%2e/y",
            "sp ace+plus%pct",
            "ünï/cødé",
            "a//b",
            "./",
            "../",
            "...",
            "a/\\b",
            "q?#x",
            "%2e",
        ] {
            let url = a.url(CosOp::GetObject, key, &[]).unwrap();
            // Decode the path back as the server does and get the key.
            let decoded = crate::cos::xml::url_decode(url.path()).unwrap();
            assert_eq!(decoded, format!("/{key}"), "{key} -> {url}");
        }
    }

    #[test]
    fn unsendable_keys_are_refused() {
        let a = addr("https://127.0.0.1:9000");
        for key in ["", ".", ".."] {
            let e = a.url(CosOp::GetObject, key, &[]).unwrap_err();
            assert_eq!(e.kind, CosErrorKind::Refused, "{key:?}");
        }
        let long = "k".repeat(851);
        assert_eq!(
            a.url(CosOp::PutObject, &long, &[]).unwrap_err().kind,
            CosErrorKind::Refused
        );
        assert!(a.url(CosOp::PutObject, &"k".repeat(850), &[]).is_ok());
        assert!(a.url(CosOp::ListObjects, "", &[]).is_ok());
    }

    #[test]
    fn query_uses_percent_twenty_and_bare_flags() {
        let q = [
            QueryParam::new("prefix", "a b+c/"),
            QueryParam::flag("uploads"),
            QueryParam::new("marker", ""),
        ];
        assert_eq!(encode_query(&q), "prefix=a%20b%2Bc%2F&uploads&marker=");
        let url = addr("https://127.0.0.1:1")
            .url(CosOp::ListObjects, "", &q)
            .unwrap();
        assert_eq!(url.query(), Some("prefix=a%20b%2Bc%2F&uploads&marker="));
    }

    #[test]
    fn addressing_modes() {
        let r = Addressing::new(&cfg(Endpoint::Region("ap-guangzhou".into()))).unwrap();
        assert_eq!(r.authority, "test-1250000000.cos.ap-guangzhou.myqcloud.com");
        assert_eq!(r.path_prefix, "");
        assert_eq!(
            r.copy_source("test-1250000000", "a b/c"),
            "test-1250000000.cos.ap-guangzhou.myqcloud.com/a%20b/c"
        );
        let mut c = cfg(Endpoint::Region("ap-guangzhou".into()));
        c.path_style = true;
        let p = Addressing::new(&c).unwrap();
        assert_eq!(p.authority, "cos.ap-guangzhou.myqcloud.com");
        assert_eq!(p.decoded_path("k"), "/test-1250000000/k");
        let u = addr("https://cos.ap-beijing.tencentcos.cn");
        assert_eq!(u.authority, "test-1250000000.cos.ap-beijing.tencentcos.cn");
        assert_eq!(
            u.copy_source_host.as_deref(),
            Some("test-1250000000.cos.ap-beijing.tencentcos.cn")
        );
        let l = addr("https://localhost:8443");
        assert_eq!(l.authority, "localhost:8443");
        assert_eq!(l.copy_source_host, None);
        assert_eq!(l.copy_source("test-1250000000", "k"), "/test-1250000000/k");
        let mut c = cfg(Endpoint::Url("https://127.0.0.1:8443".into()));
        c.region = Some("ap-guangzhou".into());
        let i = Addressing::new(&c).unwrap();
        assert_eq!(i.authority, "127.0.0.1:8443");
        assert_eq!(
            i.copy_source_host.as_deref(),
            Some("test-1250000000.cos.ap-guangzhou.myqcloud.com")
        );
        assert!(Addressing::new(&cfg(Endpoint::Url("ftp://x".into()))).is_err());
        assert!(Addressing::new(&cfg(Endpoint::Url("https://x/base".into()))).is_err());
    }

    fn customer_cfg(endpoint: &str) -> CosClientConfig {
        let mut c = cfg(Endpoint::Url(endpoint.into()));
        let k = CustomerKey::parse(b"0123456789ABCDEF0123456789ABCDEF").unwrap();
        c.sse = SsePolicy::new(SseMode::Customer { keys: vec![k] }).unwrap();
        c
    }

    #[test]
    fn customer_keys_never_go_over_http() {
        let http = reqwest::Client::new();
        let e = Requester::new(http.clone(), &customer_cfg("http://127.0.0.1:1"))
            .err()
            .unwrap();
        assert_eq!(e.kind, CosErrorKind::Refused);
        assert!(Requester::new(http, &customer_cfg("https://127.0.0.1:1")).is_ok());
    }

    #[test]
    fn built_request_is_signed_and_the_key_is_sensitive() {
        let mut c = customer_cfg("https://127.0.0.1:9000");
        c.credentials = Credentials::new("AKID", "SK", Some("TOKEN-SECRET".into()));
        c.storage_class = Some("STANDARD_IA".into());
        let r = Requester::new(reqwest::Client::new(), &c).unwrap();
        let body = Bytes::from_static(b"hello");
        let spec = RequestSpec::new(CosOp::PutObject, Method::PUT, "a b")
            .body(body.clone(), Some(content_md5(&body)));
        let req = r.build(&spec).unwrap();
        let h = req.headers();
        assert_eq!(h["host"], "127.0.0.1:9000");
        assert_eq!(h["content-length"], "5");
        assert_eq!(h["x-cos-storage-class"], "STANDARD_IA");
        assert!(h["x-cos-server-side-encryption-customer-key"].is_sensitive());
        assert!(h["x-cos-security-token"].is_sensitive());
        let auth = sign::parse_authorization(h["authorization"].to_str().unwrap()).unwrap();
        for n in [
            "host",
            "content-length",
            "content-type",
            "content-md5",
            "x-cos-storage-class",
            "x-cos-security-token",
            "x-cos-server-side-encryption-customer-key",
        ] {
            assert!(auth.header_list.iter().any(|x| x == n), "{n} not signed");
        }
        let dbg = format!("{req:?}");
        assert!(
            !dbg.contains("MDEyMzQ1Njc4OUFCQ0RFRjAxMjM0NTY3ODlBQkNERUY="),
            "{dbg}"
        );
        assert!(!dbg.contains("TOKEN-SECRET"), "{dbg}");
        // Reads carry no storage class and the GET signs its range.
        let spec = RequestSpec::new(CosOp::GetObject, Method::GET, "k")
            .header("range", "bytes=0-1")
            .read(ReadKey::Customer(0));
        let req = r.build(&spec).unwrap();
        assert!(req.headers().get("x-cos-storage-class").is_none());
        assert!(req.headers().get("content-length").is_none());
        let auth =
            sign::parse_authorization(req.headers()["authorization"].to_str().unwrap()).unwrap();
        assert!(auth.header_list.iter().any(|x| x == "range"));
    }
}

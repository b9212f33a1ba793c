//! Object and bucket operations: HEAD bucket, HEAD/GET object (ranges, conditions,
//! SSE-C decryption), GET Bucket (list), PUT (Content-MD5, SSE, metadata), DELETE,
//! Delete Multiple and PUT Object - Copy; plus the body plumbing the multipart handlers
//! share (receiving a request body into a blob, streaming a blob out).

use super::body::{self, RespBody};
use super::crypto::{self, Segment};
use super::error::ApiError;
use super::handler::{HandlerResult, Req};
use super::range;
use super::sse::{self, SseRecord};
use super::store::{now_ms, BlobWriter, ObjectRecord};
use super::State;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use cos_wire::list::{self, Item, ListQuery};
use cos_wire::sign::cos_encode;
use cos_wire::xml::{self, elem};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::http::response::Builder;
use hyper::{HeaderMap, Response, StatusCode};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Largest single PUT / part (5 GiB).
pub const MAX_PUT: u64 = 5 * 1024 * 1024 * 1024;
/// Read/write chunk for blob I/O.
const CHUNK: usize = 1024 * 1024;
/// Standard headers stored with an object and returned on HEAD/GET.
const STORED_HEADERS: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// Runs blocking work on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::internal),
        Err(e) => Err(ApiError::internal(e)),
    }
}

pub fn http_date(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

pub fn iso8601(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// A response builder with the SSE echo headers of `rec`.
pub fn with_sse(mut b: Builder, rec: &SseRecord) -> Builder {
    for (n, v) in rec.echo() {
        b = b.header(n, v);
    }
    b
}

pub fn ok(b: Builder, body: RespBody) -> HandlerResult {
    b.body(body).map_err(ApiError::internal)
}

/// The metadata of a write request (PUT, Initiate, Copy with `Replaced`).
#[derive(Debug, Clone, Default)]
pub struct WriteMeta {
    pub content_type: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub user_meta: BTreeMap<String, String>,
    pub storage_class: Option<String>,
}

/// Reads the metadata headers of a write request, enforcing the COS rules for
/// `x-cos-meta-*` (suffix of letters, digits and `-`; at most 2 KB each, 4 KB in total).
pub fn parse_write_meta(h: &HeaderMap) -> Result<WriteMeta, ApiError> {
    let mut m = WriteMeta::default();
    let text = |n: &str, v: &HeaderValue| -> Result<String, ApiError> {
        v.to_str()
            .map(str::to_string)
            .map_err(|_| ApiError::invalid_argument(format!("header {n} must be visible ASCII")))
    };
    let mut total = 0usize;
    for (name, value) in h {
        let n = name.as_str();
        if let Some(suffix) = n.strip_prefix("x-cos-meta-") {
            if suffix.is_empty()
                || !suffix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(ApiError::invalid_argument(format!(
                    "user metadata name {n:?} may only hold letters, digits and '-'"
                )));
            }
            let v = text(n, value)?;
            if n.len() + v.len() > 2048 {
                return Err(ApiError::invalid_argument(format!(
                    "user metadata {n} exceeds 2 KB"
                )));
            }
            total += n.len() + v.len();
            m.user_meta.insert(n.to_string(), v);
        } else if STORED_HEADERS.contains(&n) {
            m.headers.insert(n.to_string(), text(n, value)?);
        } else if n == "content-type" {
            m.content_type = Some(text(n, value)?);
        } else if n == "x-cos-storage-class" {
            let v = text(n, value)?.to_ascii_uppercase();
            if !cos_wire::STORAGE_CLASSES.contains(&v.as_str()) {
                return Err(ApiError::invalid_argument(format!(
                    "unknown storage class {v:?}"
                )));
            }
            m.storage_class = Some(v);
        }
    }
    if total > 4096 {
        return Err(ApiError::invalid_argument(
            "user metadata exceeds 4 KB in total",
        ));
    }
    Ok(m)
}

/// The decoded `Content-MD5`, if sent (`InvalidDigest` when malformed).
pub fn content_md5(h: &HeaderMap) -> Result<Option<[u8; 16]>, ApiError> {
    let Some(v) = h.get("content-md5") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad(
            "InvalidDigest",
            "The Content-MD5 you specified is not valid.",
        )
    };
    let raw = B64
        .decode(v.to_str().map_err(|_| bad())?.trim())
        .map_err(|_| bad())?;
    raw.as_slice().try_into().map(Some).map_err(|_| bad())
}

/// The declared body length of a PUT-like request: `MissingContentLength` without one
/// (chunked transfer is accepted), `EntityTooLarge` beyond 5 GiB.
pub fn declared_length(h: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let cl = h.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    let chunked = h
        .get(hyper::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let len = match cl {
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad("InvalidArgument", "bad Content-Length"))?,
        ),
        None if chunked => None,
        None => {
            return Err(ApiError::new(
                411,
                "MissingContentLength",
                "You must provide the Content-Length HTTP header.",
            ))
        }
    };
    if len.is_some_and(|l| l > MAX_PUT) {
        return Err(ApiError::bad(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed object size.",
        ));
    }
    Ok(len)
}

/// A blob write running on the blocking pool: gives back the writer and the spent buffer.
type InflightWrite = Option<tokio::task::JoinHandle<io::Result<(BlobWriter, Vec<u8>)>>>;

/// Receives a request body into `w`, writing on the blocking pool while the next chunk
/// arrives (double buffering). `rate` caps the upload speed (bytes per second).
pub async fn receive_body(
    mut body: Incoming,
    w: BlobWriter,
    rate: Option<u64>,
) -> Result<BlobWriter, ApiError> {
    let started = std::time::Instant::now();
    let mut writer = Some(w);
    let mut inflight: InflightWrite = None;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut total: u64 = 0;
    async fn settle(
        inflight: &mut InflightWrite,
        writer: &mut Option<BlobWriter>,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        if let Some(h) = inflight.take() {
            let (w, spare) = h
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
            *writer = Some(w);
            return Ok(Some(spare));
        }
        Ok(None)
    }
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                let _ = settle(&mut inflight, &mut writer).await;
                return Err(ApiError::bad(
                    "IncompleteBody",
                    format!("request body ended early: {e}"),
                ));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > MAX_PUT {
            let _ = settle(&mut inflight, &mut writer).await;
            return Err(ApiError::bad(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed object size.",
            ));
        }
        buf.extend_from_slice(&data);
        if let Some(rate) = rate.filter(|r| *r > 0) {
            // Pace the upload: don't read on before the average rate allows it.
            let due = started + std::time::Duration::from_secs_f64(total as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        if buf.len() >= CHUNK {
            let spare = settle(&mut inflight, &mut writer).await?;
            let mut w = writer
                .take()
                .ok_or_else(|| ApiError::internal("writer lost"))?;
            let mut chunk =
                std::mem::replace(&mut buf, spare.unwrap_or_else(|| Vec::with_capacity(CHUNK)));
            buf.clear();
            inflight = Some(tokio::task::spawn_blocking(move || {
                w.write(&mut chunk)?;
                chunk.clear();
                Ok((w, chunk))
            }));
        }
    }
    settle(&mut inflight, &mut writer).await?;
    let mut w = writer.ok_or_else(|| ApiError::internal("writer lost"))?;
    if !buf.is_empty() {
        w = blocking(move || {
            w.write(&mut buf)?;
            Ok(w)
        })
        .await?;
    }
    Ok(w)
}

/// Streams `len` bytes of `file` from `start`, decrypting SSE-C data. A blocking thread
/// reads big chunks with `pread` and feeds the response through a small channel.
pub fn stream_blob(
    file: File,
    start: u64,
    len: u64,
    key: Option<(Zeroizing<[u8; 32]>, Vec<Segment>)>,
) -> RespBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut pos = start;
        let end = start + len;
        while pos < end {
            let n = ((end - pos) as usize).min(CHUNK);
            let mut buf = vec![0u8; n];
            let mut filled = 0;
            while filled < n {
                match file.read_at(&mut buf[filled..], pos + filled as u64) {
                    Ok(0) => {
                        let _ = tx.blocking_send(Err(io::Error::other(
                            "object data is shorter than its metadata",
                        )));
                        return;
                    }
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if let Some((k, segs)) = &key {
                crypto::apply_segments(k, segs, pos, &mut buf);
            }
            pos += n as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // client went away
            }
        }
    });
    body::channel(rx)
}

/// Reads `len` plaintext bytes of a stored object from `start` into `w` (blocking).
pub fn copy_into(
    file: &File,
    start: u64,
    len: u64,
    key: Option<&(Zeroizing<[u8; 32]>, Vec<Segment>)>,
    w: &mut BlobWriter,
) -> io::Result<()> {
    let mut pos = start;
    let end = start + len;
    let mut buf = vec![0u8; CHUNK];
    while pos < end {
        let n = ((end - pos) as usize).min(CHUNK);
        file.read_exact_at(&mut buf[..n], pos)?;
        if let Some((k, segs)) = key {
            crypto::apply_segments(k, segs, pos, &mut buf[..n]);
        }
        w.write(&mut buf[..n])?;
        pos += n as u64;
    }
    Ok(())
}

/// Segments of an SSE-C record (empty otherwise).
pub fn segments_of(rec: &SseRecord) -> Vec<Segment> {
    match rec {
        SseRecord::Customer { segments, .. } => segments.clone(),
        _ => vec![],
    }
}

pub async fn head_bucket(state: &Arc<State>, _req: Req) -> HandlerResult {
    ok(
        Response::builder()
            .status(200)
            .header("x-cos-bucket-region", &state.region),
        body::empty(),
    )
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').any(|t| {
        let t = t.trim().trim_start_matches("W/");
        t == "*" || t.trim_matches('"') == etag
    })
}

/// Evaluates If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since (with a
/// header prefix, for the copy-source variants). `Some(status)` when the request stops.
fn preconditions(h: &HeaderMap, prefix: &str, rec: &ObjectRecord) -> Option<u16> {
    let get = |n: &str| {
        h.get(format!("{prefix}{n}").as_str())
            .and_then(|v| v.to_str().ok())
    };
    let modified = rec.last_modified_ms / 1000;
    let date = |v: &str| {
        httpdate::parse_http_date(v)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
    };
    if let Some(v) = get("if-match") {
        if !etag_matches(v, &rec.etag) {
            return Some(412);
        }
    } else if let Some(t) = get("if-unmodified-since").and_then(date) {
        if modified > t {
            return Some(412);
        }
    }
    let not_modified = if prefix.is_empty() { 304 } else { 412 };
    if let Some(v) = get("if-none-match") {
        if etag_matches(v, &rec.etag) {
            return Some(not_modified);
        }
    } else if let Some(t) = get("if-modified-since").and_then(date) {
        if modified <= t {
            return Some(not_modified);
        }
    }
    None
}

fn object_headers(mut b: Builder, rec: &ObjectRecord) -> Builder {
    b = b
        .header("etag", quoted(&rec.etag))
        .header("last-modified", http_date(rec.last_modified_ms))
        .header("accept-ranges", "bytes")
        .header("x-cos-hash-crc64ecma", rec.crc64.to_string())
        .header(
            CONTENT_TYPE,
            rec.content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        );
    for (n, v) in rec.headers.iter().chain(rec.user_meta.iter()) {
        b = b.header(n.as_str(), v.as_str());
    }
    if rec.storage_class != "STANDARD" {
        b = b.header("x-cos-storage-class", &rec.storage_class);
    }
    with_sse(b, &rec.sse)
}

/// HEAD and GET Object.
pub async fn get_object(state: &Arc<State>, req: Req) -> HandlerResult {
    let st = state.clone();
    let key = req.key.clone();
    let (rec, file) = blocking(move || st.store.open_object(&key))
        .await?
        .ok_or_else(ApiError::no_such_key)?;
    let decrypt_key = sse::check_key(&rec.sse, req.sse.customer.as_ref(), "object")?;
    if let Some(status) = preconditions(&req.headers, "", &rec) {
        if status == 412 {
            return Err(ApiError::new(
                412,
                "PreconditionFailed",
                "Precondition not match.",
            ));
        }
        let b = Response::builder()
            .status(304)
            .header("etag", quoted(&rec.etag))
            .header("last-modified", http_date(rec.last_modified_ms));
        return ok(b, body::empty());
    }
    let range = match req.header("range") {
        Some(r) if req.op == cos_wire::CosOp::GetObject => {
            let spec = range::parse_range(r).map_err(ApiError::invalid_argument)?;
            Some(range::resolve(spec, rec.size).ok_or_else(|| {
                ApiError::new(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable.",
                )
            })?)
        }
        _ => None,
    };
    let mut b = object_headers(Response::builder(), &rec);
    // response-* parameters override the stored headers on GET.
    for (param, header) in [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-expires", "expires"),
        ("response-cache-control", "cache-control"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
    ] {
        if let (Some(v), Some(h)) = (req.param(param), b.headers_mut()) {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(header, v);
            }
        }
    }
    let (start, len, status) = match range {
        Some((a, z)) => {
            b = b.header("content-range", format!("bytes {a}-{z}/{}", rec.size));
            (a, z - a + 1, StatusCode::PARTIAL_CONTENT)
        }
        None => (0, rec.size, StatusCode::OK),
    };
    b = b.status(status).header(CONTENT_LENGTH, len.to_string());
    if req.op == cos_wire::CosOp::HeadObject {
        return ok(b, body::empty());
    }
    let key = decrypt_key.map(|k| (k, segments_of(&rec.sse)));
    ok(b, stream_blob(file, start, len, key))
}

/// PUT Object.
pub async fn put_object(state: &Arc<State>, req: Req) -> HandlerResult {
    declared_length(&req.headers)?;
    let want_md5 = content_md5(&req.headers)?;
    let meta = parse_write_meta(&req.headers)?;
    let (sse_rec, key) = sse::new_record(&req.sse);
    let iv = key.as_ref().map(|_| crypto::new_iv());
    let st = state.clone();
    let kc = key.clone();
    let w = blocking(move || st.store.object_writer(kc.as_deref().zip(iv))).await?;
    let w = receive_body(req.body, w, state.faults.bandwidth()).await?;
    let done = blocking(move || w.finish()).await?;
    if want_md5.is_some_and(|m| m != done.md5) {
        let _ = std::fs::remove_file(state.store.blob_path(&done.name));
        return Err(ApiError::bad(
            "BadDigest",
            "The Content-MD5 you specified did not match what was received.",
        ));
    }
    let sse_final = match sse_rec {
        SseRecord::Customer {
            key_md5,
            fingerprint,
            ..
        } => SseRecord::Customer {
            key_md5,
            fingerprint,
            segments: vec![Segment {
                start: 0,
                len: done.len,
                iv: done.iv.clone().unwrap_or_default(),
            }],
        },
        other => other,
    };
    let rec = ObjectRecord {
        key: req.key.clone(),
        blob: done.name.clone(),
        size: done.len,
        etag: sse::etag_for(&sse_final, &done.md5),
        crc64: done.crc64,
        last_modified_ms: now_ms(),
        content_type: meta.content_type,
        headers: meta.headers,
        user_meta: meta.user_meta,
        storage_class: meta.storage_class.unwrap_or_else(|| "STANDARD".into()),
        sse: sse_final,
    };
    let reply = Response::builder()
        .status(200)
        .header("etag", quoted(&rec.etag))
        .header("x-cos-hash-crc64ecma", rec.crc64.to_string());
    let reply = with_sse(reply, &rec.sse);
    let st = state.clone();
    blocking(move || st.store.commit(rec)).await?;
    ok(reply, body::empty())
}

/// DELETE Object: 204 whether or not the key existed.
pub async fn delete_object(state: &Arc<State>, req: Req) -> HandlerResult {
    let st = state.clone();
    let key = req.key.clone();
    blocking(move || st.store.delete(&key)).await?;
    ok(Response::builder().status(204), body::empty())
}

/// Reads a small request body (XML documents) up to `limit` bytes.
pub async fn read_small_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(ApiError::bad(
            "MalformedXML",
            format!("request body unreadable or over {limit} bytes: {e}"),
        )),
    }
}

fn encode_if(url: bool, s: &str) -> String {
    if url {
        // Like the SDKs' quote(): '/' stays readable.
        cos_encode(s).replace("%2F", "/")
    } else {
        s.to_string()
    }
}

/// GET Bucket (List Objects v1).
pub async fn list_objects(state: &Arc<State>, req: Req) -> HandlerResult {
    let prefix = req.param("prefix").unwrap_or("").to_string();
    let delimiter = req
        .param("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let marker = req.param("marker").unwrap_or("").to_string();
    let max_keys = match req.param("max-keys").filter(|v| !v.is_empty()) {
        None => 1000,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_argument("max-keys must be a number"))?
            .min(1000),
    };
    let url = match req.param("encoding-type").filter(|v| !v.is_empty()) {
        None => false,
        Some("url") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "unsupported encoding-type {other:?}"
            )))
        }
    };
    let page = state.store.with_index(|idx| {
        list::list(
            idx,
            &ListQuery {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                marker: &marker,
                max_keys,
            },
        )
        .map(Clone::clone)
    });
    let appid = state.appid().to_string();
    let mut s = String::from(xml::DECL);
    s.push_str("<ListBucketResult>");
    elem(&mut s, "Name", &state.bucket);
    if url {
        elem(&mut s, "EncodingType", "url");
    }
    elem(&mut s, "Prefix", &encode_if(url, &prefix));
    elem(&mut s, "Marker", &encode_if(url, &marker));
    elem(&mut s, "MaxKeys", &max_keys.to_string());
    if let Some(d) = &delimiter {
        elem(&mut s, "Delimiter", &encode_if(url, d));
    }
    elem(
        &mut s,
        "IsTruncated",
        if page.truncated { "true" } else { "false" },
    );
    if let Some(n) = &page.next_marker {
        elem(&mut s, "NextMarker", &encode_if(url, n));
    }
    for item in &page.items {
        match item {
            Item::Prefix(p) => {
                s.push_str("<CommonPrefixes>");
                elem(&mut s, "Prefix", &encode_if(url, p));
                s.push_str("</CommonPrefixes>");
            }
            Item::Object(k, rec) => {
                s.push_str("<Contents>");
                elem(&mut s, "Key", &encode_if(url, k));
                elem(&mut s, "LastModified", &iso8601(rec.last_modified_ms));
                elem(&mut s, "ETag", &quoted(&rec.etag));
                elem(&mut s, "Size", &rec.size.to_string());
                s.push_str("<Owner>");
                elem(&mut s, "ID", &appid);
                elem(&mut s, "DisplayName", &appid);
                s.push_str("</Owner>");
                elem(&mut s, "StorageClass", &rec.storage_class);
                s.push_str("</Contents>");
            }
        }
    }
    s.push_str("</ListBucketResult>");
    let b = Response::builder()
        .status(200)
        .header(CONTENT_TYPE, "application/xml")
        .header("x-cos-bucket-region", &state.region);
    ok(b, body::full(s))
}

/// POST /?delete (Delete Multiple Objects).
pub async fn delete_multiple(state: &Arc<State>, req: Req) -> HandlerResult {
    let want = content_md5(&req.headers)?.ok_or_else(|| {
        ApiError::bad(
            "InvalidRequest",
            "Missing required header for this request: Content-MD5.",
        )
    })?;
    let body = read_small_body(req.body, 4 * 1024 * 1024).await?;
    if <[u8; 16]>::from(Md5::digest(&body)) != want {
        return Err(ApiError::bad(
            "BadDigest",
            "The Content-MD5 you specified did not match what was received.",
        ));
    }
    let root = xml::parse(&body).map_err(|m| ApiError::bad("MalformedXML", m))?;
    if root.name != "Delete" {
        return Err(ApiError::bad(
            "MalformedXML",
            "the root element must be Delete",
        ));
    }
    let quiet = root
        .child("Quiet")
        .is_some_and(|q| q.text.trim().eq_ignore_ascii_case("true"));
    let keys: Vec<String> = root
        .all("Object")
        .map(|o| o.child("Key").map(|k| k.text.clone()).unwrap_or_default())
        .collect();
    if keys.is_empty() || keys.len() > 1000 {
        return Err(ApiError::bad(
            "MalformedXML",
            "Delete must name between 1 and 1000 objects",
        ));
    }
    let st = state.clone();
    let results = blocking(move || {
        Ok(keys
            .into_iter()
            .map(|k| {
                let r = if k.is_empty() || k.len() > cos_wire::MAX_KEY_LEN {
                    Err("InvalidArgument")
                } else {
                    st.store.delete(&k).map(|_| ()).map_err(|_| "InternalError")
                };
                (k, r)
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let mut s = String::from(xml::DECL);
    s.push_str("<DeleteResult>");
    for (k, r) in results {
        match r {
            Ok(()) if quiet => {}
            Ok(()) => {
                s.push_str("<Deleted>");
                elem(&mut s, "Key", &k);
                s.push_str("</Deleted>");
            }
            Err(code) => {
                s.push_str("<Error>");
                elem(&mut s, "Key", &k);
                elem(&mut s, "Code", code);
                elem(&mut s, "Message", "The object could not be deleted.");
                s.push_str("</Error>");
            }
        }
    }
    s.push_str("</DeleteResult>");
    ok(
        Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/xml"),
        body::full(s),
    )
}

/// The key named by `x-cos-copy-source`: host form `<bucket>.cos.<region>.myqcloud.com/<key>`
/// (any host starting with `<bucket>.`) or path form `/<bucket>/<key>`, URL-encoded.
pub fn copy_source_key(state: &State, h: &HeaderMap) -> Result<String, ApiError> {
    let raw = h
        .get("x-cos-copy-source")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::invalid_argument("x-cos-copy-source is not valid"))?;
    let raw = raw.split_once("?versionId=").map(|(a, _)| a).unwrap_or(raw);
    let bad = || {
        ApiError::invalid_argument(format!("x-cos-copy-source {raw:?} is not <bucket>.cos.<region>.myqcloud.com/<key> or /<bucket>/<key>"))
    };
    let (bucket_part, enc_key) = if let Some(rest) = raw.strip_prefix('/') {
        rest.split_once('/').ok_or_else(bad)?
    } else {
        let (host, k) = raw.split_once('/').ok_or_else(bad)?;
        (host.split('.').next().unwrap_or(""), k)
    };
    if bucket_part != state.bucket {
        return Err(ApiError::new(
            404,
            "NoSuchBucket",
            "The copy source bucket does not exist.",
        ));
    }
    let key = super::route::percent_decode(enc_key, false)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    if key.is_empty() {
        return Err(bad());
    }
    Ok(key)
}

/// Opens a copy source: record, file and decryption material, after the SSE-C and
/// `x-cos-copy-source-If-*` checks.
#[allow(clippy::type_complexity)]
pub async fn open_copy_source(
    state: &Arc<State>,
    req: &Req,
) -> Result<
    (
        Arc<ObjectRecord>,
        File,
        Option<(Zeroizing<[u8; 32]>, Vec<Segment>)>,
    ),
    ApiError,
> {
    let src_key = copy_source_key(state, &req.headers)?;
    let st = state.clone();
    let (rec, file) = blocking(move || st.store.open_object(&src_key))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NoSuchKey",
                "The specified copy source does not exist.",
            )
        })?;
    let key = sse::check_key(&rec.sse, req.sse.source_customer.as_ref(), "copy source")?;
    if preconditions(&req.headers, "x-cos-copy-source-", &rec).is_some() {
        return Err(ApiError::new(
            412,
            "PreconditionFailed",
            "Precondition not match.",
        ));
    }
    let material = key.map(|k| (k, segments_of(&rec.sse)));
    Ok((rec, file, material))
}

/// PUT Object - Copy.
pub async fn copy_object(state: &Arc<State>, req: Req) -> HandlerResult {
    let (src, file, src_key) = open_copy_source(state, &req).await?;
    let directive = req.header("x-cos-metadata-directive").unwrap_or("Copy");
    let replace = match directive.to_ascii_lowercase().as_str() {
        "copy" => false,
        "replaced" | "replace" => true,
        _ => {
            return Err(ApiError::invalid_argument(format!(
                "x-cos-metadata-directive {directive:?} must be Copy or Replaced"
            )))
        }
    };
    let meta = parse_write_meta(&req.headers)?;
    let (dst_sse, dst_key) = sse::new_record(&req.sse);
    if src.key == req.key
        && !replace
        && dst_sse == SseRecord::None
        && !src.sse.is_customer()
        && meta.storage_class.is_none()
    {
        return Err(ApiError::bad(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata or encryption attributes.",
        ));
    }
    let (content_type, headers, user_meta) = if replace {
        (meta.content_type, meta.headers, meta.user_meta)
    } else {
        (
            src.content_type.clone(),
            src.headers.clone(),
            src.user_meta.clone(),
        )
    };
    let storage_class = meta
        .storage_class
        .unwrap_or_else(|| src.storage_class.clone());
    let st = state.clone();
    let src2 = src.clone();
    let iv = dst_key.as_ref().map(|_| crypto::new_iv());
    let reencrypt = src_key.is_some() || dst_key.is_some();
    let plain_md5 = !src.sse.hides_md5() && !src.etag.contains('-');
    let (blob, md5, segments) = blocking(move || {
        if !reencrypt {
            let blob = st.store.link_blob(&src2.blob)?;
            let md5 = if plain_md5 {
                parse_hex16(&src2.etag)
            } else {
                None
            };
            let md5 = match md5 {
                Some(m) => m,
                None => {
                    let mut h = Md5::new();
                    let mut buf = vec![0u8; CHUNK];
                    let mut pos = 0u64;
                    while pos < src2.size {
                        let n = ((src2.size - pos) as usize).min(CHUNK);
                        file.read_exact_at(&mut buf[..n], pos)?;
                        h.update(&buf[..n]);
                        pos += n as u64;
                    }
                    h.finalize().into()
                }
            };
            return Ok((blob, md5, vec![]));
        }
        let mut w = st.store.object_writer(dst_key.as_deref().zip(iv))?;
        copy_into(&file, 0, src2.size, src_key.as_ref(), &mut w)?;
        let done = w.finish()?;
        let segs = match &done.iv {
            Some(iv) => vec![Segment {
                start: 0,
                len: done.len,
                iv: iv.clone(),
            }],
            None => vec![],
        };
        Ok((done.name, done.md5, segs))
    })
    .await?;
    let sse_final = match dst_sse {
        SseRecord::Customer {
            key_md5,
            fingerprint,
            ..
        } => SseRecord::Customer {
            key_md5,
            fingerprint,
            segments,
        },
        other => other,
    };
    let rec = ObjectRecord {
        key: req.key.clone(),
        blob,
        size: src.size,
        etag: sse::etag_for(&sse_final, &md5),
        crc64: src.crc64,
        last_modified_ms: now_ms(),
        content_type,
        headers,
        user_meta,
        storage_class,
        sse: sse_final,
    };
    let mut s = String::from(xml::DECL);
    s.push_str("<CopyObjectResult>");
    elem(&mut s, "ETag", &quoted(&rec.etag));
    elem(&mut s, "CRC64", &rec.crc64.to_string());
    elem(&mut s, "LastModified", &iso8601(rec.last_modified_ms));
    s.push_str("</CopyObjectResult>");
    let b = with_sse(
        Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/xml"),
        &rec.sse,
    )
    .header("x-cos-hash-crc64ecma", rec.crc64.to_string());
    let st = state.clone();
    blocking(move || st.store.commit(rec)).await?;
    ok(b, body::full(s))
}

fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_rules() {
        let mut h = HeaderMap::new();
        h.insert("x-cos-meta-mode", HeaderValue::from_static("33188"));
        h.insert("Content-Type", HeaderValue::from_static("text/plain"));
        h.insert(
            "x-cos-storage-class",
            HeaderValue::from_static("standard_ia"),
        );
        h.insert("cache-control", HeaderValue::from_static("no-cache"));
        let m = parse_write_meta(&h).expect("valid");
        assert_eq!(
            m.user_meta.get("x-cos-meta-mode").map(String::as_str),
            Some("33188")
        );
        assert_eq!(m.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        h.insert("x-cos-meta-bad_name", HeaderValue::from_static("1"));
        assert_eq!(
            parse_write_meta(&h).expect_err("underscore").code,
            "InvalidArgument"
        );
    }

    #[test]
    fn md5_and_length_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(
            declared_length(&h).expect_err("missing").code,
            "MissingContentLength"
        );
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("6000000000"));
        assert_eq!(declared_length(&h).expect_err("big").code, "EntityTooLarge");
        h.insert("content-md5", HeaderValue::from_static("nope"));
        assert_eq!(content_md5(&h).expect_err("bad").code, "InvalidDigest");
        h.insert(
            "content-md5",
            HeaderValue::from_static("XrY7u+Ae7tCTyyK7j1rNww=="),
        );
        assert!(content_md5(&h).expect("ok").is_some());
    }

    #[test]
    fn etag_condition_lists() {
        assert!(etag_matches("\"abc\", \"def\"", "def"));
        assert!(etag_matches("*", "x"));
        assert!(!etag_matches("\"abc\"", "abd"));
    }
}

//! `CosHttpClient`: the real [`ObjectClient`], speaking the COS XML API over HTTPS.
//!
//! Each operation describes its request as a [`RequestSpec`]; `request.rs` builds and signs
//! a fresh request from it for every attempt, `retry.rs` decides about retries, and this
//! module checks what came back: typed errors from status + `<Code>`, the SSE echo of
//! creating requests, `<Error>` inside a 200, missing ETags, and CRC-64 end to end (PUT
//! bodies and parts are checksummed locally; Complete is checked against the parts' CRCs
//! combined, copies against the source's CRC).
//!
//! SSE-C reads (HEAD, GET, copy sources) try the key history through `read_keys.rs`, which
//! knows which key last opened which object.
//!
//! GET bodies are streamed. If the connection breaks mid-body, the stream re-requests the
//! remaining range itself (same key, `If-Match` on the ETag so a changed object is an error,
//! never a splice of two versions), within the retry bounds; a body that ends early without
//! a transport error is treated the same way. Only when the retries are spent does the
//! stream yield an error.
//!
//! Two ambiguities are resolved by looking: a copy whose remembered source key is stale
//! finds the right key with a HEAD and tries once more; a Complete retried after its answer
//! was lost finds the upload gone (`NoSuchUpload`) and is accepted only if HEAD shows the
//! object the parts make (multipart ETag with that part count, the summed size and, when
//! every part has one, the combined CRC-64).

use super::config::CosClientConfig;
use super::crc64;
use super::credentials::CredentialStore;
use super::error::{CosError, CosErrorKind};
use super::op::CosOp;
use super::progress::UploadTracker;
use super::read_keys::{is_key_rejection, ReadKeys};
use super::request::{check_key, content_md5, RequestSpec, Requester};
use super::response::{
    check_crc, content_length, crc_header, etag_header, header, invalid, meta_from_headers,
    parse_content_range, result_body, transport_error,
};
use super::retry::{self, RetryPolicy};
use super::sse::{ReadKey, SsePolicy};
use super::xml;
use super::{
    limits, ByteStream, CompletedPart, CopySource, DeleteFailures, GetRequest, GetResponse,
    ListPage, ListPartsPage, ListUploadsPage, MetadataDirective, ObjectClient, ObjectMeta,
    PutOptions, PutResult, UploadId,
};
use crate::metrics::{Outcome, METRICS};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::HeaderMap;
use reqwest::{Method, Response};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Parallel Upload Part - Copy requests of one multipart copy.
const COPY_PARALLELISM: usize = 4;
/// Bodies larger than this are checksummed off the async workers.
const BLOCKING_HASH_THRESHOLD: usize = 256 * 1024;
/// The slowest upload rate tolerated before the response headers are due (bytes/s).
const MIN_UPLOAD_RATE: u64 = 256 * 1024;
/// How far the server's `Initiated` times may sit before our first Initiate attempt (its
/// times have one-second resolution, and the answer's `Date` is not the request's).
const ORPHAN_CLOCK_SLACK: Duration = Duration::from_secs(2);
/// Pages of List Multipart Uploads read when looking for orphans of one key.
const ORPHAN_LIST_PAGES: usize = 10;

/// The COS client. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct CosHttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    req: Requester,
    retry: RetryPolicy,
    read_timeout: Duration,
    multipart_copy_threshold: u64,
    copy_part_size: u64,
    /// Which SSE-C key opens which object.
    keys: ReadKeys,
    requests: AtomicU64,
    /// Multipart uploads running (metrics gauge, progress lines).
    uploads: UploadTracker,
}

impl std::fmt::Debug for CosHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.inner.req.addressing();
        f.debug_struct("CosHttpClient")
            .field("bucket", &self.inner.req.bucket())
            .field(
                "endpoint",
                &format!("{}://{}{}", a.scheme, a.authority, a.path_prefix),
            )
            .field("sse", self.inner.req.sse())
            .finish_non_exhaustive()
    }
}

fn config_error(msg: String) -> CosError {
    CosError::local(CosErrorKind::Refused, CosOp::HeadBucket, "", msg)
}

impl CosHttpClient {
    /// Builds the client (no request is sent). Refuses SSE-C over `http://`, unreadable CA
    /// files and malformed endpoints.
    pub fn new(cfg: CosClientConfig) -> Result<Self, CosError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            // One HTTP version keeps Host/signing and Complete's keep-alive spaces simple.
            .http1_only()
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_nodelay(true)
            // COS may answer 302 for origin-pull; following it blindly is unsafe.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cosmount/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                config_error(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| config_error(format!("CA file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(config_error(format!(
                    "CA file {} holds no certificate",
                    path.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        let req = Requester::new(http, &cfg)?;
        Ok(CosHttpClient {
            inner: Arc::new(Inner {
                req,
                retry: RetryPolicy::new(cfg.retry.clone()),
                read_timeout: cfg.read_timeout,
                multipart_copy_threshold: cfg.multipart_copy_threshold,
                copy_part_size: cfg.copy_part_size.max(limits::MIN_PART_SIZE),
                keys: ReadKeys::new(),
                requests: AtomicU64::new(0),
                uploads: UploadTracker::default(),
            }),
        })
    }

    /// The SSE policy every request follows.
    pub fn sse(&self) -> &SsePolicy {
        self.inner.req.sse()
    }

    /// HTTP requests sent so far (every attempt counts).
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// What the retry loop did so far (retries sent, operations they saved, give-ups).
    pub fn retry_stats(&self) -> retry::RetrySnapshot {
        self.inner.retry.stats().snapshot()
    }

    /// The read key remembered for `key`, if any.
    pub fn read_hint(&self, key: &str) -> Option<ReadKey> {
        self.inner.keys.hint(key)
    }

    fn remember(&self, key: &str, rk: ReadKey) {
        self.inner.keys.remember(self.sse(), key, rk);
    }

    fn forget(&self, key: &str) {
        self.inner.keys.forget(key);
    }

    /// The read key new objects get under the policy.
    fn write_read_key(&self) -> ReadKey {
        ReadKeys::for_new_objects(self.sse())
    }

    /// Time allowed until the response headers arrive: the read timeout plus the time to
    /// send the body at a slow but live rate.
    fn header_timeout(&self, body_len: usize) -> Duration {
        self.inner.read_timeout + Duration::from_secs(body_len as u64 / MIN_UPLOAD_RATE)
    }

    /// The credentials requests are signed with (refresh, counts).
    pub fn credentials(&self) -> &Arc<CredentialStore> {
        self.inner.req.credentials()
    }

    /// One attempt: build, sign, send; a non-2xx answer becomes a typed error. When COS
    /// rejects the credentials (or they expired) and they can be refreshed, it is sent
    /// once more with fresh ones.
    async fn attempt(&self, spec: &RequestSpec) -> Result<Response, CosError> {
        let (first, generation) = self.attempt_signed(spec).await;
        match first {
            Err(e)
                if rejects_credentials(&e)
                    && self.credentials().refresh_after_rejection(generation).await =>
            {
                self.attempt_signed(spec).await.0
            }
            r => r,
        }
    }

    /// One attempt with the credentials in force, and their generation. Counted for the
    /// metrics page: its outcome and, for object data, the bytes in flight and sent.
    async fn attempt_signed(&self, spec: &RequestSpec) -> (Result<Response, CosError>, u64) {
        let generation = self.credentials().current().generation;
        let (req, generation) = match self.inner.req.build_signed(spec) {
            Err(e) => return (Err(e), generation),
            Ok(built) => built,
        };
        let data = match spec.op {
            CosOp::PutObject | CosOp::UploadPart => spec.body.as_ref().map_or(0, |b| b.len()),
            _ => 0,
        } as i64;
        METRICS.upload_pending(data);
        let r = self.send_built(spec, req).await;
        METRICS.upload_pending(-data);
        let outcome = match &r {
            Ok(_) => {
                METRICS.uploaded(data as u64);
                Outcome::Ok
            }
            Err(e) => match e.status {
                Some(s) if s >= 500 => Outcome::ServerError,
                Some(_) => Outcome::ClientError,
                None => Outcome::Network,
            },
        };
        METRICS.request(spec.op, outcome);
        (r, generation)
    }

    /// Sends a built request; a non-2xx answer becomes a typed error.
    async fn send_built(
        &self,
        spec: &RequestSpec,
        req: reqwest::Request,
    ) -> Result<Response, CosError> {
        let (op, key) = (spec.op, spec.key.as_str());
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let limit = self.header_timeout(spec.body.as_ref().map_or(0, |b| b.len()));
        let resp = match tokio::time::timeout(limit, self.inner.req.send(req)).await {
            Err(_) => {
                return Err(CosError::local(
                    CosErrorKind::Timeout,
                    op,
                    key,
                    format!("no response within {limit:?}"),
                ))
            }
            Ok(Err(e)) => return Err(transport_error(op, key, e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let request_id = header(resp.headers(), "x-cos-request-id");
        // HEAD errors have no body; other bodies are read for the <Code>, leniently.
        let body = if spec.method == Method::HEAD {
            Bytes::new()
        } else {
            self.read_body(op, key, resp).await.unwrap_or_default()
        };
        let parsed = xml::parse_error(&body).unwrap_or_default();
        let message = parsed
            .message
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
        Err(CosError::from_response(
            op,
            key,
            status.as_u16(),
            parsed.code,
            message,
            request_id.or(parsed.request_id),
        ))
    }

    /// Reads a whole response body with an idle timeout per chunk (Complete's keep-alive
    /// spaces reset it) and a length check against Content-Length.
    async fn read_body(&self, op: CosOp, key: &str, resp: Response) -> Result<Bytes, CosError> {
        let expected = content_length(resp.headers());
        let mut stream = resp.bytes_stream();
        let mut buf = bytes::BytesMut::new();
        loop {
            match tokio::time::timeout(self.inner.read_timeout, stream.next()).await {
                Err(_) => {
                    return Err(CosError::local(
                        CosErrorKind::Timeout,
                        op,
                        key,
                        format!("response body stalled for {:?}", self.inner.read_timeout),
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(transport_error(op, key, e)),
                Ok(Some(Ok(chunk))) => buf.extend_from_slice(&chunk),
            }
        }
        if let Some(n) = expected {
            if buf.len() as u64 != n {
                return Err(CosError::local(
                    CosErrorKind::Transport,
                    op,
                    key,
                    format!("response body cut short: {} of {n} bytes", buf.len()),
                ));
            }
        }
        Ok(buf.freeze())
    }

    /// Runs `spec` with retries; `handle` turns a 2xx response into the result (its
    /// failures, such as a truncated body, are retried like any other).
    async fn call<T, F, Fut>(&self, spec: &RequestSpec, handle: F) -> Result<T, CosError>
    where
        F: Fn(Response) -> Fut,
        Fut: Future<Output = Result<T, CosError>>,
    {
        let handle = &handle;
        retry::run(&self.inner.retry, spec.op, &spec.key, |_| async move {
            let resp = self.attempt(spec).await?;
            handle(resp).await
        })
        .await
    }

    /// Runs a read of `key` with each candidate SSE-C key in turn (see [`ReadKeys::probe`]).
    async fn with_read_keys<T, F, Fut>(&self, op: CosOp, key: &str, f: F) -> Result<T, CosError>
    where
        F: Fn(ReadKey) -> Fut,
        Fut: Future<Output = Result<T, CosError>>,
    {
        self.inner.keys.probe(self.sse(), op, key, f).await
    }

    async fn head_with(&self, key: &str, rk: ReadKey) -> Result<ObjectMeta, CosError> {
        let spec = RequestSpec::new(CosOp::HeadObject, Method::HEAD, key).read(rk);
        self.call(&spec, |resp| async move {
            let size = content_length(resp.headers())
                .ok_or_else(|| invalid(CosOp::HeadObject, key, "HEAD without Content-Length"))?;
            meta_from_headers(CosOp::HeadObject, key, resp.headers(), size)
        })
        .await
    }

    /// The read key of a copy source: the remembered one, or found by a HEAD (which also
    /// gives the size and attributes).
    async fn source_key(&self, src: &str) -> Result<(ReadKey, Option<ObjectMeta>), CosError> {
        if !self.sse().uses_customer_keys() {
            return Ok((ReadKey::Plain, None));
        }
        if let Some(h) = self.read_hint(src) {
            return Ok((h, None));
        }
        let meta = self.head(src).await?;
        let rk = self.read_hint(src).unwrap_or(ReadKey::Plain);
        Ok((rk, Some(meta)))
    }

    /// Opens a GET for `range` (absolute, end exclusive) with an optional If-Match.
    async fn open_get(
        &self,
        key: &str,
        rk: ReadKey,
        range: Option<&Range<u64>>,
        if_match: Option<&str>,
    ) -> Result<(ObjectMeta, Response, u64, u64), CosError> {
        let op = CosOp::GetObject;
        let mut spec = RequestSpec::new(op, Method::GET, key).read(rk);
        if let Some(r) = range {
            spec = spec.header("range", format!("bytes={}-{}", r.start, r.end - 1));
        }
        if let Some(e) = if_match {
            spec = spec.header("if-match", format!("\"{e}\""));
        }
        self.call(&spec, |resp| async move {
            let len = content_length(resp.headers());
            let h = resp.headers();
            let (start, size, end) = match range {
                None => {
                    if resp.status().as_u16() != 200 {
                        return Err(invalid(op, key, "unexpected status for a GET"));
                    }
                    let size = len.ok_or_else(|| invalid(op, key, "GET without Content-Length"))?;
                    (0, size, size)
                }
                Some(r) => {
                    if resp.status().as_u16() != 206 {
                        return Err(invalid(op, key, "the server ignored the Range header"));
                    }
                    let cr = header(h, "content-range")
                        .ok_or_else(|| invalid(op, key, "206 without Content-Range"))?;
                    let (first, last, total) = parse_content_range(&cr)
                        .ok_or_else(|| invalid(op, key, "malformed Content-Range"))?;
                    if first != r.start
                        || last >= r.end
                        || len.is_some_and(|l| l != last - first + 1)
                    {
                        return Err(invalid(op, key, "Content-Range does not match the request"));
                    }
                    (first, total, last + 1)
                }
            };
            let meta = meta_from_headers(op, key, h, size)?;
            Ok((meta, resp, start, end))
        })
        .await
    }

    async fn copy_single(
        &self,
        src: &str,
        if_match: Option<&str>,
        dst: &str,
        rk: ReadKey,
        directive: &MetadataDirective,
        src_crc: Option<u64>,
    ) -> Result<PutResult, CosError> {
        let op = CosOp::CopyObject;
        let mut spec = RequestSpec::new(op, Method::PUT, dst)
            .read(rk)
            .header("x-cos-copy-source", self.inner.req.copy_source(src));
        if let Some(e) = if_match {
            // Pins the copy (and every retry of it) to the version the caller saw.
            spec = spec.header("x-cos-copy-source-if-match", format!("\"{e}\""));
        }
        match directive {
            MetadataDirective::Copy => spec = spec.header("x-cos-metadata-directive", "Copy"),
            MetadataDirective::Replaced(opts) => {
                spec = spec.header("x-cos-metadata-directive", "Replaced");
                spec = with_put_options(spec, op, dst, opts)?;
            }
        }
        let result = self
            .call(&spec, |resp| async move {
                self.check_echo(op, dst, resp.headers())?;
                let crc_header = crc_header(resp.headers());
                let body = self.read_body(op, dst, resp).await?;
                let (etag, crc) = result_body(op, dst, &body)?;
                Ok(PutResult {
                    etag,
                    crc64: crc.or(crc_header),
                })
            })
            .await?;
        check_crc(op, dst, src_crc, result.crc64, "the copy source")?;
        self.remember(dst, self.write_read_key());
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    async fn part_copy_with(
        &self,
        dst: &str,
        upload: &UploadId,
        number: u32,
        src: &str,
        if_match: Option<&str>,
        range: Range<u64>,
        rk: ReadKey,
    ) -> Result<CompletedPart, CosError> {
        let op = CosOp::UploadPartCopy;
        check_part_number(op, dst, number)?;
        if range.start >= range.end {
            return Err(CosError::local(
                CosErrorKind::Refused,
                op,
                dst,
                "empty copy range",
            ));
        }
        let mut spec = RequestSpec::new(op, Method::PUT, dst)
            .param("partNumber", number.to_string())
            .param("uploadId", upload.0.clone())
            .read(rk)
            .header("x-cos-copy-source", self.inner.req.copy_source(src))
            .header(
                "x-cos-copy-source-range",
                format!("bytes={}-{}", range.start, range.end - 1),
            );
        if let Some(e) = if_match {
            spec = spec.header("x-cos-copy-source-if-match", format!("\"{e}\""));
        }
        let size = range.end - range.start;
        self.call(&spec, |resp| async move {
            let body = self.read_body(op, dst, resp).await?;
            let (etag, _) = result_body(op, dst, &body)?;
            // The part's CRC is not documented for part copies: the whole copy is checked
            // against the source's CRC instead.
            Ok(CompletedPart {
                number,
                etag,
                size,
                crc64: None,
            })
        })
        .await
    }

    async fn copy_multipart(
        &self,
        src: &str,
        dst: &str,
        size: u64,
        rk: ReadKey,
        directive: &MetadataDirective,
        src_meta: &ObjectMeta,
    ) -> Result<PutResult, CosError> {
        let opts = match directive {
            MetadataDirective::Copy => PutOptions {
                content_type: src_meta.content_type.clone(),
                user_meta: src_meta.user_meta.clone(),
            },
            MetadataDirective::Replaced(o) => o.clone(),
        };
        let mut part = self.inner.copy_part_size;
        // Stay within the part count limit.
        let min_part = size.div_ceil(u64::from(limits::MAX_PARTS));
        if part < min_part {
            part = min_part;
        }
        let upload = self.create_multipart(dst, &opts).await?;
        let ranges: Vec<(u32, Range<u64>)> = (0..size.div_ceil(part))
            .map(|i| ((i + 1) as u32, i * part..((i + 1) * part).min(size)))
            .collect();
        let result = async {
            let mut parts: Vec<CompletedPart> = futures::stream::iter(ranges)
                .map(|(n, r)| {
                    self.part_copy_with(dst, &upload, n, src, Some(&src_meta.etag), r, rk)
                })
                .buffer_unordered(COPY_PARALLELISM)
                .try_collect()
                .await?;
            parts.sort_by_key(|p| p.number);
            self.complete_multipart(dst, &upload, &parts).await
        }
        .await;
        match result {
            Ok(r) => {
                check_crc(
                    CosOp::CopyObject,
                    dst,
                    src_meta.crc64,
                    r.crc64,
                    "the copy source",
                )?;
                Ok(r)
            }
            Err(e) => {
                if let Err(a) = self.abort_multipart(dst, &upload).await {
                    tracing::warn!(key = dst, error = %a, "could not abort a failed multipart copy");
                }
                Err(e)
            }
        }
    }

    /// After a retried Complete found its upload gone: whether `key` now is the object the
    /// parts make (a multipart ETag with that part count, the summed size, and the
    /// combined CRC when known).
    async fn completed_earlier(
        &self,
        key: &str,
        part_count: usize,
        size: u64,
        crc: Option<u64>,
    ) -> Option<PutResult> {
        let m = self.head(key).await.ok()?;
        let suffix_ok = m.etag.ends_with(&format!("-{part_count}"));
        let crc_ok = crc.is_none() || m.crc64 == crc;
        if suffix_ok && crc_ok && m.size == size {
            tracing::debug!(
                key,
                "Complete retried after a lost answer; the object is in place"
            );
            Some(PutResult {
                etag: m.etag,
                crc64: m.crc64,
            })
        } else {
            None
        }
    }

    /// Aborts the uploads of exactly `key`, other than `ours`, initiated at or after
    /// `since`: the orphans a retried Initiate may have left. Best effort: a failure is
    /// logged (the upload then waits for `cosmount` cleanup or a lifecycle rule).
    async fn abort_orphans(&self, key: &str, ours: &UploadId, since: std::time::SystemTime) {
        let mut marker: Option<(String, String)> = None;
        for _ in 0..ORPHAN_LIST_PAGES {
            let page = match self
                .list_uploads(key, marker.as_ref().map(|(k, u)| (k.as_str(), u.as_str())))
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(key, error = %e, "could not look for an upload orphaned by a retried Initiate; it may remain until aborted");
                    return;
                }
            };
            for u in &page.uploads {
                let recent = u.initiated.is_some_and(|t| t >= since);
                if u.key == key && u.upload_id != *ours && recent {
                    match self.abort_multipart(key, &u.upload_id).await {
                        Ok(()) => {
                            tracing::debug!(key, "aborted an upload orphaned by a retried Initiate")
                        }
                        Err(e) => {
                            tracing::warn!(key, error = %e, "could not abort an upload orphaned by a retried Initiate")
                        }
                    }
                }
            }
            match page.next {
                Some(m) => marker = Some(m),
                None => return,
            }
        }
    }

    fn check_echo(&self, op: CosOp, key: &str, h: &HeaderMap) -> Result<(), CosError> {
        self.sse()
            .check_echo(op, &|name| header(h, name))
            .map_err(|m| CosError {
                request_id: header(h, "x-cos-request-id"),
                ..CosError::local(CosErrorKind::IntegrityMismatch, op, key, m)
            })
    }
}

/// `NoSuchUpload` while writing parts: the upload was aborted or expired elsewhere. That is
/// a failed write (EIO), not a missing file (the 404 would otherwise read as ENOENT).
/// Whether `e` may say the credentials are no good, so fresh ones may help: expired
/// before sending, an answer whose code says so (COS answers an expired STS token with
/// 400 `ExpiredToken`), or a 400/403 without a code (a HEAD's error has no body). The
/// last may as well be a wrong SSE-C key being probed: that costs at most one fetch
/// every few seconds, and no second request unless the fetch gave other credentials.
fn rejects_credentials(e: &CosError) -> bool {
    e.kind == CosErrorKind::CredentialsExpired
        || match e.code.as_deref() {
            Some(code) => matches!(
                code,
                "ExpiredToken" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied"
            ),
            None => matches!(e.status, Some(400 | 403)),
        }
}

fn upload_gone(e: CosError) -> CosError {
    if e.code.as_deref() == Some("NoSuchUpload") {
        CosError {
            kind: CosErrorKind::IntegrityMismatch,
            message: "the multipart upload no longer exists (aborted or expired elsewhere)"
                .to_string(),
            ..e
        }
    } else {
        e
    }
}

fn check_part_number(op: CosOp, key: &str, n: u32) -> Result<(), CosError> {
    if n == 0 || n > limits::MAX_PARTS {
        return Err(CosError::local(
            CosErrorKind::Refused,
            op,
            key,
            format!("part number {n} outside 1..=10000"),
        ));
    }
    Ok(())
}

/// Adds Content-Type and `x-cos-meta-*` of `opts` to a creating request.
fn with_put_options(
    mut spec: RequestSpec,
    op: CosOp,
    key: &str,
    opts: &PutOptions,
) -> Result<RequestSpec, CosError> {
    if let Some(ct) = &opts.content_type {
        spec = spec.content_type(ct.clone());
    }
    for (k, v) in &opts.user_meta {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(CosError::local(
                CosErrorKind::Refused,
                op,
                key,
                format!("metadata name {k:?}: only letters, digits and '-' are allowed"),
            ));
        }
        spec = spec.header(&format!("x-cos-meta-{}", k.to_ascii_lowercase()), v.clone());
    }
    Ok(spec)
}

/// MD5 (base64) and CRC-64 of a body, off the async workers when it is large.
async fn digests(body: &Bytes) -> (String, u64) {
    if body.len() < BLOCKING_HASH_THRESHOLD {
        return (content_md5(body), crc64::crc64(body));
    }
    let b = body.clone();
    match tokio::task::spawn_blocking(move || (content_md5(&b), crc64::crc64(&b))).await {
        Ok(v) => v,
        // The blocking pool is gone (runtime shutting down): compute here.
        Err(_) => (content_md5(body), crc64::crc64(body)),
    }
}

/// The streamed body of a GET, resuming the remaining range after a broken connection.
struct BodyState {
    client: CosHttpClient,
    key: String,
    rk: ReadKey,
    etag: String,
    /// Absolute offset of the next byte.
    pos: u64,
    /// Absolute end (exclusive).
    end: u64,
    stream: Option<Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>>,
    resumes: u32,
    done: bool,
}

impl BodyState {
    async fn next(&mut self) -> Option<Result<Bytes, CosError>> {
        let op = CosOp::GetObject;
        loop {
            if self.done {
                return None;
            }
            if self.pos == self.end {
                self.done = true;
                if self.resumes > 0 {
                    let stats = self.client.inner.retry.stats();
                    stats.recovered.fetch_add(1, Ordering::Relaxed);
                }
                return None;
            }
            let Some(stream) = self.stream.as_mut() else {
                // Resume: re-request what is left, pinned to the same object version.
                let range = self.pos..self.end;
                match self
                    .client
                    .open_get(&self.key, self.rk, Some(&range), Some(&self.etag))
                    .await
                {
                    Ok((_, resp, _, _)) => {
                        self.stream = Some(Box::pin(resp.bytes_stream()));
                        continue;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            };
            let idle = self.client.inner.read_timeout;
            let why = match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    let n = chunk.len() as u64;
                    if self.pos + n > self.end {
                        self.done = true;
                        return Some(Err(invalid(
                            op,
                            &self.key,
                            "more body bytes than announced",
                        )));
                    }
                    self.pos += n;
                    METRICS.downloaded(n);
                    return Some(Ok(chunk));
                }
                Ok(None) => format!("body ended at byte {} of {}", self.pos, self.end),
                Ok(Some(Err(e))) => transport_error(op, &self.key, e).message,
                Err(_) => format!("body stalled for {idle:?}"),
            };
            self.stream = None;
            self.resumes += 1;
            if self.resumes >= self.client.inner.retry.config().max_attempts {
                self.done = true;
                let stats = self.client.inner.retry.stats();
                stats.gave_up.fetch_add(1, Ordering::Relaxed);
                return Some(Err(CosError::local(
                    CosErrorKind::Transport,
                    op,
                    &self.key,
                    format!("{why}; gave up after {} resumes", self.resumes - 1),
                )));
            }
            tracing::debug!(key = %self.key, pos = self.pos, resume = self.resumes, reason = %why,
                "GET body broke; requesting the rest");
            let stats = self.client.inner.retry.stats();
            stats.retries.fetch_add(1, Ordering::Relaxed);
            let wait = self
                .client
                .inner
                .retry
                .delay(self.resumes, rand::random::<f64>());
            tokio::time::sleep(wait).await;
        }
    }
}

impl ObjectClient for CosHttpClient {
    fn counters(&self) -> super::ClientCounters {
        super::ClientCounters {
            requests: self.request_count(),
            retries: self.retry_stats(),
            credentials: self.credentials().counts(),
        }
    }

    async fn head_bucket(&self) -> Result<(), CosError> {
        let spec = RequestSpec::new(CosOp::HeadBucket, Method::HEAD, "");
        self.call(&spec, |_| async { Ok(()) }).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, CosError> {
        check_key(CosOp::HeadObject, key)?;
        self.with_read_keys(CosOp::HeadObject, key, |rk| self.head_with(key, rk))
            .await
    }

    async fn get(
        &self,
        key: &str,
        req: impl Into<GetRequest> + Send,
    ) -> Result<GetResponse, CosError> {
        let GetRequest { range, if_match } = req.into();
        let op = CosOp::GetObject;
        check_key(op, key)?;
        if let Some(r) = &range {
            if r.start >= r.end {
                // COS cannot express an empty range: answer with the attributes alone.
                let meta = self.head(key).await?;
                return Ok(GetResponse {
                    meta,
                    body: Box::pin(futures::stream::empty()),
                });
            }
        }
        let (meta, resp, start, end, rk) = self
            .with_read_keys(op, key, |rk| {
                let (range, if_match) = (range.clone(), if_match.clone());
                async move {
                    let (m, r, s, e) = self
                        .open_get(key, rk, range.as_ref(), if_match.as_deref())
                        .await?;
                    Ok((m, r, s, e, rk))
                }
            })
            .await?;
        let state = BodyState {
            client: self.clone(),
            key: key.to_string(),
            rk,
            etag: meta.etag.clone(),
            pos: start,
            end,
            stream: Some(Box::pin(resp.bytes_stream())),
            resumes: 0,
            done: false,
        };
        let body: ByteStream = Box::pin(futures::stream::unfold(state, |mut s| async move {
            s.next().await.map(|item| (item, s))
        }));
        Ok(GetResponse { meta, body })
    }

    async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max_keys: u32,
    ) -> Result<ListPage, CosError> {
        let op = CosOp::ListObjects;
        let mut spec = RequestSpec::new(op, Method::GET, "").param("prefix", prefix);
        if let Some(d) = delimiter {
            spec = spec.param("delimiter", d);
        }
        if let Some(m) = marker {
            spec = spec.param("marker", m);
        }
        spec = spec
            .param("max-keys", max_keys.clamp(1, limits::MAX_KEYS).to_string())
            .param("encoding-type", "url");
        self.call(&spec, |resp| async move {
            let body = self.read_body(op, prefix, resp).await?;
            xml::parse_list_bucket(&body).map_err(|m| invalid(op, prefix, &m))
        })
        .await
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<PutResult, CosError> {
        let op = CosOp::PutObject;
        check_key(op, key)?;
        if body.len() as u64 > limits::MAX_PART_SIZE {
            return Err(CosError::local(
                CosErrorKind::Refused,
                op,
                key,
                "PUT body larger than 5 GiB",
            ));
        }
        let (md5, crc) = digests(&body).await;
        let size = body.len() as u64;
        let spec = with_put_options(RequestSpec::new(op, Method::PUT, key), op, key, opts)?
            .body(body, Some(md5));
        let r = self
            .call(&spec, |resp| async move {
                let h = resp.headers();
                self.check_echo(op, key, h)?;
                let etag = etag_header(op, key, h)?;
                check_crc(op, key, Some(crc), crc_header(h), "the body sent")?;
                Ok(PutResult {
                    etag,
                    crc64: Some(crc),
                })
            })
            .await;
        let r = match r {
            // The last attempt's answer was lost: the PUT may have gone through. Look, so
            // the caller learns the truth instead of an error for stored data.
            Err(e) if matches!(e.kind, CosErrorKind::Timeout | CosErrorKind::Transport) => {
                match self.head(key).await {
                    Ok(m) if m.size == size && m.crc64 == Some(crc) => {
                        tracing::debug!(key, "PUT answer lost; HEAD shows the object stored");
                        Ok(PutResult {
                            etag: m.etag,
                            crc64: Some(crc),
                        })
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }?;
        self.remember(key, self.write_read_key());
        Ok(r)
    }

    async fn delete(&self, key: &str) -> Result<(), CosError> {
        let op = CosOp::DeleteObject;
        let spec = RequestSpec::new(op, Method::DELETE, key);
        let r = self.call(&spec, |_| async { Ok(()) }).await;
        self.forget(key);
        match r {
            Err(e) if e.kind == CosErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<DeleteFailures, CosError> {
        let op = CosOp::DeleteMultiple;
        if keys.len() > limits::MAX_KEYS as usize {
            return Err(CosError::local(
                CosErrorKind::Refused,
                op,
                "",
                "more than 1000 keys in one multi-delete",
            ));
        }
        // Keys that cannot be sent (empty, or characters XML cannot carry) are reported as
        // failures with the local code `KeyNotSendable` rather than sinking the batch.
        let mut failures = Vec::new();
        let sendable: Vec<String> = keys
            .iter()
            .filter(|k| {
                let ok = xml::escape(k).is_ok() && !k.is_empty();
                if !ok {
                    failures.push(((*k).clone(), "KeyNotSendable".to_string()));
                }
                ok
            })
            .cloned()
            .collect();
        if sendable.is_empty() {
            return Ok(DeleteFailures(failures));
        }
        let body = xml::delete_body(&sendable)
            .map_err(|m| CosError::local(CosErrorKind::Refused, op, "", m))?;
        let body = Bytes::from(body);
        let md5 = content_md5(&body);
        let spec = RequestSpec::new(op, Method::POST, "")
            .flag("delete")
            .content_type("application/xml")
            .body(body, Some(md5));
        let failed = self
            .call(&spec, |resp| async move {
                let body = self.read_body(op, "", resp).await?;
                xml::parse_delete_result(&body).map_err(|m| invalid(op, "", &m))
            })
            .await?;
        for k in &sendable {
            self.forget(k);
        }
        failures.extend(failed);
        Ok(DeleteFailures(failures))
    }

    async fn copy(
        &self,
        src: &CopySource<'_>,
        dst: &str,
        directive: &MetadataDirective,
    ) -> Result<PutResult, CosError> {
        let op = CosOp::CopyObject;
        let key = src.key;
        check_key(op, key)?;
        check_key(op, dst)?;
        let (_, mut meta) = self.source_key(key).await?;
        let size = match (src.size, &meta) {
            (Some(s), _) => s,
            (None, Some(m)) => m.size,
            (None, None) => {
                let m = self.head(key).await?;
                let s = m.size;
                meta = Some(m);
                s
            }
        };
        if let (Some(want), Some(m)) = (src.etag, &meta) {
            if m.etag != want {
                return Err(CosError::local(
                    CosErrorKind::PreconditionFailed,
                    op,
                    key,
                    format!("the copy source changed (ETag {want} became {})", m.etag),
                ));
            }
        }
        if size > self.inner.multipart_copy_threshold {
            // Initiate does not copy attributes: they come from the source's HEAD.
            let meta = match meta {
                Some(m) => m,
                None => self.head(key).await?,
            };
            if src.etag.is_some_and(|want| want != meta.etag) {
                return Err(CosError::local(
                    CosErrorKind::PreconditionFailed,
                    op,
                    key,
                    "the copy source changed",
                ));
            }
            let rk = self.read_hint(key).unwrap_or(ReadKey::Plain);
            return self
                .copy_multipart(key, dst, size, rk, directive, &meta)
                .await;
        }
        let rk = self.read_hint(key).unwrap_or(ReadKey::Plain);
        let src_crc = meta.as_ref().and_then(|m| m.crc64).or(src.crc64);
        match self
            .copy_single(key, src.etag, dst, rk, directive, src_crc)
            .await
        {
            // The remembered key was stale (the source was rewritten elsewhere): find the
            // right one with a HEAD and try once more.
            Err(e) if meta.is_none() && self.sse().uses_customer_keys() && is_key_rejection(&e) => {
                self.forget(key);
                let m = self.head(key).await?;
                let rk = self.read_hint(key).unwrap_or(ReadKey::Plain);
                self.copy_single(key, src.etag, dst, rk, directive, m.crc64)
                    .await
            }
            other => other,
        }
    }

    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<UploadId, CosError> {
        let op = CosOp::InitiateMultipart;
        check_key(op, key)?;
        let spec = with_put_options(RequestSpec::new(op, Method::POST, key), op, key, opts)?
            .flag("uploads");
        let spec = &spec;
        let started = std::time::Instant::now();
        // Set when an attempt failed in a way that may have created an upload anyway.
        let ambiguous = std::sync::atomic::AtomicBool::new(false);
        let ambiguous = &ambiguous;
        let (id, server_now) = retry::run(&self.inner.retry, op, key, |_| async move {
            let r: Result<(UploadId, Option<std::time::SystemTime>), CosError> = async {
                let resp = self.attempt(spec).await?;
                self.check_echo(op, key, resp.headers())?;
                let server_now =
                    header(resp.headers(), "date").and_then(|d| httpdate::parse_http_date(&d).ok());
                let body = self.read_body(op, key, resp).await?;
                let id = xml::parse_initiate(&body).map_err(|m| invalid(op, key, &m))?;
                Ok((id, server_now))
            }
            .await;
            if let Err(e) = &r {
                if matches!(e.kind, CosErrorKind::Timeout | CosErrorKind::Transport) {
                    ambiguous.store(true, Ordering::Relaxed);
                }
            }
            r
        })
        .await?;
        if ambiguous.load(Ordering::Relaxed) {
            // An earlier attempt may have created an upload whose answer we never saw: it
            // would stay, billed, until aborted. It was initiated after our first attempt
            // was sent, by the server's clock.
            let since = server_now
                .unwrap_or_else(std::time::SystemTime::now)
                .checked_sub(started.elapsed() + ORPHAN_CLOCK_SLACK)
                .unwrap_or(std::time::UNIX_EPOCH);
            self.abort_orphans(key, &id, since).await;
        }
        self.inner.uploads.began(&id.0, key);
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<CompletedPart, CosError> {
        let op = CosOp::UploadPart;
        check_key(op, key)?;
        check_part_number(op, key, number)?;
        if body.len() as u64 > limits::MAX_PART_SIZE {
            return Err(CosError::local(
                CosErrorKind::Refused,
                op,
                key,
                "part larger than 5 GiB",
            ));
        }
        let size = body.len() as u64;
        let (md5, crc) = digests(&body).await;
        let spec = RequestSpec::new(op, Method::PUT, key)
            .param("partNumber", number.to_string())
            .param("uploadId", upload.0.clone())
            .body(body, Some(md5));
        let part = self
            .call(&spec, |resp| async move {
                let h = resp.headers();
                let etag = etag_header(op, key, h)?;
                check_crc(op, key, Some(crc), crc_header(h), "the part sent")?;
                Ok(CompletedPart {
                    number,
                    etag,
                    size,
                    crc64: Some(crc),
                })
            })
            .await
            .map_err(upload_gone)?;
        self.inner.uploads.part_done(&upload.0, size);
        Ok(part)
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        src: &str,
        range: Range<u64>,
    ) -> Result<CompletedPart, CosError> {
        check_key(CosOp::UploadPartCopy, key)?;
        check_key(CosOp::UploadPartCopy, src)?;
        let (rk, _) = self.source_key(src).await?;
        self.part_copy_with(key, upload, number, src, None, range, rk)
            .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload: &UploadId,
        parts: &[CompletedPart],
    ) -> Result<PutResult, CosError> {
        let op = CosOp::CompleteMultipart;
        check_key(op, key)?;
        if parts.is_empty() || parts.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(CosError::local(
                CosErrorKind::Refused,
                op,
                key,
                "Complete needs at least one part, in strictly ascending order",
            ));
        }
        let body = xml::complete_body(parts.iter().map(|p| (p.number, p.etag.as_str())))
            .map_err(|m| CosError::local(CosErrorKind::Refused, op, key, m))?;
        let body = Bytes::from(body);
        let md5 = content_md5(&body);
        let expected_crc = if parts.iter().all(|p| p.crc64.is_some()) {
            crc64::combine_all(parts.iter().map(|p| (p.crc64.unwrap_or(0), p.size)))
        } else {
            None
        };
        let spec = RequestSpec::new(op, Method::POST, key)
            .param("uploadId", upload.0.clone())
            .content_type("application/xml")
            .body(body, Some(md5));
        let size: u64 = parts.iter().map(|p| p.size).sum();
        let spec = &spec;
        let r = retry::run(&self.inner.retry, op, key, |attempt| async move {
            let resp = match self.attempt(spec).await {
                Ok(resp) => resp,
                // The upload is gone. After a lost answer that is our own earlier attempt
                // having gone through: accept it if the object is the one the parts make.
                // Either way it is never "no such file": the caller gets an I/O error.
                Err(e) if e.code.as_deref() == Some("NoSuchUpload") => {
                    if attempt > 1 {
                        if let Some(done) = self
                            .completed_earlier(key, parts.len(), size, expected_crc)
                            .await
                        {
                            return Ok(done);
                        }
                    }
                    return Err(CosError {
                        kind: CosErrorKind::IntegrityMismatch,
                        message: if attempt > 1 {
                            "the upload disappeared after an answer was lost, and the object \
                             is not the one its parts make"
                                .to_string()
                        } else {
                            "the multipart upload no longer exists (aborted or expired \
                             elsewhere); nothing was stored"
                                .to_string()
                        },
                        ..e
                    });
                }
                Err(e) => return Err(e),
            };
            let h = resp.headers().clone();
            self.check_echo(op, key, &h)?;
            // Keep-alive spaces may precede the XML for minutes; each resets the idle timeout.
            let body = self.read_body(op, key, resp).await?;
            let (etag, body_crc) = result_body(op, key, &body)?;
            let crc = crc_header(&h).or(body_crc);
            check_crc(op, key, expected_crc, crc, "the parts combined")?;
            Ok(PutResult { etag, crc64: crc })
        })
        .await?;
        self.inner.uploads.ended(&upload.0, true);
        self.remember(key, self.write_read_key());
        Ok(r)
    }

    async fn abort_multipart(&self, key: &str, upload: &UploadId) -> Result<(), CosError> {
        let spec = RequestSpec::new(CosOp::AbortMultipart, Method::DELETE, key)
            .param("uploadId", upload.0.clone());
        let r = self.call(&spec, |_| async { Ok(()) }).await;
        if r.is_ok() || r.as_ref().is_err_and(|e| e.kind == CosErrorKind::NotFound) {
            self.inner.uploads.ended(&upload.0, false);
        }
        r
    }

    async fn list_parts(
        &self,
        key: &str,
        upload: &UploadId,
        part_number_marker: Option<u32>,
    ) -> Result<ListPartsPage, CosError> {
        let op = CosOp::ListParts;
        let mut spec = RequestSpec::new(op, Method::GET, key)
            .param("uploadId", upload.0.clone())
            .param("max-parts", limits::MAX_KEYS.to_string());
        if let Some(m) = part_number_marker {
            spec = spec.param("part-number-marker", m.to_string());
        }
        self.call(&spec, |resp| async move {
            let body = self.read_body(op, key, resp).await?;
            xml::parse_list_parts(&body).map_err(|m| invalid(op, key, &m))
        })
        .await
    }

    async fn list_uploads(
        &self,
        prefix: &str,
        marker: Option<(&str, &str)>,
    ) -> Result<ListUploadsPage, CosError> {
        let op = CosOp::ListMultipartUploads;
        let mut spec = RequestSpec::new(op, Method::GET, "")
            .flag("uploads")
            .param("prefix", prefix)
            .param("max-uploads", limits::MAX_KEYS.to_string())
            .param("encoding-type", "url");
        if let Some((k, u)) = marker {
            spec = spec.param("key-marker", k).param("upload-id-marker", u);
        }
        self.call(&spec, |resp| async move {
            let body = self.read_body(op, prefix, resp).await?;
            xml::parse_list_uploads(&body).map_err(|m| invalid(op, prefix, &m))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_refuses_customer_keys_over_http_and_bad_ca_files() {
        use crate::cos::config::{Credentials, Endpoint};
        use crate::cos::sse::{CustomerKey, SseMode};
        let mut cfg = CosClientConfig::new(
            "b-1",
            Endpoint::Url("http://127.0.0.1:1".into()),
            Credentials::new("id", "secret", None),
        );
        let k = CustomerKey::parse(b"0123456789ABCDEF0123456789ABCDEF").unwrap();
        cfg.sse = SsePolicy::new(SseMode::Customer { keys: vec![k] }).unwrap();
        let e = CosHttpClient::new(cfg.clone()).unwrap_err();
        assert_eq!(e.kind, CosErrorKind::Refused);
        assert!(e.to_string().contains("SSE-C"), "{e}");
        cfg.endpoint = Endpoint::Url("https://127.0.0.1:1".into());
        cfg.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(CosHttpClient::new(cfg.clone()).is_err());
        cfg.ca_file = None;
        assert!(CosHttpClient::new(cfg).is_ok());
    }
}

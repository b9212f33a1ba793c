//! The COS protocol core: everything that knows COS exists.
//!
//! `ObjectClient` is the seam between the filesystem and the object store: one bucket per
//! instance, with signing, the SSE policy, retries and integrity checks as properties of
//! the instance, so callers cannot forget them. `http::CosHttpClient` is the real
//! implementation (the only code that talks HTTP, through `request.rs`), `mem::MemStore`
//! an in-memory one for tests of the layers above.

pub mod config;
pub mod credentials;
pub mod cvm_role;
pub mod error;
// Test doubles: compiled for this crate's unit tests and, with the `mock` feature, for the
// integration tests (a dev-dependency of the package on itself turns it on); never in the
// shipped binary.
#[cfg(any(test, feature = "mock"))]
pub mod faulty;
pub mod http;
#[cfg(any(test, feature = "mock"))]
pub mod mem;
mod progress;
mod read_keys;
pub mod request;
mod response;
pub mod retry;
pub mod sse;
pub mod xml;

// Wire facts shared with coslocal: the operation list, signing, CRC-64.
pub use cos_wire::{crc64, op, sign};

use bytes::Bytes;
use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

pub use error::{CosError, CosErrorKind};
pub use op::CosOp;
pub use sse::{ReadKey, SsePolicy};

/// The encryption COS reports for an object (from HEAD/GET response headers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Encryption {
    #[default]
    None,
    /// SSE-COS (`AES256` or `SM4`).
    CosManaged,
    Kms {
        key_id: Option<String>,
    },
    /// SSE-C; `key_md5` is the base64 MD5 of the key that opened it.
    Customer {
        key_md5: String,
    },
}

/// What HEAD (or the headers of a GET) says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// The ETag with its quotes removed.
    pub etag: String,
    pub last_modified: SystemTime,
    pub content_type: Option<String>,
    /// `x-cos-meta-*` headers: lowercase suffix (without the prefix) → value.
    pub user_meta: BTreeMap<String, String>,
    /// `x-cos-hash-crc64ecma`, when COS sent it.
    pub crc64: Option<u64>,
    /// `x-cos-storage-class`; `None` means STANDARD.
    pub storage_class: Option<String>,
    pub encryption: Encryption,
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: SystemTime,
    pub storage_class: Option<String>,
}

/// One page of GET Bucket (v1). Keys and prefixes are decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListEntry>,
    pub common_prefixes: Vec<String>,
    /// The marker for the next page; `None` when the listing is complete.
    pub next_marker: Option<String>,
}

/// Attributes of an object being created (PUT, Initiate, Copy with `Replaced`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub content_type: Option<String>,
    /// `x-cos-meta-*` suffix → value.
    pub user_meta: BTreeMap<String, String>,
}

/// What COS answered to an object-creating request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub etag: String,
    pub crc64: Option<u64>,
}

/// An upload id of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(pub String);

/// One uploaded part, as needed by Complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub number: u32,
    pub etag: String,
    pub size: u64,
    /// CRC-64 of the part's data, computed locally; lets Complete verify the whole object.
    pub crc64: Option<u64>,
}

/// A part as reported by List Parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

/// One page of List Parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPartsPage {
    pub parts: Vec<PartInfo>,
    /// `Some(marker)` when truncated.
    pub next_part_number_marker: Option<u32>,
}

/// An in-progress multipart upload, from List Multipart Uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: UploadId,
    pub initiated: Option<SystemTime>,
}

/// One page of List Multipart Uploads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUploadsPage {
    pub uploads: Vec<UploadInfo>,
    /// `Some((key_marker, upload_id_marker))` when truncated.
    pub next: Option<(String, String)>,
}

/// How a copy treats metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataDirective {
    /// Keep the source's metadata.
    Copy,
    /// Replace it with these attributes (required when copying an object onto itself).
    Replaced(PutOptions),
}

/// The source of a server-side copy: its key, and what the caller knows of it. A known
/// ETag pins the copy to that version (`x-cos-copy-source-If-Match`: a changed source
/// fails with PreconditionFailed instead of copying other bytes, on every retry); a known
/// size saves a HEAD; a known CRC-64 is compared with the copy's.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopySource<'a> {
    pub key: &'a str,
    pub size: Option<u64>,
    pub etag: Option<&'a str>,
    pub crc64: Option<u64>,
}

impl<'a> CopySource<'a> {
    /// A source known by its key only.
    pub fn key(key: &'a str) -> CopySource<'a> {
        CopySource {
            key,
            ..CopySource::default()
        }
    }

    pub fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    pub fn etag(mut self, etag: Option<&'a str>) -> Self {
        self.etag = etag;
        self
    }

    pub fn crc64(mut self, crc: Option<u64>) -> Self {
        self.crc64 = crc;
        self
    }
}

/// Keys of a multi-delete that COS did not delete, with its code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteFailures(pub Vec<(String, String)>);

/// A streamed GET body: chunks arrive as the network delivers them.
pub type ByteStream =
    Pin<Box<dyn futures::Stream<Item = Result<Bytes, CosError>> + Send + 'static>>;

/// What a GET asks for: a byte range (end exclusive) or the whole object, and optionally
/// only the version with this ETag (`If-Match`; another version is 412, kind
/// `PreconditionFailed`). `None` and `Some(range)` convert into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetRequest {
    pub range: Option<Range<u64>>,
    pub if_match: Option<String>,
}

impl GetRequest {
    pub fn if_match(mut self, etag: &str) -> Self {
        self.if_match = Some(etag.to_string());
        self
    }
}

impl From<Option<Range<u64>>> for GetRequest {
    fn from(range: Option<Range<u64>>) -> Self {
        GetRequest {
            range,
            if_match: None,
        }
    }
}

/// The answer to a GET: the object's attributes and its (possibly ranged) body.
pub struct GetResponse {
    pub meta: ObjectMeta,
    pub body: ByteStream,
}

impl GetResponse {
    /// Reads the whole body into memory.
    pub async fn collect(self) -> Result<Bytes, CosError> {
        use futures::StreamExt;
        let mut body = self.body;
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

/// What a client counted since it was made, for the end-of-mount statistics line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Requests sent (every attempt counts).
    pub requests: u64,
    /// Retries sent, operations they saved, operations given up.
    pub retries: retry::RetrySnapshot,
    /// Credential refreshes that worked and that failed.
    pub credentials: credentials::RefreshCounts,
}

/// The object operations cosmount needs, bound to one bucket. SSE, signing, retries and
/// response checks are properties of the implementation, not parameters.
pub trait ObjectClient: Send + Sync + 'static {
    /// What this client has counted so far.
    fn counters(&self) -> ClientCounters;

    /// HEAD Bucket: the cheap reachability and credential check at mount time.
    fn head_bucket(&self) -> impl Future<Output = Result<(), CosError>> + Send;

    /// HEAD Object.
    fn head(&self, key: &str) -> impl Future<Output = Result<ObjectMeta, CosError>> + Send;

    /// GET Object (see [`GetRequest`]: a range, an ETag to insist on). The body is
    /// streamed.
    fn get(
        &self,
        key: &str,
        req: impl Into<GetRequest> + Send,
    ) -> impl Future<Output = Result<GetResponse, CosError>> + Send;

    /// GET Bucket v1: one page.
    fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max_keys: u32,
    ) -> impl Future<Output = Result<ListPage, CosError>> + Send;

    /// PUT Object (≤ 5 GiB), with Content-MD5 and a CRC-64 check of what COS stored.
    fn put(
        &self,
        key: &str,
        body: Bytes,
        opts: &PutOptions,
    ) -> impl Future<Output = Result<PutResult, CosError>> + Send;

    /// DELETE Object. A missing key is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), CosError>> + Send;

    /// Delete Multiple Objects (quiet mode); at most 1000 keys per call.
    fn delete_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<DeleteFailures, CosError>> + Send;

    /// Server-side copy `src` → `dst`. Sources larger than the single-copy limit are
    /// copied with multipart Upload Part - Copy.
    fn copy(
        &self,
        src: &CopySource<'_>,
        dst: &str,
        directive: &MetadataDirective,
    ) -> impl Future<Output = Result<PutResult, CosError>> + Send;

    /// Initiate Multipart Upload.
    fn create_multipart(
        &self,
        key: &str,
        opts: &PutOptions,
    ) -> impl Future<Output = Result<UploadId, CosError>> + Send;

    /// Upload Part (numbers 1..=10000). The body is sent again from its start on retries.
    fn upload_part(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> impl Future<Output = Result<CompletedPart, CosError>> + Send;

    /// Upload Part - Copy of `range` (end exclusive) of `src`.
    fn upload_part_copy(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        src: &str,
        range: Range<u64>,
    ) -> impl Future<Output = Result<CompletedPart, CosError>> + Send;

    /// Complete Multipart Upload; parts in ascending order. Verifies the ETag is present,
    /// no `<Error>` hides in the 200, the SSE echo, and (when every part has a CRC) the
    /// CRC-64 of the whole object.
    fn complete_multipart(
        &self,
        key: &str,
        upload: &UploadId,
        parts: &[CompletedPart],
    ) -> impl Future<Output = Result<PutResult, CosError>> + Send;

    /// Abort Multipart Upload.
    fn abort_multipart(
        &self,
        key: &str,
        upload: &UploadId,
    ) -> impl Future<Output = Result<(), CosError>> + Send;

    /// List Parts: one page.
    fn list_parts(
        &self,
        key: &str,
        upload: &UploadId,
        part_number_marker: Option<u32>,
    ) -> impl Future<Output = Result<ListPartsPage, CosError>> + Send;

    /// List Multipart Uploads: one page.
    fn list_uploads(
        &self,
        prefix: &str,
        marker: Option<(&str, &str)>,
    ) -> impl Future<Output = Result<ListUploadsPage, CosError>> + Send;
}

/// Every page of a listing (GET Bucket v1, `page_size` keys a page), merged in order.
///
/// A page that is truncated without a usable `NextMarker` continues after the greater of
/// its last key and last common prefix; a marker that does not move forward (a server
/// bug that would loop for ever) is an `InvalidResponse` error.
pub async fn list_all<C: ObjectClient>(
    client: &C,
    prefix: &str,
    delimiter: Option<&str>,
    page_size: u32,
) -> Result<ListPage, CosError> {
    let mut all = ListPage::default();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list(prefix, delimiter, marker.as_deref(), page_size)
            .await?;
        let last_obj = page.objects.last().map(|o| o.key.clone());
        let last_cp = page.common_prefixes.last().cloned();
        all.objects.extend(page.objects);
        all.common_prefixes.extend(page.common_prefixes);
        let next = match page.next_marker {
            None => return Ok(all),
            Some(m) if !m.is_empty() => Some(m),
            Some(_) => last_obj.max(last_cp),
        };
        match next {
            None => return Ok(all),
            Some(m) if marker.as_ref().is_some_and(|old| m <= *old) => {
                return Err(CosError::local(
                    CosErrorKind::InvalidResponse,
                    CosOp::ListObjects,
                    prefix,
                    format!("listing marker did not advance ({m:?})"),
                ));
            }
            m => marker = m,
        }
    }
}

/// Shortest sizes COS accepts, used by the upload code and checked by `coslocal`.
pub mod limits {
    /// Minimum size of every part but the last (1 MiB).
    pub const MIN_PART_SIZE: u64 = 1024 * 1024;
    /// Maximum size of one part, one PUT and one single-request copy (5 GiB).
    pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
    /// Maximum number of parts.
    pub const MAX_PARTS: u32 = 10_000;
    /// Maximum keys per listing page and per multi-delete.
    pub const MAX_KEYS: u32 = 1000;
    /// Longest object key (UTF-8 bytes).
    pub use cos_wire::MAX_KEY_LEN;
}

#[cfg(test)]
mod tests {
    use super::mem::MemStore;
    use super::*;

    #[tokio::test]
    async fn list_all_merges_every_page_in_order() {
        let s = MemStore::default();
        for k in ["d/a", "d/b", "d/c", "d/e/1", "d/f/2", "d/g", "d/h", "x"] {
            s.insert(k, "v", &[]);
        }
        let whole = s.list("d/", Some("/"), None, 1000).await.unwrap();
        assert!(whole.next_marker.is_none());
        for page in [1, 2, 3] {
            let merged = list_all(&s, "d/", Some("/"), page).await.unwrap();
            assert_eq!(merged.objects, whole.objects, "page size {page}");
            assert_eq!(merged.common_prefixes, ["d/e/", "d/f/"], "page size {page}");
            assert!(merged.next_marker.is_none());
        }
        let flat = list_all(&s, "d/", None, 2).await.unwrap();
        assert_eq!(flat.objects.len(), 7);
    }
}

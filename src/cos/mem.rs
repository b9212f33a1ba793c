//! `MemStore`: an in-memory `ObjectClient` for tests of the layers above `cos`.
//!
//! It keeps the rules a real bucket enforces where they shape client behaviour: part
//! numbers 1..=10000, every part but the last at least 1 MiB and at most 5 GiB, parts of
//! a Complete in ascending order with matching ETags, a single PUT at most 5 GiB, keys of
//! 1..=850 bytes, listing pages of at most 1000 entries with delimiter roll-up and
//! markers. Each stored object records the SSE headers its creating request carried and
//! the key that reads it, so tests can prove that PUT, multipart and copy all encrypt.
//! Tests can inject failures (`fail_next`), count requests per operation (`count`) and add
//! a per-request latency (`set_latency`) to make concurrency visible in timings.

use super::error::{CosError, CosErrorKind};
use super::limits::{MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE};
use super::op::CosOp;
use super::sse::{ReadKey, SseMode, SsePolicy};
use super::{
    CompletedPart, CopySource, DeleteFailures, Encryption, GetRequest, GetResponse, ListEntry,
    ListPage, ListPartsPage, ListUploadsPage, MetadataDirective, ObjectClient, ObjectMeta,
    PartInfo, PutOptions, PutResult, UploadId, UploadInfo,
};
use bytes::Bytes;
use md5::{Digest, Md5};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::{Duration, SystemTime};

/// One stored object.
#[derive(Debug, Clone)]
pub struct MemObject {
    pub data: Bytes,
    pub etag: String,
    pub last_modified: SystemTime,
    pub content_type: Option<String>,
    pub user_meta: BTreeMap<String, String>,
    /// Names of the SSE headers the creating request carried (values are not kept: they
    /// may be secret).
    pub sse_headers: Vec<&'static str>,
    /// The key a read of this object needs.
    pub read_key: ReadKey,
    pub encryption: Encryption,
    /// CRC-64/ECMA of `data` as stored (reported as `x-cos-hash-crc64ecma`; `corrupt`
    /// changes the data but not this).
    pub crc64: u64,
}

struct Upload {
    key: String,
    opts: PutOptions,
    sse_headers: Vec<&'static str>,
    parts: BTreeMap<u32, (String, Bytes)>,
    initiated: SystemTime,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, MemObject>,
    uploads: BTreeMap<String, Upload>,
    next_upload: u64,
    next_etag: u64,
    counts: HashMap<CosOp, u64>,
    /// Body bytes served by GET.
    get_bytes: u64,
    /// op → (remaining failures, kind).
    faults: HashMap<CosOp, (u32, CosErrorKind)>,
}

/// An in-memory bucket. Cheap to share behind an `Arc`.
pub struct MemStore {
    state: Mutex<State>,
    sse: SsePolicy,
    latency: Mutex<Duration>,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore::new(SsePolicy::none())
    }
}

impl MemStore {
    /// A store whose requests carry the headers `sse` decides, as `CosHttpClient` would.
    pub fn new(sse: SsePolicy) -> MemStore {
        MemStore {
            state: Mutex::new(State::default()),
            sse,
            latency: Mutex::new(Duration::ZERO),
        }
    }

    /// Every request sleeps this long before it is served.
    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock() = d;
    }

    /// The next `n` requests of `op` fail with `kind`.
    pub fn fail_next(&self, op: CosOp, n: u32, kind: CosErrorKind) {
        self.state.lock().faults.insert(op, (n, kind));
    }

    /// Requests of `op` served (or failed) so far.
    pub fn count(&self, op: CosOp) -> u64 {
        self.state.lock().counts.get(&op).copied().unwrap_or(0)
    }

    /// Requests of all kinds so far.
    pub fn total_count(&self) -> u64 {
        self.state.lock().counts.values().sum()
    }

    pub fn reset_counts(&self) {
        let mut st = self.state.lock();
        st.counts.clear();
        st.get_bytes = 0;
    }

    /// Body bytes served by GET since the last reset (to prove nothing is fetched twice).
    pub fn get_bytes(&self) -> u64 {
        self.state.lock().get_bytes
    }

    /// A stored object, bypassing the request path (not counted).
    pub fn object(&self, key: &str) -> Option<MemObject> {
        self.state.lock().objects.get(key).cloned()
    }

    /// All stored keys in order.
    pub fn keys(&self) -> Vec<String> {
        self.state.lock().objects.keys().cloned().collect()
    }

    /// Number of multipart uploads neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.state.lock().uploads.len()
    }

    /// Flips one bit of the stored data of `key` at `offset`, leaving its ETag and CRC-64
    /// as recorded (bit rot for integrity tests). False if there is no such byte.
    pub fn corrupt(&self, key: &str, offset: usize) -> bool {
        let mut st = self.state.lock();
        let Some(o) = st.objects.get_mut(key) else {
            return false;
        };
        if offset >= o.data.len() {
            return false;
        }
        let mut v = o.data.to_vec();
        v[offset] ^= 1;
        o.data = Bytes::from(v);
        true
    }

    /// Stores an object exactly as given (e.g. one copied from another store).
    pub fn insert_object(&self, key: &str, obj: MemObject) {
        self.state.lock().objects.insert(key.to_string(), obj);
    }

    /// Stores an object as another client would (not counted, no faults).
    pub fn insert(&self, key: &str, data: impl Into<Bytes>, meta: &[(&str, &str)]) {
        let opts = PutOptions {
            content_type: None,
            user_meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let mut st = self.state.lock();
        let obj = self.new_object(&mut st, data.into(), &opts, Vec::new(), ReadKey::Plain);
        st.objects.insert(key.to_string(), obj);
    }

    /// Counts the request, applies latency and injected faults.
    async fn enter(&self, op: CosOp, key: &str) -> Result<(), CosError> {
        let lat = *self.latency.lock();
        if !lat.is_zero() {
            tokio::time::sleep(lat).await;
        }
        let mut st = self.state.lock();
        *st.counts.entry(op).or_insert(0) += 1;
        if let Some((n, kind)) = st.faults.get_mut(&op) {
            if *n > 0 {
                *n -= 1;
                let kind = *kind;
                return Err(CosError::local(kind, op, key, "injected fault"));
            }
        }
        if key.len() > super::limits::MAX_KEY_LEN {
            return Err(err(op, key, 400, "KeyTooLong"));
        }
        Ok(())
    }

    /// What an object created now is encrypted with, and which headers its request had.
    fn create_sse(&self, op: CosOp, read: ReadKey) -> (Vec<&'static str>, ReadKey, Encryption) {
        let names = self
            .sse
            .headers_for(op, read)
            .iter()
            .map(|h| h.name)
            .collect();
        match self.sse.mode() {
            SseMode::None => (names, ReadKey::Plain, Encryption::None),
            SseMode::CosManaged => (names, ReadKey::Plain, Encryption::CosManaged),
            SseMode::Kms { key_id, .. } => (
                names,
                ReadKey::Plain,
                Encryption::Kms {
                    key_id: key_id.clone(),
                },
            ),
            SseMode::Customer { .. } => {
                let rk = self.sse.write_read_key();
                let key_md5 = self
                    .sse
                    .customer_key(rk)
                    .map(|k| k.md5_b64().to_string())
                    .unwrap_or_default();
                (names, rk, Encryption::Customer { key_md5 })
            }
        }
    }

    fn new_object(
        &self,
        st: &mut State,
        data: Bytes,
        opts: &PutOptions,
        sse_headers: Vec<&'static str>,
        read_key: ReadKey,
    ) -> MemObject {
        st.next_etag += 1;
        let encryption = match read_key {
            ReadKey::Plain if sse_headers.is_empty() => Encryption::None,
            _ => self.create_sse(CosOp::PutObject, ReadKey::Plain).2,
        };
        MemObject {
            etag: hex(&Md5::digest(&data)),
            crc64: super::crc64::crc64(&data),
            data,
            last_modified: SystemTime::now(),
            content_type: opts.content_type.clone(),
            user_meta: opts.user_meta.clone(),
            sse_headers,
            read_key,
            encryption,
        }
    }

    fn meta_of(key: &str, o: &MemObject) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size: o.data.len() as u64,
            etag: o.etag.clone(),
            last_modified: o.last_modified,
            content_type: o.content_type.clone(),
            user_meta: o.user_meta.clone(),
            crc64: Some(o.crc64),
            storage_class: None,
            encryption: o.encryption.clone(),
        }
    }

    /// Whether this client's policy holds the key that opens `o`.
    fn can_read(&self, o: &MemObject) -> bool {
        match &o.encryption {
            Encryption::Customer { key_md5 } => self
                .sse
                .customer_keys()
                .iter()
                .any(|k| k.md5_b64() == key_md5),
            _ => true,
        }
    }

    /// Records `body` as part `number` of `upload` (Upload Part and Upload Part - Copy).
    fn store_part(
        &self,
        op: CosOp,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<CompletedPart, CosError> {
        let mut st = self.state.lock();
        let up = st
            .uploads
            .get_mut(&upload.0)
            .filter(|u| u.key == key)
            .ok_or_else(|| err(op, key, 404, "NoSuchUpload"))?;
        let etag = hex(&Md5::digest(&body));
        let size = body.len() as u64;
        let crc = super::crc64::crc64(&body);
        up.parts.insert(number, (etag.clone(), body));
        Ok(CompletedPart {
            number,
            etag,
            size,
            crc64: Some(crc),
        })
    }

    fn read_obj(&self, op: CosOp, key: &str) -> Result<MemObject, CosError> {
        let st = self.state.lock();
        let o = st
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| err(op, key, 404, "NoSuchKey"))?;
        if !self.can_read(&o) {
            return Err(CosError::from_response(
                op,
                key,
                400,
                Some("SsecDecryptHeaderInvalid".into()),
                "no key of the key history opens this object".into(),
                None,
            ));
        }
        Ok(o)
    }
}

fn err(op: CosOp, key: &str, status: u16, code: &str) -> CosError {
    CosError::from_response(
        op,
        key,
        status,
        Some(code.to_string()),
        code.to_string(),
        None,
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl ObjectClient for MemStore {
    /// Requests of every kind; the store never retries.
    fn counters(&self) -> super::ClientCounters {
        super::ClientCounters {
            requests: self.total_count(),
            retries: Default::default(),
            credentials: Default::default(),
        }
    }

    async fn head_bucket(&self) -> Result<(), CosError> {
        self.enter(CosOp::HeadBucket, "").await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, CosError> {
        self.enter(CosOp::HeadObject, key).await?;
        let o = self.read_obj(CosOp::HeadObject, key)?;
        Ok(Self::meta_of(key, &o))
    }

    async fn get(
        &self,
        key: &str,
        req: impl Into<GetRequest> + Send,
    ) -> Result<GetResponse, CosError> {
        let GetRequest { range, if_match } = req.into();
        self.enter(CosOp::GetObject, key).await?;
        let o = self.read_obj(CosOp::GetObject, key)?;
        if if_match.as_ref().is_some_and(|e| *e != o.etag) {
            return Err(err(CosOp::GetObject, key, 412, "PreconditionFailed"));
        }
        let len = o.data.len() as u64;
        let body = match range {
            None => o.data.clone(),
            Some(r) => {
                if r.start >= len && !(r.start == 0 && len == 0) {
                    return Err(err(CosOp::GetObject, key, 416, "InvalidRange"));
                }
                let end = r.end.min(len);
                o.data.slice(r.start as usize..end as usize)
            }
        };
        let meta = Self::meta_of(key, &o);
        self.state.lock().get_bytes += body.len() as u64;
        let stream = futures::stream::once(async move { Ok::<Bytes, CosError>(body) });
        Ok(GetResponse {
            meta,
            body: Box::pin(stream),
        })
    }

    async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max_keys: u32,
    ) -> Result<ListPage, CosError> {
        self.enter(CosOp::ListObjects, prefix).await?;
        let max = max_keys.clamp(1, super::limits::MAX_KEYS) as usize;
        let st = self.state.lock();
        // The same page logic as coslocal's, so the mock and the server cannot disagree.
        let found = cos_wire::list::list(
            &st.objects,
            &cos_wire::list::ListQuery {
                prefix,
                delimiter,
                marker: marker.unwrap_or(""),
                max_keys: max,
            },
        );
        let mut page = ListPage {
            next_marker: found.next_marker,
            ..ListPage::default()
        };
        for item in found.items {
            match item {
                cos_wire::list::Item::Prefix(p) => page.common_prefixes.push(p),
                cos_wire::list::Item::Object(key, o) => page.objects.push(ListEntry {
                    key,
                    size: o.data.len() as u64,
                    etag: o.etag.clone(),
                    last_modified: o.last_modified,
                    storage_class: None,
                }),
            }
        }
        Ok(page)
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<PutResult, CosError> {
        self.enter(CosOp::PutObject, key).await?;
        if body.len() as u64 > MAX_PART_SIZE {
            return Err(err(CosOp::PutObject, key, 400, "EntityTooLarge"));
        }
        let (names, rk, _) = self.create_sse(CosOp::PutObject, ReadKey::Plain);
        // Stored as its own copy, as a server would: the caller's buffer (and the memory
        // budget it carries) is free once the request is answered.
        let body = Bytes::copy_from_slice(&body);
        let mut st = self.state.lock();
        let obj = self.new_object(&mut st, body, opts, names, rk);
        let (etag, crc) = (obj.etag.clone(), obj.crc64);
        st.objects.insert(key.to_string(), obj);
        Ok(PutResult {
            etag,
            crc64: Some(crc),
        })
    }

    async fn delete(&self, key: &str) -> Result<(), CosError> {
        self.enter(CosOp::DeleteObject, key).await?;
        self.state.lock().objects.remove(key);
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<DeleteFailures, CosError> {
        self.enter(CosOp::DeleteMultiple, "").await?;
        if keys.len() > super::limits::MAX_KEYS as usize {
            return Err(err(CosOp::DeleteMultiple, "", 400, "MalformedXML"));
        }
        let mut st = self.state.lock();
        for k in keys {
            st.objects.remove(k);
        }
        Ok(DeleteFailures::default())
    }

    async fn copy(
        &self,
        source: &CopySource<'_>,
        dst: &str,
        directive: &MetadataDirective,
    ) -> Result<PutResult, CosError> {
        let src = source.key;
        self.enter(CosOp::CopyObject, dst).await?;
        let o = self
            .read_obj(CosOp::CopyObject, src)
            .map_err(|e| match e.kind {
                CosErrorKind::NotFound => err(CosOp::CopyObject, src, 404, "NoSuchCopySource"),
                _ => e,
            })?;
        if source.etag.is_some_and(|e| e != o.etag) {
            return Err(err(CosOp::CopyObject, src, 412, "PreconditionFailed"));
        }
        if src == dst && *directive == MetadataDirective::Copy {
            return Err(err(CosOp::CopyObject, dst, 400, "InvalidRequest"));
        }
        let opts = match directive {
            MetadataDirective::Copy => PutOptions {
                content_type: o.content_type.clone(),
                user_meta: o.user_meta.clone(),
            },
            MetadataDirective::Replaced(p) => p.clone(),
        };
        let (names, rk, _) = self.create_sse(CosOp::CopyObject, o.read_key);
        let mut st = self.state.lock();
        let obj = self.new_object(&mut st, o.data.clone(), &opts, names, rk);
        let (etag, crc) = (obj.etag.clone(), obj.crc64);
        st.objects.insert(dst.to_string(), obj);
        Ok(PutResult {
            etag,
            crc64: Some(crc),
        })
    }

    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<UploadId, CosError> {
        self.enter(CosOp::InitiateMultipart, key).await?;
        let (names, _, _) = self.create_sse(CosOp::InitiateMultipart, ReadKey::Plain);
        let mut st = self.state.lock();
        st.next_upload += 1;
        let id = format!("upload-{}", st.next_upload);
        st.uploads.insert(
            id.clone(),
            Upload {
                key: key.to_string(),
                opts: opts.clone(),
                sse_headers: names,
                parts: BTreeMap::new(),
                initiated: SystemTime::now(),
            },
        );
        Ok(UploadId(id))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<CompletedPart, CosError> {
        self.enter(CosOp::UploadPart, key).await?;
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(err(CosOp::UploadPart, key, 400, "InvalidArgument"));
        }
        if body.len() as u64 > MAX_PART_SIZE {
            return Err(err(CosOp::UploadPart, key, 400, "EntityTooLarge"));
        }
        // A copy, as a server keeps: the caller's buffer is free once answered.
        let body = Bytes::copy_from_slice(&body);
        self.store_part(CosOp::UploadPart, key, upload, number, body)
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        src: &str,
        range: Range<u64>,
    ) -> Result<CompletedPart, CosError> {
        self.enter(CosOp::UploadPartCopy, key).await?;
        let o = self.read_obj(CosOp::UploadPartCopy, src)?;
        let end = range.end.min(o.data.len() as u64);
        if range.start >= end {
            return Err(err(CosOp::UploadPartCopy, key, 400, "InvalidArgument"));
        }
        let body = o.data.slice(range.start as usize..end as usize);
        self.store_part(CosOp::UploadPartCopy, key, upload, number, body)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload: &UploadId,
        parts: &[CompletedPart],
    ) -> Result<PutResult, CosError> {
        self.enter(CosOp::CompleteMultipart, key).await?;
        let op = CosOp::CompleteMultipart;
        let mut st = self.state.lock();
        let up = st
            .uploads
            .get(&upload.0)
            .filter(|u| u.key == key)
            .ok_or_else(|| err(op, key, 404, "NoSuchUpload"))?;
        if parts.is_empty() {
            return Err(err(op, key, 400, "MalformedXML"));
        }
        if parts.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(err(op, key, 400, "InvalidPartOrder"));
        }
        let mut data = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let (etag, body) = up
                .parts
                .get(&p.number)
                .ok_or_else(|| err(op, key, 400, "InvalidPart"))?;
            if *etag != p.etag {
                return Err(err(op, key, 400, "InvalidPart"));
            }
            if i + 1 < parts.len() && (body.len() as u64) < MIN_PART_SIZE {
                return Err(err(op, key, 400, "EntityTooSmall"));
            }
            data.extend_from_slice(body);
        }
        let Some(up) = st.uploads.remove(&upload.0) else {
            return Err(err(op, key, 404, "NoSuchUpload"));
        };
        let rk = self.sse.write_read_key();
        let mut obj = self.new_object(&mut st, Bytes::from(data), &up.opts, up.sse_headers, rk);
        obj.etag = format!("{}-{}", obj.etag, parts.len());
        let (etag, crc) = (obj.etag.clone(), obj.crc64);
        st.objects.insert(key.to_string(), obj);
        Ok(PutResult {
            etag,
            crc64: Some(crc),
        })
    }

    async fn abort_multipart(&self, key: &str, upload: &UploadId) -> Result<(), CosError> {
        self.enter(CosOp::AbortMultipart, key).await?;
        let mut st = self.state.lock();
        match st.uploads.get(&upload.0) {
            Some(u) if u.key == key => {
                st.uploads.remove(&upload.0);
                Ok(())
            }
            _ => Err(err(CosOp::AbortMultipart, key, 404, "NoSuchUpload")),
        }
    }

    async fn list_parts(
        &self,
        key: &str,
        upload: &UploadId,
        part_number_marker: Option<u32>,
    ) -> Result<ListPartsPage, CosError> {
        self.enter(CosOp::ListParts, key).await?;
        let st = self.state.lock();
        let up = st
            .uploads
            .get(&upload.0)
            .filter(|u| u.key == key)
            .ok_or_else(|| err(CosOp::ListParts, key, 404, "NoSuchUpload"))?;
        let after = part_number_marker.unwrap_or(0);
        let mut page = ListPartsPage::default();
        for (n, (etag, body)) in up.parts.range(after + 1..) {
            if page.parts.len() == 1000 {
                page.next_part_number_marker = page.parts.last().map(|p| p.number);
                break;
            }
            page.parts.push(PartInfo {
                number: *n,
                etag: etag.clone(),
                size: body.len() as u64,
            });
        }
        Ok(page)
    }

    async fn list_uploads(
        &self,
        prefix: &str,
        marker: Option<(&str, &str)>,
    ) -> Result<ListUploadsPage, CosError> {
        self.enter(CosOp::ListMultipartUploads, prefix).await?;
        let st = self.state.lock();
        let mut page = ListUploadsPage::default();
        let mut v: Vec<(&String, &Upload)> = st
            .uploads
            .iter()
            .filter(|(_, u)| u.key.starts_with(prefix))
            .collect();
        v.sort_by(|a, b| (&a.1.key, a.0).cmp(&(&b.1.key, b.0)));
        for (id, u) in v {
            if let Some((km, im)) = marker {
                if (u.key.as_str(), id.as_str()) <= (km, im) {
                    continue;
                }
            }
            if page.uploads.len() == 1000 {
                let l = &page.uploads[999];
                page.next = Some((l.key.clone(), l.upload_id.0.clone()));
                break;
            }
            page.uploads.push(UploadInfo {
                key: u.key.clone(),
                upload_id: UploadId(id.clone()),
                initiated: Some(u.initiated),
            });
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn listing_rolls_up_and_paginates_without_duplicates() {
        let s = MemStore::default();
        for k in ["a/1", "a/2", "a/b/x", "a/b/y", "a/c/z", "a/d", "b"] {
            s.insert(k, "x", &[]);
        }
        rt().block_on(async {
            let mut seen = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let p = s.list("a/", Some("/"), marker.as_deref(), 2).await.unwrap();
                seen.extend(p.objects.iter().map(|o| o.key.clone()));
                seen.extend(p.common_prefixes.iter().cloned());
                match p.next_marker {
                    Some(m) => marker = Some(m),
                    None => break,
                }
            }
            seen.sort();
            assert_eq!(seen, ["a/1", "a/2", "a/b/", "a/c/", "a/d"]);
            assert_eq!(s.count(CosOp::ListObjects), 3);
        });
    }

    #[test]
    fn complete_enforces_part_rules() {
        let s = MemStore::default();
        rt().block_on(async {
            let id = s
                .create_multipart("k", &PutOptions::default())
                .await
                .unwrap();
            let p1 = s
                .upload_part("k", &id, 1, Bytes::from(vec![1u8; 10]))
                .await
                .unwrap();
            let p2 = s
                .upload_part("k", &id, 2, Bytes::from(vec![2u8; 10]))
                .await
                .unwrap();
            let e = s
                .complete_multipart("k", &id, &[p1.clone(), p2.clone()])
                .await
                .unwrap_err();
            assert_eq!(e.code.as_deref(), Some("EntityTooSmall"));
            let e = s
                .complete_multipart("k", &id, &[p2.clone(), p1.clone()])
                .await
                .unwrap_err();
            assert_eq!(e.code.as_deref(), Some("InvalidPartOrder"));
            let p1 = s
                .upload_part("k", &id, 1, Bytes::from(vec![1u8; MIN_PART_SIZE as usize]))
                .await
                .unwrap();
            s.complete_multipart("k", &id, &[p1, p2]).await.unwrap();
            assert_eq!(s.object("k").unwrap().data.len() as u64, MIN_PART_SIZE + 10);
            assert_eq!(s.open_uploads(), 0);
        });
    }

    #[test]
    fn faults_fire_the_requested_number_of_times() {
        let s = MemStore::default();
        s.insert("k", "v", &[]);
        s.fail_next(CosOp::HeadObject, 1, CosErrorKind::ServerError);
        rt().block_on(async {
            assert_eq!(
                s.head("k").await.unwrap_err().kind,
                CosErrorKind::ServerError
            );
            assert!(s.head("k").await.is_ok());
            assert_eq!(s.count(CosOp::HeadObject), 2);
        });
    }

    #[test]
    fn ssec_objects_record_headers_and_need_the_key() {
        use crate::cos::sse::CustomerKey;
        let k = CustomerKey::parse(b"0123456789ABCDEF0123456789ABCDEF").unwrap();
        let pol = SsePolicy::new(SseMode::Customer { keys: vec![k] }).unwrap();
        let s = MemStore::new(pol);
        rt().block_on(async {
            s.put("k", Bytes::from_static(b"hi"), &PutOptions::default())
                .await
                .unwrap();
            let o = s.object("k").unwrap();
            assert_eq!(o.read_key, ReadKey::Customer(0));
            assert!(o.sse_headers.contains(&crate::cos::sse::H_SSEC_KEY));
            s.copy(&CopySource::key("k"), "k2", &MetadataDirective::Copy)
                .await
                .unwrap();
            let o2 = s.object("k2").unwrap();
            assert!(o2.sse_headers.contains(&crate::cos::sse::H_SRC_SSEC_KEY));
        });
        // A client without the key cannot read it.
        let other = MemStore::default();
        other
            .state
            .lock()
            .objects
            .insert("k".into(), s.object("k").unwrap());
        let e = rt().block_on(other.head("k")).unwrap_err();
        assert_eq!(e.kind, CosErrorKind::SseKeyRejected);
    }
}

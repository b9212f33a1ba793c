//! Multipart upload operations: Initiate, Upload Part, Upload Part - Copy, Complete
//! (validation, then concatenation streamed behind keep-alive whitespace), Abort, List
//! Parts and List Multipart Uploads.

use super::body;
use super::crypto::{self, Segment};
use super::error::ApiError;
use super::handler::{HandlerResult, Req};
use super::object::{
    blocking, copy_into, declared_length, iso8601, ok, open_copy_source, parse_write_meta, quoted,
    read_small_body, receive_body, with_sse, MAX_PUT,
};
use super::sse::{self, SseRecord};
use super::store::{now_ms, random_name, ObjectRecord, PartRecord, UploadRecord, UploadState};
use super::State;
use bytes::Bytes;
use cos_wire::crc64 as crc;
use cos_wire::sign::cos_encode;
use cos_wire::xml::{self, elem};
use hyper::header::CONTENT_TYPE;
use hyper::Response;
use md5::{Digest, Md5};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// Smallest part other than the last.
pub const MIN_PART: u64 = 1024 * 1024;

fn upload_of(state: &State, req: &Req) -> Result<Arc<Mutex<UploadState>>, ApiError> {
    let id = req.param("uploadId").unwrap_or("");
    let up = state
        .store
        .upload(id)
        .ok_or_else(ApiError::no_such_upload)?;
    {
        let st = up.lock();
        if st.closed || st.record.key != req.key {
            return Err(ApiError::no_such_upload());
        }
    }
    Ok(up)
}

fn part_number(req: &Req) -> Result<u32, ApiError> {
    req.param("partNumber")
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| ApiError::invalid_argument("partNumber must be an integer from 1 to 10000"))
}

fn encode_if(url: bool, s: &str) -> String {
    if url {
        cos_encode(s).replace("%2F", "/")
    } else {
        s.to_string()
    }
}

/// POST ?uploads.
pub async fn initiate(state: &Arc<State>, req: Req) -> HandlerResult {
    let meta = parse_write_meta(&req.headers)?;
    let (sse_rec, _) = sse::new_record(&req.sse);
    let id = format!("{:x}{}", now_ms(), &random_name()[..16]);
    let record = UploadRecord {
        upload_id: id.clone(),
        key: req.key.clone(),
        initiated_ms: now_ms(),
        content_type: meta.content_type,
        headers: meta.headers,
        user_meta: meta.user_meta,
        storage_class: meta.storage_class.unwrap_or_else(|| "STANDARD".into()),
        sse: sse_rec.clone(),
    };
    let st = state.clone();
    blocking(move || st.store.create_upload(record)).await?;
    let mut s = String::from(xml::DECL);
    s.push_str("<InitiateMultipartUploadResult>");
    elem(&mut s, "Bucket", &state.bucket);
    elem(&mut s, "Key", &req.key);
    elem(&mut s, "UploadId", &id);
    s.push_str("</InitiateMultipartUploadResult>");
    ok(
        with_sse(
            Response::builder()
                .status(200)
                .header(CONTENT_TYPE, "application/xml"),
            &sse_rec,
        ),
        body::full(s),
    )
}

fn finish_part(number: u32, sse_rec: &SseRecord, done: super::store::BlobDone) -> PartRecord {
    PartRecord {
        number,
        blob: done.name,
        size: done.len,
        etag: sse::etag_for(sse_rec, &done.md5),
        md5: cos_wire::sign::hex(&done.md5),
        crc64: done.crc64,
        last_modified_ms: now_ms(),
        iv: done.iv,
    }
}

async fn commit_part(
    state: &Arc<State>,
    upload_id: &str,
    part: PartRecord,
) -> Result<(), ApiError> {
    let st = state.clone();
    let id = upload_id.to_string();
    let blob = part.blob.clone();
    match tokio::task::spawn_blocking(move || st.store.commit_part(&id, part)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = std::fs::remove_file(state.store.part_path(upload_id, &blob));
            Err(ApiError::no_such_upload())
        }
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// PUT ?partNumber&uploadId.
pub async fn upload_part(state: &Arc<State>, req: Req) -> HandlerResult {
    let number = part_number(&req)?;
    let up = upload_of(state, &req)?;
    let (upload_id, sse_rec) = {
        let st = up.lock();
        (st.record.upload_id.clone(), st.record.sse.clone())
    };
    let key = sse::check_key(&sse_rec, req.sse.customer.as_ref(), "multipart upload")?;
    declared_length(&req.headers)?;
    let want_md5 = super::object::content_md5(&req.headers)?;
    let iv = key.as_ref().map(|_| crypto::new_iv());
    let st = state.clone();
    let id = upload_id.clone();
    let w = blocking(move || st.store.part_writer(&id, key.as_deref().zip(iv))).await?;
    let w = receive_body(req.body, w, state.faults.bandwidth()).await?;
    let done = blocking(move || w.finish()).await?;
    if want_md5.is_some_and(|m| m != done.md5) {
        let _ = std::fs::remove_file(state.store.part_path(&upload_id, &done.name));
        return Err(ApiError::bad(
            "BadDigest",
            "The Content-MD5 you specified did not match what was received.",
        ));
    }
    let part = finish_part(number, &sse_rec, done);
    let b = with_sse(
        Response::builder()
            .status(200)
            .header("etag", quoted(&part.etag))
            .header("x-cos-hash-crc64ecma", part.crc64.to_string()),
        &sse_rec,
    );
    commit_part(state, &upload_id, part).await?;
    ok(b, body::empty())
}

/// PUT ?partNumber&uploadId with x-cos-copy-source (and optional x-cos-copy-source-range).
pub async fn upload_part_copy(state: &Arc<State>, req: Req) -> HandlerResult {
    let number = part_number(&req)?;
    let up = upload_of(state, &req)?;
    let (upload_id, sse_rec) = {
        let st = up.lock();
        (st.record.upload_id.clone(), st.record.sse.clone())
    };
    let dst_key = sse::check_key(&sse_rec, req.sse.customer.as_ref(), "multipart upload")?;
    let (src, file, src_key) = open_copy_source(state, &req).await?;
    let (start, len) = match req.header("x-cos-copy-source-range") {
        None => (0, src.size),
        Some(r) => {
            let spec = super::range::parse_range(r).map_err(ApiError::invalid_argument)?;
            let super::range::RangeSpec::FromTo(a, z) = spec else {
                return Err(ApiError::invalid_argument(
                    "x-cos-copy-source-range must be bytes=first-last",
                ));
            };
            if z >= src.size {
                return Err(ApiError::new(
                    416,
                    "InvalidRange",
                    "The copy source range is not satisfiable.",
                ));
            }
            (a, z - a + 1)
        }
    };
    if len > MAX_PUT {
        return Err(ApiError::bad(
            "EntityTooLarge",
            "A part can be at most 5 GiB.",
        ));
    }
    let iv = dst_key.as_ref().map(|_| crypto::new_iv());
    let st = state.clone();
    let id = upload_id.clone();
    let done = blocking(move || {
        let mut w = st.store.part_writer(&id, dst_key.as_deref().zip(iv))?;
        copy_into(&file, start, len, src_key.as_ref(), &mut w)?;
        w.finish()
    })
    .await?;
    let part = finish_part(number, &sse_rec, done);
    let mut s = String::from(xml::DECL);
    s.push_str("<CopyPartResult>");
    elem(&mut s, "ETag", &quoted(&part.etag));
    elem(&mut s, "CRC64", &part.crc64.to_string());
    elem(&mut s, "LastModified", &iso8601(part.last_modified_ms));
    s.push_str("</CopyPartResult>");
    let b = with_sse(
        Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/xml"),
        &sse_rec,
    );
    commit_part(state, &upload_id, part).await?;
    ok(b, body::full(s))
}

/// Checks a Complete request's part list against the uploaded parts.
pub fn validate_parts(
    requested: &[(u32, String)],
    uploaded: &std::collections::BTreeMap<u32, PartRecord>,
) -> Result<Vec<PartRecord>, ApiError> {
    if requested.is_empty() {
        return Err(ApiError::bad(
            "MalformedXML",
            "CompleteMultipartUpload names no parts",
        ));
    }
    // Order first, then existence and ETags, then sizes, so the most basic error wins.
    if requested.windows(2).any(|w| w[1].0 <= w[0].0) {
        return Err(ApiError::bad(
            "InvalidPartOrder",
            "The list of parts was not in ascending order.",
        ));
    }
    // COS refuses gaps in the part numbers (InvalidPart): a client that lost a part
    // must not get an object silently missing its bytes.
    if requested[0].0 != 1 || requested.windows(2).any(|w| w[1].0 != w[0].0 + 1) {
        return Err(ApiError::bad(
            "InvalidPart",
            "The part numbers of CompleteMultipartUpload must run 1, 2, 3, ... without gaps.",
        ));
    }
    let mut out = Vec::with_capacity(requested.len());
    for (n, etag) in requested {
        let part = uploaded.get(n).ok_or_else(|| {
            ApiError::bad("InvalidPart", format!("Part {n} has not been uploaded."))
        })?;
        if etag.trim().trim_matches('"') != part.etag {
            return Err(ApiError::bad(
                "InvalidPart",
                format!("The ETag of part {n} does not match."),
            ));
        }
        out.push(part.clone());
    }
    if let Some(p) = out[..out.len() - 1].iter().find(|p| p.size < MIN_PART) {
        return Err(ApiError::bad(
            "EntityTooSmall",
            format!("Part {} is smaller than the 1 MB minimum.", p.number),
        ));
    }
    Ok(out)
}

/// POST ?uploadId (Complete Multipart Upload).
pub async fn complete(state: &Arc<State>, req: Req) -> HandlerResult {
    let up = upload_of(state, &req)?;
    let body_bytes = read_small_body(req.body, 8 * 1024 * 1024).await?;
    let root = xml::parse(&body_bytes).map_err(|m| ApiError::bad("MalformedXML", m))?;
    if root.name != "CompleteMultipartUpload" {
        return Err(ApiError::bad(
            "MalformedXML",
            "the root element must be CompleteMultipartUpload",
        ));
    }
    let mut requested = Vec::new();
    for p in root.all("Part") {
        let n = p
            .child("PartNumber")
            .and_then(|e| e.text.trim().parse::<u32>().ok())
            .ok_or_else(|| ApiError::bad("MalformedXML", "Part without a valid PartNumber"))?;
        let etag = p.child("ETag").map(|e| e.text.clone()).unwrap_or_default();
        requested.push((n, etag));
    }
    // Validate and take the upload under its lock, so no part changes underneath.
    let (record, parts) = {
        let mut st = up.lock();
        if st.closed {
            return Err(ApiError::no_such_upload());
        }
        let parts = validate_parts(&requested, &st.parts)?;
        st.closed = true;
        (st.record.clone(), parts)
    };
    let mut crc = 0u64;
    let mut md5s = Md5::new();
    let mut segments = Vec::new();
    let mut size = 0u64;
    for p in &parts {
        crc = if size == 0 {
            p.crc64
        } else {
            crc::combine(crc, p.crc64, p.size)
        };
        if let Some(raw) = hex16(&p.md5) {
            md5s.update(raw);
        }
        if let Some(iv) = &p.iv {
            segments.push(Segment {
                start: size,
                len: p.size,
                iv: iv.clone(),
            });
        }
        size += p.size;
    }
    let etag = format!("{}-{}", cos_wire::sign::hex(&md5s.finalize()), parts.len());
    let sse_final = match &record.sse {
        SseRecord::Customer {
            key_md5,
            fingerprint,
            ..
        } => SseRecord::Customer {
            key_md5: key_md5.clone(),
            fingerprint: fingerprint.clone(),
            segments,
        },
        other => other.clone(),
    };
    let location = format!(
        "{}.cos.{}.myqcloud.com/{}",
        state.bucket,
        state.region,
        cos_encode(&record.key).replace("%2F", "/")
    );
    let mut result = String::from(xml::DECL);
    result.push_str("<CompleteMultipartUploadResult>");
    elem(&mut result, "Location", &location);
    elem(&mut result, "Bucket", &state.bucket);
    elem(&mut result, "Key", &record.key);
    elem(&mut result, "ETag", &quoted(&etag));
    result.push_str("</CompleteMultipartUploadResult>");

    let st = state.clone();
    let up2 = up.clone();
    let work = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let blob = st.store.concat_parts(&record.upload_id, &parts)?;
        let rec = ObjectRecord {
            key: record.key.clone(),
            blob,
            size,
            etag,
            crc64: crc,
            last_modified_ms: now_ms(),
            content_type: record.content_type.clone(),
            headers: record.headers.clone(),
            user_meta: record.user_meta.clone(),
            storage_class: record.storage_class.clone(),
            sse: sse_final,
        };
        st.store.commit(rec)?;
        st.store.remove_upload(&record.upload_id)
    });
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let resource = format!(
        "{}.cos.{}.myqcloud.com/{}",
        state.bucket, state.region, req.key
    );
    let request_id = req.request_id.clone();
    let whitespace_first = state.complete_whitespace;
    tokio::spawn(async move {
        tokio::pin!(work);
        if whitespace_first {
            let _ = tx.send(Ok(Bytes::from_static(b"   "))).await;
        }
        let outcome = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    // Keep the connection alive while merging, as COS does.
                    let _ = tx.send(Ok(Bytes::from_static(b" "))).await;
                }
            }
        };
        let doc = match outcome {
            Ok(Ok(())) => result,
            Ok(Err(e)) => {
                up2.lock().closed = false;
                ApiError::internal(e).to_xml(&resource, &request_id, &format!("{request_id}-trace"))
            }
            Err(e) => {
                up2.lock().closed = false;
                ApiError::internal(e).to_xml(&resource, &request_id, &format!("{request_id}-trace"))
            }
        };
        let _ = tx.send(Ok(Bytes::from(doc))).await;
    });
    let b = with_sse(
        Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/xml")
            .header("x-cos-hash-crc64ecma", crc.to_string()),
        &record_sse_echo(&up),
    );
    ok(b, body::channel(rx))
}

fn record_sse_echo(up: &Arc<Mutex<UploadState>>) -> SseRecord {
    up.lock().record.sse.without_segments()
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    if s.len() != 32 {
        return None;
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// DELETE ?uploadId.
pub async fn abort(state: &Arc<State>, req: Req) -> HandlerResult {
    let up = upload_of(state, &req)?;
    let id = {
        let mut st = up.lock();
        if st.closed {
            return Err(ApiError::no_such_upload());
        }
        st.closed = true;
        st.record.upload_id.clone()
    };
    let st = state.clone();
    blocking(move || st.store.remove_upload(&id)).await?;
    ok(Response::builder().status(204), body::empty())
}

/// GET ?uploadId (List Parts).
pub async fn list_parts(state: &Arc<State>, req: Req) -> HandlerResult {
    let up = upload_of(state, &req)?;
    let max = match req.param("max-parts").filter(|v| !v.is_empty()) {
        None => 1000,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_argument("max-parts must be a number"))?
            .min(1000),
    };
    let marker = match req.param("part-number-marker").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| ApiError::invalid_argument("part-number-marker must be a number"))?,
    };
    let url = req.param("encoding-type") == Some("url");
    let st = up.lock();
    let all: Vec<&PartRecord> = st
        .parts
        .range(marker.saturating_add(1)..)
        .map(|(_, p)| p)
        .collect();
    let truncated = all.len() > max;
    let page = &all[..all.len().min(max)];
    let appid = state.appid();
    let mut s = String::from(xml::DECL);
    s.push_str("<ListPartsResult>");
    elem(&mut s, "Bucket", &state.bucket);
    if url {
        elem(&mut s, "Encoding-type", "url");
    }
    elem(&mut s, "Key", &encode_if(url, &st.record.key));
    elem(&mut s, "UploadId", &st.record.upload_id);
    for who in ["Initiator", "Owner"] {
        s.push_str(&format!("<{who}>"));
        elem(&mut s, "ID", appid);
        elem(&mut s, "DisplayName", appid);
        s.push_str(&format!("</{who}>"));
    }
    elem(&mut s, "StorageClass", &st.record.storage_class);
    elem(&mut s, "PartNumberMarker", &marker.to_string());
    let next = page.last().map(|p| p.number).unwrap_or(marker);
    elem(&mut s, "NextPartNumberMarker", &next.to_string());
    elem(&mut s, "MaxParts", &max.to_string());
    elem(
        &mut s,
        "IsTruncated",
        if truncated { "true" } else { "false" },
    );
    for p in page {
        s.push_str("<Part>");
        elem(&mut s, "PartNumber", &p.number.to_string());
        elem(&mut s, "LastModified", &iso8601(p.last_modified_ms));
        elem(&mut s, "ETag", &quoted(&p.etag));
        elem(&mut s, "Size", &p.size.to_string());
        s.push_str("</Part>");
    }
    s.push_str("</ListPartsResult>");
    ok(
        Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/xml"),
        body::full(s),
    )
}

/// GET /?uploads (List Multipart Uploads).
pub async fn list_uploads(state: &Arc<State>, req: Req) -> HandlerResult {
    let prefix = req.param("prefix").unwrap_or("").to_string();
    let delimiter = req
        .param("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let key_marker = req.param("key-marker").unwrap_or("").to_string();
    let id_marker = req.param("upload-id-marker").unwrap_or("").to_string();
    let max = match req.param("max-uploads").filter(|v| !v.is_empty()) {
        None => 1000,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_argument("max-uploads must be a number"))?
            .min(1000),
    };
    let url = req.param("encoding-type") == Some("url");
    let mut ups: Vec<UploadRecord> = state
        .store
        .uploads()
        .iter()
        .filter_map(|u| {
            let st = u.lock();
            (!st.closed).then(|| st.record.clone())
        })
        .filter(|r| r.key.starts_with(&prefix))
        .filter(|r| {
            key_marker.is_empty()
                || r.key > key_marker
                || (r.key == key_marker && !id_marker.is_empty() && r.upload_id > id_marker)
        })
        .collect();
    ups.sort_by(|a, b| {
        (a.key.as_str(), a.initiated_ms, a.upload_id.as_str()).cmp(&(
            b.key.as_str(),
            b.initiated_ms,
            b.upload_id.as_str(),
        ))
    });
    enum Entry {
        Up(Box<UploadRecord>),
        Prefix(String),
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut truncated = false;
    for r in ups {
        let cp = delimiter.as_deref().and_then(|d| {
            r.key[prefix.len()..]
                .find(d)
                .map(|i| r.key[..prefix.len() + i + d.len()].to_string())
        });
        if let Some(cp) = &cp {
            if matches!(entries.last(), Some(Entry::Prefix(p)) if p == cp) {
                continue;
            }
        }
        if entries.len() == max {
            truncated = true;
            break;
        }
        entries.push(match cp {
            Some(cp) => Entry::Prefix(cp),
            None => Entry::Up(Box::new(r)),
        });
    }
    let appid = state.appid();
    let mut s = String::from(xml::DECL);
    s.push_str("<ListMultipartUploadsResult>");
    elem(&mut s, "Bucket", &state.bucket);
    if url {
        elem(&mut s, "Encoding-Type", "url");
    }
    elem(&mut s, "KeyMarker", &encode_if(url, &key_marker));
    elem(&mut s, "UploadIdMarker", &id_marker);
    if truncated {
        let (k, u) = match entries.last() {
            Some(Entry::Up(r)) => (r.key.clone(), r.upload_id.clone()),
            Some(Entry::Prefix(p)) => (p.clone(), String::new()),
            None => (String::new(), String::new()),
        };
        elem(&mut s, "NextKeyMarker", &encode_if(url, &k));
        elem(&mut s, "NextUploadIdMarker", &u);
    }
    elem(&mut s, "MaxUploads", &max.to_string());
    elem(
        &mut s,
        "IsTruncated",
        if truncated { "true" } else { "false" },
    );
    elem(&mut s, "Prefix", &encode_if(url, &prefix));
    if let Some(d) = &delimiter {
        elem(&mut s, "Delimiter", d);
    }
    for e in &entries {
        match e {
            Entry::Up(r) => {
                s.push_str("<Upload>");
                elem(&mut s, "Key", &encode_if(url, &r.key));
                elem(&mut s, "UploadId", &r.upload_id);
                elem(&mut s, "StorageClass", &r.storage_class);
                for who in ["Initiator", "Owner"] {
                    s.push_str(&format!("<{who}>"));
                    elem(&mut s, "ID", appid);
                    elem(&mut s, "DisplayName", appid);
                    s.push_str(&format!("</{who}>"));
                }
                elem(&mut s, "Initiated", &iso8601(r.initiated_ms));
                s.push_str("</Upload>");
            }
            Entry::Prefix(p) => {
                s.push_str("<CommonPrefixes>");
                elem(&mut s, "Prefix", &encode_if(url, p));
                s.push_str("</CommonPrefixes>");
            }
        }
    }
    s.push_str("</ListMultipartUploadsResult>");
    ok(
        Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/xml"),
        body::full(s),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn part(n: u32, size: u64) -> PartRecord {
        PartRecord {
            number: n,
            blob: format!("b{n}"),
            size,
            etag: format!("e{n}"),
            md5: String::new(),
            crc64: 0,
            last_modified_ms: 0,
            iv: None,
        }
    }

    #[test]
    fn complete_part_list_rules() {
        let up: BTreeMap<u32, PartRecord> = [part(1, MIN_PART), part(2, 10), part(3, 5)]
            .into_iter()
            .map(|p| (p.number, p))
            .collect();
        let ok = validate_parts(&[(1, "\"e1\"".into()), (2, "e2".into())], &up).expect("valid");
        assert_eq!(ok.len(), 2);
        let e = validate_parts(&[(2, "e2".into()), (1, "e1".into())], &up).expect_err("order");
        assert_eq!(e.code, "InvalidPartOrder");
        assert_eq!(
            validate_parts(&[(1, "e1".into()), (1, "e1".into())], &up)
                .expect_err("dup")
                .code,
            "InvalidPartOrder"
        );
        assert_eq!(
            validate_parts(&[(1, "e1".into()), (4, "e4".into())], &up)
                .expect_err("unknown")
                .code,
            "InvalidPart"
        );
        assert_eq!(
            validate_parts(&[(1, "zz".into())], &up)
                .expect_err("etag")
                .code,
            "InvalidPart"
        );
        assert_eq!(
            validate_parts(&[(1, "e1".into()), (2, "e2".into()), (3, "e3".into())], &up)
                .expect_err("small")
                .code,
            "EntityTooSmall"
        );
        assert_eq!(
            validate_parts(&[(1, "e1".into()), (3, "e3".into())], &up)
                .expect_err("gap")
                .code,
            "InvalidPart"
        );
        assert_eq!(
            validate_parts(&[], &up).expect_err("empty").code,
            "MalformedXML"
        );
    }
}

//! The XML bodies of COS requests and responses: building the two request bodies (Delete
//! Multiple, Complete) and parsing every response body the client reads.
//!
//! Responses are read into the element tree of [`cos_wire::xml`] first (local names,
//! bounded depth, leading whitespace skipped). A body whose root is
//! `<Error>` is reported as such whatever the HTTP status was: Copy and Complete can fail
//! inside a 200. Values that `encoding-type=url` percent-encodes are decoded here.

use super::{ListEntry, ListPage, ListPartsPage, ListUploadsPage, PartInfo, UploadId, UploadInfo};
pub use cos_wire::xml::{can_carry, parse, Element};
use std::time::SystemTime;

/// The fields of an `<Error>` body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
}

/// The `<Error>` of a body, if the body is one.
pub fn error_of(root: &Element) -> Option<ErrorBody> {
    (root.name == "Error").then(|| ErrorBody {
        code: root.text_of("Code").map(|s| s.trim().to_string()),
        message: root.text_of("Message").map(|s| s.trim().to_string()),
        request_id: root.text_of("RequestId").map(|s| s.trim().to_string()),
    })
}

/// Parses an error response body leniently: `None` when it is empty or not an `<Error>`.
pub fn parse_error(body: &[u8]) -> Option<ErrorBody> {
    parse(body).ok().as_ref().and_then(error_of)
}

/// Removes the quotes around an ETag (and surrounding whitespace).
pub fn unquote_etag(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

/// Percent-decodes `encoding-type=url` text. `+` stays a plus (the SDK uses `unquote`).
pub fn url_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("decoded key is not UTF-8: {s:?}"))
}

/// `2019-05-27T11:26:14.000Z` → time.
pub fn parse_iso8601(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(SystemTime::from)
}

fn decode_if(url: bool, s: &str) -> Result<String, String> {
    if url {
        url_decode(s)
    } else {
        Ok(s.to_string())
    }
}

fn is_true(s: Option<&str>) -> bool {
    s.map(|v| v.trim().eq_ignore_ascii_case("true"))
        .unwrap_or(false)
}

/// GET Bucket (v1). When a truncated page has no `NextMarker`, the marker is the greater
/// (byte order) of the last key and the last common prefix; a truncated page with neither
/// is an error, since following it would loop forever.
pub fn parse_list_bucket(body: &[u8]) -> Result<ListPage, String> {
    let root = parse(body)?;
    if root.name != "ListBucketResult" {
        return Err(format!("expected ListBucketResult, got <{}>", root.name));
    }
    let url = root
        .text_of("EncodingType")
        .or_else(|| root.text_of("Encoding-Type"))
        .is_some_and(|e| e.trim() == "url");
    let mut page = ListPage::default();
    for c in root.all("Contents") {
        let key = decode_if(url, c.text_of("Key").ok_or("Contents without Key")?)?;
        let size = c
            .text_of("Size")
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("Contents {key:?} without a valid Size"))?;
        page.objects.push(ListEntry {
            size,
            etag: unquote_etag(c.text_of("ETag").unwrap_or_default()),
            last_modified: c
                .text_of("LastModified")
                .and_then(parse_iso8601)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            storage_class: c
                .text_of("StorageClass")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            key,
        });
    }
    for p in root.all("CommonPrefixes") {
        for prefix in p.all("Prefix") {
            page.common_prefixes.push(decode_if(url, &prefix.text)?);
        }
    }
    if is_true(root.text_of("IsTruncated")) {
        let next = match root.text_of("NextMarker").filter(|m| !m.is_empty()) {
            Some(m) => decode_if(url, m)?,
            None => {
                let last_key = page.objects.last().map(|o| o.key.clone());
                let last_prefix = page.common_prefixes.last().cloned();
                match (last_key, last_prefix) {
                    (Some(a), Some(b)) => a.max(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => {
                        return Err(
                            "truncated listing without NextMarker and without entries".into()
                        )
                    }
                }
            }
        };
        page.next_marker = Some(next);
    }
    Ok(page)
}

/// Initiate Multipart Upload → the upload id.
pub fn parse_initiate(body: &[u8]) -> Result<UploadId, String> {
    let root = parse(body)?;
    root.text_of("UploadId")
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| UploadId(u.to_string()))
        .ok_or_else(|| format!("<{}> without UploadId", root.name))
}

/// What Copy, Upload Part - Copy and Complete answer in their body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultBody {
    Ok {
        etag: String,
        crc64: Option<u64>,
    },
    /// An `<Error>` document (possibly inside a 200).
    Error(ErrorBody),
}

/// Parses the result of Copy / Upload Part - Copy / Complete: an ETag is required.
pub fn parse_result_with_etag(body: &[u8]) -> Result<ResultBody, String> {
    let root = parse(body)?;
    if let Some(e) = error_of(&root) {
        return Ok(ResultBody::Error(e));
    }
    let etag = root
        .text_of("ETag")
        .map(unquote_etag)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| format!("<{}> without an ETag", root.name))?;
    let crc64 = root.text_of("CRC64").and_then(|c| c.trim().parse().ok());
    Ok(ResultBody::Ok { etag, crc64 })
}

/// Delete Multiple → the keys that failed with their code.
pub fn parse_delete_result(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let root = parse(body)?;
    if root.name != "DeleteResult" {
        return Err(format!("expected DeleteResult, got <{}>", root.name));
    }
    Ok(root
        .all("Error")
        .map(|e| {
            (
                e.text_of("Key").unwrap_or_default().to_string(),
                e.text_of("Code").unwrap_or_default().trim().to_string(),
            )
        })
        .collect())
}

/// List Parts.
pub fn parse_list_parts(body: &[u8]) -> Result<ListPartsPage, String> {
    let root = parse(body)?;
    if root.name != "ListPartsResult" {
        return Err(format!("expected ListPartsResult, got <{}>", root.name));
    }
    let mut page = ListPartsPage::default();
    for p in root.all("Part") {
        let number = p
            .text_of("PartNumber")
            .and_then(|n| n.trim().parse().ok())
            .ok_or("Part without PartNumber")?;
        page.parts.push(PartInfo {
            number,
            etag: unquote_etag(p.text_of("ETag").unwrap_or_default()),
            size: p
                .text_of("Size")
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0),
        });
    }
    if is_true(root.text_of("IsTruncated")) {
        let next = root
            .text_of("NextPartNumberMarker")
            .and_then(|n| n.trim().parse().ok())
            .or_else(|| page.parts.last().map(|p| p.number))
            .ok_or("truncated part list without a marker")?;
        page.next_part_number_marker = Some(next);
    }
    Ok(page)
}

/// List Multipart Uploads.
pub fn parse_list_uploads(body: &[u8]) -> Result<ListUploadsPage, String> {
    let root = parse(body)?;
    if root.name != "ListMultipartUploadsResult" {
        return Err(format!(
            "expected ListMultipartUploadsResult, got <{}>",
            root.name
        ));
    }
    let url = root
        .text_of("Encoding-Type")
        .or_else(|| root.text_of("EncodingType"))
        .is_some_and(|e| e.trim() == "url");
    let mut page = ListUploadsPage::default();
    for u in root.all("Upload") {
        page.uploads.push(UploadInfo {
            key: decode_if(url, u.text_of("Key").ok_or("Upload without Key")?)?,
            upload_id: UploadId(
                u.text_of("UploadId")
                    .ok_or("Upload without UploadId")?
                    .trim()
                    .to_string(),
            ),
            initiated: u.text_of("Initiated").and_then(parse_iso8601),
        });
    }
    if is_true(root.text_of("IsTruncated")) {
        let key = root.text_of("NextKeyMarker").unwrap_or_default();
        let id = root.text_of("NextUploadIdMarker").unwrap_or_default();
        let (key, id) = if key.is_empty() {
            let last = page
                .uploads
                .last()
                .ok_or("truncated upload list without a marker")?;
            (last.key.clone(), last.upload_id.0.clone())
        } else {
            (decode_if(url, key)?, id.trim().to_string())
        };
        page.next = Some((key, id));
    }
    Ok(page)
}

/// Escapes text for a request body; what XML cannot carry at all (most control characters)
/// is refused, since COS could never read it back.
pub fn escape(s: &str) -> Result<String, String> {
    if !can_carry(s) {
        return Err(format!("{s:?} contains a character XML cannot carry"));
    }
    Ok(cos_wire::xml::escape(s))
}

/// The body of Delete Multiple Objects (quiet mode).
pub fn delete_body(keys: &[String]) -> Result<String, String> {
    let mut s = String::from("<Delete><Quiet>true</Quiet>");
    for k in keys {
        s.push_str("<Object><Key>");
        s.push_str(&escape(k)?);
        s.push_str("</Key></Object>");
    }
    s.push_str("</Delete>");
    Ok(s)
}

/// The body of Complete Multipart Upload; `parts` as (number, etag without quotes).
pub fn complete_body<'a>(
    parts: impl IntoIterator<Item = (u32, &'a str)>,
) -> Result<String, String> {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        s.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>&quot;{}&quot;</ETag></Part>",
            escape(etag)?
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_found_even_inside_a_200_with_namespaces() {
        let b = br#"<?xml version='1.0' encoding='utf-8' ?>
<Error xmlns="http://www.qcloud.com/document/product/436/7751"><Code>InternalError</Code>
<Message>We encountered an internal error.</Message><RequestId>abc</RequestId></Error>"#;
        match parse_result_with_etag(b).unwrap() {
            ResultBody::Error(e) => {
                assert_eq!(e.code.as_deref(), Some("InternalError"));
                assert_eq!(e.request_id.as_deref(), Some("abc"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn complete_result_after_keepalive_spaces() {
        let mut b = vec![b' '; 300];
        b.extend_from_slice(
            br#"<?xml version="1.0" encoding="UTF-8"?>
<ns:CompleteMultipartUploadResult xmlns:ns="http://www.qcloud.com/document/product/436/7751">
<ns:Location>x</ns:Location><ns:Bucket>b</ns:Bucket><ns:Key>k</ns:Key>
<ns:ETag>&quot;aa-3&quot;</ns:ETag></ns:CompleteMultipartUploadResult>"#,
        );
        assert_eq!(
            parse_result_with_etag(&b).unwrap(),
            ResultBody::Ok {
                etag: "aa-3".into(),
                crc64: None
            }
        );
    }

    #[test]
    fn missing_etag_is_an_error() {
        let b = b"<CopyObjectResult><LastModified>2020-04-10T18:20:30Z</LastModified></CopyObjectResult>";
        assert!(parse_result_with_etag(b).is_err());
        let b = b"<CopyObjectResult><ETag>\"e\"</ETag><CRC64>123</CRC64></CopyObjectResult>";
        assert_eq!(
            parse_result_with_etag(b).unwrap(),
            ResultBody::Ok {
                etag: "e".into(),
                crc64: Some(123)
            }
        );
        assert!(parse_result_with_etag(b"").is_err());
        assert!(parse_result_with_etag(b"<CopyObjectResult><ETag>").is_err());
    }

    #[test]
    fn list_bucket_decodes_url_encoding_and_keeps_plus() {
        let b = br#"<ListBucketResult><Name>b</Name><EncodingType>url</EncodingType>
<Prefix>a%2F</Prefix><IsTruncated>true</IsTruncated><NextMarker>a%2Fz%20z</NextMarker>
<CommonPrefixes><Prefix>a%2Fd%2F</Prefix></CommonPrefixes>
<Contents><Key>a%2F%E4%B8%AD+1%25</Key><LastModified>2019-05-27T11:26:14.000Z</LastModified>
<ETag>&quot;f173&quot;</ETag><Size>37</Size><StorageClass>STANDARD</StorageClass></Contents>
</ListBucketResult>"#;
        let p = parse_list_bucket(b).unwrap();
        assert_eq!(p.objects[0].key, "a/中+1%");
        assert_eq!(p.objects[0].etag, "f173");
        assert_eq!(p.objects[0].size, 37);
        assert_eq!(p.common_prefixes, vec!["a/d/"]);
        assert_eq!(p.next_marker.as_deref(), Some("a/z z"));
        assert_ne!(p.objects[0].last_modified, SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn next_marker_fallback_is_the_greater_of_last_key_and_prefix() {
        let b = br#"<ListBucketResult><IsTruncated>true</IsTruncated>
<Contents><Key>a/b</Key><Size>1</Size></Contents>
<CommonPrefixes><Prefix>a/c/</Prefix></CommonPrefixes></ListBucketResult>"#;
        assert_eq!(
            parse_list_bucket(b).unwrap().next_marker.as_deref(),
            Some("a/c/")
        );
        let b = br#"<ListBucketResult><IsTruncated>false</IsTruncated>
<Contents><Key>a/b</Key><Size>1</Size></Contents></ListBucketResult>"#;
        assert_eq!(parse_list_bucket(b).unwrap().next_marker, None);
        let b = br#"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"#;
        assert!(parse_list_bucket(b).is_err());
    }

    #[test]
    fn keys_with_edge_whitespace_survive() {
        let b = br#"<ListBucketResult><IsTruncated>false</IsTruncated>
<Contents><Key> a </Key><Size>1</Size></Contents></ListBucketResult>"#;
        assert_eq!(parse_list_bucket(b).unwrap().objects[0].key, " a ");
    }

    #[test]
    fn parts_uploads_and_delete_results() {
        let b = br#"<ListPartsResult><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>
<Part><PartNumber>1</PartNumber><ETag>"x"</ETag><Size>5</Size></Part>
<Part><PartNumber>2</PartNumber><ETag>"y"</ETag><Size>6</Size></Part></ListPartsResult>"#;
        let p = parse_list_parts(b).unwrap();
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.parts[1].etag, "y");
        assert_eq!(p.next_part_number_marker, Some(2));
        let b = br#"<ListMultipartUploadsResult><Encoding-Type>url</Encoding-Type><IsTruncated>false</IsTruncated>
<Upload><Key>a%20b</Key><UploadId>u1</UploadId><Initiated>2020-01-01T00:00:00.000Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let u = parse_list_uploads(b).unwrap();
        assert_eq!(u.uploads[0].key, "a b");
        assert_eq!(u.uploads[0].upload_id.0, "u1");
        assert!(u.next.is_none());
        let b = br#"<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b</Key><Code>AccessDenied</Code></Error></DeleteResult>"#;
        assert_eq!(
            parse_delete_result(b).unwrap(),
            vec![("b".into(), "AccessDenied".into())]
        );
        assert_eq!(parse_initiate(b"<InitiateMultipartUploadResult><UploadId>id1</UploadId></InitiateMultipartUploadResult>").unwrap().0, "id1");
    }

    #[test]
    fn request_bodies_escape_and_refuse_what_xml_cannot_carry() {
        let d = delete_body(&["a&b<c>".into(), "x".into()]).unwrap();
        assert_eq!(
            d,
            "<Delete><Quiet>true</Quiet><Object><Key>a&amp;b&lt;c&gt;</Key></Object><Object><Key>x</Key></Object></Delete>"
        );
        let back = parse(d.as_bytes()).unwrap();
        assert_eq!(
            back.all("Object").next().unwrap().text_of("Key"),
            Some("a&b<c>")
        );
        assert!(delete_body(&["bad\u{1}".into()]).is_err());
        let c = complete_body([(1, "e1"), (2, "e2")]).unwrap();
        assert!(
            c.contains("<PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag>"),
            "{c}"
        );
    }

    #[test]
    fn url_decode_rejects_garbage() {
        assert_eq!(url_decode("a%2fb").unwrap(), "a/b");
        assert!(url_decode("a%2").is_err());
        assert!(url_decode("%FF").is_err());
    }
}

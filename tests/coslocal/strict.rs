//! coslocal strictness: signatures and clocks, SSE-COS/SSE-KMS/SSE-C rules, SSE-C data
//! at rest, Content-MD5, and the request log's SSE fields.

use crate::signed::*;
use ::coslocal::TlsMode;
use cosmount::cos::sign::KeyTime;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn signature_and_clock_rules() {
    let s = start().await;
    assert_eq!(s.put("k", b"v").await.status(), 200);
    let mut c = Call::new("GET", "k");
    c.secret = Some("wrong-secret".into());
    let r = s.send(c).await;
    let (st, code) = error_code(r).await;
    assert_eq!((st, code.as_str()), (403, "SignatureDoesNotMatch"));

    let mut c = Call::new("GET", "k");
    c.key_time = Some(KeyTime {
        start: now() - 7200,
        end: now() - 3600,
    });
    let (st, code) = error_code(s.send(c).await).await;
    assert_eq!((st, code.as_str()), (403, "Request has expired"));

    let mut c = Call::new("GET", "k");
    c.key_time = Some(KeyTime {
        start: now() + 3600,
        end: now() + 7200,
    });
    let (st, code) = error_code(s.send(c).await).await;
    assert_eq!((st, code.as_str()), (403, "RequestTimeTooSkewed"));

    let mut c = Call::new("GET", "k");
    c.anonymous = true;
    let (st, code) = error_code(s.send(c).await).await;
    assert_eq!((st, code.as_str()), (403, "AccessDenied"));

    // A header the client did not sign may be sent; a signed one may not be altered.
    let mut c = Call::new("PUT", "k2")
        .body(b"x".to_vec())
        .h("x-cos-meta-a", "1");
    c.unsigned = vec!["x-cos-meta-a".into()];
    assert_eq!(s.send(c).await.status(), 200);
    // Signed query parameters are checked (tampering with max-keys breaks the signature).
    let c = Call::new("GET", "").q("max-keys", "5");
    assert_eq!(s.send(c).await.status(), 200);
}

#[tokio::test]
async fn temporary_credentials_need_their_token() {
    let s = start_with(|c| {
        c.credentials[0].token = Some("tok-123".into());
    })
    .await;
    let (st, code) = error_code(s.send(Call::new("GET", "")).await).await;
    assert_eq!((st, code.as_str()), (403, "InvalidAccessKeyId"));
    let (st, code) = error_code(
        s.send(Call::new("GET", "").h("x-cos-security-token", "old"))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "ExpiredToken"));
    assert_eq!(
        s.send(Call::new("GET", "").h("x-cos-security-token", "tok-123"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn content_md5_and_length() {
    let s = start().await;
    let (st, code) = error_code(
        s.send(
            Call::new("PUT", "m")
                .body(b"abc".to_vec())
                .h("content-md5", &md5_b64(b"abd")),
        )
        .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "BadDigest"));
    assert_eq!(
        s.send(Call::new("HEAD", "m")).await.status(),
        404,
        "nothing stored on BadDigest"
    );
    let (st, code) = error_code(
        s.send(
            Call::new("PUT", "m")
                .body(b"abc".to_vec())
                .h("content-md5", "not-base64!"),
        )
        .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "InvalidDigest"));
    let long = "k".repeat(851);
    let (st, code) = error_code(s.put(&long, b"x").await).await;
    assert_eq!((st, code.as_str()), (400, "KeyTooLong"));
    assert_eq!(s.put(&"k".repeat(850), b"x").await.status(), 200);
    let (st, code) = error_code(s.send(Call::new("PUT", "acl").q("acl", "")).await).await;
    assert_eq!((st, code.as_str()), (501, "NotImplemented"));
}

#[tokio::test]
async fn sse_cos_and_kms_are_recorded_echoed_and_refused_on_reads() {
    let s = start().await;
    let body = data(1000, 1);
    let r = s
        .send(
            Call::new("PUT", "cos")
                .body(body.clone())
                .h("x-cos-server-side-encryption", "AES256"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-cos-server-side-encryption").as_deref(),
        Some("AES256")
    );
    let md5_hex = {
        use md5::Digest;
        cosmount::cos::sign::hex(&md5::Md5::digest(&body))
    };
    assert_eq!(
        header(&r, "etag"),
        Some(format!("\"{md5_hex}\"")),
        "SSE-COS keeps the MD5 ETag"
    );
    let r = s
        .send(
            Call::new("PUT", "kms")
                .body(body.clone())
                .h("x-cos-server-side-encryption", "cos/kms"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-cos-server-side-encryption").as_deref(),
        Some("cos/kms")
    );
    assert!(header(&r, "x-cos-server-side-encryption-cos-kms-key-id").is_some());
    assert_ne!(
        header(&r, "etag"),
        Some(format!("\"{md5_hex}\"")),
        "SSE-KMS ETag is not the MD5"
    );
    let h = s.send(Call::new("HEAD", "kms")).await;
    assert_eq!(
        header(&h, "x-cos-server-side-encryption").as_deref(),
        Some("cos/kms")
    );
    let g = s.send(Call::new("GET", "cos")).await;
    assert_eq!(
        header(&g, "x-cos-server-side-encryption").as_deref(),
        Some("AES256")
    );
    assert_eq!(g.bytes().await.expect("b").as_ref(), body.as_slice());
    let (st, code) = error_code(
        s.send(Call::new("GET", "cos").h("x-cos-server-side-encryption", "AES256"))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "SSEHeaderNotAllowed"));
    let h = s
        .send(Call::new("HEAD", "kms").h("x-cos-server-side-encryption", "cos/kms"))
        .await;
    assert_eq!(h.status(), 400);
    // Copy does not inherit SSE.
    let r = s
        .send(Call::new("PUT", "copy").h("x-cos-copy-source", &format!("/{BUCKET}/kms")))
        .await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-cos-server-side-encryption").is_none());
    let h = s.send(Call::new("HEAD", "copy")).await;
    assert!(header(&h, "x-cos-server-side-encryption").is_none());
}

#[tokio::test]
async fn sse_c_rules_and_data_at_rest() {
    let s = start().await;
    let body = b"plaintext-marker-".repeat(4000);
    let r = s
        .send(
            Call::new("PUT", "secret")
                .body(body.clone())
                .ssec(KEY_B64, KEY_MD5),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-cos-server-side-encryption-customer-algorithm").as_deref(),
        Some("AES256")
    );
    assert_eq!(
        header(&r, "x-cos-server-side-encryption-customer-key-md5").as_deref(),
        Some(KEY_MD5)
    );
    assert!(
        header(&r, "x-cos-server-side-encryption-customer-key").is_none(),
        "key never echoed"
    );
    // Nothing under the data dir holds the plaintext or the key.
    for entry in walk(&s.dir.path().join("data")) {
        let bytes = std::fs::read(&entry).expect("read");
        assert!(
            !bytes.windows(17).any(|w| w == b"plaintext-marker-"),
            "{} holds plaintext",
            entry.display()
        );
        assert!(
            !bytes
                .windows(KEY_B64.len())
                .any(|w| w == KEY_B64.as_bytes()),
            "{} holds the key",
            entry.display()
        );
        assert!(
            !bytes
                .windows(32)
                .any(|w| w == b"0123456789ABCDEF0123456789ABCDEF"),
            "{} holds the raw key",
            entry.display()
        );
    }
    // Reads: right key works (also ranged), missing/wrong/plain-object cases fail.
    let (st, got) = s
        .get_bytes(Call::new("GET", "secret").ssec(KEY_B64, KEY_MD5))
        .await;
    assert_eq!((st, got == body), (200, true));
    let r = s
        .send(
            Call::new("GET", "secret")
                .ssec(KEY_B64, KEY_MD5)
                .h("range", "bytes=5-40000"),
        )
        .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.expect("b").as_ref(), &body[5..=40000]);
    let (st, code) = error_code(s.send(Call::new("GET", "secret")).await).await;
    assert_eq!((st, code.as_str()), (400, "SsecDecryptHeaderInvalid"));
    assert_eq!(s.send(Call::new("HEAD", "secret")).await.status(), 400);
    let (st, code) = error_code(
        s.send(Call::new("GET", "secret").ssec(KEY2_B64, KEY2_MD5))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (403, "AccessDenied"));
    let (st, code) = error_code(
        s.send(Call::new("GET", "secret").ssec(KEY_B64, KEY2_MD5))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "InvalidArgument"));
    let (st, code) = error_code(
        s.send(Call::new("GET", "secret").ssec("c2hvcnQ=", "bm9wZQ=="))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "InvalidArgument"));
    let h = s
        .send(Call::new("HEAD", "secret").ssec(KEY_B64, KEY_MD5))
        .await;
    assert_eq!(h.status(), 200);
    assert_eq!(
        header(&h, "x-cos-server-side-encryption-customer-key-md5").as_deref(),
        Some(KEY_MD5)
    );
    assert!(s.put("plain", b"p").await.status().is_success());
    let (st, code) = error_code(
        s.send(Call::new("GET", "plain").ssec(KEY_B64, KEY_MD5))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "SSEHeaderNotAllowed"));

    // Copy: the source triple is required for an SSE-C source; re-encrypt with a new key.
    let src = format!("/{BUCKET}/secret");
    let (st, code) = error_code(
        s.send(Call::new("PUT", "c1").h("x-cos-copy-source", &src))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "SsecDecryptHeaderInvalid"));
    let r = s
        .send(
            Call::new("PUT", "c1")
                .h("x-cos-copy-source", &src)
                .src_ssec(KEY_B64, KEY_MD5)
                .ssec(KEY2_B64, KEY2_MD5),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-cos-server-side-encryption-customer-key-md5").as_deref(),
        Some(KEY2_MD5)
    );
    assert_eq!(
        s.get_bytes(Call::new("GET", "c1").ssec(KEY2_B64, KEY2_MD5))
            .await
            .1,
        body
    );
    // SSE-C -> plaintext.
    let r = s
        .send(
            Call::new("PUT", "c2")
                .h("x-cos-copy-source", &src)
                .src_ssec(KEY_B64, KEY_MD5)
                .h("x-cos-metadata-directive", "Replaced"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.get_bytes(Call::new("GET", "c2")).await.1, body);

    // The request log records key MD5s, never keys.
    let log = std::fs::read_to_string(&s.log).expect("log");
    assert!(!log.contains(KEY_B64) && !log.contains(KEY2_B64));
    let entries = s.log_entries();
    let put = entries
        .iter()
        .find(|e| e["op"] == "PutObject" && e["key"] == "secret")
        .expect("put logged");
    assert_eq!(put["sse"]["customer_key_md5"], KEY_MD5);
    let copy = entries
        .iter()
        .find(|e| e["op"] == "CopyObject" && e["key"] == "c1" && e["status"] == 200)
        .expect("copy logged");
    assert_eq!(copy["sse"]["copy_source_customer_key_md5"], KEY_MD5);
    assert_eq!(copy["sse"]["customer_key_md5"], KEY2_MD5);
}

#[tokio::test]
async fn sse_c_multipart_parts_need_the_same_key() {
    let s = start().await;
    let r = s
        .send(
            Call::new("POST", "mp")
                .q("uploads", "")
                .ssec(KEY_B64, KEY_MD5),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-cos-server-side-encryption-customer-key-md5").as_deref(),
        Some(KEY_MD5)
    );
    let xml = r.text().await.expect("xml");
    let id = upload_id_of(&xml);
    let p1 = data(1024 * 1024, 1);
    let p2 = data(1000, 2);
    let part = |n: &str, body: &[u8]| {
        Call::new("PUT", "mp")
            .q("partNumber", n)
            .q("uploadId", &id)
            .body(body.to_vec())
    };
    let (st, code) = error_code(s.send(part("1", &p1)).await).await;
    assert_eq!((st, code.as_str()), (400, "SsecDecryptHeaderInvalid"));
    let (st, code) = error_code(s.send(part("1", &p1).ssec(KEY2_B64, KEY2_MD5)).await).await;
    assert_eq!((st, code.as_str()), (403, "AccessDenied"));
    let (st, code) = error_code(
        s.send(part("1", &p1).h("x-cos-server-side-encryption", "AES256"))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "SSEHeaderNotAllowed"));
    let r1 = s.send(part("1", &p1).ssec(KEY_B64, KEY_MD5)).await;
    assert_eq!(r1.status(), 200);
    assert_eq!(
        header(&r1, "x-cos-server-side-encryption-customer-key-md5").as_deref(),
        Some(KEY_MD5)
    );
    let e1 = header(&r1, "etag").expect("etag");
    let e2 = header(&s.send(part("2", &p2).ssec(KEY_B64, KEY_MD5)).await, "etag").expect("etag");
    let doc = format!("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part></CompleteMultipartUpload>");
    let (st, code) = error_code(
        s.send(
            Call::new("POST", "mp")
                .q("uploadId", &id)
                .body(doc.clone())
                .ssec(KEY_B64, KEY_MD5),
        )
        .await,
    )
    .await;
    assert_eq!(
        (st, code.as_str()),
        (400, "SSEHeaderNotAllowed"),
        "Complete takes common headers only"
    );
    let r = s
        .send(Call::new("POST", "mp").q("uploadId", &id).body(doc))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-cos-server-side-encryption-customer-key-md5").as_deref(),
        Some(KEY_MD5)
    );
    let _ = r.text().await;
    let mut all = p1.clone();
    all.extend_from_slice(&p2);
    let r = s
        .send(Call::new("GET", "mp").ssec(KEY_B64, KEY_MD5).h(
            "range",
            &format!("bytes={}-{}", 1024 * 1024 - 10, 1024 * 1024 + 10),
        ))
        .await;
    assert_eq!(
        r.bytes().await.expect("b").as_ref(),
        &all[1024 * 1024 - 10..=1024 * 1024 + 10],
        "range across segments"
    );
    assert_eq!(
        s.get_bytes(Call::new("GET", "mp").ssec(KEY_B64, KEY_MD5))
            .await
            .1,
        all
    );
}

#[tokio::test]
async fn sse_c_over_plain_http_is_refused() {
    let s = start_with(|c| c.tls = TlsMode::Plain).await;
    assert!(s.endpoint().starts_with("http://"));
    let (st, code) = error_code(
        s.send(
            Call::new("PUT", "x")
                .body(b"1".to_vec())
                .ssec(KEY_B64, KEY_MD5),
        )
        .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "InvalidRequest"));
    assert_eq!(
        s.put("x", b"1").await.status(),
        200,
        "plain requests work over http"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// A presigned URL is a raw GET with the signature in the query: no Requester involved.
#[allow(clippy::disallowed_methods)]
#[tokio::test]
async fn presigned_urls_are_verified() {
    use cosmount::cos::sign::{sign, SignInput};
    let s = start().await;
    assert_eq!(s.put("pre signed", b"hello").await.status(), 200);
    let ep = s.endpoint();
    let host = ep.split("://").nth(1).expect("host").to_string();
    let url = |secret: &str| {
        let kt = KeyTime::around_now(300);
        let parts = sign(
            secret,
            &SignInput {
                method: "GET",
                path: "/pre signed",
                params: &[],
                headers: &[("host", &host)],
                key_time: kt,
            },
        );
        let t = kt.to_string().replace(';', "%3B");
        format!(
            "{ep}/pre%20signed?q-sign-algorithm=sha1&q-ak={ID}&q-sign-time={t}&q-key-time={t}\
             &q-header-list=host&q-url-param-list=&q-signature={}",
            parts.signature
        )
    };
    let r = s.client.get(url(SECRET)).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"hello");
    let r = s.client.get(url("wrong")).send().await.expect("get");
    assert_eq!(
        error_code(r).await,
        (403, "SignatureDoesNotMatch".to_string())
    );
    let log = std::fs::read_to_string(&s.log).expect("log");
    assert!(!log.contains("q-signature="), "signatures are not logged");
}

/// `<Root><a><a>...x...</a></a></Root>` nested `depth` elements deep under the root.
fn deeply_nested(root: &str, depth: usize) -> String {
    format!(
        "<{root}>{}x{}</{root}>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    )
}

#[tokio::test]
async fn deeply_nested_xml_is_malformed_and_the_server_keeps_serving() {
    let s = start().await;
    assert_eq!(s.put("keep", b"still here").await.status(), 200);
    // 50,000 levels: a recursive drop of such a tree would overflow a worker's stack and
    // take the whole (in-process) server down with this test.
    let body = deeply_nested("Delete", 50_000);
    let r = s
        .send(
            Call::new("POST", "")
                .q("delete", "")
                .h("content-md5", &md5_b64(body.as_bytes()))
                .body(body.clone()),
        )
        .await;
    assert_eq!(error_code(r).await, (400, "MalformedXML".to_string()));

    let init = s.send(Call::new("POST", "mp").q("uploads", "")).await;
    assert_eq!(init.status(), 200);
    let xml = init.text().await.expect("xml");
    let id = upload_id_of(&xml);
    let deep = deeply_nested("CompleteMultipartUpload", 50_000);
    let r = s
        .send(Call::new("POST", "mp").q("uploadId", &id).body(deep))
        .await;
    assert_eq!(error_code(r).await, (400, "MalformedXML".to_string()));
    // Modest nesting inside a valid document is still read (COS documents are 3 deep).
    assert_eq!(s.put("gone", b"x").await.status(), 200);
    let shallow = format!(
        "<Delete><Object><Key>gone</Key></Object>{}</Delete>",
        deeply_nested("Extra", 20)
    );
    let r = s
        .send(
            Call::new("POST", "")
                .q("delete", "")
                .h("content-md5", &md5_b64(shallow.as_bytes()))
                .body(shallow),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .expect("xml")
        .contains("<Deleted><Key>gone</Key></Deleted>"));
    assert_eq!(
        s.get_bytes(Call::new("GET", "keep")).await,
        (200, b"still here".to_vec())
    );
    // The upload survived the bad Complete.
    let r = s.send(Call::new("GET", "mp").q("uploadId", &id)).await;
    assert_eq!(r.status(), 200);
}

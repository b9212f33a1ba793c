//! Server options that change the wire: whitespace streamed before a Complete Multipart
//! Upload result (as COS may send while it merges; `complete_whitespace`, or
//! `--complete-whitespace` / `COSLOCAL_COMPLETE_WHITESPACE=1` for the binary), and TLS
//! from PEM files.

use crate::signed::*;

#[tokio::test]
async fn complete_sends_leading_whitespace_when_forced() {
    let s = start_with(|c| c.complete_whitespace = true).await;
    let r = s.send(Call::new("POST", "ws").q("uploads", "")).await;
    let xml = r.text().await.expect("xml");
    let id = upload_id_of(&xml);
    let r = s
        .send(
            Call::new("PUT", "ws")
                .q("partNumber", "1")
                .q("uploadId", &id)
                .body(b"abc".to_vec()),
        )
        .await;
    let etag = header(&r, "etag").expect("etag");
    let doc = format!("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>");
    let r = s
        .send(Call::new("POST", "ws").q("uploadId", &id).body(doc))
        .await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-length").is_none(), "sent chunked");
    let text = r.text().await.expect("body");
    assert!(text.starts_with("   "), "{text:?}");
    assert!(
        text.trim_start().starts_with("<?xml") && text.contains("<CompleteMultipartUploadResult>"),
        "{text}"
    );
    assert_eq!(s.get_bytes(Call::new("GET", "ws")).await.1, b"abc");
}

#[tokio::test]
async fn tls_from_pem_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).expect("write");
    std::fs::write(&key_pem, cert.key_pair.serialize_pem()).expect("write");
    let s = start_with(|c| {
        c.tls = coslocal::TlsMode::Files {
            cert: cert_pem.clone(),
            key: key_pem.clone(),
        }
    })
    .await;
    let client = client_for(Some(&cert_pem));
    let r = send_to(
        &client,
        &s.endpoint(),
        Call::new("PUT", "k").body(b"v".to_vec()),
    )
    .await;
    assert_eq!(r.status(), 200);
    // A bad key file is a clear startup error.
    std::fs::write(&key_pem, "not a key").expect("write");
    let dir2 = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir2.path());
    cfg.tls = coslocal::TlsMode::Files {
        cert: cert_pem,
        key: key_pem,
    };
    cfg.request_log = None;
    let err = coslocal::spawn(cfg).await.err().expect("refused");
    assert!(err.to_string().contains("key"), "{err}");
}

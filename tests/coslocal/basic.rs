//! coslocal over HTTPS with the crate signer: object round trips, addressing styles,
//! ranges, listing, copy, delete, multipart, restart persistence, and the deadlines that
//! close connections which never complete a TLS handshake or a request header.

use crate::signed::*;

#[tokio::test]
async fn put_get_head_round_trip_with_awkward_keys() {
    let s = start().await;
    let keys = [
        "plain.txt",
        "a b/ü+c%.txt",
        "dir/",
        "../up",
        "./here",
        "x+y z%20w",
        "日本/語.bin",
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = data(1000 + i, i as u32);
        let r = s
            .send(
                Call::new("PUT", key)
                    .body(body.clone())
                    .h("content-type", "text/plain")
                    .h("x-cos-meta-Mode", "33188")
                    .h("content-md5", &md5_b64(&body)),
            )
            .await;
        assert_eq!(r.status(), 200, "PUT {key}");
        let etag = header(&r, "etag").expect("etag");
        assert!(etag.starts_with('"'));
        assert!(header(&r, "x-cos-hash-crc64ecma").is_some());
        assert!(header(&r, "x-cos-request-id").is_some());
        assert_eq!(header(&r, "server").as_deref(), Some("tencent-cos"));
        let (st, got) = s.get_bytes(Call::new("GET", key)).await;
        assert_eq!((st, got.as_slice()), (200, body.as_slice()), "GET {key}");
        let h = s.send(Call::new("HEAD", key)).await;
        assert_eq!(h.status(), 200);
        assert_eq!(header(&h, "content-length"), Some(body.len().to_string()));
        assert_eq!(header(&h, "x-cos-meta-mode").as_deref(), Some("33188"));
        assert_eq!(header(&h, "content-type").as_deref(), Some("text/plain"));
        assert_eq!(header(&h, "etag"), Some(etag));
        assert!(
            header(&h, "x-cos-storage-class").is_none(),
            "STANDARD is omitted"
        );
        assert!(header(&h, "last-modified").expect("lm").ends_with("GMT"));
    }
    // Virtual-hosted and path-style addressing reach the same objects.
    let host = format!("{BUCKET}.cos.{REGION}.myqcloud.com");
    let mut c = Call::new("GET", "plain.txt");
    c.host = Some(host);
    assert_eq!(s.send(c).await.status(), 200);
    let mut c = Call::new("GET", "a b/ü+c%.txt");
    c.path_style = true;
    assert_eq!(s.send(c).await.status(), 200);
    let (st, code) = error_code(s.send(Call::new("GET", "missing")).await).await;
    assert_eq!((st, code.as_str()), (404, "NoSuchKey"));
    let h = s.send(Call::new("HEAD", "missing")).await;
    assert_eq!(h.status(), 404);
    assert!(h.bytes().await.expect("body").is_empty());
    let b = s.send(Call::new("HEAD", "")).await;
    assert_eq!(b.status(), 200);
}

#[tokio::test]
async fn ranges() {
    let s = start().await;
    let body = data(5000, 7);
    assert_eq!(s.put("r", &body).await.status(), 200);
    let r = s
        .send(Call::new("GET", "r").h("range", "bytes=100-199"))
        .await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range").as_deref(),
        Some("bytes 100-199/5000")
    );
    assert!(
        header(&r, "x-cos-hash-crc64ecma").is_some(),
        "whole-object CRC on ranges too"
    );
    assert_eq!(r.bytes().await.expect("b").as_ref(), &body[100..200]);
    let (_, tail) = s
        .get_bytes(Call::new("GET", "r").h("range", "bytes=-10"))
        .await;
    assert_eq!(tail, &body[4990..]);
    let (_, from) = s
        .get_bytes(Call::new("GET", "r").h("range", "bytes=4999-"))
        .await;
    assert_eq!(from, &body[4999..]);
    let (st, code) = error_code(
        s.send(Call::new("GET", "r").h("range", "bytes=5000-"))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (416, "InvalidRange"));
}

#[tokio::test]
async fn listing_pagination_prefixes_and_url_encoding() {
    let s = start().await;
    let keys = [
        "a.txt",
        "dir/",
        "dir/x",
        "dir/sub/y",
        "dir/z z",
        "dir/+plus",
        "e/f",
        "zz",
    ];
    for k in keys {
        assert_eq!(s.put(k, b"x").await.status(), 200);
    }
    let list = |prefix: &str, marker: &str, max: &str| {
        Call::new("GET", "")
            .q("prefix", prefix)
            .q("delimiter", "/")
            .q("marker", marker)
            .q("max-keys", max)
            .q("encoding-type", "url")
    };
    let r = s.send(list("dir/", "", "1000")).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("xml");
    assert!(
        text.contains("<Key>dir/</Key>"),
        "marker object is listed: {text}"
    );
    assert!(text.contains("<Prefix>dir/sub/</Prefix>"));
    assert!(
        text.contains("<Key>dir/z%20z</Key>"),
        "url-encoded key: {text}"
    );
    assert!(text.contains("<Key>dir/%2Bplus</Key>"));
    assert!(text.contains("<IsTruncated>false</IsTruncated>"));
    // Paginate the root with max-keys=2, following NextMarker.
    let mut marker = String::new();
    let mut seen = Vec::new();
    loop {
        let text = s
            .send(list("", &marker, "2"))
            .await
            .text()
            .await
            .expect("xml");
        for part in text.split("<Key>").skip(1) {
            seen.push(part.split("</Key>").next().expect("key").to_string());
        }
        for part in text.split("<CommonPrefixes><Prefix>").skip(1) {
            seen.push(part.split("</Prefix>").next().expect("p").to_string());
        }
        if text.contains("<IsTruncated>false</IsTruncated>") {
            break;
        }
        marker = text
            .split("<NextMarker>")
            .nth(1)
            .and_then(|x| x.split("</NextMarker>").next())
            .expect("NextMarker")
            .to_string();
        marker = String::from_utf8(coslocal::route::percent_decode(&marker, false).expect("dec"))
            .expect("utf8");
    }
    seen.sort();
    assert_eq!(seen, ["a.txt", "dir/", "e/", "zz"]);
    let (st, code) = error_code(s.send(Call::new("GET", "").q("encoding-type", "xml")).await).await;
    assert_eq!((st, code.as_str()), (400, "InvalidArgument"));
}

#[tokio::test]
async fn copy_and_delete() {
    let s = start().await;
    let body = data(3000, 3);
    assert_eq!(
        s.send(
            Call::new("PUT", "src key+1")
                .body(body.clone())
                .h("x-cos-meta-a", "1")
        )
        .await
        .status(),
        200
    );
    let src = format!(
        "{BUCKET}.cos.{REGION}.myqcloud.com/{}",
        encode_key("src key+1")
    );
    let r = s
        .send(Call::new("PUT", "dst").h("x-cos-copy-source", &src))
        .await;
    assert_eq!(r.status(), 200);
    let xml = r.text().await.expect("xml");
    assert!(
        xml.contains("<CopyObjectResult>") && xml.contains("<ETag>") && xml.contains("<CRC64>"),
        "{xml}"
    );
    let h = s.send(Call::new("HEAD", "dst")).await;
    assert_eq!(
        header(&h, "x-cos-meta-a").as_deref(),
        Some("1"),
        "Copy keeps metadata"
    );
    // Replaced takes metadata from the request; path form of the source.
    let r = s
        .send(
            Call::new("PUT", "dst2")
                .h(
                    "x-cos-copy-source",
                    &format!("/{BUCKET}/{}", encode_key("src key+1")),
                )
                .h("x-cos-metadata-directive", "Replaced")
                .h("x-cos-meta-b", "2"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let h = s.send(Call::new("HEAD", "dst2")).await;
    assert_eq!(header(&h, "x-cos-meta-b").as_deref(), Some("2"));
    assert!(header(&h, "x-cos-meta-a").is_none());
    assert_eq!(s.get_bytes(Call::new("GET", "dst2")).await.1, body);
    // Copy onto itself without changes is refused; with REPLACE it is allowed.
    let own = format!("/{BUCKET}/dst");
    let (st, code) = error_code(
        s.send(Call::new("PUT", "dst").h("x-cos-copy-source", &own))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "InvalidRequest"));
    assert_eq!(
        s.send(
            Call::new("PUT", "dst")
                .h("x-cos-copy-source", &own)
                .h("x-cos-metadata-directive", "REPLACE")
        )
        .await
        .status(),
        200
    );
    let (st, code) = error_code(
        s.send(Call::new("PUT", "x").h("x-cos-copy-source", &format!("/{BUCKET}/nope")))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (404, "NoSuchKey"));
    // Delete: 204, also for missing keys.
    assert_eq!(s.send(Call::new("DELETE", "dst")).await.status(), 204);
    assert_eq!(s.send(Call::new("DELETE", "dst")).await.status(), 204);
    assert_eq!(s.send(Call::new("HEAD", "dst")).await.status(), 404);
    // Delete Multiple.
    let doc = "<Delete><Quiet>false</Quiet><Object><Key>dst2</Key></Object><Object><Key>never</Key></Object></Delete>";
    let (st, _) = error_code(
        s.send(Call::new("POST", "").q("delete", "").body(doc))
            .await,
    )
    .await;
    assert_eq!(st, 400, "Content-MD5 is required");
    let r = s
        .send(
            Call::new("POST", "")
                .q("delete", "")
                .h("content-md5", &md5_b64(doc.as_bytes()))
                .body(doc),
        )
        .await;
    assert_eq!(r.status(), 200);
    let xml = r.text().await.expect("xml");
    assert!(
        xml.contains("<Deleted><Key>dst2</Key></Deleted>") && xml.contains("<Key>never</Key>"),
        "{xml}"
    );
    assert_eq!(s.send(Call::new("HEAD", "dst2")).await.status(), 404);
}

#[tokio::test]
async fn multipart_upload_and_rules() {
    let s = start().await;
    let key = "big/file.bin";
    let id = initiate(
        &s,
        key,
        &[
            ("content-type", "application/x-test"),
            ("x-cos-meta-k", "v"),
        ],
    )
    .await;
    let p1 = data(1024 * 1024, 1);
    let p2 = data(1024 * 1024 + 5, 2);
    let p3 = data(777, 3);
    let mut etags = vec![];
    for (n, p) in [(1u32, &p1), (2, &p2), (3, &p3)] {
        let r = s
            .send(
                Call::new("PUT", key)
                    .q("partNumber", &n.to_string())
                    .q("uploadId", &id)
                    .body(p.clone()),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert!(header(&r, "x-cos-hash-crc64ecma").is_some());
        etags.push((n, header(&r, "etag").expect("etag")));
    }
    // List Parts and List Multipart Uploads see it.
    let lp = s
        .send(Call::new("GET", key).q("uploadId", &id))
        .await
        .text()
        .await
        .expect("xml");
    assert_eq!(lp.matches("<Part>").count(), 3, "{lp}");
    let lu = s
        .send(Call::new("GET", "").q("uploads", ""))
        .await
        .text()
        .await
        .expect("xml");
    assert!(lu.contains(&id), "{lu}");
    // Rules.
    let bad_order = complete_doc(&[etags[1].clone(), etags[0].clone()]);
    let (st, code) = error_code(
        s.send(Call::new("POST", key).q("uploadId", &id).body(bad_order))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "InvalidPartOrder"));
    let bad_etag = complete_doc(&[(1, "\"00000000000000000000000000000000\"".into())]);
    let (st, code) = error_code(
        s.send(Call::new("POST", key).q("uploadId", &id).body(bad_etag))
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "InvalidPart"));
    let small_first = complete_doc(&[etags[2].clone()]);
    let _ = small_first;
    let too_small = complete_doc(&[(3, etags[2].1.clone()), (4, "x".into())]);
    let (st, _) = error_code(
        s.send(Call::new("POST", key).q("uploadId", &id).body(too_small))
            .await,
    )
    .await;
    assert_eq!(st, 400);
    // Complete.
    let r = s
        .send(
            Call::new("POST", key)
                .q("uploadId", &id)
                .body(complete_doc(&etags)),
        )
        .await;
    assert_eq!(r.status(), 200);
    let crc = header(&r, "x-cos-hash-crc64ecma").expect("crc");
    let xml = r.text().await.expect("xml");
    assert!(
        xml.trim_start().starts_with("<?xml") && xml.contains("-3&quot;</ETag>")
            || xml.contains("-3\"</ETag>"),
        "{xml}"
    );
    let mut all = p1.clone();
    all.extend_from_slice(&p2);
    all.extend_from_slice(&p3);
    let h = s.send(Call::new("HEAD", key)).await;
    assert_eq!(header(&h, "x-cos-hash-crc64ecma"), Some(crc.clone()));
    assert_eq!(
        header(&h, "content-type").as_deref(),
        Some("application/x-test")
    );
    assert_eq!(header(&h, "x-cos-meta-k").as_deref(), Some("v"));
    assert_eq!(
        crc,
        cosmount::cos::crc64::crc64(&all).to_string(),
        "CRC combined from parts equals the CRC of the data"
    );
    assert_eq!(s.get_bytes(Call::new("GET", key)).await.1, all);
    let (st, code) = error_code(
        s.send(
            Call::new("PUT", key)
                .q("partNumber", "1")
                .q("uploadId", &id)
                .body(p3.clone()),
        )
        .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (404, "NoSuchUpload"));
    // EntityTooSmall and Abort on a second upload.
    let id2 = initiate(&s, key, &[]).await;
    let mut et = vec![];
    for n in 1..=2u32 {
        let r = s
            .send(
                Call::new("PUT", key)
                    .q("partNumber", &n.to_string())
                    .q("uploadId", &id2)
                    .body(p3.clone()),
            )
            .await;
        et.push((n, header(&r, "etag").expect("etag")));
    }
    let (st, code) = error_code(
        s.send(
            Call::new("POST", key)
                .q("uploadId", &id2)
                .body(complete_doc(&et)),
        )
        .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (400, "EntityTooSmall"));
    assert_eq!(
        s.send(Call::new("DELETE", key).q("uploadId", &id2))
            .await
            .status(),
        204
    );
    let (st, code) = error_code(s.send(Call::new("DELETE", key).q("uploadId", &id2)).await).await;
    assert_eq!((st, code.as_str()), (404, "NoSuchUpload"));
}

#[tokio::test]
async fn upload_part_copy_ranges() {
    let s = start().await;
    let src = data(3 * 1024 * 1024, 9);
    assert_eq!(s.put("src", &src).await.status(), 200);
    let id = initiate(&s, "dst", &[]).await;
    let cs = format!("/{BUCKET}/src");
    let mut etags = vec![];
    for (n, range) in [(1u32, "bytes=0-1048575"), (2, "bytes=1048576-3145727")] {
        let r = s
            .send(
                Call::new("PUT", "dst")
                    .q("partNumber", &n.to_string())
                    .q("uploadId", &id)
                    .h("x-cos-copy-source", &cs)
                    .h("x-cos-copy-source-range", range),
            )
            .await;
        assert_eq!(r.status(), 200);
        let xml = r.text().await.expect("xml");
        let etag = xml
            .split("<ETag>")
            .nth(1)
            .and_then(|x| x.split("</ETag>").next())
            .expect("etag")
            .replace("&quot;", "\"");
        etags.push((n, etag));
    }
    assert_eq!(
        s.send(
            Call::new("POST", "dst")
                .q("uploadId", &id)
                .body(complete_doc(&etags))
        )
        .await
        .status(),
        200
    );
    assert_eq!(s.get_bytes(Call::new("GET", "dst")).await.1, src);
}

#[tokio::test]
async fn restart_keeps_objects_and_uploads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let s = start_in(dir, |_| {}).await;
    let body = data(10_000, 5);
    assert_eq!(s.put("keep/me", &body).await.status(), 200);
    let id = initiate(&s, "mp", &[]).await;
    let p = data(100, 1);
    let r = s
        .send(
            Call::new("PUT", "mp")
                .q("partNumber", "1")
                .q("uploadId", &id)
                .body(p.clone()),
        )
        .await;
    let etag = header(&r, "etag").expect("etag");
    let ::coslocal::testkit::TestServer { handle, dir, .. } = s.cos;
    handle.shutdown().await;
    let s = start_in(dir, |c| c.data_dir = path.join("data")).await;
    assert_eq!(s.get_bytes(Call::new("GET", "keep/me")).await.1, body);
    let r = s
        .send(
            Call::new("POST", "mp")
                .q("uploadId", &id)
                .body(complete_doc(&[(1, etag)])),
        )
        .await;
    assert_eq!(r.status(), 200);
    let _ = r.text().await;
    assert_eq!(s.get_bytes(Call::new("GET", "mp")).await.1, p);
}

/// Reads until the peer closes (or errors) and returns what came and how long it took;
/// fails the test if the connection is still open after `limit`.
async fn read_until_closed(
    tcp: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> (Vec<u8>, std::time::Duration) {
    use tokio::io::AsyncReadExt;
    let t = std::time::Instant::now();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        // Bounded by the timeout around it.
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection still open after {limit:?}");
    (got, t.elapsed())
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_tls_handshake_deadline() {
    let deadline = std::time::Duration::from_millis(400);
    let s = start_with(|c| c.tls_handshake_timeout = deadline).await;
    let mut silent = tokio::net::TcpStream::connect(s.handle.addr())
        .await
        .expect("connect");
    // A TLS client opened at the same time completes its handshake and is served.
    assert_eq!(s.put("k", b"served").await.status(), 200);
    let (got, took) = read_until_closed(&mut silent, std::time::Duration::from_secs(10)).await;
    assert!(
        got.is_empty(),
        "nothing is sent to a client that never said hello"
    );
    assert!(
        took >= deadline / 2,
        "closed after {took:?}, before the deadline"
    );
    // Established connections are not cut by the handshake deadline.
    tokio::time::sleep(deadline * 2).await;
    assert_eq!(
        s.get_bytes(Call::new("GET", "k")).await,
        (200, b"served".to_vec())
    );
}

#[tokio::test]
async fn connections_without_a_request_header_are_closed_at_the_header_deadline() {
    use tokio::io::AsyncWriteExt;
    let deadline = std::time::Duration::from_millis(400);
    let s = start_with(|c| {
        c.tls = coslocal::TlsMode::Plain;
        c.header_read_timeout = deadline;
    })
    .await;
    let limit = std::time::Duration::from_secs(10);
    let connect = || tokio::net::TcpStream::connect(s.handle.addr());
    // Silent from the start.
    let mut silent = connect().await.expect("connect");
    let (got, took) = read_until_closed(&mut silent, limit).await;
    assert!(got.is_empty());
    assert!(took >= deadline / 2, "closed after {took:?}");
    // Half a header, then nothing.
    let mut half = connect().await.expect("connect");
    half.write_all(b"GET /k HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write");
    let (_, took) = read_until_closed(&mut half, limit).await;
    assert!(took >= deadline / 2, "closed after {took:?}");
    // A whole request is answered; the idle keep-alive connection then closes too.
    let mut idle = connect().await.expect("connect");
    idle.write_all(b"GET /k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let (got, _) = read_until_closed(&mut idle, limit).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 403"),
        "unsigned request answered: {text}"
    );
    assert!(
        text.contains("AccessDenied") || text.contains("<Code>"),
        "{text}"
    );
}

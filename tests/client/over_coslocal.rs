//! `CosHttpClient` against coslocal in-process over HTTPS: every operation in every SSE
//! mode (none, SSE-COS, SSE-KMS, SSE-C with a two-key history) with a request-log check
//! that each request carried exactly the SSE headers the policy requires; SSE-C key
//! history and rejection; keys the URL layer would mangle; pagination; multipart copy;
//! faults that retries absorb and faults that exhaust them.

use crate::local::*;
use ::coslocal::{FaultConfig, FaultKind};
use bytes::Bytes;
use cosmount::cos::crc64::crc64;
use cosmount::cos::http::CosHttpClient;
use cosmount::cos::sse::{CustomerKey, ReadKey, SsePolicy};
use cosmount::cos::{
    CopySource, CosErrorKind, CosOp, Encryption, MetadataDirective, ObjectClient, PutOptions,
};
use std::collections::BTreeMap;

const MIB: usize = 1024 * 1024;

fn opts(ct: &str, mode: &str) -> PutOptions {
    PutOptions {
        content_type: Some(ct.into()),
        user_meta: BTreeMap::from([("mode".to_string(), mode.to_string())]),
    }
}

async fn get_all(c: &CosHttpClient, key: &str) -> Vec<u8> {
    c.get(key, None)
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("GET body {key}: {e}"))
        .to_vec()
}

/// What the request log must show for a policy.
#[derive(Clone)]
enum Expect {
    None,
    Cos,
    Kms(String),
    /// MD5 of the write key; every object read was written with it.
    Customer(String),
}

fn s(v: &serde_json::Value, name: &str) -> Option<String> {
    v["sse"][name]
        .as_str()
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

/// Every logged request whose SSE headers differ from the policy's requirement.
fn sse_violations(entries: &[serde_json::Value], expect: &Expect) -> Vec<String> {
    let mut bad = Vec::new();
    for e in entries {
        let op = e["op"].as_str().unwrap_or("");
        let facts = CosOp::from_name(op)
            .unwrap_or_else(|| panic!("request log names an unknown operation {op:?}"))
            .facts();
        let creates = facts.chooses_encryption;
        let want: [Option<String>; 4] = match expect {
            Expect::None => [None, None, None, None],
            Expect::Cos => [creates.then(|| "AES256".into()), None, None, None],
            Expect::Kms(id) => [
                creates.then(|| "cos/kms".into()),
                creates.then(|| id.clone()),
                None,
                None,
            ],
            Expect::Customer(md5) => {
                let triple = facts.customer_key.is_some();
                let source = facts.copy_source_key;
                [
                    None,
                    None,
                    triple.then(|| md5.clone()),
                    source.then(|| md5.clone()),
                ]
            }
        };
        let got = [
            s(e, "server_side_encryption"),
            s(e, "kms_key_id"),
            s(e, "customer_key_md5"),
            s(e, "copy_source_customer_key_md5"),
        ];
        if got != want {
            bad.push(format!(
                "{op} {:?}: sent {got:?}, policy requires {want:?}",
                e["key"]
            ));
        }
    }
    bad
}

/// Runs every `ObjectClient` operation under `tag/` and checks the results.
async fn exercise(local: &Local, sse: SsePolicy, tag: &str) {
    let c = local.client(sse.clone());
    // Same policy, tiny multipart-copy threshold.
    let mut cfg = local.config(sse.clone());
    cfg.multipart_copy_threshold = MIB as u64;
    cfg.copy_part_size = MIB as u64;
    let cm = CosHttpClient::new(cfg).expect("client");

    c.head_bucket().await.expect("head bucket");

    // PUT / HEAD / GET / ranged GET.
    let k = format!("{tag}/obj.bin");
    let data = pattern(300_000, 1);
    let put = c
        .put(
            &k,
            Bytes::from(data.clone()),
            &opts("application/x-test", "33188"),
        )
        .await
        .expect("put");
    assert_eq!(put.crc64, Some(crc64(&data)));
    let m = c.head(&k).await.expect("head");
    assert_eq!(m.size, data.len() as u64);
    assert_eq!(m.etag, put.etag);
    assert_eq!(m.content_type.as_deref(), Some("application/x-test"));
    assert_eq!(m.user_meta.get("mode").map(String::as_str), Some("33188"));
    assert_eq!(m.crc64, Some(crc64(&data)));
    match sse.mode() {
        cosmount::cos::sse::SseMode::None => assert_eq!(m.encryption, Encryption::None),
        cosmount::cos::sse::SseMode::CosManaged => assert_eq!(m.encryption, Encryption::CosManaged),
        cosmount::cos::sse::SseMode::Kms { key_id, .. } => assert_eq!(
            m.encryption,
            Encryption::Kms {
                key_id: key_id.clone()
            }
        ),
        cosmount::cos::sse::SseMode::Customer { keys } => assert_eq!(
            m.encryption,
            Encryption::Customer {
                key_md5: keys[0].md5_b64().to_string()
            }
        ),
    }
    assert_eq!(get_all(&c, &k).await, data);
    let r = c.get(&k, Some(1000..5000)).await.expect("ranged get");
    assert_eq!(r.meta.size, data.len() as u64);
    assert_eq!(r.collect().await.expect("body").as_ref(), &data[1000..5000]);
    // A range past the end is cut at the end.
    let r = c.get(&k, Some(299_990..400_000)).await.expect("tail get");
    assert_eq!(r.collect().await.expect("body").as_ref(), &data[299_990..]);
    let r = c.get(&k, Some(10..10)).await.expect("empty range");
    assert!(r.collect().await.expect("body").is_empty());

    // Listing.
    let page = c
        .list(&format!("{tag}/"), Some("/"), None, 1000)
        .await
        .expect("list");
    assert_eq!(page.objects.len(), 1);
    assert_eq!(page.objects[0].key, k);
    assert_eq!(page.objects[0].size, data.len() as u64);

    // Copy (single request), keeping metadata; then a self-copy replacing it.
    let k2 = format!("{tag}/copy.bin");
    c.copy(
        &CopySource::key(&k).size(data.len() as u64),
        &k2,
        &MetadataDirective::Copy,
    )
    .await
    .expect("copy");
    let m2 = c.head(&k2).await.expect("head copy");
    assert_eq!(m2.user_meta.get("mode").map(String::as_str), Some("33188"));
    assert_eq!(m2.content_type.as_deref(), Some("application/x-test"));
    assert_eq!(get_all(&c, &k2).await, data);
    c.copy(
        &CopySource::key(&k2),
        &k2,
        &MetadataDirective::Replaced(opts("text/plain", "33261")),
    )
    .await
    .expect("self copy");
    let m2 = c.head(&k2).await.expect("head self copy");
    assert_eq!(m2.user_meta.get("mode").map(String::as_str), Some("33261"));
    assert_eq!(m2.content_type.as_deref(), Some("text/plain"));
    assert_eq!(get_all(&c, &k2).await, data);

    // Multipart upload: 1 MiB + a short last part.
    let k3 = format!("{tag}/multi.bin");
    let big = pattern(MIB + 70_000, 3);
    let up = c
        .create_multipart(&k3, &opts("application/x-big", "33188"))
        .await
        .expect("initiate");
    let p1 = c
        .upload_part(&k3, &up, 1, Bytes::copy_from_slice(&big[..MIB]))
        .await
        .expect("part 1");
    let p2 = c
        .upload_part(&k3, &up, 2, Bytes::copy_from_slice(&big[MIB..]))
        .await
        .expect("part 2");
    assert_eq!(p1.crc64, Some(crc64(&big[..MIB])));
    let lp = c.list_parts(&k3, &up, None).await.expect("list parts");
    assert_eq!(
        lp.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(lp.parts[0].etag, p1.etag);
    assert_eq!(lp.parts[1].size, 70_000);
    let lu = c
        .list_uploads(&format!("{tag}/"), None)
        .await
        .expect("list uploads");
    assert!(
        lu.uploads.iter().any(|u| u.upload_id == up && u.key == k3),
        "{lu:?}"
    );
    let done = c
        .complete_multipart(&k3, &up, &[p1, p2])
        .await
        .expect("complete");
    assert_eq!(done.crc64, Some(crc64(&big)));
    assert_eq!(get_all(&c, &k3).await, big);
    let lu = c
        .list_uploads(&format!("{tag}/"), None)
        .await
        .expect("list uploads");
    assert!(lu.uploads.iter().all(|u| u.upload_id != up));

    // Multipart copy (threshold 1 MiB), metadata copied from the source.
    let k4 = format!("{tag}/multi-copy.bin");
    cm.copy(&CopySource::key(&k3), &k4, &MetadataDirective::Copy)
        .await
        .expect("multipart copy");
    let m4 = c.head(&k4).await.expect("head multipart copy");
    assert_eq!(m4.content_type.as_deref(), Some("application/x-big"));
    assert_eq!(m4.user_meta.get("mode").map(String::as_str), Some("33188"));
    assert_eq!(m4.crc64, Some(crc64(&big)));
    assert_eq!(get_all(&c, &k4).await, big);

    // Upload Part - Copy by hand, mixed with an uploaded part.
    let k5 = format!("{tag}/part-copy.bin");
    let up5 = c
        .create_multipart(&k5, &PutOptions::default())
        .await
        .expect("initiate 5");
    let q1 = c
        .upload_part_copy(&k5, &up5, 1, &k3, 0..MIB as u64)
        .await
        .expect("part copy");
    let q2 = c
        .upload_part(&k5, &up5, 2, Bytes::from_static(b"tail"))
        .await
        .expect("part 2");
    c.complete_multipart(&k5, &up5, &[q1, q2])
        .await
        .expect("complete 5");
    let mut want = big[..MIB].to_vec();
    want.extend_from_slice(b"tail");
    assert_eq!(get_all(&c, &k5).await, want);

    // Abort.
    let k6 = format!("{tag}/aborted.bin");
    let up6 = c
        .create_multipart(&k6, &PutOptions::default())
        .await
        .expect("initiate 6");
    c.upload_part(&k6, &up6, 1, Bytes::from_static(b"x"))
        .await
        .expect("part");
    c.abort_multipart(&k6, &up6).await.expect("abort");
    let e = c
        .list_parts(&k6, &up6, None)
        .await
        .expect_err("aborted upload is gone");
    assert_eq!(e.kind, CosErrorKind::NotFound);
    assert_eq!(
        c.head(&k6).await.expect_err("never completed").kind,
        CosErrorKind::NotFound
    );

    // Delete and multi-delete.
    c.delete(&k2).await.expect("delete");
    assert_eq!(
        c.head(&k2).await.expect_err("deleted").kind,
        CosErrorKind::NotFound
    );
    c.delete(&k2).await.expect("deleting a missing key is fine");
    let failures = c
        .delete_many(&[
            k.clone(),
            k3.clone(),
            k4.clone(),
            k5.clone(),
            format!("{tag}/missing"),
        ])
        .await
        .expect("delete many");
    assert!(failures.0.is_empty(), "{failures:?}");
    let page = c
        .list(&format!("{tag}/"), None, None, 1000)
        .await
        .expect("list");
    assert!(page.objects.is_empty(), "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_in_every_sse_mode_with_exact_headers() {
    let cases: Vec<(&str, SsePolicy, Expect)> = vec![
        ("none", SsePolicy::none(), Expect::None),
        ("sse-cos", sse_cos(), Expect::Cos),
        (
            "sse-kms",
            sse_kms("kms-key-1"),
            Expect::Kms("kms-key-1".into()),
        ),
        (
            "sse-c",
            ssec(vec![key_a(), key_b()]),
            Expect::Customer(key_a().md5_b64().to_string()),
        ),
    ];
    for (tag, sse, expect) in cases {
        // One server per mode so the log holds one policy's requests only.
        let local = Local::start().await;
        exercise(&local, sse, tag).await;
        let entries = local.log_entries();
        assert!(
            entries.len() > 30,
            "{tag}: only {} requests logged",
            entries.len()
        );
        let bad = sse_violations(&entries, &expect);
        assert!(bad.is_empty(), "{tag}: {}", bad.join("\n"));
        let ops: std::collections::BTreeSet<&str> =
            entries.iter().filter_map(|e| e["op"].as_str()).collect();
        for op in CosOp::ALL {
            assert!(ops.contains(op.name()), "{tag}: {} never sent", op.name());
        }
        local.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssec_key_history_reads_old_objects_and_rejects_unknown_keys() {
    let local = Local::start().await;
    let old = local.client(ssec(vec![key_b()]));
    let data = pattern(50_000, 7);
    old.put("h/obj", Bytes::from(data.clone()), &PutOptions::default())
        .await
        .expect("put with key B");

    // History [A, B]: A fails, B opens it and is remembered.
    let both = local.client(ssec(vec![key_a(), key_b()]));
    local.clear_log();
    let m = both.head("h/obj").await.expect("head with history");
    assert_eq!(
        m.encryption,
        Encryption::Customer {
            key_md5: key_b().md5_b64().to_string()
        }
    );
    assert_eq!(both.read_hint("h/obj"), Some(ReadKey::Customer(1)));
    assert_eq!(get_all(&both, "h/obj").await, data);
    let md5s: Vec<Option<String>> = local
        .log_entries()
        .iter()
        .map(|e| s(e, "customer_key_md5"))
        .collect();
    let (a, b) = (key_a().md5_b64().to_string(), key_b().md5_b64().to_string());
    // HEAD with A (rejected), HEAD with B, then the GET straight with B.
    assert_eq!(
        md5s,
        vec![Some(a.clone()), Some(b.clone()), Some(b.clone())]
    );

    // A copy re-encrypts with the write key A; the source is opened with B.
    both.copy(
        &CopySource::key("h/obj"),
        "h/reencrypted",
        &MetadataDirective::Copy,
    )
    .await
    .expect("copy B -> A");
    let only_a = local.client(ssec(vec![key_a()]));
    assert_eq!(get_all(&only_a, "h/reencrypted").await, data);

    // A stale remembered key (the object was rewritten with another key elsewhere) is
    // detected by the copy, which finds the right key and succeeds.
    both.put(
        "h/moving",
        Bytes::from_static(b"v1"),
        &PutOptions::default(),
    )
    .await
    .expect("put with A");
    assert_eq!(both.read_hint("h/moving"), Some(ReadKey::Customer(0)));
    old.put(
        "h/moving",
        Bytes::from_static(b"v2"),
        &PutOptions::default(),
    )
    .await
    .expect("rewrite with B");
    both.copy(
        &CopySource::key("h/moving").size(2),
        "h/moved",
        &MetadataDirective::Copy,
    )
    .await
    .expect("copy with a stale hint");
    assert_eq!(both.read_hint("h/moving"), Some(ReadKey::Customer(1)));
    assert_eq!(get_all(&both, "h/moved").await, b"v2");

    // History [A] alone cannot open the B object: SseKeyRejected naming the key.
    let e = only_a.head("h/obj").await.expect_err("wrong key");
    assert_eq!(e.kind, CosErrorKind::SseKeyRejected);
    assert_eq!(e.key, "h/obj");
    let e = only_a
        .get("h/obj", None)
        .await
        .err()
        .expect("wrong key on GET");
    assert_eq!(e.kind, CosErrorKind::SseKeyRejected);
    let shown = format!("{e} {e:?}");
    for secret in [
        key_a().key_b64().to_string(),
        key_b().key_b64().to_string(),
        String::from_utf8_lossy(RAW_KEY_A).into_owned(),
        SECRET_KEY.to_string(),
    ] {
        assert!(!shown.contains(&secret), "error shows a secret: {shown}");
    }

    // Without any key the read fails too (and is not retried).
    let plain = local.client(SsePolicy::none());
    assert!(plain.head("h/obj").await.is_err());

    // The history also opens plain objects (last candidate: no key).
    plain
        .put(
            "h/plain",
            Bytes::from_static(b"clear"),
            &PutOptions::default(),
        )
        .await
        .expect("plain put");
    assert_eq!(get_all(&both, "h/plain").await, b"clear");
    assert_eq!(both.read_hint("h/plain"), Some(ReadKey::Plain));

    // A missing object is NotFound, not a key problem.
    let e = both.head("h/missing").await.expect_err("missing");
    assert_eq!(e.kind, CosErrorKind::NotFound);
    let e = both.get("h/missing", None).await.err().expect("missing");
    assert_eq!(e.kind, CosErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssec_over_plain_http_is_refused_before_sending() {
    let local = Local::start().await;
    let before = local.handle.request_count();
    let mut cfg = local.config(ssec(vec![key_a()]));
    cfg.endpoint = cosmount::cos::config::Endpoint::Url(
        local.handle.endpoint().replace("https://", "http://"),
    );
    let e = CosHttpClient::new(cfg).expect_err("SSE-C over http");
    assert_eq!(e.kind, CosErrorKind::Refused);
    assert!(e.to_string().contains("SSE-C"), "{e}");
    assert_eq!(local.handle.request_count(), before, "nothing may be sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_url_layer_would_mangle_round_trip() {
    let local = Local::start().await;
    let c = local.client(ssec(vec![key_a()]));
    let keys = [
        "./a",
        "a/./b",
        "../up",
        "a/..",
        "x/../../y",
        "d/%2e%2e/z",
        "100% +plus sp ace",
        "ünï/cødé 文件.txt",
        "a//b",
        "dots...",
        ".hidden/.",
        "q?#&=;x",
        "back\\slash",
        "tab\there",
    ];
    for k in keys {
        c.put(
            k,
            Bytes::from(k.as_bytes().to_vec()),
            &PutOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("put {k:?}: {e}"));
    }
    let page = c.list("", None, None, 1000).await.expect("list");
    let mut listed: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    listed.sort();
    let mut want = keys.to_vec();
    want.sort();
    assert_eq!(listed, want);
    for k in keys {
        assert_eq!(get_all(&c, k).await, k.as_bytes(), "{k:?}");
        assert_eq!(c.head(k).await.expect("head").size, k.len() as u64);
        let dst = format!("{k}.copy");
        c.copy(&CopySource::key(k), &dst, &MetadataDirective::Copy)
            .await
            .unwrap_or_else(|e| panic!("copy {k:?}: {e}"));
        assert_eq!(get_all(&c, &dst).await, k.as_bytes(), "{dst:?}");
        c.delete(k).await.expect("delete");
        c.delete(&dst).await.expect("delete copy");
    }
    assert!(c
        .list("", None, None, 1000)
        .await
        .expect("list")
        .objects
        .is_empty());
    for bad in [".", "..", ""] {
        let e = c
            .put(bad, Bytes::new(), &PutOptions::default())
            .await
            .expect_err("refused");
        assert_eq!(e.kind, CosErrorKind::Refused, "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_paginates_without_gaps_or_duplicates() {
    let local = Local::start().await;
    let c = local.client(SsePolicy::none());
    let mut keys: Vec<String> = (0..23).map(|i| format!("p/f{i:02}")).collect();
    keys.extend([
        "p/sub1/x".to_string(),
        "p/sub2/y".to_string(),
        "p/z z".to_string(),
    ]);
    for k in &keys {
        c.put(k, Bytes::from_static(b"."), &PutOptions::default())
            .await
            .expect("put");
    }
    // With a delimiter: files and sub-directories, across pages of 4.
    let (mut objs, mut prefixes, mut marker, mut pages) =
        (Vec::new(), Vec::new(), None::<String>, 0);
    loop {
        let p = c
            .list("p/", Some("/"), marker.as_deref(), 4)
            .await
            .expect("list page");
        pages += 1;
        assert!(p.objects.len() + p.common_prefixes.len() <= 4);
        objs.extend(p.objects.into_iter().map(|o| o.key));
        prefixes.extend(p.common_prefixes);
        match p.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert!(pages >= 7, "{pages} pages");
    let mut want: Vec<String> = keys
        .iter()
        .filter(|k| !k.contains("sub"))
        .cloned()
        .collect();
    want.sort();
    assert_eq!(objs, want);
    assert_eq!(prefixes, vec!["p/sub1/", "p/sub2/"]);
    // Without a delimiter: every key once.
    let (mut all, mut marker) = (Vec::new(), None::<String>);
    loop {
        let p = c
            .list("p/", None, marker.as_deref(), 5)
            .await
            .expect("list page");
        all.extend(p.objects.into_iter().map(|o| o.key));
        match p.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    let mut want = keys.clone();
    want.sort();
    assert_eq!(all, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_that_retries_absorb() {
    let local = Local::start().await;
    let c = local.client(ssec(vec![key_a()]));
    let data = pattern(200_000, 9);
    // max_faults caps the faults of each configuration: two per case.
    let fault = |kind, op: &str, cap| FaultConfig {
        kind: Some(kind),
        every_nth: Some(2),
        ops: vec![op.to_string()],
        max_faults: Some(cap),
        ..FaultConfig::default()
    };
    let cases = [
        (FaultKind::SlowDown, "PutObject"),
        (FaultKind::InternalError, "PutObject"),
        (FaultKind::Reset, "PutObject"),
        (FaultKind::TruncateBody, "PutObject"),
        (FaultKind::SlowDown, "GetObject"),
        (FaultKind::Reset, "GetObject"),
        (FaultKind::TruncateBody, "GetObject"),
        (FaultKind::TruncateBody, "ListObjects"),
        (FaultKind::InternalError, "UploadPart"),
        (FaultKind::TruncateBody, "CompleteMultipartUpload"),
        (FaultKind::InternalError, "InitiateMultipartUpload"),
        (FaultKind::SlowDown, "CopyObject"),
        (FaultKind::Reset, "HeadObject"),
    ];
    for (i, (kind, op)) in cases.into_iter().enumerate() {
        local.handle.set_faults(fault(kind, op, 2));
        let k = format!("f/{i}");
        for round in 0..3 {
            c.put(&k, Bytes::from(data.clone()), &PutOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{kind:?} on {op}, put round {round}: {e}"));
            assert_eq!(get_all(&c, &k).await, data, "{kind:?} on {op}");
            c.head(&k)
                .await
                .unwrap_or_else(|e| panic!("{kind:?} on {op}: head: {e}"));
            c.list("f/", Some("/"), None, 1000)
                .await
                .unwrap_or_else(|e| panic!("{kind:?} on {op}: list: {e}"));
            c.copy(
                &CopySource::key(&k),
                &format!("{k}.c"),
                &MetadataDirective::Copy,
            )
            .await
            .unwrap_or_else(|e| panic!("{kind:?} on {op}: copy: {e}"));
            let up = c
                .create_multipart(&format!("{k}.m"), &PutOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{kind:?} on {op}: initiate: {e}"));
            let p = c
                .upload_part(&format!("{k}.m"), &up, 1, Bytes::from(data.clone()))
                .await
                .unwrap_or_else(|e| panic!("{kind:?} on {op}: part: {e}"));
            c.complete_multipart(&format!("{k}.m"), &up, &[p])
                .await
                .unwrap_or_else(|e| panic!("{kind:?} on {op}: complete: {e}"));
            assert_eq!(get_all(&c, &format!("{k}.m")).await, data);
        }
        assert!(
            local.handle.faults_injected_config() > 0,
            "{kind:?} on {op}: no fault was injected"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_that_exhaust_retries_surface_as_errors() {
    let local = Local::start().await;
    let c = local.client(SsePolicy::none());
    c.put(
        "x/obj",
        Bytes::from(pattern(100_000, 1)),
        &PutOptions::default(),
    )
    .await
    .expect("put");
    let always = |kind, op: &str| FaultConfig {
        kind: Some(kind),
        rate: 1.0,
        ops: vec![op.to_string()],
        ..FaultConfig::default()
    };
    let attempts = local.config(SsePolicy::none()).retry.max_attempts as u64;

    for (kind, want) in [
        (FaultKind::InternalError, CosErrorKind::ServerError),
        (FaultKind::SlowDown, CosErrorKind::Throttled),
        (FaultKind::Reset, CosErrorKind::Transport),
    ] {
        local.handle.set_faults(always(kind, "PutObject"));
        let before = local.handle.faults_injected();
        let sent = c.request_count();
        let e = c
            .put("x/new", Bytes::from_static(b"data"), &PutOptions::default())
            .await
            .expect_err("a put that always fails must not succeed");
        assert_eq!(e.kind, want, "{kind:?}: {e}");
        // After an ambiguous last failure the client looks (HEAD) whether the PUT went
        // through after all.
        let verify = u64::from(kind == FaultKind::Reset);
        assert_eq!(
            c.request_count() - sent,
            attempts + verify,
            "{kind:?}: attempts"
        );
        assert_eq!(local.handle.faults_injected() - before, attempts);
    }

    // A GET whose body is always cut: either the GET or its stream fails, never a short
    // body passed off as the object.
    local
        .handle
        .set_faults(always(FaultKind::TruncateBody, "GetObject"));
    match c.get("x/obj", None).await {
        Err(e) => assert!(e.kind.is_retryable(), "{e}"),
        Ok(r) => {
            let e = r
                .collect()
                .await
                .expect_err("a truncated body must be an error");
            assert_eq!(e.kind, CosErrorKind::Transport, "{e}");
        }
    }

    // Initiate is retried after ambiguous failures like any other request.
    local
        .handle
        .set_faults(always(FaultKind::Reset, "InitiateMultipartUpload"));
    let sent = c.request_count();
    let e = c
        .create_multipart("x/m", &PutOptions::default())
        .await
        .expect_err("reset initiate");
    assert_eq!(e.kind, CosErrorKind::Transport);
    // Every attempt went out (a reset acts on nothing, and with no upload id there is no
    // orphan to look for).
    assert_eq!(c.request_count() - sent, attempts);

    local.handle.set_faults(FaultConfig::default());
    assert_eq!(
        c.head("x/new").await.expect_err("never stored").kind,
        CosErrorKind::NotFound
    );
}

/// A retried Initiate whose earlier attempt created an upload (the answer was cut after
/// the server acted) leaves no orphan: the client finds and aborts it. A Complete that finds
/// its upload gone without having sent it before is an I/O error, never "not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiate_orphans_are_aborted_and_a_vanished_upload_is_not_enoent() {
    let local = Local::start().await;
    let c = local.client(SsePolicy::none());
    local.handle.set_faults(FaultConfig {
        kind: Some(FaultKind::TruncateBody),
        every_nth: Some(1),
        max_faults: Some(1),
        ops: vec!["InitiateMultipartUpload".into()],
        ..FaultConfig::default()
    });
    let id = c
        .create_multipart("orph/obj", &PutOptions::default())
        .await
        .expect("initiate after a lost answer");
    assert_eq!(
        local.handle.faults_injected_config(),
        1,
        "no answer was cut"
    );
    local.handle.set_faults(FaultConfig::default());
    let ups = c.list_uploads("orph/", None).await.expect("list uploads");
    let ids: Vec<_> = ups.uploads.iter().map(|u| u.upload_id.clone()).collect();
    assert_eq!(ids, vec![id.clone()], "the orphan upload was not aborted");

    let part = c
        .upload_part("orph/obj", &id, 1, Bytes::from_static(b"tail"))
        .await
        .expect("part");
    c.abort_multipart("orph/obj", &id).await.expect("abort");
    let e = c
        .complete_multipart("orph/obj", &id, &[part])
        .await
        .expect_err("complete of an aborted upload");
    assert_ne!(e.kind, CosErrorKind::NotFound, "{e}");
    assert_eq!(e.kind, CosErrorKind::IntegrityMismatch, "{e}");
    let e = c
        .upload_part("orph/obj", &id, 2, Bytes::from_static(b"x"))
        .await
        .expect_err("part of an aborted upload");
    assert_ne!(e.kind, CosErrorKind::NotFound, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_checks_the_combined_crc_of_the_parts() {
    let local = Local::start().await;
    let c = local.client(SsePolicy::none());
    let data = pattern(MIB + 10, 4);
    let up = c
        .create_multipart("crc/obj", &PutOptions::default())
        .await
        .expect("initiate");
    let p1 = c
        .upload_part("crc/obj", &up, 1, Bytes::copy_from_slice(&data[..MIB]))
        .await
        .expect("part 1");
    let mut p2 = c
        .upload_part("crc/obj", &up, 2, Bytes::copy_from_slice(&data[MIB..]))
        .await
        .expect("part 2");
    // Pretend part 2 had other contents: the combined CRC no longer matches COS's.
    p2.crc64 = p2.crc64.map(|x| x ^ 1);
    let e = c
        .complete_multipart("crc/obj", &up, &[p1, p2])
        .await
        .expect_err("CRC mismatch must fail the upload");
    assert_eq!(e.kind, CosErrorKind::IntegrityMismatch, "{e}");
    // Parts out of order are refused locally.
    let e = c
        .complete_multipart("crc/obj", &up, &[])
        .await
        .expect_err("no parts");
    assert_eq!(e.kind, CosErrorKind::Refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_credentials_send_the_token() {
    let local = start_with_token("sts-token-value").await;
    let mut cfg = local.config(SsePolicy::none());
    cfg.credentials = cosmount::cos::config::Credentials::new(
        SECRET_ID,
        SECRET_KEY,
        Some("sts-token-value".into()),
    );
    let c = CosHttpClient::new(cfg).expect("client");
    c.put("t/obj", Bytes::from_static(b"x"), &PutOptions::default())
        .await
        .expect("put with token");
    assert_eq!(get_all(&c, "t/obj").await, b"x");
    // Without the token the server refuses.
    let bare = local.client(SsePolicy::none());
    let e = bare.head("t/obj").await.expect_err("no token");
    assert_eq!(e.kind, CosErrorKind::AccessDenied, "{e}");
    let log = std::fs::read_to_string(&local.log).expect("log");
    assert!(
        !log.contains("sts-token-value"),
        "the request log shows the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_get_bodies_resume_and_lost_complete_answers_are_recovered() {
    let local = Local::start().await;
    let c = local.client(ssec(vec![key_a()]));
    let data = pattern(400_000, 5);
    c.put("r/obj", Bytes::from(data.clone()), &PutOptions::default())
        .await
        .expect("put");
    c.head("r/obj").await.expect("head");

    // The body of the first GET is cut in half: the stream asks for the rest itself.
    local.handle.set_faults(FaultConfig {
        kind: Some(FaultKind::TruncateBody),
        every_nth: Some(1),
        ops: vec!["GetObject".into()],
        max_faults: Some(1),
        ..FaultConfig::default()
    });
    local.clear_log();
    let sent = c.request_count();
    assert_eq!(get_all(&c, "r/obj").await, data);
    assert_eq!(c.request_count() - sent, 2, "one GET and one resume");
    let gets: Vec<u64> = local
        .log_entries()
        .iter()
        .filter(|e| e["op"] == "GetObject")
        .map(|e| e["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(gets, vec![200, 206]);

    // Complete's answer is lost after the server completed: the retry finds the upload
    // gone and accepts the object after checking it is the one the parts make.
    let big = pattern(MIB + 300_000, 6);
    let up = c
        .create_multipart("r/multi", &PutOptions::default())
        .await
        .expect("initiate");
    let p1 = c
        .upload_part("r/multi", &up, 1, Bytes::copy_from_slice(&big[..MIB]))
        .await
        .expect("part");
    let p2 = c
        .upload_part("r/multi", &up, 2, Bytes::copy_from_slice(&big[MIB..]))
        .await
        .expect("part");
    local.handle.set_faults(FaultConfig {
        kind: Some(FaultKind::TruncateBody),
        every_nth: Some(1),
        ops: vec!["CompleteMultipartUpload".into()],
        max_faults: Some(1),
        ..FaultConfig::default()
    });
    local.clear_log();
    let r = c
        .complete_multipart("r/multi", &up, &[p1, p2])
        .await
        .expect("complete recovered");
    assert_eq!(r.crc64, Some(crc64(&big)));
    let completes: Vec<String> = local
        .log_entries()
        .iter()
        .filter(|e| e["op"] == "CompleteMultipartUpload")
        .map(|e| format!("{} {}", e["status"], e["error_code"]))
        .collect();
    assert_eq!(completes.len(), 2, "{completes:?}");
    assert!(completes[1].contains("NoSuchUpload"), "{completes:?}");
    assert_eq!(get_all(&c, "r/multi").await, big);
}

/// A `Write` that appends to a shared buffer, for capturing tracing output.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_logs_debug_or_errors() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let local = start_with_token("sts-token-secret-1").await;
    let mut cfg = local.config(ssec(vec![key_a(), key_b()]));
    cfg.credentials = cosmount::cos::config::Credentials::new(
        SECRET_ID,
        SECRET_KEY,
        Some("sts-token-secret-1".into()),
    );
    let c = CosHttpClient::new(cfg.clone()).expect("client");
    tracing::info!("config {cfg:?} client {c:?}");
    c.put(
        "s/obj",
        Bytes::from_static(b"secret data"),
        &PutOptions::default(),
    )
    .await
    .expect("put");
    // Retries (logged with their attempt number), then a failure that exhausts them.
    local.handle.set_faults(FaultConfig {
        kind: Some(FaultKind::InternalError),
        rate: 1.0,
        ops: vec!["GetObject".into()],
        ..FaultConfig::default()
    });
    let e1 = c
        .get("s/obj", None)
        .await
        .err()
        .expect("always failing GET");
    local.handle.set_faults(FaultConfig::default());
    // A key the history cannot open.
    let mut other = local.config(ssec(vec![CustomerKey::from_raw(&[7u8; 32]).expect("key")]));
    other.credentials = cfg.credentials.clone();
    let wrong = CosHttpClient::new(other).expect("client");
    let e2 = wrong.head("s/obj").await.expect_err("wrong key");
    assert_eq!(e2.kind, CosErrorKind::SseKeyRejected);
    let e3 = wrong.get("s/obj", None).await.err().expect("wrong key");
    tracing::warn!("errors: {e1} / {e1:?} / {e2} / {e2:?} / {e3} / {e3:?}");

    let out = String::from_utf8_lossy(&capture.0.lock()).into_owned();
    assert!(out.contains("retrying COS request"), "retries are logged");
    assert!(out.contains("attempt"), "with their attempt number");
    for secret in [
        key_a().key_b64().to_string(),
        key_b().key_b64().to_string(),
        CustomerKey::from_raw(&[7u8; 32])
            .expect("key")
            .key_b64()
            .to_string(),
        String::from_utf8_lossy(RAW_KEY_A).into_owned(),
        SECRET_KEY.to_string(),
        "sts-token-secret-1".to_string(),
    ] {
        assert!(
            !out.contains(&secret),
            "a secret reached the logs: {secret}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addressing_variants_work_against_coslocal() {
    let local = Local::start().await;
    let port = local.handle.addr().port();
    let mut variants = Vec::new();
    // Path-style on the IP endpoint.
    let mut c = local.config(SsePolicy::none());
    c.path_style = true;
    variants.push(("path-style", c));
    // No region: copy sources use the path form `/<bucket>/<key>`.
    let mut c = local.config(SsePolicy::none());
    c.region = None;
    variants.push(("no-region", c));
    // `localhost` is addressed directly, like an IP address.
    let mut c = local.config(SsePolicy::none());
    c.endpoint = cosmount::cos::config::Endpoint::Url(format!("https://localhost:{port}"));
    variants.push(("localhost", c));
    for (name, cfg) in variants {
        let c = CosHttpClient::new(cfg).expect("client");
        let k = format!("{name}/a b+c");
        c.put(&k, Bytes::from_static(b"data"), &PutOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{name}: put: {e}"));
        assert_eq!(get_all(&c, &k).await, b"data", "{name}");
        c.copy(
            &CopySource::key(&k),
            &format!("{k}.copy"),
            &MetadataDirective::Copy,
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: copy: {e}"));
        let page = c
            .list(&format!("{name}/"), None, None, 10)
            .await
            .unwrap_or_else(|e| panic!("{name}: list: {e}"));
        assert_eq!(page.objects.len(), 2, "{name}");
        c.delete_many(&[k.clone(), format!("{k}.copy")])
            .await
            .unwrap_or_else(|e| panic!("{name}: delete: {e}"));
    }
}

/// A GET pinned to an ETag (`GetRequest::if_match`) is served while the object is that
/// version and refused with PreconditionFailed once it changed, in plain and SSE-C buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pinned_to_an_etag_fails_once_the_object_changed() {
    let local = Local::start().await;
    for (name, sse) in [("plain", SsePolicy::none()), ("ssec", ssec(vec![key_a()]))] {
        let c = local.client(sse);
        let key = format!("pin/{name}");
        let v1 = c
            .put(
                &key,
                Bytes::from_static(b"version one"),
                &PutOptions::default(),
            )
            .await
            .expect("put v1");
        let req = cosmount::cos::GetRequest::from(Some(0..7)).if_match(&v1.etag);
        let got = c.get(&key, req.clone()).await.expect("pinned get");
        let bytes = got.collect().await.expect("body");
        assert_eq!(&bytes[..], b"version", "{name}");
        c.put(
            &key,
            Bytes::from_static(b"version two"),
            &PutOptions::default(),
        )
        .await
        .expect("put v2");
        match c.get(&key, req).await {
            Err(e) => assert_eq!(e.kind, CosErrorKind::PreconditionFailed, "{name}: {e}"),
            Ok(_) => panic!("{name}: a GET pinned to the old ETag was served the new object"),
        }
    }
}

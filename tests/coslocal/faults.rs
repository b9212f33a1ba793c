//! coslocal fault injection: SlowDown / InternalError / Reset / TruncateBody by op filter
//! and period, per-configuration caps and counters, seeded mixed schedules, latency, the
//! bandwidth cap, and the control endpoint (faults, stats, at-rest corruption, CRC header
//! omission).

use crate::signed::*;
use ::coslocal::{FaultConfig, FaultKind};
use std::time::{Duration, Instant};

#[tokio::test]
async fn status_faults_follow_ops_and_period() {
    let s = start().await;
    assert_eq!(s.put("k", b"hello").await.status(), 200);
    s.handle.set_faults(FaultConfig {
        kind: Some(FaultKind::SlowDown),
        every_nth: Some(2),
        ops: vec!["GetObject".into()],
        ..FaultConfig::default()
    });
    let mut statuses = vec![];
    for _ in 0..4 {
        statuses.push(s.send(Call::new("GET", "k")).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 503, 200, 503]);
    assert_eq!(
        s.send(Call::new("HEAD", "k")).await.status(),
        200,
        "other ops untouched"
    );
    assert_eq!(s.handle.faults_injected(), 2);
    // The cap counts this configuration's faults only: the two SlowDowns above do not
    // use it up.
    s.handle.set_faults(FaultConfig {
        kind: Some(FaultKind::InternalError),
        rate: 1.0,
        max_faults: Some(3),
        ..FaultConfig::default()
    });
    for i in 0..3 {
        let (st, code) = error_code(s.send(Call::new("GET", "k")).await).await;
        assert_eq!((st, code.as_str()), (500, "InternalError"), "fault {i}");
    }
    assert_eq!(
        s.send(Call::new("GET", "k")).await.status(),
        200,
        "max_faults reached"
    );
    assert_eq!(s.handle.faults_injected_config(), 3);
    assert_eq!(s.handle.faults_injected(), 5);
    s.handle.set_faults(FaultConfig::default());
    let entries = s.log_entries();
    assert!(entries
        .iter()
        .any(|e| e["error_code"] == "SlowDown" && e["status"] == 503));
}

#[tokio::test]
async fn reset_and_truncate_break_the_connection() {
    let s = start().await;
    let body = data(300_000, 4);
    assert_eq!(s.put("big", &body).await.status(), 200);
    s.handle.set_faults(FaultConfig {
        kind: Some(FaultKind::Reset),
        every_nth: Some(1),
        ops: vec!["GetObject".into()],
        ..FaultConfig::default()
    });
    let err = try_send_to(&s.client, &s.endpoint(), Call::new("GET", "big")).await;
    assert!(err.is_err(), "reset gives a transport error");
    s.handle.set_faults(FaultConfig {
        kind: Some(FaultKind::TruncateBody),
        every_nth: Some(1),
        ops: vec!["GetObject".into()],
        ..FaultConfig::default()
    });
    let r = send_to(&s.client, &s.endpoint(), Call::new("GET", "big")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-length"),
        Some("300000".into()),
        "full Content-Length announced"
    );
    assert!(r.bytes().await.is_err(), "body is cut");
    s.handle.set_faults(FaultConfig::default());
    assert_eq!(s.get_bytes(Call::new("GET", "big")).await.1, body);
    assert_eq!(s.handle.faults_injected(), 2);
}

#[tokio::test]
async fn latency_and_bandwidth() {
    let s = start_with(|c| {
        c.faults.latency_ms = 150;
        c.faults.bandwidth_bytes_per_sec = Some(1_000_000);
    })
    .await;
    let body = data(500_000, 8);
    assert_eq!(s.put("b", &body).await.status(), 200);
    let t = Instant::now();
    let (st, got) = s.get_bytes(Call::new("GET", "b")).await;
    let took = t.elapsed();
    assert_eq!((st, got.len()), (200, body.len()));
    assert!(
        took >= Duration::from_millis(150 + 400),
        "latency + 0.5 MB at 1 MB/s, took {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// The control endpoint is not COS: plain reqwest calls are the point here.
#[allow(clippy::disallowed_methods)]
#[tokio::test]
async fn control_endpoint_changes_faults_at_run_time() {
    let s = start_with(|c| c.control_listen = Some("127.0.0.1:0".parse().expect("addr"))).await;
    let ctl = format!("http://{}", s.handle.control_addr().expect("control addr"));
    let plain = reqwest::Client::new();
    assert_eq!(s.put("k", b"x").await.status(), 200);
    let r = plain
        .put(format!("{ctl}/faults"))
        .body(r#"{"kind":"slow_down","every_nth":1,"ops":["HeadObject"]}"#)
        .send()
        .await
        .expect("control");
    assert_eq!(r.status(), 200);
    assert_eq!(s.send(Call::new("HEAD", "k")).await.status(), 503);
    let got: serde_json::Value = serde_json::from_str(
        &plain
            .get(format!("{ctl}/faults"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text"),
    )
    .expect("json");
    assert_eq!(got["kind"], "slow_down");
    let stats: serde_json::Value = serde_json::from_str(
        &plain
            .get(format!("{ctl}/stats"))
            .send()
            .await
            .expect("stats")
            .text()
            .await
            .expect("text"),
    )
    .expect("json");
    assert_eq!(stats["faults_injected"], 1);
    assert!(stats["requests"].as_u64().expect("n") >= 2);
    let bad = plain
        .put(format!("{ctl}/faults"))
        .body("{nope")
        .send()
        .await
        .expect("bad");
    assert_eq!(bad.status(), 400);
    plain
        .put(format!("{ctl}/faults"))
        .body("{}")
        .send()
        .await
        .expect("reset");
    assert_eq!(s.send(Call::new("HEAD", "k")).await.status(), 200);
}

#[tokio::test]
async fn bandwidth_cap_paces_uploads_too() {
    let s = start_with(|c| c.faults.bandwidth_bytes_per_sec = Some(1_000_000)).await;
    let t = Instant::now();
    assert_eq!(s.put("up", &data(600_000, 1)).await.status(), 200);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "0.6 MB at 1 MB/s took {took:?}"
    );
}

/// The control endpoint of an in-process server, spoken to with plain HTTP.
struct Ctl {
    base: String,
    http: reqwest::Client,
}

impl Ctl {
    fn of(s: &TestServer) -> Ctl {
        Ctl {
            base: format!("http://{}", s.handle.control_addr().expect("control addr")),
            http: reqwest::Client::new(),
        }
    }

    /// Sends `method path` with an optional JSON body; the status and the JSON answer.
    // The control endpoint is not COS: plain reqwest calls are the point here.
    #[allow(clippy::disallowed_methods)]
    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.body(b.to_string());
        }
        let r = rb.send().await.expect("control request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("control body");
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON {e}: {text}"));
        (status, v)
    }

    async fn ok(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let (st, v) = self.call(method, path, Some(body)).await;
        assert_eq!(st, 200, "{method} {path} {body}: {v}");
        v
    }

    async fn stats(&self) -> serde_json::Value {
        let (st, v) = self.call("GET", "/stats", None).await;
        assert_eq!(st, 200, "{v}");
        v
    }
}

async fn start_controlled() -> (TestServer, Ctl) {
    let s = start_with(|c| c.control_listen = Some("127.0.0.1:0".parse().expect("addr"))).await;
    let ctl = Ctl::of(&s);
    (s, ctl)
}

#[tokio::test]
async fn stats_count_per_configuration_and_by_op_and_kind() {
    let (s, ctl) = start_controlled().await;
    assert_eq!(s.put("k", b"x").await.status(), 200);
    // Two configurations with the same cap: each injects its own faults.
    ctl.ok(
        "PUT",
        "/faults",
        r#"{"kind":"slow_down","every_nth":1,"ops":["HeadObject"],"max_faults":1}"#,
    )
    .await;
    let statuses = [
        s.send(Call::new("HEAD", "k")).await.status().as_u16(),
        s.send(Call::new("HEAD", "k")).await.status().as_u16(),
    ];
    assert_eq!(statuses, [503, 200]);
    let st = ctl.stats().await;
    assert_eq!(
        (
            st["faults_injected"].as_u64(),
            st["faults_injected_config"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // A config with `kinds` and no `kind` injects.
    ctl.ok(
        "PUT",
        "/faults",
        r#"{"kinds":["internal_error"],"every_nth":1,"max_faults":1}"#,
    )
    .await;
    assert_eq!(
        ctl.stats().await["faults_injected_config"],
        0,
        "reset by PUT /faults"
    );
    let (st, code) = error_code(s.send(Call::new("GET", "k")).await).await;
    assert_eq!((st, code.as_str()), (500, "InternalError"));
    assert_eq!(s.send(Call::new("GET", "k")).await.status(), 200, "capped");
    let st = ctl.stats().await;
    assert_eq!(st["faults_injected"], 2);
    assert_eq!(st["faults_injected_config"], 1);
    assert_eq!(
        st["faults_by_op"],
        serde_json::json!({"HeadObject": 1, "GetObject": 1})
    );
    assert_eq!(
        st["faults_by_kind"],
        serde_json::json!({"slow_down": 1, "internal_error": 1})
    );
    assert!(st["requests"].as_u64().expect("requests") >= 5);
    let f = s.handle.fault_stats();
    assert_eq!((f.injected, f.injected_config), (2, 1));
    // `{}` clears; lifetime totals stay.
    ctl.ok("PUT", "/faults", "{}").await;
    assert_eq!(s.send(Call::new("GET", "k")).await.status(), 200);
    let st = ctl.stats().await;
    assert_eq!(
        (
            st["faults_injected"].as_u64(),
            st["faults_injected_config"].as_u64()
        ),
        (Some(2), Some(0))
    );
}

/// The statuses of `n` sequential HEADs (0 for a transport error).
async fn head_statuses(s: &TestServer, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = try_send_to(&s.client, &s.endpoint(), Call::new("HEAD", "k")).await;
        out.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
    }
    out
}

#[tokio::test]
async fn seeded_mixed_faults_repeat_for_the_same_request_order() {
    let (s, ctl) = start_controlled().await;
    assert_eq!(s.put("k", b"x").await.status(), 200);
    let cfg = r#"{"kinds":["slow_down","internal_error","reset"],"rate":0.5,"seed":1234,"ops":["HeadObject"]}"#;
    ctl.ok("PUT", "/faults", cfg).await;
    let first = head_statuses(&s, 40).await;
    ctl.ok("PUT", "/faults", cfg).await;
    let again = head_statuses(&s, 40).await;
    assert_eq!(first, again, "same seed, same order, same schedule");
    for want in [200, 503, 500, 0] {
        assert!(first.contains(&want), "{want} never seen in {first:?}");
    }
    let by_kind = &ctl.stats().await["faults_by_kind"];
    let faults = first.iter().filter(|&&x| x != 200).count() as u64;
    let sum: u64 = ["slow_down", "internal_error", "reset"]
        .iter()
        .map(|k| by_kind[*k].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(sum, 2 * faults);
    ctl.ok("PUT", "/faults", &cfg.replace("1234", "4321")).await;
    assert_ne!(
        head_statuses(&s, 40).await,
        first,
        "another seed, another schedule"
    );
    // GET /faults shows the new fields.
    let (_, got) = ctl.call("GET", "/faults", None).await;
    assert_eq!(got["seed"], 4321);
    assert_eq!(
        got["kinds"],
        serde_json::json!(["slow_down", "internal_error", "reset"])
    );
}

use cosmount::cos::crc64::crc64;

/// The positions and xor masks where `a` and `b` differ.
fn diff(a: &[u8], b: &[u8]) -> Vec<(usize, u8)> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| (i, x ^ y))
        .collect()
}

#[tokio::test]
async fn corrupt_flips_one_stored_bit_and_keeps_etag_and_crc() {
    let (s, ctl) = start_controlled().await;
    let body = data(100_000, 21);
    let put = s.put("dir/obj", &body).await;
    assert_eq!(put.status(), 200);
    let etag = header(&put, "etag").expect("etag");
    let crc = header(&put, "x-cos-hash-crc64ecma").expect("crc");
    assert_eq!(crc, crc64(&body).to_string());
    // A copy made before the damage must keep the good data (copies share blobs).
    let copy = s
        .send(Call::new("PUT", "dir/copy").h(
            "x-cos-copy-source",
            &format!("{BUCKET}.cos.{REGION}.myqcloud.com/dir/obj"),
        ))
        .await;
    assert_eq!(copy.status(), 200);

    let v = ctl
        .ok("POST", "/corrupt", r#"{"key":"dir/obj","offset":54321}"#)
        .await;
    assert_eq!(v, serde_json::json!({"key": "dir/obj", "offset": 54321}));
    let r = s.send(Call::new("GET", "dir/obj")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "etag").as_deref(), Some(etag.as_str()));
    assert_eq!(
        header(&r, "x-cos-hash-crc64ecma").as_deref(),
        Some(crc.as_str())
    );
    assert_eq!(header(&r, "content-length"), Some("100000".into()));
    let got = r.bytes().await.expect("body");
    assert_eq!(diff(&got, &body), [(54321, 0x01)]);
    assert_ne!(
        crc64(&got).to_string(),
        crc,
        "the recorded CRC no longer matches"
    );
    // A range over the damaged byte sees it too; the copy does not.
    let (st, part) = s
        .get_bytes(Call::new("GET", "dir/obj").h("range", "bytes=54320-54322"))
        .await;
    assert_eq!((st, part[1] ^ body[54321]), (206, 0x01));
    assert_eq!(s.get_bytes(Call::new("GET", "dir/copy")).await.1, body);

    // The in-process handle does the same.
    s.handle.corrupt("dir/obj", 54321).await.expect("flip back");
    assert_eq!(s.get_bytes(Call::new("GET", "dir/obj")).await.1, body);

    let (st, v) = ctl
        .call("POST", "/corrupt", Some(r#"{"key":"nope","offset":0}"#))
        .await;
    assert_eq!(st, 404, "{v}");
    assert!(v["error"].is_string());
    let (st, _) = ctl
        .call(
            "POST",
            "/corrupt",
            Some(r#"{"key":"dir/obj","offset":100000}"#),
        )
        .await;
    assert_eq!(st, 400, "offset == size is beyond the object");
    let (st, _) = ctl
        .call("POST", "/corrupt", Some(r#"{"key":"dir/obj"}"#))
        .await;
    assert_eq!(st, 400, "offset is required");
    assert_eq!(s.get_bytes(Call::new("GET", "dir/obj")).await.1, body);
}

#[tokio::test]
async fn corrupt_hits_plaintext_offsets_of_multipart_sse_c_objects() {
    let (s, ctl) = start_controlled().await;
    let key = "enc/mp";
    let r = s
        .send(
            Call::new("POST", key)
                .q("uploads", "")
                .ssec(KEY_B64, KEY_MD5),
        )
        .await;
    assert_eq!(r.status(), 200);
    let xml = r.text().await.expect("xml");
    let id = upload_id_of(&xml);
    // Two parts, so two at-rest segments with their own IVs.
    let p1 = data(1024 * 1024, 31);
    let p2 = data(70_000, 32);
    let mut doc = String::from("<CompleteMultipartUpload>");
    for (n, p) in [(1u32, &p1), (2, &p2)] {
        let r = s
            .send(
                Call::new("PUT", key)
                    .q("partNumber", &n.to_string())
                    .q("uploadId", &id)
                    .ssec(KEY_B64, KEY_MD5)
                    .body(p.clone()),
            )
            .await;
        assert_eq!(r.status(), 200);
        let etag = header(&r, "etag").expect("etag");
        doc.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    doc.push_str("</CompleteMultipartUpload>");
    let r = s
        .send(Call::new("POST", key).q("uploadId", &id).body(doc))
        .await;
    assert_eq!(r.status(), 200);
    let _ = r.text().await;
    let whole: Vec<u8> = [p1.clone(), p2.clone()].concat();
    let head = s.send(Call::new("HEAD", key).ssec(KEY_B64, KEY_MD5)).await;
    let (etag, crc) = (header(&head, "etag"), header(&head, "x-cos-hash-crc64ecma"));
    assert_eq!(crc, Some(crc64(&whole).to_string()));

    // One offset in each segment, the first and last bytes, and the segment boundary.
    let offsets = [
        0usize,
        777,
        1024 * 1024 - 1,
        1024 * 1024,
        1024 * 1024 + 12_345,
        whole.len() - 1,
    ];
    for off in offsets {
        ctl.ok(
            "POST",
            "/corrupt",
            &format!(r#"{{"key":"{key}","offset":{off}}}"#),
        )
        .await;
    }
    let r = s.send(Call::new("GET", key).ssec(KEY_B64, KEY_MD5)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "etag"), etag);
    assert_eq!(header(&r, "x-cos-hash-crc64ecma"), crc);
    let got = r.bytes().await.expect("body");
    let want: Vec<(usize, u8)> = offsets.iter().map(|&o| (o, 0x01)).collect();
    assert_eq!(diff(&got, &whole), want);
    // The data at rest is still ciphertext: no plaintext run of the parts is in the blob.
    let data_dir = s.dir.path().join("data").join("data");
    let mut blobs = 0;
    for e in std::fs::read_dir(&data_dir).expect("data dir") {
        let stored = std::fs::read(e.expect("entry").path()).expect("blob");
        assert!(!stored.windows(64).any(|w| w == &p2[1000..1064]));
        blobs += 1;
    }
    assert_eq!(blobs, 1, "one blob: the damaged copy replaced the original");
}

#[tokio::test]
async fn omit_crc_drops_the_header_from_get_and_head_only() {
    let (s, ctl) = start_controlled().await;
    let put = s.put("c", b"checksummed").await;
    assert!(header(&put, "x-cos-hash-crc64ecma").is_some());
    let has_crc = |r: &reqwest::Response| header(r, "x-cos-hash-crc64ecma").is_some();
    assert_eq!(
        ctl.ok("POST", "/omit-crc", r#"{"omit":true}"#).await,
        serde_json::json!({"omit": true})
    );
    assert_eq!(ctl.call("GET", "/omit-crc", None).await.1["omit"], true);
    let get = s.send(Call::new("GET", "c")).await;
    assert_eq!(get.status(), 200);
    assert!(!has_crc(&get), "GET without CRC");
    assert_eq!(get.bytes().await.expect("body").as_ref(), b"checksummed");
    let head = s.send(Call::new("HEAD", "c")).await;
    assert!(head.status() == 200 && !has_crc(&head), "HEAD without CRC");
    let ranged = s.send(Call::new("GET", "c").h("range", "bytes=0-3")).await;
    assert!(ranged.status() == 206 && !has_crc(&ranged));
    assert!(has_crc(&s.put("c2", b"other").await), "PUT keeps its CRC");
    // Not part of the fault configuration: PUT /faults leaves it on.
    ctl.ok("PUT", "/faults", "{}").await;
    assert!(!has_crc(&s.send(Call::new("HEAD", "c")).await));
    ctl.ok("POST", "/omit-crc", r#"{"omit":false}"#).await;
    assert!(has_crc(&s.send(Call::new("GET", "c")).await));
    s.handle.set_omit_crc(true);
    assert!(!has_crc(&s.send(Call::new("HEAD", "c")).await));
    s.handle.set_omit_crc(false);
    assert!(has_crc(&s.send(Call::new("HEAD", "c")).await));
    let (st, _) = ctl
        .call("POST", "/omit-crc", Some(r#"{"omit":"yes"}"#))
        .await;
    assert_eq!(st, 400);
}

//! The process-based coslocal harness of the kernel tests (`harness::Coslocal`), on
//! its own (no FUSE needed): its control-port helpers really reach the running binary —
//! fault counters, at-rest corruption and leaving out the CRC-64 header.

use crate::harness::{CoslocalOptions, Harness};
use crate::signed::{client_for, header, send_to, Call};

/// A request signed with the harness coslocal's own credentials.
fn call(h: &Harness, method: &str, key: &str) -> Call {
    let mut c = Call::new(method, key);
    c.id = Some(h.cos.secret_id.clone());
    c.secret = Some(h.cos.secret_key.clone());
    c
}

#[tokio::test]
async fn control_helpers_corrupt_omit_crc_and_count_faults() {
    let h = Harness::start_no_fuse("harness-control", CoslocalOptions::default());
    let client = client_for(Some(&h.cos.ca));
    let ep = h.cos.endpoint.clone();
    let body: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    let put = send_to(&client, &ep, call(&h, "PUT", "d/f").body(body.clone())).await;
    assert_eq!(put.status(), 200);
    let crc = header(&put, "x-cos-hash-crc64ecma").expect("crc");

    h.cos.corrupt("d/f", 4095);
    let r = send_to(&client, &ep, call(&h, "GET", "d/f")).await;
    assert_eq!(header(&r, "x-cos-hash-crc64ecma"), Some(crc.clone()));
    let got = r.bytes().await.expect("body");
    assert_eq!(got.len(), body.len());
    assert_eq!(got[4095], body[4095] ^ 0x01);
    assert_eq!(got[..4095], body[..4095]);
    assert_eq!(h.cos.try_corrupt("d/none", 0).0, 404);
    assert_eq!(h.cos.try_corrupt("d/f", 4096).0, 400);

    h.cos.set_omit_crc(true);
    let r = send_to(&client, &ep, call(&h, "HEAD", "d/f")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cos-hash-crc64ecma"), None);
    h.cos.set_omit_crc(false);
    let r = send_to(&client, &ep, call(&h, "HEAD", "d/f")).await;
    assert_eq!(header(&r, "x-cos-hash-crc64ecma"), Some(crc));

    h.cos.set_faults(
        r#"{"kind":"internal_error","every_nth":1,"ops":["HeadObject"],"max_faults":1}"#,
    );
    let r = send_to(&client, &ep, call(&h, "HEAD", "d/f")).await;
    assert_eq!(r.status(), 500);
    let st = h.cos.stats();
    assert_eq!(st["faults_injected_config"], 1);
    assert_eq!(st["faults_by_op"]["HeadObject"], 1);
    assert_eq!(st["faults_by_kind"]["internal_error"], 1);
    h.cos.clear_faults();
    assert_eq!(h.cos.stats()["faults_injected_config"], 0);
    assert_eq!(h.cos.stats()["faults_injected"], 1);
}

//! coslocal fault injection: SlowDown / InternalError / Reset / TruncateBody by op filter
//! and period, latency, the bandwidth cap and the control endpoint.

mod coslocal_support;
use coslocal_support::*;
use cosmount::server::{FaultConfig, FaultKind};
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
    s.handle.set_faults(FaultConfig {
        kind: Some(FaultKind::InternalError),
        rate: 1.0,
        max_faults: Some(3),
        ..FaultConfig::default()
    });
    let (st, code) = error_code(s.send(Call::new("GET", "k")).await).await;
    assert_eq!((st, code.as_str()), (500, "InternalError"));
    assert_eq!(
        s.send(Call::new("GET", "k")).await.status(),
        200,
        "max_faults reached"
    );
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

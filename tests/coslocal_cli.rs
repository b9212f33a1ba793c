//! The `coslocal` binary: ready line, self-signed CA file, credentials from a file or the
//! environment, clear refusal without credentials, graceful exit on SIGTERM.

mod coslocal_support;
use coslocal_support::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_coslocal")
}

#[test]
fn refuses_to_run_without_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin())
        .args([
            "--data-dir",
            dir.path().to_str().expect("utf8"),
            "--bucket",
            BUCKET,
        ])
        .env_remove("COSLOCAL_SECRET_ID")
        .env_remove("COSLOCAL_SECRET_KEY")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no credentials"), "{err}");
    let out = Command::new(bin())
        .args([
            "--data-dir",
            dir.path().to_str().expect("utf8"),
            "--bucket",
            "NoAppId",
        ])
        .env("COSLOCAL_SECRET_ID", ID)
        .env("COSLOCAL_SECRET_KEY", SECRET)
        .output()
        .expect("runs");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME-APPID"));
}

#[tokio::test]
async fn serves_https_with_the_written_ca_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("creds");
    std::fs::write(&creds, format!("# test\n{ID}:{SECRET}\n")).expect("creds");
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(bin())
        .args([
            "--data-dir",
            dir.path().join("d").to_str().expect("utf8"),
            "--bucket",
            BUCKET,
            "--tls-self-signed",
            "--ca-out",
        ])
        .arg(&ca)
        .arg("--credentials-file")
        .arg(&creds)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    assert!(
        line.starts_with("coslocal ready endpoint=https://127.0.0.1:"),
        "{line}"
    );
    assert!(
        line.trim_end()
            .ends_with(&format!("bucket={BUCKET} region=ap-guangzhou")),
        "{line}"
    );
    let endpoint = line
        .split("endpoint=")
        .nth(1)
        .and_then(|x| x.split(' ').next())
        .expect("endpoint")
        .to_string();
    let client = client_for(Some(&ca));
    let r = send_to(
        &client,
        &endpoint,
        Call::new("PUT", "hello").body(b"world".to_vec()),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send_to(&client, &endpoint, Call::new("GET", "hello")).await;
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"world");
    // SAFETY-free: kill(2) through the libc crate with the child's own pid.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "graceful exit");
}

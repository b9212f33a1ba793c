//! The `coslocal` binary: ready line, self-signed CA file, credentials from a file or the
//! environment, clear refusal without credentials, graceful exit on SIGTERM, and the
//! `--tls-handshake-timeout` flag.

use crate::bins;
use crate::signed::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn refuses_to_run_without_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bins::coslocal())
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
    let out = Command::new(bins::coslocal())
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
    let mut child = Command::new(bins::coslocal())
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

/// Kills the child on drop, so a failed assertion does not leave coslocal running.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tls_handshake_timeout_flag_closes_silent_connections() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    let base = |timeout: &str| {
        let mut c = Command::new(bins::coslocal());
        c.args([
            "--data-dir",
            dir.path().join("d").to_str().expect("utf8"),
            "--bucket",
            BUCKET,
            "--tls-self-signed",
            "--tls-handshake-timeout",
            timeout,
            "--ca-out",
        ])
        .arg(dir.path().join("ca.pem"))
        .env("COSLOCAL_SECRET_ID", ID)
        .env("COSLOCAL_SECRET_KEY", SECRET);
        c
    };
    let out = base("0").output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "a zero timeout is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than 0"));

    let mut child = Killed(
        base("0.4")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    // Read the ready line on a thread so a silent coslocal cannot hang the test.
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ready line");
    let addr = line
        .split("endpoint=https://")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .unwrap_or_else(|| panic!("no https endpoint in {line:?}"))
        .to_string();
    let mut silent = std::net::TcpStream::connect(&addr).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let t = Instant::now();
    let mut buf = [0u8; 64];
    match silent.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(9),
        "closed after {took:?}"
    );
}

//! Secrets given through the environment must not stay readable in /proc/PID/environ
//! or appear in /proc/PID/cmdline of the running `cosmount`. The endpoint is a TCP
//! listener that accepts and never answers, so the process is alive (inside its
//! start-up HEAD Bucket) while we look, and no mount is needed.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn env_secrets_scrubbed_from_proc() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            let _ = tx.send(());
            held.push(conn); // keep it open, never answer
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("mnt")).expect("mkdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cosmount"))
        .arg("secretcheck-1250000000")
        .arg(dir.path().join("mnt"))
        .arg("-f")
        .arg("-o")
        .arg(format!(
            "url=http://127.0.0.1:{port},retries=0,readwrite_timeout=60"
        ))
        .env_clear()
        .env("HOME", dir.path())
        .env("COSACCESSKEYID", "AKIDenvtest")
        .env("COSSECRETACCESSKEY", "SEKRITENVKEY")
        .env("COSSESSIONTOKEN", "SEKRITTOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cosmount");
    let connected = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    let pid = child.id();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(connected, "cosmount never reached the endpoint: {err}");
    let environ = String::from_utf8_lossy(&environ);
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(
        environ.contains("AKIDenvtest"),
        "environ unreadable? {environ:?}"
    );
    for secret in ["SEKRITENVKEY", "SEKRITTOKEN"] {
        assert!(
            !environ.contains(secret),
            "{secret} readable in /proc/{pid}/environ"
        );
        assert!(!cmdline.contains(secret));
        assert!(!err.contains(secret));
    }
}

#[test]
fn start_up_check_gives_up_within_its_bound() {
    // An endpoint that accepts but never answers: the daemonized command must still
    // return (exit 3) within the readiness window instead of hanging mount(8).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("mnt")).expect("mkdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "AKID:key\n").expect("write");
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cosmount"))
        .arg("hang-1250000000")
        .arg(dir.path().join("mnt"))
        .arg("-o")
        .arg(format!(
            "url=http://127.0.0.1:{port},passwd_file={},readwrite_timeout=300",
            pw.display()
        ))
        .env_clear()
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run cosmount");
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("no answer to HEAD bucket"), "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

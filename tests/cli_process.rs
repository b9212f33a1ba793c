//! Process-level settings of the running `cosmount`, checked from outside: it has
//! raised its open-file limit. As in tests/cli_secrets.rs the endpoint is a TCP
//! listener that accepts and never answers, so the process sits in its start-up HEAD
//! Bucket (past reading its credentials) while we look, and no mount is needed.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A listener that accepts and never answers; returns its port and a channel that
/// receives one message per accepted connection.
fn silent_endpoint() -> (u16, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            let _ = tx.send(());
            held.push(conn); // keep it open, never answer
        }
    });
    (port, rx)
}

/// `cosmount BUCKET DIR/mnt -f` against the silent endpoint, credentials from the
/// environment, HOME = `dir`.
fn cosmount(binary: &Path, dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg("proccheck-1250000000")
        .arg(dir.join("mnt"))
        .arg("-f")
        .arg("-o")
        .arg(format!(
            "url=http://127.0.0.1:{port},retries=0,readwrite_timeout=60"
        ))
        .env_clear()
        .env("HOME", dir)
        .env("COSACCESSKEYID", "AKIDproctest")
        .env("COSSECRETACCESSKEY", "SEKRITPROCKEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Kills and reaps a child on drop, so a failed assertion leaves nothing running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon raises its soft open-file limit to the hard limit before it opens
/// anything. The child starts with a lowered soft limit so that the raise is visible.
#[test]
fn daemon_raises_its_open_file_limit() {
    let mut hard: libc::rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
        0
    );
    let low = hard.rlim_max.min(256);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("mnt")).expect("mkdir");
    let (port, connected) = silent_endpoint();
    let mut cmd = cosmount(Path::new(env!("CARGO_BIN_EXE_cosmount")), dir.path(), port);
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: low,
                rlim_max: hard.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = Reaped(cmd.spawn().expect("spawn cosmount"));
    let pid = child.0.id();
    assert!(
        connected.recv_timeout(Duration::from_secs(20)).is_ok(),
        "cosmount never reached the endpoint"
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let nums: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    let (soft, hard_now) = (nums[0], nums[1]);
    assert_eq!(
        soft, hard_now,
        "soft open-file limit not raised (started at {low}): {line}"
    );
    assert_eq!(hard_now, hard.rlim_max.to_string());
}

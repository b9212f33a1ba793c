//! Process-level protections of the running `cosmount`, checked from outside: it is
//! non-dumpable (no core dump, no same-user ptrace or /proc reading of its secrets) and
//! has raised its open-file limit. As in tests/cli/secrets.rs the endpoint is a TCP
//! listener that accepts and never answers, so the process sits in its start-up HEAD
//! Bucket (past reading its credentials) while we look, and no mount is needed.

use crate::host;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The unprivileged user the dumpability check runs the binary as ("nobody").
const NOBODY: u32 = 65534;

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

/// The real uid of a process, from /proc/PID/status ("Uid: real effective saved fs").
fn real_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Owner uid of /proc/PID/environ: the process's own uid while it is dumpable, root
/// (0) once it is not.
fn environ_owner(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}/environ"))
        .ok()
        .map(|m| m.uid())
}

/// /proc/PID/status has no dumpable field, and for a process running as root the files
/// under /proc/PID are owned by root either way. So the binary runs as `nobody`: while a
/// process is dumpable its /proc/PID files are owned by its own uid, once it is not they
/// are owned by root. A `sleep` run the same way shows that the check tells the two
/// apart here; the binary is run from a world-readable copy because the kernel also makes
/// a process non-dumpable when its executable is unreadable to it, which would let the
/// test pass for the wrong reason.
#[test]
fn daemon_is_not_dumpable() {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !host::require("root (to run the binary as uid 65534)", root) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir home");
    std::fs::create_dir(home.join("mnt")).expect("mkdir mnt");
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).expect("chown home");
    std::os::unix::fs::chown(home.join("mnt"), Some(NOBODY), Some(NOBODY)).expect("chown mnt");
    let binary = dir.path().join("cosmount");
    std::fs::copy(env!("CARGO_BIN_EXE_cosmount"), &binary).expect("copy binary");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    // The baseline: an ordinary program run as nobody is dumpable, and it shows.
    let sleep = host::which("sleep").expect("sleep in PATH");
    let baseline = Command::new(sleep)
        .arg("30")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep as nobody");
    let baseline = Reaped(baseline);
    let pid = baseline.0.id();
    assert!(
        host::wait_until(Duration::from_secs(10), || real_uid(pid) == Some(NOBODY)),
        "sleep did not run as uid {NOBODY}"
    );
    assert_eq!(
        environ_owner(pid),
        Some(NOBODY),
        "a dumpable process's /proc/PID/environ is not owned by its uid here: this check \
         cannot see dumpability on this system"
    );
    drop(baseline);

    let (port, connected) = silent_endpoint();
    let child = cosmount(&binary, &home, port)
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .expect("spawn cosmount as nobody");
    let child = Reaped(child);
    let pid = child.0.id();
    assert!(
        connected.recv_timeout(Duration::from_secs(20)).is_ok(),
        "cosmount (as uid {NOBODY}) never reached the endpoint"
    );
    assert_eq!(
        real_uid(pid),
        Some(NOBODY),
        "cosmount does not run as nobody"
    );
    assert_eq!(
        environ_owner(pid),
        Some(0),
        "/proc/{pid}/environ of cosmount running as uid {NOBODY} is not owned by root: the \
         process is dumpable (core dumps and same-user ptrace can read its secrets)"
    );
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

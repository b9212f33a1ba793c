//! Shared harness of the kernel-level tests (`tests/mount/`): a real `coslocal` over
//! HTTPS on loopback, a real `cosmount` FUSE mount of it, and the tools to look at both
//! from outside (the request log, the control port, the official Python SDK).
//!
//! Every test gets its own temp dir, its own coslocal (so its own bucket and request log)
//! and its own mount point, so tests can run in parallel. A watchdog kills the mount
//! daemons when a test runs too long: a hung FUSE request then fails with ENOTCONN instead
//! of blocking the whole suite. Tests that need `/dev/fuse` call [`fuse_available`]: in
//! CI (env `CI` set) a missing FUSE is a failure, locally a printed skip.

pub mod coslocal;
pub mod fsops;
pub mod mount;
pub mod reqlog;
pub mod sdk;

pub use self::coslocal::{Coslocal, CoslocalOptions};
pub use crate::host::{require, wait_until, which};
pub use mount::{Mount, MountOptions, Sse};
pub use reqlog::LogEntry;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether real FUSE mounts can run here: `/dev/fuse`, `fusermount3`, root.
pub fn fuse_available() -> bool {
    let dev = Path::new("/dev/fuse").exists();
    let fusermount = which("fusermount3").is_some();
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    require("/dev/fuse", dev) && require("fusermount3 in PATH", fusermount) && require("root", root)
}

/// PIDs of the daemons of a test, shared with its watchdog.
pub type Pids = Arc<Mutex<Vec<u32>>>;

/// Kills the registered daemons if the test outlives its deadline.
pub struct Watchdog {
    cancel: Option<mpsc::Sender<()>>,
}

impl Watchdog {
    /// Deadline from env `COSMOUNT_TEST_TIMEOUT` (seconds) or `default_secs`.
    pub fn start(name: &str, pids: Pids, default_secs: u64) -> Watchdog {
        let secs = std::env::var("COSMOUNT_TEST_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_secs);
        let (tx, rx) = mpsc::channel::<()>();
        let name = name.to_string();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs))
            {
                eprintln!("WATCHDOG: test {name} exceeded {secs}s; killing its mount daemons");
                for pid in pids.lock().unwrap().iter() {
                    // SAFETY: plain kill(2) on a pid this test started.
                    unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
                }
            }
        });
        Watchdog { cancel: Some(tx) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.cancel.take() {
            let _ = tx.send(());
        }
    }
}

/// One test's world: a temp dir, a coslocal, a watchdog; mounts are made from it.
pub struct Harness {
    /// The test's directory (kept after the test when env `COSMOUNT_TEST_KEEP` is set).
    pub root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub cos: Coslocal,
    pub pids: Pids,
    _watchdog: Watchdog,
}

impl Harness {
    /// Starts coslocal for test `name`; `None` (after a skip message) when FUSE is missing.
    pub fn start(name: &str) -> Option<Harness> {
        Harness::start_with(name, CoslocalOptions::default())
    }

    pub fn start_with(name: &str, opts: CoslocalOptions) -> Option<Harness> {
        if !fuse_available() {
            return None;
        }
        Some(Harness::start_no_fuse(name, opts))
    }

    /// Starts coslocal only (no FUSE needed).
    pub fn start_no_fuse(name: &str, opts: CoslocalOptions) -> Harness {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cosmount-{name}-"))
            .tempdir()
            .expect("temp dir");
        let pids: Pids = Arc::new(Mutex::new(Vec::new()));
        let watchdog = Watchdog::start(name, pids.clone(), 240);
        let root = dir.path().to_path_buf();
        let tmp = if std::env::var_os("COSMOUNT_TEST_KEEP").is_some() {
            eprintln!("keeping {}", dir.keep().display());
            None
        } else {
            Some(dir)
        };
        let cos = Coslocal::start(&root, opts);
        Harness {
            root,
            _tmp: tmp,
            cos,
            pids,
            _watchdog: watchdog,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Mounts the whole bucket with `opts`; waits until the mount is live.
    pub fn mount(&self, opts: MountOptions) -> Mount {
        Mount::start(self, opts)
    }

    /// Mounts, or says why the mount failed (the daemon's output and log).
    pub fn try_mount(&self, opts: MountOptions) -> Result<Mount, String> {
        Mount::try_start(self, opts)
    }

    /// Writes a 0600 SSE-C key file with `keys` (base64, one per line) and returns it.
    pub fn key_file(&self, name: &str, keys: &[[u8; 32]]) -> PathBuf {
        use base64::Engine;
        let mut text = String::new();
        for k in keys {
            text.push_str(&base64::engine::general_purpose::STANDARD.encode(k));
            text.push('\n');
        }
        let p = self.path(name);
        write_private(&p, text.as_bytes());
        p
    }

    /// The two ways a tool test runs, each under its own prefix of the bucket: a plain
    /// mount and an SSE-C one (with a key file made here).
    pub fn plain_and_ssec(&self) -> Vec<(&'static str, Sse)> {
        std::fs::create_dir_all(self.path("home")).unwrap();
        let key = self.key_file("ssec.key", &[[0x5a; 32]]);
        vec![("plain", Sse::None), ("ssec", Sse::Customer(key))]
    }

    /// Mounts `BUCKET:/prefix` with `sse` (and 1 MiB parts, so multipart is exercised).
    pub fn mount_under(&self, prefix: &str, sse: &Sse) -> Mount {
        let mut o = MountOptions::sse(sse.clone()).opt("multipart_size=1");
        o.prefix = Some(prefix.to_string());
        self.mount(o)
    }

    /// For an SSE-C mount: every upload under `prefix` carried the customer key.
    pub fn assert_uploads_encrypted(&self, prefix: &str, sse: &Sse) {
        if !matches!(sse, Sse::Customer(_)) {
            return;
        }
        let uploads: Vec<_> = self
            .cos
            .requests()
            .into_iter()
            .filter(|e| {
                e.key.starts_with(&format!("{prefix}/"))
                    && matches!(e.op.as_str(), "PutObject" | "InitiateMultipartUpload")
                    && e.status == 200
            })
            .collect();
        assert!(!uploads.is_empty(), "{prefix}: no uploads logged");
        let plain: Vec<_> = uploads
            .iter()
            .filter(|e| e.sse.customer_key_md5.is_none())
            .map(|e| &e.key)
            .collect();
        assert!(
            plain.is_empty(),
            "{prefix}: uploads without SSE-C: {plain:?}"
        );
    }

    /// The official Python SDK, talking to this test's coslocal.
    pub fn sdk(&self) -> Option<sdk::Sdk> {
        sdk::Sdk::new(&self.cos)
    }
}

/// Writes a file readable by its owner only (password and key files).
pub fn write_private(path: &Path, data: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(data).expect("write private file");
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Runs `cmd` (stdin closed) and returns its stdout; panics with both outputs on failure.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

//! Runs `cosmount` against a test's coslocal: writes the passwd file, builds the cosfs-style
//! `-o` options, waits until the kernel shows the mount, unmounts (and reaps) on drop.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{Harness, Pids};

/// The SSE option of a mount.
#[derive(Debug, Clone)]
pub enum Sse {
    None,
    /// `use_sse=1` (SSE-COS).
    Cos,
    /// `use_sse=kmsid:ID`.
    Kms(String),
    /// `use_sse=custom:FILE` (the file may be rewritten between remounts).
    Customer(PathBuf),
}

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub sse: Sse,
    /// `BUCKET:/PREFIX` when set.
    pub prefix: Option<String>,
    /// Extra `-o` items, e.g. `multipart_size=1`, `ro`, `stat_cache_expire=1`.
    pub options: Vec<String>,
    /// `-f` (foreground, the harness owns the process). False = daemon mode.
    pub foreground: bool,
    /// Extra environment for the daemon.
    pub env: Vec<(String, String)>,
    /// RLIMIT_NOFILE (soft and hard) the daemon starts with.
    pub nofile: Option<u64>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            sse: Sse::None,
            prefix: None,
            options: Vec::new(),
            foreground: true,
            env: Vec::new(),
            nofile: None,
        }
    }
}

impl MountOptions {
    pub fn sse(sse: Sse) -> MountOptions {
        MountOptions {
            sse,
            ..Default::default()
        }
    }

    pub fn opt(mut self, o: &str) -> MountOptions {
        self.options.push(o.to_string());
        self
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A live mount.
pub struct Mount {
    pub mountpoint: PathBuf,
    pub log: PathBuf,
    pub opts: MountOptions,
    bucket: String,
    url: String,
    passwd: PathBuf,
    ca: PathBuf,
    staging: PathBuf,
    child: Option<Child>,
    pub pid: Option<u32>,
    pids: Pids,
    mounted: bool,
}

/// Whether the kernel lists a FUSE mount at `path` (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let want = path.to_string_lossy().replace(' ', "\\040");
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().any(|l| {
        let mut parts = l.split(" - ");
        let pre = parts.next().unwrap_or("");
        let post = parts.next().unwrap_or("");
        pre.split_whitespace().nth(4) == Some(want.as_str()) && post.starts_with("fuse")
    })
}

/// The file-system type /proc/self/mountinfo gives the topmost mount at `path`
/// (`fuse.cosmount` for ours), or None when nothing is mounted there.
pub fn mount_type(path: &Path) -> Option<String> {
    let want = path.to_string_lossy().replace(' ', "\\040");
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().rev().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (pre.split_whitespace().nth(4) == Some(want.as_str()))
            .then(|| post.split_whitespace().next().unwrap_or("").to_string())
    })
}

/// Whether the mount answers a stat of its root within `timeout`. A listed but stuck mount
/// would otherwise hang the test's first system call. The probe thread may stay blocked
/// until the daemon is killed; it only holds a path.
pub fn answers(path: &Path, timeout: Duration) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::metadata(&p).is_ok());
    });
    rx.recv_timeout(timeout).unwrap_or(false)
}

/// The PID of the cosmount process serving `mountpoint` (daemon mode), from /proc.
pub fn find_daemon_pid(mountpoint: &Path) -> Option<u32> {
    let mp = mountpoint.to_string_lossy().to_string();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        // The daemon itself, not a mount(8)/mount.fuse3 wrapper that names the same path.
        let is_cosmount = args.first().is_some_and(|a| a.ends_with("cosmount"));
        if is_cosmount && args.iter().any(|a| a == &mp) {
            return Some(pid);
        }
    }
    None
}

impl Mount {
    pub(super) fn start(h: &Harness, opts: MountOptions) -> Mount {
        Mount::try_start(h, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `start`, but a mount that fails is the daemon's message and log.
    pub(super) fn try_start(h: &Harness, opts: MountOptions) -> Result<Mount, String> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mountpoint = h.path(&format!("mnt{n}"));
        std::fs::create_dir_all(&mountpoint).expect("mountpoint");
        let passwd = h.path("passwd-cosfs");
        if !passwd.exists() {
            super::write_private(
                &passwd,
                format!(
                    "{}:{}:{}\n",
                    h.cos.bucket, h.cos.secret_id, h.cos.secret_key
                )
                .as_bytes(),
            );
        }
        let staging = h.path(&format!("staging{n}"));
        let mut m = Mount {
            mountpoint,
            log: h.path(&format!("cosmount{n}.log")),
            opts,
            bucket: h.cos.bucket.clone(),
            url: h.cos.endpoint.clone(),
            passwd,
            ca: h.cos.ca.clone(),
            staging,
            child: None,
            pid: None,
            pids: h.pids.clone(),
            mounted: false,
        };
        m.spawn()?;
        Ok(m)
    }

    /// The cosmount command line of this mount (without running it).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosmount"));
        cmd.arg(self.source()).arg(&self.mountpoint);
        if self.opts.foreground {
            cmd.arg("-f");
        }
        cmd.arg("-o").arg(self.option_string());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        // A daemon without logfile= would log to this machine's journal or syslog; tests
        // that want that give a socket of their own (`opts.env` comes after).
        cmd.env("COSMOUNT_JOURNAL_SOCKET", "")
            .env("COSMOUNT_SYSLOG_SOCKET", "");
        cmd.envs(self.opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(n) = self.opts.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// `BUCKET-APPID[:/PREFIX]`.
    pub fn source(&self) -> String {
        match &self.opts.prefix {
            Some(p) => format!("{}:/{}", self.bucket, p.trim_start_matches('/')),
            None => self.bucket.clone(),
        }
    }

    /// The comma-separated `-o` value.
    pub fn option_string(&self) -> String {
        let mut o = vec![
            format!("url={}", self.url),
            format!("passwd_file={}", self.passwd.display()),
            format!("ca_file={}", self.ca.display()),
        ];
        let has_staging = self
            .opts
            .options
            .iter()
            .any(|x| x.starts_with("staging_dir="));
        if !has_staging {
            o.push(format!("staging_dir={}", self.staging.display()));
        }
        match &self.opts.sse {
            Sse::None => {}
            Sse::Cos => o.push("use_sse=1".into()),
            Sse::Kms(id) => o.push(format!("use_sse=kmsid:{id}")),
            Sse::Customer(f) => o.push(format!("use_sse=custom:{}", f.display())),
        }
        o.extend(self.opts.options.iter().cloned());
        o.join(",")
    }

    /// Starts the daemon and waits for the mount. `Err` carries the log.
    pub fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("mount log");
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        if self.opts.foreground {
            let child = cmd.spawn().map_err(|e| format!("spawn cosmount: {e}"))?;
            let pid = child.id();
            self.pids.lock().unwrap().push(pid);
            self.pid = Some(pid);
            self.child = Some(child);
            let live = super::wait_until(Duration::from_secs(30), || {
                is_mounted(&self.mountpoint) || self.child_exited()
            });
            if !live || !is_mounted(&self.mountpoint) {
                let _ = self.child.as_mut().map(|c| c.kill());
                return Err(format!(
                    "cosmount did not mount {} (live={live}); log:\n{}",
                    self.mountpoint.display(),
                    self.log_text()
                ));
            }
        } else {
            // Daemon mode: the command must return 0 only once the mount is live.
            let status = cmd.status().map_err(|e| format!("run cosmount: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "cosmount exited {status}; log:\n{}",
                    self.log_text()
                ));
            }
            if !is_mounted(&self.mountpoint) {
                return Err(format!(
                    "cosmount returned 0 but {} is not mounted; log:\n{}",
                    self.mountpoint.display(),
                    self.log_text()
                ));
            }
            self.pid = find_daemon_pid(&self.mountpoint);
            let ty = mount_type(&self.mountpoint);
            if ty.as_deref() != Some("fuse.cosmount") {
                return Err(format!(
                    "{} is mounted as {ty:?}, not fuse.cosmount",
                    self.mountpoint.display()
                ));
            }
            if let Some(pid) = self.pid {
                self.pids.lock().unwrap().push(pid);
            }
        }
        self.mounted = true;
        if !answers(&self.mountpoint, Duration::from_secs(20)) {
            let pid = self.pid;
            if let Some(pid) = pid {
                // SAFETY: kill(2) on the daemon this mount started; unblocks the probe.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            self.unmount();
            return Err(format!(
                "{} is mounted but does not answer stat within 20 s (daemon pid {pid:?} killed); log:\n{}",
                self.mountpoint.display(),
                self.log_text()
            ));
        }
        Ok(())
    }

    fn child_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mountpoint.join(rel)
    }

    /// Everything cosmount logged so far (all mounts of this `Mount`).
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Unmounts and waits for the daemon to exit (it flushes on unmount). Returns its exit
    /// status in foreground mode.
    pub fn unmount(&mut self) -> Option<ExitStatus> {
        if self.mounted {
            let mut ok = false;
            for _ in 0..100 {
                let st = Command::new("fusermount3")
                    .arg("-u")
                    .arg(&self.mountpoint)
                    .stderr(Stdio::null())
                    .status();
                if st.is_ok_and(|s| s.success()) || !is_mounted(&self.mountpoint) {
                    ok = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !ok {
                eprintln!(
                    "fusermount3 -u {} kept failing; lazy unmount",
                    self.mountpoint.display()
                );
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .status();
            }
            self.mounted = false;
        }
        let status = self.reap(Duration::from_secs(60));
        if let Some(pid) = self.pid.take() {
            self.pids.lock().unwrap().retain(|p| *p != pid);
        }
        status
    }

    /// Waits for the daemon to exit; kills it after `timeout`.
    fn reap(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(mut c) = self.child.take() {
            let end = std::time::Instant::now() + timeout;
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    return Some(st);
                }
                if std::time::Instant::now() >= end {
                    eprintln!("cosmount did not exit {timeout:?} after unmount; killing it");
                    let _ = c.kill();
                    return c.wait().ok();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(pid) = self.pid {
            let alive = |p: u32| Path::new(&format!("/proc/{p}")).exists();
            if !super::wait_until(timeout, || !alive(pid)) {
                // SAFETY: kill(2) on the daemon this mount started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        None
    }

    /// Unmounts, then fails the test if the daemon logged anything at WARN or ERROR over
    /// its life (remounts included): at the default level a healthy mount is quiet, and a
    /// tool run that passed is healthy. Foreground mounts only (their stderr is the log).
    pub fn finish_quietly(mut self, what: &str) {
        assert!(
            self.opts.foreground,
            "finish_quietly needs the foreground log"
        );
        self.unmount();
        let log = self.log_text();
        let loud: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        assert!(
            loud.is_empty(),
            "{what}: a healthy run logged {} warning/error lines at the default level, e.g.:\n{}",
            loud.len(),
            loud.iter().take(10).copied().collect::<Vec<_>>().join("\n")
        );
    }

    /// Unmounts and mounts again with the same options.
    pub fn remount(&mut self) {
        self.unmount();
        self.spawn().unwrap_or_else(|e| panic!("remount: {e}"));
    }

    /// Unmounts and mounts again after changing the options.
    pub fn remount_with(&mut self, f: impl FnOnce(&mut MountOptions)) {
        self.unmount();
        f(&mut self.opts);
        self.spawn().unwrap_or_else(|e| panic!("remount: {e}"));
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        let pid = self.pid.expect("daemon pid");
        // SAFETY: kill(2) on the daemon this mount started.
        let r = unsafe { libc::kill(pid as i32, sig) };
        assert_eq!(r, 0, "kill({pid}, {sig})");
    }

    /// Waits for the foreground daemon to exit on its own (after a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let st = self.reap(timeout);
        if !is_mounted(&self.mountpoint) {
            self.mounted = false;
        }
        st
    }

    /// Peak resident memory of the daemon in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted || self.pid.is_some() {
            self.unmount();
        }
        if is_mounted(&self.mountpoint) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

//! The command line over real mounts: the daemon returns 0 only once the mount is live and
//! fails fast (non-zero, nothing mounted) on bad credentials or an untrusted certificate;
//! `mount -t fuse.cosmount` and an /etc/fstab line work through mount.fuse3 with a bare
//! environment (no HOME, minimal PATH), as at boot.

use crate::harness;
use crate::harness::mount::{answers, find_daemon_pid, is_mounted, mount_type};
use crate::harness::{write_private, Harness, MountOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Serialises the tests that touch /etc/fstab and /usr/local/bin.
static SYSTEM_FILES: Mutex<()> = Mutex::new(());

/// Unmounts a path on drop (for mounts made outside the harness).
struct Unmounter(PathBuf);

impl Drop for Unmounter {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
        if is_mounted(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Fails fast (killing the daemon so nothing stays blocked) when a mount made outside the
/// harness is listed but does not answer.
fn assert_answers(h: &Harness, mnt: &Path) {
    let pid = find_daemon_pid(mnt);
    if let Some(pid) = pid {
        h.pids.lock().unwrap().push(pid);
    }
    if !answers(mnt, Duration::from_secs(20)) {
        if let Some(pid) = pid {
            // SAFETY: kill(2) on the daemon this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        panic!(
            "{} is mounted but does not answer stat within 20 s",
            mnt.display()
        );
    }
}

/// Restores /etc/fstab byte for byte on drop.
struct FstabGuard(Option<Vec<u8>>);

impl Drop for FstabGuard {
    fn drop(&mut self) {
        match &self.0 {
            Some(orig) => std::fs::write("/etc/fstab", orig).expect("restore /etc/fstab"),
            None => {
                let _ = std::fs::remove_file("/etc/fstab");
            }
        }
    }
}

/// Runs `cmd` with a deadline; returns (exit code, stderr+stdout) or panics on timeout.
fn run_with_deadline(mut cmd: Command, deadline: Duration) -> (Option<i32>, String) {
    let out = tempfile::NamedTempFile::new().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(out.reopen().unwrap());
    let mut child = cmd.spawn().expect("spawn");
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (
                st.code(),
                std::fs::read_to_string(out.path()).unwrap_or_default(),
            );
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!(
                "{cmd:?} still running after {deadline:?}; output:\n{}",
                std::fs::read_to_string(out.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn daemon_returns_zero_only_when_mounted() {
    let Some(h) = Harness::start("cli-daemon") else {
        return;
    };
    let mut m = h.mount(MountOptions {
        foreground: false,
        ..Default::default()
    });
    // Harness::mount already checked: exit 0 and mounted at that instant.
    let pid = m.pid.expect("daemon pid found in /proc");
    std::fs::write(m.path("hello.txt"), b"daemon").unwrap();
    assert_eq!(std::fs::read(m.path("hello.txt")).unwrap(), b"daemon");
    m.unmount();
    assert!(!is_mounted(&m.mountpoint));
    let gone = harness::wait_until(Duration::from_secs(30), || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(gone, "daemon {pid} still running after unmount");
}

#[test]
fn bad_credentials_fail_fast_without_mounting() {
    let Some(h) = Harness::start("cli-badcreds") else {
        return;
    };
    let bad = h.path("passwd-bad");
    write_private(
        &bad,
        format!("{}:{}:wrong-secret\n", h.cos.bucket, h.cos.secret_id).as_bytes(),
    );
    let mnt = h.path("mnt-bad");
    std::fs::create_dir_all(&mnt).unwrap();
    let _guard = Unmounter(mnt.clone());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosmount"));
    cmd.arg(&h.cos.bucket).arg(&mnt).arg("-o").arg(format!(
        "url={},passwd_file={},ca_file={},retries=1",
        h.cos.endpoint,
        bad.display(),
        h.cos.ca.display()
    ));
    let (code, out) = run_with_deadline(cmd, Duration::from_secs(90));
    assert_ne!(
        code,
        Some(0),
        "mount with a wrong SecretKey returned 0: {out}"
    );
    assert!(
        !is_mounted(&mnt),
        "a failed mount left {} mounted",
        mnt.display()
    );
    assert!(
        !out.contains("wrong-secret"),
        "the secret key was printed: {out}"
    );

    // An endpoint whose certificate is not trusted (no ca_file) fails the same way.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosmount"));
    let good = h.path("passwd-good");
    write_private(
        &good,
        format!(
            "{}:{}:{}\n",
            h.cos.bucket, h.cos.secret_id, h.cos.secret_key
        )
        .as_bytes(),
    );
    cmd.arg(&h.cos.bucket).arg(&mnt).arg("-o").arg(format!(
        "url={},passwd_file={},retries=1",
        h.cos.endpoint,
        good.display()
    ));
    let (code, out) = run_with_deadline(cmd, Duration::from_secs(90));
    assert_ne!(
        code,
        Some(0),
        "mount of an untrusted TLS endpoint returned 0: {out}"
    );
    assert!(!is_mounted(&mnt));
}

/// `/usr/local/bin/cosmount` → the binary under test, for the duration of a test:
/// mount(8) and mount.fuse3 run the helper with the standard PATH, as at boot. An existing
/// file that is not our symlink is left alone (the test then fails with a clear message).
struct InstalledBinary(PathBuf);

impl InstalledBinary {
    fn install() -> InstalledBinary {
        let link = PathBuf::from("/usr/local/bin/cosmount");
        let ours = PathBuf::from(env!("CARGO_BIN_EXE_cosmount"));
        match std::fs::read_link(&link) {
            Ok(t) if t == ours => {}
            Ok(_) | Err(_) if link.symlink_metadata().is_ok() => {
                panic!(
                    "{} exists and is not this build's binary; remove it to run this test",
                    link.display()
                )
            }
            _ => {
                std::fs::create_dir_all("/usr/local/bin").unwrap();
                std::os::unix::fs::symlink(&ours, &link).expect("symlink /usr/local/bin/cosmount");
            }
        }
        InstalledBinary(link)
    }
}

impl Drop for InstalledBinary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A boot-like environment: no HOME, the standard PATH.
fn bare_env(cmd: &mut Command) {
    cmd.env_clear().env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
}

fn options(h: &Harness, extra: &str) -> String {
    let passwd = h.path("passwd-cosfs");
    if !passwd.exists() {
        write_private(
            &passwd,
            format!(
                "{}:{}:{}\n",
                h.cos.bucket, h.cos.secret_id, h.cos.secret_key
            )
            .as_bytes(),
        );
    }
    format!(
        "url={},passwd_file={},ca_file={},staging_dir={}{extra}",
        h.cos.endpoint,
        passwd.display(),
        h.cos.ca.display(),
        h.path("staging").display()
    )
}

#[test]
fn mount_dash_t_fuse_cosmount() {
    let Some(h) = Harness::start("cli-mount-t") else {
        return;
    };
    if !harness::require(
        "/sbin/mount.fuse3",
        Path::new("/sbin/mount.fuse3").exists() || Path::new("/usr/sbin/mount.fuse3").exists(),
    ) {
        return;
    }
    let _lock = SYSTEM_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let _bin = InstalledBinary::install();
    let mnt = h.path("mnt-t");
    std::fs::create_dir_all(&mnt).unwrap();
    let _guard = Unmounter(mnt.clone());
    let mut cmd = Command::new("mount");
    cmd.args(["-t", "fuse.cosmount"])
        .arg(&h.cos.bucket)
        .arg(&mnt)
        .arg("-o")
        .arg(options(&h, ",_netdev,nodev,nosuid"));
    bare_env(&mut cmd);
    let (code, out) = run_with_deadline(cmd, Duration::from_secs(60));
    assert_eq!(code, Some(0), "mount -t fuse.cosmount failed: {out}");
    assert!(
        is_mounted(&mnt),
        "mount(8) returned 0 but nothing is mounted"
    );
    assert_eq!(
        mount_type(&mnt).as_deref(),
        Some("fuse.cosmount"),
        "type in /proc/self/mountinfo"
    );
    assert_answers(&h, &mnt);
    std::fs::write(mnt.join("via-mount8.txt"), b"ok").unwrap();
    assert_eq!(std::fs::read(mnt.join("via-mount8.txt")).unwrap(), b"ok");
    let st = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(st.success(), "umount failed");
    assert!(!is_mounted(&mnt));
}

#[test]
fn fstab_line_mounts_with_bare_environment() {
    let Some(h) = Harness::start("cli-fstab") else {
        return;
    };
    let _lock = SYSTEM_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let _bin = InstalledBinary::install();
    let mnt = h.path("mnt-fstab");
    std::fs::create_dir_all(&mnt).unwrap();
    let _unmount = Unmounter(mnt.clone());
    let orig = std::fs::read("/etc/fstab").ok();
    let _restore = FstabGuard(orig.clone());
    let mut text = String::from_utf8_lossy(orig.as_deref().unwrap_or(b"")).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "{} {} fuse.cosmount {} 0 0 # cosmount test, removed automatically\n",
        h.cos.bucket,
        mnt.display(),
        options(&h, ",_netdev,noauto,allow_other")
    ));
    std::fs::write("/etc/fstab", text).unwrap();

    let mut cmd = Command::new("mount");
    cmd.arg(&mnt);
    bare_env(&mut cmd);
    let (code, out) = run_with_deadline(cmd, Duration::from_secs(60));
    assert_eq!(
        code,
        Some(0),
        "mount {} (fstab) failed: {out}",
        mnt.display()
    );
    assert!(is_mounted(&mnt));
    assert_answers(&h, &mnt);
    std::fs::write(mnt.join("via-fstab.txt"), b"fstab").unwrap();
    assert_eq!(std::fs::read(mnt.join("via-fstab.txt")).unwrap(), b"fstab");
    let st = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(st.success(), "umount failed");
    drop(_restore);
    let now = std::fs::read("/etc/fstab").ok();
    assert_eq!(now, orig, "/etc/fstab was not restored");
}

/// The .deb `scripts/build-deb.sh` made (the test command builds it first).
fn built_deb() -> Option<PathBuf> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| harness::repo_root().join("target"))
        .join("debian");
    let found = std::fs::read_dir(&dir).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
    });
    harness::require(
        "target/debian/cosmount_*.deb (run scripts/build-deb.sh)",
        found.is_some(),
    )
    .then(|| found.unwrap())
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package installs with dpkg, its binary mounts through `mount -t fuse.cosmount`
/// (the daemon is /usr/bin/cosmount), and purging it leaves none of its files.
#[test]
fn deb_installs_mounts_and_purges_cleanly() {
    let Some(h) = Harness::start("cli-deb") else {
        return;
    };
    let Some(deb) = built_deb() else { return };
    let _lock = SYSTEM_FILES.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        Path::new("/usr/local/bin/cosmount")
            .symlink_metadata()
            .is_err(),
        "/usr/local/bin/cosmount would shadow the package's binary"
    );
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));
    let files: Vec<String> = run_ok(Command::new("dpkg").args(["-L", "cosmount"]))
        .lines()
        .map(str::to_string)
        .collect();
    for want in [
        "/usr/bin/cosmount",
        "/usr/bin/coslocal",
        "/usr/share/man/man8/cosmount.8.gz",
        "/usr/share/man/man1/coslocal.1.gz",
        "/lib/systemd/system/cosmount@.service",
        "/etc/logrotate.d/cosmount",
        "/usr/share/doc/cosmount/examples/mnt-cos.mount",
        "/usr/share/doc/cosmount/examples/fstab.example",
    ] {
        assert!(
            files.iter().any(|f| f == want),
            "{want} not in the package: {files:?}"
        );
    }
    let version = run_ok(Command::new("/usr/bin/cosmount").arg("--version"));
    assert!(version.starts_with("cosmount "), "{version}");

    let mnt = h.path("mnt-deb");
    std::fs::create_dir_all(&mnt).unwrap();
    let guard = Unmounter(mnt.clone());
    let mut cmd = Command::new("mount");
    cmd.args(["-t", "fuse.cosmount"])
        .arg(&h.cos.bucket)
        .arg(&mnt)
        .arg("-o")
        .arg(options(&h, ""));
    bare_env(&mut cmd);
    let (code, out) = run_with_deadline(cmd, Duration::from_secs(60));
    assert_eq!(
        code,
        Some(0),
        "mount -t fuse.cosmount with the package: {out}"
    );
    let pid = find_daemon_pid(&mnt).expect("the daemon");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        PathBuf::from("/usr/bin/cosmount"),
        "the daemon is not the packaged binary"
    );
    std::fs::write(mnt.join("from-deb.txt"), b"packaged").unwrap();
    assert_eq!(
        std::fs::read(mnt.join("from-deb.txt")).unwrap(),
        b"packaged"
    );
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    drop(guard);

    run_ok(Command::new("dpkg").args(["--purge", "cosmount"]));
    let left: Vec<&String> = files
        .iter()
        .filter(|f| {
            let p = Path::new(f.as_str());
            // Shared directories (/usr/bin, /etc, ...) stay; the package's files must not.
            (p.symlink_metadata().is_ok() && !p.is_dir()) || (f.contains("cosmount") && p.exists())
        })
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
}

/// Every file (not directory) under `root`, as paths relative to it.
fn files_under(root: &Path) -> Vec<String> {
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                all.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    all
}

/// install.sh honours DESTDIR and PREFIX, writes nothing outside them, and --uninstall
/// removes what it installed.
#[test]
fn install_script_stays_inside_destdir_and_uninstalls() {
    let Some(_deb) = built_deb() else { return };
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("dest");
    let script = harness::repo_root().join("packaging/install.sh");
    let out = run_ok(
        Command::new("sh")
            .arg(&script)
            .arg("--prefix=/opt/cm")
            .env("DESTDIR", &dest),
    );
    let all = files_under(&dest);
    assert!(!all.is_empty(), "{out}");
    for f in &all {
        assert!(f.starts_with("opt/cm/"), "{f} is outside the prefix");
    }
    for want in [
        "opt/cm/bin/cosmount",
        "opt/cm/share/man/man8/cosmount.8.gz",
        "opt/cm/lib/systemd/system/cosmount@.service",
        "opt/cm/share/doc/cosmount/examples/logrotate.cosmount",
    ] {
        assert!(all.iter().any(|f| f == want), "{want} missing: {all:?}");
    }
    let unit =
        std::fs::read_to_string(dest.join("opt/cm/lib/systemd/system/cosmount@.service")).unwrap();
    assert!(unit.contains("ExecStart=/opt/cm/bin/cosmount "), "{unit}");
    run_ok(
        Command::new("sh")
            .arg(&script)
            .args(["--uninstall", "--prefix", "/opt/cm", "--destdir"])
            .arg(&dest),
    );
    let left = files_under(&dest);
    assert!(left.is_empty(), "files left after --uninstall: {left:?}");
}

/// The unprivileged user the non-root test mounts as (tests/pjdfstest.rs's user).
fn test_user() -> Option<(u32, u32)> {
    let out = Command::new("getent")
        .args(["passwd", "tests"])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let f: Vec<&str> = line.trim().split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// Restores /dev/fuse's mode when dropped.
struct DevFuseMode(u32);

impl Drop for DevFuseMode {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.0));
    }
}

/// Restores /etc/fuse.conf when dropped.
struct FuseConfGuard(Option<Vec<u8>>);

impl Drop for FuseConfGuard {
    fn drop(&mut self) {
        match &self.0 {
            Some(b) => {
                let _ = std::fs::write("/etc/fuse.conf", b);
            }
            None => {
                let _ = std::fs::remove_file("/etc/fuse.conf");
            }
        }
    }
}

/// A user without privileges mounts through the setuid fusermount3 (the daemon runs as
/// that user): the mount works for them and refuses everyone else, root included;
/// `allow_other` is refused with a message naming /etc/fuse.conf until
/// `user_allow_other` is there, and then lets others in.
#[test]
fn unprivileged_user_mounts_through_fusermount3() {
    use std::os::unix::fs::{chown, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let Some(h) = Harness::start("cli-nonroot") else {
        return;
    };
    let Some((uid, gid)) = test_user() else {
        harness::require("user tests (scripts/test.sh creates it)", false);
        return;
    };
    let _lock = SYSTEM_FILES.lock().unwrap_or_else(|e| e.into_inner());
    // The user's own directory: passwd file, staging, mount point; the CA file readable.
    let home = h.path("user-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&h.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let passwd = home.join("passwd-cosfs");
    write_private(
        &passwd,
        format!(
            "{}:{}:{}\n",
            h.cos.bucket, h.cos.secret_id, h.cos.secret_key
        )
        .as_bytes(),
    );
    let mnt = home.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    for p in [&home, &passwd, &mnt] {
        chown(p, Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(&h.cos.ca, std::fs::Permissions::from_mode(0o644)).unwrap();
    let opts = |extra: &str| {
        format!(
            "url={},passwd_file={},ca_file={},staging_dir={}{extra}",
            h.cos.endpoint,
            passwd.display(),
            h.cos.ca.display(),
            home.join("staging").display()
        )
    };
    let as_user = |extra: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cosmount"));
        c.arg(&h.cos.bucket)
            .arg(&mnt)
            .arg("-o")
            .arg(opts(extra))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("COSMOUNT_JOURNAL_SOCKET", "")
            .env("COSMOUNT_SYSLOG_SOCKET", "")
            // (std drops root's supplementary groups when it switches the uid.)
            .uid(uid)
            .gid(gid);
        c
    };
    let unmount = || {
        let _ = Command::new("fusermount3").arg("-u").arg(&mnt).status();
        harness::wait_until(Duration::from_secs(10), || !is_mounted(&mnt))
    };
    let _guard = Unmounter(mnt.clone());
    // Debian's udev makes /dev/fuse 0666 (fusermount3 opens it as the user); some
    // containers leave it 0600.
    let dev_mode = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
    let _dev = DevFuseMode(dev_mode);
    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
    let orig = std::fs::read("/etc/fuse.conf").ok();
    let _restore = FuseConfGuard(orig.clone());
    let without: String = String::from_utf8_lossy(orig.as_deref().unwrap_or(b""))
        .lines()
        .filter(|l| l.trim() != "user_allow_other")
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write("/etc/fuse.conf", &without).unwrap();

    // Plain: the user's mount, the user's files; root is kept out (FUSE's rule).
    let (code, out) = run_with_deadline(as_user(""), Duration::from_secs(60));
    assert_eq!(code, Some(0), "non-root mount failed: {out}");
    assert_eq!(mount_type(&mnt).as_deref(), Some("fuse.cosmount"));
    let pid = find_daemon_pid(&mnt).expect("daemon");
    let owner = std::fs::metadata(format!("/proc/{pid}")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&owner),
        uid,
        "the daemon runs as the user"
    );
    let file = mnt.join("users-file.txt");
    let mut w = Command::new("sh");
    w.arg("-c")
        .arg(format!(
            "echo mine > '{}' && cat '{}'",
            file.display(),
            file.display()
        ))
        .uid(uid)
        .gid(gid);
    assert_eq!(run_ok(&mut w), "mine\n");
    let denied = std::fs::metadata(&file).map(|_| ()).unwrap_err();
    assert_eq!(
        denied.raw_os_error(),
        Some(libc::EACCES),
        "root must be kept out"
    );
    assert!(unmount(), "fusermount3 -u");

    // allow_other without user_allow_other: refused, saying what to change.
    let (code, out) = run_with_deadline(as_user(",allow_other"), Duration::from_secs(60));
    assert_ne!(
        code,
        Some(0),
        "allow_other mounted without user_allow_other: {out}"
    );
    assert!(out.contains("user_allow_other"), "{out}");
    assert!(!is_mounted(&mnt));

    // With user_allow_other: others (root here) get in.
    std::fs::write("/etc/fuse.conf", format!("{without}user_allow_other\n")).unwrap();
    let (code, out) = run_with_deadline(as_user(",allow_other"), Duration::from_secs(60));
    assert_eq!(code, Some(0), "allow_other with user_allow_other: {out}");
    assert_eq!(std::fs::read(&file).unwrap(), b"mine\n");
    assert!(unmount(), "fusermount3 -u");
}

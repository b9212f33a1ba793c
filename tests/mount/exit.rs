//! How a mount daemon ends: a daemon whose mount was taken away without its help (here
//! `fusermount3 -u` while the daemon was stopped) must not, on its way out, unmount
//! whatever is mounted at the same path by then. fuser unmounts by path when its session
//! is dropped, so without care the old daemon removes the new mount and later writes land
//! in the local directory underneath.

use crate::harness::mount::{answers, is_mounted};
use crate::harness::{wait_until, Harness, MountOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// "major:minor" of the topmost mount at `path`, from /proc/self/mountinfo.
fn device_at(path: &Path) -> Option<String> {
    let want = path.to_string_lossy().replace(' ', "\\040");
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&want.as_str())).then(|| f[2].to_string())
    })
}

/// The one-letter state of a process (R, S, T, ...), from /proc/PID/stat.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Runs `cmd` with a deadline; returns whether it exited 0, or panics on timeout.
fn succeeds_within(mut cmd: Command, deadline: Duration) -> bool {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st.success();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A foreground cosmount the test starts itself (the harness never reuses a mount point,
/// and this one must go where the first mount was). Unmounted and reaped on drop.
struct Daemon {
    child: Child,
    mountpoint: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if is_mounted(&self.mountpoint) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mountpoint)
                .stderr(Stdio::null())
                .status();
        }
        let end = Instant::now() + Duration::from_secs(30);
        while self.running() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if is_mounted(&self.mountpoint) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

#[test]
fn stale_daemon_leaves_the_next_mount_alone() {
    let Some(h) = Harness::start("exit-stale") else {
        return;
    };
    // Declared before B so that it is dropped after B: its clean-up unmounts by path.
    let mut a = h.mount(MountOptions::default());
    let mnt = a.mountpoint.clone();
    let a_pid = a.pid.expect("foreground daemon pid");

    // A stops; its mount is taken away without its help.
    a.signal(libc::SIGSTOP);
    assert!(
        wait_until(Duration::from_secs(10), || process_state(a_pid)
            == Some('T')),
        "daemon A ({a_pid}) did not stop"
    );
    let mut unmount = Command::new("fusermount3");
    unmount.arg("-u").arg(&mnt);
    assert!(
        succeeds_within(unmount, Duration::from_secs(20)),
        "fusermount3 -u of the stopped daemon's mount failed"
    );
    assert!(!is_mounted(&mnt), "{} still mounted", mnt.display());

    // B mounts the same bucket on the same path, with its own staging directory.
    let b_log = h.path("cosmount-b.log");
    let log = std::fs::File::create(&b_log).expect("log B");
    let child = Command::new(env!("CARGO_BIN_EXE_cosmount"))
        .arg(a.source())
        .arg(&mnt)
        .arg("-f")
        .arg("-o")
        .arg(format!(
            "{},staging_dir={}",
            a.option_string(),
            h.path("staging-b").display()
        ))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log)
        .spawn()
        .expect("spawn cosmount B");
    h.pids.lock().unwrap().push(child.id());
    let mut b = Daemon {
        child,
        mountpoint: mnt.clone(),
        log: b_log,
    };
    assert!(
        wait_until(Duration::from_secs(30), || is_mounted(&mnt) || !b.running()),
        "B did not mount"
    );
    assert!(
        is_mounted(&mnt) && answers(&mnt, Duration::from_secs(20)),
        "B is not mounted and serving; log:\n{}",
        b.log_text()
    );
    let b_dev = device_at(&mnt).expect("B's device in mountinfo");

    // A resumes, finds its connection gone and exits.
    a.signal(libc::SIGCONT);
    let a_status = a.wait_exit(Duration::from_secs(30));
    assert!(
        a_status.is_some(),
        "daemon A did not exit after SIGCONT; log:\n{}",
        a.log_text()
    );

    // B is untouched: still mounted, still the same mount, still serving.
    let now = device_at(&mnt);
    assert!(
        now.as_deref() == Some(b_dev.as_str()),
        "daemon A's exit removed the mount at {} (device now {now:?}, B's was {b_dev})\n\
         A's log:\n{}\nB's log:\n{}",
        mnt.display(),
        a.log_text(),
        b.log_text()
    );
    assert!(b.running(), "daemon B exited; log:\n{}", b.log_text());
    assert!(
        answers(&mnt, Duration::from_secs(10)),
        "B no longer answers; log:\n{}",
        b.log_text()
    );

    // A file written now goes through B into the bucket, not into the directory below.
    let name = "written-after-a-exited.txt";
    std::fs::write(mnt.join(name), b"through B").expect("write through B");
    let uploaded = wait_until(Duration::from_secs(15), || {
        h.cos
            .requests()
            .iter()
            .any(|e| e.op == "PutObject" && e.key.ends_with(name) && e.status == 200)
    });
    assert!(
        uploaded,
        "no PutObject of {name} reached the bucket; B's log:\n{}",
        b.log_text()
    );
    assert_eq!(
        std::fs::read(mnt.join(name)).expect("read back"),
        b"through B"
    );

    let mut unmount = Command::new("fusermount3");
    unmount.arg("-u").arg(&mnt);
    assert!(
        succeeds_within(unmount, Duration::from_secs(20)),
        "unmount B"
    );
    assert!(
        !mnt.join(name).exists(),
        "{name} is in the local directory under the mount point"
    );
    drop(b);
}

/// The other half of the rule: after SIGTERM the daemon unmounts only its own mount. With
/// another file system stacked on top of it at the same path, the daemon leaves that one
/// alone (and says so); once it is gone, the next SIGTERM unmounts the daemon's mount and
/// the daemon exits cleanly.
#[test]
fn sigterm_leaves_a_mount_stacked_on_top_alone() {
    let Some(h) = Harness::start("exit-stacked") else {
        return;
    };
    let mut a = h.mount(MountOptions::default().opt("dbglevel=info"));
    let mnt = a.mountpoint.clone();
    let a_dev = device_at(&mnt).expect("A's device");
    let mut tmpfs = Command::new("mount");
    tmpfs
        .args(["-t", "tmpfs", "-o", "size=1m", "cosmount-test"])
        .arg(&mnt);
    assert!(
        succeeds_within(tmpfs, Duration::from_secs(20)),
        "mount tmpfs on top"
    );
    let top = device_at(&mnt).expect("tmpfs device");
    assert_ne!(top, a_dev);

    a.signal(libc::SIGTERM);
    let skipped = wait_until(Duration::from_secs(20), || {
        a.log_text().contains("not unmounting")
    });
    let now = device_at(&mnt);
    // Take the tmpfs away before asserting, so a failure leaves nothing stacked behind.
    let mut umount = Command::new("umount");
    umount.arg(&mnt);
    let removed =
        now.as_deref() == Some(top.as_str()) && succeeds_within(umount, Duration::from_secs(20));
    assert!(
        skipped && removed,
        "after SIGTERM the daemon unmounted what was on top of its mount (skip logged: \
         {skipped}, device at the path now {now:?}, tmpfs was {top}); log:\n{}",
        a.log_text()
    );
    assert_eq!(device_at(&mnt).as_deref(), Some(a_dev.as_str()));

    a.signal(libc::SIGTERM);
    let status = a.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "the daemon did not exit cleanly after the second SIGTERM: {status:?}; log:\n{}",
        a.log_text()
    );
    assert!(!is_mounted(&mnt), "the daemon's own mount is still there");
}

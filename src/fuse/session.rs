//! The FUSE session around the adapter: `serve` mounts (options, access, worker threads),
//! raises the kernel read-ahead, handles SIGTERM/SIGINT (flush, then unmount), and on the
//! way out flushes what is pending. It unmounts only the mount it made: the device number
//! recorded at mount time and a live connection are checked first (`OwnMount`).

use super::adapter::CosFuse;
use super::lazy_unmount;
use crate::cos::ObjectClient;
use crate::fs::CosFs;
use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};
use rustix::event::{PollFd, PollFlags};
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The file-system subtype: mounts show in /proc/mounts as `fuse.cosmount`, so
/// `findmnt -t fuse.cosmount` and monitoring that selects by type find them.
pub const FS_SUBTYPE: &str = "cosmount";

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub mountpoint: PathBuf,
    /// Source shown in mtab, e.g. "cosmount:bucket-appid".
    pub fsname: String,
    pub allow_other: bool,
    pub read_only: bool,
    /// FUSE worker threads.
    pub threads: usize,
    pub auto_unmount: bool,
}

/// Kernel read-ahead for this mount, in KiB. FUSE negotiates at most the kernel's
/// default (128 KiB) at init, which splits sequential reads into many small requests;
/// the mount's BDI setting can be raised afterwards (root only; best effort).
const READ_AHEAD_KB: u32 = 1024;

/// `device` is the mount's "major:minor", found in /proc/self/mountinfo: a stat() of the
/// mountpoint would be a FUSE request to this very process before it serves any.
fn raise_readahead(device: &str) {
    let path = format!("/sys/class/bdi/{device}/read_ahead_kb");
    match std::fs::write(&path, READ_AHEAD_KB.to_string()) {
        Ok(()) => tracing::debug!(path, kb = READ_AHEAD_KB, "raised kernel read-ahead"),
        Err(e) => tracing::debug!(path, error = %e, "kernel read-ahead left at its default"),
    }
}

/// "major:minor" of the file system mounted at `mountpoint` (the topmost such mount).
fn mount_device(mountpoint: &Path) -> Option<String> {
    let want = std::fs::canonicalize(mountpoint.parent()?)
        .ok()?
        .join(mountpoint.file_name()?);
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    device_in_mountinfo(&info, &want)
}

/// The device of the last (topmost) mount at `path` in a mountinfo text.
fn device_in_mountinfo(info: &str, path: &Path) -> Option<String> {
    info.lines().rev().find_map(|l| {
        // Fields: id parent major:minor root mountpoint ...
        let f: Vec<&str> = l.split(' ').collect();
        let mp = unescape_mountinfo(f.get(4)?);
        (mp.as_slice() == path.as_os_str().as_bytes()).then(|| f.get(2).map(|s| s.to_string()))?
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |c: &u8| (b'0'..=b'7').contains(c);
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(octal) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The mount this process made, told apart from whatever else is (or will be) mounted at
/// the same path: the device number of its superblock, and a descriptor of its FUSE
/// connection. The device alone is not enough: anonymous device numbers are reused
/// lowest-first, so a mount made after ours was removed often gets our number. While our
/// connection is alive our superblock exists and holds its number, so then a mount at
/// the path with that number can only be ours.
struct OwnMount {
    path: PathBuf,
    device: String,
    connection: OwnedFd,
}

impl OwnMount {
    /// Whether the kernel has ended our FUSE connection: the file system was unmounted
    /// (by anyone) or its connection aborted. poll() then reports POLLERR on the device.
    fn connection_ended(&self) -> bool {
        let mut fds = [PollFd::new(&self.connection, PollFlags::empty())];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            match rustix::event::poll(&mut fds, Some(&zero)) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return false,
                Ok(n) => {
                    let ended = PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL;
                    return n == 1 && fds[0].revents().intersects(ended);
                }
            }
        }
    }

    /// Why the mount now at our path is not ours, or `None` when it is.
    fn not_ours(&self) -> Option<String> {
        if self.connection_ended() {
            return Some("the kernel has ended this daemon's FUSE connection".to_string());
        }
        match mount_device(&self.path) {
            Some(d) if d == self.device => None,
            Some(d) => Some(format!(
                "the mount there has device {d}, this daemon's has {}",
                self.device
            )),
            None => Some("nothing is mounted there any more".to_string()),
        }
    }

    /// Unmounts our mount, plainly or (when busy) lazily; does nothing, with an info log,
    /// when the mount at the path is not ours. A mount made in the instant between the
    /// check and the unmount could still be hit; the window is a few system calls.
    fn unmount(&self) -> std::io::Result<()> {
        if let Some(why) = self.not_ours() {
            tracing::info!(
                mountpoint = %self.path.display(),
                reason = %why,
                "not unmounting: the mount at the mount point is not this daemon's"
            );
            return Ok(());
        }
        lazy_unmount::unmount(&self.path)
    }
}

/// Waits for the background session to end and returns how it ended.
fn join_session(session: BackgroundSession) -> std::io::Result<()> {
    // fuser's `BackgroundSession` owns the `Mount`, whose drop unmounts by path, whatever
    // is mounted there by then (its "still mounted?" check passes for an ended
    // connection), and `join()` consumes the session and so drops it. The session is
    // therefore never dropped: only its public join handle is moved out.
    let session = ManuallyDrop::new(session);
    // SAFETY: `session` is never dropped nor used again, so the handle is moved out once
    // and dropped once (by `join`); the rest of the session leaks until the process ends.
    let guard = unsafe { std::ptr::read(&session.guard) };
    guard
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the FUSE session thread panicked")))
}

/// Mounts `fs` (the mount is live when `Session::new` returns), calls `on_ready`, serves
/// until the mount is unmounted (umount, fusermount -u) or SIGTERM/SIGINT arrive (which
/// unmount), then flushes pending uploads. Err if mounting failed or the final flush did.
///
/// The unmount rule: this process only ever unmounts its own mount. fuser would unmount
/// by path when its session ends; the path may by then hold someone else's mount (ours
/// was unmounted while this daemon was stopped, and another mounted there). So:
/// - when the session ends because the kernel ended the connection (unmounted by anyone,
///   or aborted), nothing is unmounted: our mount is gone already;
/// - when we unmount (after SIGTERM/SIGINT, or when the session fails while still
///   connected), we first check that our connection is alive and that the topmost mount
///   at the path has the device number recorded right after mounting; if not, the
///   unmount is skipped with an info log.
pub fn serve<C: ObjectClient>(
    fs: CosFs<C>,
    opts: &MountOptions,
    on_ready: Box<dyn FnOnce() + Send>,
) -> std::io::Result<()> {
    let rt = fs.runtime();
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::FSName(opts.fsname.clone()),
        // The subtype goes to the kernel as a mount option, not as fuser's `Subtype`:
        // fuser's own mount(2) path drops that one and /proc/mounts would say `fuse`.
        // As an option it gives `fuse.cosmount` both from mount(2) and from fusermount3.
        MountOption::CUSTOM(format!("subtype={FS_SUBTYPE}")),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if opts.read_only {
        cfg.mount_options.push(MountOption::RO);
    }
    if opts.auto_unmount {
        cfg.mount_options.push(MountOption::AutoUnmount);
    }
    cfg.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let threads = opts.threads.max(1);
    cfg.n_threads = Some(threads);
    cfg.clone_fd = threads > 1 && cfg!(target_os = "linux");
    let adapter = CosFuse::new(fs.clone(), rt.clone());
    // Until `spawn` below, an early return drops `session`, which unmounts by path: the
    // mount was made a moment ago and has served nothing, so the path still holds it.
    let session = Session::new(adapter, &opts.mountpoint, &cfg)?;
    let connection = session.as_fd().try_clone_to_owned()?;
    let Some(device) = mount_device(&opts.mountpoint) else {
        return Err(std::io::Error::other(format!(
            "mounted {} but cannot find the mount in /proc/self/mountinfo; unmounted it again",
            opts.mountpoint.display()
        )));
    };
    raise_readahead(&device);
    let own = Arc::new(OwnMount {
        path: opts.mountpoint.clone(),
        device,
        connection,
    });
    let session = session.spawn()?;
    let fs_sig = fs.clone();
    let own_sig = own.clone();
    let stopped_by_signal = Arc::new(AtomicBool::new(false));
    let stopped = stopped_by_signal.clone();
    let signals = rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("could not install SIGTERM/SIGINT handlers");
            return;
        };
        // Every signal is handled, not just the first: when the mount at the path was not
        // ours (another one stacked on top), a later signal, once that one is gone, must
        // still stop the daemon.
        loop {
            let which = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                else => return,
            };
            // Upload what is pending first: a busy mount is only detached lazily and may
            // be served a while longer, but acknowledged data must reach the bucket now.
            tracing::info!(signal = which, "flushing pending uploads, then unmounting");
            stopped.store(true, Ordering::SeqCst);
            if let Err(e) = fs_sig.flush_all().await {
                tracing::error!(error = %e, "pending uploads failed");
            }
            let own = own_sig.clone();
            match tokio::task::spawn_blocking(move || own.unmount()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "unmount after signal failed"),
                Err(e) => tracing::error!(error = %e, "unmount task failed"),
            }
        }
    });
    on_ready();
    let served = match join_session(session) {
        // A lazily detached mount ends with the connection aborted once its last file is
        // closed: after a signal that is the expected end, not a failure.
        Err(e)
            if stopped_by_signal.load(Ordering::SeqCst)
                && e.raw_os_error() == Some(libc::ECONNABORTED) =>
        {
            Ok(())
        }
        Err(e) => {
            // The session failed on its own; if the kernel still connects us to a mount
            // at the path, that mount is ours and would be left dead: remove it.
            tracing::error!(error = %e, "FUSE session failed");
            if let Err(u) = own.unmount() {
                tracing::error!(error = %u, "unmount after the session failed did not work");
            }
            Err(e)
        }
        Ok(()) => Ok(()),
    };
    signals.abort();
    let flushed = rt.block_on(fs.flush_all());
    served?;
    flushed.map_err(|e| std::io::Error::other(format!("pending uploads failed at unmount: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topmost_mount_at_a_path_with_escapes() {
        let info = "22 1 0:21 / / rw - overlay overlay rw\n\
                    31 22 0:41 / /mnt/my\\040dir rw - fuse.cosmount b rw\n\
                    32 22 0:50 / /mnt/other rw - tmpfs t rw\n\
                    33 31 0:42 / /mnt/my\\040dir rw - fuse.cosmount b rw\n\
                    34 22 0:43 / /mnt/back\\134slash\\011tab rw - fuse x rw\n";
        let dev = |p: &str| device_in_mountinfo(info, Path::new(p));
        assert_eq!(dev("/mnt/my dir").as_deref(), Some("0:42"));
        assert_eq!(dev("/mnt/back\\slash\ttab").as_deref(), Some("0:43"));
        assert_eq!(dev("/"), Some("0:21".to_string()));
        assert_eq!(dev("/mnt/my\\040dir"), None);
        assert_eq!(dev("/mnt"), None);
    }

    /// A pipe stands in for the FUSE connection: poll() reports POLLHUP on its read end
    /// once the write end is closed, as it reports POLLERR on an ended FUSE connection.
    #[test]
    fn own_mount_requires_a_live_connection_and_the_recorded_device() {
        let (read, write) = rustix::pipe::pipe().expect("pipe");
        let root = mount_device(Path::new("/proc")).expect("/proc is a mount");
        let own = OwnMount {
            path: PathBuf::from("/proc"),
            device: root.clone(),
            connection: read,
        };
        assert_eq!(own.not_ours(), None);
        let other = OwnMount {
            path: PathBuf::from("/proc"),
            device: "4095:1048575".to_string(),
            connection: own.connection.try_clone().expect("dup"),
        };
        assert!(other.not_ours().is_some_and(|w| w.contains(&root)));
        let gone = OwnMount {
            path: PathBuf::from("/definitely/not/a/mount"),
            device: root,
            connection: own.connection.try_clone().expect("dup"),
        };
        assert!(gone
            .not_ours()
            .is_some_and(|w| w.contains("nothing is mounted")));
        drop(write);
        assert!(own.not_ours().is_some_and(|w| w.contains("ended")));
    }

    #[test]
    fn mount_device_is_found_without_touching_the_mount() {
        // The root file system is always in mountinfo.
        assert!(mount_device(Path::new("/proc")).is_some());
        assert!(mount_device(Path::new("/definitely/not/a/mount")).is_none());
    }
}

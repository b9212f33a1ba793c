//! Unmounting the daemon's own mount by path, plainly or, when busy, lazily.
//!
//! A plain unmount fails with EBUSY while a program still has a file open on the mount.
//! After SIGTERM the daemon has already uploaded everything pending, so it detaches the
//! mount lazily instead: the mount point disappears from the namespace at once, programs
//! holding files keep being served until they close them, and the session ends (and the
//! daemon exits) when the last one does. Without this the daemon would keep running
//! after SIGTERM with the mount still attached. Whether the mount at the path is still
//! the daemon's own is the caller's check (`serve`): these functions act on whatever is
//! mounted there.

use rustix::mount::UnmountFlags;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `helper ARGS -- MOUNTPOINT` for the first of fusermount3/fusermount that
/// succeeds (the setuid helpers are how a non-root daemon unmounts).
fn fusermount(args: &[&str], mountpoint: &Path) -> bool {
    ["fusermount3", "fusermount"].iter().any(|helper| {
        let status = Command::new(helper)
            .args(args)
            .arg("--")
            .arg(mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        matches!(status, Ok(s) if s.success())
    })
}

/// Unmounts `mountpoint`: `umount2` when privileged, else `fusermount3 -u`; a busy mount
/// (or one neither could unmount) is detached lazily with [`detach`].
pub fn unmount(mountpoint: &Path) -> io::Result<()> {
    // NOFOLLOW: a symlink planted at the path must not redirect the unmount.
    let direct = match rustix::mount::unmount(mountpoint, UnmountFlags::NOFOLLOW) {
        Ok(()) => return Ok(()),
        Err(e) => io::Error::from(e),
    };
    if direct.raw_os_error() == Some(libc::EPERM) && fusermount(&["-u"], mountpoint) {
        return Ok(());
    }
    detach(mountpoint)
}

/// Lazily unmounts `mountpoint`: `umount2(MNT_DETACH)` when privileged, else
/// `fusermount3 -u -z` (then `fusermount -u -z`).
pub fn detach(mountpoint: &Path) -> io::Result<()> {
    let flags = UnmountFlags::DETACH | UnmountFlags::NOFOLLOW;
    let direct = match rustix::mount::unmount(mountpoint, flags) {
        Ok(()) => return Ok(()),
        Err(e) => io::Error::from(e),
    };
    if fusermount(&["-u", "-z"], mountpoint) {
        return Ok(());
    }
    Err(direct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detaching_something_that_is_not_a_mount_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(detach(dir.path()).is_err());
    }

    #[test]
    fn unmounting_something_that_is_not_a_mount_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(unmount(dir.path()).is_err());
    }
}

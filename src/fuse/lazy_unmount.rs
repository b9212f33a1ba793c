//! Detaching a busy mount after SIGTERM.
//!
//! A plain unmount fails with EBUSY while a program still has a file open on the mount.
//! After SIGTERM the daemon has already uploaded everything pending, so it detaches the
//! mount lazily instead: the mount point disappears from the namespace at once, programs
//! holding files keep being served until they close them, and the session ends (and the
//! daemon exits) when the last one does. Without this the daemon would keep running
//! after SIGTERM with the mount still attached.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Lazily unmounts `mountpoint`: `umount2(MNT_DETACH)` when privileged, else
/// `fusermount3 -u -z` (then `fusermount -u -z`).
pub fn detach(mountpoint: &Path) -> io::Result<()> {
    let c = CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mount point has a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let direct = io::Error::last_os_error();
    for helper in ["fusermount3", "fusermount"] {
        let status = Command::new(helper)
            .args(["-u", "-z", "--"])
            .arg(mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if matches!(status, Ok(s) if s.success()) {
            return Ok(());
        }
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
}

//! Mountpoint checks done before forking, so the user sees a clear reason: the path
//! must exist and be a directory, must not be a dead FUSE mount ("Transport endpoint is
//! not connected"), and must not already carry a FUSE filesystem. The path is made
//! absolute, since the daemon changes directory to `/`.

use super::error::CliError;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Validates the mountpoint and returns its canonical absolute path.
pub fn check_mountpoint(arg: &OsStr) -> Result<PathBuf, CliError> {
    let p = Path::new(arg);
    let shown = p.display();
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(CliError::usage(format!(
                "mountpoint {shown} is not a directory"
            )))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Err(dead_mount(&shown)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::usage(format!(
                "mountpoint {shown} does not exist (create it with: mkdir -p {shown})"
            )))
        }
        Err(e) => return Err(CliError::usage(format!("mountpoint {shown}: {e}"))),
    }
    let canon = std::fs::canonicalize(p)
        .map_err(|e| CliError::usage(format!("mountpoint {shown}: {e}")))?;
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        if let Some((fstype, source)) = fuse_mount_at(&info, &canon) {
            // stat may still answer from cached attributes; listing reaches the daemon.
            if let Err(e) = std::fs::read_dir(&canon) {
                if e.raw_os_error() == Some(libc::ENOTCONN) {
                    return Err(dead_mount(&canon.display()));
                }
            }
            return Err(CliError::mount(format!(
                "mountpoint {} is busy: {source} ({fstype}) is already mounted there; \
                 unmount it first (umount {})",
                canon.display(),
                canon.display()
            )));
        }
    }
    Ok(canon)
}

fn dead_mount(shown: &dyn std::fmt::Display) -> CliError {
    CliError::mount(format!(
        "mountpoint {shown} is a dead FUSE mount (transport endpoint is not connected: its \
         daemon died); clean it up with: fusermount3 -u {shown}  (or umount -l {shown})"
    ))
}

/// The (fstype, source) of the topmost FUSE mount exactly at `path`, if any.
pub fn fuse_mount_at(mountinfo: &str, path: &Path) -> Option<(String, String)> {
    let want = path.to_str()?;
    let mut found = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source superopts
        let (left, right) = line.split_once(" - ")?;
        let mountpoint = left.split(' ').nth(4)?;
        if unescape(mountpoint) != want {
            continue;
        }
        let mut r = right.split(' ');
        let fstype = r.next()?.to_string();
        let source = unescape(r.next().unwrap_or(""));
        // Later lines are mounted on top of earlier ones.
        found = Some((fstype, source));
    }
    found.filter(|(t, _)| t == "fuse" || t.starts_with("fuse."))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::ExitCode;

    const INFO: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw
30 22 0:40 / /mnt/a rw,relatime - tmpfs tmpfs rw
31 22 0:41 / /mnt/my\\040dir rw,nosuid,nodev - fuse.cosmount bkt-1:/p rw,user_id=0
32 30 0:42 / /mnt/a rw,nosuid,nodev - fuse.cosmount bkt-2 rw,user_id=0
";

    #[test]
    fn finds_fuse_mounts_only() {
        assert_eq!(fuse_mount_at(INFO, Path::new("/")), None);
        assert_eq!(
            fuse_mount_at(INFO, Path::new("/mnt/my dir")),
            Some(("fuse.cosmount".into(), "bkt-1:/p".into()))
        );
        assert_eq!(
            fuse_mount_at(INFO, Path::new("/mnt/a")),
            Some(("fuse.cosmount".into(), "bkt-2".into()))
        );
        assert_eq!(fuse_mount_at(INFO, Path::new("/mnt")), None);
    }

    #[test]
    fn missing_and_not_dir() {
        let d = tempfile::tempdir().expect("tempdir");
        let e = check_mountpoint(d.path().join("nope").as_os_str()).unwrap_err();
        assert_eq!(e.code, ExitCode::Usage);
        assert!(e.message.contains("does not exist"));
        let f = d.path().join("file");
        std::fs::write(&f, "x").expect("write");
        let e = check_mountpoint(f.as_os_str()).unwrap_err();
        assert!(e.message.contains("not a directory"));
        let ok = check_mountpoint(d.path().as_os_str()).expect("dir ok");
        assert!(ok.is_absolute());
    }
}

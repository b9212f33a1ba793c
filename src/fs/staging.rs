//! The staging area: local files holding the whole content of files being edited, in a
//! directory nobody else can touch, within a free-space floor and a file-descriptor budget.
//!
//! Staging files hold plaintext of possibly SSE-C-encrypted objects, so:
//! - The directory is private. Without `staging_dir=` the daemon makes a fresh one
//!   (mode 0700, random name, created only if new) under `$TMPDIR` and removes it at
//!   exit. A configured directory is created 0700 if missing; an existing one must be a real
//!   directory (not a symlink) owned by the daemon's user with no group or other
//!   permissions, or the mount is refused with a message saying how to fix it.
//! - Files have no name: `O_TMPFILE` where the file system supports it, else a random
//!   128-bit name created exclusively with mode 0600 and unlinked at once. Either way the
//!   space returns to the file system when the daemon dies.
//! - Every file keeps one descriptor open; descriptors come from a budget fixed at start
//!   (`max_staging_files`), and a write that would need one more fails cleanly with
//!   TooManyFiles (EMFILE) instead of the process running out of descriptors.
//! - Writes that would leave less than `staging_min_free` free on that file system fail
//!   with NoSpace (ENOSPC) instead of filling the disk.

use super::error::{fs_err, FsError, FsErrorKind};
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Free bytes of the file system holding a path (injectable for tests).
pub type FreeSpaceProbe = Arc<dyn Fn(&Path) -> io::Result<u64> + Send + Sync>;

/// `statvfs` of the path: bytes available to unprivileged users.
pub fn statvfs_free(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The staging directory of a mount and its limits.
pub struct StagingArea {
    dir: PathBuf,
    /// The directory was made by us (`fresh_private_dir`) and is removed when the area is dropped.
    owned: bool,
    min_free: u64,
    probe: parking_lot::RwLock<FreeSpaceProbe>,
    fds: Arc<Semaphore>,
    max_files: usize,
}

impl std::fmt::Debug for StagingArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagingArea")
            .field("dir", &self.dir)
            .field("min_free", &self.min_free)
            .field("max_files", &self.max_files)
            .finish_non_exhaustive()
    }
}

impl StagingArea {
    /// Opens the staging area: `dir` checked (or created) private, or a fresh private
    /// directory under `$TMPDIR` when `None`. Errors say what is wrong and how to fix it.
    pub fn open(dir: Option<&Path>, min_free: u64, max_files: usize) -> io::Result<StagingArea> {
        let (dir, owned) = match dir {
            Some(d) => (private_dir(d)?, false),
            None => (fresh_private_dir(&std::env::temp_dir())?, true),
        };
        Ok(StagingArea {
            dir,
            owned,
            min_free,
            probe: parking_lot::RwLock::new(Arc::new(statvfs_free)),
            fds: Arc::new(Semaphore::new(max_files.max(1))),
            max_files: max_files.max(1),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the free-space check (tests simulate a full disk).
    pub fn set_probe(&self, probe: FreeSpaceProbe) {
        *self.probe.write() = probe;
    }

    /// Staging files open now.
    pub fn files_open(&self) -> usize {
        self.max_files - self.fds.available_permits()
    }

    /// Fails with NoSpace unless `extra` more bytes leave `min_free` free.
    pub fn check_space(&self, extra: u64) -> Result<(), FsError> {
        let probe = self.probe.read().clone();
        let free = probe(&self.dir)?;
        if free < extra.saturating_add(self.min_free) {
            return Err(fs_err(
                FsErrorKind::NoSpace,
                format!(
                    "staging area {} has {free} bytes free; {extra} more would go below the \
                     staging_min_free floor of {} bytes",
                    self.dir.display(),
                    self.min_free
                ),
            ));
        }
        Ok(())
    }

    /// A new, empty, nameless staging file.
    pub fn new_file(&self) -> Result<Staging, FsError> {
        let permit = self.fds.clone().try_acquire_owned().map_err(|_| {
            fs_err(
                FsErrorKind::TooManyFiles,
                format!(
                    "all {} staging file descriptors are in use (files being edited at once); \
                     close some files or raise the daemon's RLIMIT_NOFILE",
                    self.max_files
                ),
            )
        })?;
        let file = match open_tmpfile(&self.dir) {
            Ok(f) => f,
            // The file system has no O_TMPFILE: a random name, unlinked at once.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                open_random_unlinked(&self.dir)?
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Staging {
            file,
            size: 0,
            dirty: false,
            _fd: permit,
        })
    }
}

impl Drop for StagingArea {
    fn drop(&mut self) {
        if self.owned {
            // Empty: its files never had names (or lost them at once).
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

fn open_tmpfile(dir: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .mode(0o600)
        .open(dir)
}

fn open_random_unlinked(dir: &Path) -> io::Result<File> {
    for _ in 0..8 {
        let path = dir.join(format!("stage-{:032x}", rand::random::<u128>()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free random staging file name after 8 tries",
    ))
}

/// Creates a fresh 0700 directory with an unpredictable name under `parent` (as
/// mkdtemp does: the name is random and the creation fails if it exists).
fn fresh_private_dir(parent: &Path) -> io::Result<PathBuf> {
    let mut last = None;
    for _ in 0..8 {
        let dir = parent.join(format!("cosmount-staging-{:016x}", rand::random::<u64>()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    let e = last.unwrap_or_else(|| io::Error::other("no attempt made"));
    Err(io::Error::new(
        e.kind(),
        format!(
            "cannot create a private staging directory in {}: {e} (set TMPDIR or \
             staging_dir=)",
            parent.display()
        ),
    ))
}

/// Checks (or creates) a configured staging directory: a real directory, ours, private.
fn private_dir(dir: &Path) -> io::Result<PathBuf> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot create staging_dir {}: {e}", dir.display()),
            ))
        }
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let me = rustix::process::geteuid().as_raw();
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "staging_dir {} {why}; staging files hold decrypted file contents, so it must \
                 be a directory owned by uid {me} with mode 0700 (fix: chown {me} {0} && chmod \
                 700 {0}, or choose another staging_dir=)",
                dir.display()
            ),
        ))
    };
    if !meta.file_type().is_dir() {
        return refuse("is not a directory (or is a symlink)".into());
    }
    if meta.uid() != me {
        return refuse(format!("is owned by uid {}", meta.uid()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return refuse(format!("has mode {mode:04o}"));
    }
    Ok(dir.to_path_buf())
}

/// A local file holding the whole content of a file being edited. Its descriptor is
/// counted against the staging area's budget until it is dropped.
pub struct Staging {
    pub file: File,
    pub size: u64,
    /// Changed since the last upload.
    pub dirty: bool,
    _fd: OwnedSemaphorePermit,
}

impl Staging {
    pub fn read(&self, offset: u64, len: u32) -> Result<bytes::Bytes, FsError> {
        if offset >= self.size {
            return Ok(bytes::Bytes::new());
        }
        let n = u64::from(len).min(self.size - offset) as usize;
        let mut buf = vec![0u8; n];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(bytes::Bytes::from(buf))
    }

    pub fn write(&mut self, area: &StagingArea, offset: u64, data: &[u8]) -> Result<(), FsError> {
        let end = offset + data.len() as u64;
        if end > self.size {
            area.check_space(end - self.size)?;
        }
        self.file.write_all_at(data, offset)?;
        self.size = self.size.max(end);
        self.dirty = true;
        Ok(())
    }

    pub fn truncate(&mut self, area: &StagingArea, size: u64) -> Result<(), FsError> {
        if size > self.size {
            area.check_space(size - self.size)?;
        }
        self.file.set_len(size)?;
        self.size = size;
        self.dirty = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_area_is_a_fresh_private_directory_removed_at_the_end() {
        let a = StagingArea::open(None, 0, 4).unwrap();
        let dir = a.dir().to_path_buf();
        let m = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
        let b = StagingArea::open(None, 0, 4).unwrap();
        assert_ne!(a.dir(), b.dir(), "names are unpredictable");
        let mut f = a.new_file().unwrap();
        f.write(&a, 0, b"secret").unwrap();
        // Nameless: nothing appears in the directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(&f.read(0, 100).unwrap()[..], b"secret");
        drop(f);
        drop(a);
        assert!(!dir.exists());
    }

    #[test]
    fn configured_directories_must_be_private_and_ours() {
        let t = tempfile::tempdir().unwrap();
        let fresh = t.path().join("a/b/staging");
        let a = StagingArea::open(Some(&fresh), 0, 4).unwrap();
        let m = std::fs::metadata(&fresh).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
        drop(a);
        assert!(fresh.exists(), "a configured directory is not removed");

        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = StagingArea::open(Some(&open), 0, 4).unwrap_err();
        assert!(e.to_string().contains("mode 1777"), "{e}");
        assert!(e.to_string().contains("chmod 700"), "{e}");

        let link = t.path().join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        let e = StagingArea::open(Some(&link), 0, 4).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");

        if rustix::process::geteuid().is_root() {
            let theirs = t.path().join("theirs");
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&theirs)
                .unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
            let e = StagingArea::open(Some(&theirs), 0, 4).unwrap_err();
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        }
    }

    #[test]
    fn descriptors_are_budgeted() {
        let a = StagingArea::open(None, 0, 2).unwrap();
        let f1 = a.new_file().unwrap();
        let _f2 = a.new_file().unwrap();
        let e = a.new_file().err().expect("third file refused");
        assert_eq!(e.kind, FsErrorKind::TooManyFiles);
        assert_eq!(a.files_open(), 2);
        drop(f1);
        assert!(a.new_file().is_ok());
    }

    #[test]
    fn the_free_space_floor_gives_no_space() {
        let a = StagingArea::open(None, 1000, 2).unwrap();
        a.set_probe(Arc::new(|_| Ok(1300)));
        let mut f = a.new_file().unwrap();
        f.write(&a, 0, &[1u8; 200]).unwrap();
        let e = f.write(&a, 200, &[1u8; 400]).unwrap_err();
        assert_eq!(e.kind, FsErrorKind::NoSpace);
        // Overwriting within the size needs no space.
        f.write(&a, 0, &[2u8; 200]).unwrap();
    }
}

//! `FsError`: what a filesystem operation can end in, as a kind plus a message.
//!
//! The core never picks an errno: it says *what* went wrong (`FsErrorKind`), and the FUSE
//! edge maps each kind to an errno in one exhaustive match (`fuse::errno_of`). COS
//! failures keep their `CosErrorKind`, so the edge can, for example, answer ESTALE for a
//! precondition failure and log the SSE-C case distinctly.

use crate::cos::{CosError, CosErrorKind};

/// The class of a filesystem failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsErrorKind {
    /// A COS request failed with this kind (after the client's retries).
    Cos(CosErrorKind),
    /// No such file or directory (decided locally, e.g. from the negative cache).
    NotFound,
    /// Directory not empty (rmdir, rename onto a directory).
    NotEmpty,
    /// Is a directory (file operation on a directory).
    IsDir,
    /// Not a directory (directory operation on a file).
    NotDir,
    /// The name exists already (mkdir, create with O_EXCL, RENAME_NOREPLACE).
    Exists,
    /// The staging area would drop below its free-space floor.
    NoSpace,
    /// The mount is read-only.
    ReadOnly,
    /// The operation is refused by design (hard links, xattrs, special files).
    Unsupported,
    /// A bad argument (unknown flags, bad offsets).
    InvalidArgument,
    /// A path component longer than 255 bytes or a key longer than COS allows.
    NameTooLong,
    /// Beyond the largest object COS can hold.
    FileTooLarge,
    /// A file handle that is not (or no longer) open.
    BadHandle,
    /// The staging area's file-descriptor budget (or the process's) is used up.
    TooManyFiles,
    /// A local I/O failure (staging file).
    LocalIo,
    /// The object changed under an open handle, or was replaced by one of another type: the
    /// handle's view is stale (a pinned read answered 412).
    Stale,
}

/// A failed filesystem operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct FsError {
    pub kind: FsErrorKind,
    pub message: String,
}

impl FsError {
    pub fn new(kind: FsErrorKind, message: impl Into<String>) -> FsError {
        FsError {
            kind,
            message: message.into(),
        }
    }

    /// Whether the object simply does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.kind,
            FsErrorKind::NotFound | FsErrorKind::Cos(CosErrorKind::NotFound)
        )
    }
}

impl From<CosError> for FsError {
    fn from(e: CosError) -> FsError {
        FsError {
            kind: FsErrorKind::Cos(e.kind),
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> FsError {
        let kind = match e.raw_os_error() {
            Some(libc::ENOSPC) => FsErrorKind::NoSpace,
            Some(libc::EMFILE | libc::ENFILE) => FsErrorKind::TooManyFiles,
            _ => FsErrorKind::LocalIo,
        };
        FsError {
            kind,
            message: format!("staging file: {e}"),
        }
    }
}

/// Shorthand for building errors in the core.
pub(crate) fn fs_err(kind: FsErrorKind, message: impl Into<String>) -> FsError {
    FsError::new(kind, message)
}

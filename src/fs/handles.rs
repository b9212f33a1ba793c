//! The handle registry: file handles (one per open descriptor, each sharing its inode's
//! `OpenFile`, the write state all descriptors of a file see) and directory handles (a
//! listing snapshot), and the numbers the kernel knows them by. The registry's tables live
//! in `CosFs`'s inner state; this module is the only code that adds to them.

use super::error::fs_err;
use super::open_file::{Changes, OpenFile, WriteState};
use super::read::ReadState;
use super::{CosFs, DirEntry, FsError, FsErrorKind};
use crate::cos::ObjectClient;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One open file descriptor (FUSE file handle).
pub(super) struct FileHandle {
    pub(super) ino: u64,
    pub(super) writable: bool,
    /// Some data was returned from the bucket through this handle.
    pub(super) served: AtomicBool,
    /// Who changed the file through this handle since it last uploaded it: their close
    /// uploads. A close by anyone else is no reason to commit what others write.
    pub(super) dirty: Mutex<Changes>,
    /// The error that failed the file while this handle was open: every later call
    /// through the handle returns it (see `open_file`).
    pub(super) failed: Mutex<Option<FsError>>,
    pub(super) read: Mutex<ReadState>,
    /// The write state shared by every handle of the inode.
    pub(super) file: Arc<OpenFile>,
}

/// One open directory: the listing taken at opendir, so offsets stay stable.
pub(super) struct DirHandle {
    pub(super) entries: Vec<DirEntry>,
}

impl<C: ObjectClient> CosFs<C> {
    /// Registers a handle of `ino`; `fresh` is the write state to start with when the
    /// inode has no open handle yet (an existing shared state is joined as it is).
    pub(super) fn register_handle(&self, ino: u64, writable: bool, fresh: WriteState) -> u64 {
        let fh = self.inner.next_fh.fetch_add(1, Ordering::Relaxed);
        let file = {
            let mut open = self.inner.open_files.lock();
            let of = open
                .entry(ino)
                .or_insert_with(|| Arc::new(OpenFile::new(ino, fresh)))
                .clone();
            of.add_handle();
            of
        };
        let h = Arc::new(FileHandle {
            ino,
            writable,
            served: AtomicBool::new(false),
            dirty: Mutex::new(Changes::default()),
            failed: Mutex::new(None),
            read: Mutex::new(ReadState::new(self.inner.config.parallel_count)),
            file,
        });
        self.inner.files.lock().insert(fh, h);
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.open_handles += 1;
        }
        fh
    }

    pub(super) fn handle(&self, fh: u64) -> Result<Arc<FileHandle>, FsError> {
        self.inner
            .files
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| fs_err(FsErrorKind::BadHandle, format!("file handle {fh}")))
    }

    /// The inode a handle is open on.
    pub fn inode_of_handle(&self, fh: u64) -> Result<u64, FsError> {
        Ok(self.handle(fh)?.ino)
    }

    /// The shared state of `ino`, if it has open handles.
    pub(super) fn open_file(&self, ino: u64) -> Option<Arc<OpenFile>> {
        self.inner.open_files.lock().get(&ino).cloned()
    }

    /// Registers a directory handle over a listing.
    pub(super) fn register_dir(&self, entries: Vec<DirEntry>) -> u64 {
        let fh = self.inner.next_fh.fetch_add(1, Ordering::Relaxed);
        self.inner
            .dirs
            .lock()
            .insert(fh, Arc::new(DirHandle { entries }));
        fh
    }
}

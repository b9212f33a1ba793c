//! Open files and their data: `open`, `read` (pending data of the file first, else the bucket
//! through the block cache) and `write` (streaming upload or local staging file). Every
//! change of the shared write state goes through `settle`, which makes errors sticky
//! (see `open_file`).

use super::error::fs_err;
use super::open_file::WriteState;
use super::read::ObjectVersion;
use super::write::Stream;
use super::{CosFs, FileHandle, FileKind, FsError, FsErrorKind, OpenMode};
use crate::cos::{CosErrorKind, ObjectClient};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl<C: ObjectClient> CosFs<C> {
    pub async fn open(&self, ino: u64, flags: i32) -> Result<u64, FsError> {
        let m = OpenMode::from_flags(flags);
        if m.write {
            self.ro()?;
        }
        let attr = self.getattr(ino).await?;
        if attr.kind == FileKind::Directory {
            return Err(fs_err(FsErrorKind::IsDir, format!("inode {ino}")));
        }
        if !(m.write && m.truncate) {
            return Ok(self.register_handle(ino, m.write, WriteState::Clean));
        }
        // O_TRUNC: the file's content is now empty, for every handle.
        let fh = self.register_handle(ino, true, WriteState::Stream(Stream::new()));
        let h = self.handle(fh)?;
        let mut st = h.file.state.lock().await;
        // Joined an existing state: replace it (a started upload is aborted by its guard;
        // truncation discards what was written before, on purpose).
        if !matches!(&*st, WriteState::Stream(s) if s.pos == 0 && s.all_buffered()) {
            *st = WriteState::Stream(Stream::new());
        }
        self.mark_local(ino, Some(0));
        // Emptying the file is this handle's change: its close uploads it (see `Changes`).
        h.dirty.lock().opened_new();
        Ok(fh)
    }

    /// Marks an inode as having local content, optionally setting its size.
    pub(super) fn mark_local(&self, ino: u64, size: Option<u64>) {
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.changed_locally(size);
        }
    }

    /// The object version a read of `ino` sees, HEADing it when the ETag is unknown.
    pub(super) async fn version(&self, ino: u64) -> Result<ObjectVersion, FsError> {
        let n = self.node(ino)?;
        if n.etag.is_none() || !n.fresh(Instant::now()) {
            self.getattr(ino).await?;
        }
        let n = self.node(ino)?;
        let key = self.key_of(ino)?;
        match n.etag {
            Some(etag) => Ok(ObjectVersion {
                key,
                etag,
                size: n.size,
                crc64: n.crc64,
            }),
            // A file created here and not uploaded yet: empty.
            None => Ok(ObjectVersion {
                key,
                etag: String::new(),
                size: 0,
                crc64: None,
            }),
        }
    }

    /// The error that failed the file while `h` was open, if any.
    pub(super) fn check_handle(h: &FileHandle) -> Result<(), FsError> {
        match &*h.failed.lock() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Ends a change of the shared write state. An error fails every handle the file has
    /// now (each returns it to every later call) and drops the pending data (the bucket
    /// keeps the previous object; a started multipart upload is aborted by its guard); the
    /// state starts over from the bucket for handles opened later (see `open_file`).
    pub(super) fn settle<T>(
        &self,
        ino: u64,
        st: &mut WriteState,
        r: Result<T, FsError>,
    ) -> Result<T, FsError> {
        let e = match r {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        *st = WriteState::Clean;
        let of = self.open_file(ino);
        for h in self.inner.files.lock().values() {
            let same = of.as_ref().is_some_and(|of| Arc::ptr_eq(of, &h.file));
            if same {
                h.failed.lock().get_or_insert_with(|| e.clone());
            }
        }
        let synced = of
            .as_ref()
            .is_some_and(|of| of.synced_early.swap(false, Ordering::Relaxed));
        let key = self.key_of(ino).unwrap_or_default();
        let outcome = match e.kind {
            // The last request's answer was lost: it may have gone through.
            FsErrorKind::Cos(CosErrorKind::Timeout | CosErrorKind::Transport) => {
                "the object may or may not have been replaced (an answer was lost)"
            }
            _ if synced => "the object holds this file as of its last sync point",
            _ => "the previous object is unchanged",
        };
        tracing::error!(key = %key, errno = crate::fuse::errno_of(&e), error = %e,
            "write failed: {outcome}; every write, read, fsync and close through the descriptors open now fails");
        // What this mount shows of the file comes from the bucket again.
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.local_dropped();
        }
        Err(e)
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes, FsError> {
        let h = self.handle(fh)?;
        Self::check_handle(&h)?;
        {
            let mut st = h.file.state.lock().await;
            Self::check_handle(&h)?;
            let needs_staging = matches!(&*st, WriteState::Stream(s) if !s.all_buffered());
            if needs_staging {
                // Parts went out already: they can only be read back once committed.
                let r = self.to_staging(h.ino, &mut st).await;
                self.settle(h.ino, &mut st, r)?;
            }
            match &*st {
                WriteState::Stream(s) => return Ok(s.read_buffered(offset, size)),
                WriteState::Staged(s) => {
                    let r = s.read(offset, size);
                    return self.settle(h.ino, &mut st, r);
                }
                WriteState::Clean => {}
            }
        }
        let mut retried = false;
        loop {
            let v = self.version(h.ino).await?;
            if v.size == 0 {
                return Ok(Bytes::new());
            }
            match self.inner.reader.read(&v, &h.read, offset, size).await {
                Ok(b) => {
                    h.served.store(true, Ordering::Relaxed);
                    return Ok(b);
                }
                Err(e) if e.kind == FsErrorKind::Stale => {
                    self.inner.table.lock().invalidate(h.ino);
                    // The object changed (another client, or within the stat TTL): a
                    // handle that has returned nothing yet simply reads the new version;
                    // one that has must not mix versions and gets ESTALE.
                    if retried || h.served.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Puts the file's content into a staging file: copies an in-memory stream, or
    /// completes a streamed upload and downloads the result, or downloads the object. On
    /// success the state is `Staged`; on error the caller settles it to `Failed`.
    pub(super) async fn to_staging(&self, ino: u64, st: &mut WriteState) -> Result<(), FsError> {
        let w = &self.inner.writer;
        let next = match &*st {
            WriteState::Staged(_) => return Ok(()),
            // Built beside the stream; the stream is let go only once this exists.
            WriteState::Stream(s) if s.all_buffered() => s.copy_to_staging(&w.staging)?,
            WriteState::Stream(_) => {
                let WriteState::Stream(s) = std::mem::replace(st, WriteState::Clean) else {
                    return Err(fs_err(FsErrorKind::LocalIo, "write state changed"));
                };
                let pos = s.pos;
                // Completing is the only way to read parts back; on failure the caller
                // settles to Failed (the upload aborted, the old object intact).
                self.commit_stream(ino, s).await?;
                if let Some(of) = self.open_file(ino) {
                    of.synced_early.store(true, Ordering::Relaxed);
                }
                tracing::debug!(
                    ino,
                    bytes = pos,
                    "streamed data committed early (sync point) to be read back or rewritten"
                );
                let mut x = w.download(&self.key_of(ino)?, pos).await?;
                x.dirty = false;
                x
            }
            WriteState::Clean => {
                let v = self.version(ino).await?;
                if v.etag.is_empty() {
                    w.staging.new_file()?
                } else {
                    w.download(&v.key, v.size).await?
                }
            }
        };
        *st = WriteState::Staged(next);
        Ok(())
    }

    /// Before `ino` loses its object (unlink, or a rename over it): if handles of it are
    /// open, its content moves to a staging file, so they keep reading and writing it as
    /// on a local disk until the last one closes; nothing of an unlinked file is uploaded
    /// again (see `commit_stream` and `flush_locked`). A failure here is the file's
    /// (settled, so its handles get the error); the name goes anyway.
    pub(super) async fn keep_for_open_handles(&self, ino: u64) {
        let Some(of) = self.open_file(ino) else {
            return;
        };
        let mut st = of.state.lock().await;
        let r = self.to_staging(ino, &mut st).await;
        if let Err(e) = self.settle(ino, &mut st, r) {
            tracing::warn!(
                ino,
                error = %e,
                "a file removed while open could not be kept for its open descriptors; they get this error from now on"
            );
        }
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        self.write_as(fh, offset, data, None).await
    }

    /// `write` on behalf of a FUSE lock owner (the writing process's descriptor table).
    pub async fn write_as(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        owner: Option<u64>,
    ) -> Result<u32, FsError> {
        self.ro()?;
        let h = self.handle(fh)?;
        if !h.writable {
            return Err(fs_err(
                FsErrorKind::BadHandle,
                "handle not open for writing",
            ));
        }
        Self::check_handle(&h)?;
        let mut st = h.file.state.lock().await;
        Self::check_handle(&h)?;
        h.dirty.lock().record(owner);
        let r = self.write_locked(h.ino, &mut st, offset, data).await;
        self.settle(h.ino, &mut st, r)
    }

    async fn write_locked(
        &self,
        ino: u64,
        st: &mut WriteState,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, FsError> {
        let w = &self.inner.writer;
        if let WriteState::Clean = st {
            let n = self.node(ino)?;
            if n.size == 0 && offset == 0 {
                *st = WriteState::Stream(Stream::new());
            } else {
                tracing::debug!(
                    ino,
                    offset,
                    size = n.size,
                    "write into existing content: staging"
                );
                self.to_staging(ino, st).await?;
            }
        }
        if let WriteState::Stream(s) = st {
            // Out of order: stage. Out of memory before any part went out: spill to a
            // staging file rather than wait for budget that idle files may never free.
            if s.pos != offset {
                tracing::debug!(ino, offset, pos = s.pos, "out-of-order write: staging");
                self.to_staging(ino, st).await?;
            } else if s.all_buffered() && !s.try_grow(w, data.len()) {
                tracing::debug!(
                    ino,
                    used = w.budget.used(),
                    "memory budget short: spilling to staging"
                );
                self.to_staging(ino, st).await?;
            }
        }
        let end = offset + data.len() as u64;
        match st {
            WriteState::Stream(s) => {
                let (key, opts) = self.upload_target(ino)?;
                s.write(w, &key, &opts, data).await?;
            }
            WriteState::Staged(s) => s.write(&w.staging, offset, data)?,
            WriteState::Clean => {
                return Err(fs_err(FsErrorKind::LocalIo, "write state lost"));
            }
        }
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.written(end);
        }
        Ok(data.len() as u32)
    }
}

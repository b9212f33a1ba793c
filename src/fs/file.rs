//! Open file handles and data: `open`, handle registry, `read` (through the block
//! cache, seeing content of other handles not uploaded yet) and `write` (streaming
//! upload or local staging file).

use super::error::fs_err;
use super::read::{ObjectVersion, Prefetch};
use super::write::{Stream, WriteState};
use super::{CosFs, FileHandle, FileKind, FsError, FsErrorKind, OpenMode};
use crate::cos::{CosErrorKind, ObjectClient};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

impl<C: ObjectClient> CosFs<C> {
    pub(super) fn register_handle(&self, ino: u64, writable: bool, state: WriteState) -> u64 {
        let fh = self.inner.next_fh.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(FileHandle {
            ino,
            writable,
            served: std::sync::atomic::AtomicBool::new(false),
            prefetch: Mutex::new(Prefetch::new(self.inner.config.parallel_count)),
            state: tokio::sync::Mutex::new(state),
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

    pub async fn open(&self, ino: u64, flags: i32) -> Result<u64, FsError> {
        let m = OpenMode::from_flags(flags);
        if m.write {
            self.ro()?;
        }
        let attr = self.getattr(ino).await?;
        if attr.kind == FileKind::Directory {
            return Err(fs_err(FsErrorKind::IsDir, format!("inode {ino}")));
        }
        let state = if m.write && m.truncate {
            self.mark_local(ino, Some(0));
            WriteState::Stream(Stream::new())
        } else {
            WriteState::Clean
        };
        Ok(self.register_handle(ino, m.write, state))
    }

    /// Marks an inode as having local content, optionally setting its size.
    pub(super) fn mark_local(&self, ino: u64, size: Option<u64>) {
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.local = true;
            n.meta.mtime = SystemTime::now();
            if let Some(s) = size {
                n.size = s;
            }
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
            }),
            // A file created here and not uploaded yet: empty.
            None => Ok(ObjectVersion {
                key,
                etag: String::new(),
                size: 0,
            }),
        }
    }

    /// Another handle of `ino` holding content not uploaded yet (reads must see it).
    pub(super) async fn pending_writer(&self, ino: u64) -> Option<Arc<FileHandle>> {
        if !self.node(ino).ok()?.local {
            return None;
        }
        let hs: Vec<Arc<FileHandle>> = self
            .inner
            .files
            .lock()
            .values()
            .filter(|o| o.ino == ino && o.writable)
            .cloned()
            .collect();
        for w in hs {
            if w.state.lock().await.is_pending() {
                return Some(w);
            }
        }
        None
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes, FsError> {
        let h = self.handle(fh)?;
        let writer = if h.writable {
            Some(h.clone())
        } else {
            self.pending_writer(h.ino).await
        };
        if let Some(wh) = writer {
            let mut st = wh.state.lock().await;
            if let WriteState::Stream(s) = &*st {
                if s.pos > 0 {
                    self.to_staging(h.ino, &mut st).await?;
                }
            }
            match &*st {
                WriteState::Staged(s) => return s.read(offset, size),
                WriteState::Stream(_) => return Ok(Bytes::new()),
                WriteState::Clean | WriteState::Failed(_) => {}
            }
        }
        let mut retried = false;
        loop {
            let v = self.version(h.ino).await?;
            if v.size == 0 {
                return Ok(Bytes::new());
            }
            match self.inner.reader.read(&v, &h.prefetch, offset, size).await {
                Ok(b) => {
                    h.served.store(true, Ordering::Relaxed);
                    return Ok(b);
                }
                Err(e) if e.kind == FsErrorKind::Cos(CosErrorKind::PreconditionFailed) => {
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

    /// Puts the handle's content into a staging file: moves an in-memory stream, or
    /// completes a streamed upload and downloads the result, or downloads the object.
    pub(super) async fn to_staging(&self, ino: u64, st: &mut WriteState) -> Result<(), FsError> {
        let w = &self.inner.writer;
        let cur = std::mem::replace(st, WriteState::Clean);
        let next = match cur {
            WriteState::Stream(s) if s.all_buffered() => s.into_staging(w),
            WriteState::Stream(s) => {
                let pos = s.pos;
                match self.finish_stream(ino, s).await {
                    Ok(()) => w.download(&self.key_of(ino)?, pos).await.map(|mut x| {
                        x.dirty = false;
                        x
                    }),
                    Err(e) => {
                        *st = WriteState::Failed(e.clone());
                        return Err(e);
                    }
                }
            }
            WriteState::Clean => {
                let v = self.version(ino).await?;
                if v.etag.is_empty() {
                    w.new_staging()
                } else {
                    w.download(&v.key, v.size).await
                }
            }
            s @ (WriteState::Staged(_) | WriteState::Failed(_)) => {
                *st = s;
                return Ok(());
            }
        };
        match next {
            Ok(x) => {
                *st = WriteState::Staged(x);
                Ok(())
            }
            // Nothing was lost: the content is still in the bucket (or was empty).
            Err(e) => Err(e),
        }
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        self.ro()?;
        let h = self.handle(fh)?;
        if !h.writable {
            return Err(fs_err(
                FsErrorKind::BadHandle,
                "handle not open for writing",
            ));
        }
        let mut st = h.state.lock().await;
        if let WriteState::Failed(e) = &*st {
            return Err(e.clone());
        }
        if let WriteState::Clean = &*st {
            let n = self.node(h.ino)?;
            if n.size == 0 && offset == 0 {
                *st = WriteState::Stream(Stream::new());
            } else {
                self.to_staging(h.ino, &mut st).await?;
            }
        }
        if let WriteState::Stream(s) = &mut *st {
            // Out of order: stage. Out of memory before any part went out: spill to a
            // staging file rather than wait for budget that idle handles may never free.
            if s.pos != offset || (s.all_buffered() && !s.try_grow(&self.inner.writer, data.len()))
            {
                self.to_staging(h.ino, &mut st).await?;
            }
        }
        let end = offset + data.len() as u64;
        match &mut *st {
            WriteState::Stream(s) => {
                let (key, opts) = self.upload_target(h.ino)?;
                s.write(&self.inner.writer, &key, &opts, data).await?;
            }
            WriteState::Staged(s) => s.write(&self.inner.writer, offset, data)?,
            WriteState::Clean | WriteState::Failed(_) => {
                return Err(fs_err(FsErrorKind::LocalIo, "write state lost"));
            }
        }
        if let Some(n) = self.inner.table.lock().get_mut(h.ino) {
            n.local = true;
            n.size = n.size.max(end);
            n.meta.mtime = SystemTime::now();
            n.mtime_explicit = false;
        }
        Ok(data.len() as u32)
    }
}

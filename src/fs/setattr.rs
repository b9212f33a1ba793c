//! `setattr`: chmod/chown/utimens (a metadata self-copy, a marker PUT for a directory
//! that has none, or nothing yet for a file whose pending upload will carry it) and
//! truncate.

use super::error::fs_err;
use super::inode::ROOT_INO;
use super::open_file::WriteState;
use super::write::Stream;
use super::{attr, not_found, Attr, CosFs, FileKind, FsError, FsErrorKind, SetAttr};
use crate::cos::{CopySource, MetadataDirective, ObjectClient};
use bytes::Bytes;

impl<C: ObjectClient> CosFs<C> {
    pub async fn setattr(&self, ino: u64, s: SetAttr) -> Result<Attr, FsError> {
        self.ro()?;
        // A file open for writing is known here, and a truncation of it is part of its
        // write state: its result (an error, too) is the file's, before anything else.
        let open_for_write = s.size.is_some() && self.truncates_open_file(ino, s.fh);
        if !open_for_write {
            let cur = self.getattr(ino).await?;
            if s.size.is_some() && cur.kind == FileKind::Directory {
                return Err(fs_err(FsErrorKind::IsDir, format!("inode {ino}")));
            }
        }
        if let Some(size) = s.size {
            self.truncate(ino, size, s.fh).await?;
        }
        if s.mode.is_none()
            && s.uid.is_none()
            && s.gid.is_none()
            && s.mtime.is_none()
            && s.atime.is_none()
        {
            return Ok(self.node(ino)?.attr());
        }
        let n = {
            let mut t = self.inner.table.lock();
            let n = t
                .get_mut(ino)
                .ok_or_else(|| not_found(format!("inode {ino}")))?;
            if let Some(m) = s.mode {
                n.meta.perm = (m & 0o7777) as u16;
            }
            if let Some(u) = s.uid {
                n.meta.uid = u;
            }
            if let Some(g) = s.gid {
                n.meta.gid = g;
            }
            if s.mode.is_some() || s.uid.is_some() || s.gid.is_some() {
                n.meta.changed();
            }
            if s.atime.is_some() || s.mtime.is_some() {
                n.times_set(s.atime, s.mtime);
            }
            n.clone()
        };
        // A file with pending content carries its metadata with the upload.
        if n.local || ino == ROOT_INO && self.inner.config.prefix.is_empty() {
            return Ok(n.attr());
        }
        let key = self.key_of(ino)?;
        let mut opts = attr::put_options(&n.meta, n.content_type.clone());
        attr::merge_foreign(&mut opts, &n.user_meta);
        let c = &self.inner.client;
        let etag = if n.meta.kind == FileKind::Directory {
            if n.has_marker {
                let src = CopySource::key(&key).size(0).etag(n.etag.as_deref());
                c.copy(&src, &key, &MetadataDirective::Replaced(opts.clone()))
                    .await?
                    .etag
            } else {
                c.put(&key, Bytes::new(), &opts).await?.etag
            }
        } else {
            let src = CopySource::key(&key)
                .size(n.size)
                .etag(n.etag.as_deref())
                .crc64(n.crc64);
            c.copy(&src, &key, &MetadataDirective::Replaced(opts.clone()))
                .await?
                .etag
        };
        let mut t = self.inner.table.lock();
        let n = t
            .get_mut(ino)
            .ok_or_else(|| not_found(format!("inode {ino}")))?;
        n.copied(etag, None);
        n.user_meta = opts.user_meta;
        if n.meta.kind == FileKind::Directory {
            n.has_marker = true;
        }
        Ok(n.attr())
    }

    pub(super) async fn truncate(
        &self,
        ino: u64,
        size: u64,
        fh: Option<u64>,
    ) -> Result<(), FsError> {
        // With a handle open for writing, the change joins the file's shared write state
        // (uploaded by the next flush, fsync or close, with the other pending data).
        let by = fh
            .map(|f| self.handle(f))
            .transpose()?
            .filter(|h| h.writable);
        let writer = match &by {
            Some(h) => Some(h.file.clone()),
            None => self.writable_open_file(ino),
        };
        if let Some(h) = &by {
            Self::check_handle(h)?;
        }
        if let Some(of) = writer {
            let mut st = of.state.lock().await;
            // The truncation is uploaded by the close of the handle that made it, or (made
            // through the path) by the close of any handle open for writing.
            match &by {
                Some(h) => h.dirty.lock().record(None),
                None => {
                    for h in self.inner.files.lock().values() {
                        if h.ino == ino && h.writable {
                            h.dirty.lock().record(None);
                        }
                    }
                }
            }
            let r = self.truncate_locked(ino, &mut st, size).await;
            return self.settle(ino, &mut st, r);
        }
        // No writable handle: change the object now.
        let n = self.node(ino)?;
        if n.size == size && !n.local {
            return Ok(());
        }
        // The new object carries the truncation's times.
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.data_changed();
        }
        let (key, opts) = self.upload_target(ino)?;
        let w = &self.inner.writer;
        let r = if size == 0 {
            self.inner.client.put(&key, Bytes::new(), &opts).await?
        } else {
            let mut s = w.download(&key, n.size).await?;
            s.truncate(&w.staging, size)?;
            w.upload_staging(&s, &key, &opts).await?
        };
        let ttl = self.inner.config.stat_ttl;
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.uploaded(r.etag, size, r.crc64, ttl);
        }
        Ok(())
    }

    /// Whether a truncation of `ino` goes to its shared write state (a handle open for
    /// writing exists).
    fn truncates_open_file(&self, ino: u64, fh: Option<u64>) -> bool {
        let by_fh = fh
            .and_then(|f| self.handle(f).ok())
            .is_some_and(|h| h.writable && h.ino == ino);
        by_fh || self.writable_open_file(ino).is_some()
    }

    /// The shared state of `ino` if some handle of it is open for writing.
    fn writable_open_file(&self, ino: u64) -> Option<std::sync::Arc<super::open_file::OpenFile>> {
        let any = self
            .inner
            .files
            .lock()
            .values()
            .any(|h| h.ino == ino && h.writable);
        if any {
            self.open_file(ino)
        } else {
            None
        }
    }

    async fn truncate_locked(
        &self,
        ino: u64,
        st: &mut WriteState,
        size: u64,
    ) -> Result<(), FsError> {
        let done = match &*st {
            WriteState::Stream(s) if s.pos == size => true,
            // Truncation to zero discards what was written (a started upload is aborted
            // by its guard when the old stream is dropped).
            WriteState::Stream(_) | WriteState::Clean if size == 0 => {
                *st = WriteState::Stream(Stream::new());
                true
            }
            _ => false,
        };
        if !done {
            self.to_staging(ino, st).await?;
            if let WriteState::Staged(s) = st {
                s.truncate(&self.inner.writer.staging, size)?;
            }
        }
        self.mark_local(ino, Some(size));
        Ok(())
    }
}

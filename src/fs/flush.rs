//! Uploading what files hold: `flush`, `fsync`, `release`, `flush_under` (before a rename)
//! and `flush_all` (unmount, SIGTERM), and recording the uploaded object (ETag, size,
//! CRC-64) in the inode table. Each works on the file's shared write state and settles
//! its result, so an upload error is returned again by every later call (`open_file`).

use super::open_file::{OpenFile, WriteState};
use super::write::Stream;
use super::{attr, not_found, CosFs, FileHandle, FsError};
use crate::cos::{CopySource, MetadataDirective, ObjectClient, PutOptions};
use std::collections::BTreeMap;
use std::sync::Arc;

impl<C: ObjectClient> CosFs<C> {
    /// Key and object attributes an upload of `ino` uses now.
    pub(super) fn upload_target(&self, ino: u64) -> Result<(String, PutOptions), FsError> {
        let t = self.inner.table.lock();
        let n = t
            .get(ino)
            .ok_or_else(|| not_found(format!("inode {ino}")))?;
        let key = t
            .key_of(ino)
            .ok_or_else(|| not_found(format!("inode {ino}")))?;
        let mut opts = attr::put_options(&n.meta, n.content_type.clone());
        attr::merge_foreign(&mut opts, &n.user_meta);
        Ok((key, opts))
    }

    /// Completes a stream as the object of `ino` and records the result. An unlinked
    /// file's stream is discarded instead (its upload aborted).
    pub(super) async fn commit_stream(&self, ino: u64, s: Stream) -> Result<(), FsError> {
        let w = &self.inner.writer;
        if self.node(ino)?.unlinked {
            drop(s);
            return Ok(());
        }
        let size = s.pos;
        let (key, opts) = self.upload_target(ino)?;
        let (r, sent) = s.finish(w, &key, &opts).await?;
        // Attributes changed after a multipart upload began (chmod/chown, or utimens
        // after the last write): rewrite them in place. The mtime and ctime that writes
        // set (and the atime they leave behind) are not worth a copy; explicit times are
        // (a chmod/chown shows in the mode, uid or gid).
        let (_, now_opts) = self.upload_target(ino)?;
        let explicit_times = self.node(ino)?.times_explicit;
        let time = |o: &PutOptions, k: &str| o.user_meta.get(k).cloned();
        let times_differ = ["mtime", "atime"]
            .iter()
            .any(|k| time(&now_opts, k) != time(&sent, k));
        let mut done = r;
        if without_write_times(&now_opts) != without_write_times(&sent)
            || (explicit_times && times_differ)
        {
            let src = CopySource::key(&key)
                .size(size)
                .etag(Some(&done.etag))
                .crc64(done.crc64);
            done = self
                .inner
                .client
                .copy(&src, &key, &MetadataDirective::Replaced(now_opts))
                .await?;
        }
        self.uploaded(ino, done.etag, size, done.crc64);
        Ok(())
    }

    pub(super) fn uploaded(&self, ino: u64, etag: String, size: u64, crc64: Option<u64>) {
        let ttl = self.inner.config.stat_ttl;
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.uploaded(etag, size, crc64, ttl);
        }
    }

    /// Uploads whatever the file has pending (for every handle of it). Errors are
    /// settled (sticky) by the caller.
    pub(super) async fn flush_locked(&self, ino: u64, st: &mut WriteState) -> Result<(), FsError> {
        match st {
            WriteState::Clean => Ok(()),
            WriteState::Stream(_) => {
                let WriteState::Stream(s) = std::mem::replace(st, WriteState::Clean) else {
                    return Ok(());
                };
                // On failure the caller settles to Failed; the stream's upload is aborted.
                self.commit_stream(ino, s).await
            }
            WriteState::Staged(s) => {
                if !s.dirty || self.node(ino)?.unlinked {
                    return Ok(());
                }
                let (key, opts) = self.upload_target(ino)?;
                let r = self.inner.writer.upload_staging(s, &key, &opts).await?;
                s.dirty = false;
                let size = s.size;
                self.uploaded(ino, r.etag, size, r.crc64);
                Ok(())
            }
        }
    }

    /// Flushes one open file's shared state and settles the result.
    async fn flush_file(&self, of: &OpenFile) -> Result<(), FsError> {
        let mut st = of.state.lock().await;
        let r = self.flush_locked(of.ino, &mut st).await;
        self.settle(of.ino, &mut st, r)
    }

    /// Uploads the file's pending data if `h` changed the file since it last did, or if
    /// `when_last` and `h` is the file's last handle (else only the handle's sticky error,
    /// if any, is answered). Whether it is the last is decided under the state lock: a
    /// handle opened meanwhile changes the state only after this flush.
    async fn flush_handle(
        &self,
        h: &FileHandle,
        owner: Option<u64>,
        when_last: bool,
    ) -> Result<(), FsError> {
        Self::check_handle(h)?;
        let mut st = h.file.state.lock().await;
        Self::check_handle(h)?;
        let last = when_last && h.file.handles() <= 1;
        let changed = {
            let d = h.dirty.lock();
            // A release ends the handle for everyone who shares it.
            if when_last {
                !d.is_empty()
            } else {
                d.by(owner)
            }
        };
        if !changed && !last {
            return Ok(());
        }
        let r = self.flush_locked(h.ino, &mut st).await;
        if r.is_ok() {
            h.dirty.lock().clear();
        }
        self.settle(h.ino, &mut st, r)
    }

    /// close(2) of one descriptor: uploads what the file has pending if the closing
    /// process changed it through this descriptor (see `open_file::Changes`), and returns
    /// the result; a failed file's error is repeated. Closing a descriptor that did not
    /// write commits nothing of what others write (the kernel's release of an old handle
    /// may come after a new open truncated the file; a forked child closes copies of its
    /// parent's descriptors).
    pub async fn flush(&self, fh: u64) -> Result<(), FsError> {
        self.flush_as(fh, None).await
    }

    /// `flush` on behalf of a FUSE lock owner (the closing process's descriptor table).
    pub async fn flush_as(&self, fh: u64, owner: Option<u64>) -> Result<(), FsError> {
        let h = self.handle(fh)?;
        self.flush_handle(&h, owner, false).await
    }

    /// fsync(2): the file's data, whichever handle wrote it, is uploaded.
    pub async fn fsync(&self, fh: u64) -> Result<(), FsError> {
        let h = self.handle(fh)?;
        Self::check_handle(&h)?;
        let r = self.flush_file(&h.file).await;
        if r.is_ok() {
            h.dirty.lock().clear();
        }
        r
    }

    /// Closes the handle, uploading what it changed and, for the file's last handle,
    /// whatever is still pending. Then the shared state goes away with the last handle
    /// (and with it a failed state: the next open starts afresh). The kernel ignores
    /// release's result; flush already reported it.
    pub async fn release(&self, fh: u64) -> Result<(), FsError> {
        let h = self.handle(fh)?;
        let r = self.flush_handle(&h, None, true).await;
        self.inner.files.lock().remove(&fh);
        let last = {
            let mut open = self.inner.open_files.lock();
            let last = h.file.remove_handle();
            if last {
                if let Some(cur) = open.get(&h.ino) {
                    if Arc::ptr_eq(cur, &h.file) {
                        open.remove(&h.ino);
                    }
                }
            }
            last
        };
        let mut t = self.inner.table.lock();
        t.handle_closed(h.ino);
        if last {
            if let Some(n) = t.get_mut(h.ino) {
                if n.local {
                    // Never uploaded (or the upload failed): ask the bucket next time.
                    n.local_dropped();
                }
            }
        }
        if let Err(e) = &r {
            tracing::debug!(fh, error = %e, "release: the file's error stands");
        }
        r
    }

    fn open_files(&self) -> Vec<Arc<OpenFile>> {
        self.inner.open_files.lock().values().cloned().collect()
    }

    /// Flushes every open file whose key starts with `prefix` (before a rename copies it).
    pub(super) async fn flush_under(&self, prefix: &str) -> Result<(), FsError> {
        for of in self.open_files() {
            let Ok(key) = self.key_of(of.ino) else {
                continue;
            };
            if key.starts_with(prefix) {
                self.flush_file(&of).await?;
            }
        }
        Ok(())
    }

    /// Uploads everything pending; Err (the first error) if any file failed now, or
    /// failed before and still has a descriptor open. Called on unmount / SIGTERM.
    pub async fn flush_all(&self) -> Result<(), FsError> {
        // A descriptor still open on a failed file: its data never reached the bucket.
        let mut first: Option<FsError> = self
            .inner
            .files
            .lock()
            .values()
            .find_map(|h| h.failed.lock().clone());
        for of in self.open_files() {
            if let Err(e) = self.flush_file(&of).await {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The attributes of an upload apart from the times every write moves (or, for atime,
/// leaves behind).
fn without_write_times(o: &PutOptions) -> (Option<String>, BTreeMap<String, String>) {
    let mut m = o.user_meta.clone();
    for t in ["mtime", "ctime", "atime"] {
        m.remove(t);
    }
    (o.content_type.clone(), m)
}

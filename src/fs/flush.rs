//! Uploading what handles hold: `flush`, `fsync`, `release`, `flush_all`, and recording
//! the uploaded object (ETag, size) in the inode table. Upload errors stick to the
//! handle and are repeated.

use super::write::{Stream, WriteState};
use super::{attr, not_found, CosFs, FileHandle, FsError};
use crate::cos::{MetadataDirective, ObjectClient, PutOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

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

    /// Completes a stream as the object of `ino` and records the result.
    pub(super) async fn finish_stream(&self, ino: u64, s: Stream) -> Result<(), FsError> {
        let w = &self.inner.writer;
        if self.node(ino)?.unlinked {
            s.discard(w).await;
            return Ok(());
        }
        let size = s.pos;
        let (key, opts) = self.upload_target(ino)?;
        let (r, sent) = s.finish(w, &key, &opts).await?;
        // Attributes changed after a multipart upload began (chmod/chown, or utimens
        // after the last write): rewrite them in place. The mtime that writes set is not
        // worth a copy; an explicit one is.
        let (_, now_opts) = self.upload_target(ino)?;
        let explicit_mtime = self.node(ino)?.mtime_explicit;
        let mut etag = r.etag;
        if strip_mtime(&now_opts) != strip_mtime(&sent)
            || (explicit_mtime && now_opts.user_meta.get("mtime") != sent.user_meta.get("mtime"))
        {
            etag = self
                .inner
                .client
                .copy(
                    &key,
                    &key,
                    Some(size),
                    &MetadataDirective::Replaced(now_opts),
                )
                .await?
                .etag;
        }
        self.uploaded(ino, etag, size);
        Ok(())
    }

    pub(super) fn uploaded(&self, ino: u64, etag: String, size: u64) {
        let ttl = self.inner.config.stat_ttl;
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.etag = Some(etag);
            n.size = size;
            n.local = false;
            n.expires = Instant::now() + ttl;
        }
    }

    /// Completes any pending upload of the handle; errors are kept and repeated.
    pub async fn flush(&self, fh: u64) -> Result<(), FsError> {
        let h = self.handle(fh)?;
        if !h.writable {
            return Ok(());
        }
        let mut st = h.state.lock().await;
        self.flush_state(h.ino, &mut st).await
    }

    pub(super) async fn flush_state(&self, ino: u64, st: &mut WriteState) -> Result<(), FsError> {
        let cur = std::mem::replace(st, WriteState::Clean);
        match cur {
            WriteState::Clean => Ok(()),
            WriteState::Failed(e) => {
                *st = WriteState::Failed(e.clone());
                Err(e)
            }
            WriteState::Stream(s) => match self.finish_stream(ino, s).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    tracing::error!(ino, error = %e, "upload failed; the previous object (if any) is unchanged");
                    *st = WriteState::Failed(e.clone());
                    Err(e)
                }
            },
            WriteState::Staged(mut s) => {
                if !s.dirty || self.node(ino)?.unlinked {
                    *st = WriteState::Staged(s);
                    return Ok(());
                }
                let (key, opts) = self.upload_target(ino)?;
                match self.inner.writer.upload_staging(&s, &key, &opts).await {
                    Ok(r) => {
                        s.dirty = false;
                        self.uploaded(ino, r.etag, s.size);
                        *st = WriteState::Staged(s);
                        Ok(())
                    }
                    Err(e) => {
                        tracing::error!(key, error = %e, "upload failed; the previous object is unchanged");
                        *st = WriteState::Failed(e.clone());
                        Err(e)
                    }
                }
            }
        }
    }

    pub async fn fsync(&self, fh: u64) -> Result<(), FsError> {
        self.flush(fh).await
    }

    /// Closes the handle, uploading what is still pending (the kernel ignores the result
    /// of release, so the error is logged; flush already reported it).
    pub async fn release(&self, fh: u64) -> Result<(), FsError> {
        let h = self.handle(fh)?;
        let r = if h.writable {
            let mut st = h.state.lock().await;
            let r = self.flush_state(h.ino, &mut st).await;
            if let WriteState::Stream(_) | WriteState::Staged(_) = &*st {
                // Stream left behind by a failure path: drop it.
            }
            r
        } else {
            Ok(())
        };
        self.inner.files.lock().remove(&fh);
        let still_open = self.inner.files.lock().values().any(|o| o.ino == h.ino);
        let mut t = self.inner.table.lock();
        t.handle_closed(h.ino);
        if !still_open {
            if let Some(n) = t.get_mut(h.ino) {
                if n.local {
                    // Never uploaded (or the upload failed): ask the bucket next time.
                    n.local = false;
                    n.expires = Instant::now();
                }
            }
        }
        if let Err(e) = &r {
            tracing::error!(fh, error = %e, "release: pending upload failed");
        }
        r
    }

    /// Flushes every handle whose key starts with `prefix`.
    pub(super) async fn flush_under(&self, prefix: &str) -> Result<(), FsError> {
        let hs: Vec<Arc<FileHandle>> = self.inner.files.lock().values().cloned().collect();
        for h in hs {
            if !h.writable {
                continue;
            }
            let key = match self.key_of(h.ino) {
                Ok(k) => k,
                Err(_) => continue,
            };
            if key.starts_with(prefix) {
                let mut st = h.state.lock().await;
                self.flush_state(h.ino, &mut st).await?;
            }
        }
        Ok(())
    }

    /// Uploads everything pending; Err if any upload failed. Called on unmount / SIGTERM.
    pub async fn flush_all(&self) -> Result<(), FsError> {
        let hs: Vec<Arc<FileHandle>> = self.inner.files.lock().values().cloned().collect();
        let mut first: Option<FsError> = None;
        for h in hs {
            if !h.writable {
                continue;
            }
            let mut st = h.state.lock().await;
            if let Err(e) = self.flush_state(h.ino, &mut st).await {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn strip_mtime(o: &PutOptions) -> (Option<String>, BTreeMap<String, String>) {
    let mut m = o.user_meta.clone();
    m.remove("mtime");
    (o.content_type.clone(), m)
}

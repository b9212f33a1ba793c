//! `setattr`: chmod/chown/utimens (a metadata self-copy, a marker PUT for a directory
//! that has none, or nothing yet for a file whose pending upload will carry it) and
//! truncate.

use super::error::fs_err;
use super::inode::ROOT_INO;
use super::write::{Stream, WriteState};
use super::{attr, not_found, Attr, CosFs, FileKind, FsError, FsErrorKind, SetAttr};
use crate::cos::{MetadataDirective, ObjectClient};
use bytes::Bytes;
use std::time::{Instant, SystemTime};

impl<C: ObjectClient> CosFs<C> {
    pub async fn setattr(&self, ino: u64, s: SetAttr) -> Result<Attr, FsError> {
        self.ro()?;
        let cur = self.getattr(ino).await?;
        if let Some(size) = s.size {
            if cur.kind == FileKind::Directory {
                return Err(fs_err(FsErrorKind::IsDir, format!("inode {ino}")));
            }
            self.truncate(ino, size, s.fh).await?;
        }
        if s.mode.is_none() && s.uid.is_none() && s.gid.is_none() && s.mtime.is_none() {
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
            if let Some(t) = s.mtime {
                n.meta.mtime = t;
                n.mtime_explicit = true;
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
                c.copy(
                    &key,
                    &key,
                    Some(0),
                    &MetadataDirective::Replaced(opts.clone()),
                )
                .await?
                .etag
            } else {
                c.put(&key, Bytes::new(), &opts).await?.etag
            }
        } else {
            c.copy(
                &key,
                &key,
                Some(n.size),
                &MetadataDirective::Replaced(opts.clone()),
            )
            .await?
            .etag
        };
        let mut t = self.inner.table.lock();
        let n = t
            .get_mut(ino)
            .ok_or_else(|| not_found(format!("inode {ino}")))?;
        n.etag = Some(etag);
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
        let h = match fh.map(|f| self.handle(f)).transpose()? {
            Some(h) if h.writable => Some(h),
            _ => None,
        };
        if let Some(h) = h {
            let mut st = h.state.lock().await;
            if let WriteState::Failed(e) = &*st {
                return Err(e.clone());
            }
            let done = match &mut *st {
                WriteState::Stream(s) if s.pos == size => true,
                WriteState::Stream(s) if size == 0 && s.all_buffered() => {
                    *st = WriteState::Stream(Stream::new());
                    true
                }
                WriteState::Clean if size == 0 => {
                    *st = WriteState::Stream(Stream::new());
                    true
                }
                _ => false,
            };
            if !done {
                self.to_staging(ino, &mut st).await?;
                if let WriteState::Staged(s) = &mut *st {
                    s.truncate(&self.inner.writer, size)?;
                }
            }
            self.mark_local(ino, Some(size));
            return Ok(());
        }
        // No writable handle: change the object now.
        let n = self.node(ino)?;
        if n.size == size && !n.local {
            return Ok(());
        }
        let (key, opts) = self.upload_target(ino)?;
        let w = &self.inner.writer;
        let etag = if size == 0 {
            self.inner.client.put(&key, Bytes::new(), &opts).await?.etag
        } else {
            let mut s = w.download(&key, n.size).await?;
            s.truncate(w, size)?;
            w.upload_staging(&s, &key, &opts).await?.etag
        };
        let ttl = self.inner.config.stat_ttl;
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.size = size;
            n.etag = Some(etag);
            n.meta.mtime = SystemTime::now();
            n.expires = Instant::now() + ttl;
        }
        Ok(())
    }
}

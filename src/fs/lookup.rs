//! Name resolution and attributes: `lookup`, `forget`, `getattr`, and how a name
//! missing from the inode table is found in the bucket (HEAD `key` + LIST `key/`,
//! directories winning over same-named objects), waiting for any background attribute
//! HEAD already under way.

use super::error::fs_err;
use super::inode::{Found, Inode, ROOT_INO};
use super::{
    attr, check_key, check_name, not_found, Attr, CosFs, Entry, FileKind, FsError, FsErrorKind,
};
use crate::cos::{CosErrorKind, ObjectClient, ObjectMeta};
use std::collections::BTreeMap;
use std::time::Instant;

impl<C: ObjectClient> CosFs<C> {
    /// Looks `name` up in `parent`; the kernel holds one more reference on success.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Entry, FsError> {
        let n = self.resolve(parent, name).await?;
        self.inner.table.lock().add_lookup(n.ino);
        Ok(self.entry_of(&n))
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inner.table.lock().forget(ino, n);
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        let n = self.node(ino)?;
        if n.fresh(Instant::now()) || n.unlinked || ino == ROOT_INO {
            return Ok(n.attr());
        }
        let fresh = self.resolve(n.parent, &n.name).await?;
        if fresh.ino != ino {
            return Err(fs_err(
                FsErrorKind::Stale,
                format!("{} was replaced by an object of another type", n.name),
            ));
        }
        Ok(fresh.attr())
    }

    /// The current inode of `parent/name`, from the cache or the bucket.
    pub(super) async fn resolve(&self, parent: u64, name: &str) -> Result<Inode, FsError> {
        check_name(name)?;
        let key = {
            let t = self.inner.table.lock();
            let p = t
                .get(parent)
                .ok_or_else(|| not_found(format!("inode {parent}")))?;
            if p.meta.kind != FileKind::Directory {
                return Err(fs_err(FsErrorKind::NotDir, format!("inode {parent}")));
            }
            let now = Instant::now();
            if let Some(n) = t.child(parent, name) {
                if n.fresh(now) {
                    return Ok(n.clone());
                }
            } else if t.is_negative(parent, name, now) {
                return Err(not_found(name.to_string()));
            }
            t.child_key(parent, name)
                .ok_or_else(|| not_found(format!("inode {parent}")))?
        };
        check_key(&key)?;
        let pending = self.inner.pending_heads.lock().get(&key).cloned();
        if let Some(p) = pending {
            p.await;
        }
        // Also re-checked without a pending HEAD: a HEAD task records its result before
        // it unregisters, so one that finished since the first check is seen here.
        {
            let t = self.inner.table.lock();
            if let Some(n) = t.child(parent, name) {
                if n.fresh(Instant::now()) {
                    return Ok(n.clone());
                }
            }
        }
        let found = self.lookup_remote(&key).await?;
        let now = Instant::now();
        let mut t = self.inner.table.lock();
        match found {
            Some(f) => {
                let ino = t.upsert(parent, name, f, now);
                t.get(ino).cloned().ok_or_else(|| not_found(key))
            }
            None => {
                if let Some(n) = t.child(parent, name) {
                    if n.local {
                        return Ok(n.clone());
                    }
                }
                t.detach(parent, name);
                t.set_negative(parent, name, now);
                Err(not_found(key))
            }
        }
    }

    /// HEAD `key` and LIST `key/` concurrently: a prefix (or `key/` marker) makes a
    /// directory (directories win over a same-named object), else the object is a file
    /// or symlink, else the name does not exist.
    pub(super) async fn lookup_remote(&self, key: &str) -> Result<Option<Found>, FsError> {
        let c = &self.inner.client;
        let dir_prefix = format!("{key}/");
        let (head, list) = tokio::join!(c.head(key), c.list(&dir_prefix, Some("/"), None, 2));
        let list = list?;
        if !list.objects.is_empty() || !list.common_prefixes.is_empty() {
            let marker = list.objects.first().is_some_and(|o| o.key == dir_prefix);
            if marker {
                match c.head(&dir_prefix).await {
                    Ok(m) => return Ok(Some(self.found_dir_marker(&m))),
                    Err(e) if e.kind == CosErrorKind::NotFound => {}
                    // A marker this mount cannot open (SSE-C with a key it does not hold)
                    // only loses its attributes: the listing shows a directory, so it is one.
                    Err(e) if marker_unreadable(&e) => {
                        tracing::debug!(key = %dir_prefix, error = %e,
                            "directory marker cannot be opened; using default attributes");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(Some(self.found_implicit_dir()));
        }
        match head {
            Ok(m) => {
                let meta = attr::meta_from_object(&m, &self.inner.defaults);
                Ok(Some(Found {
                    meta,
                    size: if meta.kind == FileKind::Directory {
                        0
                    } else {
                        m.size
                    },
                    crc64: m.crc64,
                    etag: Some(m.etag),
                    content_type: m.content_type,
                    user_meta: m.user_meta,
                    has_marker: false,
                }))
            }
            Err(e) if e.kind == CosErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn found_dir_marker(&self, m: &ObjectMeta) -> Found {
        let mut meta = attr::meta_from_object(m, &self.inner.defaults);
        meta.kind = FileKind::Directory;
        Found {
            meta,
            size: 0,
            etag: Some(m.etag.clone()),
            crc64: m.crc64,
            content_type: m.content_type.clone(),
            user_meta: m.user_meta.clone(),
            has_marker: true,
        }
    }

    pub(super) fn found_implicit_dir(&self) -> Found {
        Found {
            meta: attr::implicit_dir(&self.inner.defaults),
            size: 0,
            etag: None,
            crc64: None,
            content_type: None,
            user_meta: BTreeMap::new(),
            has_marker: false,
        }
    }
}

/// Whether a failed HEAD of a directory marker means "encrypted with a key this mount does
/// not hold" (a wrong key, no key, or SSE-C headers the marker does not want).
pub(super) fn marker_unreadable(e: &crate::cos::CosError) -> bool {
    matches!(
        e.kind,
        CosErrorKind::SseKeyRejected | CosErrorKind::BadRequest | CosErrorKind::AccessDenied
    )
}

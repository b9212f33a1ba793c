//! Directories: `opendir` lists all pages into a snapshot that `readdir` serves with
//! stable offsets (and starts background HEADs to fill the attribute cache), plus
//! `mkdir`/`rmdir` and the small name helpers they share with the other namespace
//! operations (`child_key`, `ensure_absent`, `insert_found`).

use super::attr::MetaAttrs;
use super::error::fs_err;
use super::inode::{Found, ROOT_INO};
use super::{
    attr, check_key, check_name, not_found, Attr, Caller, CosFs, DirEntry, Entry, FileKind,
    FsError, FsErrorKind, Pending, PAGE,
};
use crate::cos::{list_all, CosErrorKind, ObjectClient};
use bytes::Bytes;
use futures::future::FutureExt;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

impl<C: ObjectClient> CosFs<C> {
    /// Lists the directory (all pages) into a snapshot that readdir serves with stable
    /// offsets, and starts fetching missing attributes in the background.
    pub async fn opendir(&self, ino: u64) -> Result<u64, FsError> {
        let n = self.node(ino)?;
        if n.meta.kind != FileKind::Directory {
            return Err(fs_err(FsErrorKind::NotDir, format!("inode {ino}")));
        }
        let prefix = self.key_of(ino)?;
        let page = list_all(&*self.inner.client, &prefix, Some("/"), PAGE).await?;
        let (objects, prefixes) = (page.objects, page.common_prefixes);
        let now = Instant::now();
        let mut entries = vec![
            DirEntry {
                ino,
                name: ".".into(),
                kind: FileKind::Directory,
            },
            DirEntry {
                ino: if ino == ROOT_INO { ROOT_INO } else { n.parent },
                name: "..".into(),
                kind: FileKind::Directory,
            },
        ];
        let mut to_head: Vec<(String, String, bool)> = Vec::new();
        let mut seen = HashSet::new();
        {
            let mut t = self.inner.table.lock();
            for cp in &prefixes {
                let name = cp[prefix.len()..].trim_end_matches('/');
                if check_name(name).is_err() || !seen.insert(name.to_string()) {
                    continue;
                }
                let ino = t.upsert_listed(ino, name, self.found_implicit_dir(), now);
                if let Some(c) = t.get(ino) {
                    if !c.fresh(now) {
                        to_head.push((name.to_string(), format!("{prefix}{name}"), true));
                    }
                    entries.push(DirEntry {
                        ino,
                        name: name.to_string(),
                        kind: c.meta.kind,
                    });
                }
            }
            for o in &objects {
                let name = &o.key[prefix.len()..];
                // The marker of the directory itself, and names a path cannot carry.
                if name.is_empty() || check_name(name).is_err() || seen.contains(name) {
                    continue;
                }
                seen.insert(name.to_string());
                let f = Found {
                    meta: attr::meta_from(
                        &BTreeMap::new(),
                        None,
                        &o.key,
                        o.last_modified,
                        &self.inner.defaults,
                    ),
                    size: o.size,
                    etag: Some(o.etag.clone()),
                    crc64: None,
                    content_type: None,
                    user_meta: BTreeMap::new(),
                    has_marker: false,
                };
                let cino = t.upsert_listed(ino, name, f, now);
                if let Some(c) = t.get(cino) {
                    if !c.fresh(now) {
                        to_head.push((name.to_string(), o.key.clone(), false));
                    }
                    entries.push(DirEntry {
                        ino: cino,
                        name: name.to_string(),
                        kind: c.meta.kind,
                    });
                }
            }
            // Files being written here that the bucket does not show yet.
            for cino in t.local_children(ino) {
                if let Some(c) = t.get(cino) {
                    if seen.insert(c.name.clone()) {
                        entries.push(DirEntry {
                            ino: cino,
                            name: c.name.clone(),
                            kind: c.meta.kind,
                        });
                    }
                }
            }
        }
        self.prefetch_attrs(ino, to_head);
        Ok(self.register_dir(entries))
    }

    /// Fetches attributes of listed entries with bounded concurrent HEADs, so the
    /// kernel's per-entry lookups (ls -l) find them cached instead of sending one HEAD +
    /// LIST each, in sequence.
    pub(super) fn prefetch_attrs(&self, parent: u64, items: Vec<(String, String, bool)>) {
        if items.is_empty() || self.inner.config.listing_head_concurrency == 0 {
            return;
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(
            self.inner.config.listing_head_concurrency.max(1),
        ));
        for (name, key, is_dir) in items {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let pending: Pending = rx.map(|_| ()).boxed().shared();
            {
                let mut p = self.inner.pending_heads.lock();
                if p.contains_key(&key) {
                    continue;
                }
                p.insert(key.clone(), pending);
            }
            let me = self.clone();
            let sem = sem.clone();
            self.inner.rt.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let c = &me.inner.client;
                let found = if is_dir {
                    match c.head(&format!("{key}/")).await {
                        Ok(m) => Some(me.found_dir_marker(&m)),
                        Err(e)
                            if e.kind == CosErrorKind::NotFound
                                || super::lookup::marker_unreadable(&e) =>
                        {
                            Some(me.found_implicit_dir())
                        }
                        Err(_) => None,
                    }
                } else {
                    match c.head(&key).await {
                        Ok(m) => {
                            let meta = attr::meta_from_object(&m, &me.inner.defaults);
                            // An object that claims to be a directory is left to lookup.
                            (meta.kind != FileKind::Directory).then_some(Found {
                                meta,
                                size: m.size,
                                crc64: m.crc64,
                                etag: Some(m.etag),
                                content_type: m.content_type,
                                user_meta: m.user_meta,
                                has_marker: false,
                            })
                        }
                        Err(_) => None,
                    }
                };
                if let Some(f) = found {
                    let mut t = me.inner.table.lock();
                    // Only if the entry is still the one listed (not renamed/removed since).
                    if t.child(parent, &name).is_some() {
                        t.upsert(parent, &name, f, Instant::now());
                    }
                }
                me.inner.pending_heads.lock().remove(&key);
                let _ = tx.send(());
            });
        }
    }

    /// Entries from `offset` on; `add(entry, next_offset)` returns true when full.
    pub fn readdir(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(&DirEntry, u64) -> bool,
    ) -> Result<(), FsError> {
        let d = self
            .inner
            .dirs
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| fs_err(FsErrorKind::BadHandle, format!("dir handle {fh}")))?;
        for (i, e) in d.entries.iter().enumerate().skip(offset as usize) {
            if add(e, i as u64 + 1) {
                break;
            }
        }
        Ok(())
    }

    pub fn releasedir(&self, fh: u64) {
        self.inner.dirs.lock().remove(&fh);
    }

    pub async fn mkdir(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> Result<Entry, FsError> {
        self.ro()?;
        self.ensure_absent(parent, name).await?;
        let key = self.child_key(parent, name)?;
        let meta = MetaAttrs::new_node(FileKind::Directory, mode, umask, caller.uid, caller.gid);
        let opts = attr::put_options(&meta, None);
        let r = self
            .inner
            .client
            .put(&format!("{key}/"), Bytes::new(), &opts)
            .await?;
        let f = Found {
            meta,
            size: 0,
            etag: Some(r.etag),
            crc64: r.crc64,
            content_type: opts.content_type,
            user_meta: opts.user_meta,
            has_marker: true,
        };
        Ok(self.insert_found(parent, name, f))
    }

    pub(super) fn insert_found(&self, parent: u64, name: &str, f: Found) -> Entry {
        let mut t = self.inner.table.lock();
        let ino = t.upsert(parent, name, f, Instant::now());
        t.add_lookup(ino);
        t.entries_changed(parent);
        match t.get(ino) {
            Some(n) => self.entry_of(n),
            None => Entry {
                attr: Attr {
                    ino,
                    kind: FileKind::File,
                    size: 0,
                    perm: 0,
                    uid: 0,
                    gid: 0,
                    mtime: SystemTime::now(),
                    atime: SystemTime::now(),
                    ctime: SystemTime::now(),
                    rdev: 0,
                    nlink: 1,
                },
                generation: 0,
                ttl: Duration::ZERO,
            },
        }
    }

    pub(super) fn child_key(&self, parent: u64, name: &str) -> Result<String, FsError> {
        check_name(name)?;
        let key = self
            .inner
            .table
            .lock()
            .child_key(parent, name)
            .ok_or_else(|| not_found(format!("inode {parent}")))?;
        check_key(&key)?;
        Ok(key)
    }

    /// Fails with Exists if `parent/name` exists.
    pub(super) async fn ensure_absent(&self, parent: u64, name: &str) -> Result<(), FsError> {
        match self.resolve(parent, name).await {
            Ok(_) => Err(fs_err(FsErrorKind::Exists, name.to_string())),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the directory `prefix` (ending in '/') holds anything but its marker.
    pub(super) async fn dir_has_children(&self, prefix: &str, ino: u64) -> Result<bool, FsError> {
        if !self.inner.table.lock().local_children(ino).is_empty() {
            return Ok(true);
        }
        let page = self.inner.client.list(prefix, Some("/"), None, 2).await?;
        Ok(!page.common_prefixes.is_empty() || page.objects.iter().any(|o| o.key != prefix))
    }

    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.ro()?;
        let n = self.resolve(parent, name).await?;
        if n.meta.kind != FileKind::Directory {
            return Err(fs_err(FsErrorKind::NotDir, name.to_string()));
        }
        let prefix = self.key_of(n.ino)?;
        if self.dir_has_children(&prefix, n.ino).await? {
            return Err(fs_err(FsErrorKind::NotEmpty, prefix));
        }
        self.inner.client.delete(&prefix).await?;
        let mut t = self.inner.table.lock();
        t.detach(parent, name);
        t.set_negative(parent, name, Instant::now());
        t.entries_changed(parent);
        Ok(())
    }
}

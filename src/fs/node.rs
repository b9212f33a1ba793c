//! Non-directory names: `create` and `mknod` of regular files, `symlink`/`readlink`,
//! `unlink`, and the refusal of hard links (`link`).

use super::attr::MetaAttrs;
use super::error::fs_err;
use super::inode::Found;
use super::write::{Stream, WriteState};
use super::{attr, not_found, Caller, CosFs, Entry, FileKind, FsError, FsErrorKind};
use crate::cos::ObjectClient;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Instant;

impl<C: ObjectClient> CosFs<C> {
    /// Creates and opens a new regular file. Nothing is sent until flush: the file
    /// exists locally (and in listings of this mount) until its first upload.
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(Entry, u64), FsError> {
        self.ro()?;
        let _ = self.child_key(parent, name)?;
        if flags & libc::O_EXCL != 0 {
            self.ensure_absent(parent, name).await?;
        }
        let meta = MetaAttrs::new_node(FileKind::File, mode, umask, caller.uid, caller.gid);
        let f = Found {
            meta,
            size: 0,
            etag: None,
            content_type: None,
            user_meta: BTreeMap::new(),
            has_marker: false,
        };
        let (entry, ino) = {
            let mut t = self.inner.table.lock();
            // A new file replaces whatever the name meant before.
            if t.child(parent, name)
                .is_some_and(|n| n.meta.kind != FileKind::File)
            {
                t.detach(parent, name);
            }
            let ino = t.upsert(parent, name, f.clone(), Instant::now());
            if let Some(n) = t.get_mut(ino) {
                // Reset an existing inode of this name to the new, empty file.
                n.meta = f.meta;
                n.size = 0;
                n.etag = None;
                n.local = true;
            }
            t.add_lookup(ino);
            let e = t.get(ino).map(|n| self.entry_of(n));
            (e, ino)
        };
        let entry = entry.ok_or_else(|| not_found(name.to_string()))?;
        let fh = self.register_handle(ino, true, WriteState::Stream(Stream::new()));
        Ok((entry, fh))
    }

    /// mknod: regular files only (an empty object); devices, FIFOs and sockets are refused.
    pub async fn mknod(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> Result<Entry, FsError> {
        self.ro()?;
        let t = mode & attr::S_IFMT;
        if t != 0 && t != attr::S_IFREG {
            return Err(fs_err(
                FsErrorKind::Unsupported,
                "only regular files can be created",
            ));
        }
        self.ensure_absent(parent, name).await?;
        let key = self.child_key(parent, name)?;
        let meta = MetaAttrs::new_node(FileKind::File, mode, umask, caller.uid, caller.gid);
        let opts = attr::put_options(&meta, None);
        let r = self.inner.client.put(&key, Bytes::new(), &opts).await?;
        Ok(self.insert_found(
            parent,
            name,
            Found {
                meta,
                size: 0,
                etag: Some(r.etag),
                content_type: None,
                user_meta: opts.user_meta,
                has_marker: false,
            },
        ))
    }

    pub async fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &str,
        caller: Caller,
    ) -> Result<Entry, FsError> {
        self.ro()?;
        self.ensure_absent(parent, name).await?;
        let key = self.child_key(parent, name)?;
        let meta = MetaAttrs::new_node(FileKind::Symlink, 0o777, 0, caller.uid, caller.gid);
        let opts = attr::put_options(&meta, None);
        let body = Bytes::copy_from_slice(target.as_bytes());
        let r = self.inner.client.put(&key, body, &opts).await?;
        Ok(self.insert_found(
            parent,
            name,
            Found {
                meta,
                size: target.len() as u64,
                etag: Some(r.etag),
                content_type: None,
                user_meta: opts.user_meta,
                has_marker: false,
            },
        ))
    }

    pub async fn readlink(&self, ino: u64) -> Result<Bytes, FsError> {
        let n = self.node(ino)?;
        if n.meta.kind != FileKind::Symlink {
            return Err(fs_err(FsErrorKind::InvalidArgument, "not a symlink"));
        }
        let key = self.key_of(ino)?;
        Ok(self.inner.client.get(&key, None).await?.collect().await?)
    }

    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.ro()?;
        let n = self.resolve(parent, name).await?;
        if n.meta.kind == FileKind::Directory {
            return Err(fs_err(FsErrorKind::IsDir, name.to_string()));
        }
        let key = self.key_of(n.ino)?;
        // A file that exists only locally has no object; the delete is harmless then.
        self.inner.client.delete(&key).await?;
        let mut t = self.inner.table.lock();
        t.detach(parent, name);
        t.set_negative(parent, name, Instant::now());
        Ok(())
    }

    /// Hard links are refused: COS has no way to share one object under two keys.
    pub async fn link(
        &self,
        _ino: u64,
        _new_parent: u64,
        _new_name: &str,
    ) -> Result<Entry, FsError> {
        self.ro()?;
        Err(fs_err(
            FsErrorKind::Unsupported,
            "hard links are not supported",
        ))
    }
}

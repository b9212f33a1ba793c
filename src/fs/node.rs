//! Non-directory names: `create` of regular files, `mknod` of regular and special files
//! (FIFOs, sockets, device nodes: empty objects whose mode carries the type, see `attr`),
//! `symlink`/`readlink`, `unlink`, and the refusal of hard links (`link`).

use super::attr::MetaAttrs;
use super::error::fs_err;
use super::inode::Found;
use super::open_file::WriteState;
use super::write::Stream;
use super::{attr, not_found, Caller, CosFs, Entry, FileKind, FsError, FsErrorKind};
use crate::cos::ObjectClient;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Instant;

/// Longest symlink target (PATH_MAX without its NUL).
const SYMLINK_MAX: usize = libc::PATH_MAX as usize - 1;

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
            crc64: None,
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
                n.created(f.meta);
            }
            t.add_lookup(ino);
            t.entries_changed(parent);
            let e = t.get(ino).map(|n| self.entry_of(n));
            (e, ino)
        };
        let entry = entry.ok_or_else(|| not_found(name.to_string()))?;
        let fh = self.register_handle(ino, true, WriteState::Stream(Stream::new()));
        // Handles of an earlier file under this inode may share the state: it is a new,
        // empty file now.
        let h = self.handle(fh)?;
        let mut st = h.file.state.lock().await;
        if !matches!(&*st, WriteState::Stream(s) if s.pos == 0) {
            *st = WriteState::Stream(Stream::new());
        }
        drop(st);
        // The new file is in the bucket when this descriptor is closed (see `Changes`).
        h.dirty.lock().opened_new();
        Ok((entry, fh))
    }

    /// mknod: an empty object of the type in `mode` (no type bits: a regular file);
    /// `rdev` is kept for device nodes. Directories and symlinks have their own calls.
    pub async fn mknod(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        umask: u32,
        rdev: u32,
        caller: Caller,
    ) -> Result<Entry, FsError> {
        self.ro()?;
        let kind = match mode & attr::S_IFMT {
            0 => FileKind::File,
            t => match FileKind::from_mode(t) {
                Some(k) if k == FileKind::File || k.is_special() => k,
                _ => {
                    return Err(fs_err(
                        FsErrorKind::InvalidArgument,
                        format!("mknod of file type {t:o}"),
                    ))
                }
            },
        };
        self.ensure_absent(parent, name).await?;
        let key = self.child_key(parent, name)?;
        let mut meta = MetaAttrs::new_node(kind, mode, umask, caller.uid, caller.gid);
        if kind.is_device() {
            meta.rdev = rdev;
        }
        let opts = attr::put_options(&meta, None);
        let r = self.inner.client.put(&key, Bytes::new(), &opts).await?;
        Ok(self.insert_found(
            parent,
            name,
            Found {
                meta,
                size: 0,
                etag: Some(r.etag),
                crc64: r.crc64,
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
        if target.len() > SYMLINK_MAX {
            return Err(fs_err(
                FsErrorKind::NameTooLong,
                format!("symlink target of {} bytes", target.len()),
            ));
        }
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
                crc64: r.crc64,
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
        // The kernel takes at most PATH_MAX - 1 bytes (a longer reply is an I/O error
        // there); an object written by another tool may hold more.
        if n.size > SYMLINK_MAX as u64 {
            return Err(fs_err(
                FsErrorKind::NameTooLong,
                format!("symlink target of {} bytes", n.size),
            ));
        }
        let key = self.key_of(ino)?;
        let target = self.inner.client.get(&key, None).await?.collect().await?;
        if target.len() > SYMLINK_MAX {
            return Err(fs_err(
                FsErrorKind::NameTooLong,
                format!("symlink target of {} bytes", target.len()),
            ));
        }
        Ok(target)
    }

    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.ro()?;
        let n = self.resolve(parent, name).await?;
        if n.meta.kind == FileKind::Directory {
            return Err(fs_err(FsErrorKind::IsDir, name.to_string()));
        }
        let key = self.key_of(n.ino)?;
        self.keep_for_open_handles(n.ino).await;
        // A file that exists only locally has no object; the delete is harmless then.
        if let Err(e) = self.inner.client.delete(&key).await {
            self.forget_names(&[(parent, name)]);
            return Err(e.into());
        }
        let mut t = self.inner.table.lock();
        if let Some(n) = t.detach(parent, name).and_then(|ino| t.get_mut(ino)) {
            // Its link count fell: a change of the inode (seen through open handles).
            n.meta.changed();
        }
        t.set_negative(parent, name, Instant::now());
        t.entries_changed(parent);
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

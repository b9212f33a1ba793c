//! `rename`: files by copy + delete, directories object by object (`move_tree`), NOT
//! atomic; RENAME_EXCHANGE refused, RENAME_NOREPLACE honoured.

use super::error::fs_err;
use super::{CosFs, FileKind, FsError, FsErrorKind, RenameMode, PAGE};
use crate::cos::{list_all, CopySource, CosErrorKind, MetadataDirective, ObjectClient};
use std::time::Instant;

impl<C: ObjectClient> CosFs<C> {
    /// Renames a file (copy + delete) or a directory (each object below it, copy +
    /// delete; NOT atomic: a failure part-way leaves both trees partly populated, with no
    /// object lost). Renaming onto an existing file replaces it; onto an existing empty
    /// directory replaces that.
    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        mode: RenameMode,
    ) -> Result<(), FsError> {
        self.ro()?;
        if mode == RenameMode::Exchange {
            return Err(fs_err(
                FsErrorKind::InvalidArgument,
                "RENAME_EXCHANGE is not supported",
            ));
        }
        let src = self.resolve(parent, name).await?;
        let dst_key_base = self.child_key(new_parent, new_name)?;
        let dst = match self.resolve(new_parent, new_name).await {
            Ok(d) => Some(d),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if let Some(d) = &dst {
            if d.ino == src.ino {
                return Ok(());
            }
            if mode == RenameMode::NoReplace {
                return Err(fs_err(FsErrorKind::Exists, new_name.to_string()));
            }
        }
        let src_key = self.key_of(src.ino)?;
        // Pending writes under the source must reach the bucket before it is copied.
        self.flush_under(&src_key).await?;
        let c = &self.inner.client;
        if src.meta.kind != FileKind::Directory {
            if let Some(d) = &dst {
                if d.meta.kind == FileKind::Directory {
                    return Err(fs_err(FsErrorKind::IsDir, new_name.to_string()));
                }
                // The replaced file stays readable through descriptors open on it.
                self.keep_for_open_handles(d.ino).await;
            }
            let n = self.node(src.ino)?;
            let from = CopySource::key(&src_key)
                .size(n.size)
                .etag(n.etag.as_deref())
                .crc64(n.crc64);
            let moved = async {
                let r = c
                    .copy(&from, &dst_key_base, &MetadataDirective::Copy)
                    .await?;
                c.delete(&src_key).await?;
                Ok::<_, FsError>(r)
            }
            .await;
            let r = match moved {
                Ok(r) => r,
                Err(e) => {
                    // Either step may have acted before its answer was lost: what this mount
                    // believes of both names is in doubt, so the next look asks the bucket.
                    self.forget_names(&[(parent, name), (new_parent, new_name)]);
                    return Err(e);
                }
            };
            let mut t = self.inner.table.lock();
            t.rename(parent, name, new_parent, new_name);
            if let Some(n) = t.get_mut(src.ino) {
                n.copied(r.etag, r.crc64);
            }
            t.set_negative(parent, name, Instant::now());
            return Ok(());
        }
        // Directory.
        let dst_prefix = format!("{dst_key_base}/");
        if dst_prefix.starts_with(&src_key) {
            return Err(fs_err(
                FsErrorKind::InvalidArgument,
                "cannot move a directory into itself",
            ));
        }
        if let Some(d) = &dst {
            if d.meta.kind != FileKind::Directory {
                return Err(fs_err(FsErrorKind::NotDir, new_name.to_string()));
            }
            if self.dir_has_children(&dst_prefix, d.ino).await? {
                return Err(fs_err(FsErrorKind::NotEmpty, dst_prefix));
            }
            c.delete(&dst_prefix).await?;
        }
        if let Err(e) = self.move_tree(&src_key, &dst_prefix).await {
            self.forget_names(&[(parent, name), (new_parent, new_name)]);
            self.inner.table.lock().invalidate_subtree(src.ino);
            return Err(e);
        }
        let mut t = self.inner.table.lock();
        t.rename(parent, name, new_parent, new_name);
        // Copies get new ETags (under SSE-KMS/SSE-C they are not MD5s): everything below
        // must be looked at again; the directory keeps its attributes (and the ctime the
        // rename gave it) with its marker's ETag unknown.
        if let Some(n) = t.get_mut(src.ino) {
            n.moved_by_copy();
        }
        t.invalidate_subtree(src.ino);
        t.set_negative(parent, name, Instant::now());
        Ok(())
    }

    /// Drops what this mount believes about these names (after an operation on them
    /// failed with an unknown outcome): cached attributes go stale, negative entries go.
    pub(super) fn forget_names(&self, names: &[(u64, &str)]) {
        let mut t = self.inner.table.lock();
        for (parent, name) in names {
            t.clear_negative(*parent, name);
            if let Some(ino) = t.child(*parent, name).map(|n| n.ino) {
                t.invalidate(ino);
            }
        }
    }

    /// Copies every object under `src` to the same name under `dst`, then deletes the
    /// sources (in batches of 1000). Copies run `parallel_count` at a time.
    pub(super) async fn move_tree(&self, src: &str, dst: &str) -> Result<(), FsError> {
        let c = &self.inner.client;
        let keys: Vec<(String, u64, String)> = list_all(&**c, src, None, PAGE)
            .await?
            .objects
            .into_iter()
            .map(|o| (o.key, o.size, o.etag))
            .collect();
        let par = self.inner.config.parallel_count.max(1);
        for chunk in keys.chunks(par) {
            let copies = chunk.iter().map(|(k, size, etag)| {
                let to = format!("{dst}{}", &k[src.len()..]);
                let from = CopySource::key(k).size(*size).etag(Some(etag));
                async move { c.copy(&from, &to, &MetadataDirective::Copy).await }
            });
            for r in futures::future::join_all(copies).await {
                r?;
            }
        }
        let all: Vec<String> = keys.into_iter().map(|(k, _, _)| k).collect();
        for chunk in all.chunks(PAGE as usize) {
            let failed = c.delete_many(chunk).await?;
            if let Some((k, code)) = failed.0.first() {
                return Err(fs_err(
                    FsErrorKind::Cos(CosErrorKind::ServerError),
                    format!("delete of {k} failed with {code} after it was copied"),
                ));
            }
        }
        Ok(())
    }
}

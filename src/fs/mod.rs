//! The filesystem core: `CosFs`, one async method per filesystem operation, returning
//! plain values and `FsError` kinds. It knows nothing about FUSE (the adapter in
//! `crate::fuse` turns results into replies and kinds into errno values), so all of it
//! runs in tests against `MemStore` without a kernel.
//!
//! Semantics (what a program on the mount can rely on):
//! - Namespace: mount prefix + path = object key. Directories are `dir/` marker objects
//!   (`application/x-directory`, written by mkdir) or mere prefixes of other keys. When
//!   both `name` and `name/…` exist, the directory wins and the object is hidden.
//! - Metadata: cosfs conventions (`attr`): `x-cos-meta-mode/uid/gid/mtime`, written with
//!   every object; chmod/chown/utimens rewrite them with a self-copy (or, on a file open
//!   for writing, ride along with its upload). atime and ctime are not stored.
//! - Caching: attributes and names are trusted for `stat_ttl`, missing names for
//!   `negative_ttl`; changes by other clients show up after that. Data blocks are cached
//!   by ETag, so a changed object is never served from old blocks; a handle that already
//!   returned data of one version gets ESTALE rather than a mix of two versions.
//! - Writes: a new or truncated file written sequentially streams out as a multipart
//!   upload (one PUT if it stays below one part); anything else is edited in a local
//!   staging file. Data is uploaded at flush (close), fsync and release, and on unmount;
//!   close/fsync return the upload's error, which sticks to the handle. A failed upload
//!   never replaces the previous object. A file being written is visible on this mount at
//!   once but in the bucket only after its upload; unlinking it discards the data.
//! - Rename: files are copied and deleted; directories object by object, NOT atomically
//!   (a failure part-way leaves objects in both places, none lost). RENAME_EXCHANGE is
//!   refused (EINVAL); RENAME_NOREPLACE is honoured.
//! - Refused: hard links, device/FIFO/socket nodes and extended attributes (ENOTSUP);
//!   every change on a read-only mount (EROFS).

pub mod attr;
pub mod bufpool;
pub mod config;
pub mod error;
pub mod inode;
pub mod read;
pub mod write;

pub use attr::{Attr, FileKind};
pub use config::FsConfig;
pub use error::{FsError, FsErrorKind};
pub use write::FreeSpaceProbe;

use crate::cos::{CosErrorKind, MetadataDirective, ObjectClient, ObjectMeta, PutOptions};
use attr::{Defaults, MetaAttrs};
use bytes::Bytes;
use error::fs_err;
use futures::future::{BoxFuture, FutureExt, Shared};
use inode::{Found, Inode, InodeTable, ROOT_INO};
use parking_lot::Mutex;
use read::{ObjectVersion, Prefetch, Reader};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use write::{Stream, WriteState, Writer};

/// Longest path component (NAME_MAX).
const NAME_MAX: usize = 255;
/// Longest object key COS accepts.
const KEY_MAX: usize = 850;
/// Keys per listing page.
const PAGE: u32 = crate::cos::limits::MAX_KEYS;

/// Who performs an operation (owner of new files and directories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// A directory entry answer: attributes, generation and how long the kernel may keep them.
#[derive(Debug, Clone)]
pub struct Entry {
    pub attr: Attr,
    pub generation: u64,
    pub ttl: Duration,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub name: String,
    pub kind: FileKind,
}

/// Attribute changes of a setattr.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub mtime: Option<SystemTime>,
    pub fh: Option<u64>,
}

/// How a rename treats an existing destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameMode {
    /// Replace the destination (POSIX rename).
    Replace,
    /// RENAME_NOREPLACE: fail with Exists if the destination exists.
    NoReplace,
    /// RENAME_EXCHANGE: refused (Unsupported in the answer: COS has no atomic swap).
    Exchange,
}

/// statfs numbers.
#[derive(Debug, Clone, Copy)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

/// Open flags the core cares about.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenMode {
    pub write: bool,
    pub truncate: bool,
}

impl OpenMode {
    /// From `open(2)` flags.
    pub fn from_flags(flags: i32) -> OpenMode {
        let acc = flags & libc::O_ACCMODE;
        OpenMode {
            write: acc == libc::O_WRONLY || acc == libc::O_RDWR,
            truncate: flags & libc::O_TRUNC != 0,
        }
    }
}

struct FileHandle {
    ino: u64,
    writable: bool,
    /// Some data was returned from the bucket through this handle.
    served: std::sync::atomic::AtomicBool,
    prefetch: Mutex<Prefetch>,
    state: tokio::sync::Mutex<WriteState>,
}

struct DirHandle {
    entries: Vec<DirEntry>,
}

type Pending = Shared<BoxFuture<'static, ()>>;

struct Inner<C: ObjectClient> {
    client: Arc<C>,
    config: FsConfig,
    rt: tokio::runtime::Handle,
    defaults: Defaults,
    table: Mutex<InodeTable>,
    reader: Arc<Reader<C>>,
    writer: Writer<C>,
    files: Mutex<HashMap<u64, Arc<FileHandle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next_fh: AtomicU64,
    /// Attribute HEADs started after a listing, by key; lookups wait for them.
    pending_heads: Mutex<HashMap<String, Pending>>,
}

/// The filesystem over one bucket (and prefix).
pub struct CosFs<C: ObjectClient> {
    inner: Arc<Inner<C>>,
}

impl<C: ObjectClient> Clone for CosFs<C> {
    fn clone(&self) -> Self {
        CosFs {
            inner: self.inner.clone(),
        }
    }
}

fn check_name(name: &str) -> Result<(), FsError> {
    if name.len() > NAME_MAX {
        return Err(fs_err(
            FsErrorKind::NameTooLong,
            format!("name of {} bytes", name.len()),
        ));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(fs_err(
            FsErrorKind::InvalidArgument,
            format!("bad name {name:?}"),
        ));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), FsError> {
    // A directory key carries one more byte (the trailing slash).
    if key.len() + 1 > KEY_MAX {
        return Err(fs_err(
            FsErrorKind::NameTooLong,
            format!("key of {} bytes", key.len()),
        ));
    }
    Ok(())
}

fn not_found(what: impl Into<String>) -> FsError {
    fs_err(FsErrorKind::NotFound, what)
}

impl<C: ObjectClient> CosFs<C> {
    /// A filesystem over `client`. `rt` runs background work (prefetch, part uploads).
    pub fn new(
        client: Arc<C>,
        config: FsConfig,
        rt: tokio::runtime::Handle,
    ) -> std::io::Result<Self> {
        if !config.prefix.is_empty() && !config.prefix.ends_with('/') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "mount prefix must be empty or end in '/'",
            ));
        }
        std::fs::create_dir_all(&config.staging_dir)?;
        let defaults = Defaults {
            uid: config.uid,
            gid: config.gid,
            umask: config.umask,
        };
        let mut root = attr::implicit_dir(&defaults);
        root.mtime = SystemTime::now();
        // Half of the budget caches blocks, half buffers writes.
        let half = (config.memory_budget / 2).max(config.block_size);
        let reader = Arc::new(Reader::new(
            client.clone(),
            half,
            config.block_size,
            config.max_prefetch,
            config.parallel_count,
            rt.clone(),
        ));
        let writer = Writer::new(
            client.clone(),
            config.part_size,
            config.parallel_count,
            half,
            config.staging_dir.clone(),
            config.staging_min_free,
        );
        let table = InodeTable::new(
            config.prefix.clone(),
            root,
            config.stat_ttl,
            config.negative_ttl,
        );
        Ok(CosFs {
            inner: Arc::new(Inner {
                client,
                config,
                rt,
                defaults,
                table: Mutex::new(table),
                reader,
                writer,
                files: Mutex::new(HashMap::new()),
                dirs: Mutex::new(HashMap::new()),
                next_fh: AtomicU64::new(1),
                pending_heads: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Replaces the free-space check of the staging directory (tests simulate a full disk).
    pub fn set_free_space_probe(&self, probe: FreeSpaceProbe) {
        *self.inner.writer.probe.write() = probe;
    }

    /// The runtime background work runs on (and the FUSE adapter blocks on).
    pub fn runtime(&self) -> tokio::runtime::Handle {
        self.inner.rt.clone()
    }

    pub fn config(&self) -> &FsConfig {
        &self.inner.config
    }

    /// Bytes held by the block cache.
    pub fn cached_bytes(&self) -> u64 {
        self.inner.reader.cache().bytes()
    }

    fn ro(&self) -> Result<(), FsError> {
        if self.inner.config.read_only {
            return Err(fs_err(FsErrorKind::ReadOnly, "read-only mount"));
        }
        Ok(())
    }

    fn entry_of(&self, n: &Inode) -> Entry {
        Entry {
            attr: n.attr(),
            generation: n.generation,
            ttl: self.inner.config.stat_ttl,
        }
    }

    fn node(&self, ino: u64) -> Result<Inode, FsError> {
        self.inner
            .table
            .lock()
            .get(ino)
            .cloned()
            .ok_or_else(|| not_found(format!("inode {ino}")))
    }

    fn key_of(&self, ino: u64) -> Result<String, FsError> {
        self.inner
            .table
            .lock()
            .key_of(ino)
            .ok_or_else(|| not_found(format!("inode {ino}")))
    }

    // ----- lookup / getattr -------------------------------------------------------

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
                FsErrorKind::Cos(CosErrorKind::PreconditionFailed),
                format!("{} was replaced by an object of another type", n.name),
            ));
        }
        Ok(fresh.attr())
    }

    /// The current inode of `parent/name`, from the cache or the bucket.
    async fn resolve(&self, parent: u64, name: &str) -> Result<Inode, FsError> {
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
    async fn lookup_remote(&self, key: &str) -> Result<Option<Found>, FsError> {
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

    fn found_dir_marker(&self, m: &ObjectMeta) -> Found {
        let mut meta = attr::meta_from_object(m, &self.inner.defaults);
        meta.kind = FileKind::Directory;
        Found {
            meta,
            size: 0,
            etag: Some(m.etag.clone()),
            content_type: m.content_type.clone(),
            user_meta: m.user_meta.clone(),
            has_marker: true,
        }
    }

    fn found_implicit_dir(&self) -> Found {
        Found {
            meta: attr::implicit_dir(&self.inner.defaults),
            size: 0,
            etag: None,
            content_type: None,
            user_meta: BTreeMap::new(),
            has_marker: false,
        }
    }

    // ----- directories ------------------------------------------------------------

    /// Lists the directory (all pages) into a snapshot that readdir serves with stable
    /// offsets, and starts fetching missing attributes in the background.
    pub async fn opendir(&self, ino: u64) -> Result<u64, FsError> {
        let n = self.node(ino)?;
        if n.meta.kind != FileKind::Directory {
            return Err(fs_err(FsErrorKind::NotDir, format!("inode {ino}")));
        }
        let prefix = self.key_of(ino)?;
        let mut objects = Vec::new();
        let mut prefixes = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .inner
                .client
                .list(&prefix, Some("/"), marker.as_deref(), PAGE)
                .await?;
            let last_obj = page.objects.last().map(|o| o.key.clone());
            let last_cp = page.common_prefixes.last().cloned();
            objects.extend(page.objects);
            prefixes.extend(page.common_prefixes);
            match page.next_marker {
                Some(m) if !m.is_empty() => marker = Some(m),
                // Truncated without a marker is not expected from COS v1; fall back to
                // the greater of the last key and the last prefix (cos-api.md §4.2).
                Some(_) => marker = last_obj.max(last_cp),
                None => break,
            }
            if marker.is_none() {
                break;
            }
        }
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
        let fh = self.inner.next_fh.fetch_add(1, Ordering::Relaxed);
        self.inner
            .dirs
            .lock()
            .insert(fh, Arc::new(DirHandle { entries }));
        Ok(fh)
    }

    /// Fetches attributes of listed entries with bounded concurrent HEADs, so the
    /// kernel's per-entry lookups (ls -l) find them cached instead of sending one HEAD +
    /// LIST each, in sequence.
    fn prefetch_attrs(&self, parent: u64, items: Vec<(String, String, bool)>) {
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
                        Err(e) if e.kind == CosErrorKind::NotFound => Some(me.found_implicit_dir()),
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
        let meta = MetaAttrs {
            kind: FileKind::Directory,
            perm: (mode & !umask & 0o7777) as u16,
            uid: caller.uid,
            gid: caller.gid,
            mtime: SystemTime::now(),
        };
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
            content_type: opts.content_type,
            user_meta: opts.user_meta,
            has_marker: true,
        };
        Ok(self.insert_found(parent, name, f))
    }

    fn insert_found(&self, parent: u64, name: &str, f: Found) -> Entry {
        let mut t = self.inner.table.lock();
        let ino = t.upsert(parent, name, f, Instant::now());
        t.add_lookup(ino);
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
                },
                generation: 0,
                ttl: Duration::ZERO,
            },
        }
    }

    fn child_key(&self, parent: u64, name: &str) -> Result<String, FsError> {
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
    async fn ensure_absent(&self, parent: u64, name: &str) -> Result<(), FsError> {
        match self.resolve(parent, name).await {
            Ok(_) => Err(fs_err(FsErrorKind::Exists, name.to_string())),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the directory `prefix` (ending in '/') holds anything but its marker.
    async fn dir_has_children(&self, prefix: &str, ino: u64) -> Result<bool, FsError> {
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
        Ok(())
    }

    // ----- files: create / unlink / symlink -----------------------------------------

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
        let meta = MetaAttrs {
            kind: FileKind::File,
            perm: (mode & !umask & 0o7777) as u16,
            uid: caller.uid,
            gid: caller.gid,
            mtime: SystemTime::now(),
        };
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
        let meta = MetaAttrs {
            kind: FileKind::File,
            perm: (mode & !umask & 0o7777) as u16,
            uid: caller.uid,
            gid: caller.gid,
            mtime: SystemTime::now(),
        };
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
        let meta = MetaAttrs {
            kind: FileKind::Symlink,
            perm: 0o777,
            uid: caller.uid,
            gid: caller.gid,
            mtime: SystemTime::now(),
        };
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

    // ----- rename -------------------------------------------------------------------

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
            }
            let size = self.node(src.ino)?.size;
            let r = c
                .copy(
                    &src_key,
                    &dst_key_base,
                    Some(size),
                    &MetadataDirective::Copy,
                )
                .await?;
            c.delete(&src_key).await?;
            let mut t = self.inner.table.lock();
            t.rename(parent, name, new_parent, new_name);
            if let Some(n) = t.get_mut(src.ino) {
                n.etag = Some(r.etag);
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
        self.move_tree(&src_key, &dst_prefix).await?;
        let mut t = self.inner.table.lock();
        t.rename(parent, name, new_parent, new_name);
        t.invalidate_subtree(src.ino);
        t.set_negative(parent, name, Instant::now());
        Ok(())
    }

    /// Copies every object under `src` to the same name under `dst`, then deletes the
    /// sources (in batches of 1000). Copies run `parallel_count` at a time.
    async fn move_tree(&self, src: &str, dst: &str) -> Result<(), FsError> {
        let c = &self.inner.client;
        let mut marker: Option<String> = None;
        let mut keys: Vec<(String, u64)> = Vec::new();
        loop {
            let page = c.list(src, None, marker.as_deref(), PAGE).await?;
            let last = page.objects.last().map(|o| o.key.clone());
            keys.extend(page.objects.into_iter().map(|o| (o.key, o.size)));
            match page.next_marker {
                Some(m) if !m.is_empty() => marker = Some(m),
                Some(_) => marker = last,
                None => break,
            }
            if marker.is_none() {
                break;
            }
        }
        let par = self.inner.config.parallel_count.max(1);
        for chunk in keys.chunks(par) {
            let copies = chunk.iter().map(|(k, size)| {
                let to = format!("{dst}{}", &k[src.len()..]);
                async move { c.copy(k, &to, Some(*size), &MetadataDirective::Copy).await }
            });
            for r in futures::future::join_all(copies).await {
                r?;
            }
        }
        let all: Vec<String> = keys.into_iter().map(|(k, _)| k).collect();
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

    // ----- open / read / write ------------------------------------------------------

    fn register_handle(&self, ino: u64, writable: bool, state: WriteState) -> u64 {
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

    fn handle(&self, fh: u64) -> Result<Arc<FileHandle>, FsError> {
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
    fn mark_local(&self, ino: u64, size: Option<u64>) {
        if let Some(n) = self.inner.table.lock().get_mut(ino) {
            n.local = true;
            n.meta.mtime = SystemTime::now();
            if let Some(s) = size {
                n.size = s;
            }
        }
    }

    /// The object version a read of `ino` sees, HEADing it when the ETag is unknown.
    async fn version(&self, ino: u64) -> Result<ObjectVersion, FsError> {
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
    async fn pending_writer(&self, ino: u64) -> Option<Arc<FileHandle>> {
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
    async fn to_staging(&self, ino: u64, st: &mut WriteState) -> Result<(), FsError> {
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

    /// Key and object attributes an upload of `ino` uses now.
    fn upload_target(&self, ino: u64) -> Result<(String, PutOptions), FsError> {
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
    async fn finish_stream(&self, ino: u64, s: Stream) -> Result<(), FsError> {
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

    fn uploaded(&self, ino: u64, etag: String, size: u64) {
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

    async fn flush_state(&self, ino: u64, st: &mut WriteState) -> Result<(), FsError> {
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
    async fn flush_under(&self, prefix: &str) -> Result<(), FsError> {
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

    // ----- setattr ------------------------------------------------------------------

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

    async fn truncate(&self, ino: u64, size: u64, fh: Option<u64>) -> Result<(), FsError> {
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

    // ----- misc ---------------------------------------------------------------------

    pub fn statfs(&self) -> StatFs {
        // COS has no capacity limit: report a large, constant, mostly free volume.
        const BLOCKS: u64 = 1 << 40;
        StatFs {
            blocks: BLOCKS,
            bfree: BLOCKS,
            bavail: BLOCKS,
            files: 1 << 32,
            ffree: 1 << 32,
            bsize: 4096,
            namelen: NAME_MAX as u32,
            frsize: 4096,
        }
    }

    /// Extended attributes are not supported (COS user metadata is used for the POSIX
    /// attributes; exposing it as xattrs broke `mv` for cosfs users).
    pub fn xattr_unsupported(&self) -> FsError {
        fs_err(
            FsErrorKind::Unsupported,
            "extended attributes are not supported",
        )
    }

    /// The number of inodes in the table (tests).
    pub fn inode_count(&self) -> usize {
        self.inner.table.lock().len()
    }
}

fn strip_mtime(o: &PutOptions) -> (Option<String>, BTreeMap<String, String>) {
    let mut m = o.user_meta.clone();
    m.remove("mtime");
    (o.content_type.clone(), m)
}

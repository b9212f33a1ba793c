//! The filesystem core: `CosFs`, one async method per filesystem operation, returning
//! plain values and `FsError` kinds. It knows nothing about FUSE (the adapter in
//! `crate::fuse` turns results into replies and kinds into errno values), so all of it
//! runs in tests against `MemStore` without a kernel.
//!
//! This file holds the shared types, the registry tables and `CosFs::new`; the operations
//! are `impl CosFs` blocks in one submodule per area: `lookup` (names and attributes),
//! `dir` (listing, mkdir, rmdir), `node` (create, mknod, symlink, unlink), `rename`,
//! `file` (open, read, write), `flush` (uploads at flush/fsync/release/unmount) and
//! `setattr`. Below them, `handles` registers file and directory handles, `inode` is the
//! inode table (whose entries change through methods named for what happened),
//! `open_file` the shared write state of an open file (and its rules), `read` the block
//! cache and prefetch, `verify` the end-to-end check of whole reads, `write` the streaming
//! uploads, `staging` the private staging area, `budget` the one memory budget and `attr`
//! the metadata conventions.
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
//!   staging file. All handles of a file share one write state (`open_file`). Data is
//!   uploaded at flush (close), fsync and release, and on unmount. An error returned for
//!   a file is returned again by every later write, read, fsync, flush and close of it
//!   until its last handle closes, and a failed upload never replaces the previous
//!   object. A file being written is visible on this mount at once but in the bucket only
//!   after its upload; unlinking it discards the data.
//! - Reads: a read that completes a whole read of an object is checked against the
//!   object's CRC-64 (`verify`); a mismatch is EIO, never wrong bytes.
//! - Rename: files are copied and deleted; directories object by object, NOT atomically
//!   (a failure part-way leaves objects in both places, none lost). RENAME_EXCHANGE is
//!   refused (EINVAL); RENAME_NOREPLACE is honoured.
//! - Refused: hard links, device/FIFO/socket nodes and extended attributes (ENOTSUP);
//!   every change on a read-only mount (EROFS).

pub mod attr;
pub mod budget;
pub mod bufpool;
pub mod config;
pub mod error;
pub mod inode;
pub mod open_file;
pub mod read;
pub mod staging;
pub mod verify;
pub mod write;

mod dir;
mod file;
mod flush;
mod handles;
mod lookup;
mod node;
mod rename;
mod setattr;

pub use attr::{Attr, FileKind};
pub use config::FsConfig;
pub use error::{FsError, FsErrorKind};
pub use staging::FreeSpaceProbe;

use crate::cos::ObjectClient;
use attr::Defaults;
use budget::MemoryBudget;
use error::fs_err;
use futures::future::{BoxFuture, Shared};
use handles::{DirHandle, FileHandle};
use inode::{Inode, InodeTable};
use open_file::OpenFile;
use parking_lot::Mutex;
use read::Reader;
use staging::StagingArea;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use write::Writer;

/// Longest path component (NAME_MAX).
const NAME_MAX: usize = 255;
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
    pub atime: Option<SystemTime>,
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

/// What the data paths counted over the life of a mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Whole reads whose bytes matched the object's CRC-64.
    pub reads_verified: u64,
    /// Whole reads that did not match (answered EIO).
    pub read_mismatches: u64,
    /// Whole reads of objects COS reported no CRC-64 for.
    pub reads_without_checksum: u64,
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

type Pending = Shared<BoxFuture<'static, ()>>;

struct Inner<C: ObjectClient> {
    client: Arc<C>,
    config: FsConfig,
    rt: tokio::runtime::Handle,
    defaults: Defaults,
    table: Mutex<InodeTable>,
    budget: Arc<MemoryBudget>,
    reader: Arc<Reader<C>>,
    writer: Writer<C>,
    files: Mutex<HashMap<u64, Arc<FileHandle>>>,
    /// Inodes with open handles → their shared write state.
    open_files: Mutex<HashMap<u64, Arc<OpenFile>>>,
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
    if key.len() + 1 > crate::cos::limits::MAX_KEY_LEN {
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
        config
            .validate()
            .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
        let defaults = Defaults {
            uid: config.uid,
            gid: config.gid,
            umask: config.umask,
        };
        let mut root = attr::implicit_dir(&defaults);
        root.mtime = SystemTime::now();
        let staging = StagingArea::open(
            config.staging_dir.as_deref(),
            config.staging_min_free,
            config.max_staging_files,
        )?;
        let budget = MemoryBudget::new(config.memory_budget);
        let reader = Arc::new(Reader::new(
            client.clone(),
            budget.clone(),
            config.block_size,
            config.max_prefetch,
            config.parallel_count,
            rt.clone(),
        ));
        let writer = Writer::new(
            client.clone(),
            config.part_size,
            config.parallel_count,
            budget.clone(),
            staging,
            rt.clone(),
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
                budget,
                reader,
                writer,
                files: Mutex::new(HashMap::new()),
                open_files: Mutex::new(HashMap::new()),
                dirs: Mutex::new(HashMap::new()),
                next_fh: AtomicU64::new(1),
                pending_heads: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Replaces the free-space check of the staging directory (tests simulate a full disk).
    pub fn set_free_space_probe(&self, probe: FreeSpaceProbe) {
        self.inner.writer.staging.set_probe(probe);
    }

    /// The staging directory in use.
    pub fn staging_dir(&self) -> &std::path::Path {
        self.inner.writer.staging.dir()
    }

    /// Staging files open now.
    pub fn staging_files_open(&self) -> usize {
        self.inner.writer.staging.files_open()
    }

    /// Bytes of the memory budget reserved now.
    pub fn memory_used(&self) -> u64 {
        self.inner.budget.used()
    }

    /// Counters of the mount's data paths, for the log line at unmount and for tests.
    pub fn stats(&self) -> FsStats {
        let r = &self.inner.reader.stats;
        FsStats {
            reads_verified: r.verified.load(Ordering::Relaxed),
            read_mismatches: r.mismatches.load(Ordering::Relaxed),
            reads_without_checksum: r.no_checksum.load(Ordering::Relaxed),
        }
    }

    /// The runtime background work runs on (and the FUSE adapter blocks on).
    pub fn runtime(&self) -> tokio::runtime::Handle {
        self.inner.rt.clone()
    }

    pub fn config(&self) -> &FsConfig {
        &self.inner.config
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
}

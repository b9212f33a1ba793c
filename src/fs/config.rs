//! `FsConfig`: every knob of the filesystem core, with its default and why.

use std::path::PathBuf;
use std::time::Duration;

/// Configuration of `CosFs`. Built by the CLI (or by tests).
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Key prefix the mount is rooted at: `""` for the whole bucket, else ending in `/`.
    pub prefix: String,
    /// Owner reported for objects that carry no `x-cos-meta-uid` (default: the mounting user).
    pub uid: u32,
    /// Group reported for objects that carry no `x-cos-meta-gid`.
    pub gid: u32,
    /// Permission bits removed from objects without `x-cos-meta-mode` (files default to
    /// 0666 & !umask, directories to 0777 & !umask), cosfs's `umask=`.
    pub umask: u32,
    /// Mount is read-only: every mutating op fails with EROFS.
    pub read_only: bool,
    /// How long attributes and directory entries are trusted (cosfs `stat_cache_expire`).
    pub stat_ttl: Duration,
    /// How long a name known not to exist is trusted.
    pub negative_ttl: Duration,
    /// Size of the blocks of the read cache.
    pub block_size: u64,
    /// Bytes of memory shared by the block cache, prefetch and write buffers.
    pub memory_budget: u64,
    /// Largest read-ahead window per open file.
    pub max_prefetch: u64,
    /// Multipart part size (cosfs `multipart_size`, MiB there); grows for files beyond
    /// 10,000 parts.
    pub part_size: u64,
    /// Concurrent requests per transfer (cosfs `parallel_count`).
    pub parallel_count: usize,
    /// Directory for staging files of random writes: created 0700 if missing, refused if
    /// not private. `None`: a fresh private directory under `$TMPDIR`, removed at exit.
    pub staging_dir: Option<PathBuf>,
    /// Free bytes to keep on the staging file system; writes that would go below fail with ENOSPC.
    pub staging_min_free: u64,
    /// Most staging files open at once; a write needing one more fails with EMFILE. Each
    /// holds a file descriptor, so the CLI derives it from the process's RLIMIT_NOFILE
    /// minus room for sockets, the FUSE device and logs.
    pub max_staging_files: usize,
    /// `x-cos-storage-class` of new objects is a client setting; nothing here.
    /// Concurrent HEADs used to fetch attributes for a directory listing (0: do not
    /// fetch attributes after a listing; each lookup then asks the bucket itself).
    pub listing_head_concurrency: usize,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            prefix: String::new(),
            // SAFETY: getuid cannot fail and touches no memory of ours.
            uid: unsafe { libc::getuid() },
            // SAFETY: as getuid.
            gid: unsafe { libc::getgid() },
            umask: 0o022,
            read_only: false,
            // cosfs keeps stats forever by default; 60 s lets other clients' changes show.
            stat_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            // 1 MiB blocks: large enough to amortise a request, small enough for random reads.
            block_size: 1024 * 1024,
            // Keeps peak RSS well under 512 MiB with default settings.
            memory_budget: 256 * 1024 * 1024,
            max_prefetch: 64 * 1024 * 1024,
            // cosfs's default multipart size.
            part_size: 10 * 1024 * 1024,
            parallel_count: 8,
            staging_dir: None,
            staging_min_free: 1024 * 1024 * 1024,
            // For library users; the CLI derives its own from the raised fd limit.
            max_staging_files: 4096,
            listing_head_concurrency: 32,
        }
    }
}

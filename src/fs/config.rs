//! `FsConfig`: every knob of the filesystem core, with its default and why.

use crate::cos::limits::{MAX_PART_SIZE, MIN_PART_SIZE};
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

/// Smallest block of the read cache: one page.
pub const MIN_BLOCK_SIZE: u64 = 4096;

impl FsConfig {
    /// The rules a configuration must keep, checked once here (by `CosFs::new`, and by
    /// the CLI to answer a usage error) rather than clamped silently where the values are
    /// used. The message names the option as the command line spells it.
    pub fn validate(&self) -> Result<(), String> {
        const MIB: u64 = 1024 * 1024;
        if !self.prefix.is_empty() && !self.prefix.ends_with('/') {
            return Err(format!(
                "mount prefix {:?} must be empty or end in '/'",
                self.prefix
            ));
        }
        if self.umask & !0o777 != 0 {
            return Err(format!("umask {:o} has bits beyond 0777", self.umask));
        }
        if self.block_size < MIN_BLOCK_SIZE {
            return Err(format!(
                "block_size ({} bytes) must be at least {MIN_BLOCK_SIZE} bytes",
                self.block_size
            ));
        }
        // The cache needs room for a few blocks besides in-flight parts.
        if self.memory_budget < 4 * self.block_size {
            return Err(format!(
                "memory_limit ({} MiB) must be at least 4 blocks of block_size ({} KiB)",
                self.memory_budget / MIB,
                self.block_size >> 10
            ));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(format!(
                "multipart_size ({} bytes) must be between {} MiB and {} MiB, the part sizes COS accepts",
                self.part_size,
                MIN_PART_SIZE / MIB,
                MAX_PART_SIZE / MIB
            ));
        }
        if self.parallel_count == 0 {
            return Err("parallel_count must be at least 1".into());
        }
        if self.max_prefetch < self.block_size {
            return Err(format!(
                "the read-ahead window ({} bytes) must hold at least one block ({} bytes)",
                self.max_prefetch, self.block_size
            ));
        }
        Ok(())
    }
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            prefix: String::new(),
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl FnOnce(&mut FsConfig)) -> Result<(), String> {
        let mut c = FsConfig::default();
        f(&mut c);
        c.validate()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(FsConfig::default().validate(), Ok(()));
    }

    #[test]
    fn each_rule_names_what_to_change() {
        let msg = |f: fn(&mut FsConfig)| check(f).expect_err("refused");
        assert!(msg(|c| c.prefix = "a".into()).contains("prefix"));
        assert!(msg(|c| c.umask = 0o1022).contains("umask"));
        assert!(msg(|c| c.block_size = 512).contains("block_size"));
        assert!(msg(|c| c.memory_budget = 3 * c.block_size).contains("memory_limit"));
        assert!(msg(|c| c.part_size = MIN_PART_SIZE - 1).contains("multipart_size"));
        assert!(msg(|c| c.part_size = MAX_PART_SIZE + 1).contains("multipart_size"));
        assert!(msg(|c| c.parallel_count = 0).contains("parallel_count"));
        assert!(msg(|c| c.max_prefetch = c.block_size - 1).contains("read-ahead"));
        // The edges themselves are allowed.
        assert_eq!(check(|c| c.prefix = "a/".into()), Ok(()));
        assert_eq!(check(|c| c.memory_budget = 4 * c.block_size), Ok(()));
        assert_eq!(check(|c| c.part_size = MIN_PART_SIZE), Ok(()));
        assert_eq!(check(|c| c.block_size = MIN_BLOCK_SIZE), Ok(()));
    }
}

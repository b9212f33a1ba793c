//! The FUSE adapter: the only `impl fuser::Filesystem`, and `serve`, which mounts it.
//!
//! Each callback converts its arguments, runs the matching `CosFs` method with
//! `Handle::block_on` (fuser threads are plain OS threads, never runtime workers), and
//! replies. errno values are decided here and only here, by one exhaustive match over
//! `FsErrorKind` (`errno_of`). Handler bodies run under `catch_unwind`: a panic is logged
//! and answered with EIO instead of killing a worker thread. Every operation is either
//! implemented or refused with a named errno: hard links, special files and xattrs get
//! ENOTSUP, RENAME_EXCHANGE gets EINVAL, and every mutation on a read-only mount EROFS.

pub mod lazy_unmount;
use crate::cos::{CosErrorKind, ObjectClient};
use crate::fs::{Attr, Caller, CosFs, Entry, FileKind, FsError, FsErrorKind, RenameMode, SetAttr};
use fuser::{
    AccessFlags, BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, Session, SessionACL, TimeOrNow,
    WriteFlags,
};
use std::ffi::OsStr;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub mountpoint: PathBuf,
    /// Source shown in mtab, e.g. "cosmount:bucket-appid".
    pub fsname: String,
    pub allow_other: bool,
    pub read_only: bool,
    /// FUSE worker threads.
    pub threads: usize,
    pub auto_unmount: bool,
}

/// The errno for an error kind. Exhaustive on purpose: a new kind does not compile until
/// it has an errno. Pure: logging is `CosFuse::call`'s job.
pub fn errno_of(e: &FsError) -> i32 {
    match e.kind {
        FsErrorKind::Cos(k) => match k {
            CosErrorKind::NotFound => libc::ENOENT,
            CosErrorKind::AccessDenied => libc::EACCES,
            CosErrorKind::SseKeyRejected => libc::EIO,
            CosErrorKind::PreconditionFailed => libc::ESTALE,
            CosErrorKind::InvalidRange => libc::EINVAL,
            // Refused locally by the client (a size or key COS would reject). Over-long
            // names never get here: the core answers NameTooLong before sending.
            CosErrorKind::Refused => libc::EINVAL,
            CosErrorKind::Conflict
            | CosErrorKind::BadRequest
            | CosErrorKind::Throttled
            | CosErrorKind::ServerError
            | CosErrorKind::Timeout
            | CosErrorKind::Transport
            | CosErrorKind::InvalidResponse
            | CosErrorKind::IntegrityMismatch => libc::EIO,
        },
        FsErrorKind::NotFound => libc::ENOENT,
        FsErrorKind::NotEmpty => libc::ENOTEMPTY,
        FsErrorKind::IsDir => libc::EISDIR,
        FsErrorKind::NotDir => libc::ENOTDIR,
        FsErrorKind::Exists => libc::EEXIST,
        FsErrorKind::NoSpace => libc::ENOSPC,
        FsErrorKind::ReadOnly => libc::EROFS,
        FsErrorKind::Unsupported => libc::ENOTSUP,
        FsErrorKind::InvalidArgument => libc::EINVAL,
        FsErrorKind::NameTooLong => libc::ENAMETOOLONG,
        FsErrorKind::FileTooLarge => libc::EFBIG,
        FsErrorKind::BadHandle => libc::EBADF,
        FsErrorKind::TooManyFiles => libc::EMFILE,
        FsErrorKind::LocalIo => libc::EIO,
        FsErrorKind::Stale => libc::ESTALE,
    }
}

fn to_kind(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
    }
}

/// Answers an operation that yields a directory entry (lookup, mknod, mkdir, symlink).
fn reply_entry(reply: ReplyEntry, r: Result<Entry, Errno>) {
    match r {
        Ok(e) => reply.entry(&e.ttl, &to_attr(&e.attr), Generation(e.generation)),
        Err(e) => reply.error(e),
    }
}

fn to_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: to_kind(a.kind),
        perm: a.perm,
        nlink: if a.kind == FileKind::Directory { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time_of(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// The fuser filesystem: a thin wrapper over `CosFs`.
pub struct CosFuse<C: ObjectClient> {
    fs: CosFs<C>,
    rt: tokio::runtime::Handle,
}

impl<C: ObjectClient> CosFuse<C> {
    pub fn new(fs: CosFs<C>, rt: tokio::runtime::Handle) -> Self {
        CosFuse { fs, rt }
    }

    /// Runs one operation: block_on under catch_unwind; errors become an errno (logged
    /// at debug for the expected ENOENT, warn otherwise).
    fn call<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<T, FsError>>,
    ) -> Result<T, Errno> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.rt.block_on(f))) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let errno = errno_of(&e);
                if e.kind == FsErrorKind::Cos(CosErrorKind::SseKeyRejected) {
                    // What the admin must fix is the key file, not the program.
                    tracing::error!(
                        op,
                        errno,
                        "no key of the SSE-C key history opens this object (or it needs a key and none is configured): {}",
                        e.message
                    );
                } else if errno == libc::ENOENT {
                    tracing::debug!(op, error = %e, "not found");
                } else if matches!(op, "write" | "read" | "flush" | "fsync" | "release") {
                    // A file's data error is logged once, as an ERROR, when the file fails;
                    // the same error answered again to later calls is not news.
                    tracing::debug!(op, errno, error = %e, "operation failed");
                } else {
                    tracing::warn!(op, errno, error = %e, "operation failed");
                }
                Err(Errno::from_i32(errno))
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(op, panic = %msg, "handler panicked; answering EIO");
                Err(Errno::EIO)
            }
        }
    }

    /// Like `call` for synchronous core methods.
    fn call_sync<T>(
        &self,
        op: &'static str,
        f: impl FnOnce() -> Result<T, FsError>,
    ) -> Result<T, Errno> {
        self.call(op, async move { f() })
    }
}

/// Replies that can carry an error (for the xattr refusals).
trait ErrorReply {
    fn fail(self, e: Errno);
}

impl ErrorReply for ReplyEmpty {
    fn fail(self, e: Errno) {
        self.error(e)
    }
}

impl ErrorReply for ReplyXattr {
    fn fail(self, e: Errno) {
        self.error(e)
    }
}

impl<C: ObjectClient> CosFuse<C> {
    /// Extended attributes are refused (ENOTSUP, see `CosFs::xattr_unsupported`). The
    /// wire answer is ENOSYS on purpose: the kernel then returns EOPNOTSUPP (= ENOTSUP)
    /// to the caller itself and stops sending xattr requests for this mount, so `ls -l`
    /// does not pay a round trip per file for security.* lookups.
    fn refuse_xattr(&self, reply: impl ErrorReply) {
        let e = self.fs.xattr_unsupported();
        debug_assert_eq!(errno_of(&e), libc::ENOTSUP);
        reply.fail(Errno::ENOSYS);
    }
}

/// How the kernel should treat a new file handle. A write-only handle bypasses the
/// kernel page cache (direct I/O): its writes reach us unchanged either way (no writeback
/// cache), but through the page cache every byte is first copied into cache pages of the
/// file that nobody reads back. A write-only descriptor cannot be read or mapped shared,
/// so nothing is lost; the kernel drops cached pages of the written range for other handles.
fn fopen_flags(open_flags: i32) -> FopenFlags {
    if open_flags & libc::O_ACCMODE == libc::O_WRONLY {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::empty()
    }
}

fn name_str(name: &OsStr) -> Result<&str, Errno> {
    // Object keys are UTF-8; other names cannot be stored.
    name.to_str().ok_or(Errno::EINVAL)
}

impl<C: ObjectClient> Filesystem for CosFuse<C> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_write(1024 * 1024) {
            let _ = config.set_max_write(max);
        }
        if let Err(max) = config.set_max_readahead(1024 * 1024) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        let want = InitFlags::FUSE_ATOMIC_O_TRUNC | InitFlags::FUSE_PARALLEL_DIROPS;
        if let Err(missing) = config.add_capabilities(want) {
            tracing::warn!(
                ?missing,
                "kernel lacks FUSE capabilities; continuing without them"
            );
            let _ = config.add_capabilities(want - missing);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(e) = self.call("destroy", self.fs.flush_all()) {
            tracing::error!(errno = e.code(), "pending uploads failed at unmount");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = name_str(name).and_then(|n| self.call("lookup", self.fs.lookup(parent.0, n)));
        reply_entry(reply, r)
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.call("getattr", self.fs.getattr(ino.0)) {
            Ok(a) => reply.attr(&self.fs.config().stat_ttl, &to_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let s = SetAttr {
            mode,
            uid,
            gid,
            size,
            mtime: mtime.map(time_of),
            fh: fh.map(|f| f.0),
        };
        match self.call("setattr", self.fs.setattr(ino.0, s)) {
            Ok(a) => reply.attr(&self.fs.config().stat_ttl, &to_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.call("readlink", self.fs.readlink(ino.0)) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let c = caller(req);
        let r = name_str(name)
            .and_then(|n| self.call("mknod", self.fs.mknod(parent.0, n, mode, umask, c)));
        reply_entry(reply, r)
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let c = caller(req);
        let r = name_str(name)
            .and_then(|n| self.call("mkdir", self.fs.mkdir(parent.0, n, mode, umask, c)));
        reply_entry(reply, r)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = name_str(name).and_then(|n| self.call("unlink", self.fs.unlink(parent.0, n)));
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = name_str(name).and_then(|n| self.call("rmdir", self.fs.rmdir(parent.0, n)));
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let c = caller(req);
        let r = name_str(link_name).and_then(|n| {
            let t = target.to_str().ok_or(Errno::EINVAL)?;
            self.call("symlink", self.fs.symlink(parent.0, n, t, c))
        });
        reply_entry(reply, r)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            // RENAME_WHITEOUT and unknown flags.
            return reply.error(Errno::EINVAL);
        };
        let r = name_str(name).and_then(|n| {
            let nn = name_str(newname)?;
            self.call("rename", self.fs.rename(parent.0, n, newparent.0, nn, mode))
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r =
            name_str(newname).and_then(|n| self.call("link", self.fs.link(ino.0, newparent.0, n)));
        reply_entry(reply, r)
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.call("open", self.fs.open(ino.0, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), fopen_flags(flags.0)),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.call("read", self.fs.read(fh.0, offset, size)) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let owner = lock_owner.map(|o| o.0);
        match self.call("write", self.fs.write_as(fh.0, offset, data, owner)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.call("flush", self.fs.flush_as(fh.0, Some(lock_owner.0))) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.call("release", self.fs.release(fh.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.call("fsync", self.fs.fsync(fh.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.call("opendir", self.fs.opendir(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = self.call_sync("readdir", || {
            self.fs.readdir(fh.0, offset, |e, next| {
                reply.add(INodeNo(e.ino), next, to_kind(e.kind), &e.name)
            })
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory changes are sent to COS when they happen: nothing is pending.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.refuse_xattr(reply);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        self.refuse_xattr(reply);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        self.refuse_xattr(reply);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        self.refuse_xattr(reply);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // With default_permissions the kernel checks modes itself; this only confirms
        // that the inode exists.
        match self.call("access", self.fs.getattr(ino.0)) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let c = caller(req);
        let r = name_str(name)
            .and_then(|n| self.call("create", self.fs.create(parent.0, n, mode, umask, flags, c)));
        match r {
            Ok((e, fh)) => reply.created(
                &e.ttl,
                &to_attr(&e.attr),
                Generation(e.generation),
                FileHandle(fh),
                fopen_flags(flags),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::from_i32(libc::EOPNOTSUPP));
    }
}

/// Kernel read-ahead for this mount, in KiB. FUSE negotiates at most the kernel's
/// default (128 KiB) at init, which splits sequential reads into many small requests;
/// the mount's BDI setting can be raised afterwards (root only; best effort).
const READ_AHEAD_KB: u32 = 1024;

/// `device` is the mount's "major:minor", found in /proc/self/mountinfo: a stat() of the
/// mountpoint would be a FUSE request to this very process before it serves any.
fn raise_readahead(device: &str) {
    let path = format!("/sys/class/bdi/{device}/read_ahead_kb");
    match std::fs::write(&path, READ_AHEAD_KB.to_string()) {
        Ok(()) => tracing::debug!(path, kb = READ_AHEAD_KB, "raised kernel read-ahead"),
        Err(e) => tracing::debug!(path, error = %e, "kernel read-ahead left at its default"),
    }
}

/// "major:minor" of the file system mounted at `mountpoint` (the topmost such mount).
fn mount_device(mountpoint: &Path) -> Option<String> {
    let want = std::fs::canonicalize(mountpoint.parent()?)
        .ok()?
        .join(mountpoint.file_name()?);
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    device_in_mountinfo(&info, &want)
}

/// The device of the last (topmost) mount at `path` in a mountinfo text.
fn device_in_mountinfo(info: &str, path: &Path) -> Option<String> {
    info.lines().rev().find_map(|l| {
        // Fields: id parent major:minor root mountpoint ...
        let f: Vec<&str> = l.split(' ').collect();
        let mp = unescape_mountinfo(f.get(4)?);
        (mp.as_slice() == path.as_os_str().as_bytes()).then(|| f.get(2).map(|s| s.to_string()))?
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |c: &u8| (b'0'..=b'7').contains(c);
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(octal) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The mount this process made, told apart from whatever else is (or will be) mounted at
/// the same path: the device number of its superblock, and a descriptor of its FUSE
/// connection. The device alone is not enough: anonymous device numbers are reused
/// lowest-first, so a mount made after ours was removed often gets our number. While our
/// connection is alive our superblock exists and holds its number, so then a mount at
/// the path with that number can only be ours.
struct OwnMount {
    path: PathBuf,
    device: String,
    connection: OwnedFd,
}

impl OwnMount {
    /// Whether the kernel has ended our FUSE connection: the file system was unmounted
    /// (by anyone) or its connection aborted. poll() then reports POLLERR on the device.
    fn connection_ended(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.connection.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd for the duration of the call; zero timeout.
            let n = unsafe { libc::poll(&mut p, 1, 0) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return n == 1 && p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
        }
    }

    /// Why the mount now at our path is not ours, or `None` when it is.
    fn not_ours(&self) -> Option<String> {
        if self.connection_ended() {
            return Some("the kernel has ended this daemon's FUSE connection".to_string());
        }
        match mount_device(&self.path) {
            Some(d) if d == self.device => None,
            Some(d) => Some(format!(
                "the mount there has device {d}, this daemon's has {}",
                self.device
            )),
            None => Some("nothing is mounted there any more".to_string()),
        }
    }

    /// Unmounts our mount, plainly or (when busy) lazily; does nothing, with an info log,
    /// when the mount at the path is not ours. A mount made in the instant between the
    /// check and the unmount could still be hit; the window is a few system calls.
    fn unmount(&self) -> std::io::Result<()> {
        if let Some(why) = self.not_ours() {
            tracing::info!(
                mountpoint = %self.path.display(),
                reason = %why,
                "not unmounting: the mount at the mount point is not this daemon's"
            );
            return Ok(());
        }
        lazy_unmount::unmount(&self.path)
    }
}

/// Waits for the background session to end and returns how it ended.
fn join_session(session: BackgroundSession) -> std::io::Result<()> {
    // fuser's `BackgroundSession` owns the `Mount`, whose drop unmounts by path, whatever
    // is mounted there by then (its "still mounted?" check passes for an ended
    // connection), and `join()` consumes the session and so drops it. The session is
    // therefore never dropped: only its public join handle is moved out.
    let session = ManuallyDrop::new(session);
    // SAFETY: `session` is never dropped nor used again, so the handle is moved out once
    // and dropped once (by `join`); the rest of the session leaks until the process ends.
    let guard = unsafe { std::ptr::read(&session.guard) };
    guard
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the FUSE session thread panicked")))
}

/// Mounts `fs` (the mount is live when `Session::new` returns), calls `on_ready`, serves
/// until the mount is unmounted (umount, fusermount -u) or SIGTERM/SIGINT arrive (which
/// unmount), then flushes pending uploads. Err if mounting failed or the final flush did.
///
/// The unmount rule: this process only ever unmounts its own mount. fuser would unmount
/// by path when its session ends; the path may by then hold someone else's mount (ours
/// was unmounted while this daemon was stopped, and another mounted there). So:
/// - when the session ends because the kernel ended the connection (unmounted by anyone,
///   or aborted), nothing is unmounted: our mount is gone already;
/// - when we unmount (after SIGTERM/SIGINT, or when the session fails while still
///   connected), we first check that our connection is alive and that the topmost mount
///   at the path has the device number recorded right after mounting; if not, the
///   unmount is skipped with an info log.
pub fn serve<C: ObjectClient>(
    fs: CosFs<C>,
    opts: &MountOptions,
    on_ready: Box<dyn FnOnce() + Send>,
) -> std::io::Result<()> {
    let rt = fs.runtime();
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::FSName(opts.fsname.clone()),
        MountOption::Subtype("cosmount".to_string()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if opts.read_only {
        cfg.mount_options.push(MountOption::RO);
    }
    if opts.auto_unmount {
        cfg.mount_options.push(MountOption::AutoUnmount);
    }
    cfg.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let threads = opts.threads.max(1);
    cfg.n_threads = Some(threads);
    cfg.clone_fd = threads > 1 && cfg!(target_os = "linux");
    let adapter = CosFuse::new(fs.clone(), rt.clone());
    // Until `spawn` below, an early return drops `session`, which unmounts by path: the
    // mount was made a moment ago and has served nothing, so the path still holds it.
    let session = Session::new(adapter, &opts.mountpoint, &cfg)?;
    let connection = session.as_fd().try_clone_to_owned()?;
    let Some(device) = mount_device(&opts.mountpoint) else {
        return Err(std::io::Error::other(format!(
            "mounted {} but cannot find the mount in /proc/self/mountinfo; unmounted it again",
            opts.mountpoint.display()
        )));
    };
    raise_readahead(&device);
    let own = Arc::new(OwnMount {
        path: opts.mountpoint.clone(),
        device,
        connection,
    });
    let session = session.spawn()?;
    let fs_sig = fs.clone();
    let own_sig = own.clone();
    let stopped_by_signal = Arc::new(AtomicBool::new(false));
    let stopped = stopped_by_signal.clone();
    let signals = rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("could not install SIGTERM/SIGINT handlers");
            return;
        };
        // Every signal is handled, not just the first: when the mount at the path was not
        // ours (another one stacked on top), a later signal, once that one is gone, must
        // still stop the daemon.
        loop {
            let which = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                else => return,
            };
            // Upload what is pending first: a busy mount is only detached lazily and may
            // be served a while longer, but acknowledged data must reach the bucket now.
            tracing::info!(signal = which, "flushing pending uploads, then unmounting");
            stopped.store(true, Ordering::SeqCst);
            if let Err(e) = fs_sig.flush_all().await {
                tracing::error!(error = %e, "pending uploads failed");
            }
            let own = own_sig.clone();
            match tokio::task::spawn_blocking(move || own.unmount()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "unmount after signal failed"),
                Err(e) => tracing::error!(error = %e, "unmount task failed"),
            }
        }
    });
    on_ready();
    let served = match join_session(session) {
        // A lazily detached mount ends with the connection aborted once its last file is
        // closed: after a signal that is the expected end, not a failure.
        Err(e)
            if stopped_by_signal.load(Ordering::SeqCst)
                && e.raw_os_error() == Some(libc::ECONNABORTED) =>
        {
            Ok(())
        }
        Err(e) => {
            // The session failed on its own; if the kernel still connects us to a mount
            // at the path, that mount is ours and would be left dead: remove it.
            tracing::error!(error = %e, "FUSE session failed");
            if let Err(u) = own.unmount() {
                tracing::error!(error = %u, "unmount after the session failed did not work");
            }
            Err(e)
        }
        Ok(()) => Ok(()),
    };
    signals.abort();
    let flushed = rt.block_on(fs.flush_all());
    served?;
    flushed.map_err(|e| std::io::Error::other(format!("pending uploads failed at unmount: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    fn e(kind: FsErrorKind) -> FsError {
        FsError::new(kind, "x")
    }

    #[test]
    fn errno_mapping_follows_the_issue() {
        let cos = |k| errno_of(&e(FsErrorKind::Cos(k)));
        assert_eq!(cos(CosErrorKind::NotFound), libc::ENOENT);
        assert_eq!(cos(CosErrorKind::AccessDenied), libc::EACCES);
        assert_eq!(cos(CosErrorKind::SseKeyRejected), libc::EIO);
        assert_eq!(cos(CosErrorKind::PreconditionFailed), libc::ESTALE);
        assert_eq!(cos(CosErrorKind::InvalidRange), libc::EINVAL);
        assert_eq!(cos(CosErrorKind::Refused), libc::EINVAL);
        assert_eq!(cos(CosErrorKind::Throttled), libc::EIO);
        assert_eq!(errno_of(&e(FsErrorKind::NotEmpty)), libc::ENOTEMPTY);
        assert_eq!(errno_of(&e(FsErrorKind::NoSpace)), libc::ENOSPC);
        assert_eq!(errno_of(&e(FsErrorKind::ReadOnly)), libc::EROFS);
        assert_eq!(errno_of(&e(FsErrorKind::Unsupported)), libc::ENOTSUP);
        assert_eq!(errno_of(&e(FsErrorKind::NameTooLong)), libc::ENAMETOOLONG);
        assert_eq!(errno_of(&e(FsErrorKind::FileTooLarge)), libc::EFBIG);
        assert_eq!(errno_of(&e(FsErrorKind::Stale)), libc::ESTALE);
    }

    #[test]
    fn only_write_only_handles_bypass_the_page_cache() {
        assert_eq!(fopen_flags(libc::O_WRONLY), FopenFlags::FOPEN_DIRECT_IO);
        assert_eq!(
            fopen_flags(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC),
            FopenFlags::FOPEN_DIRECT_IO
        );
        assert_eq!(fopen_flags(libc::O_RDONLY), FopenFlags::empty());
        assert_eq!(fopen_flags(libc::O_RDWR), FopenFlags::empty());
    }

    #[test]
    fn topmost_mount_at_a_path_with_escapes() {
        let info = "22 1 0:21 / / rw - overlay overlay rw\n\
                    31 22 0:41 / /mnt/my\\040dir rw - fuse.cosmount b rw\n\
                    32 22 0:50 / /mnt/other rw - tmpfs t rw\n\
                    33 31 0:42 / /mnt/my\\040dir rw - fuse.cosmount b rw\n\
                    34 22 0:43 / /mnt/back\\134slash\\011tab rw - fuse x rw\n";
        let dev = |p: &str| device_in_mountinfo(info, Path::new(p));
        assert_eq!(dev("/mnt/my dir").as_deref(), Some("0:42"));
        assert_eq!(dev("/mnt/back\\slash\ttab").as_deref(), Some("0:43"));
        assert_eq!(dev("/"), Some("0:21".to_string()));
        assert_eq!(dev("/mnt/my\\040dir"), None);
        assert_eq!(dev("/mnt"), None);
    }

    /// A pipe stands in for the FUSE connection: poll() reports POLLHUP on its read end
    /// once the write end is closed, as it reports POLLERR on an ended FUSE connection.
    #[test]
    fn own_mount_requires_a_live_connection_and_the_recorded_device() {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills two descriptors that we then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let root = mount_device(Path::new("/proc")).expect("/proc is a mount");
        let own = OwnMount {
            path: PathBuf::from("/proc"),
            device: root.clone(),
            connection: read,
        };
        assert_eq!(own.not_ours(), None);
        let other = OwnMount {
            path: PathBuf::from("/proc"),
            device: "4095:1048575".to_string(),
            connection: own.connection.try_clone().expect("dup"),
        };
        assert!(other.not_ours().is_some_and(|w| w.contains(&root)));
        let gone = OwnMount {
            path: PathBuf::from("/definitely/not/a/mount"),
            device: root,
            connection: own.connection.try_clone().expect("dup"),
        };
        assert!(gone
            .not_ours()
            .is_some_and(|w| w.contains("nothing is mounted")));
        drop(write);
        assert!(own.not_ours().is_some_and(|w| w.contains("ended")));
    }

    #[test]
    fn mount_device_is_found_without_touching_the_mount() {
        // The root file system is always in mountinfo.
        assert!(mount_device(Path::new("/proc")).is_some());
        assert!(mount_device(Path::new("/definitely/not/a/mount")).is_none());
    }
}

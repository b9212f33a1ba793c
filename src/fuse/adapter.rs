//! The fuser adapter: the only `impl fuser::Filesystem`. Each callback converts its
//! arguments, runs the matching `CosFs` method with `Handle::block_on` (fuser threads are
//! plain OS threads, never runtime workers) inside a tracing span naming the request (op,
//! request id, calling pid), and replies. errno values are decided here and only here, by
//! one exhaustive match over `FsErrorKind` (`errno_of`, pure); `CosFuse::run` logs the
//! failure once. Handler bodies run under `catch_unwind`: a panic is logged and answered
//! with EIO instead of killing a worker thread. Every operation is either implemented or
//! refused with a named errno: hard links and xattrs get ENOTSUP,
//! RENAME_EXCHANGE gets EINVAL, and every mutation on a read-only mount EROFS.

use crate::cos::{CosErrorKind, ObjectClient};
use crate::fs::{Attr, Caller, CosFs, Entry, FileKind, FsError, FsErrorKind, RenameMode, SetAttr};
use crate::metrics::METRICS;
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents,
    PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen,
    ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::SystemTime;
use tracing::Instrument;

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
            | CosErrorKind::IntegrityMismatch
            | CosErrorKind::CredentialsExpired => libc::EIO,
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

/// Whether a failure is something an admin must act on (logged at WARN: the bucket,
/// the network, credentials, local disk) rather than an answer a program expects (logged
/// at debug). Exhaustive for the same reason as `errno_of`.
fn admin_must_know(kind: FsErrorKind) -> bool {
    match kind {
        FsErrorKind::Cos(k) => match k {
            CosErrorKind::AccessDenied
            | CosErrorKind::SseKeyRejected
            | CosErrorKind::Conflict
            | CosErrorKind::BadRequest
            | CosErrorKind::Throttled
            | CosErrorKind::ServerError
            | CosErrorKind::Timeout
            | CosErrorKind::Transport
            | CosErrorKind::InvalidResponse
            | CosErrorKind::IntegrityMismatch
            | CosErrorKind::CredentialsExpired => true,
            // Gone, changed under an open handle, a range past the end, a size COS would
            // refuse: the program's view or request, answered with its errno.
            CosErrorKind::NotFound
            | CosErrorKind::PreconditionFailed
            | CosErrorKind::InvalidRange
            | CosErrorKind::Refused => false,
        },
        FsErrorKind::NoSpace | FsErrorKind::TooManyFiles | FsErrorKind::LocalIo => true,
        FsErrorKind::NotFound
        | FsErrorKind::NotEmpty
        | FsErrorKind::IsDir
        | FsErrorKind::NotDir
        | FsErrorKind::Exists
        | FsErrorKind::ReadOnly
        | FsErrorKind::Unsupported
        | FsErrorKind::InvalidArgument
        | FsErrorKind::NameTooLong
        | FsErrorKind::FileTooLarge
        | FsErrorKind::BadHandle
        | FsErrorKind::Stale => false,
    }
}

fn to_kind(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
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
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.mtime,
        kind: to_kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
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

    /// Runs the operation of one kernel request (see `run`) in a span that names it.
    fn call<T>(
        &self,
        req: &Request,
        op: &'static str,
        f: impl Future<Output = Result<T, FsError>>,
    ) -> Result<T, Errno> {
        let span = tracing::debug_span!("fuse", op, req = req.unique().0, pid = req.pid());
        self.run(span, op, f)
    }

    /// Like `call` for synchronous core methods.
    fn call_sync<T>(
        &self,
        req: &Request,
        op: &'static str,
        f: impl FnOnce() -> Result<T, FsError>,
    ) -> Result<T, Errno> {
        self.call(req, op, async move { f() })
    }

    /// Runs one operation: block_on under catch_unwind, in `span`; an error becomes its
    /// errno and is logged once: at error for a key the admin must fix, at warn for what
    /// `admin_must_know`, at debug for answers programs expect and for a file's data
    /// error answered again.
    fn run<T>(
        &self,
        span: tracing::Span,
        op: &'static str,
        f: impl Future<Output = Result<T, FsError>>,
    ) -> Result<T, Errno> {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.rt.block_on(f.instrument(span.clone()))
        }));
        let _entered = span.enter();
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let errno = errno_of(&e);
                METRICS.errno(errno);
                if e.kind == FsErrorKind::Cos(CosErrorKind::SseKeyRejected) {
                    // What the admin must fix is the key file, not the program.
                    tracing::error!(
                        errno,
                        "SSE-C key missing or wrong for this object; fix the key file of use_sse=custom:FILE (or load_sse_c=FILE), or add the key that wrote it to that file: {}",
                        e.message
                    );
                } else if !admin_must_know(e.kind)
                    || matches!(op, "write" | "read" | "flush" | "fsync" | "release")
                {
                    // An answer the program expects (ENOENT, ENOTEMPTY, ENOTSUP for a hard
                    // link, ...) is not the admin's business. A file's data error is logged
                    // once, as an ERROR, when the file fails; the same error answered again
                    // to later calls is not news either.
                    tracing::debug!(op, errno, error = %e, "operation failed");
                } else {
                    tracing::warn!("{op} failed, errno {errno}: {e}");
                }
                Err(Errno::from_i32(errno))
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %msg, "handler panicked; answering EIO");
                Err(Errno::EIO)
            }
        }
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
        // FUSE_ATOMIC_O_TRUNC is deliberately not asked for: with it the kernel hands
        // O_TRUNC to open before its own checks, so an O_RDONLY|O_TRUNC open of a running
        // executable would empty the file before the kernel refused it with ETXTBSY.
        // Without it the kernel checks first and then sends SETATTR(size=0), which
        // truncates every kind of O_TRUNC open the way a local disk does.
        let want = InitFlags::FUSE_PARALLEL_DIROPS;
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
        if let Err(e) = self.run(
            tracing::debug_span!("fuse", op = "destroy"),
            "destroy",
            self.fs.flush_all(),
        ) {
            tracing::error!(errno = e.code(), "pending uploads failed at unmount");
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = name_str(name).and_then(|n| self.call(req, "lookup", self.fs.lookup(parent.0, n)));
        reply_entry(reply, r)
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.call(req, "getattr", self.fs.getattr(ino.0)) {
            Ok(a) => reply.attr(&self.fs.config().stat_ttl, &to_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
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
            atime: atime.map(time_of),
            fh: fh.map(|f| f.0),
        };
        match self.call(req, "setattr", self.fs.setattr(ino.0, s)) {
            Ok(a) => reply.attr(&self.fs.config().stat_ttl, &to_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.call(req, "readlink", self.fs.readlink(ino.0)) {
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
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let c = caller(req);
        let r = name_str(name).and_then(|n| {
            self.call(
                req,
                "mknod",
                self.fs.mknod(parent.0, n, mode, umask, rdev, c),
            )
        });
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
            .and_then(|n| self.call(req, "mkdir", self.fs.mkdir(parent.0, n, mode, umask, c)));
        reply_entry(reply, r)
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = name_str(name).and_then(|n| self.call(req, "unlink", self.fs.unlink(parent.0, n)));
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = name_str(name).and_then(|n| self.call(req, "rmdir", self.fs.rmdir(parent.0, n)));
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
            self.call(req, "symlink", self.fs.symlink(parent.0, n, t, c))
        });
        reply_entry(reply, r)
    }

    fn rename(
        &self,
        req: &Request,
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
            self.call(
                req,
                "rename",
                self.fs.rename(parent.0, n, newparent.0, nn, mode),
            )
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = name_str(newname)
            .and_then(|n| self.call(req, "link", self.fs.link(ino.0, newparent.0, n)));
        reply_entry(reply, r)
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.call(req, "open", self.fs.open(ino.0, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), fopen_flags(flags.0)),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.call(req, "read", self.fs.read(fh.0, offset, size)) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        req: &Request,
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
        match self.call(req, "write", self.fs.write_as(fh.0, offset, data, owner)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.call(req, "flush", self.fs.flush_as(fh.0, Some(lock_owner.0))) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.call(req, "release", self.fs.release(fh.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.call(req, "fsync", self.fs.fsync(fh.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.call(req, "opendir", self.fs.opendir(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = self.call_sync(req, "readdir", || {
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

    fn access(&self, req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // With default_permissions the kernel checks modes itself; this only confirms
        // that the inode exists.
        match self.call(req, "access", self.fs.getattr(ino.0)) {
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
        let r = name_str(name).and_then(|n| {
            self.call(
                req,
                "create",
                self.fs.create(parent.0, n, mode, umask, flags, c),
            )
        });
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

    // Requests ordinary programs make that this file system does not serve. Each gets its
    // errno quietly (fuser's defaults log a warning per call, and `isatty` alone sends an
    // ioctl per file): ENOTTY is what an ioctl a file does not know returns; ENOSYS tells
    // the kernel to stop asking and do the generic thing itself (poll: always ready,
    // lseek: SEEK_DATA/SEEK_HOLE over one extent, copy_file_range: read and write).
    // Locks are only sent when FUSE_POSIX_LOCKS is asked for, and it is not: the kernel
    // keeps locks locally.

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        tracing::trace!(cmd, "ioctl: ENOTTY");
        reply.error(Errno::from_i32(libc::ENOTTY));
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: ReplyLseek,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn bmap(&self, _req: &Request, _ino: INodeNo, _blocksize: u32, _idx: u64, reply: ReplyBmap) {
        reply.error(Errno::ENOSYS);
    }

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: FsErrorKind) -> FsError {
        FsError::new(kind, "x")
    }

    #[test]
    fn answers_programs_expect_are_not_warnings() {
        for k in [
            FsErrorKind::NotFound,
            FsErrorKind::NotEmpty,
            FsErrorKind::Exists,
            FsErrorKind::Unsupported,
            FsErrorKind::Cos(CosErrorKind::NotFound),
        ] {
            assert!(!admin_must_know(k), "{k:?}");
        }
        for k in [
            FsErrorKind::NoSpace,
            FsErrorKind::Cos(CosErrorKind::AccessDenied),
            FsErrorKind::Cos(CosErrorKind::Transport),
            FsErrorKind::Cos(CosErrorKind::IntegrityMismatch),
        ] {
            assert!(admin_must_know(k), "{k:?}");
        }
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
}

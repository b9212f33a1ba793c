//! File attributes and the cosfs metadata conventions.
//!
//! Objects carry `x-cos-meta-mode` (decimal full `st_mode`), `-uid`, `-gid` and `-mtime`
//! (decimal Unix seconds), as cosfs writes them; cosmount adds `-ctime` (decimal Unix
//! seconds, the name s3fs uses), `-atime` when it was set apart from the mtime (as s3fs
//! names it; the mount is `noatime`, so only utimens sets it) and, for device nodes, `-rdev` (the decimal device
//! number). Objects written by other tools may carry none of them: they get the mount's
//! uid/gid, `0666 & !umask` (files) or `0777 & !umask` (directories) and `Last-Modified`
//! as mtime and ctime. The file type comes from the mode bits when present, else from
//! `Content-Type: application/x-directory` or a trailing `/`.
//!
//! Special files (FIFOs, sockets, character and block devices) are empty objects whose
//! mode carries their type, as cosfs and s3fs store them. The mount is `nodev` and the
//! kernel serves FIFOs and sockets itself: such an object is only a name with a type and
//! a number.

use crate::cos::{ObjectMeta, PutOptions};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Content type of directory marker objects.
pub const DIR_CONTENT_TYPE: &str = "application/x-directory";

pub const S_IFMT: u32 = libc::S_IFMT;
pub const S_IFREG: u32 = libc::S_IFREG;
pub const S_IFDIR: u32 = libc::S_IFDIR;
pub const S_IFLNK: u32 = libc::S_IFLNK;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    /// The `S_IF*` bits of this kind.
    pub fn type_bits(self) -> u32 {
        match self {
            FileKind::File => S_IFREG,
            FileKind::Directory => S_IFDIR,
            FileKind::Symlink => S_IFLNK,
            FileKind::Fifo => libc::S_IFIFO,
            FileKind::Socket => libc::S_IFSOCK,
            FileKind::CharDevice => libc::S_IFCHR,
            FileKind::BlockDevice => libc::S_IFBLK,
        }
    }

    /// The kind of the `S_IF*` bits of `mode`, if they name one.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        [
            FileKind::File,
            FileKind::Directory,
            FileKind::Symlink,
            FileKind::Fifo,
            FileKind::Socket,
            FileKind::CharDevice,
            FileKind::BlockDevice,
        ]
        .into_iter()
        .find(|k| k.type_bits() == mode & S_IFMT)
    }

    /// A FIFO, socket or device node: an empty object with a type (and a number).
    pub fn is_special(self) -> bool {
        matches!(
            self,
            FileKind::Fifo | FileKind::Socket | FileKind::CharDevice | FileKind::BlockDevice
        )
    }

    /// Device nodes carry a device number.
    pub fn is_device(self) -> bool {
        matches!(self, FileKind::CharDevice | FileKind::BlockDevice)
    }
}

/// Attributes of an inode, independent of fuser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits only (no file-type bits).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub atime: SystemTime,
    /// Last change of the inode (data or attributes).
    pub ctime: SystemTime,
    /// Device number of a device node, else 0.
    pub rdev: u32,
    /// Names of the inode: 2 for a directory, 0 for a file removed while open, else 1
    /// (hard links are not supported).
    pub nlink: u32,
}

impl Attr {
    /// The full `st_mode` as stored in `x-cos-meta-mode`.
    pub fn mode(&self) -> u32 {
        self.kind.type_bits() | u32::from(self.perm)
    }
}

/// The metadata part of attributes, as read from or written to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaAttrs {
    pub kind: FileKind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub atime: SystemTime,
    pub ctime: SystemTime,
    /// Device number (device nodes only; 0 otherwise).
    pub rdev: u32,
}

impl MetaAttrs {
    /// Metadata of a node being created now by `uid`/`gid`, with permission bits
    /// `mode & !umask` (file-type bits in `mode` are ignored).
    pub fn new_node(kind: FileKind, mode: u32, umask: u32, uid: u32, gid: u32) -> MetaAttrs {
        let now = SystemTime::now();
        MetaAttrs {
            kind,
            perm: (mode & !umask & 0o7777) as u16,
            uid,
            gid,
            mtime: now,
            atime: now,
            ctime: now,
            rdev: 0,
        }
    }

    /// The inode changed now (its data, mode, owner, times or names): ctime moves.
    pub fn changed(&mut self) {
        self.ctime = SystemTime::now();
    }
}

/// Defaults for objects without metadata.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
}

fn parse_u32(m: &BTreeMap<String, String>, k: &str) -> Option<u32> {
    m.get(k).and_then(|v| v.trim().parse::<u32>().ok())
}

/// Reads the conventions from `x-cos-meta-*` (lowercase suffixes), the content type and
/// the key. `is_dir_hint` is true for a `dir/` marker or a prefix.
pub fn meta_from(
    user_meta: &BTreeMap<String, String>,
    content_type: Option<&str>,
    key: &str,
    last_modified: SystemTime,
    d: &Defaults,
) -> MetaAttrs {
    let mode = parse_u32(user_meta, "mode").or_else(|| parse_u32(user_meta, "permissions"));
    let dir_hint = key.ends_with('/') || content_type == Some(DIR_CONTENT_TYPE);
    let kind = match mode.and_then(FileKind::from_mode) {
        Some(k) => k,
        None if dir_hint => FileKind::Directory,
        None => FileKind::File,
    };
    let perm = match (mode, kind) {
        (Some(m), _) => (m & 0o7777) as u16,
        (None, FileKind::Directory) => (0o777 & !d.umask) as u16,
        (None, FileKind::Symlink) => 0o777,
        (None, _) => (0o666 & !d.umask) as u16,
    };
    let uid = parse_u32(user_meta, "uid")
        .or_else(|| parse_u32(user_meta, "owner"))
        .unwrap_or(d.uid);
    let gid = parse_u32(user_meta, "gid")
        .or_else(|| parse_u32(user_meta, "group"))
        .unwrap_or(d.gid);
    let mtime = unix_seconds(user_meta, "mtime").unwrap_or(last_modified);
    let ctime = unix_seconds(user_meta, "ctime").unwrap_or(mtime);
    let atime = unix_seconds(user_meta, "atime").unwrap_or(mtime);
    let rdev = if kind.is_device() {
        parse_u32(user_meta, "rdev").unwrap_or(0)
    } else {
        0
    };
    MetaAttrs {
        kind,
        perm,
        uid,
        gid,
        mtime,
        atime,
        ctime,
        rdev,
    }
}

/// A time stored as decimal Unix seconds (a fraction, if some tool wrote one, is ignored).
fn unix_seconds(m: &BTreeMap<String, String>, k: &str) -> Option<SystemTime> {
    let v = m.get(k)?;
    let secs = v.trim().split('.').next()?.parse::<u64>().ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn seconds_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the conventions from a HEAD answer.
pub fn meta_from_object(m: &ObjectMeta, d: &Defaults) -> MetaAttrs {
    meta_from(
        &m.user_meta,
        m.content_type.as_deref(),
        &m.key,
        m.last_modified,
        d,
    )
}

/// Default attributes of a directory known only as a prefix.
pub fn implicit_dir(d: &Defaults) -> MetaAttrs {
    MetaAttrs {
        kind: FileKind::Directory,
        perm: (0o777 & !d.umask) as u16,
        uid: d.uid,
        gid: d.gid,
        mtime: UNIX_EPOCH,
        atime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        rdev: 0,
    }
}

/// The object attributes that store `m` (and the content type of the object).
pub fn put_options(m: &MetaAttrs, content_type: Option<String>) -> PutOptions {
    let mode = m.kind.type_bits() | u32::from(m.perm);
    let mut user_meta = BTreeMap::new();
    user_meta.insert("mode".to_string(), mode.to_string());
    user_meta.insert("uid".to_string(), m.uid.to_string());
    user_meta.insert("gid".to_string(), m.gid.to_string());
    user_meta.insert("mtime".to_string(), seconds_of(m.mtime).to_string());
    user_meta.insert("ctime".to_string(), seconds_of(m.ctime).to_string());
    if seconds_of(m.atime) != seconds_of(m.mtime) {
        user_meta.insert("atime".to_string(), seconds_of(m.atime).to_string());
    }
    if m.kind.is_device() {
        user_meta.insert("rdev".to_string(), m.rdev.to_string());
    }
    let content_type = match m.kind {
        FileKind::Directory => Some(DIR_CONTENT_TYPE.to_string()),
        _ => content_type,
    };
    PutOptions {
        content_type,
        user_meta,
    }
}

/// Keeps user metadata that is not ours (e.g. set by other tools) when rewriting ours.
pub fn merge_foreign(opts: &mut PutOptions, old: &BTreeMap<String, String>) {
    for (k, v) in old {
        opts.user_meta.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Defaults = Defaults {
        uid: 1000,
        gid: 100,
        umask: 0o022,
    };

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cosfs_mode_values_decode() {
        let a = meta_from(&m(&[("mode", "33188")]), None, "f", UNIX_EPOCH, &D);
        assert_eq!((a.kind, a.perm), (FileKind::File, 0o644));
        let a = meta_from(&m(&[("mode", "16877")]), None, "d/", UNIX_EPOCH, &D);
        assert_eq!((a.kind, a.perm), (FileKind::Directory, 0o755));
        let a = meta_from(&m(&[("mode", "41471")]), None, "l", UNIX_EPOCH, &D);
        assert_eq!((a.kind, a.perm), (FileKind::Symlink, 0o777));
        // Permission bits only: the type comes from the content type / key.
        let a = meta_from(
            &m(&[("mode", "493")]),
            Some(DIR_CONTENT_TYPE),
            "d",
            UNIX_EPOCH,
            &D,
        );
        assert_eq!((a.kind, a.perm), (FileKind::Directory, 0o755));
    }

    #[test]
    fn missing_metadata_uses_defaults_and_last_modified() {
        let lm = UNIX_EPOCH + Duration::from_secs(77);
        let a = meta_from(&m(&[]), None, "f", lm, &D);
        assert_eq!((a.perm, a.uid, a.gid, a.mtime), (0o644, 1000, 100, lm));
        let a = meta_from(&m(&[]), None, "d/", lm, &D);
        assert_eq!(a.perm, 0o755);
        let a = meta_from(
            &m(&[("uid", "5"), ("gid", "6"), ("mtime", "1234")]),
            None,
            "f",
            lm,
            &D,
        );
        assert_eq!((a.uid, a.gid), (5, 6));
        assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_secs(1234));
    }

    #[test]
    fn put_options_round_trip() {
        let a = MetaAttrs {
            kind: FileKind::Symlink,
            perm: 0o777,
            uid: 1,
            gid: 2,
            mtime: UNIX_EPOCH + Duration::from_secs(99),
            atime: UNIX_EPOCH + Duration::from_secs(77),
            ctime: UNIX_EPOCH + Duration::from_secs(120),
            rdev: 0,
        };
        let o = put_options(&a, None);
        assert_eq!(o.user_meta["mode"], "41471");
        assert_eq!(o.user_meta["ctime"], "120");
        assert_eq!(o.user_meta["atime"], "77");
        let b = meta_from(&o.user_meta, o.content_type.as_deref(), "l", UNIX_EPOCH, &D);
        assert_eq!(a, b);
    }

    #[test]
    fn special_files_keep_their_type_and_device_number() {
        for (kind, bits) in [
            (FileKind::Fifo, libc::S_IFIFO),
            (FileKind::Socket, libc::S_IFSOCK),
            (FileKind::CharDevice, libc::S_IFCHR),
            (FileKind::BlockDevice, libc::S_IFBLK),
        ] {
            let mut a = MetaAttrs::new_node(kind, 0o640, 0, 3, 4);
            a.rdev = if kind.is_device() { 0x0801 } else { 0 };
            let o = put_options(&a, None);
            assert_eq!(o.user_meta["mode"], (bits | 0o640).to_string());
            assert_eq!(o.user_meta.contains_key("rdev"), kind.is_device());
            let b = meta_from(&o.user_meta, None, "n", UNIX_EPOCH, &D);
            assert_eq!((b.kind, b.perm, b.rdev), (kind, 0o640, a.rdev));
            assert!(kind.is_special());
        }
        // s3fs/cosfs write the same decimal mode: a FIFO 0644 is 4516.
        let a = meta_from(&m(&[("mode", "4516")]), None, "p", UNIX_EPOCH, &D);
        assert_eq!((a.kind, a.perm), (FileKind::Fifo, 0o644));
        // Without a ctime entry, ctime is the mtime.
        let a = meta_from(&m(&[("mtime", "50")]), None, "f", UNIX_EPOCH, &D);
        assert_eq!(a.ctime, UNIX_EPOCH + Duration::from_secs(50));
    }
}

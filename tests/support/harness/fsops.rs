//! File-system helpers for the tests: errno assertions, positional I/O, utimens, and a
//! snapshot of a tree (names, types, sizes, modes, mtimes, contents) to compare two trees.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// The errno of an I/O result, or a panic naming what unexpectedly succeeded.
pub fn errno_of<T: std::fmt::Debug>(what: &str, r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("{what}: error without errno: {e}")),
    }
}

/// Asserts `r` failed with one of `errnos`.
pub fn assert_errno<T: std::fmt::Debug>(what: &str, r: io::Result<T>, errnos: &[i32]) {
    let e = errno_of(what, r);
    assert!(
        errnos.contains(&e),
        "{what}: errno {e} ({}), expected one of {errnos:?}",
        io::Error::from_raw_os_error(e)
    );
}

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// utimensat(2) with explicit atime and mtime (seconds, nanoseconds).
pub fn set_times(p: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    let c = cstr(p);
    // SAFETY: valid NUL-terminated path and a two-element timespec array.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// link(2).
pub fn hard_link(a: &Path, b: &Path) -> io::Result<()> {
    std::fs::hard_link(a, b)
}

/// setxattr(2) of a `user.` attribute.
pub fn set_xattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cstr(p);
    let n = CString::new(name).expect("xattr name");
    // SAFETY: valid C strings and a buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads `len` bytes at `offset`.
pub fn read_at(p: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let f = std::fs::File::open(p)?;
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = f.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    Ok(buf)
}

/// One entry of a tree snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File {
        mode: u32,
        size: u64,
        mtime: i64,
        content_hash: u64,
    },
    Dir {
        mode: u32,
    },
    Symlink {
        target: String,
    },
    /// A FIFO, socket or device node: its type bits, permissions and device number.
    Special {
        mode: u32,
        rdev: u64,
    },
}

fn hash(data: &[u8]) -> u64 {
    // FNV-1a: enough to tell contents apart in a diff; the size is compared as well.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A snapshot of everything under `root`, keyed by relative path. `with_mtime` includes
/// file mtimes (seconds); directory mtimes are never compared (COS has none).
pub fn snapshot(root: &Path, with_mtime: bool) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, with_mtime, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, with_mtime: bool, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let md =
            std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        let ft = md.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(&p).expect("readlink");
            out.insert(
                rel,
                Node::Symlink {
                    target: t.to_string_lossy().into_owned(),
                },
            );
        } else if ft.is_dir() {
            out.insert(
                rel,
                Node::Dir {
                    mode: md.mode() & 0o7777,
                },
            );
            walk(root, &p, with_mtime, out);
        } else if !ft.is_file() {
            // Never opened: a FIFO would block, a device node is not ours to read.
            out.insert(
                rel,
                Node::Special {
                    mode: md.mode(),
                    rdev: md.rdev(),
                },
            );
        } else {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            assert_eq!(
                data.len() as u64,
                md.len(),
                "size of {} disagrees with its content",
                p.display()
            );
            out.insert(
                rel,
                Node::File {
                    mode: md.mode() & 0o7777,
                    size: md.len(),
                    mtime: if with_mtime { md.mtime() } else { 0 },
                    content_hash: hash(&data),
                },
            );
        }
    }
}

/// Human-readable differences between two snapshots (empty = identical).
pub fn diff(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("{k}: only in mount: {v:?}")),
            Some(w) if w != v => d.push(format!("{k}: mount {v:?} vs reference {w:?}")),
            _ => {}
        }
    }
    for (k, w) in b {
        if !a.contains_key(k) {
            d.push(format!("{k}: only in reference: {w:?}"));
        }
    }
    d
}

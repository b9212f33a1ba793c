//! The inode table: inode numbers keyed by (parent, name), lookup counts, attribute
//! cache entries with expiry, and a bounded negative cache.
//!
//! Keys are not stored: an inode's key is derived from its chain of parents, so renaming
//! a directory moves everything below it without touching the children. Inode numbers
//! are never reused within a mount; each inode also gets a fresh generation number.
//! Inodes the kernel knows about (lookups > 0) or that have open handles stay until
//! `forget`; entries created only to cache attributes (readdir) are swept once the table
//! grows past its bound. The table is guarded by a plain mutex and never held across an
//! `.await`.

use super::attr::{Attr, FileKind, MetaAttrs};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

/// The root inode number (FUSE_ROOT_ID).
pub const ROOT_INO: u64 = 1;

/// Entries beyond which unreferenced inodes are swept.
const SWEEP_ABOVE: usize = 200_000;
/// Negative-cache capacity; beyond it expired entries are dropped, then the oldest half.
const NEGATIVE_CAP: usize = 100_000;

/// What the bucket says about a name (from HEAD, a marker or a prefix).
#[derive(Debug, Clone)]
pub struct Found {
    pub meta: MetaAttrs,
    pub size: u64,
    pub etag: Option<String>,
    /// The object's CRC-64 as COS reports it (HEAD; listings carry none).
    pub crc64: Option<u64>,
    pub content_type: Option<String>,
    /// All `x-cos-meta-*` of the object, kept so rewrites preserve foreign entries.
    pub user_meta: BTreeMap<String, String>,
    /// For directories: whether a `dir/` marker object exists.
    pub has_marker: bool,
}

/// One inode.
#[derive(Debug, Clone)]
pub struct Inode {
    pub ino: u64,
    pub parent: u64,
    pub name: String,
    pub generation: u64,
    /// Lookups the kernel holds (decremented by forget).
    pub lookups: u64,
    pub open_handles: u32,
    pub meta: MetaAttrs,
    pub size: u64,
    pub etag: Option<String>,
    pub crc64: Option<u64>,
    pub content_type: Option<String>,
    pub user_meta: BTreeMap<String, String>,
    pub has_marker: bool,
    /// Attributes are trusted until then.
    pub expires: Instant,
    /// The inode has local state newer than the bucket (a file being written); its
    /// attributes are authoritative and it is not looked up remotely.
    pub local: bool,
    /// Removed from its directory while still referenced.
    pub unlinked: bool,
    /// utimens set the mtime or atime (not a write) since the last write.
    pub times_explicit: bool,
}

impl Inode {
    pub fn attr(&self) -> Attr {
        Attr {
            ino: self.ino,
            kind: self.meta.kind,
            size: self.size,
            perm: self.meta.perm,
            uid: self.meta.uid,
            gid: self.meta.gid,
            mtime: self.meta.mtime,
            atime: self.meta.atime,
            ctime: self.meta.ctime,
            rdev: self.meta.rdev,
            nlink: match self.meta.kind {
                FileKind::Directory => 2,
                _ if self.unlinked => 0,
                _ => 1,
            },
        }
    }

    pub fn fresh(&self, now: Instant) -> bool {
        self.local || now < self.expires
    }

    // What happened to the inode, one method each: the fs modules say what happened and
    // the inode decides which of its fields that changes.

    /// A write reached `end`: the file has local content and a write's mtime and ctime.
    pub fn written(&mut self, end: u64) {
        self.local = true;
        self.size = self.size.max(end);
        self.data_changed();
        self.times_explicit = false;
    }

    /// The content (or, for a directory, the entries) changed now: mtime and ctime.
    pub fn data_changed(&mut self) {
        let now = SystemTime::now();
        self.meta.mtime = now;
        self.meta.ctime = now;
    }

    /// The file's content was replaced locally (emptied by O_TRUNC, resized by a
    /// truncation of pending data): local content, a write's mtime.
    pub fn changed_locally(&mut self, size: Option<u64>) {
        self.local = true;
        self.data_changed();
        if let Some(s) = size {
            self.size = s;
        }
    }

    /// The name now means a new, empty regular file with these attributes.
    pub fn created(&mut self, meta: MetaAttrs) {
        self.meta = meta;
        self.size = 0;
        self.etag = None;
        self.crc64 = None;
        self.local = true;
    }

    /// The bucket holds this content now (an upload or a server-side truncation).
    pub fn uploaded(&mut self, etag: String, size: u64, crc64: Option<u64>, ttl: Duration) {
        self.etag = Some(etag);
        self.size = size;
        self.crc64 = crc64;
        self.local = false;
        self.expires = Instant::now() + ttl;
    }

    /// A server-side copy (rename, metadata change) made a new version of the same bytes:
    /// a new ETag, the content's CRC-64 unchanged unless COS reported one.
    pub fn copied(&mut self, etag: String, crc64: Option<u64>) {
        self.etag = Some(etag);
        self.crc64 = crc64.or(self.crc64);
    }

    /// utimens set the times: explicit times must survive the next upload. Setting
    /// times is a change of the inode: ctime moves to now.
    pub fn times_set(&mut self, atime: Option<SystemTime>, mtime: Option<SystemTime>) {
        if let Some(a) = atime {
            self.meta.atime = a;
        }
        if let Some(m) = mtime {
            self.meta.mtime = m;
        }
        self.times_explicit = true;
        self.meta.changed();
    }

    /// A directory moved by copying its marker: the marker's ETag is new and unknown,
    /// its attributes (the ctime the rename set) stay.
    pub fn moved_by_copy(&mut self) {
        self.etag = None;
        self.crc64 = None;
    }

    /// The local content is gone (the last handle closed without an upload, or the file
    /// failed): what this mount shows of the file comes from the bucket again.
    pub fn local_dropped(&mut self) {
        self.local = false;
        self.expires = Instant::now();
    }
}

/// The table.
#[derive(Debug)]
pub struct InodeTable {
    inodes: HashMap<u64, Inode>,
    children: HashMap<(u64, String), u64>,
    negative: HashMap<(u64, String), Instant>,
    next_ino: u64,
    next_generation: u64,
    /// Mount prefix: "" or ending in '/'.
    prefix: String,
    ttl: Duration,
    negative_ttl: Duration,
}

impl InodeTable {
    pub fn new(prefix: String, root: MetaAttrs, ttl: Duration, negative_ttl: Duration) -> Self {
        let mut inodes = HashMap::new();
        inodes.insert(
            ROOT_INO,
            Inode {
                ino: ROOT_INO,
                parent: ROOT_INO,
                name: String::new(),
                generation: 1,
                lookups: 1,
                open_handles: 0,
                meta: root,
                size: 0,
                etag: None,
                crc64: None,
                content_type: None,
                user_meta: BTreeMap::new(),
                has_marker: false,
                // The root always exists; its attributes are local.
                expires: far_future(),
                local: true,
                unlinked: false,
                times_explicit: false,
            },
        );
        InodeTable {
            inodes,
            children: HashMap::new(),
            negative: HashMap::new(),
            next_ino: ROOT_INO + 1,
            next_generation: 2,
            prefix,
            ttl,
            negative_ttl,
        }
    }

    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.inodes.get(&ino)
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.inodes.get_mut(&ino)
    }

    pub fn child(&self, parent: u64, name: &str) -> Option<&Inode> {
        self.children
            .get(&(parent, name.to_string()))
            .and_then(|i| self.inodes.get(i))
    }

    /// The key of `ino`: the object key for files and symlinks, the prefix (ending in
    /// `/`, or the mount prefix for the root) for directories.
    pub fn key_of(&self, ino: u64) -> Option<String> {
        let node = self.inodes.get(&ino)?;
        let mut parts = Vec::new();
        let mut cur = node;
        while cur.ino != ROOT_INO {
            parts.push(cur.name.as_str());
            cur = self.inodes.get(&cur.parent)?;
        }
        let mut key = self.prefix.clone();
        for (i, p) in parts.iter().rev().enumerate() {
            if i > 0 {
                key.push('/');
            }
            key.push_str(p);
        }
        if node.meta.kind == FileKind::Directory && node.ino != ROOT_INO {
            key.push('/');
        }
        Some(key)
    }

    /// The key a child `name` of directory `parent` has (without a trailing slash).
    pub fn child_key(&self, parent: u64, name: &str) -> Option<String> {
        let dir = self.key_of(parent)?;
        Some(format!("{dir}{name}"))
    }

    /// Records what the bucket says about `parent/name` and returns its inode. An
    /// existing inode of the same kind is updated in place (same number); a kind change
    /// detaches the old inode and makes a new one.
    pub fn upsert(&mut self, parent: u64, name: &str, f: Found, now: Instant) -> u64 {
        self.negative.remove(&(parent, name.to_string()));
        let k = (parent, name.to_string());
        if let Some(&ino) = self.children.get(&k) {
            if let Some(node) = self.inodes.get_mut(&ino) {
                if node.meta.kind == f.meta.kind {
                    if !node.local {
                        node.meta = f.meta;
                        node.size = f.size;
                        node.etag = f.etag;
                        node.crc64 = f.crc64;
                        node.content_type = f.content_type;
                        node.user_meta = f.user_meta;
                        node.has_marker = f.has_marker;
                        node.expires = now + self.ttl;
                    }
                    return ino;
                }
            }
            self.detach(parent, name);
        }
        self.maybe_sweep(now);
        let ino = self.next_ino;
        self.next_ino += 1;
        let generation = self.next_generation;
        self.next_generation += 1;
        self.inodes.insert(
            ino,
            Inode {
                ino,
                parent,
                name: name.to_string(),
                generation,
                lookups: 0,
                open_handles: 0,
                meta: f.meta,
                size: f.size,
                etag: f.etag,
                crc64: f.crc64,
                content_type: f.content_type,
                user_meta: f.user_meta,
                has_marker: f.has_marker,
                expires: now + self.ttl,
                local: false,
                unlinked: false,
                times_explicit: false,
            },
        );
        self.children.insert(k, ino);
        ino
    }

    /// Records an entry seen in a listing. A fresh inode of the same kind is kept as is
    /// (a listing carries no metadata); anything else is recorded as stale, so the next
    /// lookup completes it with a HEAD.
    pub fn upsert_listed(&mut self, parent: u64, name: &str, mut f: Found, now: Instant) -> u64 {
        if let Some(n) = self.child(parent, name) {
            // A listing cannot tell a symlink or special file from a regular file: keep
            // what a HEAD said.
            let typed = n.meta.kind == FileKind::Symlink || n.meta.kind.is_special();
            if typed && f.meta.kind == FileKind::File {
                f.meta.kind = n.meta.kind;
                f.meta.perm = n.meta.perm;
                f.meta.rdev = n.meta.rdev;
            }
            if n.meta.kind == f.meta.kind && n.fresh(now) {
                return n.ino;
            }
        }
        let ino = self.upsert(parent, name, f, now);
        if let Some(n) = self.inodes.get_mut(&ino) {
            if !n.local {
                n.expires = now;
            }
        }
        ino
    }

    /// Removes `parent/name` from the namespace. The inode stays while referenced.
    pub fn detach(&mut self, parent: u64, name: &str) -> Option<u64> {
        let ino = self.children.remove(&(parent, name.to_string()))?;
        let remove = match self.inodes.get_mut(&ino) {
            Some(n) => {
                n.unlinked = true;
                n.lookups == 0 && n.open_handles == 0
            }
            None => false,
        };
        if remove {
            self.inodes.remove(&ino);
        }
        Some(ino)
    }

    /// This mount created, removed or renamed an entry of directory `dir`: its mtime and
    /// ctime move (in memory: a directory's times are not worth a request of their own).
    pub fn entries_changed(&mut self, dir: u64) {
        if let Some(d) = self.inodes.get_mut(&dir) {
            d.data_changed();
        }
    }

    /// Moves `parent/name` to `new_parent/new_name`, detaching whatever was there. Both
    /// directories' times and the moved inode's ctime move.
    pub fn rename(&mut self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        let Some(ino) = self.children.remove(&(parent, name.to_string())) else {
            return;
        };
        self.entries_changed(parent);
        self.entries_changed(new_parent);
        if let Some(n) = self.inodes.get_mut(&ino) {
            n.meta.changed();
        }
        self.detach(new_parent, new_name);
        self.negative.remove(&(new_parent, new_name.to_string()));
        if let Some(n) = self.inodes.get_mut(&ino) {
            n.parent = new_parent;
            n.name = new_name.to_string();
        }
        self.children
            .insert((new_parent, new_name.to_string()), ino);
    }

    /// The kernel took one more reference (an entry reply was sent).
    pub fn add_lookup(&mut self, ino: u64) {
        if let Some(n) = self.inodes.get_mut(&ino) {
            n.lookups += 1;
        }
    }

    /// The kernel dropped `n` references.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let drop_it = match self.inodes.get_mut(&ino) {
            Some(node) => {
                node.lookups = node.lookups.saturating_sub(n);
                node.lookups == 0 && node.open_handles == 0 && node.unlinked
            }
            None => false,
        };
        if drop_it {
            self.inodes.remove(&ino);
        }
    }

    /// A handle was closed; frees unlinked inodes nobody references.
    pub fn handle_closed(&mut self, ino: u64) {
        let drop_it = match self.inodes.get_mut(&ino) {
            Some(node) => {
                node.open_handles = node.open_handles.saturating_sub(1);
                node.lookups == 0 && node.open_handles == 0 && node.unlinked
            }
            None => false,
        };
        if drop_it {
            self.inodes.remove(&ino);
        }
    }

    /// Marks attributes stale so the next lookup asks the bucket.
    pub fn invalidate(&mut self, ino: u64) {
        if let Some(n) = self.inodes.get_mut(&ino) {
            if !n.local && n.ino != ROOT_INO {
                n.expires = Instant::now();
            }
        }
    }

    /// Marks every inode below `ino` stale (after its objects were copied elsewhere, their
    /// ETags may have changed).
    pub fn invalidate_subtree(&mut self, ino: u64) {
        let below: Vec<u64> = self
            .inodes
            .keys()
            .copied()
            .filter(|&i| self.is_below(i, ino))
            .collect();
        let now = Instant::now();
        for i in below {
            if let Some(n) = self.inodes.get_mut(&i) {
                if !n.local {
                    n.expires = now;
                }
            }
        }
    }

    fn is_below(&self, mut i: u64, ancestor: u64) -> bool {
        // Bounded walk: parents always exist up to the root, which is its own parent.
        for _ in 0..4096 {
            let Some(n) = self.inodes.get(&i) else {
                return false;
            };
            if n.ino == ROOT_INO {
                return false;
            }
            if n.parent == ancestor {
                return true;
            }
            i = n.parent;
        }
        false
    }

    /// Children currently in the table (for rmdir/rename checks of local files).
    pub fn local_children(&self, parent: u64) -> Vec<u64> {
        self.children
            .iter()
            .filter(|((p, _), _)| *p == parent)
            .filter_map(|(_, ino)| self.inodes.get(ino))
            .filter(|n| n.local)
            .map(|n| n.ino)
            .collect()
    }

    pub fn set_negative(&mut self, parent: u64, name: &str, now: Instant) {
        if self.negative_ttl.is_zero() {
            return;
        }
        if self.negative.len() >= NEGATIVE_CAP {
            self.negative.retain(|_, t| *t > now);
            if self.negative.len() >= NEGATIVE_CAP {
                // Still full of live entries: forget the older half (they are hints only).
                let mut ts: Vec<Instant> = self.negative.values().copied().collect();
                ts.sort();
                let cut = ts[ts.len() / 2];
                self.negative.retain(|_, t| *t > cut);
            }
        }
        self.negative
            .insert((parent, name.to_string()), now + self.negative_ttl);
    }

    pub fn is_negative(&self, parent: u64, name: &str, now: Instant) -> bool {
        self.negative
            .get(&(parent, name.to_string()))
            .is_some_and(|t| now < *t)
    }

    pub fn clear_negative(&mut self, parent: u64, name: &str) {
        self.negative.remove(&(parent, name.to_string()));
    }

    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Drops expired attribute-only entries once the table is large.
    fn maybe_sweep(&mut self, now: Instant) {
        if self.inodes.len() < SWEEP_ABOVE {
            return;
        }
        let dead: Vec<(u64, String)> = self
            .children
            .iter()
            .filter_map(|(k, ino)| self.inodes.get(ino).map(|n| (k, n)))
            .filter(|(_, n)| {
                n.lookups == 0
                    && n.open_handles == 0
                    && !n.local
                    && n.expires <= now
                    && n.meta.kind != FileKind::Directory
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (p, name) in dead {
            self.detach(p, &name);
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::attr::{implicit_dir, Defaults};

    fn table() -> InodeTable {
        let d = Defaults {
            uid: 0,
            gid: 0,
            umask: 0o022,
        };
        InodeTable::new(
            "pre/".into(),
            implicit_dir(&d),
            Duration::from_secs(60),
            Duration::from_secs(5),
        )
    }

    fn found(kind: FileKind) -> Found {
        let d = Defaults {
            uid: 0,
            gid: 0,
            umask: 0o022,
        };
        let mut meta = implicit_dir(&d);
        meta.kind = kind;
        Found {
            meta,
            size: 3,
            etag: None,
            crc64: None,
            content_type: None,
            user_meta: BTreeMap::new(),
            has_marker: false,
        }
    }

    #[test]
    fn keys_follow_renames_of_parents() {
        let mut t = table();
        let now = Instant::now();
        let d = t.upsert(ROOT_INO, "d", found(FileKind::Directory), now);
        let f = t.upsert(d, "f", found(FileKind::File), now);
        assert_eq!(t.key_of(d).unwrap(), "pre/d/");
        assert_eq!(t.key_of(f).unwrap(), "pre/d/f");
        t.rename(ROOT_INO, "d", ROOT_INO, "e");
        assert_eq!(t.key_of(f).unwrap(), "pre/e/f");
        assert!(t.child(ROOT_INO, "d").is_none());
    }

    #[test]
    fn same_kind_keeps_the_number_and_kind_change_replaces_it() {
        let mut t = table();
        let now = Instant::now();
        let a = t.upsert(ROOT_INO, "x", found(FileKind::File), now);
        assert_eq!(t.upsert(ROOT_INO, "x", found(FileKind::File), now), a);
        t.add_lookup(a);
        let b = t.upsert(ROOT_INO, "x", found(FileKind::Directory), now);
        assert_ne!(a, b);
        // The old inode lives on until forgotten.
        assert!(t.get(a).unwrap().unlinked);
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        assert!(t.get(b).unwrap().generation > 1);
    }

    #[test]
    fn negative_entries_expire() {
        let mut t = table();
        let now = Instant::now();
        t.set_negative(ROOT_INO, "n", now);
        assert!(t.is_negative(ROOT_INO, "n", now));
        assert!(!t.is_negative(ROOT_INO, "n", now + Duration::from_secs(6)));
        t.upsert(ROOT_INO, "n", found(FileKind::File), now);
        assert!(!t.is_negative(ROOT_INO, "n", now));
    }
}

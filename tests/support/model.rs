//! The fault-schedule model test: random sequences of create, open, write, pwrite,
//! append, truncate, read, fsync, close, rename, unlink and whole-file reads, with several
//! handles per file, run against a filesystem while requests fail, and checked against a
//! model of what was acknowledged.
//!
//! The same engine drives two filesystems through the `Driver` trait: `CosFs` in process
//! over `MemStore` behind a `FaultyClient` (tests/fs/durability_model.rs), and a real FUSE mount over
//! coslocal with random faults (tests/mount/durability_model.rs).
//!
//! The model keeps, per path, the set of contents the bucket may hold (`None` = absent):
//! one after an acknowledged operation, more after a failed one whose request may or may
//! not have acted (a lost answer). Per open file it keeps the content the handles see and
//! whether an error was returned. The invariants:
//! - every read returns exactly the model's bytes, or an error ("silent mismatch" else);
//! - once write, ftruncate, fsync or close returned an error for a file, every later
//!   write, ftruncate, fsync and close through the descriptors open at that moment fails
//!   until each is closed ("non-sticky error" else); in process, reads fail too; a file
//!   opened afterwards starts over from what the bucket holds;
//! - after the faults stop and a fresh mount, every file is one of the contents the model
//!   allows: its last acknowledged content, or for a failed write its previous content,
//!   the complete new one, or the content it had at a sync point the filesystem documents
//!   (an out-of-order write, truncation or read of data already streamed out uploads what
//!   was written so far) — never a mix of versions, never a torn write.
//!
//! Files are renamed and unlinked only while closed, so the model never has to follow an
//! open inode to a new name.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A file handle of a driver.
pub type Fh = u64;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenHow {
    /// O_CREAT | O_TRUNC | O_WRONLY.
    CreateTrunc,
    /// O_CREAT | O_TRUNC | O_RDWR.
    CreateTruncRw,
    /// O_RDWR of an existing file.
    ReadWrite,
    /// O_RDONLY.
    ReadOnly,
}

impl OpenHow {
    fn writable(self) -> bool {
        self != OpenHow::ReadOnly
    }

    fn readable(self) -> bool {
        self != OpenHow::CreateTrunc
    }

    fn truncates(self) -> bool {
        matches!(self, OpenHow::CreateTrunc | OpenHow::CreateTruncRw)
    }
}

/// A filesystem under test. Errors are errno values.
pub trait Driver {
    fn open(&mut self, path: &str, how: OpenHow) -> Result<Fh, i32>;
    fn write(&mut self, fh: Fh, offset: u64, data: &[u8]) -> Result<(), i32>;
    fn read(&mut self, fh: Fh, offset: u64, len: usize) -> Result<Vec<u8>, i32>;
    fn ftruncate(&mut self, fh: Fh, size: u64) -> Result<(), i32>;
    fn fsync(&mut self, fh: Fh) -> Result<(), i32>;
    /// close(2): the result of the flush of this descriptor.
    fn close(&mut self, fh: Fh) -> Result<(), i32>;
    fn rename(&mut self, from: &str, to: &str) -> Result<(), i32>;
    fn unlink(&mut self, path: &str) -> Result<(), i32>;
    /// The whole file through a fresh descriptor; `Ok(None)` when it does not exist.
    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, i32>;
    fn mkdir(&mut self, path: &str) -> Result<(), i32>;
    /// Turns the faults on (the seeded schedule) or off.
    fn set_faults(&mut self, on: bool);
    /// Faults injected so far (from the fault source's own counter).
    fn faults_injected(&mut self) -> u64;
    /// Transient failures the client's retries absorbed, when the driver can tell.
    fn retries_absorbed(&mut self) -> Option<u64>;
    /// A fresh mount of the same bucket (every handle is closed before).
    fn remount(&mut self);
    /// Whether reads through a handle of a failed file must fail (in process: yes; through
    /// the kernel, its page cache may still answer them with the bytes written).
    fn reads_of_failed_files_fail(&self) -> bool;
}

/// Contents the bucket may hold for a path (`None`: absent).
type Candidates = Vec<Option<Vec<u8>>>;

fn add(c: &mut Candidates, v: Option<Vec<u8>>) {
    if !c.contains(&v) {
        c.push(v);
    }
}

/// A file's descriptors opened since its last failure (or first open), sharing one content.
struct Epoch {
    handles: Vec<(Fh, OpenHow)>,
    /// Handles that changed the file since they last uploaded it: their close uploads.
    dirty: std::collections::BTreeSet<Fh>,
    /// The content the handles see.
    view: Vec<u8>,
    /// Unflushed changes exist.
    pending: bool,
    /// A read of pending data failed: the handles may have been failed by it (a read that
    /// had to commit streamed data); the next call that must succeed or fail tells. No new
    /// descriptor joins meanwhile.
    maybe_failed: bool,
    /// What the bucket may hold if the file ends failed: what it held at open or the last
    /// acknowledged flush, plus every complete content a sync point may have committed.
    possible: Candidates,
    /// A write happened through this open file.
    written: bool,
}

/// A descriptor of a failed file: every call through it must fail.
struct Dead {
    path: String,
    how: OpenHow,
    errno: i32,
    /// What it saw when the file failed (the kernel's page cache may still answer reads).
    view: Vec<u8>,
}

/// What a run counted.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub seed: u64,
    pub ops: u64,
    pub faults_injected: u64,
    pub retries_absorbed: Option<u64>,
    pub errors_surfaced: u64,
    pub silent_mismatches: u64,
    pub non_sticky_errors: u64,
    /// Files opened for writing and written (a "file write").
    pub file_writes: u64,
    /// Of those, the ones whose every call succeeded through the last close.
    pub file_writes_ok: u64,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.silent_mismatches == 0 && self.non_sticky_errors == 0
    }

    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            self.seed,
            self.ops,
            self.faults_injected,
            self.retries_absorbed
                .map_or("-".to_string(), |n| n.to_string()),
            self.errors_surfaced,
            self.silent_mismatches,
            self.non_sticky_errors,
            self.file_writes_ok,
            self.file_writes
        )
    }

    pub const HEADER: &'static str = "| seed | ops | faults injected | transient faults absorbed | errors surfaced | silent mismatches | non-sticky errors | file writes ok |\n|---|---|---|---|---|---|---|---|";
}

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct Shape {
    pub ops: u64,
    /// Paths in use (`d/` ones live in a directory made first).
    pub paths: Vec<String>,
    /// Largest single write.
    pub max_write: usize,
    /// Files never grow beyond this (writes beyond it become smaller).
    pub max_file: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            ops: 200,
            paths: ["a", "b", "c", "d/e", "d/f"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            max_write: 400 * 1024,
            max_file: 3 * 1024 * 1024 + 17,
        }
    }
}

/// One run of the model against `d`.
pub struct Run<'a, D: Driver> {
    d: &'a mut D,
    rng: StdRng,
    shape: Shape,
    bucket: BTreeMap<String, Candidates>,
    open: BTreeMap<String, Epoch>,
    dead: BTreeMap<Fh, Dead>,
    report: Report,
    /// Print every call and result (env COSMOUNT_MODEL_TRACE).
    tracing: bool,
}

fn errno_name(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

impl<'a, D: Driver> Run<'a, D> {
    pub fn new(d: &'a mut D, seed: u64, shape: Shape) -> Self {
        let mut bucket = BTreeMap::new();
        for p in &shape.paths {
            bucket.insert(p.clone(), vec![None]);
        }
        Run {
            d,
            rng: StdRng::seed_from_u64(seed),
            shape,
            bucket,
            open: BTreeMap::new(),
            dead: BTreeMap::new(),
            report: Report {
                seed,
                ..Report::default()
            },
            tracing: std::env::var_os("COSMOUNT_MODEL_TRACE").is_some(),
        }
    }

    fn problem(&mut self, what: String) {
        if self.report.problems.len() < 20 {
            self.report.problems.push(what);
        }
    }

    fn mismatch(&mut self, what: String) {
        self.report.silent_mismatches += 1;
        self.problem(format!("SILENT MISMATCH: {what}"));
    }

    fn non_sticky(&mut self, what: String) {
        self.report.non_sticky_errors += 1;
        self.problem(format!("NON-STICKY: {what}"));
    }

    /// Runs the schedule, then stops the faults, closes everything, remounts and checks
    /// every path.
    pub fn run(mut self) -> Report {
        for dir in self.dirs() {
            self.d
                .mkdir(&dir)
                .unwrap_or_else(|e| panic!("mkdir {dir}: {}", errno_name(e)));
        }
        self.d.set_faults(true);
        for _ in 0..self.shape.ops {
            self.step();
            self.report.ops += 1;
        }
        self.d.set_faults(false);
        let open: Vec<(String, Fh)> = self
            .open
            .iter()
            .flat_map(|(p, o)| o.handles.iter().map(move |(fh, _)| (p.clone(), *fh)))
            .chain(self.dead.iter().map(|(fh, d)| (d.path.clone(), *fh)))
            .collect();
        for (p, fh) in open {
            self.close(&p, fh);
        }
        self.d.remount();
        self.report.faults_injected = self.d.faults_injected();
        self.report.retries_absorbed = self.d.retries_absorbed();
        let paths: Vec<String> = self.shape.paths.clone();
        for p in paths {
            let want = self.bucket[&p].clone();
            match self.d.read_file(&p) {
                Ok(got) => {
                    if !want.contains(&got) {
                        let desc = describe(&want);
                        self.mismatch(format!(
                            "after remount {p} holds {} but the model allows {desc}",
                            show(&got)
                        ));
                    }
                }
                Err(e) => self.problem(format!(
                    "after remount without faults, reading {p} failed: {}",
                    errno_name(e)
                )),
            }
        }
        self.report
    }

    fn dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .shape
            .paths
            .iter()
            .filter_map(|p| p.rsplit_once('/').map(|(d, _)| d.to_string()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn pick_path(&mut self) -> String {
        let i = self.rng.gen_range(0..self.shape.paths.len());
        self.shape.paths[i].clone()
    }

    /// A descriptor (live or of a failed file) whose mode `want` accepts.
    fn pick_handle(&mut self, want: impl Fn(OpenHow) -> bool) -> Option<(String, Fh, OpenHow)> {
        let all: Vec<(String, Fh, OpenHow)> = self
            .open
            .iter()
            .flat_map(|(p, o)| o.handles.iter().map(move |(fh, h)| (p.clone(), *fh, *h)))
            .chain(self.dead.iter().map(|(fh, d)| (d.path.clone(), *fh, d.how)))
            .filter(|(_, _, h)| want(*h))
            .collect();
        if all.is_empty() {
            return None;
        }
        Some(all[self.rng.gen_range(0..all.len())].clone())
    }

    fn data(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.rng.fill(&mut v[..]);
        v
    }

    fn trace(&self, what: std::fmt::Arguments) {
        if self.tracing {
            eprintln!("[{}] {what}", self.report.ops);
        }
    }

    fn step(&mut self) {
        let handles: usize =
            self.open.values().map(|o| o.handles.len()).sum::<usize>() + self.dead.len();
        // Keep something open to work on, and not too much.
        let roll = match handles {
            0 => 0,
            h if h > 6 => 70,
            _ => self.rng.gen_range(0..100),
        };
        match roll {
            0..=14 => {
                let p = self.pick_path();
                let how = match self.rng.gen_range(0..4) {
                    0 => OpenHow::CreateTrunc,
                    1 => OpenHow::CreateTruncRw,
                    2 => OpenHow::ReadWrite,
                    _ => OpenHow::ReadOnly,
                };
                self.open_path(&p, how);
            }
            15..=44 => self.write_some(),
            45..=49 => {
                if let Some((p, fh, _)) = self.pick_handle(OpenHow::writable) {
                    let len = self.open.get(&p).map_or(0, |o| o.view.len());
                    let size = match self.rng.gen_range(0..3) {
                        0 => 0,
                        1 => self.rng.gen_range(0..=len),
                        _ => (len + self.rng.gen_range(0..100_000)).min(self.shape.max_file),
                    };
                    self.ftruncate(&p, fh, size as u64);
                }
            }
            50..=61 => {
                if let Some((p, fh, _)) = self.pick_handle(OpenHow::readable) {
                    self.read(&p, fh);
                }
            }
            62..=69 => {
                if let Some((p, fh, _)) = self.pick_handle(OpenHow::writable) {
                    self.fsync(&p, fh);
                }
            }
            70..=84 => {
                if let Some((p, fh, _)) = self.pick_handle(|_| true) {
                    self.close(&p, fh);
                }
            }
            85..=89 => {
                let (a, b) = (self.pick_path(), self.pick_path());
                self.rename(&a, &b);
            }
            90..=93 => {
                let p = self.pick_path();
                self.unlink(&p);
            }
            _ => {
                let p = self.pick_path();
                self.read_file(&p);
            }
        }
    }

    /// Makes the bucket state of a closed path certain by reading it; false if it stays
    /// uncertain (the read failed).
    fn resolve(&mut self, p: &str) -> bool {
        if self.bucket[p].len() == 1 {
            return true;
        }
        self.read_file(p);
        self.bucket[p].len() == 1
    }

    fn open_path(&mut self, p: &str, how: OpenHow) {
        match self.open.get(p) {
            // Whether the descriptors are failed is not known yet: a new one would not join
            // them if they are, so wait until it is.
            Some(o) if o.maybe_failed => return,
            Some(_) => {}
            None => {
                if !self.resolve(p) {
                    return;
                }
            }
        }
        let exists = self.open.contains_key(p) || self.bucket[p][0].is_some();
        if !exists && !how.truncates() {
            return;
        }
        let r = self.d.open(p, how);
        self.trace(format_args!("open {p} {how:?} -> {r:?}"));
        let fh = match r {
            Ok(fh) => fh,
            Err(_) => {
                // Opening may need a lookup (faults); nothing changed.
                self.report.errors_surfaced += 1;
                return;
            }
        };
        match self.open.get_mut(p) {
            Some(o) => {
                o.handles.push((fh, how));
                if how.truncates() {
                    o.view.clear();
                    o.pending = true;
                    o.dirty.insert(fh);
                }
            }
            None => {
                let base = self.bucket[p].clone();
                let view = if how.truncates() {
                    Vec::new()
                } else {
                    base[0].clone().unwrap_or_default()
                };
                let mut dirty = std::collections::BTreeSet::new();
                if how.truncates() {
                    dirty.insert(fh);
                }
                self.open.insert(
                    p.to_string(),
                    Epoch {
                        handles: vec![(fh, how)],
                        dirty,
                        view,
                        pending: how.truncates(),
                        maybe_failed: false,
                        possible: base,
                        written: false,
                    },
                );
            }
        }
    }

    /// The file failed with `errno`: every descriptor open on it now is failed, and the
    /// bucket holds one of the contents it may have left.
    fn fail(&mut self, p: &str, errno: i32) {
        let Some(o) = self.open.remove(p) else {
            return;
        };
        for (fh, how) in o.handles {
            self.dead.insert(
                fh,
                Dead {
                    path: p.to_string(),
                    how,
                    errno,
                    view: o.view.clone(),
                },
            );
        }
        let mut c = o.possible;
        if o.pending {
            add(&mut c, Some(o.view));
        }
        self.bucket.insert(p.to_string(), c);
        if o.written {
            self.report.file_writes += 1;
        }
    }

    /// A call through a failed descriptor: it must fail too.
    fn on_dead(&mut self, fh: Fh, what: &str, r: Result<(), i32>) {
        let d = &self.dead[&fh];
        match r {
            Ok(()) => {
                let msg = format!(
                    "{what} through a descriptor of {} succeeded after errno {} was returned",
                    d.path,
                    errno_name(d.errno)
                );
                self.non_sticky(msg);
            }
            Err(_) => self.report.errors_surfaced += 1,
        }
    }

    /// Records the result of a write-side call (write, ftruncate, fsync, dirty close)
    /// through a live descriptor; true if it succeeded and the model applies it.
    fn write_side(&mut self, p: &str, what: &str, r: Result<(), i32>) -> bool {
        self.trace(format_args!("{what} {p} -> {r:?}"));
        match r {
            Ok(()) => {
                if let Some(o) = self.open.get_mut(p) {
                    o.maybe_failed = false;
                }
                true
            }
            Err(e) => {
                self.report.errors_surfaced += 1;
                self.fail(p, e);
                false
            }
        }
    }

    fn write_some(&mut self) {
        let Some((p, fh, _)) = self.pick_handle(OpenHow::writable) else {
            return;
        };
        let len_now = self.open.get(&p).map_or(0, |o| o.view.len());
        let (offset, len) = match self.rng.gen_range(0..10) {
            // Mostly sequential appends: the streaming path.
            0..=6 => (len_now, self.rng.gen_range(1..=self.shape.max_write)),
            // pwrite inside the file (or at its end).
            7 | 8 => (
                self.rng.gen_range(0..=len_now),
                self.rng.gen_range(1..=64 * 1024),
            ),
            // A hole.
            _ => (
                len_now + self.rng.gen_range(1..5000),
                self.rng.gen_range(1..5000),
            ),
        };
        let len = len.min(self.shape.max_file.saturating_sub(offset));
        if len == 0 {
            return;
        }
        let data = self.data(len);
        if self.dead.contains_key(&fh) {
            let r = self.d.write(fh, offset as u64, &data);
            self.trace(format_args!("write fh {fh} (failed) -> {r:?}"));
            self.on_dead(fh, "write", r);
            return;
        }
        if offset != len_now {
            self.sync_point(&p);
        }
        let r = self.d.write(fh, offset as u64, &data);
        let what = format!("write fh {fh} @{offset}+{len}");
        if let Some(o) = self.open.get_mut(&p) {
            o.written = true;
        }
        if self.write_side(&p, &what, r) {
            let o = self.open.get_mut(&p).expect("open");
            if o.view.len() < offset + len {
                o.view.resize(offset + len, 0);
            }
            o.view[offset..offset + len].copy_from_slice(&data);
            o.pending = true;
            o.dirty.insert(fh);
        }
    }

    /// Before a call that may make the filesystem upload what was written so far (an
    /// out-of-order write, a truncation or a read of data already streamed out as parts: a
    /// documented sync point), the current content is one the bucket may end up holding.
    fn sync_point(&mut self, p: &str) {
        if let Some(o) = self.open.get_mut(p) {
            if o.pending {
                let v = Some(o.view.clone());
                add(&mut o.possible, v);
            }
        }
    }

    fn ftruncate(&mut self, p: &str, fh: Fh, size: u64) {
        if self.dead.contains_key(&fh) {
            let r = self.d.ftruncate(fh, size);
            self.on_dead(fh, "ftruncate", r);
            return;
        }
        self.sync_point(p);
        let r = self.d.ftruncate(fh, size);
        if let Some(o) = self.open.get_mut(p) {
            o.written = true;
        }
        if self.write_side(p, &format!("ftruncate fh {fh} to {size}"), r) {
            let o = self.open.get_mut(p).expect("open");
            o.view.resize(size as usize, 0);
            o.pending = true;
            o.dirty.insert(fh);
        }
    }

    fn read(&mut self, p: &str, fh: Fh) {
        let strict = self.d.reads_of_failed_files_fail();
        let view = match (self.open.get(p), self.dead.get(&fh)) {
            (_, Some(d)) => d.view.clone(),
            (Some(o), None) => o.view.clone(),
            (None, None) => return,
        };
        let dead = self.dead.contains_key(&fh);
        let offset = if !view.is_empty() && self.rng.gen_bool(0.7) {
            self.rng.gen_range(0..view.len())
        } else {
            0
        };
        let len = self.rng.gen_range(1..=256 * 1024);
        if !dead {
            self.sync_point(p);
        }
        let r = self.d.read(fh, offset as u64, len);
        self.trace(format_args!(
            "read {p} fh {fh}{} @{offset}+{len} -> {:?}",
            if dead { " (failed)" } else { "" },
            r.as_ref().map(|v| v.len())
        ));
        match r {
            Ok(got) => {
                if dead && strict {
                    self.on_dead(fh, "read", Ok(()));
                    return;
                }
                let end = (offset + len).min(view.len());
                let want = &view[offset.min(end)..end];
                if got != want {
                    let msg = format!(
                        "read of {p} at {offset} (+{len}) returned {} bytes that differ from the \
                         model's {} (first difference at {:?})",
                        got.len(),
                        want.len(),
                        got.iter().zip(want).position(|(a, b)| a != b)
                    );
                    self.mismatch(msg);
                }
                if let (false, true, Some(o)) = (dead, strict, self.open.get_mut(p)) {
                    o.maybe_failed = false;
                }
            }
            Err(_) => {
                self.report.errors_surfaced += 1;
                if let (false, Some(o)) = (dead, self.open.get_mut(p)) {
                    // Only a read of pending data can fail the file (reading it back may
                    // need a commit); a failed read of the bucket changes nothing.
                    if o.pending {
                        o.maybe_failed = true;
                    }
                }
            }
        }
    }

    fn flushed(&mut self, p: &str) {
        let Some(o) = self.open.get_mut(p) else {
            return;
        };
        if o.pending {
            o.possible = vec![Some(o.view.clone())];
            o.pending = false;
        }
        // A flush that succeeded proves what the bucket holds.
        self.bucket.insert(p.to_string(), o.possible.clone());
    }

    fn fsync(&mut self, p: &str, fh: Fh) {
        let r = self.d.fsync(fh);
        if self.dead.contains_key(&fh) {
            self.on_dead(fh, "fsync", r);
            return;
        }
        if self.write_side(p, &format!("fsync fh {fh}"), r) {
            self.open.get_mut(p).expect("open").dirty.remove(&fh);
            self.flushed(p);
        }
    }

    fn close(&mut self, p: &str, fh: Fh) {
        if self.dead.contains_key(&fh) {
            let r = self.d.close(fh);
            self.trace(format_args!("close {p} fh {fh} (failed) -> {r:?}"));
            self.on_dead(fh, "close", r);
            self.dead.remove(&fh);
            return;
        }
        let (how, dirty) = {
            let o = self.open.get_mut(p).expect("open");
            let i = o
                .handles
                .iter()
                .position(|(f, _)| *f == fh)
                .expect("handle");
            (o.handles.remove(i).1, o.dirty.remove(&fh))
        };
        let r = self.d.close(fh);
        self.trace(format_args!(
            "close {p} fh {fh} ({how:?}, dirty {dirty}) -> {r:?}"
        ));
        if dirty {
            if self.write_side(p, &format!("close fh {fh}"), r) {
                self.flushed(p);
            }
        } else if let Err(e) = r {
            // A descriptor that changed nothing uploads nothing (what other descriptors
            // wrote is theirs to close or fsync); only a failure it saw can explain an error.
            self.report.errors_surfaced += 1;
            let maybe = self.open.get(p).is_some_and(|o| o.maybe_failed);
            if maybe {
                self.fail(p, e);
            } else {
                let msg = format!(
                    "close of a descriptor of {p} that changed nothing failed: {}",
                    errno_name(e)
                );
                self.problem(msg);
            }
        }
        let Some(o) = self.open.get(p) else {
            return;
        };
        if o.handles.is_empty() {
            let o = self.open.remove(p).expect("open");
            if o.written {
                self.report.file_writes += 1;
                if !o.maybe_failed {
                    self.report.file_writes_ok += 1;
                }
            }
            // The last close uploads what is pending; if that failed unseen (its result is
            // not a close's), any possible content stands.
            let mut c = o.possible;
            if o.pending || o.maybe_failed {
                add(&mut c, Some(o.view));
            }
            self.bucket.insert(p.to_string(), c);
        }
    }

    fn rename(&mut self, a: &str, b: &str) {
        if a == b || self.open.contains_key(a) || self.open.contains_key(b) {
            return;
        }
        if !self.resolve(a) || !self.resolve(b) {
            return;
        }
        let Some(src) = self.bucket[a][0].clone() else {
            return;
        };
        let old_b = self.bucket[b][0].clone();
        let r = self.d.rename(a, b);
        self.trace(format_args!("rename {a} {b} -> {r:?}"));
        match r {
            Ok(()) => {
                self.bucket.insert(a.to_string(), vec![None]);
                self.bucket.insert(b.to_string(), vec![Some(src)]);
            }
            Err(_) => {
                self.report.errors_surfaced += 1;
                // Copy then delete: either may or may not have happened.
                self.bucket
                    .insert(a.to_string(), vec![Some(src.clone()), None]);
                let mut c = vec![old_b];
                add(&mut c, Some(src));
                self.bucket.insert(b.to_string(), c);
            }
        }
    }

    fn unlink(&mut self, p: &str) {
        if self.open.contains_key(p) || !self.resolve(p) || self.bucket[p][0].is_none() {
            return;
        }
        let r = self.d.unlink(p);
        self.trace(format_args!("unlink {p} -> {r:?}"));
        match r {
            Ok(()) => {
                self.bucket.insert(p.to_string(), vec![None]);
            }
            Err(_) => {
                self.report.errors_surfaced += 1;
                let mut c = self.bucket[p].clone();
                add(&mut c, None);
                self.bucket.insert(p.to_string(), c);
            }
        }
    }

    fn read_file(&mut self, p: &str) {
        if self.open.contains_key(p) {
            return;
        }
        let r = self.d.read_file(p);
        self.trace(format_args!(
            "read_file {p} -> {:?}",
            r.as_ref().map(|o| o.as_ref().map(|v| v.len()))
        ));
        match r {
            Ok(got) => {
                let want = &self.bucket[p];
                if want.contains(&got) {
                    self.bucket.insert(p.to_string(), vec![got]);
                } else {
                    let desc = describe(want);
                    self.mismatch(format!(
                        "{p} reads as {} but the model allows {desc}",
                        show(&got)
                    ));
                    // Go on from what is there, so one problem is reported once.
                    self.bucket.insert(p.to_string(), vec![got]);
                }
            }
            Err(_) => self.report.errors_surfaced += 1,
        }
    }
}

fn show(c: &Option<Vec<u8>>) -> String {
    match c {
        None => "nothing (absent)".to_string(),
        Some(v) => format!("{} bytes (crc {:016x})", v.len(), crc(v)),
    }
}

fn describe(c: &Candidates) -> String {
    let mut s = String::new();
    for (i, v) in c.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        let _ = write!(s, "{}", show(v));
    }
    s
}

fn crc(v: &[u8]) -> u64 {
    cosmount::cos::crc64::crc64(v)
}

/// Runs `seeds` and returns their reports; prints a table and every problem.
pub fn table(reports: &[Report]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", Report::HEADER);
    for r in reports {
        let _ = writeln!(s, "{}", r.row());
    }
    let total = reports.iter().fold(Report::default(), |mut t, r| {
        t.ops += r.ops;
        t.faults_injected += r.faults_injected;
        t.retries_absorbed = match (t.retries_absorbed, r.retries_absorbed) {
            (Some(a), Some(b)) => Some(a + b),
            (None, b) if t.ops == r.ops => b,
            (a, _) => a,
        };
        t.errors_surfaced += r.errors_surfaced;
        t.silent_mismatches += r.silent_mismatches;
        t.non_sticky_errors += r.non_sticky_errors;
        t.file_writes += r.file_writes;
        t.file_writes_ok += r.file_writes_ok;
        t
    });
    let mut row = total.row();
    row = row.replacen("| 0 |", "| total |", 1);
    let _ = writeln!(s, "{row}");
    for r in reports {
        for p in &r.problems {
            let _ = writeln!(s, "seed {}: {p}", r.seed);
        }
    }
    s
}

//! The write state of a file with open handles: one `OpenFile` per inode, shared by all
//! of its handles, so every handle sees the same pending data (as on a local disk) and
//! one failure is everyone's.
//!
//! ```text
//!              write at 0 of an empty file / O_TRUNC / create
//!   Clean ───────────────────────────────────────────────────────▶ Stream
//!     │                                                              │ sequential writes:
//!     │ any other write, truncate,                                   │ full parts go out as
//!     │ read of pending data                                         │ Upload Part meanwhile
//!     ▼                                                              ▼
//!   Staged ◀──── out-of-order write, memory short, read ─────────── Stream
//!     │  (the staging copy exists before the stream is let go)       │
//!     │ flush ok: uploaded, dirty = false            flush ok: ─────▶ Clean
//!
//!   any state ── an error from write, truncate, flush, fsync, close ──▶ Clean, and every
//!                handle open then is failed with that error
//! ```
//!
//! The rules, enforced in one place (`CosFs::settle`):
//! - An error returned by write, ftruncate, flush, fsync or close (or a read that needed
//!   the pending data) fails every handle the file has at that moment: from then on every
//!   write, read, fsync, flush and close through any of them returns the error again,
//!   until it is closed. The pending data is discarded (a started multipart upload is
//!   aborted): a failed file never completes, PUTs or copies partial data, so the bucket
//!   keeps the previous object. The shared state starts over from the bucket, so a file
//!   opened after the failure works normally (as Linux reports a writeback error to the
//!   descriptors open when it happened, not to later ones). That matters because the
//!   kernel releases a closed descriptor asynchronously: a program that closes a failed
//!   file and opens it again at once must not be refused for the old failure.
//! - A transition that can fail builds the new state before it replaces the old one; and
//!   because any failure fails the handles, no transition can silently drop data that a
//!   write() already acknowledged: either it reaches the bucket at flush/fsync/close, or
//!   those calls fail.
//! - Clean means nothing is pending: the bucket holds what the handles wrote (or they
//!   wrote nothing). Staged with `dirty == false` is the same, with a local copy kept.
//! - Sync points: parts already streamed out cannot be read back or rewritten until the
//!   upload is completed, so an out-of-order write, a truncation or a read that needs them
//!   completes it first (as an fsync would), then continues in a staging file. From then
//!   on a failure leaves the bucket with the file as it was at that moment, not with the
//!   previous object.

use super::staging::Staging;
use super::write::Stream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The upload state of a file with open handles.
pub enum WriteState {
    /// Nothing pending.
    Clean,
    /// New content written sequentially from offset 0, streaming out as parts.
    Stream(Stream),
    /// The whole content in a local staging file.
    Staged(Staging),
}

/// Who changed a file through one handle since the handle last uploaded it, by the FUSE
/// lock owner of the calls (one per process's descriptor table).
///
/// close(2) of a descriptor uploads only what *that process* wrote through it: the kernel
/// also sends a flush whenever any process sharing the descriptor closes its copy, and
/// every fork + exec of a multithreaded program closes copies of all its descriptors. A
/// file being written must not be committed half-way because some other thread spawned a
/// program. Changes made without an owner (buffered writes, ftruncate) count for anyone.
///
/// Creating a file or opening it with O_TRUNC carries no owner either (FUSE's open has
/// none), yet `touch f` or `: > f` must be in the bucket when close returns, with the
/// close's result, and before the program's next step (a chmod, rename or unlink) runs
/// against it. So that change counts for any close until a process writes through the
/// handle: the writer then owns the whole new content, and only its close commits it.
#[derive(Debug, Default)]
pub struct Changes {
    any: bool,
    opened_new: bool,
    owners: Vec<u64>,
}

/// Distinct owners remembered per handle; more count for anyone.
const MAX_OWNERS: usize = 16;

impl Changes {
    /// The handle created the file or emptied it on open.
    pub fn opened_new(&mut self) {
        self.opened_new = true;
    }

    pub fn record(&mut self, owner: Option<u64>) {
        match owner {
            Some(o) if self.owners.contains(&o) => {}
            Some(o) if self.owners.len() < MAX_OWNERS => {
                self.opened_new = false;
                self.owners.push(o);
            }
            _ => self.any = true,
        }
    }

    /// Whether a close by `owner` should upload.
    pub fn by(&self, owner: Option<u64>) -> bool {
        self.any || self.opened_new || owner.is_some_and(|o| self.owners.contains(&o))
    }

    pub fn is_empty(&self) -> bool {
        !self.any && !self.opened_new && self.owners.is_empty()
    }

    pub fn clear(&mut self) {
        *self = Changes::default();
    }
}

/// One inode's shared state while it has open handles.
pub struct OpenFile {
    pub ino: u64,
    pub state: tokio::sync::Mutex<WriteState>,
    /// Open handles; changed only under the registry's lock.
    handles: AtomicUsize,
    /// Streamed data was committed early (a sync point): the bucket no longer holds the
    /// previous object but this file as of that moment.
    pub synced_early: AtomicBool,
}

impl OpenFile {
    pub fn new(ino: u64, state: WriteState) -> OpenFile {
        OpenFile {
            ino,
            state: tokio::sync::Mutex::new(state),
            handles: AtomicUsize::new(0),
            synced_early: AtomicBool::new(false),
        }
    }

    /// One more handle (registry lock held).
    pub fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::SeqCst);
    }

    /// One handle less (registry lock held); true when it was the last.
    pub fn remove_handle(&self) -> bool {
        self.handles.fetch_sub(1, Ordering::SeqCst) <= 1
    }

    pub fn handles(&self) -> usize {
        self.handles.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::Changes;

    #[test]
    fn a_writers_close_commits_and_a_strangers_does_not() {
        let mut c = Changes::default();
        assert!(c.is_empty() && !c.by(Some(1)) && !c.by(None));
        c.record(Some(1));
        assert!(c.by(Some(1)));
        assert!(!c.by(Some(2)), "a forked child's close must not commit");
        assert!(!c.by(None));
        c.record(None);
        assert!(c.by(Some(2)), "an ownerless change counts for anyone");
    }

    #[test]
    fn a_new_file_is_owed_by_any_close_until_someone_writes() {
        let mut c = Changes::default();
        c.opened_new();
        assert!(!c.is_empty());
        assert!(c.by(Some(7)) && c.by(None), "touch: the close uploads it");
        c.record(Some(1));
        assert!(c.by(Some(1)));
        assert!(!c.by(Some(7)), "the writer owns the new content now");
        c.clear();
        assert!(c.is_empty());
    }
}

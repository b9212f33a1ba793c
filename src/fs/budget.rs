//! `MemoryBudget`: the one memory budget of a mount (`memory_limit=`).
//!
//! Every large buffer the data paths hold is paid for from this budget before it is
//! allocated: cached blocks and read-ahead runs in flight, write buffers of streaming
//! uploads, parts read back from staging files, and idle buffers kept for reuse. A
//! `Reservation` is the receipt; it travels with the buffer (inside the `Bytes` owner, see
//! `bufpool`) and returns its share when the last slice of the buffer is dropped, so what
//! the budget counts is what is really allocated.
//!
//! When the budget is full, memory that is only kept for speed is given back first:
//! registered `Reclaim`ers (the block cache, the idle buffer pools) evict before anyone
//! waits. Writers additionally share a cap of three quarters of the budget, so buffers of
//! files that are open but idle can never starve reads of the rest.
//!
//! The budget is counted in 64 KiB units; a request larger than the whole budget is
//! clamped to it, so a single oversized buffer can still proceed alone.

use parking_lot::RwLock;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The unit the budget is counted in.
pub const UNIT: u64 = 64 * 1024;
/// How long a waiter sleeps on the semaphore before it asks the reclaimers again (memory
/// held by the cache is only given back when someone asks).
const RECLAIM_POLL: Duration = Duration::from_millis(20);
/// Rounds of asking the reclaimers before a reservation waits.
const MAX_RECLAIM_ROUNDS: usize = 64;

/// Something that holds memory only for speed and can give it back.
pub trait Reclaim: Send + Sync {
    /// Drops about `bytes` of what it holds (least valuable first) to relieve a shortage
    /// of `share`: `Purpose::Write` asks only for memory that counts against the writers'
    /// cap. Returns what it dropped; memory still referenced elsewhere comes back to the
    /// budget when that reference goes.
    fn reclaim(&self, bytes: u64, share: Purpose) -> u64;
}

/// Which share of the budget a reservation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Cache, read-ahead, idle pooled buffers: the whole budget.
    Read,
    /// Write buffers: also bounded by the writers' cap.
    Write,
}

/// The memory budget of a mount.
pub struct MemoryBudget {
    all: Arc<Semaphore>,
    writers: Arc<Semaphore>,
    total_units: u32,
    writer_units: u32,
    /// Who can give memory back, and whether it holds idle buffers (asked first).
    reclaimers: RwLock<Vec<(Weak<dyn Reclaim>, bool)>>,
}

/// A share of the budget, returned when dropped.
#[derive(Debug, Default)]
pub struct Reservation {
    all: Option<OwnedSemaphorePermit>,
    writer: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Bytes this reservation covers.
    pub fn bytes(&self) -> u64 {
        self.all.as_ref().map_or(0, |p| p.num_permits() as u64) * UNIT
    }

    /// Adds `other` to this reservation.
    pub fn merge(&mut self, other: Reservation) {
        fn join(a: &mut Option<OwnedSemaphorePermit>, b: Option<OwnedSemaphorePermit>) {
            match (a.as_mut(), b) {
                (Some(x), Some(y)) => x.merge(y),
                (None, Some(y)) => *a = Some(y),
                (_, None) => {}
            }
        }
        join(&mut self.all, other.all);
        join(&mut self.writer, other.writer);
    }
}

impl MemoryBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> Arc<MemoryBudget> {
        let total = (bytes / UNIT).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        let writer = (total / 4 * 3).max(1);
        Arc::new(MemoryBudget {
            all: Arc::new(Semaphore::new(total as usize)),
            writers: Arc::new(Semaphore::new(writer as usize)),
            total_units: total,
            writer_units: writer,
            reclaimers: RwLock::new(Vec::new()),
        })
    }

    /// Registers something the budget may ask to give memory back. Those registered
    /// `first` (idle buffers: no loss at all) are asked before the others (the cache).
    pub fn register(&self, r: Weak<dyn Reclaim>, first: bool) {
        let mut rs = self.reclaimers.write();
        if first {
            rs.insert(0, (r, true));
        } else {
            rs.push((r, false));
        }
    }

    /// The budget in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }

    /// Bytes currently reserved.
    pub fn used(&self) -> u64 {
        (u64::from(self.total_units) - self.all.available_permits() as u64) * UNIT
    }

    fn units(&self, bytes: u64, cap: u32) -> u32 {
        bytes.div_ceil(UNIT).clamp(1, u64::from(cap)) as u32
    }

    /// Asks the reclaimers to give back about `bytes` for `share`; whether any did.
    pub fn reclaim(&self, bytes: u64, share: Purpose) -> bool {
        self.reclaim_from(bytes, share, true)
    }

    /// Like `reclaim`, but leaves idle buffers alone: evicting cached blocks often hands a
    /// whole buffer back to a pool, and the caller may want exactly that buffer.
    pub fn reclaim_cache_only(&self, bytes: u64, share: Purpose) -> bool {
        self.reclaim_from(bytes, share, false)
    }

    fn reclaim_from(&self, bytes: u64, share: Purpose, idle_too: bool) -> bool {
        let live: Vec<Arc<dyn Reclaim>> = {
            let mut rs = self.reclaimers.write();
            rs.retain(|(w, _)| w.strong_count() > 0);
            rs.iter()
                .filter(|(_, idle)| idle_too || !idle)
                .filter_map(|(w, _)| w.upgrade())
                .collect()
        };
        let mut freed = 0;
        for r in live {
            if freed >= bytes {
                break;
            }
            freed += r.reclaim(bytes - freed, share);
        }
        freed > 0
    }

    /// `units` of `sem` now, asking the reclaimers (for `share`) once if they are short.
    fn try_units(
        &self,
        sem: &Arc<Semaphore>,
        units: u32,
        share: Purpose,
    ) -> Option<OwnedSemaphorePermit> {
        // What is reclaimed may come back only partly at once (a block shares its buffer
        // with others of its run; an evicted buffer may go idle into a pool first, to be
        // reclaimed in the next round): ask again while anything is given back.
        for _ in 0..MAX_RECLAIM_ROUNDS {
            if let Ok(p) = sem.clone().try_acquire_many_owned(units) {
                return Some(p);
            }
            let missing = u64::from(units).saturating_sub(sem.available_permits() as u64);
            if !self.reclaim(missing * UNIT, share) {
                break;
            }
        }
        sem.clone().try_acquire_many_owned(units).ok()
    }

    /// `units` of `sem`, waiting and asking the reclaimers again every little while.
    async fn units_of(
        &self,
        sem: &Arc<Semaphore>,
        units: u32,
        share: Purpose,
    ) -> OwnedSemaphorePermit {
        loop {
            if let Some(p) = self.try_units(sem, units, share) {
                return p;
            }
            // The semaphores are never closed: an error cannot happen, and a timeout means
            // ask the reclaimers again (memory held for speed is only given back on request).
            if let Ok(Ok(p)) =
                tokio::time::timeout(RECLAIM_POLL, sem.clone().acquire_many_owned(units)).await
            {
                return p;
            }
        }
    }

    /// `bytes` of the budget if they are free now, without asking anyone to give back.
    pub fn try_reserve_free(&self, bytes: u64, purpose: Purpose) -> Option<Reservation> {
        let writer = match purpose {
            Purpose::Read => None,
            Purpose::Write => Some(
                self.writers
                    .clone()
                    .try_acquire_many_owned(self.units(bytes, self.writer_units))
                    .ok()?,
            ),
        };
        let all = self
            .all
            .clone()
            .try_acquire_many_owned(self.units(bytes, self.total_units))
            .ok()?;
        Some(Reservation {
            all: Some(all),
            writer,
        })
    }

    /// `bytes` of the budget now, after asking the reclaimers; `None` if it is not there.
    pub fn try_reserve(&self, bytes: u64, purpose: Purpose) -> Option<Reservation> {
        let writer = match purpose {
            Purpose::Read => None,
            Purpose::Write => Some(self.try_units(
                &self.writers,
                self.units(bytes, self.writer_units),
                Purpose::Write,
            )?),
        };
        let all = self.try_units(
            &self.all,
            self.units(bytes, self.total_units),
            Purpose::Read,
        )?;
        Some(Reservation {
            all: Some(all),
            writer,
        })
    }

    /// `bytes` of the budget, waiting (and asking the reclaimers again every little while)
    /// until it is there.
    pub async fn reserve(&self, bytes: u64, purpose: Purpose) -> Reservation {
        let writer = match purpose {
            Purpose::Read => None,
            Purpose::Write => Some(
                self.units_of(
                    &self.writers,
                    self.units(bytes, self.writer_units),
                    Purpose::Write,
                )
                .await,
            ),
        };
        let all = self
            .units_of(
                &self.all,
                self.units(bytes, self.total_units),
                Purpose::Read,
            )
            .await;
        Reservation {
            all: Some(all),
            writer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// A reclaimer holding reservations it drops on request.
    struct Hoard(Mutex<Vec<Reservation>>);

    impl Reclaim for Hoard {
        fn reclaim(&self, bytes: u64, _share: Purpose) -> u64 {
            let mut v = self.0.lock();
            let mut freed = 0;
            while freed < bytes {
                match v.pop() {
                    Some(r) => freed += r.bytes(),
                    None => break,
                }
            }
            freed
        }
    }

    #[test]
    fn reservations_are_counted_and_returned() {
        let b = MemoryBudget::new(10 * UNIT);
        let r = b.try_reserve(3 * UNIT, Purpose::Read).unwrap();
        assert_eq!(r.bytes(), 3 * UNIT);
        assert_eq!(b.used(), 3 * UNIT);
        assert!(b.try_reserve(8 * UNIT, Purpose::Read).is_none());
        drop(r);
        assert_eq!(b.used(), 0);
        // Oversized requests are clamped to the whole budget.
        let all = b.try_reserve(100 * UNIT, Purpose::Read).unwrap();
        assert_eq!(all.bytes(), 10 * UNIT);
    }

    #[test]
    fn writers_share_three_quarters() {
        let b = MemoryBudget::new(8 * UNIT);
        let w = b.try_reserve(6 * UNIT, Purpose::Write).unwrap();
        assert!(b.try_reserve(UNIT, Purpose::Write).is_none());
        // Reads still get the rest.
        let r = b.try_reserve(2 * UNIT, Purpose::Read).unwrap();
        drop((w, r));
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn a_full_budget_asks_the_reclaimers_first() {
        let b = MemoryBudget::new(4 * UNIT);
        let hoard = Arc::new(Hoard(Mutex::new(Vec::new())));
        for _ in 0..4 {
            let r = b.try_reserve(UNIT, Purpose::Read).unwrap();
            hoard.0.lock().push(r);
        }
        let weak: Weak<dyn Reclaim> = Arc::downgrade(&(hoard.clone() as Arc<dyn Reclaim>));
        b.register(weak, false);
        let r = b.try_reserve(2 * UNIT, Purpose::Read).expect("reclaimed");
        assert_eq!(hoard.0.lock().len(), 2);
        assert_eq!(b.used(), 4 * UNIT);
        drop(r);
    }

    #[tokio::test]
    async fn reserve_waits_for_memory_in_use() {
        let b = MemoryBudget::new(2 * UNIT);
        let held = b.try_reserve(2 * UNIT, Purpose::Read).unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.reserve(UNIT, Purpose::Read).await.bytes() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(held);
        assert_eq!(waiter.await.unwrap(), UNIT);
    }
}

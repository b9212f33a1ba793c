//! `BufPool`: reuse of the large, fixed-size buffers of the data paths (read-ahead runs
//! and upload parts), paid for from the mount's `MemoryBudget`.
//!
//! A fresh multi-MiB allocation is a fresh mapping: every 4 KiB page of it faults and is
//! zeroed by the kernel on first touch, and freeing it unmaps it again. At hundreds of
//! MiB/s that costs more CPU than the copy that fills the buffer. Buffers of the pool's
//! one size are therefore handed out as `Bytes` whose owner gives the allocation back to
//! the pool when the last slice of it is dropped (a cache eviction, a finished upload).
//!
//! Every buffer carries the `Reservation` that paid for it, also while it waits idle in
//! the pool, so the budget counts exactly what is allocated. At most `max_free` idle
//! buffers are kept, and the budget can take them back (`Reclaim`) when it runs short.
//! Other sizes are plain allocations that still carry their reservation.

use super::budget::{MemoryBudget, Purpose, Reclaim, Reservation};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;

/// Rounds of evicting and looking again before a take waits for budget.
const TAKE_ROUNDS: usize = 16;

/// A pool of `size`-byte buffers.
pub struct BufPool {
    size: usize,
    max_free: usize,
    budget: Arc<MemoryBudget>,
    purpose: Purpose,
    free: Mutex<Vec<(Vec<u8>, Reservation)>>,
}

/// An empty buffer with the reservation that pays for its capacity.
pub struct Buf {
    pub data: Vec<u8>,
    pub reservation: Reservation,
}

impl BufPool {
    /// A pool of `size`-byte buffers paid from `budget` for `purpose`; registers itself as
    /// a reclaimer of its idle buffers.
    pub fn new(
        size: usize,
        max_free: usize,
        budget: Arc<MemoryBudget>,
        purpose: Purpose,
    ) -> Arc<BufPool> {
        let pool = Arc::new(BufPool {
            size,
            max_free,
            budget: budget.clone(),
            purpose,
            free: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&(pool.clone() as Arc<dyn Reclaim>));
        budget.register(weak, true);
        pool
    }

    /// The size of the pooled buffers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// An empty buffer able to hold `len` bytes, waiting for budget if needed: an idle
    /// pooled one if `len` is the pool's size, else a new allocation.
    pub async fn take(&self, len: usize) -> Buf {
        if let Some(b) = self.try_take(len) {
            return b;
        }
        let reservation = self.budget.reserve(len as u64, self.purpose).await;
        Self::fresh(len, reservation)
    }

    /// Like `take` without waiting: `None` if the budget cannot pay for it now.
    pub fn try_take(&self, len: usize) -> Option<Buf> {
        for _ in 0..TAKE_ROUNDS {
            if let Some(b) = self.take_idle(len) {
                return Some(b);
            }
            if let Some(reservation) = self.budget.try_reserve_free(len as u64, self.purpose) {
                return Some(Self::fresh(len, reservation));
            }
            // Evicting cached blocks often hands their whole buffer back to this very pool:
            // reuse it (no fresh pages to fault in) rather than free it and allocate anew.
            if !self.budget.reclaim_cache_only(len as u64, self.purpose) {
                break;
            }
        }
        if let Some(b) = self.take_idle(len) {
            return Some(b);
        }
        let reservation = self.budget.try_reserve(len as u64, self.purpose)?;
        Some(Self::fresh(len, reservation))
    }

    fn fresh(len: usize, reservation: Reservation) -> Buf {
        Buf {
            data: Vec::with_capacity(len),
            reservation,
        }
    }

    fn take_idle(&self, len: usize) -> Option<Buf> {
        if len != self.size {
            return None;
        }
        let (data, reservation) = self.free.lock().pop()?;
        Some(Buf { data, reservation })
    }

    /// The filled buffer as `Bytes`. Its reservation is held until the last `Bytes`
    /// referring to it is dropped; then a buffer of the pool's size returns to the pool.
    pub fn freeze(self: &Arc<Self>, b: Buf) -> Bytes {
        Bytes::from_owner(Pooled {
            v: b.data,
            reservation: Some(b.reservation),
            pool: self.clone(),
        })
    }

    /// Idle buffers held (for tests).
    pub fn idle(&self) -> usize {
        self.free.lock().len()
    }
}

impl Reclaim for BufPool {
    fn reclaim(&self, bytes: u64, share: Purpose) -> u64 {
        if share == Purpose::Write && self.purpose != Purpose::Write {
            return 0;
        }
        let mut free = self.free.lock();
        let mut dropped = 0u64;
        while dropped < bytes {
            match free.pop() {
                Some((v, r)) => {
                    dropped += v.capacity() as u64;
                    drop((v, r));
                }
                None => break,
            }
        }
        dropped
    }
}

/// Owner of a pooled buffer inside `Bytes`.
struct Pooled {
    v: Vec<u8>,
    reservation: Option<Reservation>,
    pool: Arc<BufPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.v
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.v.capacity() != self.pool.size {
            return;
        }
        let mut free = self.pool.free.lock();
        if free.len() < self.pool.max_free {
            let mut v = std::mem::take(&mut self.v);
            v.clear();
            free.push((v, self.reservation.take().unwrap_or_default()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::budget::UNIT;

    fn pool(size: usize, max_free: usize, budget: u64) -> (Arc<BufPool>, Arc<MemoryBudget>) {
        let b = MemoryBudget::new(budget);
        (BufPool::new(size, max_free, b.clone(), Purpose::Read), b)
    }

    #[tokio::test]
    async fn buffers_of_the_pool_size_come_back_when_the_last_slice_goes() {
        let (pool, budget) = pool(UNIT as usize, 1, 4 * UNIT);
        let mut b = pool.take(UNIT as usize).await;
        b.data.extend_from_slice(&vec![7u8; UNIT as usize]);
        let ptr = b.data.as_ptr();
        let bytes = pool.freeze(b);
        let half = bytes.slice(8..);
        drop(bytes);
        assert_eq!(pool.idle(), 0, "a slice still refers to the buffer");
        assert_eq!(half[0], 7);
        drop(half);
        assert_eq!(pool.idle(), 1);
        // Idle, it still counts against the budget.
        assert_eq!(budget.used(), UNIT);
        let again = pool.take(UNIT as usize).await;
        assert!(again.data.is_empty());
        assert_eq!(again.data.as_ptr(), ptr, "the same allocation is reused");
    }

    #[tokio::test]
    async fn other_sizes_pay_and_return_without_pooling() {
        let (pool, budget) = pool(UNIT as usize, 1, 4 * UNIT);
        let b = pool.freeze(pool.take(8).await);
        assert_eq!(budget.used(), UNIT);
        drop(b);
        assert_eq!((pool.idle(), budget.used()), (0, 0));
        let a = pool.freeze(pool.take(UNIT as usize).await);
        let c = pool.freeze(pool.take(UNIT as usize).await);
        drop(a);
        drop(c);
        assert_eq!(pool.idle(), 1);
        assert_eq!(budget.used(), UNIT);
    }

    #[tokio::test]
    async fn the_budget_takes_idle_buffers_back() {
        let (pool, budget) = pool(2 * UNIT as usize, 2, 4 * UNIT);
        let a = pool.freeze(pool.take(2 * UNIT as usize).await);
        let b = pool.freeze(pool.take(2 * UNIT as usize).await);
        drop((a, b));
        assert_eq!((pool.idle(), budget.used()), (2, 4 * UNIT));
        // Someone else needs memory: an idle buffer goes.
        let r = budget.try_reserve(UNIT, Purpose::Read).expect("reclaimed");
        assert_eq!(pool.idle(), 1);
        drop(r);
    }
}

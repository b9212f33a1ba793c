//! `BufPool`: reuse of the large, fixed-size buffers of the data paths (read-ahead runs
//! and upload parts).
//!
//! A fresh multi-MiB allocation is a fresh mapping: every 4 KiB page of it faults and is
//! zeroed by the kernel on first touch, and freeing it unmaps it again. At hundreds of
//! MiB/s that costs more CPU than the copy that fills the buffer. Buffers of the pool's
//! one size are therefore handed out as `Bytes` whose owner gives the allocation back to
//! the pool when the last slice of it is dropped (a cache eviction, a finished upload).
//! At most `max_free` idle buffers are kept; other sizes are plain allocations.

use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;

/// A pool of `size`-byte buffers.
pub struct BufPool {
    size: usize,
    max_free: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    pub fn new(size: usize, max_free: usize) -> Arc<BufPool> {
        Arc::new(BufPool {
            size,
            max_free,
            free: Mutex::new(Vec::new()),
        })
    }

    /// An empty buffer able to hold `len` bytes: a pooled one if `len` is the pool's
    /// size, else a new allocation.
    pub fn take(&self, len: usize) -> Vec<u8> {
        if len == self.size {
            if let Some(v) = self.free.lock().pop() {
                return v;
            }
        }
        Vec::with_capacity(len)
    }

    /// `v` as `Bytes`; a buffer of the pool's size returns to the pool when the last
    /// `Bytes` referring to it is dropped.
    pub fn freeze(self: &Arc<Self>, v: Vec<u8>) -> Bytes {
        if v.capacity() == self.size && self.max_free > 0 {
            Bytes::from_owner(Pooled {
                v,
                pool: self.clone(),
            })
        } else {
            Bytes::from(v)
        }
    }

    /// Idle buffers held (for tests).
    pub fn idle(&self) -> usize {
        self.free.lock().len()
    }
}

/// Owner of a pooled buffer inside `Bytes`.
struct Pooled {
    v: Vec<u8>,
    pool: Arc<BufPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.v
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock();
        if free.len() < self.pool.max_free {
            let mut v = std::mem::take(&mut self.v);
            v.clear();
            free.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_of_the_pool_size_come_back_when_the_last_slice_goes() {
        let pool = BufPool::new(16, 1);
        let mut v = pool.take(16);
        v.extend_from_slice(&[7u8; 16]);
        let ptr = v.as_ptr();
        let b = pool.freeze(v);
        let half = b.slice(8..);
        drop(b);
        assert_eq!(pool.idle(), 0, "a slice still refers to the buffer");
        assert_eq!(&half[..], &[7u8; 8]);
        drop(half);
        assert_eq!(pool.idle(), 1);
        let again = pool.take(16);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the same allocation is reused");
    }

    #[test]
    fn other_sizes_and_a_full_pool_are_not_kept() {
        let pool = BufPool::new(16, 1);
        drop(pool.freeze(pool.take(8)));
        assert_eq!(pool.idle(), 0);
        let a = pool.freeze(pool.take(16));
        let b = pool.freeze(pool.take(16));
        drop(a);
        drop(b);
        assert_eq!(pool.idle(), 1);
    }
}

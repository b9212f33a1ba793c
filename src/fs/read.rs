//! The read path: a byte-bounded LRU block cache, de-duplicated block fetches and a
//! per-handle sequential prefetch window.
//!
//! Blocks are keyed by object key + ETag + block index, so a changed object is never
//! served from stale blocks. A block fetch is one ranged GET through the client (which
//! applies the SSE policy); fetches are spawned on the runtime and shared, so a read that
//! needs a block already being prefetched waits for that request instead of sending a
//! second one. Each handle keeps a window that starts at one block, doubles on every
//! sequential read up to `max_prefetch`, and falls back to one block when a read jumps;
//! at most `parallel_count` of a handle's fetches run at once. Read-ahead runs are
//! received into buffers from a `BufPool`, so a sequential read does not fault in fresh
//! pages for every run.

use super::bufpool::BufPool;
use super::error::{fs_err, FsError, FsErrorKind};
use crate::cos::{CosErrorKind, ObjectClient};
use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use lru::LruCache;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Identity of one cached block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub key: String,
    pub etag: String,
    pub index: u64,
}

/// LRU of blocks bounded by their total size.
pub struct BlockCache {
    inner: Mutex<(LruCache<BlockKey, Bytes>, u64)>,
    capacity: u64,
}

impl BlockCache {
    pub fn new(capacity: u64) -> BlockCache {
        BlockCache {
            inner: Mutex::new((LruCache::unbounded(), 0)),
            capacity,
        }
    }

    pub fn get(&self, k: &BlockKey) -> Option<Bytes> {
        self.inner.lock().0.get(k).cloned()
    }

    pub fn insert(&self, k: BlockKey, v: Bytes) {
        let mut g = self.inner.lock();
        let (lru, bytes) = &mut *g;
        let add = v.len() as u64;
        if add > self.capacity {
            return;
        }
        if let Some(old) = lru.put(k, v) {
            *bytes -= old.len() as u64;
        }
        *bytes += add;
        while *bytes > self.capacity {
            match lru.pop_lru() {
                Some((_, old)) => *bytes -= old.len() as u64,
                None => break,
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.inner.lock().1
    }
}

type BlockFuture = Shared<BoxFuture<'static, Result<Bytes, FsError>>>;

/// A spawned block fetch as a future every waiter can share.
fn shared_task(task: tokio::task::JoinHandle<Result<Bytes, FsError>>) -> BlockFuture {
    async move {
        match task.await {
            Ok(r) => r,
            Err(e) => Err(fs_err(
                FsErrorKind::LocalIo,
                format!("block fetch task: {e}"),
            )),
        }
    }
    .boxed()
    .shared()
}

/// What a handle reads: one version of one object.
#[derive(Debug, Clone)]
pub struct ObjectVersion {
    pub key: String,
    pub etag: String,
    pub size: u64,
}

/// The shared read machinery of a mount.
pub struct Reader<C: ObjectClient> {
    client: Arc<C>,
    cache: BlockCache,
    inflight: Mutex<HashMap<BlockKey, BlockFuture>>,
    block_size: u64,
    max_window_blocks: u64,
    parallel_count: u64,
    rt: tokio::runtime::Handle,
    /// Buffers of read-ahead runs (`MAX_CHUNK_BLOCKS` blocks), reused across fetches.
    pool: Arc<BufPool>,
}

/// Largest read-ahead request, in blocks (8 MiB with 1 MiB blocks): fewer, larger GETs
/// cost less per byte, while the window still spreads over several concurrent requests.
const MAX_CHUNK_BLOCKS: u64 = 8;
/// Idle read-ahead run buffers kept for reuse.
const POOL_IDLE_RUNS: usize = 4;
/// Read-ahead window (blocks) after a first read at offset 0.
const INITIAL_WINDOW_FROM_START: u64 = 4;

/// Sequential-read detection and window state of one handle.
pub struct Prefetch {
    /// Offset right after the last read.
    next_offset: u64,
    /// Current window in blocks.
    window: u64,
    /// Blocks below this index have been requested.
    requested_to: u64,
    /// The object version the state refers to.
    etag: String,
    /// Limits this handle's concurrent fetches.
    permits: Arc<Semaphore>,
}

impl Prefetch {
    pub fn new(parallel_count: usize) -> Prefetch {
        Prefetch {
            next_offset: 0,
            window: 1,
            requested_to: 0,
            etag: String::new(),
            permits: Arc::new(Semaphore::new(parallel_count.max(1))),
        }
    }

    /// Current window in blocks (for tests).
    pub fn window(&self) -> u64 {
        self.window
    }
}

impl<C: ObjectClient> Reader<C> {
    pub fn new(
        client: Arc<C>,
        cache_bytes: u64,
        block_size: u64,
        max_prefetch: u64,
        parallel_count: usize,
        rt: tokio::runtime::Handle,
    ) -> Reader<C> {
        let block_size = block_size.max(4096);
        Reader {
            client,
            cache: BlockCache::new(cache_bytes),
            inflight: Mutex::new(HashMap::new()),
            block_size,
            max_window_blocks: (max_prefetch / block_size).max(1),
            parallel_count: parallel_count.max(1) as u64,
            rt,
            // A few idle runs are enough: a run's buffer comes back when the cache evicts
            // its blocks, just as a new run is fetched.
            pool: BufPool::new((MAX_CHUNK_BLOCKS * block_size) as usize, POOL_IDLE_RUNS),
        }
    }

    pub fn cache(&self) -> &BlockCache {
        &self.cache
    }

    /// Reads `len` bytes at `offset` of `obj`, updating the handle's prefetch state.
    pub async fn read(
        self: &Arc<Self>,
        obj: &ObjectVersion,
        pf: &Mutex<Prefetch>,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, FsError> {
        if offset >= obj.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + u64::from(len)).min(obj.size);
        let bs = self.block_size;
        let first = offset / bs;
        let last = (end - 1) / bs;
        let nblocks = obj.size.div_ceil(bs);

        // Decide, under the lock, which blocks to request; await them without it.
        let (wanted, ahead, permits) = {
            let mut p = pf.lock();
            if p.etag != obj.etag {
                *p = Prefetch {
                    permits: p.permits.clone(),
                    ..Prefetch::new(1)
                };
                p.etag = obj.etag.clone();
            }
            // The kernel's async readahead may deliver nearby reads out of order; count
            // anything within the current window as sequential.
            let slack = p.window * bs;
            let sequential =
                offset <= p.next_offset.saturating_add(slack) && offset + slack >= p.next_offset;
            if offset == 0 && p.next_offset == 0 {
                // A first read from the start is most often a whole-file read: begin
                // with a few blocks so the ramp-up costs one round trip, not several.
                p.window = INITIAL_WINDOW_FROM_START.min(self.max_window_blocks);
            } else if sequential && offset > 0 {
                p.window = (p.window * 2).min(self.max_window_blocks);
            } else if !sequential {
                p.window = 1;
                p.requested_to = first;
            }
            p.next_offset = p.next_offset.max(end);
            if !sequential {
                p.next_offset = end;
            }
            // Read-ahead goes out in chunks that split the window over about
            // `parallel_count` requests; it is only extended once a whole chunk (or the
            // end of the object) is due, so requests stay large.
            let chunk = p
                .window
                .div_ceil(self.parallel_count)
                .clamp(1, MAX_CHUNK_BLOCKS);
            let from = p.requested_to.max(last + 1);
            let to = (last + 1 + p.window).min(nblocks);
            let ahead = if to >= from + chunk || (to == nblocks && to > from) {
                p.requested_to = to;
                from..to
            } else {
                from..from
            };
            (
                (first..=last).collect::<Vec<u64>>(),
                (ahead, chunk),
                p.permits.clone(),
            )
        };
        let (ahead, chunk) = ahead;

        // Missing demand blocks go out first (one request), then the read-ahead.
        self.fetch_missing(obj, first..last + 1, last + 1 - first, &permits);
        self.fetch_missing(obj, ahead, chunk, &permits);
        let futs: Vec<BlockFuture> = wanted
            .iter()
            .map(|&i| self.block(obj, i, &permits))
            .collect();
        if let ([i], [f]) = (&wanted[..], &futs[..]) {
            // Within one block: answer with a slice of it, no copy.
            let data = f.clone().await?;
            let bstart = i * bs;
            let lo = (offset - bstart) as usize;
            let hi = ((end - bstart) as usize).min(data.len());
            return Ok(data.slice(lo.min(hi)..hi));
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for (i, f) in wanted.iter().zip(futs) {
            let data = f.await?;
            let bstart = i * bs;
            let lo = offset.max(bstart) - bstart;
            let hi = (end.min(bstart + data.len() as u64)).saturating_sub(bstart);
            if lo >= hi {
                break;
            }
            out.extend_from_slice(&data[lo as usize..hi as usize]);
        }
        Ok(out.freeze())
    }

    fn key(obj: &ObjectVersion, index: u64) -> BlockKey {
        BlockKey {
            key: obj.key.clone(),
            etag: obj.etag.clone(),
            index,
        }
    }

    /// Starts fetches for the blocks of `range` that are neither cached nor in flight,
    /// one ranged GET per run of up to `chunk` consecutive missing blocks. Each block
    /// gets its own shared future (a slice of the run's body) in the in-flight map.
    fn fetch_missing(
        self: &Arc<Self>,
        obj: &ObjectVersion,
        range: std::ops::Range<u64>,
        chunk: u64,
        permits: &Arc<Semaphore>,
    ) {
        let bs = self.block_size;
        let mut inflight = self.inflight.lock();
        let missing = |i: u64, inflight: &HashMap<BlockKey, BlockFuture>| {
            let k = Self::key(obj, i);
            !inflight.contains_key(&k) && self.cache.get(&k).is_none()
        };
        let mut i = range.start;
        while i < range.end {
            if !missing(i, &inflight) {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < range.end && j - i < chunk && missing(j, &inflight) {
                j += 1;
            }
            let run = i..j;
            let start = run.start * bs;
            let end = (run.end * bs).min(obj.size);
            let me = self.clone();
            let o = obj.clone();
            let permits = permits.clone();
            let r2 = run.clone();
            // The task takes the in-flight lock when done; it cannot finish before the
            // entries below are inserted because this function holds that lock.
            let task = self.rt.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let r = me.fetch(&o.key, &o.etag, start..end).await;
                if let Ok(b) = &r {
                    for idx in r2.clone() {
                        let lo = ((idx - r2.start) * bs) as usize;
                        let hi = (lo + bs as usize).min(b.len());
                        me.cache.insert(Self::key(&o, idx), b.slice(lo..hi));
                    }
                }
                let mut inflight = me.inflight.lock();
                for idx in r2 {
                    inflight.remove(&Self::key(&o, idx));
                }
                r
            });
            let whole = shared_task(task);
            for idx in run.clone() {
                let lo = ((idx - run.start) * bs) as usize;
                let f: BlockFuture = whole
                    .clone()
                    .map(move |r| {
                        r.map(|b| {
                            let hi = (lo + bs as usize).min(b.len());
                            b.slice(lo.min(hi)..hi)
                        })
                    })
                    .boxed()
                    .shared();
                inflight.insert(Self::key(obj, idx), f);
            }
            i = j;
        }
    }

    /// The (possibly shared, possibly cached) fetch of block `i`.
    fn block(
        self: &Arc<Self>,
        obj: &ObjectVersion,
        i: u64,
        permits: &Arc<Semaphore>,
    ) -> BlockFuture {
        let k = Self::key(obj, i);
        if let Some(b) = self.cache.get(&k) {
            return futures::future::ready(Ok(b)).boxed().shared();
        }
        let mut inflight = self.inflight.lock();
        if let Some(f) = inflight.get(&k) {
            return f.clone();
        }
        let start = i * self.block_size;
        let end = (start + self.block_size).min(obj.size);
        let me = self.clone();
        let kk = k.clone();
        let permits = permits.clone();
        let task = self.rt.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let r = me.fetch(&kk.key, &kk.etag, start..end).await;
            if let Ok(b) = &r {
                me.cache.insert(kk.clone(), b.clone());
            }
            me.inflight.lock().remove(&kk);
            r
        });
        let fut = shared_task(task);
        inflight.insert(k, fut.clone());
        fut
    }

    async fn fetch(
        &self,
        key: &str,
        etag: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, FsError> {
        let want = range.end - range.start;
        let resp = self.client.get(key, Some(range)).await?;
        if resp.meta.etag != etag {
            return Err(fs_err(
                FsErrorKind::Cos(CosErrorKind::PreconditionFailed),
                format!(
                    "{key} changed while open (ETag {etag} became {})",
                    resp.meta.etag
                ),
            ));
        }
        // Collect into a buffer of the final size (pooled for full runs): one copy, no
        // regrowth, no fresh pages to fault in.
        let mut buf = self.pool.take(want as usize);
        let mut stream = resp.body;
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        let body = self.pool.freeze(buf);
        if (body.len() as u64) < want {
            return Err(fs_err(
                FsErrorKind::Cos(CosErrorKind::Transport),
                format!("{key}: short body ({} of {want} bytes)", body.len()),
            ));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_stays_within_its_byte_budget() {
        let c = BlockCache::new(10);
        for i in 0..5 {
            c.insert(
                BlockKey {
                    key: "k".into(),
                    etag: "e".into(),
                    index: i,
                },
                Bytes::from(vec![0u8; 4]),
            );
        }
        assert!(c.bytes() <= 10);
        let k4 = BlockKey {
            key: "k".into(),
            etag: "e".into(),
            index: 4,
        };
        assert!(c.get(&k4).is_some());
        let k0 = BlockKey { index: 0, ..k4 };
        assert!(c.get(&k0).is_none());
    }
}

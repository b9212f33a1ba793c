//! The read path: a byte-bounded LRU block cache, de-duplicated block fetches and a
//! per-handle sequential prefetch window.
//!
//! Blocks are keyed by object key + ETag + block index, so a changed object is never
//! served from stale blocks. A block fetch is one ranged GET through the client (which
//! applies the SSE policy); fetches are spawned on the runtime and shared, so a read that
//! needs a block already being prefetched waits for that request instead of sending a
//! second one. Each handle keeps a window that starts at one block, doubles on every
//! sequential read up to `max_prefetch`, and falls back to one block when a read jumps;
//! at most `parallel_count` of a handle's fetches run at once.

use super::error::{fs_err, FsError, FsErrorKind};
use crate::cos::{CosErrorKind, ObjectClient};
use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};
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
    rt: tokio::runtime::Handle,
}

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
        rt: tokio::runtime::Handle,
    ) -> Reader<C> {
        let block_size = block_size.max(4096);
        Reader {
            client,
            cache: BlockCache::new(cache_bytes),
            inflight: Mutex::new(HashMap::new()),
            block_size,
            max_window_blocks: (max_prefetch / block_size).max(1),
            rt,
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
            let sequential = offset <= p.next_offset.saturating_add(slack)
                && offset + slack >= p.next_offset;
            if sequential && offset > 0 {
                p.window = (p.window * 2).min(self.max_window_blocks);
            } else if !sequential {
                p.window = 1;
                p.requested_to = first;
            }
            p.next_offset = p.next_offset.max(end);
            if !sequential {
                p.next_offset = end;
            }
            let from = p.requested_to.max(last + 1);
            let to = (last + 1 + p.window).min(nblocks);
            p.requested_to = p.requested_to.max(to);
            ((first..=last).collect::<Vec<u64>>(), from..to, p.permits.clone())
        };

        let futs: Vec<BlockFuture> = wanted
            .iter()
            .map(|&i| self.block(obj, i, &permits))
            .collect();
        for i in ahead {
            // Started now, awaited by later reads (or dropped into the cache).
            drop(self.block(obj, i, &permits));
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

    /// The (possibly shared, possibly cached) fetch of block `i`.
    fn block(self: &Arc<Self>, obj: &ObjectVersion, i: u64, permits: &Arc<Semaphore>) -> BlockFuture {
        let k = BlockKey {
            key: obj.key.clone(),
            etag: obj.etag.clone(),
            index: i,
        };
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
            let r = me.fetch(&kk, start..end).await;
            if let Ok(b) = &r {
                me.cache.insert(kk.clone(), b.clone());
            }
            me.inflight.lock().remove(&kk);
            r
        });
        let fut = async move {
            match task.await {
                Ok(r) => r,
                Err(e) => Err(fs_err(FsErrorKind::LocalIo, format!("block fetch task: {e}"))),
            }
        }
        .boxed()
        .shared();
        inflight.insert(k, fut.clone());
        fut
    }

    async fn fetch(&self, k: &BlockKey, range: std::ops::Range<u64>) -> Result<Bytes, FsError> {
        let want = range.end - range.start;
        let resp = self.client.get(&k.key, Some(range)).await?;
        if resp.meta.etag != k.etag {
            return Err(fs_err(
                FsErrorKind::Cos(CosErrorKind::PreconditionFailed),
                format!(
                    "{} changed while open (ETag {} became {})",
                    k.key, k.etag, resp.meta.etag
                ),
            ));
        }
        let body = resp.collect().await?;
        if (body.len() as u64) < want {
            return Err(fs_err(
                FsErrorKind::Cos(CosErrorKind::Transport),
                format!("{}: short body ({} of {} bytes)", k.key, body.len(), want),
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

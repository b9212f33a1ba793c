//! The read path: a block cache within the mount's memory budget, de-duplicated block
//! fetches, a per-handle sequential prefetch window, and end-to-end verification of whole
//! reads (see `verify`).
//!
//! Blocks are keyed by object key + ETag + block index, so a changed object is never
//! served from stale blocks. A block fetch is one ranged GET through the client (which
//! applies the SSE policy); fetches are spawned on the runtime and shared, so a read that
//! needs a block already being prefetched waits for that request instead of sending a
//! second one. Each handle keeps a window that starts at one block, doubles on every
//! sequential read up to `max_prefetch` (and a quarter of the budget), and drops to no
//! read-ahead when a read jumps. A jump into an object that fits in the cache fetches its
//! blocks (their neighbours will likely be read); a jump into a bigger one fetches only
//! the aligned 128 KiB around the read, straight into the reply and not into the cache,
//! where it would be evicted unread (a random 4 KiB read costs 128 KiB, not a block and
//! the next); at most `parallel_count` of a handle's fetches run at once. A handle that keeps jumping around an object that fits
//! in a quarter of the budget gets the whole object fetched in large parallel requests
//! instead: a database or an index read at random costs about its size once, not a
//! round trip per read.
//!
//! Memory: a fetch pays for its buffer from the budget before it is sent (waiting, while
//! the budget asks the cache to evict, if it is full); the buffer carries that
//! reservation into the cache, so cached blocks and read-ahead in flight are what the
//! budget counts. The cache evicts least recently used blocks when the budget asks.

use super::budget::{MemoryBudget, Purpose, Reclaim};
use super::bufpool::BufPool;
use super::error::{fs_err, FsError, FsErrorKind};
use super::verify::{Verdict, Verifier};
use crate::cos::{crc64, CosErrorKind, GetRequest, ObjectClient};
use crate::metrics::METRICS;
use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use lru::LruCache;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A body of `got` bytes where the range asked for `want` is a cut transfer.
fn check_body_len(obj: &ObjectVersion, got: usize, want: u64) -> Result<(), FsError> {
    if got as u64 == want {
        return Ok(());
    }
    Err(fs_err(
        FsErrorKind::Cos(CosErrorKind::Transport),
        format!("{}: body of {got} bytes for a range of {want}", obj.key),
    ))
}

/// Identity of one cached block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub key: String,
    pub etag: String,
    pub index: u64,
}

/// One block of an object version as fetched.
#[derive(Debug, Clone)]
pub struct Block {
    pub data: Bytes,
    /// CRC-64 of `data`.
    pub crc: u64,
    /// The CRC-64 of the whole object, as COS reported it with this block.
    pub object_crc: Option<u64>,
}

/// LRU of blocks bounded by their total size.
pub struct BlockCache {
    inner: Mutex<(LruCache<BlockKey, Block>, u64)>,
    capacity: u64,
}

impl BlockCache {
    pub fn new(capacity: u64) -> BlockCache {
        BlockCache {
            inner: Mutex::new((LruCache::unbounded(), 0)),
            capacity,
        }
    }

    pub fn get(&self, k: &BlockKey) -> Option<Block> {
        self.inner.lock().0.get(k).cloned()
    }

    fn contains(&self, k: &BlockKey) -> bool {
        self.inner.lock().0.contains(k)
    }

    pub fn insert(&self, k: BlockKey, v: Block) {
        let mut g = self.inner.lock();
        let (lru, bytes) = &mut *g;
        let add = v.data.len() as u64;
        if add > self.capacity {
            return;
        }
        if let Some(old) = lru.put(k, v) {
            *bytes -= old.data.len() as u64;
        }
        *bytes += add;
        while *bytes > self.capacity {
            match lru.pop_lru() {
                Some((_, old)) => *bytes -= old.data.len() as u64,
                None => break,
            }
        }
    }

    /// Drops every block of one object version.
    pub fn remove_version(&self, key: &str, etag: &str) {
        let mut g = self.inner.lock();
        let (lru, bytes) = &mut *g;
        let doomed: Vec<BlockKey> = lru
            .iter()
            .filter(|(k, _)| k.key == key && k.etag == etag)
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            if let Some(b) = lru.pop(&k) {
                *bytes -= b.data.len() as u64;
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.inner.lock().1
    }
}

impl Reclaim for BlockCache {
    fn reclaim(&self, want: u64, share: Purpose) -> u64 {
        if share == Purpose::Write {
            // Cached blocks do not count against the writers' cap.
            return 0;
        }
        let mut g = self.inner.lock();
        let (lru, bytes) = &mut *g;
        let mut dropped = 0;
        while dropped < want {
            match lru.pop_lru() {
                Some((_, old)) => {
                    let n = old.data.len() as u64;
                    *bytes -= n;
                    dropped += n;
                }
                None => break,
            }
        }
        dropped
    }
}

type BlockFuture = Shared<BoxFuture<'static, Result<Block, FsError>>>;

/// What a handle reads: one version of one object.
#[derive(Debug, Clone)]
pub struct ObjectVersion {
    pub key: String,
    pub etag: String,
    pub size: u64,
    /// The object's CRC-64, when known from a HEAD.
    pub crc64: Option<u64>,
}

/// Counters of end-to-end verification, over the life of a mount.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Whole reads whose CRC-64 matched.
    pub verified: AtomicU64,
    /// Whole reads whose CRC-64 did not match (answered EIO).
    pub mismatches: AtomicU64,
    /// Whole reads of objects without a CRC-64 (not verifiable).
    pub no_checksum: AtomicU64,
}

/// The shared read machinery of a mount.
pub struct Reader<C: ObjectClient> {
    client: Arc<C>,
    cache: Arc<BlockCache>,
    inflight: Mutex<HashMap<BlockKey, BlockFuture>>,
    block_size: u64,
    max_window_blocks: u64,
    parallel_count: u64,
    rt: tokio::runtime::Handle,
    /// Buffers of read-ahead runs (`MAX_CHUNK_BLOCKS` blocks), reused across fetches.
    pool: Arc<BufPool>,
    pub stats: ReadStats,
}

/// Largest read-ahead request: fewer, larger GETs cost less per byte, while the window
/// still spreads over several concurrent requests.
const MAX_CHUNK_BYTES: u64 = 8 * 1024 * 1024;
/// Idle read-ahead run buffers kept for reuse.
const POOL_IDLE_RUNS: usize = 4;
/// Read-ahead window after a first read at offset 0.
const INITIAL_WINDOW_FROM_START_BYTES: u64 = 4 * 1024 * 1024;
/// Jumps after which a handle's object, if it fits, is fetched whole.
const JUMPS_BEFORE_WHOLE_FETCH: u32 = 4;
/// What a jump into an object bigger than the cache fetches: the read's range, aligned
/// to this (a cached block would be evicted before it is read again).
const JUMP_UNCACHED_ALIGN: u64 = 128 * 1024;

/// Sequential-read detection, window and verification state of one handle.
pub struct ReadState {
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
    verify: Verifier,
    /// A whole read of this handle did not match the object's CRC-64: every later read
    /// fails too.
    corrupt: Option<FsError>,
    /// Non-sequential reads of this object version so far.
    jumps: u32,
    /// The whole object has been asked for (random access over an object that fits).
    whole_requested: bool,
}

impl ReadState {
    pub fn new(parallel_count: usize) -> ReadState {
        ReadState {
            next_offset: 0,
            window: 1,
            requested_to: 0,
            etag: String::new(),
            permits: Arc::new(Semaphore::new(parallel_count.max(1))),
            verify: Verifier::default(),
            corrupt: None,
            jumps: 0,
            whole_requested: false,
        }
    }
}

impl<C: ObjectClient> Reader<C> {
    pub fn new(
        client: Arc<C>,
        budget: Arc<MemoryBudget>,
        block_size: u64,
        max_prefetch: u64,
        parallel_count: usize,
        rt: tokio::runtime::Handle,
    ) -> Reader<C> {
        let cache = Arc::new(BlockCache::new(budget.total()));
        let weak = Arc::downgrade(&(cache.clone() as Arc<dyn Reclaim>));
        budget.register(weak, false);
        // One handle's read-ahead never takes more than a quarter of the budget, and one
        // request never more than an eighth, so several readers always fit.
        let max_window = max_prefetch.min(budget.total() / 4);
        let chunk_bytes = MAX_CHUNK_BYTES.min((budget.total() / 8).max(block_size));
        let chunk_blocks = (chunk_bytes / block_size).max(1);
        Reader {
            client,
            cache,
            inflight: Mutex::new(HashMap::new()),
            block_size,
            max_window_blocks: (max_window / block_size).max(1),
            parallel_count: parallel_count as u64,
            rt,
            pool: BufPool::new(
                (chunk_blocks * block_size) as usize,
                POOL_IDLE_RUNS,
                budget,
                Purpose::Read,
            ),
            stats: ReadStats::default(),
        }
    }

    pub fn cache(&self) -> &BlockCache {
        &self.cache
    }

    fn chunk_blocks(&self) -> u64 {
        (self.pool.size() as u64 / self.block_size).max(1)
    }

    /// Reads `len` bytes at `offset` of `obj`, updating the handle's prefetch and
    /// verification state. The read that completes a whole read of a corrupt object
    /// fails (EIO), as does every later read of that handle.
    pub async fn read(
        self: &Arc<Self>,
        obj: &ObjectVersion,
        rs: &Mutex<ReadState>,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, FsError> {
        if let Some(e) = &rs.lock().corrupt {
            return Err(e.clone());
        }
        if offset >= obj.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + u64::from(len)).min(obj.size);
        let bs = self.block_size;
        let first = offset / bs;
        let last = (end - 1) / bs;
        let nblocks = obj.size.div_ceil(bs);

        // Decide, under the lock, which blocks to request; await them without it.
        let (ahead, chunk, permits, whole, jumped) = {
            let mut p = rs.lock();
            if p.etag != obj.etag {
                p.next_offset = 0;
                p.window = 1;
                p.requested_to = 0;
                p.etag = obj.etag.clone();
                p.jumps = 0;
                p.whole_requested = false;
            }
            // The kernel's async readahead may deliver nearby reads out of order; count
            // anything within the current window as sequential. After a jump (no window)
            // only a read right next to the last one is: random reads that land close
            // together must not bring back whole blocks and read-ahead.
            // Right after a jump, even a neighbouring read counts as random: only a second
            // one in a row brings the blocks and the read-ahead back.
            let after_jump = p.window == 0;
            let slack = if p.window == 0 {
                JUMP_UNCACHED_ALIGN
            } else {
                p.window * bs
            };
            let sequential =
                offset <= p.next_offset.saturating_add(slack) && offset + slack >= p.next_offset;
            if offset == 0 && p.next_offset == 0 {
                // A first read from the start is most often a whole-file read: begin
                // with a few blocks so the ramp-up costs one round trip, not several.
                p.window = (INITIAL_WINDOW_FROM_START_BYTES / bs).clamp(1, self.max_window_blocks);
            } else if sequential && offset > 0 {
                p.window = (p.window * 2).clamp(1, self.max_window_blocks);
            } else if !sequential {
                // A jump: no read-ahead until the reads run on again.
                p.window = 0;
                p.requested_to = first;
                p.jumps = p.jumps.saturating_add(1);
            }
            let whole = !p.whole_requested
                && p.jumps >= JUMPS_BEFORE_WHOLE_FETCH
                && obj.size <= self.cache.capacity / 4;
            if whole {
                p.whole_requested = true;
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
                .clamp(1, self.chunk_blocks());
            let from = p.requested_to.max(last + 1);
            let to = (last + 1 + p.window).min(nblocks);
            let ahead = if p.window > 0 && (to >= from + chunk || (to == nblocks && to > from)) {
                p.requested_to = to;
                from..to
            } else {
                from..from
            };
            (
                ahead,
                chunk,
                p.permits.clone(),
                whole,
                !sequential || after_jump,
            )
        };

        // Missing demand blocks go out first (one request), then the read-ahead.
        let demand = first..last + 1;
        if jumped
            && obj.size > self.cache.capacity
            && demand
                .clone()
                .any(|i| !self.cache.contains(&Self::key(obj, i)))
        {
            let lo = offset / JUMP_UNCACHED_ALIGN * JUMP_UNCACHED_ALIGN;
            let hi = (end.div_ceil(JUMP_UNCACHED_ALIGN) * JUMP_UNCACHED_ALIGN).min(obj.size);
            let data = self.fetch_uncached(obj, lo..hi).await?;
            let (a, b) = ((offset - lo) as usize, (end - lo) as usize);
            return Ok(data.slice(a.min(data.len())..b.min(data.len())));
        }
        self.fetch_missing(obj, demand.clone(), demand.end - demand.start, &permits);
        self.fetch_missing(obj, ahead, chunk, &permits);
        if whole {
            // Random access over an object that fits: all of it, in large requests.
            self.fetch_missing(obj, 0..nblocks, self.chunk_blocks(), &permits);
        }
        let mut blocks = Vec::with_capacity(demand.clone().count());
        for i in demand.clone() {
            blocks.push((i, self.block(obj, i, &permits).await?));
        }
        self.check(obj, rs, &blocks)?;
        if let [(i, b)] = &blocks[..] {
            // Within one block: answer with a slice of it, no copy.
            let bstart = i * bs;
            let lo = (offset - bstart) as usize;
            let hi = ((end - bstart) as usize).min(b.data.len());
            return Ok(b.data.slice(lo.min(hi)..hi));
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for (i, b) in &blocks {
            let bstart = i * bs;
            let lo = offset.max(bstart) - bstart;
            let hi = (end.min(bstart + b.data.len() as u64)).saturating_sub(bstart);
            if lo >= hi {
                break;
            }
            out.extend_from_slice(&b.data[lo as usize..hi as usize]);
        }
        Ok(out.freeze())
    }

    /// Records the served blocks with the handle's verifier and acts on its verdict.
    fn check(
        &self,
        obj: &ObjectVersion,
        rs: &Mutex<ReadState>,
        blocks: &[(u64, Block)],
    ) -> Result<(), FsError> {
        let mut p = rs.lock();
        p.verify
            .reset_for(&obj.etag, obj.size.div_ceil(self.block_size));
        p.verify.expect(obj.crc64);
        for (i, b) in blocks {
            p.verify.expect(b.object_crc);
            match p.verify.record(*i, b.crc, b.data.len() as u64) {
                Verdict::Pending => {}
                Verdict::Verified => {
                    self.stats.verified.fetch_add(1, Ordering::Relaxed);
                }
                Verdict::NoChecksum => {
                    let n = self.stats.no_checksum.fetch_add(1, Ordering::Relaxed);
                    if n == 0 {
                        tracing::info!(key = %obj.key,
                            "COS sent no x-cos-hash-crc64ecma for this object: whole reads of such objects are not verified (counted as no_checksum)");
                    } else {
                        tracing::debug!(key = %obj.key, "object without CRC-64; read not verified");
                    }
                }
                Verdict::Mismatch { expected, computed } => {
                    self.stats.mismatches.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(key = %obj.key, etag = %obj.etag, expected, computed,
                        "data read from COS does not match the object's CRC-64; the read fails with EIO and the cached blocks are dropped");
                    self.cache.remove_version(&obj.key, &obj.etag);
                    let e = fs_err(
                        FsErrorKind::Cos(CosErrorKind::IntegrityMismatch),
                        format!(
                            "{}: data read has CRC-64 {computed}, COS reports {expected}",
                            obj.key
                        ),
                    );
                    p.corrupt = Some(e.clone());
                    return Err(e);
                }
            }
        }
        Ok(())
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
        let mut inflight = self.inflight.lock();
        let missing = |i: u64, inflight: &HashMap<BlockKey, BlockFuture>| {
            let k = Self::key(obj, i);
            !inflight.contains_key(&k) && !self.cache.contains(&k)
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
            let me = self.clone();
            let o = obj.clone();
            let permits = permits.clone();
            let r2 = run.clone();
            // The task takes the in-flight lock when done; it cannot finish before the
            // entries below are inserted because this function holds that lock.
            let task = self.rt.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let r = me.fetch_run(&o, r2.clone()).await;
                if let Ok(blocks) = &r {
                    for (idx, b) in r2.clone().zip(blocks) {
                        me.cache.insert(Self::key(&o, idx), b.clone());
                    }
                }
                let mut inflight = me.inflight.lock();
                for idx in r2 {
                    inflight.remove(&Self::key(&o, idx));
                }
                r
            });
            let whole = async move {
                match task.await {
                    Ok(r) => r,
                    Err(e) => Err(fs_err(
                        FsErrorKind::LocalIo,
                        format!("block fetch task: {e}"),
                    )),
                }
            }
            .boxed()
            .shared();
            for (n, idx) in run.clone().enumerate() {
                let f: BlockFuture = whole
                    .clone()
                    .map(move |r| {
                        r.and_then(|blocks| {
                            blocks.get(n).cloned().ok_or_else(|| {
                                fs_err(FsErrorKind::LocalIo, "block missing from its run")
                            })
                        })
                    })
                    .boxed()
                    .shared();
                inflight.insert(Self::key(obj, idx), f);
            }
            i = j;
        }
    }

    /// Block `i`: from the cache, from a fetch in flight, or fetched now.
    async fn block(
        self: &Arc<Self>,
        obj: &ObjectVersion,
        i: u64,
        permits: &Arc<Semaphore>,
    ) -> Result<Block, FsError> {
        let k = Self::key(obj, i);
        // Bounded: each round either finds the block or starts its fetch; a block evicted
        // between its fetch and this look is fetched once more.
        for round in 0..3 {
            if let Some(b) = self.cache.get(&k) {
                if round == 0 {
                    METRICS.cache(true);
                }
                return Ok(b);
            }
            if round == 0 {
                METRICS.cache(false);
            }
            let pending = self.inflight.lock().get(&k).cloned();
            match pending {
                Some(f) => return f.await,
                None => self.fetch_missing(obj, i..i + 1, 1, permits),
            }
        }
        Err(fs_err(
            FsErrorKind::LocalIo,
            format!("{}: block {i} evicted before it could be read", obj.key),
        ))
    }

    /// One ranged GET of `range`, answered as it is, not cached nor verified (a part of
    /// an object; whole reads go through blocks). Paid for from the budget.
    async fn fetch_uncached(
        &self,
        obj: &ObjectVersion,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, FsError> {
        let want = range.end - range.start;
        let mut buf = self.pool.take(want as usize).await;
        let req = GetRequest::from(Some(range)).if_match(&obj.etag);
        let resp = self.get_pinned(obj, req).await?;
        let mut stream = resp.body;
        while let Some(chunk) = stream.next().await {
            buf.data.extend_from_slice(&chunk?);
        }
        check_body_len(obj, buf.data.len(), want)?;
        Ok(self.pool.freeze(buf))
    }

    /// A GET of `req` pinned to the version the handle reads: a changed object is 412,
    /// answered ESTALE.
    async fn get_pinned(
        &self,
        obj: &ObjectVersion,
        req: GetRequest,
    ) -> Result<crate::cos::GetResponse, FsError> {
        self.client.get(&obj.key, req).await.map_err(|e| {
            if e.kind == CosErrorKind::PreconditionFailed {
                fs_err(FsErrorKind::Stale, format!("{} changed: {e}", obj.key))
            } else {
                FsError::from(e)
            }
        })
    }

    /// One ranged GET for the blocks `run`, split into blocks with their CRC-64.
    async fn fetch_run(
        &self,
        obj: &ObjectVersion,
        run: std::ops::Range<u64>,
    ) -> Result<Vec<Block>, FsError> {
        let bs = self.block_size;
        let start = run.start * bs;
        let end = (run.end * bs).min(obj.size);
        let want = end - start;
        // Paid for before it is sent: waits (the cache evicting) while the budget is full.
        let mut buf = self.pool.take(want as usize).await;
        // Pinned to the version the handle reads: a changed object is 412 (ESTALE).
        let req = GetRequest::from(Some(start..end)).if_match(&obj.etag);
        let resp = self.get_pinned(obj, req).await?;
        let object_crc = resp.meta.crc64;
        let mut stream = resp.body;
        // Each block's CRC-64 is computed as its bytes arrive (while they are in the CPU's
        // cache), not in a second pass over the run.
        let mut crcs = Vec::with_capacity((run.end - run.start) as usize);
        let mut digest = crc64::Crc64::default();
        let mut in_block = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let n = ((bs - in_block) as usize).min(rest.len());
                digest.update(&rest[..n]);
                in_block += n as u64;
                rest = &rest[n..];
                if in_block == bs {
                    crcs.push(std::mem::take(&mut digest).finish());
                    in_block = 0;
                }
            }
            buf.data.extend_from_slice(&chunk);
        }
        if in_block > 0 {
            crcs.push(digest.finish());
        }
        check_body_len(obj, buf.data.len(), want)?;
        let body = self.pool.freeze(buf);
        Ok(crcs
            .into_iter()
            .enumerate()
            .map(|(n, crc)| {
                let lo = n * bs as usize;
                let hi = (lo + bs as usize).min(body.len());
                Block {
                    data: body.slice(lo..hi),
                    crc,
                    object_crc,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: usize) -> Block {
        Block {
            data: Bytes::from(vec![0u8; n]),
            crc: 0,
            object_crc: None,
        }
    }

    fn k(index: u64) -> BlockKey {
        BlockKey {
            key: "k".into(),
            etag: "e".into(),
            index,
        }
    }

    #[test]
    fn cache_stays_within_its_byte_bound_and_reclaims_on_request() {
        let c = BlockCache::new(10);
        for i in 0..5 {
            c.insert(k(i), block(4));
        }
        assert!(c.bytes() <= 10);
        assert!(c.get(&k(4)).is_some());
        assert!(c.get(&k(0)).is_none());
        assert_eq!(c.reclaim(1, Purpose::Read), 4);
        assert_eq!(c.bytes(), 4);
        c.remove_version("k", "e");
        assert_eq!(c.bytes(), 0);
    }
}

//! The write machinery: streaming multipart uploads (`Stream`), uploads of staging files,
//! and downloads into staging files.
//!
//! A new (or truncated) file written sequentially is a `Stream`: bytes fill a buffer
//! that grows up to one part; a full part becomes an Upload Part task (at most
//! `parallel_count` in flight per file) while the program keeps writing. Buffers are paid
//! for from the mount's memory budget (writers' share) and travel with their reservation
//! into the upload task, so memory is returned when the part is acknowledged; full-size
//! part buffers are reused through a `BufPool`. A file that stays smaller than one part
//! is sent as a single PUT. Part sizes grow (×2 every 1000 parts, capped at 5 GiB) so
//! files beyond 10,000 × part size still fit.
//!
//! A started multipart upload is guarded: unless it is completed or aborted explicitly,
//! dropping it (a failure path, a discarded stream) aborts it in the background, so no
//! code path can leave a billed upload behind by forgetting to. An upload that is not
//! completed never becomes an object: the previous object stays as it was.
//!
//! Staging files (see `staging`) are filled from the bucket by `download`, which checks
//! the object's CRC-64 end to end (a corrupt download must not be edited and uploaded as
//! the file's new content), and sent back whole by `upload_staging`.

use super::budget::{MemoryBudget, Purpose, Reservation};
use super::bufpool::{Buf, BufPool};
use super::error::{fs_err, FsError, FsErrorKind};
use super::staging::{Staging, StagingArea};
use crate::cos::crc64::Crc64;
use crate::cos::limits::{MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE};
use crate::cos::{
    CompletedPart, CosError, CosErrorKind, ObjectClient, PutOptions, PutResult, UploadId,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Parts double in size after this many parts.
pub const PARTS_PER_SIZE_STEP: u32 = 1000;
/// Idle part buffers kept for reuse (a finished part's buffer serves the next one).
const POOL_IDLE_PARTS: usize = 2;
/// Buffers beyond this size are allocated as a whole part at once instead of doubling.
const WHOLE_PART_ABOVE: usize = 1024 * 1024;
/// Smallest buffer growth step.
const MIN_GROWTH: usize = 64 * 1024;

/// Size of part `number` (1-based) for a base part size: the base (clamped to 1 MiB..=5
/// GiB) doubled once per 1000 parts, capped at 5 GiB.
pub fn part_size_for(base: u64, number: u32) -> u64 {
    let base = base.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    let steps = number.saturating_sub(1) / PARTS_PER_SIZE_STEP;
    base.saturating_mul(1u64 << steps.min(32))
        .min(MAX_PART_SIZE)
}

/// Largest object that `part_size_for(base, 1..=10000)` can hold.
pub fn max_object_size(base: u64) -> u64 {
    (1..=MAX_PARTS).map(|n| part_size_for(base, n)).sum()
}

/// Shared write machinery of a mount.
pub struct Writer<C: ObjectClient> {
    pub client: Arc<C>,
    pub part_size: u64,
    pub parallel_count: usize,
    pub budget: Arc<MemoryBudget>,
    pub staging: StagingArea,
    /// Buffers of base-size parts, reused from part to part.
    parts: Arc<BufPool>,
    rt: tokio::runtime::Handle,
}

impl<C: ObjectClient> Writer<C> {
    pub fn new(
        client: Arc<C>,
        part_size: u64,
        parallel_count: usize,
        budget: Arc<MemoryBudget>,
        staging: StagingArea,
        rt: tokio::runtime::Handle,
    ) -> Writer<C> {
        Writer {
            parts: BufPool::new(
                part_size as usize,
                POOL_IDLE_PARTS,
                budget.clone(),
                Purpose::Write,
            ),
            client,
            part_size,
            parallel_count,
            budget,
            staging,
            rt,
        }
    }

    /// Starts a multipart upload of `key`, guarded so that it is aborted unless completed.
    async fn initiate(&self, key: &str, opts: &PutOptions) -> Result<Multipart, FsError> {
        let id = self.client.create_multipart(key, opts).await?;
        let (c, k, i) = (self.client.clone(), key.to_string(), id.clone());
        let abort: BoxFuture<'static, ()> = Box::pin(async move {
            if let Err(e) = c.abort_multipart(&k, &i).await {
                tracing::warn!(key = %k, error = %e, "could not abort an unfinished multipart upload; it stays (billed) until aborted");
            }
        });
        Ok(Multipart {
            key: key.to_string(),
            opts: opts.clone(),
            id,
            next_number: 1,
            tasks: JoinSet::new(),
            done: Vec::new(),
            guard: AbortOnDrop {
                rt: self.rt.clone(),
                abort: Some(abort),
            },
        })
    }

    /// A staging file holding the object `key` as it is now (`size` bytes), checked
    /// against the object's CRC-64 when COS reports one.
    pub async fn download(&self, key: &str, size: u64) -> Result<Staging, FsError> {
        self.staging.check_space(size)?;
        let mut st = self.staging.new_file()?;
        if size == 0 {
            return Ok(st);
        }
        let resp = self.client.get(key, None).await?;
        let expected = resp.meta.crc64;
        let mut body = resp.body;
        let mut off = 0u64;
        let mut crc = Crc64::default();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            crc.update(&chunk);
            st.file.write_all_at(&chunk, off)?;
            off += chunk.len() as u64;
        }
        if let Some(want) = expected {
            let got = crc.finish();
            if got != want {
                tracing::error!(
                    key,
                    expected = want,
                    computed = got,
                    bytes = off,
                    "downloaded object does not match its CRC-64; refusing to edit it"
                );
                return Err(fs_err(
                    FsErrorKind::Cos(CosErrorKind::IntegrityMismatch),
                    format!("{key}: downloaded {off} bytes with CRC-64 {got}, COS reports {want}"),
                ));
            }
        }
        st.size = off;
        Ok(st)
    }

    /// Uploads the whole staging file to `key`.
    pub async fn upload_staging(
        &self,
        st: &Staging,
        key: &str,
        opts: &PutOptions,
    ) -> Result<PutResult, FsError> {
        if st.size < self.part_size {
            let mut b = self.parts.take(st.size as usize).await;
            b.data.resize(st.size as usize, 0);
            st.file.read_exact_at(&mut b.data, 0)?;
            let body = self.parts.freeze(b);
            return Ok(self.client.put(key, body, opts).await?);
        }
        if st.size > max_object_size(self.part_size) {
            return Err(too_large(key));
        }
        let mut up = self.initiate(key, opts).await?;
        let mut off = 0u64;
        while off < st.size {
            let number = up.next_number;
            let len = part_size_for(self.part_size, number).min(st.size - off);
            let mut b = self.parts.take(len as usize).await;
            b.data.resize(len as usize, 0);
            st.file.read_exact_at(&mut b.data, off)?;
            up.send(self, number, self.parts.freeze(b)).await?;
            off += len;
        }
        up.complete(self).await.map(|(r, _)| r)
    }
}

fn too_large(key: &str) -> FsError {
    fs_err(
        FsErrorKind::FileTooLarge,
        format!("{key}: larger than 10,000 parts can hold"),
    )
}

/// Aborts a multipart upload in the background when dropped while armed.
struct AbortOnDrop {
    rt: tokio::runtime::Handle,
    abort: Option<BoxFuture<'static, ()>>,
}

impl AbortOnDrop {
    /// Runs the abort now (failure paths that can wait for it).
    async fn abort_now(&mut self) {
        if let Some(f) = self.abort.take() {
            f.await;
        }
    }

    /// The upload was completed: nothing to abort.
    fn disarm(&mut self) {
        self.abort = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.abort.take() {
            self.rt.spawn(f);
        }
    }
}

/// A started multipart upload: parts handed out, in flight and acknowledged.
struct Multipart {
    key: String,
    /// The object attributes sent with Initiate (they become the object's).
    opts: PutOptions,
    id: UploadId,
    next_number: u32,
    tasks: JoinSet<Result<CompletedPart, CosError>>,
    done: Vec<CompletedPart>,
    guard: AbortOnDrop,
}

impl Multipart {
    async fn join_one(&mut self) -> Result<(), FsError> {
        match self.tasks.join_next().await {
            Some(Ok(r)) => {
                self.done.push(r?);
                Ok(())
            }
            Some(Err(e)) => Err(fs_err(FsErrorKind::LocalIo, format!("upload task: {e}"))),
            None => Ok(()),
        }
    }

    /// Sends part `number` (the next one) in the background, after waiting for a free
    /// slot; an earlier part's failure is returned here.
    async fn send<C: ObjectClient>(
        &mut self,
        w: &Writer<C>,
        number: u32,
        body: Bytes,
    ) -> Result<(), FsError> {
        if number > MAX_PARTS {
            return Err(too_large(&self.key));
        }
        while self.tasks.len() >= w.parallel_count {
            self.join_one().await?;
        }
        self.next_number = number + 1;
        let (c, k, i) = (w.client.clone(), self.key.clone(), self.id.clone());
        self.tasks
            .spawn(async move { c.upload_part(&k, &i, number, body).await });
        Ok(())
    }

    /// Waits for every part and completes the upload; on any failure the upload is
    /// aborted and the previous object stays. Returns the result and the attributes the
    /// object got (those given at Initiate).
    async fn complete<C: ObjectClient>(
        mut self,
        w: &Writer<C>,
    ) -> Result<(PutResult, PutOptions), FsError> {
        let r = async {
            while !self.tasks.is_empty() {
                self.join_one().await?;
            }
            self.done.sort_by_key(|p| p.number);
            // Every part number handed out must be here: a part whose upload failed (its
            // error already returned to an earlier write) would otherwise leave a hole that
            // Complete might accept, storing an object without that part's bytes.
            let contiguous = self.done.len() as u32 == self.next_number - 1
                && self.done.iter().zip(1u32..).all(|(p, n)| p.number == n);
            if !contiguous || self.done.is_empty() {
                return Err(fs_err(
                    FsErrorKind::LocalIo,
                    format!(
                        "{}: a part of the multipart upload was lost; not completing it",
                        self.key
                    ),
                ));
            }
            Ok(w.client
                .complete_multipart(&self.key, &self.id, &self.done)
                .await?)
        }
        .await;
        match r {
            Ok(put) => {
                self.guard.disarm();
                Ok((put, std::mem::take(&mut self.opts)))
            }
            Err(e) => {
                self.tasks.abort_all();
                self.guard.abort_now().await;
                Err(e)
            }
        }
    }
}

/// Sequential new content, streamed out as parts while it is written.
pub struct Stream {
    buf: Vec<u8>,
    /// Budget held for `buf`'s capacity.
    reservation: Reservation,
    /// Bytes written so far (the file size).
    pub pos: u64,
    /// Boxed: most files never start one, and every open file's state holds a Stream.
    upload: Option<Box<Multipart>>,
}

/// How a stream's buffer grows to take more bytes.
enum Growth {
    /// There is room already.
    None,
    /// A whole part buffer of this size (pooled for base-size parts).
    WholePart(usize),
    /// Grow to this capacity, paying for this many more bytes.
    To { capacity: usize, extra: u64 },
}

impl Stream {
    pub fn new() -> Stream {
        Stream {
            buf: Vec::new(),
            reservation: Reservation::default(),
            pos: 0,
            upload: None,
        }
    }

    /// Whether everything written is still in memory (no part uploaded yet).
    pub fn all_buffered(&self) -> bool {
        self.upload.is_none()
    }

    /// Size of the part being filled.
    fn current_part_size<C: ObjectClient>(&self, w: &Writer<C>) -> u64 {
        let n = self.upload.as_ref().map_or(1, |u| u.next_number);
        part_size_for(w.part_size, n)
    }

    fn room<C: ObjectClient>(&self, w: &Writer<C>) -> usize {
        (self.current_part_size(w) - self.buf.len() as u64) as usize
    }

    /// What the buffer needs to take `n` more bytes of the current part.
    fn growth<C: ObjectClient>(&self, w: &Writer<C>, n: usize) -> Growth {
        let part = self.current_part_size(w) as usize;
        let want = (self.buf.len() + n).min(part);
        if want <= self.buf.capacity() {
            return Growth::None;
        }
        // A buffer clearly headed for a whole part takes one (pooled for base-size
        // parts) instead of being copied at every doubling.
        if want > WHOLE_PART_ABOVE.min(part / 2) {
            return Growth::WholePart(part);
        }
        let capacity = want.next_power_of_two().clamp(MIN_GROWTH, part);
        let extra = (capacity as u64).saturating_sub(self.reservation.bytes());
        Growth::To { capacity, extra }
    }

    fn apply(&mut self, g: Growth, paid: Option<Reservation>, whole: Option<Buf>) {
        match g {
            Growth::None => {}
            Growth::WholePart(_) => {
                if let Some(mut b) = whole {
                    b.data.extend_from_slice(&self.buf);
                    self.buf = b.data;
                    // The old, smaller buffer's share goes back with it.
                    self.reservation = b.reservation;
                }
            }
            Growth::To { capacity, .. } => {
                if let Some(r) = paid {
                    self.reservation.merge(r);
                }
                self.buf.reserve_exact(capacity - self.buf.len());
            }
        }
    }

    /// Makes room for `n` more bytes without waiting; false if the budget cannot pay now.
    /// Memory is taken as the buffer grows, not by the part size, so many small files
    /// open at once do not exhaust the budget.
    pub fn try_grow<C: ObjectClient>(&mut self, w: &Writer<C>, n: usize) -> bool {
        let n = n.min(self.room(w));
        match self.growth(w, n) {
            Growth::None => true,
            g @ Growth::WholePart(len) => match w.parts.try_take(len) {
                Some(b) => {
                    self.apply(g, None, Some(b));
                    true
                }
                None => false,
            },
            g @ Growth::To { extra, .. } => {
                if extra == 0 {
                    self.apply(g, None, None);
                    return true;
                }
                match w.budget.try_reserve(extra, Purpose::Write) {
                    Some(r) => {
                        self.apply(g, Some(r), None);
                        true
                    }
                    None => false,
                }
            }
        }
    }

    async fn grow<C: ObjectClient>(&mut self, w: &Writer<C>, n: usize) {
        match self.growth(w, n) {
            Growth::None => {}
            g @ Growth::WholePart(len) => {
                let b = w.parts.take(len).await;
                self.apply(g, None, Some(b));
            }
            g @ Growth::To { extra, .. } => {
                let r = if extra == 0 {
                    None
                } else {
                    Some(w.budget.reserve(extra, Purpose::Write).await)
                };
                self.apply(g, r, None);
            }
        }
    }

    /// Appends `data` (which must start at `pos`), uploading full parts; waits for
    /// memory budget as the buffer grows. `key`/`opts` are used if a multipart upload
    /// has to be started.
    pub async fn write<C: ObjectClient>(
        &mut self,
        w: &Writer<C>,
        key: &str,
        opts: &PutOptions,
        mut data: &[u8],
    ) -> Result<(), FsError> {
        while !data.is_empty() {
            let part = self.current_part_size(w);
            let n = self.room(w).min(data.len());
            self.grow(w, n).await;
            self.buf.extend_from_slice(&data[..n]);
            self.pos += n as u64;
            data = &data[n..];
            if self.buf.len() as u64 == part && !data.is_empty() {
                // Only ship a full buffer once more data proves it is not the last part
                // (a file of exactly one part size then still goes as one PUT).
                self.ship(w, key, opts).await?;
            }
        }
        if self.buf.len() as u64 == self.current_part_size(w) && self.upload.is_some() {
            self.ship(w, key, opts).await?;
        }
        Ok(())
    }

    /// The buffer as an upload body carrying its reservation.
    fn take_body<C: ObjectClient>(&mut self, w: &Writer<C>) -> Bytes {
        let b = Buf {
            data: std::mem::take(&mut self.buf),
            reservation: std::mem::take(&mut self.reservation),
        };
        w.parts.freeze(b)
    }

    /// Sends the full buffer as the next part, starting the upload if needed.
    async fn ship<C: ObjectClient>(
        &mut self,
        w: &Writer<C>,
        key: &str,
        opts: &PutOptions,
    ) -> Result<(), FsError> {
        if self.upload.is_none() {
            self.upload = Some(Box::new(w.initiate(key, opts).await?));
        }
        let body = self.take_body(w);
        let Some(up) = self.upload.as_mut() else {
            return Err(fs_err(FsErrorKind::LocalIo, "multipart upload missing"));
        };
        let number = up.next_number;
        up.send(w, number, body).await
    }

    /// Uploads what was written as `key`: one PUT if no part was sent yet, else the
    /// remaining buffer as the last part and Complete (the upload is aborted on failure).
    /// Returns the result and the attributes the object got (for a multipart upload,
    /// those given at Initiate, which may be older than `opts`).
    pub async fn finish<C: ObjectClient>(
        mut self,
        w: &Writer<C>,
        key: &str,
        opts: &PutOptions,
    ) -> Result<(PutResult, PutOptions), FsError> {
        let body = self.take_body(w);
        let Some(mut up) = self.upload.take() else {
            let r = w.client.put(key, body, opts).await?;
            return Ok((r, opts.clone()));
        };
        if !body.is_empty() {
            let number = up.next_number;
            if let Err(e) = up.send(w, number, body).await {
                up.tasks.abort_all();
                up.guard.abort_now().await;
                return Err(e);
            }
        }
        (*up).complete(w).await
    }

    /// Bytes `offset..offset+len` of a stream that is still all in memory.
    pub fn read_buffered(&self, offset: u64, len: u32) -> Bytes {
        let start = (offset as usize).min(self.buf.len());
        let end = (start + len as usize).min(self.buf.len());
        Bytes::copy_from_slice(&self.buf[start..end])
    }

    /// A staging file holding what is still entirely in memory. The stream itself is left
    /// as it was: the caller replaces it only once the staging file exists.
    pub fn copy_to_staging(&self, area: &StagingArea) -> Result<Staging, FsError> {
        let mut st = area.new_file()?;
        if !self.buf.is_empty() {
            st.write(area, 0, &self.buf)?;
        }
        st.dirty = true;
        Ok(st)
    }
}

impl Default for Stream {
    fn default() -> Self {
        Stream::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn part_sizes_grow_every_thousand_parts() {
        assert_eq!(part_size_for(10 * MIB, 1), 10 * MIB);
        assert_eq!(part_size_for(10 * MIB, 1000), 10 * MIB);
        assert_eq!(part_size_for(10 * MIB, 1001), 20 * MIB);
        assert_eq!(part_size_for(10 * MIB, 10_000), 5120 * MIB);
        // Clamped into COS's limits.
        assert_eq!(part_size_for(1, 1), MIB);
        assert_eq!(part_size_for(8 * 1024 * MIB, 1), MAX_PART_SIZE);
        for n in 1..=MAX_PARTS {
            let s = part_size_for(MIB, n);
            assert!((MIB..=MAX_PART_SIZE).contains(&s));
        }
    }

    #[test]
    fn growth_lifts_the_ten_thousand_part_ceiling() {
        // Fixed 10 MiB parts would stop at ~97.7 GiB; growing parts reach terabytes.
        assert!(max_object_size(10 * MIB) > 5 * 1024 * 1024 * MIB);
        assert!(max_object_size(MIB) > 10_000 * MIB * 50);
    }
}

//! The write path: streaming multipart uploads, local staging files, and the upload
//! state machine of a file handle.
//!
//! A new (or truncated) file written sequentially is a `Stream`: bytes fill a part-sized
//! buffer; a full buffer becomes an Upload Part task (at most `parallel_count` in flight
//! per handle) while the program keeps writing. Buffers take their bytes from a shared
//! memory budget, so writers wait when the budget is used up; part buffers are reused
//! through a `BufPool` once their upload is done. A file that stays smaller
//! than one part is sent as a single PUT at flush. Part sizes grow (×2 every 1000 parts,
//! capped at 5 GiB) so files beyond 10,000 × part size still fit.
//!
//! Anything else (writes into an existing object, random writes, truncation to a
//! non-zero size, reads of a file being written) uses a `Staging` file under
//! `staging_dir`: the object is downloaded on first need, edited locally and uploaded at
//! flush. Staging keeps `staging_min_free` bytes free and fails with NoSpace instead.
//!
//! An upload that fails leaves the handle `Failed`: the error is returned by that flush
//! and by every later flush/fsync/write, and the old object is untouched (a multipart
//! upload is aborted; PUT and Complete replace an object atomically or not at all).

use super::bufpool::BufPool;
use super::error::{fs_err, FsError, FsErrorKind};
use crate::cos::limits::{MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE};
use crate::cos::{CompletedPart, CosError, ObjectClient, PutOptions, PutResult, UploadId};
use bytes::Bytes;
use futures::StreamExt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Parts double in size after this many parts.
pub const PARTS_PER_SIZE_STEP: u32 = 1000;
/// The memory budget is counted in units of this many bytes (semaphore permits).
const BUDGET_UNIT: u64 = 64 * 1024;
/// Idle part buffers kept for reuse (a finished part's buffer serves the next one).
const POOL_IDLE_PARTS: usize = 2;

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

/// Free bytes of the file system holding a path (injectable for tests).
pub type FreeSpaceProbe = Arc<dyn Fn(&Path) -> std::io::Result<u64> + Send + Sync>;

/// `statvfs` of the path: bytes available to unprivileged users.
pub fn statvfs_free(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above; statvfs only writes into `st`.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Shared write machinery of a mount.
pub struct Writer<C: ObjectClient> {
    pub client: Arc<C>,
    pub part_size: u64,
    pub parallel_count: usize,
    budget: Arc<Semaphore>,
    budget_units: u32,
    pub staging_dir: PathBuf,
    pub min_free: u64,
    pub probe: parking_lot::RwLock<FreeSpaceProbe>,
    next_staging: AtomicU64,
    /// Buffers of base-size parts, reused from part to part.
    pool: Arc<BufPool>,
}

impl<C: ObjectClient> Writer<C> {
    pub fn new(
        client: Arc<C>,
        part_size: u64,
        parallel_count: usize,
        budget_bytes: u64,
        staging_dir: PathBuf,
        min_free: u64,
    ) -> Writer<C> {
        let units = (budget_bytes / BUDGET_UNIT).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        let part_size = part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        Writer {
            pool: BufPool::new(part_size as usize, POOL_IDLE_PARTS),
            client,
            part_size,
            parallel_count: parallel_count.max(1),
            budget: Arc::new(Semaphore::new(units as usize)),
            budget_units: units,
            staging_dir,
            min_free,
            probe: parking_lot::RwLock::new(Arc::new(statvfs_free)),
            next_staging: AtomicU64::new(0),
        }
    }

    /// Budget units covering `bytes` (at most the whole budget, so one part larger than
    /// the budget can still proceed alone).
    fn units(&self, bytes: u64) -> u32 {
        bytes
            .div_ceil(BUDGET_UNIT)
            .min(u64::from(self.budget_units)) as u32
    }

    /// Waits until `bytes` of the memory budget are free and takes them.
    async fn reserve(&self, bytes: u64) -> Result<OwnedSemaphorePermit, FsError> {
        self.reserve_units(self.units(bytes).max(1)).await
    }

    async fn reserve_units(&self, units: u32) -> Result<OwnedSemaphorePermit, FsError> {
        self.budget
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| fs_err(FsErrorKind::LocalIo, "memory budget closed"))
    }

    /// Fails with NoSpace unless `extra` more bytes leave `min_free` free.
    pub fn check_space(&self, extra: u64) -> Result<(), FsError> {
        let probe = self.probe.read().clone();
        let free = probe(&self.staging_dir)?;
        if free < extra.saturating_add(self.min_free) {
            return Err(fs_err(
                FsErrorKind::NoSpace,
                format!(
                    "staging area {} has {free} bytes free; {extra} more would go below the {} byte floor",
                    self.staging_dir.display(),
                    self.min_free
                ),
            ));
        }
        Ok(())
    }

    /// A new, empty, already-unlinked staging file.
    pub fn new_staging(&self) -> Result<Staging, FsError> {
        std::fs::create_dir_all(&self.staging_dir)?;
        let n = self.next_staging.fetch_add(1, Ordering::Relaxed);
        let path = self
            .staging_dir
            .join(format!("stage-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            // Plaintext of possibly encrypted objects: nobody else may read it, even in the
            // moment before the unlink below.
            .mode(0o600)
            .open(&path)?;
        // Unlinked at once: the space is returned even if the daemon dies.
        std::fs::remove_file(&path)?;
        Ok(Staging {
            file,
            size: 0,
            dirty: false,
        })
    }

    /// A staging file holding the object `key` (of `size` bytes) as it is now.
    pub async fn download(&self, key: &str, size: u64) -> Result<Staging, FsError> {
        self.check_space(size)?;
        let mut st = self.new_staging()?;
        if size > 0 {
            let resp = self.client.get(key, None).await?;
            let mut body = resp.body;
            let mut off = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                st.file.write_all_at(&chunk, off)?;
                off += chunk.len() as u64;
            }
            st.size = off;
        }
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
            let mut buf = vec![0u8; st.size as usize];
            st.file.read_exact_at(&mut buf, 0)?;
            return Ok(self.client.put(key, Bytes::from(buf), opts).await?);
        }
        if st.size > max_object_size(self.part_size) {
            return Err(too_large(key));
        }
        let id = self.client.create_multipart(key, opts).await?;
        let r = self.upload_staging_parts(st, key, &id).await;
        finish(&*self.client, key, &id, r).await
    }

    async fn upload_staging_parts(
        &self,
        st: &Staging,
        key: &str,
        id: &UploadId,
    ) -> Result<Vec<CompletedPart>, FsError> {
        let mut set: JoinSet<Result<CompletedPart, CosError>> = JoinSet::new();
        let mut done = Vec::new();
        let mut off = 0u64;
        let mut number = 1u32;
        while off < st.size {
            let len = part_size_for(self.part_size, number).min(st.size - off);
            let permit = self.reserve(len).await?;
            let mut buf = vec![0u8; len as usize];
            st.file.read_exact_at(&mut buf, off)?;
            while set.len() >= self.parallel_count {
                done.push(join_one(&mut set).await?);
            }
            let c = self.client.clone();
            let (k, i) = (key.to_string(), id.clone());
            set.spawn(async move {
                let _permit = permit;
                c.upload_part(&k, &i, number, Bytes::from(buf)).await
            });
            off += len;
            number += 1;
        }
        while !set.is_empty() {
            done.push(join_one(&mut set).await?);
        }
        done.sort_by_key(|p| p.number);
        Ok(done)
    }
}

fn too_large(key: &str) -> FsError {
    fs_err(
        FsErrorKind::FileTooLarge,
        format!("{key}: larger than 10,000 parts can hold"),
    )
}

async fn join_one(
    set: &mut JoinSet<Result<CompletedPart, CosError>>,
) -> Result<CompletedPart, FsError> {
    match set.join_next().await {
        Some(Ok(r)) => Ok(r?),
        Some(Err(e)) => Err(fs_err(FsErrorKind::LocalIo, format!("upload task: {e}"))),
        None => Err(fs_err(FsErrorKind::LocalIo, "no upload task")),
    }
}

/// Completes the upload with `parts`, or aborts it when they failed (the old object stays).
async fn finish<C: ObjectClient>(
    client: &C,
    key: &str,
    id: &UploadId,
    parts: Result<Vec<CompletedPart>, FsError>,
) -> Result<PutResult, FsError> {
    let r = match parts {
        Ok(parts) => client
            .complete_multipart(key, id, &parts)
            .await
            .map_err(FsError::from),
        Err(e) => Err(e),
    };
    if r.is_err() {
        if let Err(e) = client.abort_multipart(key, id).await {
            tracing::warn!(key, error = %e, "abort of a failed multipart upload failed; the upload stays until aborted");
        }
    }
    r
}

/// A local file holding the whole content of a file being edited.
pub struct Staging {
    pub file: File,
    pub size: u64,
    /// Changed since the last upload.
    pub dirty: bool,
}

impl Staging {
    pub fn read(&self, offset: u64, len: u32) -> Result<Bytes, FsError> {
        if offset >= self.size {
            return Ok(Bytes::new());
        }
        let n = u64::from(len).min(self.size - offset) as usize;
        let mut buf = vec![0u8; n];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }

    pub fn write<C: ObjectClient>(
        &mut self,
        w: &Writer<C>,
        offset: u64,
        data: &[u8],
    ) -> Result<(), FsError> {
        let end = offset + data.len() as u64;
        if end > self.size {
            w.check_space(end - self.size)?;
        }
        self.file.write_all_at(data, offset)?;
        self.size = self.size.max(end);
        self.dirty = true;
        Ok(())
    }

    pub fn truncate<C: ObjectClient>(&mut self, w: &Writer<C>, size: u64) -> Result<(), FsError> {
        if size > self.size {
            w.check_space(size - self.size)?;
        }
        self.file.set_len(size)?;
        self.size = size;
        self.dirty = true;
        Ok(())
    }
}

/// A multipart upload started by a stream.
struct Multipart {
    key: String,
    /// The object attributes sent with Initiate (they become the object's).
    opts: PutOptions,
    id: UploadId,
    next_number: u32,
    tasks: JoinSet<Result<CompletedPart, CosError>>,
    done: Vec<CompletedPart>,
}

/// Sequential new content, streamed out as parts while it is written.
pub struct Stream {
    buf: Vec<u8>,
    /// Memory budget held for `buf`.
    permit: Option<OwnedSemaphorePermit>,
    /// Bytes written so far (the file size).
    pub pos: u64,
    upload: Option<Multipart>,
}

impl Stream {
    pub fn new() -> Stream {
        Stream {
            buf: Vec::new(),
            permit: None,
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

    /// Budget units still missing for the buffer to grow by `n` bytes.
    fn missing_units<C: ObjectClient>(&self, w: &Writer<C>, n: usize) -> u32 {
        let want = w.units(self.buf.len() as u64 + n as u64);
        let have = self.permit.as_ref().map_or(0, |p| p.num_permits()) as u32;
        want.saturating_sub(have)
    }

    fn add_permit(&mut self, p: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(have) => have.merge(p),
            None => self.permit = Some(p),
        }
    }

    /// Takes budget for `n` more buffered bytes without waiting; false if the budget is
    /// used up. Memory is accounted by what is buffered, not by the part size, so many
    /// small files open at once do not exhaust the budget.
    pub fn try_grow<C: ObjectClient>(&mut self, w: &Writer<C>, n: usize) -> bool {
        let missing = self.missing_units(w, n.min(self.room(w)));
        if missing == 0 {
            return true;
        }
        match w.budget.clone().try_acquire_many_owned(missing) {
            Ok(p) => {
                self.add_permit(p);
                true
            }
            Err(_) => false,
        }
    }

    fn room<C: ObjectClient>(&self, w: &Writer<C>) -> usize {
        (self.current_part_size(w) - self.buf.len() as u64) as usize
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
            let missing = self.missing_units(w, n);
            if missing > 0 {
                let p = w.reserve_units(missing).await?;
                self.add_permit(p);
            }
            if self.buf.len() + n > 1024 * 1024 && self.buf.capacity() < part as usize {
                // Clearly a large file: allocate the whole part once (from the pool)
                // instead of re-copying the buffer at every doubling.
                let mut whole = w.pool.take(part as usize);
                whole.extend_from_slice(&self.buf);
                self.buf = whole;
            }
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

    /// Sends the full buffer as the next part.
    async fn ship<C: ObjectClient>(
        &mut self,
        w: &Writer<C>,
        key: &str,
        opts: &PutOptions,
    ) -> Result<(), FsError> {
        if self.upload.is_none() {
            let id = w.client.create_multipart(key, opts).await?;
            self.upload = Some(Multipart {
                key: key.to_string(),
                opts: opts.clone(),
                id,
                next_number: 1,
                tasks: JoinSet::new(),
                done: Vec::new(),
            });
        }
        let Some(up) = self.upload.as_mut() else {
            return Err(fs_err(FsErrorKind::LocalIo, "multipart upload missing"));
        };
        if up.next_number > MAX_PARTS {
            return Err(too_large(key));
        }
        while up.tasks.len() >= w.parallel_count {
            up.done.push(join_one(&mut up.tasks).await?);
        }
        let body = w.pool.freeze(std::mem::take(&mut self.buf));
        let permit = self.permit.take();
        let number = up.next_number;
        up.next_number += 1;
        let (c, k, i) = (w.client.clone(), up.key.clone(), up.id.clone());
        up.tasks.spawn(async move {
            let _permit = permit;
            c.upload_part(&k, &i, number, body).await
        });
        Ok(())
    }

    /// Uploads what was written as `key`: one PUT if no part was sent yet, else the
    /// remaining buffer as the last part and Complete (Abort on failure). Returns the
    /// result and the attributes the object got (for a multipart upload, those given at
    /// Initiate, which may be older than `opts`).
    pub async fn finish<C: ObjectClient>(
        mut self,
        w: &Writer<C>,
        key: &str,
        opts: &PutOptions,
    ) -> Result<(PutResult, PutOptions), FsError> {
        let Some(mut up) = self.upload.take() else {
            let body = w.pool.freeze(std::mem::take(&mut self.buf));
            let r = w.client.put(key, body, opts).await?;
            return Ok((r, opts.clone()));
        };
        let r = async {
            if !self.buf.is_empty() {
                if up.next_number > MAX_PARTS {
                    return Err(too_large(key));
                }
                let body = w.pool.freeze(std::mem::take(&mut self.buf));
                let p = w
                    .client
                    .upload_part(&up.key, &up.id, up.next_number, body)
                    .await?;
                up.next_number += 1;
                up.done.push(p);
            }
            while !up.tasks.is_empty() {
                up.done.push(join_one(&mut up.tasks).await?);
            }
            up.done.sort_by_key(|p| p.number);
            // Every part number handed out must be here: a part whose upload failed (its
            // error already returned to an earlier write) would otherwise leave a hole that
            // Complete might accept, storing an object without that part's bytes.
            let contiguous = up.done.len() as u32 == up.next_number - 1
                && up.done.iter().zip(1u32..).all(|(p, n)| p.number == n);
            if !contiguous {
                return Err(fs_err(
                    FsErrorKind::LocalIo,
                    format!("{key}: a part of the multipart upload was lost; not completing it"),
                ));
            }
            Ok(std::mem::take(&mut up.done))
        }
        .await;
        up.tasks.abort_all();
        let r = finish(&*w.client, &up.key, &up.id, r).await?;
        Ok((r, up.opts))
    }

    /// Drops the stream, aborting a started upload (data discarded on purpose).
    pub async fn discard<C: ObjectClient>(mut self, w: &Writer<C>) {
        if let Some(mut up) = self.upload.take() {
            up.tasks.abort_all();
            let _ = w.client.abort_multipart(&up.key, &up.id).await;
        }
    }

    /// Moves content that is still entirely in memory into a staging file.
    pub fn into_staging<C: ObjectClient>(self, w: &Writer<C>) -> Result<Staging, FsError> {
        let mut st = w.new_staging()?;
        if !self.buf.is_empty() {
            st.write(w, 0, &self.buf)?;
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

/// The upload state of a handle opened for writing.
pub enum WriteState {
    /// Nothing pending: the bucket holds what this handle wrote (or it wrote nothing).
    Clean,
    Stream(Stream),
    Staged(Staging),
    /// The last upload failed; every later flush answers this error.
    Failed(FsError),
}

impl WriteState {
    pub fn is_pending(&self) -> bool {
        match self {
            WriteState::Clean | WriteState::Failed(_) => false,
            WriteState::Stream(_) => true,
            WriteState::Staged(s) => s.dirty,
        }
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

//! How the C allocator treats the daemon's memory, so that `memory_limit=` is what the
//! process really uses.
//!
//! The data paths allocate and free buffers of 64 KiB to several MiB from many threads
//! (FUSE workers, the I/O runtime, blocking hash tasks). glibc's defaults serve those
//! from per-thread arenas and keep freed memory there for reuse, so the resident size
//! grows far beyond what is live (measured: 103 MiB resident for 32 MiB of budget with
//! four readers). Two settings fix that: buffers from 128 KiB up are mapped and unmapped
//! on their own (freed memory goes back to the system at once; the buffers the data
//! paths reuse are pooled anyway, see `fs::bufpool`), and at most two arenas exist
//! (measured: 60 MiB resident in the same run).

/// Allocations of this many bytes and more get their own mapping.
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// Most malloc arenas.
const ARENA_MAX: i32 = 2;

/// Applies the settings; call before any thread is started. Environment settings
/// (`MALLOC_ARENA_MAX`, `GLIBC_TUNABLES`) given by an administrator are overridden.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other
    // thread exists, and a failed call (0) leaves the defaults in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

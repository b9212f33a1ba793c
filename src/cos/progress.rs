//! The multipart uploads this client has running: the `cosmount_uploads_in_flight` gauge,
//! and a progress line at INFO every `EVERY` for long ones (parts and bytes sent so far,
//! rate), so an admin watching a big backup sees it move. The total is not known while a
//! file is still being written, so the line says what is done, not what is left.

use crate::metrics::METRICS;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a running upload says how far it got.
pub const EVERY: Duration = Duration::from_secs(30);

struct Running {
    key: String,
    started: Instant,
    last_said: Instant,
    parts: u64,
    bytes: u64,
}

#[derive(Default)]
pub struct UploadTracker {
    running: Mutex<HashMap<String, Running>>,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

impl UploadTracker {
    /// An upload with id `upload` of `key` was initiated.
    pub fn began(&self, upload: &str, key: &str) {
        let now = Instant::now();
        let fresh = self
            .running
            .lock()
            .insert(
                upload.to_string(),
                Running {
                    key: key.to_string(),
                    started: now,
                    last_said: now,
                    parts: 0,
                    bytes: 0,
                },
            )
            .is_none();
        if fresh {
            METRICS.upload_started(1);
        }
    }

    /// A part of `bytes` was stored.
    pub fn part_done(&self, upload: &str, bytes: u64) {
        let mut map = self.running.lock();
        let Some(r) = map.get_mut(upload) else { return };
        r.parts += 1;
        r.bytes += bytes;
        if r.last_said.elapsed() >= EVERY {
            r.last_said = Instant::now();
            let secs = r.started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                "upload of {}: {} parts, {:.1} MiB sent in {:.0} s ({:.1} MiB/s), still running",
                r.key,
                r.parts,
                mib(r.bytes),
                secs,
                mib(r.bytes) / secs
            );
        }
    }

    /// The upload was completed or aborted (or given up): no longer in flight.
    pub fn ended(&self, upload: &str, completed: bool) {
        let Some(r) = self.running.lock().remove(upload) else {
            return;
        };
        METRICS.upload_started(-1);
        let took = r.started.elapsed();
        if completed && took >= EVERY {
            tracing::info!(
                "upload of {} complete: {} parts, {:.1} MiB in {:.0} s",
                r.key,
                r.parts,
                mib(r.bytes),
                took.as_secs_f64()
            );
        }
    }

    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.running.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_begin_parts_and_end_once() {
        let t = UploadTracker::default();
        t.began("u1", "k");
        t.began("u1", "k");
        t.part_done("u1", 5);
        t.part_done("unknown", 5);
        assert_eq!(t.running(), 1);
        t.ended("u1", true);
        t.ended("u1", true);
        t.ended("never-began", false);
        assert_eq!(t.running(), 0);
    }
}

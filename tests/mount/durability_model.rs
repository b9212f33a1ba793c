//! The fault-schedule model test through the kernel: a real FUSE mount over coslocal
//! (HTTPS, a little latency) whose requests fail at a seeded rate with every fault kind
//! coslocal has (503 SlowDown, 500, connection reset before acting, answer cut after
//! acting), driven by the random schedules of tests/support/model.rs and checked against its model.
//!
//! Unlike the in-process test, the faults reach cosmount's HTTP client, whose retries
//! should absorb nearly all of them: besides "no silent mismatch, no non-sticky error",
//! this test shows that file writes succeed. CI runs a short fixed set of seeds;
//! `scripts/soak.sh` runs many for a given time and keeps the table.

use crate::harness::{CoslocalOptions, Harness, Mount, MountOptions};
use crate::model;
use crate::model::{Driver, Fh, OpenHow, Report, Run, Shape};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// Share of requests coslocal fails while a schedule runs.
const FAULT_RATE: f64 = 0.10;
/// Latency of every request (kept when the fault configuration changes).
const LATENCY_MS: u64 = 2;

struct Kernel<'h> {
    h: &'h Harness,
    m: Mount,
    seed: u64,
    files: HashMap<Fh, File>,
    next: Fh,
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Kernel<'_> {
    fn file(&self, fh: Fh) -> &File {
        &self.files[&fh]
    }

    /// Transient faults the daemons' retries absorbed, from their `statistics` lines.
    fn absorbed(&self) -> u64 {
        self.m
            .log_text()
            .lines()
            .filter(|l| l.contains("statistics"))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("recovered_by_retry="))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum()
    }
}

impl Driver for Kernel<'_> {
    fn open(&mut self, path: &str, how: OpenHow) -> Result<Fh, i32> {
        let mut o = std::fs::OpenOptions::new();
        match how {
            OpenHow::CreateTrunc => o.write(true).create(true).truncate(true),
            OpenHow::CreateTruncRw => o.read(true).write(true).create(true).truncate(true),
            OpenHow::ReadWrite => o.read(true).write(true),
            OpenHow::ReadOnly => o.read(true),
        };
        let f = o.mode(0o644).open(self.m.path(path)).map_err(errno)?;
        let fh = self.next;
        self.next += 1;
        self.files.insert(fh, f);
        Ok(fh)
    }

    fn write(&mut self, fh: Fh, offset: u64, data: &[u8]) -> Result<(), i32> {
        self.file(fh).write_all_at(data, offset).map_err(errno)
    }

    fn read(&mut self, fh: Fh, offset: u64, len: usize) -> Result<Vec<u8>, i32> {
        let mut out = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let n = self
                .file(fh)
                .read_at(&mut out[got..], offset + got as u64)
                .map_err(errno)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        out.truncate(got);
        Ok(out)
    }

    fn ftruncate(&mut self, fh: Fh, size: u64) -> Result<(), i32> {
        self.file(fh).set_len(size).map_err(errno)
    }

    fn fsync(&mut self, fh: Fh) -> Result<(), i32> {
        self.file(fh).sync_all().map_err(errno)
    }

    fn close(&mut self, fh: Fh) -> Result<(), i32> {
        let fd = self.files.remove(&fh).expect("open file").into_raw_fd();
        // SAFETY: we own fd (into_raw_fd) and close it exactly once; std's Drop would
        // swallow close's error, which is where a failed upload is reported.
        if unsafe { libc::close(fd) } == 0 {
            Ok(())
        } else {
            Err(errno(std::io::Error::last_os_error()))
        }
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), i32> {
        std::fs::rename(self.m.path(from), self.m.path(to)).map_err(errno)
    }

    fn unlink(&mut self, path: &str) -> Result<(), i32> {
        std::fs::remove_file(self.m.path(path)).map_err(errno)
    }

    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, i32> {
        match std::fs::read(self.m.path(path)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(errno(e)),
        }
    }

    fn mkdir(&mut self, path: &str) -> Result<(), i32> {
        match std::fs::create_dir(self.m.path(path)) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    fn set_faults(&mut self, on: bool) {
        if on {
            self.h.cos.set_faults(&format!(
                r#"{{"kinds":["slow_down","internal_error","reset","truncate_body"],"rate":{FAULT_RATE},"seed":{},"latency_ms":{LATENCY_MS}}}"#,
                self.seed
            ));
        } else {
            self.h
                .cos
                .set_faults(&format!(r#"{{"latency_ms":{LATENCY_MS}}}"#));
        }
    }

    fn faults_injected(&mut self) -> u64 {
        self.h.cos.stats()["faults_injected"].as_u64().unwrap_or(0)
    }

    fn retries_absorbed(&mut self) -> Option<u64> {
        Some(self.absorbed())
    }

    fn remount(&mut self) {
        assert!(self.files.is_empty(), "remount with open files");
        self.m.remount();
    }

    fn reads_of_failed_files_fail(&self) -> bool {
        // The kernel's page cache may answer a read with the bytes written before the
        // failure; they must still be exactly those bytes.
        false
    }
}

fn run_seed(seed: u64, ops: u64) -> (Report, String) {
    let h = Harness::start_with(
        &format!("model-{seed}"),
        CoslocalOptions {
            latency_ms: Some(LATENCY_MS),
            ..CoslocalOptions::default()
        },
    )
    .expect("FUSE is required");
    let m = h.mount(
        MountOptions::default()
            .opt("multipart_size=1")
            .opt("dbglevel=info"),
    );
    let mut k = Kernel {
        h: &h,
        m,
        seed,
        files: HashMap::new(),
        next: 1,
    };
    let shape = Shape {
        ops,
        max_write: 300 * 1024,
        max_file: 3 * 1024 * 1024 + 17,
        ..Shape::default()
    };
    let r = Run::new(&mut k, seed, shape).run();
    let log = k.m.log_text();
    (r, log)
}

fn check(reports: &[(Report, String)]) {
    let rs: Vec<Report> = reports.iter().map(|(r, _)| r.clone()).collect();
    let table = model::table(&rs);
    eprintln!("{table}");
    for (r, log) in reports {
        assert!(
            r.faults_injected > 0,
            "seed {}: coslocal injected no fault",
            r.seed
        );
        assert!(
            r.ok(),
            "seed {}: model violations\n{table}\ncosmount log:\n{log}",
            r.seed
        );
        assert!(
            r.problems.is_empty(),
            "seed {}: {:?}\ncosmount log:\n{log}",
            r.seed,
            r.problems
        );
    }
    let writes: u64 = rs.iter().map(|r| r.file_writes).sum();
    let ok: u64 = rs.iter().map(|r| r.file_writes_ok).sum();
    assert!(
        ok * 100 >= writes * 95,
        "only {ok} of {writes} file writes succeeded: retries should absorb a {FAULT_RATE} fault rate\n{table}"
    );
}

#[test]
fn fault_schedules_through_the_kernel() {
    let reports: Vec<(Report, String)> = [11u64, 12].iter().map(|&s| run_seed(s, 200)).collect();
    check(&reports);
}

/// `COSMOUNT_MODEL_SEEDS=N COSMOUNT_MODEL_OPS=M cargo test --test mount soak_through_the_kernel --
/// --ignored --nocapture` (scripts/soak.sh runs it with a time budget).
#[test]
#[ignore]
fn soak_through_the_kernel() {
    let env = |k: &str, d: u64| -> u64 {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let n = env("COSMOUNT_MODEL_SEEDS", 20);
    let ops = env("COSMOUNT_MODEL_OPS", 150);
    let first = env("COSMOUNT_MODEL_FIRST_SEED", 100);
    let budget = std::time::Duration::from_secs(env("COSMOUNT_MODEL_SECONDS", 3600));
    let start = std::time::Instant::now();
    let mut reports = Vec::new();
    for seed in first..first + n {
        if start.elapsed() > budget {
            eprintln!("time budget spent after {} seeds", reports.len());
            break;
        }
        reports.push(run_seed(seed, ops));
    }
    // check() prints the table.
    check(&reports);
}

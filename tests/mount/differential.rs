//! Differential test: a seeded random sequence of operations (create, write at random
//! offsets, append, truncate, rename of files and directories, mkdir, rmdir, unlink,
//! chmod, utimes, remount) is applied to a real mount over coslocal and to a local temp
//! dir. Every operation must have the same outcome (success or the same errno) on both,
//! and the trees must stay identical: names, types, contents, sizes, modes, and the mtime
//! (seconds) of files whose mtime was set explicitly.
//!
//! Seeds in `REGRESSION_SEEDS` always run (add any seed that ever failed); env
//! `COSMOUNT_DIFF_SEEDS` adds seeds: a comma-separated list, or `+N` for N seeds drawn
//! from the clock. Without it one clock seed runs. Every seed is printed.

use crate::harness::fsops::{diff, set_times, snapshot, Node};
use crate::harness::{pattern, Harness, Mount, MountOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Seeds that once failed (or cover something interesting); they run every time.
const REGRESSION_SEEDS: &[u64] = &[1, 2, 3];
const OPS_PER_SEED: usize = 120;
const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
enum Op {
    Create(String),
    WriteAt {
        file: String,
        offset: u64,
        len: usize,
        seed: u64,
    },
    Append {
        file: String,
        len: usize,
        seed: u64,
    },
    Truncate {
        file: String,
        len: u64,
    },
    Rename {
        from: String,
        to: String,
    },
    Mkdir(String),
    Rmdir(String),
    Unlink(String),
    Chmod {
        path: String,
        mode: u32,
    },
    Utimes {
        file: String,
        mtime: i64,
    },
    /// What `cp -a` does: create, write, fchmod and set times, then close.
    CopyLike {
        file: String,
        len: usize,
        seed: u64,
        mode: u32,
        mtime: i64,
    },
    Remount,
}

fn outcome(r: io::Result<()>) -> Result<(), i32> {
    r.map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn close(f: std::fs::File) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    let fd = f.into_raw_fd();
    // SAFETY: fd is owned and closed once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Applies `op` under `root`.
fn apply(root: &Path, op: &Op) -> Result<(), i32> {
    let p = |r: &str| root.join(r);
    outcome(match op {
        Op::Create(f) => std::fs::File::create(p(f)).and_then(close),
        Op::WriteAt {
            file,
            offset,
            len,
            seed,
        } => (|| {
            let f = std::fs::OpenOptions::new().write(true).open(p(file))?;
            f.write_all_at(&pattern(*seed, *len), *offset)?;
            close(f)
        })(),
        Op::Append { file, len, seed } => (|| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(p(file))?;
            f.write_all(&pattern(*seed, *len))?;
            close(f)
        })(),
        Op::Truncate { file, len } => (|| {
            let f = std::fs::OpenOptions::new().write(true).open(p(file))?;
            f.set_len(*len)?;
            close(f)
        })(),
        Op::Rename { from, to } => std::fs::rename(p(from), p(to)),
        Op::Mkdir(d) => std::fs::create_dir(p(d)),
        Op::Rmdir(d) => std::fs::remove_dir(p(d)),
        Op::Unlink(f) => std::fs::remove_file(p(f)),
        Op::Chmod { path, mode } => {
            std::fs::set_permissions(p(path), std::fs::Permissions::from_mode(*mode))
        }
        Op::Utimes { file, mtime } => set_times(&p(file), (*mtime, 0), (*mtime, 0)),
        Op::CopyLike {
            file,
            len,
            seed,
            mode,
            mtime,
        } => (|| {
            use std::io::Write;
            let mut f = std::fs::File::create(p(file))?;
            f.write_all(&pattern(*seed, *len))?;
            f.set_permissions(std::fs::Permissions::from_mode(*mode))?;
            set_times(&p(file), (*mtime, 0), (*mtime, 0))?;
            close(f)
        })(),
        Op::Remount => Ok(()),
    })
}

/// Files and directories currently in the reference tree.
fn entries(root: &Path) -> (Vec<String>, Vec<String>) {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for (k, n) in snapshot(root, false) {
        match n {
            Node::Dir { .. } => dirs.push(k),
            _ => files.push(k),
        }
    }
    (files, dirs)
}

fn gen(rng: &mut StdRng, reference: &Path) -> Op {
    let (files, dirs) = entries(reference);
    let mut parents = vec![String::new()];
    parents.extend(dirs.iter().map(|d| format!("{d}/")));
    let fresh = |rng: &mut StdRng, stem: &str| {
        let parent = &parents[rng.gen_range(0..parents.len())];
        format!("{parent}{stem}{}", rng.gen_range(0..6))
    };
    let pick = |rng: &mut StdRng, v: &Vec<String>| v[rng.gen_range(0..v.len())].clone();
    loop {
        let op = match rng.gen_range(0..100) {
            0..=11 => Op::Create(fresh(rng, "f")),
            12..=29 if !files.is_empty() => {
                // Mostly small writes; sometimes a multipart-sized one (1 MiB parts).
                let big = rng.gen_ratio(1, 6);
                Op::WriteAt {
                    file: pick(rng, &files),
                    offset: if big {
                        rng.gen_range(0..MIB)
                    } else {
                        rng.gen_range(0..300_000)
                    },
                    len: if big {
                        rng.gen_range(MIB as usize..(2 * MIB + MIB / 2) as usize)
                    } else {
                        rng.gen_range(1..100_000)
                    },
                    seed: rng.gen(),
                }
            }
            30..=37 if !files.is_empty() => Op::Append {
                file: pick(rng, &files),
                len: rng.gen_range(1..200_000),
                seed: rng.gen(),
            },
            38..=44 if !files.is_empty() => Op::Truncate {
                file: pick(rng, &files),
                len: rng.gen_range(0..400_000),
            },
            45..=54 if !files.is_empty() => Op::Rename {
                from: pick(rng, &files),
                // Sometimes onto an existing file (replace).
                to: if rng.gen_ratio(1, 4) {
                    pick(rng, &files)
                } else {
                    fresh(rng, "r")
                },
            },
            55..=59 if !dirs.is_empty() => {
                let from = pick(rng, &dirs);
                let to = fresh(rng, "dr");
                if to.starts_with(&format!("{from}/")) {
                    continue; // into itself: EINVAL on both, not interesting
                }
                Op::Rename { from, to }
            }
            60..=67 => Op::Mkdir(fresh(rng, "d")),
            68..=71 if !dirs.is_empty() => Op::Rmdir(pick(rng, &dirs)),
            72..=79 if !files.is_empty() => Op::Unlink(pick(rng, &files)),
            80..=87 => {
                let all: Vec<String> = files.iter().chain(dirs.iter()).cloned().collect();
                if all.is_empty() {
                    continue;
                }
                let path = pick(rng, &all);
                let is_dir = dirs.contains(&path);
                let modes: &[u32] = if is_dir {
                    &[0o755, 0o700, 0o750]
                } else {
                    &[0o644, 0o600, 0o640, 0o755, 0o444]
                };
                Op::Chmod {
                    path,
                    mode: modes[rng.gen_range(0..modes.len())],
                }
            }
            88..=92 if !files.is_empty() => Op::Utimes {
                file: pick(rng, &files),
                mtime: rng.gen_range(1_000_000_000..1_800_000_000),
            },
            93..=97 => Op::CopyLike {
                file: fresh(rng, "c"),
                len: if rng.gen_ratio(1, 3) {
                    rng.gen_range(MIB as usize..(2 * MIB) as usize)
                } else {
                    rng.gen_range(0..50_000)
                },
                seed: rng.gen(),
                mode: [0o644, 0o600, 0o755][rng.gen_range(0..3)],
                mtime: rng.gen_range(1_000_000_000..1_800_000_000),
            },
            98..=99 => Op::Remount,
            _ => continue,
        };
        return op;
    }
}

/// Which file paths have a promised mtime: the last change to them was `utimes`.
fn track_mtimes(promised: &mut BTreeSet<String>, op: &Op) {
    match op {
        Op::Utimes { file, .. } | Op::CopyLike { file, .. } => {
            promised.insert(file.clone());
        }
        Op::Create(f)
        | Op::WriteAt { file: f, .. }
        | Op::Append { file: f, .. }
        | Op::Truncate { file: f, .. }
        | Op::Unlink(f) => {
            promised.remove(f);
        }
        Op::Rename { from, to } => {
            promised.remove(to);
            let moved: Vec<String> = promised
                .iter()
                .filter(|p| *p == from || p.starts_with(&format!("{from}/")))
                .cloned()
                .collect();
            for p in moved {
                promised.remove(&p);
                promised.insert(format!("{to}{}", &p[from.len()..]));
            }
        }
        _ => {}
    }
}

fn compare(
    m: &Mount,
    reference: &Path,
    promised: &BTreeSet<String>,
    seed: u64,
    step: usize,
    history: &[Op],
) {
    let mut a = snapshot(&m.mountpoint, true);
    let mut b = snapshot(reference, true);
    for map in [&mut a, &mut b] {
        for (k, n) in map.iter_mut() {
            if let Node::File { mtime, .. } = n {
                if !promised.contains(k) {
                    *mtime = 0;
                }
            }
        }
    }
    let d = diff(&a, &b);
    assert!(
        d.is_empty(),
        "seed {seed}: trees differ after step {step}:\n{}\nlast ops:\n{}\n(add {seed} to REGRESSION_SEEDS)",
        d.join("\n"),
        tail(history)
    );
}

fn tail(history: &[Op]) -> String {
    let start = history.len().saturating_sub(12);
    history[start..]
        .iter()
        .enumerate()
        .map(|(i, o)| format!("  #{}: {o:?}", start + i))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_seed(seed: u64) {
    eprintln!("differential: seed {seed}");
    let Some(h) = Harness::start(&format!("diff-{seed}")) else {
        return;
    };
    let reference: PathBuf = h.path("reference");
    std::fs::create_dir(&reference).unwrap();
    let mut m = h.mount(MountOptions::default().opt("multipart_size=1"));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut promised = BTreeSet::new();
    let mut history = Vec::new();
    for step in 0..OPS_PER_SEED {
        let op = gen(&mut rng, &reference);
        history.push(op.clone());
        if let Op::Remount = op {
            m.remount();
            compare(&m, &reference, &promised, seed, step, &history);
            continue;
        }
        let want = apply(&reference, &op);
        let got = apply(&m.mountpoint, &op);
        assert_eq!(
            got, want,
            "seed {seed} step {step}: {op:?} gave {got:?} on the mount but {want:?} locally\nlast ops:\n{}\n(add {seed} to REGRESSION_SEEDS)",
            tail(&history)
        );
        track_mtimes(&mut promised, &op);
        if step % 10 == 9 {
            compare(&m, &reference, &promised, seed, step, &history);
        }
    }
    compare(&m, &reference, &promised, seed, OPS_PER_SEED, &history);
    m.remount();
    compare(&m, &reference, &promised, seed, OPS_PER_SEED + 1, &history);
}

fn extra_seeds() -> Vec<u64> {
    let clock = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    };
    match std::env::var("COSMOUNT_DIFF_SEEDS") {
        Ok(s) if s.starts_with('+') => {
            let n: u64 = s[1..].parse().unwrap_or(1);
            (0..n)
                .map(|i| clock().wrapping_add(i.wrapping_mul(0x9E37_79B9)))
                .collect()
        }
        Ok(s) if !s.trim().is_empty() => {
            s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
        }
        _ => vec![clock() % 1_000_000_007],
    }
}

/// Runs every seed even when one fails, then fails naming all failing seeds.
fn run_seeds(seeds: &[u64]) {
    let failed: Vec<u64> = seeds
        .iter()
        .copied()
        .filter(|&seed| std::panic::catch_unwind(|| run_seed(seed)).is_err())
        .collect();
    assert!(
        failed.is_empty(),
        "differential seeds failed: {failed:?} (details above)"
    );
}

#[test]
fn differential_regression_seeds() {
    run_seeds(REGRESSION_SEEDS);
}

#[test]
fn differential_fresh_seeds() {
    run_seeds(&extra_seeds());
}

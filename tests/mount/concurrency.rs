//! Concurrency and memory through a real mount: many writers and readers at once must each
//! see their own bytes, and many open handles reading in parallel must not blow the
//! daemon's memory (per-handle prefetch is how other mount tools run out of memory) — peak RSS stays < 512 MiB.

use crate::harness::fsops::read_at;
use crate::harness::{pattern, Harness, MountOptions};
use std::sync::Arc;

const MIB: usize = 1024 * 1024;

#[test]
fn parallel_writers_and_readers_see_their_own_bytes() {
    let Some(h) = Harness::start("conc-rw") else {
        return;
    };
    let mut m = h.mount(MountOptions::default().opt("multipart_size=1"));
    let root = Arc::new(m.mountpoint.clone());
    let writers: Vec<_> = (0..8u64)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                std::fs::create_dir_all(root.join(format!("t{t}"))).unwrap();
                for i in 0..4u64 {
                    let len = (i as usize + 1) * 700_000 + t as usize;
                    let p = root.join(format!("t{t}/f{i}"));
                    std::fs::write(&p, pattern(t * 100 + i, len))
                        .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread");
    }
    m.remount();
    let root = Arc::new(m.mountpoint.clone());
    let readers: Vec<_> = (0..8u64)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                for i in 0..4u64 {
                    let len = (i as usize + 1) * 700_000 + t as usize;
                    let want = pattern(t * 100 + i, len);
                    let p = root.join(format!("t{t}/f{i}"));
                    let got = std::fs::read(&p).unwrap();
                    assert!(got == want, "{} differs ({} bytes)", p.display(), got.len());
                    let off = len / 3;
                    let part = read_at(&p, off as u64, 4096).unwrap();
                    assert!(
                        part == want[off..off + 4096],
                        "ranged read of {}",
                        p.display()
                    );
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("reader thread");
    }
}

#[test]
fn many_open_readers_stay_within_memory() {
    let Some(h) = Harness::start("conc-mem") else {
        return;
    };
    const FILES: usize = 48;
    const SIZE: usize = 8 * MIB;
    let mut m = h.mount(MountOptions::default().opt("multipart_size=8"));
    for i in 0..FILES {
        std::fs::write(m.path(&format!("f{i}")), pattern(i as u64, SIZE)).unwrap();
    }
    m.remount();
    // Every file open at once, read in interleaved 1 MiB steps by 16 threads.
    let files: Vec<_> = (0..FILES)
        .map(|i| Arc::new(std::fs::File::open(m.path(&format!("f{i}"))).unwrap()))
        .collect();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let mine: Vec<(usize, Arc<std::fs::File>)> = files
                .iter()
                .cloned()
                .enumerate()
                .filter(|(i, _)| i % 16 == t)
                .collect();
            std::thread::spawn(move || {
                use std::os::unix::fs::FileExt;
                let wants: Vec<Vec<u8>> =
                    mine.iter().map(|(i, _)| pattern(*i as u64, SIZE)).collect();
                let mut buf = vec![0u8; MIB];
                for step in 0..SIZE / MIB {
                    for ((i, f), want) in mine.iter().zip(&wants) {
                        f.read_exact_at(&mut buf, (step * MIB) as u64).unwrap();
                        let want = &want[step * MIB..(step + 1) * MIB];
                        assert!(buf == want, "f{i} block {step} differs");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("reader");
    }
    let hwm = m.peak_rss_kib().expect("VmHWM of the daemon");
    eprintln!("peak RSS with {FILES} open readers: {} MiB", hwm / 1024);
    assert!(
        hwm < 512 * 1024,
        "cosmount peak RSS {} MiB with {FILES} open files",
        hwm / 1024
    );
}

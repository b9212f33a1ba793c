//! Durability and integrity under faults, through the kernel, one test per way the promise
//! used to break (issue 6's list). Every test proves its fault happened: coslocal's fault
//! counters, the errno the floor gives, the request log, or the daemon's own statistics.

use crate::harness::fsops::errno_of;
use crate::harness::{pattern, Harness, MountOptions, Sse};
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// close(2), returning its error (std's Drop swallows it).
fn close(f: std::fs::File) -> std::io::Result<()> {
    let fd = f.into_raw_fd();
    // SAFETY: we own fd (into_raw_fd) and close it exactly once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn faults_now(h: &Harness) -> u64 {
    h.cos.stats()["faults_injected_config"]
        .as_u64()
        .unwrap_or(0)
}

fn open_trunc(p: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(p)
        .unwrap()
}

/// Writes `data` in 1 MiB writes; the results of every write, then fsync, then close.
fn write_fsync_close(
    f: std::fs::File,
    data: &[u8],
) -> (
    Vec<std::io::Result<()>>,
    std::io::Result<()>,
    std::io::Result<()>,
) {
    let mut f = f;
    let writes: Vec<_> = data.chunks(MIB).map(|c| f.write_all(c)).collect();
    let s = f.sync_all();
    let c = close(f);
    (writes, s, c)
}

/// Item 1: Initiate failing on every attempt fails the file, stickily: every write after the
/// failing one, fsync and close return EIO, and the old object stays whole.
#[test]
fn failed_initiate_is_sticky_and_keeps_the_old_object() {
    let Some(h) = Harness::start("flt-initiate") else {
        return;
    };
    let sdk = h.sdk().expect("the Python SDK is required");
    let m = h.mount(
        MountOptions::default()
            .opt("retries=3")
            .opt("dbglevel=debug"),
    );
    let old = pattern(1, 3 * MIB);
    std::fs::write(m.path("f"), &old).unwrap();
    h.cos
        .set_faults(r#"{"kind":"reset","every_nth":1,"ops":["InitiateMultipartUpload"]}"#);
    let new = pattern(2, 30 * MIB);
    let (writes, fsync, closed) = write_fsync_close(open_trunc(&m.path("f")), &new);
    let first_err = writes.iter().position(|w| w.is_err());
    assert!(
        faults_now(&h) >= 3,
        "Initiate was not refused (faults: {})",
        faults_now(&h)
    );
    let first_err = first_err.unwrap_or_else(|| {
        panic!(
            "a write past the first part must fail (fsync {fsync:?}, close {closed:?})\n{}",
            m.log_text()
        )
    });
    for (i, w) in writes.iter().enumerate().skip(first_err) {
        assert!(
            w.is_err(),
            "write {i} succeeded after write {first_err} failed"
        );
    }
    assert_eq!(errno_of("fsync", fsync), libc::EIO);
    assert_eq!(errno_of("close", closed), libc::EIO);
    h.cos.clear_faults();
    assert!(
        sdk.get("f", None).unwrap() == old,
        "the old object was replaced"
    );
    assert!(sdk.uploads("").is_empty(), "an upload was left behind");
}

/// Item 1, second half: resets on every 2nd or 3rd request of any kind. Retries absorb them
/// (the file arrives whole) or the failure is reported and sticks (the old object stays):
/// never a truncated object.
#[test]
fn resets_on_every_few_requests_never_store_a_part_of_a_file() {
    let Some(h) = Harness::start("flt-resets") else {
        return;
    };
    let sdk = h.sdk().expect("the Python SDK is required");
    let m = h.mount(MountOptions::default().opt("multipart_size=1"));
    for (i, nth) in [2, 3].iter().enumerate() {
        let name = format!("f{i}");
        let old = pattern(10 + i as u64, 3 * MIB);
        std::fs::write(m.path(&name), &old).unwrap();
        h.cos
            .set_faults(&format!(r#"{{"kind":"reset","every_nth":{nth}}}"#));
        let new = pattern(20 + i as u64, 12 * MIB + 5);
        let (writes, fsync, closed) = write_fsync_close(open_trunc(&m.path(&name)), &new);
        let injected = faults_now(&h);
        h.cos.clear_faults();
        assert!(injected > 0, "no reset was injected");
        let ok = writes.iter().all(|w| w.is_ok()) && fsync.is_ok() && closed.is_ok();
        let stored = sdk.get(&name, None).unwrap();
        if ok {
            assert!(
                stored == new,
                "reset every {nth}: success reported but the bucket holds {} bytes",
                stored.len()
            );
        } else {
            assert!(
                fsync.is_err() && closed.is_err(),
                "an error did not stick: fsync {fsync:?}, close {closed:?}"
            );
            assert!(
                stored == old,
                "reset every {nth}: failure reported and the old object changed"
            );
        }
        eprintln!("reset every {nth}: {injected} faults, write ok = {ok}");
    }
}

/// Item 2: a failed move to staging (the free-space floor) is reported by that write and by
/// every later fsync and close; nothing half-written reaches the bucket.
#[test]
fn failed_move_to_staging_is_reported_and_sticks() {
    let Some(h) = Harness::start("flt-staging") else {
        return;
    };
    let sdk = h.sdk().expect("the Python SDK is required");
    let m = h.mount(MountOptions::default().opt("staging_min_free=1000000000"));
    let mut f = std::fs::File::create(m.path("new.bin")).unwrap();
    f.write_all(&pattern(3, 100 * 1024)).unwrap();
    // An out-of-order write needs a staging file, and the floor refuses one.
    let e = errno_of("pwrite into a streaming file", f.write_all_at(b"x", 50));
    assert_eq!(e, libc::ENOSPC, "the staging floor was not hit");
    assert_eq!(errno_of("write after", f.write_all(b"more")), libc::ENOSPC);
    assert_eq!(errno_of("fsync", f.sync_all()), libc::ENOSPC);
    assert_eq!(errno_of("close", close(f)), libc::ENOSPC);
    let got = sdk.get("new.bin", None);
    assert!(
        got.is_err(),
        "a file whose writes failed was stored ({:?} bytes)",
        got.map(|b| b.len())
    );
}

/// Item 2, EMFILE: 600 files open for writing at once with a small memory budget spill to
/// staging files until the staging descriptor budget (derived from RLIMIT_NOFILE) is used up;
/// then writes fail with EMFILE, stickily. Every file whose close succeeded is stored whole;
/// every other one is absent.
#[test]
fn out_of_staging_descriptors_fails_cleanly() {
    let Some(h) = Harness::start("flt-emfile") else {
        return;
    };
    let sdk = h.sdk().expect("the Python SDK is required");
    let mut opts = MountOptions::default().opt("memory_limit=16");
    // 700 descriptors: 188 for staging files after the daemon's reserve of 512.
    opts.nofile = Some(700);
    let m = h.mount(opts);
    // This process holds one descriptor per file.
    raise_own_nofile(4096);
    let body = pattern(4, 100 * 1024);
    let mut files = Vec::new();
    let mut first_errno = None;
    for i in 0..600 {
        let mut f = std::fs::File::create(m.path(&format!("f{i:04}"))).unwrap();
        let w = f.write_all(&body);
        if let Err(e) = &w {
            first_errno.get_or_insert(e.raw_os_error());
        }
        files.push((i, f, w.is_ok()));
    }
    let mut stored_ok = 0;
    let mut failed = Vec::new();
    for (i, f, wrote) in files {
        let c = close(f);
        if wrote && c.is_ok() {
            stored_ok += 1;
        } else {
            assert!(c.is_err(), "f{i:04}: a write failed but close succeeded");
            failed.push(i);
        }
    }
    assert_eq!(
        first_errno,
        Some(Some(libc::EMFILE)),
        "the staging descriptor budget was not reached (first write error {first_errno:?})"
    );
    let keys = sdk.list("");
    assert_eq!(
        keys.len(),
        stored_ok,
        "objects stored vs closes that succeeded"
    );
    for i in &failed {
        assert!(
            !keys.contains(&format!("f{i:04}")),
            "f{i:04} failed but is stored"
        );
    }
    // Spot-check content of stored files.
    for k in keys.iter().take(5).chain(keys.iter().rev().take(5)) {
        assert!(sdk.get(k, None).unwrap() == body, "{k} is not whole");
    }
    eprintln!(
        "{stored_ok} files stored, {} refused with EMFILE",
        failed.len()
    );
}

fn raise_own_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = n.min(lim.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// Item 3: one reset of Initiate is retried like any other request (the write succeeds),
/// and a lost Initiate answer leaves no orphan upload behind.
#[test]
fn initiate_is_retried_and_orphans_are_aborted() {
    let Some(h) = Harness::start("flt-initiate-retry") else {
        return;
    };
    let sdk = h.sdk().expect("the Python SDK is required");
    let m = h.mount(MountOptions::default().opt("multipart_size=1"));
    for (fault, name) in [("reset", "a"), ("truncate_body", "b")] {
        h.cos.set_faults(&format!(
            r#"{{"kind":"{fault}","every_nth":1,"max_faults":1,"ops":["InitiateMultipartUpload"]}}"#
        ));
        let data = pattern(5, 5 * MIB + 3);
        let f = std::fs::File::create(m.path(name)).unwrap();
        let (writes, fsync, closed) = write_fsync_close(f, &data);
        assert_eq!(
            faults_now(&h),
            1,
            "{fault}: the Initiate fault was not injected"
        );
        assert!(
            writes.iter().all(|w| w.is_ok()),
            "{fault}: a write failed: {writes:?}"
        );
        fsync.unwrap_or_else(|e| panic!("{fault}: fsync: {e}\n{}", m.log_text()));
        closed.unwrap_or_else(|e| panic!("{fault}: close: {e}"));
        assert!(sdk.get(name, None).unwrap() == data, "{fault}: content");
        let left = sdk.uploads("");
        assert!(left.is_empty(), "{fault}: uploads left behind: {left:?}");
    }
    h.cos.clear_faults();
}

/// Item 4: a lost answer to Complete is verified by a HEAD and reported as success (the
/// object is there); never ENOENT.
#[test]
fn lost_complete_answer_is_verified_not_enoent() {
    let Some(h) = Harness::start("flt-complete") else {
        return;
    };
    let sdk = h.sdk().expect("the Python SDK is required");
    let m = h.mount(MountOptions::default().opt("multipart_size=1"));
    h.cos.set_faults(
        r#"{"kind":"truncate_body","every_nth":1,"max_faults":1,"ops":["CompleteMultipartUpload"]}"#,
    );
    let data = pattern(6, 4 * MIB + 1);
    let f = std::fs::File::create(m.path("c")).unwrap();
    let (writes, fsync, closed) = write_fsync_close(f, &data);
    assert_eq!(faults_now(&h), 1, "the Complete answer was not cut");
    assert!(writes.iter().all(|w| w.is_ok()));
    fsync.unwrap_or_else(|e| panic!("fsync after a lost Complete answer: {e}\n{}", m.log_text()));
    closed.unwrap();
    assert!(sdk.get("c", None).unwrap() == data);
}

/// Item 6: the staging directory is private. A configured one that others can write is
/// refused with a message saying how to fix it; staging files have no name in it.
#[test]
fn staging_directory_is_private() {
    let Some(h) = Harness::start("flt-private") else {
        return;
    };
    let open_dir = h.path("open-staging");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let m = h.mount(MountOptions::default());
    let staging = m
        .option_string()
        .split(',')
        .find_map(|o| o.strip_prefix("staging_dir=").map(std::path::PathBuf::from))
        .expect("the harness names a staging_dir");
    let opts: Vec<String> = m
        .option_string()
        .split(',')
        .filter(|o| !o.starts_with("staging_dir="))
        .map(str::to_string)
        .chain([format!("staging_dir={}", open_dir.display())])
        .collect();
    let opts = opts.join(",");
    let mnt2 = h.path("mnt-refused");
    std::fs::create_dir(&mnt2).unwrap();
    // Without -f: the command returns once it has refused (or mounted).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cosmount"))
        .arg(m.source())
        .arg(&mnt2)
        .arg("-o")
        .arg(&opts)
        .output()
        .unwrap();
    if out.status.success() {
        let _ = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(&mnt2)
            .status();
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a world-writable staging_dir was accepted"
    );
    assert!(
        err.contains("mode 1777") && err.contains("chmod 700"),
        "message: {err}"
    );
    // A staged file has no name in the (private) staging directory.
    std::fs::write(m.path("s.bin"), pattern(7, 200_000)).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(m.path("s.bin"))
        .unwrap();
    f.write_all_at(b"patch", 1000).unwrap();
    let mode = std::fs::metadata(&staging).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "staging directory mode");
    let names: Vec<_> = std::fs::read_dir(&staging).unwrap().collect();
    assert!(names.is_empty(), "staging files have names: {names:?}");
    // The staging file exists (an open descriptor into that directory).
    let pid = m.pid.expect("daemon pid");
    let staged = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|t| t.starts_with(&staging));
    assert!(staged, "no staging file was open (the write did not stage)");
    close(f).unwrap();
}

/// Item 7: a directory marker this mount cannot open (SSE-C with another key) does not
/// hide the directory or the plain objects under it.
#[test]
fn unreadable_ssec_marker_does_not_hide_a_directory() {
    let Some(h) = Harness::start("flt-marker") else {
        return;
    };
    let sdk = h.sdk().expect("the Python SDK is required");
    let k1 = h.key_file("k1", &[[1u8; 32]]);
    let k2 = h.key_file("k2", &[[2u8; 32]]);
    let mut m = h.mount(MountOptions::sse(Sse::Customer(k1)));
    std::fs::create_dir(m.path("d")).unwrap();
    sdk.put("d/plain.txt", b"plain data", None, &[])
        .expect_ok("put plain object");
    m.remount_with(|o| o.sse = Sse::Customer(k2));
    let cursor = h.cos.request_count();
    let md = std::fs::metadata(m.path("d")).expect("stat d");
    assert!(md.is_dir());
    assert_eq!(std::fs::read(m.path("d/plain.txt")).unwrap(), b"plain data");
    let refused = h
        .cos
        .requests_since(cursor)
        .into_iter()
        .any(|e| e.key == "d/" && e.method == "HEAD" && (e.status == 400 || e.status == 403));
    assert!(
        refused,
        "the marker HEAD was not refused (the test proves nothing)"
    );
    // And without any SSE-C key.
    m.remount_with(|o| o.sse = Sse::None);
    assert!(std::fs::metadata(m.path("d")).unwrap().is_dir());
    assert_eq!(std::fs::read(m.path("d/plain.txt")).unwrap(), b"plain data");
}

/// Item 8: a bit flipped in a stored object is EIO for a sequential whole read, with and
/// without SSE-C, and the daemon says which object; an object without a CRC is read but
/// counted as unverified.
#[test]
fn a_flipped_bit_is_an_io_error_not_wrong_bytes() {
    let Some(h) = Harness::start("flt-bitflip") else {
        return;
    };
    let key = h.key_file("k", &[[9u8; 32]]);
    for (name, sse) in [("plain.bin", Sse::None), ("ssec.bin", Sse::Customer(key))] {
        let mut m = h.mount(MountOptions::sse(sse).opt("dbglevel=info"));
        let data = pattern(8, 3 * MIB + 7);
        std::fs::write(m.path(name), &data).unwrap();
        m.remount();
        assert!(
            std::fs::read(m.path(name)).unwrap() == data,
            "{name}: clean read"
        );
        h.cos.corrupt(name, (MIB + MIB / 2) as u64);
        m.remount();
        let r = std::fs::read(m.path(name));
        assert_eq!(
            errno_of(&format!("{name}: whole read of a corrupt object"), r),
            libc::EIO
        );
        // A second attempt (new handle, cold or warm cache) fails the same way.
        assert_eq!(errno_of("again", std::fs::read(m.path(name))), libc::EIO);
        m.unmount();
        let log = m.log_text();
        assert!(
            log.contains("does not match the object's CRC-64") && log.contains(name),
            "{name}: no log line names the corrupt object:\n{log}"
        );
        assert!(
            log.contains("read_crc_mismatches="),
            "statistics line missing:\n{log}"
        );
    }
    // No CRC header: read whole, counted as unverified.
    let mut m = h.mount(MountOptions::default().opt("dbglevel=info"));
    let data = pattern(9, MIB + 1);
    std::fs::write(m.path("nocrc.bin"), &data).unwrap();
    m.remount();
    h.cos.set_omit_crc(true);
    assert!(std::fs::read(m.path("nocrc.bin")).unwrap() == data);
    h.cos.set_omit_crc(false);
    m.unmount();
    let log = m.log_text();
    let unverified = log
        .lines()
        .filter(|l| l.contains("statistics"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("reads_without_crc="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum::<u64>();
    assert!(
        unverified >= 1,
        "a read without a CRC was not counted:\n{log}"
    );
}

/// Item 9: a symlink target longer than PATH_MAX (written by another tool) is ENAMETOOLONG,
/// not EIO.
#[test]
fn overlong_symlink_target_is_enametoolong() {
    let Some(h) = Harness::start("flt-symlink") else {
        return;
    };
    let sdk = h.sdk().expect("the Python SDK is required");
    let m = h.mount(MountOptions::default());
    let target = "t/".repeat(2500);
    sdk.put(
        "long",
        target.as_bytes(),
        None,
        &[("x-cos-meta-mode", "41471")],
    )
    .expect_ok("put a symlink object");
    let md = std::fs::symlink_metadata(m.path("long")).unwrap();
    assert!(md.file_type().is_symlink());
    assert_eq!(
        errno_of("readlink", std::fs::read_link(m.path("long"))),
        libc::ENAMETOOLONG
    );
    // A target the kernel accepts still works.
    std::os::unix::fs::symlink("x".repeat(4000), m.path("ok")).unwrap();
    assert_eq!(
        std::fs::read_link(m.path("ok")).unwrap().as_os_str().len(),
        4000
    );
}

/// Item 9: memory stays within `memory_limit` + 64 MiB with four parallel readers of files
/// larger than the budget, and a writer.
#[test]
fn memory_stays_within_the_budget() {
    let Some(h) = Harness::start("flt-memory") else {
        return;
    };
    let mut m = h.mount(MountOptions::default().opt("multipart_size=8"));
    let data = pattern(10, 48 * MIB);
    for i in 0..4 {
        std::fs::write(m.path(&format!("r{i}")), &data).unwrap();
    }
    m.remount_with(|o| o.options.push("memory_limit=32".into()));
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let p = m.path(&format!("r{i}"));
            std::thread::spawn(move || std::fs::read(p).map(|b| b.len()))
        })
        .collect();
    let writer = {
        let p = m.path("w");
        let d = data.clone();
        std::thread::spawn(move || std::fs::write(p, d))
    };
    for r in readers {
        assert_eq!(r.join().unwrap().unwrap(), 48 * MIB);
    }
    writer.join().unwrap().unwrap();
    let peak = m.peak_rss_kib().expect("VmHWM") / 1024;
    eprintln!("peak RSS with memory_limit=32: {peak} MiB");
    assert!(
        peak <= 32 + 64,
        "peak RSS {peak} MiB exceeds memory_limit (32 MiB) + 64 MiB"
    );
    std::thread::sleep(Duration::from_millis(10));
}

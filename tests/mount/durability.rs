//! Durability through a real mount: an upload that fails (faults injected on coslocal's
//! control port) makes fsync()/close() fail with EIO and leaves the old object intact;
//! fsync() that succeeded survives a SIGKILL of the daemon; SIGTERM flushes a file still
//! open for writing; `ro` gives EROFS; the staging free-space floor gives ENOSPC.

use crate::harness;
use crate::harness::fsops::{assert_errno, errno_of};
use crate::harness::{pattern, Harness, MountOptions};
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// close(2) of a file, returning its error (std's Drop swallows it).
fn close(f: std::fs::File) -> std::io::Result<()> {
    let fd = f.into_raw_fd();
    // SAFETY: we own fd (into_raw_fd) and close it exactly once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The bucket's view of `key`: through the SDK when present.
fn bucket_content(h: &Harness, key: &str) -> Option<Vec<u8>> {
    let sdk = h.sdk()?;
    sdk.get(key, None).ok()
}

const FAULT_MULTIPART: &str =
    r#"{"kind":"internal_error","every_nth":1,"ops":["UploadPart","CompleteMultipartUpload"]}"#;
const FAULT_PUT: &str = r#"{"kind":"internal_error","every_nth":1,"ops":["PutObject","UploadPart","CompleteMultipartUpload"]}"#;

#[test]
fn failed_upload_fails_fsync_and_close_and_keeps_old_object() {
    let Some(h) = Harness::start("dur-faults") else {
        return;
    };
    let mut m = h.mount(
        MountOptions::default()
            .opt("multipart_size=1")
            .opt("retries=1"),
    );
    let old = pattern(41, 2 * MIB + 10);
    std::fs::write(m.path("victim.bin"), &old).unwrap();
    std::fs::write(m.path("victim2.bin"), &old).unwrap();
    std::fs::write(m.path("small.txt"), b"old small").unwrap();

    h.cos.set_faults(FAULT_MULTIPART);
    let new = pattern(42, 3 * MIB + 1);
    // fsync must report the failed upload.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("victim.bin"))
        .unwrap();
    let w = f.write_all(&new);
    let s = f.sync_all();
    assert!(
        w.is_err() || s.is_err(),
        "write+fsync of a failing upload reported success"
    );
    if let Err(e) = &s {
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "fsync error: {e}");
    }
    let _ = close(f);
    // close without fsync must report it too.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("victim2.bin"))
        .unwrap();
    let w = f.write_all(&new);
    let c = close(f);
    assert!(
        w.is_err() || c.is_err(),
        "close of a failing upload reported success"
    );
    if let Err(e) = c {
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "close error: {e}");
    }
    // While COS still refuses, the bucket holds the old content.
    for key in ["victim.bin", "victim2.bin"] {
        if let Some(b) = bucket_content(&h, key) {
            assert!(
                b == old,
                "{key} in the bucket changed after a failed upload ({} bytes)",
                b.len()
            );
        }
    }

    // A small file (single PUT) fails the same way.
    h.cos.set_faults(FAULT_PUT);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("small.txt"))
        .unwrap();
    let w = f.write_all(b"new small");
    let c = close(f);
    assert!(
        w.is_err() || c.is_err(),
        "close of a failing PUT reported success"
    );
    if let Some(b) = bucket_content(&h, "small.txt") {
        assert_eq!(b, b"old small");
    }

    h.cos.clear_faults();
    m.remount();
    // Unacknowledged data may or may not have been retried later, but never half of it.
    for key in ["victim.bin", "victim2.bin"] {
        let got = std::fs::read(m.path(key)).unwrap();
        assert!(
            got == old || got == new,
            "{key} is neither old nor new after recovery ({} bytes)",
            got.len()
        );
    }
    let s = std::fs::read(m.path("small.txt")).unwrap();
    assert!(s == b"old small" || s == b"new small", "small.txt: {s:?}");
}

#[test]
fn fsynced_data_survives_sigkill() {
    let Some(h) = Harness::start("dur-sigkill") else {
        return;
    };
    let mut m = h.mount(MountOptions::default().opt("multipart_size=1"));
    let data = pattern(51, MIB + 333);
    let mut f = std::fs::File::create(m.path("acked.bin")).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().expect("fsync");
    m.signal(libc::SIGKILL);
    let _ = m.wait_exit(Duration::from_secs(10));
    drop(f);
    m.remount();
    assert!(
        std::fs::read(m.path("acked.bin")).unwrap() == data,
        "fsynced data lost after SIGKILL"
    );
}

/// SIGTERM (what systemd sends before SIGKILL) must persist a file still open for
/// writing: the bucket holds its data within a few seconds, whether or not the daemon can
/// unmount while the file is open.
#[test]
fn sigterm_flushes_open_files() {
    let Some(h) = Harness::start("dur-sigterm") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let mut m = h.mount(MountOptions::default().opt("multipart_size=1"));
    let data = pattern(61, 1_200_000);
    let mut f = std::fs::File::create(m.path("open.bin")).unwrap();
    f.write_all(&data).unwrap();
    // No fsync, no close: the daemon is asked to stop while the file is open.
    m.signal(libc::SIGTERM);
    let persisted = harness::wait_until(Duration::from_secs(30), || {
        sdk.get("open.bin", None).is_ok_and(|b| b == data)
    });
    // The busy mount is detached lazily: gone from the namespace at once, the open file
    // still served, and the daemon exits once the file is closed.
    let mountpoint = m.path("");
    let detached = harness::wait_until(Duration::from_secs(10), || {
        !harness::mount::is_mounted(&mountpoint)
    });
    drop(f);
    let exited = m.wait_exit(Duration::from_secs(15));
    eprintln!("daemon after SIGTERM with a file open: detached={detached} exited={exited:?}");
    let got = sdk.get("open.bin", None).map(|b| b.len());
    assert!(
        persisted,
        "30 s after SIGTERM the bucket does not hold the open file's data (bucket: {got:?} bytes \
         of {}); SIGKILL now would lose acknowledged writes\nlog:\n{}",
        data.len(),
        m.log_text()
    );
    assert!(
        detached,
        "the busy mount was not detached after SIGTERM\nlog:\n{}",
        m.log_text()
    );
    assert!(
        exited.is_some_and(|s| s.success()),
        "the daemon did not exit cleanly after the last file closed: {exited:?}\nlog:\n{}",
        m.log_text()
    );
    // A new mount on the same mount point sees it.
    m.remount();
    let through = std::fs::read(m.path("open.bin"));
    assert!(
        through.as_ref().is_ok_and(|b| *b == data),
        "after remount the mount reads {:?} bytes",
        through.map(|b| b.len())
    );
}

#[test]
fn read_only_mount_refuses_changes() {
    let Some(h) = Harness::start("dur-ro") else {
        return;
    };
    let mut m = h.mount(MountOptions::default());
    std::fs::create_dir(m.path("d")).unwrap();
    std::fs::write(m.path("d/f"), b"content").unwrap();
    m.remount_with(|o| o.options.push("ro".into()));
    let cursor = h.cos.request_count();
    assert_eq!(std::fs::read(m.path("d/f")).unwrap(), b"content");
    let erofs = [libc::EROFS];
    assert_errno("create", std::fs::write(m.path("new"), b"x"), &erofs);
    assert_errno(
        "open for write",
        std::fs::OpenOptions::new().write(true).open(m.path("d/f")),
        &erofs,
    );
    assert_errno("mkdir", std::fs::create_dir(m.path("e")), &erofs);
    assert_errno("unlink", std::fs::remove_file(m.path("d/f")), &erofs);
    assert_errno("rmdir", std::fs::remove_dir(m.path("d")), &erofs);
    assert_errno(
        "rename",
        std::fs::rename(m.path("d/f"), m.path("g")),
        &erofs,
    );
    assert_errno(
        "chmod",
        std::fs::set_permissions(m.path("d/f"), std::fs::Permissions::from_mode(0o600)),
        &erofs,
    );
    assert_errno(
        "symlink",
        std::os::unix::fs::symlink("x", m.path("l")),
        &erofs,
    );
    assert_eq!(std::fs::read(m.path("d/f")).unwrap(), b"content");
    let mutating: Vec<_> = h
        .cos
        .requests_since(cursor)
        .into_iter()
        .filter(|e| e.method != "GET" && e.method != "HEAD")
        .map(|e| format!("{} {} {}", e.method, e.op, e.key))
        .collect();
    assert!(mutating.is_empty(), "a read-only mount sent {mutating:?}");
}

#[test]
fn staging_floor_gives_enospc_not_corruption() {
    let Some(h) = Harness::start("dur-enospc") else {
        return;
    };
    let mut m = h.mount(MountOptions::default());
    let old = pattern(71, 300_000);
    std::fs::write(m.path("existing.bin"), &old).unwrap();
    // A floor far above the free space of any disk: staging is never allowed.
    m.remount_with(|o| o.options.push("staging_min_free=1000000000".into()));
    let r = (|| -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(m.path("existing.bin"))?;
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"patch", 1000)?;
        f.sync_all()?;
        close(f)
    })();
    let e = errno_of("random write with no staging space", r);
    assert_eq!(e, libc::ENOSPC, "errno {e}");
    assert!(
        std::fs::read(m.path("existing.bin")).unwrap() == old,
        "refused write changed the file"
    );
}

/// After an upload failed, a later fsync()/close() of the same handle must not report
/// success unless the bucket really holds the new data (s3fs-fuse PR #2912: the retried
/// flush "succeeded" by copying the stale object over itself).
#[test]
fn retried_fsync_after_failure_never_lies() {
    let Some(h) = Harness::start("dur-retry-fsync") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let m = h.mount(
        MountOptions::default()
            .opt("multipart_size=1")
            .opt("retries=1"),
    );
    let old = pattern(91, 1_500_000);
    std::fs::write(m.path("f.bin"), &old).unwrap();
    h.cos.set_faults(FAULT_PUT);
    let new = pattern(92, 2_500_000);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("f.bin"))
        .unwrap();
    let first = f.write_all(&new).and_then(|_| f.sync_all());
    assert!(
        first.is_err(),
        "fsync with every upload failing reported success"
    );
    h.cos.clear_faults();
    let second = f.sync_all();
    let in_bucket = sdk.get("f.bin", None).ok();
    if second.is_ok() {
        assert!(
            in_bucket.as_ref() == Some(&new),
            "second fsync reported success but the bucket holds {:?} bytes (old = {}, new = {})",
            in_bucket.as_ref().map(|b| b.len()),
            old.len(),
            new.len()
        );
    }
    let closed = close(f);
    let in_bucket = sdk.get("f.bin", None).ok();
    if closed.is_ok() {
        assert!(
            in_bucket.as_ref() == Some(&new),
            "close reported success but the bucket holds {:?} bytes",
            in_bucket.as_ref().map(|b| b.len())
        );
    } else {
        assert!(
            in_bucket.as_ref() == Some(&old),
            "failed close changed the object"
        );
    }
    eprintln!("after the fault: fsync#2 {second:?}, close {closed:?}");
}

/// Transient faults (resets, truncated responses, SlowDown) are retried transparently:
/// writes, renames and reads all succeed with the right bytes.
#[test]
fn transient_faults_are_retried_transparently() {
    let Some(h) = Harness::start("dur-transient") else {
        return;
    };
    let mut m = h.mount(MountOptions::default().opt("multipart_size=1"));
    let data = pattern(93, 3 * MIB + 17);
    for (i, fault) in [
        r#"{"kind":"reset","every_nth":3}"#,
        r#"{"kind":"slow_down","every_nth":2}"#,
        r#"{"kind":"truncate_body","every_nth":3,"ops":["GetObject","CopyObject","CompleteMultipartUpload","ListObjects"]}"#,
        r#"{"kind":"internal_error","every_nth":2,"ops":["UploadPart","PutObject","CopyObject","HeadObject"]}"#,
    ]
    .iter()
    .enumerate()
    {
        h.cos.set_faults(fault);
        let name = format!("f{i}.bin");
        // fsync, not std::fs::write: the latter drops close()'s error, which is exactly
        // where a failed upload is reported.
        let written = std::fs::File::create(m.path(&name))
            .and_then(|mut f| f.write_all(&data).and_then(|()| f.sync_all()));
        written.unwrap_or_else(|e| panic!("write under {fault}: {e}\nlog:\n{}", m.log_text()));
        std::fs::rename(m.path(&name), m.path(&format!("r{i}.bin")))
            .unwrap_or_else(|e| panic!("rename under {fault}: {e}"));
        m.remount();
        let got = std::fs::read(m.path(&format!("r{i}.bin")))
            .unwrap_or_else(|e| panic!("read under {fault}: {e}"));
        if got != data {
            let first = got.iter().zip(&data).position(|(a, b)| a != b);
            panic!(
                "content differs under {fault}: read {} bytes, wrote {}, first difference at {first:?}\nlog:\n{}",
                got.len(),
                data.len(),
                m.log_text()
            );
        }
        h.cos.clear_faults();
    }
    let injected = h.cos.stats()["faults_injected"].as_u64().unwrap_or(0);
    assert!(injected > 0, "no fault was injected");
}

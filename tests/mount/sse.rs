//! Kernel-level workload through a real mount over coslocal HTTPS, once per SSE mode
//! (none, SSE-COS, SSE-KMS, SSE-C): create, small and multipart writes, stat, sequential
//! and random reads, overwrite, truncate, append, rename of a file and of a directory,
//! chmod/utimens persisting across a remount, symlinks, unlink, mkdir/rmdir. Afterwards
//! coslocal's request log must show that every request carried exactly the SSE headers
//! the policy requires (`cos_wire::OpFacts`).

use crate::harness;
use crate::harness::fsops::{assert_errno, read_at, set_times, snapshot};
use crate::harness::reqlog::{violations, Expect};
use crate::harness::{pattern, Harness, Mount, MountOptions, Sse};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

const MIB: usize = 1024 * 1024;

/// The whole workload; `m` is mounted with multipart_size=1.
fn workload(m: &mut Mount) {
    let p = |r: &str| m.path(r);

    // Create + small write.
    std::fs::write(p("small.txt"), b"hello cosmount\n").expect("write small");
    assert_eq!(std::fs::metadata(p("small.txt")).unwrap().len(), 15);
    assert_eq!(std::fs::read(p("small.txt")).unwrap(), b"hello cosmount\n");

    // Empty file.
    std::fs::File::create(p("empty")).expect("create empty");
    assert_eq!(std::fs::metadata(p("empty")).unwrap().len(), 0);

    // Multipart write (1 MiB parts, 3 MiB + change).
    let big = pattern(1, 3 * MIB + 12_345);
    std::fs::write(p("big.bin"), &big).expect("write big");
    let md = std::fs::metadata(p("big.bin")).unwrap();
    assert_eq!(md.len(), big.len() as u64);
    assert!(
        std::fs::read(p("big.bin")).unwrap() == big,
        "sequential read of big.bin differs"
    );
    // Random reads, including across part boundaries and at the tail.
    for (off, len) in [
        (0usize, 10usize),
        (MIB - 5, 10),
        (2 * MIB + 7, 100_000),
        (big.len() - 3, 3),
        (1234, 1),
    ] {
        let got = read_at(&p("big.bin"), off as u64, len).unwrap();
        assert!(
            got == big[off..off + len],
            "random read at {off}+{len} differs"
        );
    }
    // Read past EOF gives nothing.
    assert!(read_at(&p("big.bin"), big.len() as u64 + 10, 10)
        .unwrap()
        .is_empty());

    // Overwrite with different (smaller, still multipart) content.
    let big2 = pattern(2, 2 * MIB + 1);
    std::fs::write(p("big.bin"), &big2).expect("overwrite big");
    assert!(
        std::fs::read(p("big.bin")).unwrap() == big2,
        "overwritten big.bin differs"
    );

    // Truncate down, then up (zero fill).
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(p("big.bin"))
            .unwrap();
        f.set_len(1000).expect("truncate down");
        f.set_len(5000).expect("truncate up");
    }
    let t = std::fs::read(p("big.bin")).unwrap();
    assert_eq!(t.len(), 5000);
    assert!(
        t[..1000] == big2[..1000] && t[1000..].iter().all(|&b| b == 0),
        "truncate content"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(p("small.txt"))
        .unwrap();
    assert_eq!(
        std::fs::metadata(p("small.txt")).unwrap().len(),
        0,
        "O_TRUNC"
    );
    std::fs::write(p("small.txt"), b"hello cosmount\n").unwrap();

    // Append.
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(p("small.txt"))
            .unwrap();
        f.write_all(b"appended\n").unwrap();
    }
    assert_eq!(
        std::fs::read(p("small.txt")).unwrap(),
        b"hello cosmount\nappended\n"
    );

    // Rename a file.
    std::fs::rename(p("small.txt"), p("renamed.txt")).expect("rename file");
    assert_errno(
        "stat old name",
        std::fs::metadata(p("small.txt")),
        &[libc::ENOENT],
    );
    assert_eq!(
        std::fs::read(p("renamed.txt")).unwrap(),
        b"hello cosmount\nappended\n"
    );

    // Rename a directory holding a small file, a multipart-sized file and a subdirectory.
    std::fs::create_dir(p("d1")).expect("mkdir d1");
    std::fs::create_dir(p("d1/sub")).expect("mkdir d1/sub");
    std::fs::write(p("d1/a.txt"), b"A").unwrap();
    let dbig = pattern(3, 2 * MIB + 77);
    std::fs::write(p("d1/sub/big"), &dbig).unwrap();
    std::fs::rename(p("d1"), p("d2")).expect("rename dir");
    assert_errno("stat old dir", std::fs::metadata(p("d1")), &[libc::ENOENT]);
    assert_eq!(std::fs::read(p("d2/a.txt")).unwrap(), b"A");
    assert!(
        std::fs::read(p("d2/sub/big")).unwrap() == dbig,
        "renamed dir content"
    );

    // chmod + utimens (must persist across a remount).
    std::fs::set_permissions(p("renamed.txt"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    set_times(&p("renamed.txt"), (1_600_000_000, 0), (1_600_000_123, 0)).expect("utimens");
    std::fs::set_permissions(p("d2"), std::fs::Permissions::from_mode(0o750)).expect("chmod dir");

    // Symlink.
    std::os::unix::fs::symlink("d2/a.txt", p("link")).expect("symlink");
    assert_eq!(
        std::fs::read_link(p("link")).unwrap().to_str(),
        Some("d2/a.txt")
    );
    assert_eq!(
        std::fs::read(p("link")).unwrap(),
        b"A",
        "read through symlink"
    );

    // Unlink.
    std::fs::write(p("gone"), b"x").unwrap();
    std::fs::remove_file(p("gone")).expect("unlink");
    assert_errno(
        "stat unlinked",
        std::fs::metadata(p("gone")),
        &[libc::ENOENT],
    );

    // mkdir / rmdir.
    std::fs::create_dir(p("e")).expect("mkdir e");
    std::fs::write(p("e/f"), b"f").unwrap();
    assert_errno(
        "rmdir non-empty",
        std::fs::remove_dir(p("e")),
        &[libc::ENOTEMPTY],
    );
    std::fs::remove_file(p("e/f")).unwrap();
    std::fs::remove_dir(p("e")).expect("rmdir empty");
    assert_errno(
        "mkdir existing",
        std::fs::create_dir(p("d2")),
        &[libc::EEXIST],
    );

    // Everything survives a remount.
    let before = snapshot(&m.mountpoint, true);
    m.remount();
    let after = snapshot(&m.mountpoint, true);
    let d = harness::fsops::diff(&after, &before);
    assert!(
        d.is_empty(),
        "tree changed across remount:\n{}",
        d.join("\n")
    );
    let md = std::fs::metadata(m.path("renamed.txt")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o640, "mode after remount");
    assert_eq!(md.mtime(), 1_600_000_123, "mtime after remount");
    assert_eq!(
        std::fs::metadata(m.path("d2")).unwrap().mode() & 0o7777,
        0o750,
        "dir mode after remount"
    );
    assert_eq!(
        std::fs::read_link(m.path("link")).unwrap().to_str(),
        Some("d2/a.txt")
    );
    assert!(std::fs::read(m.path("d2/sub/big")).unwrap() == dbig);
}

fn run(name: &str, sse: impl FnOnce(&Harness) -> (Sse, Expect)) {
    let Some(h) = Harness::start(name) else {
        return;
    };
    let (sse, expect) = sse(&h);
    let mut m = h.mount(MountOptions::sse(sse).opt("multipart_size=1"));
    workload(&mut m);
    m.unmount();

    let log = h.cos.requests();
    assert!(
        !log.is_empty(),
        "request log {} is empty",
        h.cos.request_log.display()
    );
    // The workload must really have used the operations whose headers we check.
    for op in [
        "PutObject",
        "InitiateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "CopyObject",
        "GetObject",
    ] {
        assert!(
            log.iter().any(|e| e.op == op),
            "workload sent no {op}; ops seen: {:?}",
            ops(&log)
        );
    }
    let bad = violations(&log, &expect);
    check_stored_encryption(&h, &expect);
    assert!(
        bad.is_empty(),
        "{} of {} requests carried the wrong SSE headers:\n{}",
        bad.len(),
        log.len(),
        bad.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Every object left in the bucket (written, multipart, copied by renames, chmod/utimens
/// self-copies) is stored with the mount's encryption, as a second client sees it.
fn check_stored_encryption(h: &Harness, expect: &Expect) {
    let Some(sdk) = h.sdk() else { return };
    let keyfile = h.path("ssec.keys");
    for key in sdk.list("") {
        let head = match expect {
            Expect::Customer(_) => sdk.head(&key, Some(&keyfile)),
            _ => sdk.head(&key, None),
        }
        .unwrap_or_else(|e| panic!("SDK head {key}: {}", e.stderr));
        let sse = head["x-cos-server-side-encryption"].as_str();
        let ssec = head["x-cos-server-side-encryption-customer-algorithm"].as_str();
        let kms_id = head["x-cos-server-side-encryption-cos-kms-key-id"].as_str();
        match expect {
            Expect::None => assert!(
                sse.is_none() && ssec.is_none(),
                "{key} is encrypted: {head}"
            ),
            Expect::Cos => assert_eq!(sse, Some("AES256"), "{key}: {head}"),
            Expect::Kms(id) => {
                assert_eq!(sse, Some("cos/kms"), "{key}: {head}");
                assert_eq!(kms_id, Some(id.as_str()), "{key}: {head}");
            }
            Expect::Customer(_) => assert_eq!(ssec, Some("AES256"), "{key}: {head}"),
        }
    }
}

fn ops(log: &[harness::LogEntry]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for e in log {
        *m.entry(e.op.clone()).or_insert(0) += 1;
    }
    m
}

#[test]
fn sse_none_workload() {
    run("sse-none", |_| (Sse::None, Expect::None));
}

#[test]
fn sse_cos_workload() {
    run("sse-cos", |_| (Sse::Cos, Expect::Cos));
}

#[test]
fn sse_kms_workload() {
    run("sse-kms", |_| {
        (
            Sse::Kms("kms-test-key-1".into()),
            Expect::Kms("kms-test-key-1".into()),
        )
    });
}

#[test]
fn sse_c_workload() {
    run("sse-c", |h| {
        let key = [7u8; 32];
        let f = h.key_file("ssec.keys", &[key]);
        (Sse::Customer(f), Expect::Customer(key_md5(&key)))
    });
}

/// base64(MD5(raw key)), as the request log shows it.
fn key_md5(raw: &[u8; 32]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(raw))
}

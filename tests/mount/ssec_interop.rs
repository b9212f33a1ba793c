//! SSE-C interoperability between a real mount and the official Python SDK, over coslocal
//! HTTPS: what the mount writes the SDK reads with the key (and is refused without it),
//! what the SDK writes the mount reads, key rotation keeps old objects readable, plain
//! objects in the same bucket stay readable, and a wrong key is a prompt EIO/EACCES whose
//! log line names the object.

use crate::harness;
use crate::harness::fsops::assert_errno;
use crate::harness::{pattern, Harness, MountOptions, Sse};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];
const K3: [u8; 32] = [0x33; 32];

#[test]
fn mount_writes_sdk_reads_with_key_only() {
    let Some(h) = Harness::start("ssec-mount-to-sdk") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let k1 = h.key_file("k1", &[K1]);
    let mut m = h.mount(MountOptions::sse(Sse::Customer(k1.clone())).opt("multipart_size=1"));
    let small = b"secret small\n".to_vec();
    let big = pattern(11, 3 * MIB + 5);
    std::fs::write(m.path("small.txt"), &small).unwrap();
    std::fs::create_dir(m.path("dir")).unwrap();
    std::fs::write(m.path("dir/big.bin"), &big).unwrap();
    m.unmount();

    assert_eq!(
        sdk.get("small.txt", Some(&k1)).expect("SDK get with key"),
        small
    );
    assert!(
        sdk.get("dir/big.bin", Some(&k1))
            .expect("SDK get big with key")
            == big
    );
    for key in ["small.txt", "dir/big.bin"] {
        let r = sdk
            .get(key, None)
            .expect_err("SDK get without the key must be refused");
        assert_eq!(r.code, 2, "expected a service refusal, got: {}", r.stderr);
        let st = r.refused_status();
        assert!(
            matches!(st, Some(400) | Some(403)),
            "refusal status {st:?}: {}",
            r.stderr
        );
        let r = sdk
            .head(key, None)
            .expect_err("SDK head without the key must be refused");
        assert!(
            matches!(r.refused_status(), Some(400) | Some(403)),
            "{}",
            r.stderr
        );
        let wrong = h.key_file("k3", &[K3]);
        let r = sdk
            .get(key, Some(&wrong))
            .expect_err("SDK get with a wrong key must be refused");
        assert!(
            matches!(r.refused_status(), Some(400) | Some(403)),
            "{}",
            r.stderr
        );
    }
    // The head with the key reports SSE-C and the key's MD5.
    let head = sdk.head("small.txt", Some(&k1)).expect("head with key");
    assert_eq!(
        head["x-cos-server-side-encryption-customer-algorithm"].as_str(),
        Some("AES256"),
        "head: {head}"
    );
}

#[test]
fn sdk_writes_mount_reads_ssec_and_plain() {
    let Some(h) = Harness::start("ssec-sdk-to-mount") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let k1 = h.key_file("k1", &[K1]);
    let enc = pattern(21, 1_500_000);
    sdk.put("sdk/enc.bin", &enc, Some(&k1), &[])
        .expect_ok("put SSE-C");
    sdk.put("sdk/plain.txt", b"plain text\n", None, &[])
        .expect_ok("put plain");
    let m = h.mount(MountOptions::sse(Sse::Customer(k1)));
    assert_eq!(
        std::fs::metadata(m.path("sdk/enc.bin")).unwrap().len(),
        enc.len() as u64
    );
    assert!(
        std::fs::read(m.path("sdk/enc.bin")).unwrap() == enc,
        "SSE-C object read through mount"
    );
    let part = harness::fsops::read_at(&m.path("sdk/enc.bin"), 1_000_000, 1000).unwrap();
    assert!(part == enc[1_000_000..1_001_000]);
    assert_eq!(
        std::fs::read(m.path("sdk/plain.txt")).unwrap(),
        b"plain text\n",
        "plain object in an SSE-C mount"
    );
    let mut names: Vec<_> = std::fs::read_dir(m.path("sdk"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["enc.bin", "plain.txt"]);
}

#[test]
fn key_rotation_keeps_old_objects_readable() {
    let Some(h) = Harness::start("ssec-rotation") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let keys = h.key_file("keys", &[K1]);
    let mut m = h.mount(MountOptions::sse(Sse::Customer(keys.clone())).opt("multipart_size=1"));
    let old_big = pattern(31, 2 * MIB + 3);
    std::fs::write(m.path("old.txt"), b"written with K1\n").unwrap();
    std::fs::write(m.path("old-big.bin"), &old_big).unwrap();
    m.unmount();

    // K2 becomes the write key; K1 stays in the history for reading.
    h.key_file("keys", &[K2, K1]);
    m.remount();
    assert_eq!(
        std::fs::read(m.path("old.txt")).unwrap(),
        b"written with K1\n",
        "old-key object after rotation"
    );
    assert!(std::fs::read(m.path("old-big.bin")).unwrap() == old_big);
    std::fs::write(m.path("new.txt"), b"written with K2\n").unwrap();
    // Renaming an old object copies it: source key K1, destination key K2.
    std::fs::rename(m.path("old-big.bin"), m.path("moved-big.bin")).expect("rename old-key object");
    assert!(std::fs::read(m.path("moved-big.bin")).unwrap() == old_big);
    m.unmount();

    let k1 = h.key_file("only-k1", &[K1]);
    let k2 = h.key_file("only-k2", &[K2]);
    assert_eq!(
        sdk.get("new.txt", Some(&k2)).expect("new object with K2"),
        b"written with K2\n"
    );
    assert!(
        sdk.get("new.txt", Some(&k1)).is_err(),
        "new object must not open with K1"
    );
    assert_eq!(
        sdk.get("old.txt", Some(&k1)).expect("old object with K1"),
        b"written with K1\n"
    );
    let moved = sdk.get("moved-big.bin", Some(&k2));
    let moved_k1 = sdk.get("moved-big.bin", Some(&k1));
    assert!(
        moved.as_ref().is_ok_and(|d| *d == old_big)
            || moved_k1.as_ref().is_ok_and(|d| *d == old_big),
        "renamed object unreadable with K2 ({:?}) and K1 ({:?})",
        moved.err().map(|e| e.stderr),
        moved_k1.err().map(|e| e.stderr)
    );
    assert!(
        moved.is_ok(),
        "a copied object should be re-encrypted with the write key K2"
    );

    // Every copy of an SSE-C source carried the source triple with K1's MD5.
    let md5_k1 = key_md5(&K1);
    let md5_k2 = key_md5(&K2);
    let log = h.cos.requests();
    let copies: Vec<_> = log
        .iter()
        .filter(|e| {
            (e.op == "CopyObject" || e.op == "UploadPartCopy") && e.key.contains("moved-big")
        })
        .collect();
    assert!(!copies.is_empty(), "rename sent no copy request");
    for e in copies {
        assert_eq!(
            e.sse.copy_source_customer_key_md5.as_deref(),
            Some(md5_k1.as_str()),
            "{e:?}"
        );
        assert_eq!(
            e.sse.customer_key_md5.as_deref(),
            Some(md5_k2.as_str()),
            "{e:?}"
        );
    }
}

#[test]
fn wrong_key_is_a_prompt_error_naming_the_object() {
    let Some(h) = Harness::start("ssec-wrong-key") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let k3 = h.key_file("k3", &[K3]);
    sdk.put("locked.txt", b"not for you\n", Some(&k3), &[])
        .expect_ok("put with K3");
    sdk.put("open.txt", b"plain\n", None, &[])
        .expect_ok("put plain");
    let k1 = h.key_file("k1", &[K1]);
    let m = h.mount(MountOptions::sse(Sse::Customer(k1)));
    let t = Instant::now();
    assert_errno(
        "read an object encrypted with another key",
        std::fs::read(m.path("locked.txt")),
        &[libc::EIO, libc::EACCES, libc::EPERM],
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "wrong key took {:?}",
        t.elapsed()
    );
    // The listing still shows it (listing needs no key) and other files work.
    let names: Vec<_> = std::fs::read_dir(&m.mountpoint)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&"locked.txt".to_string()),
        "listing: {names:?}"
    );
    assert_eq!(std::fs::read(m.path("open.txt")).unwrap(), b"plain\n");
    let found = harness::wait_until(Duration::from_secs(5), || {
        m.log_text().contains("locked.txt")
    });
    assert!(
        found,
        "cosmount's log does not name the object; log:\n{}",
        m.log_text()
    );
    // And the key never shows up in the log.
    use base64::Engine;
    let k1_b64 = base64::engine::general_purpose::STANDARD.encode(K1);
    assert!(
        !m.log_text().contains(&k1_b64),
        "the SSE-C key leaked into the log"
    );
}

/// Mounting a sub-path of an SSE-C bucket: the start-up checks must carry the key too
/// (s3fs-fuse#2352 failed here), and everything below the prefix works.
#[test]
fn prefix_mount_of_ssec_bucket() {
    let Some(h) = Harness::start("ssec-prefix") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let k1 = h.key_file("k1", &[K1]);
    sdk.put("tenant/", b"", Some(&k1), &[])
        .expect_ok("put SSE-C marker");
    sdk.put("tenant/a.txt", b"inside", Some(&k1), &[])
        .expect_ok("put inside");
    sdk.put("outside.txt", b"outside", Some(&k1), &[])
        .expect_ok("put outside");
    let mut opts = MountOptions::sse(Sse::Customer(k1.clone()));
    opts.prefix = Some("tenant".into());
    let m = h.mount(opts);
    let names: Vec<_> = std::fs::read_dir(&m.mountpoint)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["a.txt"],
        "prefix mount shows only the prefix's content"
    );
    assert_eq!(std::fs::read(m.path("a.txt")).unwrap(), b"inside");
    std::fs::write(m.path("b.txt"), b"new inside").unwrap();
    drop(m);
    assert_eq!(
        sdk.get("tenant/b.txt", Some(&k1))
            .expect("written under the prefix"),
        b"new inside"
    );
}

fn key_md5(raw: &[u8; 32]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(raw))
}

/// The mount-time SSE-C check: objects under the mount that no configured key opens are
/// named at mount (a warning on the terminal and in the log; `ssec_check=error` refuses
/// to mount), and a read without the key is logged as exactly that, naming the object.
#[test]
fn mount_time_check_names_an_object_no_key_opens() {
    let Some(h) = Harness::start("ssec-mount-check") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let k1 = h.key_file("k1", &[K1]);
    let k2 = h.key_file("k2", &[K2]);
    sdk.put("vault/a.bin", b"sealed", Some(&k1), &[])
        .expect_ok("SDK put with K1");
    let daemon = |sse: Sse, extra: &[&str]| {
        let mut o = MountOptions::sse(sse);
        o.prefix = Some("vault".into());
        o.foreground = false;
        for e in extra {
            o = o.opt(e);
        }
        o
    };

    // No key at all: mounts, says which object it cannot open.
    let mut m = h.mount(daemon(Sse::None, &[]));
    let said = m.log_text();
    assert!(
        said.contains("cosmount: warning: SSE-C check") && said.contains("vault/a.bin"),
        "no warning naming the object at mount:\n{said}"
    );
    m.unmount();

    // The wrong key with ssec_check=error: refused, exit 2, naming the object.
    let Err(out) = h.try_mount(daemon(Sse::Customer(k2.clone()), &["ssec_check=error"])) else {
        panic!("mounted although no key opens vault/a.bin");
    };
    assert!(
        out.contains("exit status: 2") && out.contains("vault/a.bin"),
        "{out}"
    );

    // The right key: no warning. ssec_check=off: no look at all.
    let mut m = h.mount(daemon(Sse::Customer(k1.clone()), &[]));
    assert!(!m.log_text().contains("SSE-C check"), "{}", m.log_text());
    assert_eq!(std::fs::read(m.path("a.bin")).unwrap(), b"sealed");
    m.unmount();
    let mut m = h.mount(daemon(Sse::None, &["ssec_check=off"]));
    assert!(!m.log_text().contains("SSE-C check"), "{}", m.log_text());
    m.unmount();

    // A read without the key, in the foreground: EIO, and the log line says why.
    let o = MountOptions {
        prefix: Some("vault".into()),
        ..Default::default()
    };
    let mut m = h.mount(o.opt("ssec_check=off"));
    assert_errno(
        "read without the key",
        std::fs::read(m.path("a.bin")),
        &[libc::EIO],
    );
    m.unmount();
    let log = m.log_text();
    assert!(
        log.contains("without an SSE-C key") && log.contains("vault/a.bin"),
        "the log does not say the key is missing:\n{log}"
    );
}

/// SIGHUP re-reads the SSE-C key file: after the new key is put first, new writes use it
/// (the SDK opens them with it, not with the old one), objects under the old key stay
/// readable, and a key file that cannot be used leaves the keys in force.
#[test]
fn sighup_rotates_the_write_key_without_a_remount() {
    let Some(h) = Harness::start("ssec-sighup") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let keys = h.key_file("rotating", &[K1]);
    let k1 = h.key_file("k1only", &[K1]);
    let k2 = h.key_file("k2only", &[K2]);
    let mut m = h.mount(MountOptions::sse(Sse::Customer(keys.clone())));
    std::fs::write(m.path("before.txt"), b"under K1").unwrap();
    // The new key first, the old one kept below it (the rotation the README describes).
    std::fs::copy(h.key_file("both", &[K2, K1]), &keys).unwrap();
    m.signal(libc::SIGHUP);
    let rotated = harness::wait_until(Duration::from_secs(10), || {
        std::fs::write(m.path("probe.txt"), b"p").is_ok() && sdk.get("probe.txt", Some(&k2)).is_ok()
    });
    assert!(
        rotated,
        "writes do not use the new key after SIGHUP; log:\n{}",
        m.log_text()
    );
    std::fs::write(m.path("after.txt"), b"under K2").unwrap();
    assert_eq!(
        sdk.get("after.txt", Some(&k2)).expect("K2 opens it"),
        b"under K2"
    );
    assert!(
        sdk.get("after.txt", Some(&k1)).is_err(),
        "written with the old key"
    );
    assert_eq!(std::fs::read(m.path("before.txt")).unwrap(), b"under K1");
    // A broken key file: refused, the keys in force stay.
    std::fs::write(&keys, b"not a key\n").unwrap();
    m.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(m.path("still.txt"), b"still K2").unwrap();
    assert_eq!(
        sdk.get("still.txt", Some(&k2)).expect("K2 still writes"),
        b"still K2"
    );
    m.unmount();
    assert!(
        m.log_text()
            .contains("not reloaded, the keys in force stay"),
        "{}",
        m.log_text()
    );
}

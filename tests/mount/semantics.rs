//! File-system semantics through a real mount over coslocal HTTPS, with the Python SDK as
//! a second client: awkward names, directories from markers and from bare prefixes, a
//! directory longer than one listing page, other clients' changes after
//! `stat_cache_expire`, cosfs metadata (`x-cos-meta-mode` & co) in both directions,
//! special files and files unlinked while open, O_TRUNC in every access mode, and the
//! documented refusals (hard links and extended attributes: ENOTSUP).

use crate::harness;
use crate::harness::fsops::{assert_errno, hard_link, set_xattr};
use crate::harness::{Harness, MountOptions};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().expect("utf-8 name"))
        .collect()
}

const AWKWARD: [&str; 7] = [
    "with space.txt",
    "100% done.txt",
    "a+b=c.txt",
    "ünïcødé-日本語.txt",
    "question?hash#amp&.txt",
    "tilde~quote'.txt",
    "semi;colon,comma.txt",
];

#[test]
fn awkward_names_round_trip() {
    let Some(h) = Harness::start("sem-names") else {
        return;
    };
    let sdk = h.sdk();
    let mut m = h.mount(MountOptions::default());
    std::fs::create_dir(m.path("dir with space")).unwrap();
    for (i, n) in AWKWARD.iter().enumerate() {
        std::fs::write(m.path(n), format!("file {i}"))
            .unwrap_or_else(|e| panic!("create {n:?}: {e}"));
        std::fs::write(
            m.path(&format!("dir with space/{n}")),
            format!("nested {i}"),
        )
        .unwrap();
    }
    std::fs::rename(m.path("a+b=c.txt"), m.path("renamed 100%+ü.txt")).expect("rename awkward");
    m.remount();
    let mut want: BTreeSet<String> = AWKWARD.iter().map(|s| s.to_string()).collect();
    want.remove("a+b=c.txt");
    want.insert("renamed 100%+ü.txt".into());
    want.insert("dir with space".into());
    assert_eq!(names(&m.mountpoint), want);
    assert_eq!(
        std::fs::read_to_string(m.path("100% done.txt")).unwrap(),
        "file 1"
    );
    assert_eq!(
        std::fs::read_to_string(m.path("dir with space/ünïcødé-日本語.txt")).unwrap(),
        "nested 3"
    );
    assert_eq!(
        std::fs::read_to_string(m.path("renamed 100%+ü.txt")).unwrap(),
        "file 2"
    );

    // The bucket holds exactly these keys (not percent-encoded twice, no '+' for space).
    if let Some(sdk) = sdk {
        let keys: BTreeSet<String> = sdk.list("").into_iter().collect();
        for n in AWKWARD.iter().filter(|n| **n != "a+b=c.txt") {
            assert!(
                keys.contains(*n),
                "key {n:?} missing from bucket listing {keys:?}"
            );
            assert!(
                keys.contains(&format!("dir with space/{n}")),
                "nested {n:?} missing: {keys:?}"
            );
        }
        assert!(keys.contains("renamed 100%+ü.txt"), "{keys:?}");
        // And an object the SDK puts under such a name reads through the mount.
        sdk.put("sdk + 50% ü.txt", b"from sdk", None, &[])
            .expect_ok("put awkward");
        assert_eq!(
            std::fs::read(m.path("sdk + 50% ü.txt")).unwrap(),
            b"from sdk"
        );
    }
}

#[test]
fn directories_from_markers_and_prefixes() {
    let Some(h) = Harness::start("sem-dirs") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    sdk.put("marker/", b"", None, &[]).expect_ok("marker");
    sdk.put("implicit/sub/file.txt", b"deep", None, &[])
        .expect_ok("implicit");
    sdk.put("marker/inner.txt", b"inner", None, &[])
        .expect_ok("inner");
    let m = h.mount(MountOptions::default());
    assert_eq!(
        names(&m.mountpoint),
        BTreeSet::from(["marker".into(), "implicit".into()])
    );
    assert!(std::fs::metadata(m.path("marker")).unwrap().is_dir());
    assert!(
        std::fs::metadata(m.path("implicit")).unwrap().is_dir(),
        "bare prefix is a directory"
    );
    assert!(std::fs::metadata(m.path("implicit/sub")).unwrap().is_dir());
    assert_eq!(
        std::fs::read(m.path("implicit/sub/file.txt")).unwrap(),
        b"deep"
    );
    assert_eq!(
        names(&m.path("marker")),
        BTreeSet::from(["inner.txt".into()]),
        "marker itself not listed"
    );
    // An implicit directory can be written into and removed when emptied.
    std::fs::write(m.path("implicit/new.txt"), b"n").unwrap();
    std::fs::remove_file(m.path("implicit/sub/file.txt")).unwrap();
    // (Whether the emptied bare-prefix "sub" survives is the file system's choice.)
    assert!(names(&m.path("implicit")).contains("new.txt"));
    assert_errno(
        "stat removed",
        std::fs::metadata(m.path("implicit/sub/file.txt")),
        &[libc::ENOENT],
    );
}

#[test]
fn big_directory_paginates() {
    let Some(h) = Harness::start("sem-bigdir") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    const N: usize = 1234;
    sdk.run(&["put-many", "big/f", &N.to_string()])
        .expect_ok("put-many");
    let m = h.mount(MountOptions::default());
    let got = names(&m.path("big"));
    assert_eq!(
        got.len(),
        N,
        "readdir of {N} objects returned {}",
        got.len()
    );
    for i in [0, 999, 1000, 1001, N - 1] {
        assert!(got.contains(&format!("f{i:06}")), "f{i:06} missing");
    }
    // ls -l: every entry stats.
    for n in got.iter().take(50) {
        assert_eq!(
            std::fs::metadata(m.path(&format!("big/{n}")))
                .unwrap()
                .len() as usize,
            format!("object {}\n", n[1..].parse::<usize>().unwrap()).len()
        );
    }
    let lists = h
        .cos
        .requests()
        .iter()
        .filter(|e| e.op == "ListObjects")
        .count();
    assert!(
        lists >= 2,
        "a {N}-entry directory needs at least 2 list pages, saw {lists} ListObjects"
    );
}

#[test]
fn external_changes_show_after_stat_cache_expire() {
    let Some(h) = Harness::start("sem-external") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    sdk.put("ext.txt", b"version one", None, &[])
        .expect_ok("put v1");
    sdk.put("doomed.txt", b"x", None, &[])
        .expect_ok("put doomed");
    let m = h.mount(MountOptions::default().opt("stat_cache_expire=1"));
    assert_eq!(std::fs::read(m.path("ext.txt")).unwrap(), b"version one");
    assert!(names(&m.mountpoint).contains("doomed.txt"));
    sdk.put("ext.txt", b"version two, longer", None, &[])
        .expect_ok("put v2");
    sdk.put("born.txt", b"new", None, &[]).expect_ok("put born");
    sdk.delete("doomed.txt").expect_ok("delete doomed");
    let ok = harness::wait_until(Duration::from_secs(10), || {
        std::fs::metadata(m.path("ext.txt"))
            .map(|md| md.len())
            .unwrap_or(0)
            == 19
    });
    assert!(ok, "size of an externally rewritten object never updated");
    assert_eq!(
        std::fs::read(m.path("ext.txt")).unwrap(),
        b"version two, longer",
        "content stale"
    );
    let ok = harness::wait_until(Duration::from_secs(10), || {
        let n = names(&m.mountpoint);
        n.contains("born.txt") && !n.contains("doomed.txt")
    });
    assert!(
        ok,
        "listing never showed the external create/delete: {:?}",
        names(&m.mountpoint)
    );
    assert_eq!(std::fs::read(m.path("born.txt")).unwrap(), b"new");
    assert_errno(
        "stat deleted",
        std::fs::metadata(m.path("doomed.txt")),
        &[libc::ENOENT],
    );
}

#[test]
fn cosfs_metadata_both_ways() {
    let Some(h) = Harness::start("sem-meta") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    // As cosfs writes them: decimal st_mode with type bits, uid, gid, mtime seconds.
    sdk.put(
        "meta.txt",
        b"meta",
        None,
        &[
            ("x-cos-meta-mode", "33184"),
            ("x-cos-meta-uid", "1234"),
            ("x-cos-meta-gid", "4321"),
            ("x-cos-meta-mtime", "1500000000"),
        ],
    )
    .expect_ok("put meta");
    sdk.put("mdir/", b"", None, &[("x-cos-meta-mode", "16872")])
        .expect_ok("put dir marker");
    sdk.put("nometa.txt", b"n", None, &[])
        .expect_ok("put nometa");
    let m = h.mount(MountOptions::default().opt("umask=022"));
    let md = std::fs::metadata(m.path("meta.txt")).unwrap();
    assert_eq!(md.mode(), 0o100640, "mode from x-cos-meta-mode");
    assert_eq!((md.uid(), md.gid()), (1234, 4321), "uid/gid from meta");
    assert_eq!(md.mtime(), 1_500_000_000, "mtime from x-cos-meta-mtime");
    let d = std::fs::metadata(m.path("mdir")).unwrap();
    assert!(d.is_dir());
    assert_eq!(d.mode() & 0o7777, 0o750, "dir mode from marker meta");
    assert!(std::fs::metadata(m.path("nometa.txt")).unwrap().is_file());

    // And what the mount writes, cosfs reads: chmod lands in x-cos-meta-mode (decimal).
    std::fs::write(m.path("mine.txt"), b"m").unwrap();
    std::fs::set_permissions(m.path("mine.txt"), std::fs::Permissions::from_mode(0o604)).unwrap();
    harness::fsops::set_times(&m.path("mine.txt"), (1_700_000_000, 0), (1_700_000_001, 0)).unwrap();
    let head = sdk.head("mine.txt", None).expect("head mine");
    assert_eq!(
        head["x-cos-meta-mode"].as_str(),
        Some("33156"),
        "x-cos-meta-mode after chmod: {head}"
    );
    assert_eq!(
        head["x-cos-meta-mtime"].as_str(),
        Some("1700000001"),
        "x-cos-meta-mtime: {head}"
    );
}

#[test]
fn hard_links_and_xattrs_are_refused() {
    let Some(h) = Harness::start("sem-refusals") else {
        return;
    };
    let m = h.mount(MountOptions::default());
    std::fs::write(m.path("f"), b"f").unwrap();
    assert_errno(
        "link",
        hard_link(&m.path("f"), &m.path("g")),
        &[libc::ENOTSUP],
    );
    assert!(!m.path("g").exists());
    assert_errno(
        "setxattr",
        set_xattr(&m.path("f"), "user.test", b"v"),
        &[libc::ENOTSUP],
    );
    assert_eq!(std::fs::read(m.path("f")).unwrap(), b"f");
}

/// FIFOs, sockets and device nodes are made, typed, kept across a remount and stay inert
/// (`nodev`); a FIFO on the mount works as a pipe (the kernel serves it). A file unlinked
/// while open keeps its content for the open descriptor, and nothing brings it back.
#[test]
fn special_files_and_files_unlinked_while_open() {
    use std::io::{Read, Write};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Some(h) = Harness::start("sem-special") else {
        return;
    };
    let mut m = h.mount(MountOptions::default());
    let c = |name: &str| harness::fsops::cstr(&m.path(name));
    // SAFETY: valid NUL-terminated paths.
    unsafe {
        assert_eq!(libc::mkfifo(c("fifo").as_ptr(), 0o640), 0, "mkfifo");
        let dev = libc::makedev(1, 3);
        assert_eq!(
            libc::mknod(c("null").as_ptr(), libc::S_IFCHR | 0o666, dev),
            0
        );
    }
    drop(std::os::unix::net::UnixListener::bind(m.path("sock")).unwrap());
    let check = |m: &harness::Mount, when: &str| {
        let md = |n: &str| std::fs::symlink_metadata(m.path(n)).unwrap();
        assert!(md("fifo").file_type().is_fifo(), "{when}: fifo");
        assert_eq!(md("fifo").mode() & 0o7777, 0o640, "{when}: fifo mode");
        assert!(md("sock").file_type().is_socket(), "{when}: socket");
        assert!(
            md("null").file_type().is_char_device(),
            "{when}: char device"
        );
        assert_eq!(
            md("null").rdev(),
            libc::makedev(1, 3),
            "{when}: device number"
        );
    };
    check(&m, "after mknod");
    m.remount();
    check(&m, "after a remount");
    // nodev: the device node is a name with a number, not /dev/null.
    let e = std::fs::OpenOptions::new()
        .write(true)
        .open(m.path("null"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    // The FIFO is a working pipe between two openers.
    let path = m.path("fifo");
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        w.write_all(b"through the pipe").unwrap();
    });
    let mut got = String::new();
    std::fs::File::open(m.path("fifo"))
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    writer.join().unwrap();
    assert_eq!(got, "through the pipe");

    let data = harness::pattern(9, 3 * 1024 * 1024);
    std::fs::write(m.path("doomed"), &data).unwrap();
    m.remount();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("doomed"))
        .unwrap();
    std::fs::remove_file(m.path("doomed")).unwrap();
    assert!(!m.path("doomed").exists());
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    let mut back = Vec::new();
    f.read_to_end(&mut back).unwrap();
    assert!(back == data, "an unlinked open file reads its old content");
    f.write_all(b"more").unwrap();
    f.sync_all().unwrap();
    drop(f);
    m.remount();
    assert!(!m.path("doomed").exists(), "nothing uploaded it again");
}

/// chmod/utimens on a file that is still open for writing must survive the upload that
/// happens at close, for small files (single PUT) and multipart-sized ones alike: `cp -a`,
/// `rsync` and `tar -x` set mode and times before closing.
#[test]
fn setattr_while_open_for_write_persists() {
    let Some(h) = Harness::start("sem-setattr-open") else {
        return;
    };
    let mut m = h.mount(MountOptions::default().opt("multipart_size=1"));
    for (name, len) in [
        ("small.bin", 10_000usize),
        ("multipart.bin", 2 * 1024 * 1024 + 7),
    ] {
        use std::io::Write;
        let mut f = std::fs::File::create(m.path(name)).unwrap();
        f.write_all(&harness::pattern(5, len)).unwrap();
        f.set_permissions(std::fs::Permissions::from_mode(0o640))
            .expect("fchmod");
        harness::fsops::set_times(&m.path(name), (1_300_000_000, 0), (1_300_000_001, 0))
            .expect("utimensat");
        drop(f);
        let md = std::fs::metadata(m.path(name)).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.mtime()),
            (0o640, 1_300_000_001),
            "{name} right after close"
        );
    }
    m.remount();
    for name in ["small.bin", "multipart.bin"] {
        let md = std::fs::metadata(m.path(name)).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.mtime()),
            (0o640, 1_300_000_001),
            "{name} after remount: mode/mtime set while open were lost"
        );
    }
}

/// cosfs's `uid=`, `gid=`, `umask=` give the owner and mode of objects without metadata.
#[test]
fn uid_gid_umask_options_apply_to_objects_without_metadata() {
    let Some(h) = Harness::start("sem-owner") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    sdk.put("plain.txt", b"p", None, &[]).expect_ok("put");
    sdk.put("bare/inner.txt", b"i", None, &[])
        .expect_ok("put inner");
    let m = h.mount(
        MountOptions::default()
            .opt("uid=1234")
            .opt("gid=4321")
            .opt("umask=027"),
    );
    let f = std::fs::metadata(m.path("plain.txt")).unwrap();
    assert_eq!((f.uid(), f.gid()), (1234, 4321), "file owner");
    assert_eq!(f.mode() & 0o7777, 0o640, "file mode = 0666 & !umask");
    let d = std::fs::metadata(m.path("bare")).unwrap();
    assert_eq!((d.uid(), d.gid()), (1234, 4321), "dir owner");
    assert_eq!(d.mode() & 0o7777, 0o750, "dir mode = 0777 & !umask");
}

/// POSIX basics backup tools rely on: O_EXCL, rename replacing a file, rename of a
/// directory onto an empty one (and the refusals for non-empty dirs and files).
#[test]
fn posix_basics() {
    let Some(h) = Harness::start("sem-posix") else {
        return;
    };
    let m = h.mount(MountOptions::default());
    std::fs::write(m.path("a"), b"a").unwrap();
    assert_errno(
        "O_EXCL on an existing name",
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.path("a")),
        &[libc::EEXIST],
    );
    std::fs::write(m.path("b"), b"bbbb").unwrap();
    std::fs::rename(m.path("b"), m.path("a")).expect("rename onto an existing file");
    assert_eq!(std::fs::read(m.path("a")).unwrap(), b"bbbb");
    assert_errno("old name", std::fs::metadata(m.path("b")), &[libc::ENOENT]);

    std::fs::create_dir(m.path("src")).unwrap();
    std::fs::write(m.path("src/x"), b"x").unwrap();
    std::fs::create_dir(m.path("empty")).unwrap();
    std::fs::rename(m.path("src"), m.path("empty")).expect("rename dir onto an empty dir");
    assert_eq!(std::fs::read(m.path("empty/x")).unwrap(), b"x");
    std::fs::create_dir(m.path("full")).unwrap();
    std::fs::write(m.path("full/y"), b"y").unwrap();
    assert_errno(
        "rename dir onto a non-empty dir",
        std::fs::rename(m.path("empty"), m.path("full")),
        &[libc::ENOTEMPTY, libc::EEXIST],
    );
    assert_errno(
        "rename dir onto a file",
        std::fs::rename(m.path("full"), m.path("a")),
        &[libc::ENOTDIR],
    );

    // O_TRUNC empties the file whatever the access mode, O_RDONLY included (POSIX leaves
    // that case open; Linux truncates), and the empty content is what the bucket keeps.
    let mut m = m;
    for (name, read, write) in [
        ("t-ro", true, false),
        ("t-wo", false, true),
        ("t-rw", true, true),
    ] {
        std::fs::write(m.path(name), b"content to drop").unwrap();
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(read)
            .write(write)
            .custom_flags(libc::O_TRUNC)
            .open(m.path(name))
            .unwrap_or_else(|e| panic!("{name}: open with O_TRUNC: {e}"));
        assert_eq!(f.metadata().unwrap().len(), 0, "{name}: size after O_TRUNC");
        drop(f);
    }
    m.remount();
    for name in ["t-ro", "t-wo", "t-rw"] {
        assert_eq!(
            std::fs::read(m.path(name)).unwrap(),
            b"",
            "{name} after remount"
        );
    }
}

/// A second handle opened while a writer still has the file open must see what was
/// written through the same mount (POSIX), or be refused; never stale or empty data.
#[test]
fn second_handle_sees_unclosed_writes() {
    let Some(h) = Harness::start("sem-live") else {
        return;
    };
    let m = h.mount(MountOptions::default());
    use std::io::Write;
    std::fs::write(m.path("live"), b"old content").unwrap();
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("live"))
        .unwrap();
    w.write_all(b"visible before close").unwrap();
    w.flush().unwrap();
    let size = std::fs::metadata(m.path("live")).map(|md| md.len());
    match std::fs::read(m.path("live")) {
        Ok(got) => assert_eq!(
            String::from_utf8_lossy(&got),
            "visible before close",
            "a second handle read stale data while the writer is open (stat size {size:?})"
        ),
        Err(e) => eprintln!("second open refused while writing: {e} (acceptable)"),
    }
    drop(w);
    assert_eq!(
        std::fs::read(m.path("live")).unwrap(),
        b"visible before close"
    );

    // The same for a file that does not exist in the bucket yet.
    let mut w = std::fs::File::create(m.path("fresh")).unwrap();
    w.write_all(b"fresh data").unwrap();
    w.flush().unwrap();
    let size = std::fs::metadata(m.path("fresh")).map(|md| md.len());
    match std::fs::read(m.path("fresh")) {
        Ok(got) => assert_eq!(
            String::from_utf8_lossy(&got),
            "fresh data",
            "a second handle read stale data of a new file while the writer is open (stat size {size:?})"
        ),
        Err(e) => eprintln!("second open of a new file refused while writing: {e} (acceptable)"),
    }
    drop(w);
    assert_eq!(std::fs::read(m.path("fresh")).unwrap(), b"fresh data");
}

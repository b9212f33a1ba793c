//! Everyday tools on a real mount (what backup users run, and where other mount tools fail
//! them): rsync (temp file + rename + utimes + chmod) of a tree with special files, hard
//! links and odd names, a second rsync that finds nothing to do, `cp -a`, and `tar`
//! round trips, each on a plain and an SSE-C mount. The
//! tree written through the mount must match the source after a remount: names, contents,
//! modes and file mtimes.

use crate::harness;
use crate::harness::fsops::{diff, set_times, snapshot};
use crate::harness::{pattern, run_ok as run, Harness, Sse};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A small source tree with nested dirs, a multipart-sized file, odd modes and old mtimes.
fn make_source(root: &Path) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    std::fs::write(root.join("top.txt"), b"top\n").unwrap();
    std::fs::write(root.join("a/one.bin"), pattern(81, 70_000)).unwrap();
    std::fs::write(root.join("a/b/two.bin"), pattern(82, 2 * 1024 * 1024 + 99)).unwrap();
    std::fs::write(root.join("a/b/c/three 3.txt"), b"three\n").unwrap();
    std::fs::write(root.join("a/empty"), b"").unwrap();
    std::os::unix::fs::symlink("one.bin", root.join("a/link-to-one")).unwrap();
    std::os::unix::fs::symlink("../top.txt", root.join("a/b/up-link")).unwrap();
    std::fs::set_permissions(
        root.join("a/one.bin"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(root.join("top.txt"), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (i, f) in [
        "top.txt",
        "a/one.bin",
        "a/b/two.bin",
        "a/b/c/three 3.txt",
        "a/empty",
    ]
    .iter()
    .enumerate()
    {
        set_times(
            &root.join(f),
            (1_400_000_000, 0),
            (1_400_000_000 + i as i64 * 1000, 0),
        )
        .unwrap();
    }
}

/// What `rsync -a` (which includes `--specials --devices`) meets in real trees: a FIFO, a
/// socket, a character device, a symlink, two hard-linked files and odd names.
fn add_specials(root: &Path) {
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let fifo = c(&root.join("a/queue.fifo"));
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0, "mkfifo");
    // A socket file stays behind when its listener is dropped.
    drop(std::os::unix::net::UnixListener::bind(root.join("a/control.sock")).unwrap());
    let dev = c(&root.join("a/null.dev"));
    // SAFETY: a valid NUL-terminated path; makedev(1, 3) is /dev/null's number.
    let made = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
    assert_eq!(
        made, 0,
        "mknod of a character device (the tests run as root)"
    );
    std::fs::write(root.join("a/hard-1"), b"linked\n").unwrap();
    std::fs::hard_link(root.join("a/hard-1"), root.join("a/hard-2")).unwrap();
    std::fs::write(root.join("a/odd ü+%#&;name.txt"), b"odd\n").unwrap();
}

fn assert_same(mount_dir: &Path, src: &Path, what: &str) {
    let d = diff(&snapshot(mount_dir, true), &snapshot(src, true));
    assert!(
        d.is_empty(),
        "{what}: mount differs from source:\n{}",
        d.join("\n")
    );
}

#[test]
fn rsync_into_mount_and_again_is_a_no_op() {
    let Some(h) = Harness::start("tools-rsync") else {
        return;
    };
    if !harness::require("rsync", harness::which("rsync").is_some()) {
        return;
    }
    for (prefix, sse) in h.plain_and_ssec() {
        rsync_round(&h, prefix, &sse);
    }
}

/// rsync into a mount under `prefix`: copy, remount, a second run that sends nothing, an
/// edit, `--delete`.
fn rsync_round(h: &Harness, prefix: &str, sse: &Sse) {
    let src = h.path(&format!("{prefix}-src"));
    make_source(&src);
    add_specials(&src);
    let mut m = h.mount_under(prefix, sse);
    let dst = m.path("backup");
    run(Command::new("rsync")
        .arg("-a")
        .arg(format!("{}/", src.display()))
        .arg(&dst));
    assert_same(&dst, &src, "after rsync");
    m.remount();
    let dst = m.path("backup");
    assert_same(&dst, &src, "after rsync + remount");
    // A second run must find every file up to date (size + mtime match).
    let out = run(Command::new("rsync")
        .args(["-a", "--itemize-changes"])
        .arg(format!("{}/", src.display()))
        .arg(&dst));
    let changed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('>') || l.starts_with('c'))
        .collect();
    assert!(changed.is_empty(), "second rsync transferred again:\n{out}");
    // Change one file; rsync replaces it through a temp file + rename.
    std::fs::write(src.join("a/b/c/three 3.txt"), b"three, edited\n").unwrap();
    run(Command::new("rsync")
        .arg("-a")
        .arg(format!("{}/", src.display()))
        .arg(&dst));
    assert_same(&dst, &src, "after incremental rsync");
    // --delete removes what the source lost.
    std::fs::remove_file(src.join("a/empty")).unwrap();
    run(Command::new("rsync")
        .args(["-a", "--delete"])
        .arg(format!("{}/", src.display()))
        .arg(&dst));
    assert_same(&dst, &src, "after rsync --delete");
    drop(m);
    h.assert_uploads_encrypted(prefix, sse);
}

#[test]
fn cp_a_and_tar_round_trip() {
    let Some(h) = Harness::start("tools-cp-tar") else {
        return;
    };
    for (prefix, sse) in h.plain_and_ssec() {
        cp_tar_round(&h, prefix, &sse);
    }
}

/// `cp -a` and `tar -x` into a mount under `prefix`, compared after a remount, and `tar -c`
/// back out of it.
fn cp_tar_round(h: &Harness, prefix: &str, sse: &Sse) {
    let src = h.path(&format!("{prefix}-src"));
    make_source(&src);
    let mut m = h.mount_under(prefix, sse);
    run(Command::new("cp").arg("-a").arg(&src).arg(m.path("copy")));
    // tar out of the local tree, extract into the mount.
    let tarball = h.path(&format!("{prefix}-src.tar"));
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg("."));
    std::fs::create_dir(m.path("untar")).unwrap();
    run(Command::new("tar")
        .arg("-xpf")
        .arg(&tarball)
        .arg("-C")
        .arg(m.path("untar")));
    m.remount();
    assert_same(&m.path("copy"), &src, "cp -a");
    assert_same(&m.path("untar"), &src, "tar -x");
    // And back out: tar from the mount, extract locally, compare.
    let back = h.path(&format!("{prefix}-back"));
    std::fs::create_dir(&back).unwrap();
    let tar2 = h.path(&format!("{prefix}-back.tar"));
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar2)
        .arg("-C")
        .arg(m.path("untar"))
        .arg("."));
    run(Command::new("tar")
        .arg("-xpf")
        .arg(&tar2)
        .arg("-C")
        .arg(&back));
    let d = diff(&snapshot(&back, true), &snapshot(&src, true));
    assert!(
        d.is_empty(),
        "tar out of the mount differs:\n{}",
        d.join("\n")
    );
    drop(m);
    h.assert_uploads_encrypted(prefix, sse);
}

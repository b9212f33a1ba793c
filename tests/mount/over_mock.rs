//! The daemon's mount-and-serve path (`cli::run::serve_mount`, settings resolved from a
//! command line) over the in-memory store, through the kernel: ordinary std::fs calls,
//! errno values, the kernel read-ahead, unmount and the final flush, with the store's
//! request counts to look at. (The rest of tests/mount runs the binary over coslocal.)

use cosmount::cli::args::{self, Command};
use cosmount::cli::run::serve_mount;
use cosmount::cli::settings;
use cosmount::cos::mem::MemStore;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn unmount(p: &Path) {
    for cmd in ["fusermount3", "fusermount"] {
        if std::process::Command::new(cmd)
            .arg("-u")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
    }
    let _ = std::process::Command::new("umount").arg(p).status();
}

#[test]
fn mount_and_use_with_std_fs() {
    if !crate::harness::fuse_available() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let store = Arc::new(MemStore::default());
    store.insert("existing.txt", "hello from the bucket", &[]);
    store.insert("dir/inner", "x", &[]);
    // The daemon's own settings from a command line; the endpoint is never contacted
    // (the client is the store).
    let passwd = dir.path().join("passwd");
    crate::harness::write_private(&passwd, b"AKIDmock0001:mock-secret\n");
    let options = format!(
        "passwd_file={},url=https://127.0.0.1:9,staging_dir={},staging_min_free=0,multipart_size=1,fuse_threads=4",
        passwd.display(),
        dir.path().join("staging").display()
    );
    let Ok(Command::Mount(args)) = args::parse([
        "mock-1250000000".as_ref(),
        mnt.as_os_str(),
        "-f".as_ref(),
        "-o".as_ref(),
        options.as_ref(),
    ]) else {
        panic!("the test's command line parses as a mount");
    };
    let settings = settings::resolve(&args).expect("settings resolve");
    assert_eq!(settings.fs.part_size, 1024 * 1024);
    let (tx, rx) = std::sync::mpsc::channel();
    let client = store.clone();
    let handle = rt.handle().clone();
    let server = std::thread::spawn(move || {
        serve_mount(
            client,
            &settings,
            &handle,
            Box::new(move || {
                let _ = tx.send(());
            }),
        )
    });
    if rx.recv_timeout(Duration::from_secs(10)).is_err() {
        let r = server.join();
        panic!("the mount did not come up: {r:?}");
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // serve() raised the kernel read-ahead of the mount (root only).
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let mp = mnt.to_str().unwrap();
            let dev = info
                .lines()
                .map(|l| l.split(' ').collect::<Vec<_>>())
                .find(|f| f.get(4) == Some(&mp))
                .map(|f| f[2].to_string())
                .unwrap();
            let ra =
                std::fs::read_to_string(format!("/sys/class/bdi/{dev}/read_ahead_kb")).unwrap();
            assert_eq!(ra.trim(), "1024");
        }
        // Read an existing object.
        assert_eq!(
            std::fs::read_to_string(mnt.join("existing.txt")).unwrap(),
            "hello from the bucket"
        );
        // Listing.
        let mut names: Vec<String> = std::fs::read_dir(&mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dir", "existing.txt"]);
        assert!(mnt.join("dir").is_dir());
        // Write a new file (multipart: 3 MiB) and read it back.
        let body: Vec<u8> = (0..3 * 1024 * 1024 + 5).map(|i| (i % 253) as u8).collect();
        std::fs::write(mnt.join("new.bin"), &body).unwrap();
        assert_eq!(&store.object("new.bin").unwrap().data[..], &body[..]);
        assert_eq!(std::fs::read(mnt.join("new.bin")).unwrap(), body);
        // Overwrite in place, append, truncate.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(mnt.join("existing.txt"))
            .unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(b"HELLO").unwrap();
        drop(f);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(mnt.join("existing.txt"))
            .unwrap();
        f.write_all(b"!").unwrap();
        f.sync_all().unwrap();
        drop(f);
        assert_eq!(
            &store.object("existing.txt").unwrap().data[..],
            b"HELLO from the bucket!"
        );
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(mnt.join("existing.txt"))
            .unwrap();
        f.set_len(5).unwrap();
        drop(f);
        let mut s = String::new();
        std::fs::File::open(mnt.join("existing.txt"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "HELLO");
        // mkdir / rename / chmod / symlink / unlink / rmdir.
        std::fs::create_dir(mnt.join("d2")).unwrap();
        assert!(store.object("d2/").is_some());
        std::fs::rename(mnt.join("new.bin"), mnt.join("d2/moved.bin")).unwrap();
        assert!(store.object("new.bin").is_none());
        std::fs::set_permissions(
            mnt.join("d2/moved.bin"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert_eq!(
            store.object("d2/moved.bin").unwrap().user_meta["mode"],
            (0o100600).to_string()
        );
        let m = std::fs::metadata(mnt.join("d2/moved.bin")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
        std::os::unix::fs::symlink("d2/moved.bin", mnt.join("ln")).unwrap();
        assert_eq!(
            std::fs::read_link(mnt.join("ln")).unwrap(),
            Path::new("d2/moved.bin")
        );
        assert_eq!(std::fs::read(mnt.join("ln")).unwrap().len(), body.len());
        let e = std::fs::remove_dir(mnt.join("d2")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
        std::fs::remove_file(mnt.join("d2/moved.bin")).unwrap();
        std::fs::remove_dir(mnt.join("d2")).unwrap();
        assert!(store.object("d2/").is_none());
        // Refusals with named errno values.
        let e = std::fs::hard_link(mnt.join("ln"), mnt.join("hl")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTSUP));
        let e = std::fs::metadata(mnt.join("nope")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // xattrs are refused with ENOTSUP.
        let path = std::ffi::CString::new(
            mnt.join("existing.txt")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let name = std::ffi::CString::new("user.test").unwrap();
        let mut buf = [0u8; 16];
        // SAFETY: valid C strings and buffer.
        let r = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOTSUP)
        );
        // A sequential read through the kernel fetches each byte once, in large requests.
        let big: Vec<u8> = (0..32 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        store.insert("big.bin", big.clone(), &[]);
        store.reset_counts();
        assert!(std::fs::read(mnt.join("big.bin")).unwrap() == big);
        assert_eq!(store.get_bytes(), big.len() as u64, "no byte fetched twice");
        assert!(store.count(cosmount::cos::CosOp::GetObject) < 32);
        // close() reports the upload: the object exists once close returns.
        let mut f = std::fs::File::create(mnt.join("closed.txt")).unwrap();
        f.write_all(b"closed").unwrap();
        drop(f);
        assert_eq!(&store.object("closed.txt").unwrap().data[..], b"closed");
    }));
    unmount(&mnt);
    let served = server.join().unwrap();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
    served.unwrap();
}

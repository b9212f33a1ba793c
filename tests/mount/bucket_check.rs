//! The start-up HEAD Bucket against a real (local) COS server, without mounting: a
//! wrong bucket, wrong keys and an untrusted certificate each end the command with the
//! documented exit code and a message that says what to fix. (No FUSE needed: every
//! attempt ends before the mount.)

use crate::harness::{Coslocal, CoslocalOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BUCKET: &str = "clilocal-1250000000";

fn passwd(dir: &Path, line: &str) -> PathBuf {
    let p = dir.join("pw");
    std::fs::write(&p, line).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn cosmount(dir: &Path, bucket: &str, opts: &str) -> (i32, String) {
    std::fs::create_dir_all(dir.join("mnt")).expect("mkdir");
    let out = Command::new(env!("CARGO_BIN_EXE_cosmount"))
        .arg(bucket)
        .arg(dir.join("mnt"))
        .arg("-o")
        .arg(opts)
        .env_clear()
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run cosmount");
    let code = out.status.code().unwrap_or(-1);
    if code == 0 {
        // Unexpectedly mounted: do not leave it behind when the assertion fails.
        let _ = Command::new("umount").arg(dir.join("mnt")).status();
    }
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn wrong_bucket_wrong_keys_untrusted_tls() {
    let d = tempfile::tempdir().expect("tempdir");
    let cos = Coslocal::start(
        d.path(),
        CoslocalOptions {
            bucket: BUCKET.into(),
            ..CoslocalOptions::default()
        },
    );
    let ca = &cos.ca;
    let good = passwd(d.path(), &format!("{}:{}\n", cos.secret_id, cos.secret_key));
    let base = format!(
        "url={},passwd_file={},retries=0",
        cos.endpoint,
        good.display()
    );

    let (code, err) = cosmount(
        d.path(),
        "otherbucket-1250000000",
        // An IP endpoint is addressed without the bucket; path style names it.
        &format!("{base},ca_file={},use_path_request_style", ca.display()),
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("bucket otherbucket-1250000000 does not exist"),
        "{err}"
    );

    let (code, err) = cosmount(d.path(), BUCKET, &base);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("cannot reach") && err.contains("ca_file="),
        "{err}"
    );

    let bad = passwd(
        d.path(),
        &format!("{BUCKET}:{}:WrongSecretKey\n", cos.secret_id),
    );
    let (code, err) = cosmount(
        d.path(),
        BUCKET,
        &format!(
            "url={},passwd_file={},ca_file={}",
            cos.endpoint,
            bad.display(),
            ca.display()
        ),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("credentials rejected by COS"), "{err}");
    assert!(!err.contains("WrongSecretKey"), "{err}");
}

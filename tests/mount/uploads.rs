//! What a crash leaves behind: a daemon killed (SIGKILL) in the middle of a large write
//! leaves an incomplete multipart upload whose parts are billed; `cosmount
//! --incomplete-mpu-list` shows it (with its parts and bytes), `--incomplete-mpu-abort=AGE`
//! keeps it while it is younger, `=all` aborts it, and a mount with
//! `incomplete_mpu_abort=all` aborts the orphans under its prefix by itself.

use crate::harness::{self, pattern, Harness, Mount, MountOptions};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// Runs the utility mode against the mount's bucket and options: (exit code, stdout, stderr).
fn utility(m: &Mount, flag: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cosmount"))
        .arg(flag)
        .arg(m.source())
        .arg("-o")
        .arg(m.option_string())
        .stdin(Stdio::null())
        .output()
        .expect("run cosmount");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Upload lines of `--incomplete-mpu-list` (after its header).
fn listed(m: &Mount) -> Vec<String> {
    let (code, out, err) = utility(m, "--incomplete-mpu-list");
    assert_eq!(code, 0, "list: {err}");
    assert!(
        out.starts_with("INITIATED\tAGE\tPARTS\tBYTES\tKEY\tUPLOAD_ID\n"),
        "{out}"
    );
    out.lines().skip(1).map(str::to_string).collect()
}

/// Starts a 3 MiB write with 1 MiB parts and kills the daemon before the close, once at
/// least one part is stored.
fn orphan(h: &Harness, m: &mut Mount, name: &str) {
    let mut f = std::fs::File::create(m.path(name)).unwrap();
    f.write_all(&pattern(3, 3 * MIB)).unwrap();
    let stored = harness::wait_until(Duration::from_secs(20), || {
        h.cos
            .requests()
            .iter()
            .any(|r| r.op == "UploadPart" && r.key.ends_with(name) && r.status == 200)
    });
    assert!(stored, "no part of {name} was uploaded");
    m.signal(libc::SIGKILL);
    let _ = m.wait_exit(Duration::from_secs(10));
    drop(f);
}

#[test]
fn orphaned_uploads_are_listed_and_aborted() {
    let Some(h) = Harness::start("mpu-orphans") else {
        return;
    };
    let opts = || {
        let mut o = MountOptions::default().opt("multipart_size=1");
        o.prefix = Some("host1".into());
        o
    };
    let mut m = h.mount(opts());
    orphan(&h, &mut m, "big.tar");
    let lines = listed(&m);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let cols: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(cols[4], "host1/big.tar", "{cols:?}");
    let parts: u64 = cols[2].parse().unwrap();
    let bytes: u64 = cols[3].parse().unwrap();
    assert!(parts >= 1 && bytes >= MIB as u64, "{cols:?}");

    // Younger than an hour: kept.
    let (code, _, err) = utility(&m, "--incomplete-mpu-abort=1h");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("0 aborted") && err.contains("1 younger"),
        "{err}"
    );
    assert_eq!(listed(&m).len(), 1);
    let (code, out, err) = utility(&m, "--incomplete-mpu-abort=all");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("aborted host1/big.tar"), "{out}");
    assert!(listed(&m).is_empty());

    // A mount with incomplete_mpu_abort=all cleans up after its predecessor's crash.
    m.remount();
    orphan(&h, &mut m, "again.tar");
    assert_eq!(listed(&m).len(), 1);
    m.remount_with(|o| o.options.push("incomplete_mpu_abort=all".into()));
    let cleaned = harness::wait_until(Duration::from_secs(20), || listed(&m).is_empty());
    assert!(
        cleaned,
        "the mount did not abort the orphan: {:?}",
        listed(&m)
    );
    std::fs::write(m.path("after.txt"), b"fine").unwrap();
    assert_eq!(std::fs::read(m.path("after.txt")).unwrap(), b"fine");
}

//! The `cosmount` binary's error paths that need no mount: each must exit quickly with
//! the documented code and a message that names the problem (and never a secret).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "clitest-1250000000";

/// A scratch directory with a mountpoint and a valid 0600 passwd file.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("mnt")).expect("mkdir mnt");
        std::fs::create_dir(dir.path().join("home")).expect("mkdir home");
        let s = Scratch { dir };
        s.file("pw", &format!("{BUCKET}:AKIDcli:CliSecretKey\n"), 0o600);
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn file(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    fn mnt(&self) -> String {
        self.path("mnt").display().to_string()
    }

    fn pw_opt(&self) -> String {
        format!("passwd_file={}", self.path("pw").display())
    }

    /// Runs cosmount in the foreground-independent way a user would, with an isolated
    /// environment (no inherited credentials, HOME in the scratch dir).
    fn run(&self, args: &[&str]) -> (i32, String, Duration) {
        let start = Instant::now();
        let out: Output = Command::new(env!("CARGO_BIN_EXE_cosmount"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", self.path("home"))
            .stdin(Stdio::null())
            .output()
            .expect("run cosmount");
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        (out.status.code().unwrap_or(-1), text, start.elapsed())
    }
}

#[test]
fn help_and_version() {
    let s = Scratch::new();
    let (code, out, _) = s.run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("EXIT CODES") && out.contains("passwd_file=FILE"),
        "{out}"
    );
    let (code, out, _) = s.run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("cosmount "), "{out}");
}

#[test]
fn usage_errors_exit_1() {
    let s = Scratch::new();
    let (code, out, _) = s.run(&[BUCKET, &s.mnt(), "-o", "allow_other,foo"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cosmount: unknown option 'foo'"), "{out}");
    let (code, out, _) = s.run(&[BUCKET]);
    assert_eq!(code, 1);
    assert!(out.contains("missing MOUNTPOINT"), "{out}");
    let (code, out, _) = s.run(&["nobucketappid", &s.mnt()]);
    assert_eq!(code, 1);
    assert!(out.contains("BUCKET-APPID"), "{out}");
    let (code, out, _) = s.run(&[BUCKET, &s.mnt(), "-ouid=abc"]);
    assert_eq!(code, 1);
    assert!(out.contains("'uid'"), "{out}");
}

#[test]
fn missing_or_bad_mountpoint() {
    let s = Scratch::new();
    let missing = s.path("nope").display().to_string();
    let (code, out, _) = s.run(&[BUCKET, &missing, "-o", &s.pw_opt()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("does not exist") && out.contains(&missing),
        "{out}"
    );
    let file = s.file("plain", "x", 0o600).display().to_string();
    let (code, out, _) = s.run(&[BUCKET, &file, "-o", &s.pw_opt()]);
    assert_eq!(code, 1);
    assert!(out.contains("not a directory"), "{out}");
}

#[test]
fn passwd_file_readable_by_others_refused() {
    let s = Scratch::new();
    let pw = s.file("loose", &format!("{BUCKET}:AKID:SEKRITKEY\n"), 0o644);
    let (code, out, _) = s.run(&[
        BUCKET,
        &s.mnt(),
        "-o",
        &format!("passwd_file={}", pw.display()),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("accessible by other users"), "{out}");
    assert!(
        out.contains(&format!("chmod 600 {}", pw.display())),
        "{out}"
    );
    assert!(!out.contains("SEKRITKEY"));
}

#[test]
fn home_passwd_file_used_and_checked() {
    let s = Scratch::new();
    s.file("home/.passwd-cosfs", "AKID:key\n", 0o640);
    let (code, out, _) = s.run(&[BUCKET, &s.mnt()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(".passwd-cosfs is accessible by its group"),
        "{out}"
    );
}

#[test]
fn no_credentials_at_all() {
    let s = Scratch::new();
    let (code, out, _) = s.run(&[BUCKET, &s.mnt(), "-o", "url=https://127.0.0.1:1"]);
    // /etc/passwd-cosfs could exist on a developer machine; only assert when it does not.
    if !Path::new("/etc/passwd-cosfs").exists() {
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("no COS credentials found"), "{out}");
    }
}

#[test]
fn secrets_on_the_command_line_refused() {
    let s = Scratch::new();
    for opt in [
        "secretAccessKey=SEKRIT",
        "sse_c_key=SEKRIT",
        "use_sse=custom:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    ] {
        let (code, out, _) = s.run(&[BUCKET, &s.mnt(), "-o", opt]);
        assert_eq!(code, 2, "{opt}: {out}");
        assert!(out.contains("0600"), "{out}");
        assert!(
            !out.contains("SEKRIT") && !out.contains("MDEyMzQ1"),
            "{out}"
        );
    }
    let (code, out, _) = s.run(&[BUCKET, &s.mnt(), "-o", "use_sse=custom"]);
    assert_eq!(code, 1);
    assert!(out.contains("key file") && out.contains("0600"), "{out}");
}

#[test]
fn ssec_over_http_refused() {
    let s = Scratch::new();
    let keys = s.file("keys", "0123456789abcdef0123456789abcdef\n", 0o600);
    let (code, out, _) = s.run(&[
        BUCKET,
        &s.mnt(),
        "-o",
        &format!(
            "url=http://127.0.0.1:1,{},use_sse=custom:{}",
            s.pw_opt(),
            keys.display()
        ),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("SSE-C requires HTTPS"), "{out}");
}

/// A second encryption option that asks for something else is refused, naming both,
/// even across separate -o arguments; SSE-C must never silently become SSE-COS.
#[test]
fn conflicting_sse_options_refused() {
    let s = Scratch::new();
    let keys = s.file("keys", "0123456789abcdef0123456789abcdef\n", 0o600);
    let custom = format!("use_sse=custom:{}", keys.display());
    let (code, out, took) = s.run(&[
        BUCKET,
        &s.mnt(),
        "-o",
        &format!("url=https://127.0.0.1:1,{},{custom}", s.pw_opt()),
        "-o",
        "use_sse=1",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("conflicting encryption options")
            && out.contains(&format!("'{custom}'"))
            && out.contains("'use_sse=1'"),
        "{out}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let (code, out, _) = s.run(&[
        BUCKET,
        &s.mnt(),
        "-o",
        &format!(
            "url=https://127.0.0.1:1,{},load_sse_c={},use_sse=kmsid:x",
            s.pw_opt(),
            keys.display()
        ),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("'load_sse_c={}'", keys.display()))
            && out.contains("'use_sse=kmsid:x'"),
        "{out}"
    );
}

#[test]
fn ssec_key_file_mode_checked() {
    let s = Scratch::new();
    let keys = s.file("keys", "0123456789abcdef0123456789abcdef\n", 0o644);
    let (code, out, _) = s.run(&[
        BUCKET,
        &s.mnt(),
        "-o",
        &format!(
            "url=https://127.0.0.1:1,{},load_sse_c={}",
            s.pw_opt(),
            keys.display()
        ),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("must be readable by its owner only") && out.contains("chmod 600"),
        "{out}"
    );
}

#[test]
fn unreachable_endpoint_exits_3_quickly() {
    let s = Scratch::new();
    for fg in [false, true] {
        let mut args = vec![
            BUCKET.to_string(),
            s.mnt(),
            "-o".to_string(),
            format!(
                "url=https://127.0.0.1:1,{},retries=0,connect_timeout=2",
                s.pw_opt()
            ),
        ];
        if fg {
            args.push("-f".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, took) = s.run(&args);
        assert_eq!(code, 3, "foreground={fg}: {out}");
        assert!(out.contains("cannot reach https://127.0.0.1:1"), "{out}");
        assert!(took < Duration::from_secs(20), "took {took:?}");
    }
}

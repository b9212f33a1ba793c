//! Where the SecretId/SecretKey come from, in cosfs's order:
//!
//! 1. `-o passwd_file=FILE`;
//! 2. `COSACCESSKEYID` + `COSSECRETACCESSKEY` (both or neither), with cosmount's optional
//!    `COSSESSIONTOKEN` for temporary keys;
//! 3. `COS_CREDENTIAL_FILE=FILE` (cosfs);
//! 4. `TENCENTCLOUD_SECRET_ID` + `TENCENTCLOUD_SECRET_KEY` (both or neither), optional
//!    `TENCENTCLOUD_SESSION_TOKEN` (the Tencent Cloud SDK variables; the token name is
//!    cosmount's choice);
//! 5. `$HOME/.passwd-cosfs`, if it exists;
//! 6. `/etc/passwd-cosfs`, if it exists.
//!
//! The first source present decides: a file that exists but has no usable line is an
//! error, not a reason to look further, so a typo never silently picks other keys.
//! Secrets are never put in messages; the `origin` names only the source.

use super::error::CliError;
use super::passwd;
use crate::cos::config::Credentials;
use crate::cos::credentials::{CredentialSource, Fetch, Fresh};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// Every environment variable that may hold a secret; `scrub_environment` removes them
/// so processes we spawn (fusermount3) do not inherit them.
pub const SECRET_ENV_VARS: &[&str] = &[
    "COSSECRETACCESSKEY",
    "COSSESSIONTOKEN",
    "TENCENTCLOUD_SECRET_KEY",
    "TENCENTCLOUD_SESSION_TOKEN",
];

/// Credentials and where they were found.
#[derive(Debug, Clone)]
pub struct Found {
    pub credentials: Credentials,
    /// Human-readable source, e.g. `passwd file /etc/passwd-cosfs`.
    pub origin: String,
    /// Expiry of STS credentials from an STS-format file.
    pub expires: Option<DateTime<Utc>>,
    /// The password file they came from (absolute), re-read to refresh them.
    pub file: Option<PathBuf>,
}

/// The inputs of the lookup, injectable for tests.
pub struct Lookup<'a> {
    pub bucket: &'a str,
    pub passwd_file: Option<&'a Path>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// `$HOME` (or the passwd entry's home directory).
    pub home: Option<PathBuf>,
    pub etc_file: &'a Path,
    pub now: DateTime<Utc>,
}

/// Runs the lookup order against the real environment.
pub fn find_credentials(bucket: &str, passwd_file: Option<&Path>) -> Result<Found, CliError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    find(&Lookup {
        bucket,
        passwd_file,
        env: &env,
        home: home_dir(),
        etc_file: Path::new(passwd::ETC_PASSWD_COSFS),
        now: Utc::now(),
    })
}

/// Applies the lookup order.
pub fn find(l: &Lookup<'_>) -> Result<Found, CliError> {
    let from_file = |p: &Path| -> Result<Found, CliError> {
        let fc = passwd::load(p, l.bucket, l.now)?;
        Ok(Found {
            credentials: fc.credentials,
            origin: format!("passwd file {}", p.display()),
            expires: fc.expires,
            file: Some(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())),
        })
    };
    if let Some(p) = l.passwd_file {
        return from_file(p);
    }
    if let Some(c) = env_pair(
        l.env,
        "COSACCESSKEYID",
        "COSSECRETACCESSKEY",
        "COSSESSIONTOKEN",
    )? {
        return Ok(c);
    }
    if let Some(p) = (l.env)("COS_CREDENTIAL_FILE") {
        return from_file(Path::new(&p));
    }
    if let Some(c) = env_pair(
        l.env,
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
        "TENCENTCLOUD_SESSION_TOKEN",
    )? {
        return Ok(c);
    }
    let home_file = l.home.as_ref().map(|h| h.join(".passwd-cosfs"));
    for p in home_file.iter().map(PathBuf::as_path).chain([l.etc_file]) {
        match std::fs::metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            _ => return from_file(p),
        }
    }
    Err(CliError::credentials(format!(
        "no COS credentials found for bucket {}: give -o passwd_file=FILE, set COSACCESSKEYID and \
         COSSECRETACCESSKEY, or create {} or {} (lines BUCKET-APPID:SecretId:SecretKey, mode 0600)",
        l.bucket,
        home_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.passwd-cosfs".into()),
        l.etc_file.display()
    )))
}

fn env_pair(
    env: &dyn Fn(&str) -> Option<String>,
    id_var: &str,
    key_var: &str,
    token_var: &str,
) -> Result<Option<Found>, CliError> {
    match (env(id_var), env(key_var)) {
        (None, None) => Ok(None),
        (Some(id), Some(key)) => Ok(Some(Found {
            credentials: Credentials::new(id, key, env(token_var)),
            origin: format!("environment variables {id_var}/{key_var}"),
            expires: None,
            file: None,
        })),
        _ => Err(CliError::credentials(format!(
            "set both {id_var} and {key_var}, or neither"
        ))),
    }
}

/// Removes secret-bearing variables from our environment, first overwriting their values
/// in place: /proc/PID/environ shows the process's original environment block, which
/// unsetting alone leaves intact, and fusermount3 (spawned by the FUSE library) must not
/// inherit them. Call while single-threaded (before the fork and any runtime).
pub fn scrub_environment() {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: single-threaded by contract, so nothing reads or changes the environment
    // concurrently; every entry of `environ` is a NUL-terminated string that we only
    // overwrite up to its terminator, keeping the `NAME=` prefix so unsetenv still
    // finds it.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let entry = *p;
            let bytes = std::ffi::CStr::from_ptr(entry).to_bytes();
            for v in SECRET_ENV_VARS {
                let name = v.as_bytes();
                if bytes.len() > name.len() && bytes.starts_with(name) && bytes[name.len()] == b'='
                {
                    for i in name.len() + 1..bytes.len() {
                        std::ptr::write_volatile(entry.add(i), b'*' as libc::c_char);
                    }
                }
            }
            p = p.add(1);
        }
    }
    for v in SECRET_ENV_VARS {
        if std::env::var_os(v).is_some() {
            std::env::remove_var(v);
        }
    }
}

/// `$HOME`, else the home directory of the current user from the passwd database (mount
/// helpers and systemd units may run without `HOME`).
pub fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter; getpwuid_r writes only into `pw`,
    // `buf` (of the length we pass) and `result`.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            rustix::process::getuid().as_raw(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pw.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(pw.pw_dir);
        use std::os::unix::ffi::OsStrExt;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
    }
}

/// Refreshed credentials from a password file: read again (same bucket, same rules) when
/// STS credentials in it are due and on SIGHUP, so whatever keeps the file fresh (an STS
/// agent, an admin rotating keys) reaches a mount without a remount.
#[derive(Debug)]
pub struct PasswdFileSource {
    pub path: PathBuf,
    pub bucket: String,
}

impl CredentialSource for PasswdFileSource {
    fn describe(&self) -> String {
        format!("passwd file {}", self.path.display())
    }

    fn fetch(&self) -> Fetch {
        let r = passwd::load(&self.path, &self.bucket, Utc::now()).map(|fc| Fresh {
            credentials: fc.credentials,
            expires: fc.expires.map(std::time::SystemTime::from),
        });
        Box::pin(async move { r.map_err(|e| e.message) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::ExitCode;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    const B: &str = "bkt-1250000000";

    struct Fixture {
        dir: tempfile::TempDir,
        env: HashMap<String, String>,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir(dir.path().join("home")).expect("mkdir");
            Fixture {
                dir,
                env: HashMap::new(),
            }
        }
        fn write(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
            let p = self.dir.path().join(rel);
            std::fs::write(&p, text).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            p
        }
        fn find(&self, passwd_file: Option<&Path>) -> Result<Found, CliError> {
            let env = |k: &str| self.env.get(k).cloned();
            find(&Lookup {
                bucket: B,
                passwd_file,
                env: &env,
                home: Some(self.dir.path().join("home")),
                etc_file: &self.dir.path().join("etc-passwd-cosfs"),
                now: Utc::now(),
            })
        }
        fn id(&self, passwd_file: Option<&Path>) -> String {
            self.find(passwd_file)
                .unwrap_or_else(|e| panic!("{}", e.message))
                .credentials
                .secret_id
        }
    }

    #[test]
    fn order_is_cosfs_order() {
        let mut f = Fixture::new();
        f.write("etc-passwd-cosfs", "ETC:k\n", 0o600);
        assert_eq!(f.id(None), "ETC");
        f.write("home/.passwd-cosfs", "HOME:k\n", 0o600);
        assert_eq!(f.id(None), "HOME");
        f.env.insert("TENCENTCLOUD_SECRET_ID".into(), "TC".into());
        f.env.insert("TENCENTCLOUD_SECRET_KEY".into(), "k".into());
        assert_eq!(f.id(None), "TC");
        let cf = f.write("credfile", "CF:k\n", 0o600);
        f.env
            .insert("COS_CREDENTIAL_FILE".into(), cf.display().to_string());
        assert_eq!(f.id(None), "CF");
        f.env.insert("COSACCESSKEYID".into(), "ENV".into());
        f.env.insert("COSSECRETACCESSKEY".into(), "k".into());
        let found = f.find(None).expect("env");
        assert_eq!(found.credentials.secret_id, "ENV");
        assert_eq!(
            found.origin,
            "environment variables COSACCESSKEYID/COSSECRETACCESSKEY"
        );
        let pf = f.write("explicit", "EXPLICIT:k\n", 0o600);
        assert_eq!(f.id(Some(&pf)), "EXPLICIT");
    }

    #[test]
    fn env_token_and_pairs() {
        let mut f = Fixture::new();
        f.env.insert("COSACCESSKEYID".into(), "A".into());
        let e = f.find(None).expect_err("half a pair");
        assert_eq!(e.code, ExitCode::Credentials);
        assert!(e
            .message
            .contains("both COSACCESSKEYID and COSSECRETACCESSKEY"));
        f.env.insert("COSSECRETACCESSKEY".into(), "K".into());
        f.env.insert("COSSESSIONTOKEN".into(), "T".into());
        assert_eq!(f.find(None).expect("ok").credentials.token(), Some("T"));
    }

    #[test]
    fn existing_file_decides() {
        let f = Fixture::new();
        f.write("etc-passwd-cosfs", "ETC:k\n", 0o600);
        f.write("home/.passwd-cosfs", "other-1:A:B\n", 0o600);
        let e = f.find(None).expect_err("home file without a matching line");
        assert!(
            e.message.contains(".passwd-cosfs has no line"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_home_file_mode_is_reported() {
        let f = Fixture::new();
        let p = f.write("home/.passwd-cosfs", "A:k\n", 0o644);
        let e = f.find(None).expect_err("world-readable");
        assert!(
            e.message.contains(&format!("chmod 600 {}", p.display())),
            "{}",
            e.message
        );
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let f = Fixture::new();
        f.write("etc-passwd-cosfs", "ETC:k\n", 0o600);
        let e = f
            .find(Some(Path::new("/nonexistent/pw")))
            .expect_err("missing");
        assert!(e.message.contains("/nonexistent/pw"));
    }

    #[test]
    fn nothing_found() {
        let f = Fixture::new();
        let e = f.find(None).expect_err("none");
        assert_eq!(e.code, ExitCode::Credentials);
        assert!(
            e.message.contains("no COS credentials found") && e.message.contains("passwd_file")
        );
    }
}

//! The official COS Python SDK as a second client of the bucket, through
//! `tests/interop/sdk_cli.py`. Connection secrets go through the environment, SSE-C keys
//! through files, never through argv.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What one SDK call did.
#[derive(Debug)]
pub struct SdkResult {
    pub ok: bool,
    /// 2 = the service refused (stderr `refused status=N code=C`).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl SdkResult {
    fn from(o: Output) -> SdkResult {
        SdkResult {
            ok: o.status.success(),
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics with the SDK's own words unless the call succeeded.
    pub fn expect_ok(self, what: &str) -> SdkResult {
        assert!(
            self.ok,
            "SDK {what} failed (exit {}): {}",
            self.code, self.stderr
        );
        self
    }

    /// The HTTP status of a refusal, if the service refused.
    pub fn refused_status(&self) -> Option<u16> {
        self.stderr
            .split_whitespace()
            .find_map(|w| w.strip_prefix("status="))
            .and_then(|s| s.parse().ok())
    }
}

/// Handle on the SDK for one coslocal.
pub struct Sdk {
    python: PathBuf,
    script: PathBuf,
    env: Vec<(String, String)>,
}

/// The Python that has the SDK: env `COSMOUNT_PYTHON`, else `<repo>/.venv/bin/python`.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COSMOUNT_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let p = super::repo_root().join(".venv/bin/python");
    p.exists().then_some(p)
}

impl Sdk {
    /// `None` (after a skip message, or a panic in CI) when the venv is missing.
    pub fn new(cos: &super::Coslocal) -> Option<Sdk> {
        let py = python();
        if !super::require(
            "the Python SDK venv (.venv/bin/python; run scripts/setup-python.sh)",
            py.is_some(),
        ) {
            return None;
        }
        Some(Sdk {
            python: py?,
            script: super::repo_root().join("tests/interop/sdk_cli.py"),
            env: vec![
                ("COSLOCAL_ENDPOINT".into(), cos.endpoint.clone()),
                ("COSLOCAL_BUCKET".into(), cos.bucket.clone()),
                ("COSLOCAL_REGION".into(), cos.region.clone()),
                ("COSLOCAL_SECRET_ID".into(), cos.secret_id.clone()),
                ("COSLOCAL_SECRET_KEY".into(), cos.secret_key.clone()),
                ("COSLOCAL_CA".into(), cos.ca.display().to_string()),
            ],
        })
    }

    /// Runs `sdk_cli.py ARGS...`.
    pub fn run(&self, args: &[&str]) -> SdkResult {
        let out = Command::new(&self.python)
            .arg(&self.script)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run python SDK");
        SdkResult::from(out)
    }

    fn with_key<'a>(mut args: Vec<&'a str>, key_file: Option<&'a Path>) -> Vec<&'a str> {
        if let Some(k) = key_file {
            args.push("--sse-c-key-file");
            args.push(k.to_str().expect("utf-8 key path"));
        }
        args
    }

    /// Uploads `data` as `key`, SSE-C with the first key of `key_file` if given, plus
    /// `x-cos-meta-*` pairs.
    pub fn put(
        &self,
        key: &str,
        data: &[u8],
        key_file: Option<&Path>,
        meta: &[(&str, &str)],
    ) -> SdkResult {
        let tmp = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(tmp.path(), data).expect("write temp");
        let metas: Vec<String> = meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["put", key, tmp.path().to_str().expect("utf-8")];
        for m in &metas {
            args.push("--meta");
            args.push(m);
        }
        self.run(&Sdk::with_key(args, key_file))
    }

    /// Downloads `key`; `Ok(bytes)` or `Err(result)` when refused or failed.
    pub fn get(&self, key: &str, key_file: Option<&Path>) -> Result<Vec<u8>, SdkResult> {
        let tmp = tempfile::NamedTempFile::new().expect("temp file");
        let r = self.run(&Sdk::with_key(
            vec!["get", key, tmp.path().to_str().expect("utf-8")],
            key_file,
        ));
        if r.ok {
            Ok(std::fs::read(tmp.path()).expect("read download"))
        } else {
            Err(r)
        }
    }

    /// HEAD `key`: the response headers (lowercase names) as JSON.
    pub fn head(&self, key: &str, key_file: Option<&Path>) -> Result<serde_json::Value, SdkResult> {
        let r = self.run(&Sdk::with_key(vec!["head", key], key_file));
        if r.ok {
            Ok(serde_json::from_str(&r.stdout).expect("head JSON"))
        } else {
            Err(r)
        }
    }

    pub fn delete(&self, key: &str) -> SdkResult {
        self.run(&["delete", key])
    }

    /// Multipart uploads in progress under `prefix`: (key, upload id).
    pub fn uploads(&self, prefix: &str) -> Vec<(String, String)> {
        let r = self
            .run(&["uploads", prefix])
            .expect_ok("list multipart uploads");
        serde_json::from_str(&r.stdout).expect("uploads JSON")
    }

    /// Every key under `prefix`.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let r = self.run(&["list", prefix]).expect_ok("list");
        serde_json::from_str(&r.stdout).expect("list JSON")
    }
}

//! Interop of `CosHttpClient` with the official COS Python SDK (cos-python-sdk-v5), both
//! against coslocal in-process: SSE-C objects the SDK uploads are read by our client with
//! the same key (also as the older key of a history) and refused without it; objects our
//! client uploads (single PUT and multipart) are read by the SDK with the key and refused
//! without it or with another key.
//!
//! Needs the repository's .venv (scripts/setup-python.sh), or a python with qcloud_cos in
//! $COSMOUNT_PYTHON. Without it the test is skipped with a message, except when the
//! environment variable CI is set: then it fails.

use crate::local::*;
use base64::Engine;
use bytes::Bytes;
use cosmount::cos::http::CosHttpClient;
use cosmount::cos::sse::{CustomerKey, SsePolicy};
use cosmount::cos::{CosErrorKind, Encryption, ObjectClient, PutOptions};
use std::path::{Path, PathBuf};

const MIB: usize = 1024 * 1024;

/// The venv's python (or $COSMOUNT_PYTHON), if it has the SDK; `None` means skip
/// (outside CI).
fn python() -> Option<PathBuf> {
    let py = std::env::var_os("COSMOUNT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = std::process::Command::new(&py)
        .args(["-c", "import qcloud_cos"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(py);
    }
    let why = format!(
        "{} with qcloud_cos is missing: run scripts/setup-python.sh",
        py.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{why} (CI is set, so this is a failure)");
    }
    eprintln!("SKIPPED client_sdk_interop: {why}");
    None
}

struct Sdk<'a> {
    py: PathBuf,
    local: &'a Local,
}

/// Result of one SDK call: exit code, stdout, stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Sdk<'_> {
    async fn run(&self, args: &[&str], key_file: Option<&Path>) -> Run {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/sdk_cli.py");
        let mut cmd = tokio::process::Command::new(&self.py);
        cmd.arg(script).args(args);
        if let Some(k) = key_file {
            cmd.arg("--sse-c-key-file").arg(k);
        }
        // Secrets through the environment, never argv.
        cmd.env("COSLOCAL_ENDPOINT", self.local.handle.endpoint())
            .env("COSLOCAL_BUCKET", BUCKET)
            .env("COSLOCAL_REGION", REGION)
            .env("COSLOCAL_SECRET_ID", SECRET_ID)
            .env("COSLOCAL_SECRET_KEY", SECRET_KEY)
            .env("COSLOCAL_CA", &self.local.ca);
        let out = cmd.output().await.expect("run sdk_cli.py");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn put(&self, key: &str, data: &[u8], key_file: Option<&Path>) {
        let src = self.local.dir.path().join("sdk-put.bin");
        std::fs::write(&src, data).expect("write source");
        let r = self
            .run(&["put", key, src.to_str().expect("utf-8 path")], key_file)
            .await;
        assert_eq!(r.code, 0, "SDK put {key}: {}{}", r.stdout, r.stderr);
    }

    /// The object's bytes, or the run when the SDK failed.
    async fn get(&self, key: &str, key_file: Option<&Path>) -> Result<Vec<u8>, Run> {
        let dst = self.local.dir.path().join("sdk-get.bin");
        let _ = std::fs::remove_file(&dst);
        let r = self
            .run(&["get", key, dst.to_str().expect("utf-8 path")], key_file)
            .await;
        if r.code == 0 {
            Ok(std::fs::read(&dst).expect("read download"))
        } else {
            Err(r)
        }
    }
}

fn key_file(dir: &Path, name: &str, raw: &[u8; 32]) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .expect("key file");
    f.write_all(
        base64::engine::general_purpose::STANDARD
            .encode(raw)
            .as_bytes(),
    )
    .expect("write key");
    p
}

async fn read_all(c: &CosHttpClient, key: &str) -> Result<Vec<u8>, cosmount::cos::CosError> {
    Ok(c.get(key, None).await?.collect().await?.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssec_objects_cross_between_the_sdk_and_our_client() {
    let Some(py) = python() else { return };
    let local = Local::start().await;
    let sdk = Sdk { py, local: &local };
    let ka = key_file(local.dir.path(), "key-a", RAW_KEY_A);
    let kb = key_file(local.dir.path(), "key-b", RAW_KEY_B);

    // SDK → our client.
    let data = pattern(200_000, 11);
    sdk.put("interop/from-sdk", &data, Some(&ka)).await;
    // Key A as the *older* key of a history [B, A].
    let history = local.client(ssec(vec![key_b(), key_a()]));
    assert_eq!(
        read_all(&history, "interop/from-sdk").await.expect("read"),
        data
    );
    let m = history.head("interop/from-sdk").await.expect("head");
    assert_eq!(
        m.encryption,
        Encryption::Customer {
            key_md5: key_a().md5_b64().to_string()
        }
    );
    let ranged = history
        .get("interop/from-sdk", Some(1000..2000))
        .await
        .expect("ranged")
        .collect()
        .await
        .expect("body");
    assert_eq!(ranged.as_ref(), &data[1000..2000]);
    // Refused without the key, and with only another key.
    let plain = local.client(SsePolicy::none());
    assert!(plain.head("interop/from-sdk").await.is_err());
    assert!(read_all(&plain, "interop/from-sdk").await.is_err());
    let only_b = local.client(ssec(vec![key_b()]));
    assert_eq!(
        only_b
            .head("interop/from-sdk")
            .await
            .expect_err("key B")
            .kind,
        CosErrorKind::SseKeyRejected
    );

    // Our client → SDK: a single PUT and a multipart upload, both with key A.
    let ours = local.client(ssec(vec![key_a()]));
    let small = pattern(70_000, 12);
    ours.put(
        "interop/from-us",
        Bytes::from(small.clone()),
        &PutOptions::default(),
    )
    .await
    .expect("put");
    assert_eq!(
        sdk.get("interop/from-us", Some(&ka)).await.ok(),
        Some(small)
    );
    let big = pattern(MIB + 5_000, 13);
    let up = ours
        .create_multipart("interop/multi", &PutOptions::default())
        .await
        .expect("initiate");
    let p1 = ours
        .upload_part("interop/multi", &up, 1, Bytes::copy_from_slice(&big[..MIB]))
        .await
        .expect("part 1");
    let p2 = ours
        .upload_part("interop/multi", &up, 2, Bytes::copy_from_slice(&big[MIB..]))
        .await
        .expect("part 2");
    ours.complete_multipart("interop/multi", &up, &[p1, p2])
        .await
        .expect("complete");
    assert_eq!(sdk.get("interop/multi", Some(&ka)).await.ok(), Some(big));
    // The SDK is refused without the key and with key B.
    for kf in [None, Some(kb.as_path())] {
        let r = sdk
            .get("interop/from-us", kf)
            .await
            .expect_err("the SDK must be refused");
        assert_eq!(r.code, 2, "refusal expected: {}", r.stderr);
    }

    // Plain objects cross both ways too.
    sdk.put("interop/plain-sdk", b"plain from sdk", None).await;
    assert_eq!(
        read_all(&plain, "interop/plain-sdk").await.expect("read"),
        b"plain from sdk"
    );
    plain
        .put(
            "interop/plain-us",
            Bytes::from_static(b"plain from us"),
            &PutOptions::default(),
        )
        .await
        .expect("put");
    assert_eq!(
        sdk.get("interop/plain-us", None).await.ok(),
        Some(b"plain from us".to_vec())
    );
}

#[test]
fn a_customer_key_file_round_trips_through_the_helper_format() {
    // The helper reads base64 of the raw key; our parser accepts the same text.
    let text = base64::engine::general_purpose::STANDARD.encode(RAW_KEY_A);
    let k = CustomerKey::parse(text.as_bytes()).expect("parse");
    assert_eq!(k.md5_b64(), key_a().md5_b64());
}

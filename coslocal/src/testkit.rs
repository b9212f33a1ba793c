//! The one way tests and benchmarks start coslocal inside their own process: a bucket on
//! a free loopback port, HTTPS with a freshly generated CA (written to `ca.pem`), one
//! credential, and a JSON-lines request log, all under a temporary directory that lives
//! as long as the [`TestServer`]. The constants are the test bucket's one set of names.
//! (Kernel-level tests run the coslocal binary instead; their starter is in the test
//! suite's support module and takes its bucket and region from here.)

use crate::{spawn, ServerConfig, ServerCredential, ServerHandle, TlsMode};
use std::path::PathBuf;

pub const BUCKET: &str = "test-1250000000";
pub const REGION: &str = "ap-guangzhou";
pub const SECRET_ID: &str = "AKIDcoslocaltest0000000001";
pub const SECRET_KEY: &str = "coslocal-test-secret-key-0123456789";

/// A running in-process coslocal and the files it writes.
pub struct TestServer {
    pub handle: ServerHandle,
    pub dir: tempfile::TempDir,
    /// The CA to trust (written when TLS is self-signed).
    pub ca: PathBuf,
    /// The request log (empty path when a test turned it off).
    pub log: PathBuf,
    /// The certificate a client must trust, if the server speaks TLS.
    pub trust: Option<PathBuf>,
}

/// The configuration [`TestServer::start_with`] starts from, for a server under `dir`.
pub fn config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        tls: TlsMode::SelfSigned {
            ca_out: dir.join("ca.pem"),
        },
        credentials: vec![ServerCredential {
            secret_id: SECRET_ID.into(),
            secret_key: SECRET_KEY.into(),
            token: None,
        }],
        request_log: Some(dir.join("requests.jsonl")),
        ..ServerConfig::new(dir.join("data"), BUCKET, REGION)
    }
}

impl TestServer {
    /// Starts the default test server.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Starts a server whose configuration `f` adjusts first.
    pub async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        TestServer::start_in(dir, f).await
    }

    /// Starts a server under `dir` (e.g. a directory an earlier server left, to test a
    /// restart).
    pub async fn start_in(dir: tempfile::TempDir, f: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let ca = dir.path().join("ca.pem");
        let mut cfg = config(dir.path());
        f(&mut cfg);
        let trust = match &cfg.tls {
            TlsMode::Plain => None,
            TlsMode::Files { cert, .. } => Some(cert.clone()),
            TlsMode::SelfSigned { ca_out } => Some(ca_out.clone()),
        };
        let log = cfg.request_log.clone().unwrap_or_default();
        let handle = spawn(cfg).await.expect("coslocal starts");
        TestServer {
            handle,
            dir,
            ca,
            log,
            trust,
        }
    }

    /// The server's base URL.
    pub fn endpoint(&self) -> String {
        self.handle.endpoint()
    }

    /// Every request-log entry so far (one JSON object per line).
    pub fn log_entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Empties the request log (so a test can look at one phase).
    pub fn clear_log(&self) {
        std::fs::write(&self.log, b"").expect("truncate request log");
    }
}

//! coslocal started in-process over HTTPS (self-signed CA), and `CosHttpClient`s pointed
//! at it: the setup shared by the client tests (and reusable by others via `mod common;`).
//!
//! Each `Local` owns a temporary directory (data, CA, request log). Client configs use
//! short retry delays so fault tests stay fast, and name the region so copy sources use
//! the `<bucket>.cos.<region>.myqcloud.com/<key>` form.

#![allow(dead_code)]

use ::coslocal::{
    self as server, FaultConfig, ServerConfig, ServerCredential, ServerHandle, TlsMode,
};
use cosmount::cos::config::{CosClientConfig, Credentials, Endpoint, RetryConfig};
use cosmount::cos::http::CosHttpClient;
use cosmount::cos::sse::{CustomerKey, SseMode, SsePolicy};
use std::path::PathBuf;
use std::time::Duration;

pub const BUCKET: &str = "test-1250000000";
pub const REGION: &str = "ap-guangzhou";
pub const SECRET_ID: &str = "AKIDclienttest0000000001";
pub const SECRET_KEY: &str = "client-test-secret-key-0123456789";

/// Two SSE-C keys (raw ASCII, 32 bytes each), as a two-key history would hold them.
pub const RAW_KEY_A: &[u8; 32] = b"0123456789ABCDEF0123456789ABCDEF";
pub const RAW_KEY_B: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

pub fn key_a() -> CustomerKey {
    CustomerKey::from_raw(RAW_KEY_A).expect("32 bytes")
}

pub fn key_b() -> CustomerKey {
    CustomerKey::from_raw(RAW_KEY_B).expect("32 bytes")
}

/// The SSE policy for a key history (first key writes).
pub fn ssec(keys: Vec<CustomerKey>) -> SsePolicy {
    SsePolicy::new(SseMode::Customer { keys }).expect("valid SSE-C policy")
}

pub fn sse_cos() -> SsePolicy {
    SsePolicy::new(SseMode::CosManaged).expect("SSE-COS")
}

pub fn sse_kms(key_id: &str) -> SsePolicy {
    SsePolicy::new(SseMode::Kms {
        key_id: Some(key_id.to_string()),
        context: None,
    })
    .expect("SSE-KMS")
}

/// A running in-process coslocal.
pub struct Local {
    pub server: ServerHandle,
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub log: PathBuf,
}

impl Local {
    /// Starts coslocal on 127.0.0.1 with a self-signed CA and a request log.
    pub async fn start() -> Local {
        Local::start_with(FaultConfig::default(), None).await
    }

    /// Starts coslocal with faults and optionally a temporary credential's token.
    pub async fn start_with(faults: FaultConfig, token: Option<&str>) -> Local {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        let log = dir.path().join("requests.jsonl");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let server = server::spawn(ServerConfig {
            data_dir,
            bucket: BUCKET.into(),
            region: REGION.into(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls: TlsMode::SelfSigned { ca_out: ca.clone() },
            credentials: vec![ServerCredential {
                secret_id: SECRET_ID.into(),
                secret_key: SECRET_KEY.into(),
                token: token.map(str::to_string),
            }],
            request_log: Some(log.clone()),
            faults,
            control_listen: None,
            tls_handshake_timeout: server::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            header_read_timeout: server::DEFAULT_HEADER_READ_TIMEOUT,
        })
        .await
        .expect("coslocal starts");
        Local {
            server,
            dir,
            ca,
            log,
        }
    }

    /// A client config for this server with `sse`, fast retries and the CA trusted.
    pub fn config(&self, sse: SsePolicy) -> CosClientConfig {
        let mut c = CosClientConfig::new(
            BUCKET,
            Endpoint::Url(self.server.endpoint()),
            Credentials::new(SECRET_ID, SECRET_KEY, None),
        );
        c.sse = sse;
        c.ca_file = Some(self.ca.clone());
        c.region = Some(REGION.into());
        c.retry = RetryConfig {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_total: Duration::from_secs(20),
        };
        c.read_timeout = Duration::from_secs(10);
        c
    }

    pub fn client(&self, sse: SsePolicy) -> CosHttpClient {
        CosHttpClient::new(self.config(sse)).expect("client")
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

/// Deterministic test data.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_shr(13) as u8 ^ seed)
        .collect()
}

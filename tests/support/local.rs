//! `CosHttpClient`s pointed at an in-process coslocal (`coslocal::testkit`, which owns
//! the server, its temporary directory and the test bucket's names), the SSE policies
//! and keys the client tests use, and their test data.
//!
//! Client configs use short retry delays so fault tests stay fast, and name the region
//! so copy sources use the `<bucket>.cos.<region>.myqcloud.com/<key>` form.

pub use ::coslocal::testkit::{TestServer as Local, BUCKET, REGION, SECRET_ID, SECRET_KEY};
use cosmount::cos::config::{CosClientConfig, Credentials, Endpoint, RetryConfig};
use cosmount::cos::http::CosHttpClient;
use cosmount::cos::sse::{CustomerKey, SseMode, SsePolicy};
use std::time::Duration;

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

/// Starts coslocal whose credential is a temporary one with this token.
pub async fn start_with_token(token: &str) -> Local {
    Local::start_with(|c| c.credentials[0].token = Some(token.to_string())).await
}

/// Clients of a test server.
pub trait ClientOf {
    /// A client config for this server with `sse`, fast retries and the CA trusted.
    fn config(&self, sse: SsePolicy) -> CosClientConfig;
    fn client(&self, sse: SsePolicy) -> CosHttpClient;
}

impl ClientOf for Local {
    fn config(&self, sse: SsePolicy) -> CosClientConfig {
        let mut c = CosClientConfig::new(
            BUCKET,
            Endpoint::Url(self.endpoint()),
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

    fn client(&self, sse: SsePolicy) -> CosHttpClient {
        CosHttpClient::new(self.config(sse)).expect("client")
    }
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_shr(13) as u8 ^ seed)
        .collect()
}

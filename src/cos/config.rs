//! Configuration of the COS client: endpoint, credentials, SSE policy, retries and
//! timeouts. Built by the CLI (or tests) and handed to `CosHttpClient::new`.

use super::sse::SsePolicy;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// SecretId, SecretKey and an optional STS token. `Debug` shows only the SecretId.
#[derive(Clone)]
pub struct Credentials {
    pub secret_id: String,
    secret_key: Zeroizing<String>,
    token: Option<Zeroizing<String>>,
}

impl Credentials {
    pub fn new(
        secret_id: impl Into<String>,
        secret_key: impl Into<String>,
        token: Option<String>,
    ) -> Self {
        Credentials {
            secret_id: secret_id.into(),
            secret_key: Zeroizing::new(secret_key.into()),
            token: token.map(Zeroizing::new),
        }
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref().map(|s| s.as_str())
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `https://<bucket>.cos.<region>.myqcloud.com`.
    Region(String),
    /// A base URL such as `https://cos.ap-guangzhou.myqcloud.com` or
    /// `https://127.0.0.1:9000`: virtual-hosted requests go to `<bucket>.<host>` unless
    /// the host is an IP address or `localhost`, or `path_style` is set.
    Url(String),
}

/// Retry limits: attempts and total time both bound the loop.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Total attempts including the first (≥ 1).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first one.
    pub max_total: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        // Enough to ride out a few seconds of throttling without hiding a dead endpoint.
        RetryConfig {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_total: Duration::from_secs(60),
        }
    }
}

/// Everything `CosHttpClient::new` needs.
#[derive(Debug, Clone)]
pub struct CosClientConfig {
    /// `name-appid`.
    pub bucket: String,
    pub endpoint: Endpoint,
    /// Put the bucket in the path (`/<bucket>/<key>`) instead of the host name.
    pub path_style: bool,
    /// The bucket's region when the endpoint is a URL that does not name it (an IP address,
    /// `localhost`, path-style): names the copy source `<bucket>.cos.<region>.myqcloud.com`.
    /// Without it such copies use the path form `/<bucket>/<key>`.
    pub region: Option<String>,
    /// The credentials to start with; with `credential_source`, refreshed from it before
    /// `credentials_expire` (see `credentials::CredentialStore`).
    pub credentials: Credentials,
    pub credentials_expire: Option<std::time::SystemTime>,
    pub credential_source: Option<std::sync::Arc<dyn super::credentials::CredentialSource>>,
    pub sse: SsePolicy,
    /// A PEM file of extra CA certificates to trust (a private CA such as coslocal's).
    pub ca_file: Option<PathBuf>,
    /// `x-cos-storage-class` for new objects; `None` leaves the bucket default.
    pub storage_class: Option<String>,
    pub retry: RetryConfig,
    pub connect_timeout: Duration,
    /// Per-read timeout of a response (Complete may stream whitespace for minutes, which
    /// keeps resetting it).
    pub read_timeout: Duration,
    /// Copies larger than this use multipart Upload Part - Copy (default 5 GiB).
    pub multipart_copy_threshold: u64,
    /// Part size of multipart copies.
    pub copy_part_size: u64,
    /// Connections kept per host.
    pub pool_max_idle_per_host: usize,
}

impl CosClientConfig {
    /// A config with the defaults for everything but the essentials.
    pub fn new(bucket: impl Into<String>, endpoint: Endpoint, credentials: Credentials) -> Self {
        CosClientConfig {
            bucket: bucket.into(),
            endpoint,
            path_style: false,
            region: None,
            credentials,
            credentials_expire: None,
            credential_source: None,
            sse: SsePolicy::none(),
            ca_file: None,
            storage_class: None,
            retry: RetryConfig::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            multipart_copy_threshold: super::limits::MAX_PART_SIZE,
            copy_part_size: 512 * 1024 * 1024,
            pool_max_idle_per_host: 64,
        }
    }
}

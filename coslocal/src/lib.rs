//! `coslocal`: a strict COS-compatible server for one bucket, persisting objects under a
//! data directory, used for tests, demos and benchmarks.
//!
//! Strict means client bugs show up as failures: every request's signature is verified,
//! the SSE rules are enforced (see [`sse`] for the assumptions), SSE-C data is encrypted at
//! rest with the customer key, and malformed requests get the COS error a real bucket
//! would send. Faults (throttling, 500s, connection resets, truncated bodies), latency and
//! a bandwidth cap can be injected, also at run time through a control endpoint, which can
//! also damage a stored object or drop the CRC-64 header (see [`control`]). Connections
//! that never finish a TLS handshake or a request header are closed after a deadline.
//!
//! Modules: [`route`] (addressing, op), [`auth`] (signatures), [`sse`] + [`crypto`]
//! (encryption rules and at-rest AES-CTR), [`store`] (files on disk), [`range`],
//! [`handler`] (the request pipeline) with [`object`] and [`multipart`] (the
//! operations), [`body`] (streamed and shaped bodies), [`faults`], [`reqlog`], [`control`],
//! [`tls`], [`error`], [`headcase`]. The wire facts it shares with the client (operations,
//! signing, CRC-64, XML, listing pages) are in `cos-wire`.

// Every unsafe block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod auth;
pub mod body;
pub mod control;
pub mod crypto;
pub mod error;
pub mod faults;
pub mod handler;
pub mod headcase;
pub mod multipart;
pub mod object;
pub mod range;
pub mod reqlog;
pub mod route;
pub mod sse;
pub mod store;
pub mod testkit;
pub mod tls;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything `spawn` needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// `name-APPID`.
    pub bucket: String,
    pub region: String,
    /// Port 0 picks a free port.
    pub listen: SocketAddr,
    pub tls: TlsMode,
    pub credentials: Vec<ServerCredential>,
    pub request_log: Option<PathBuf>,
    pub faults: FaultConfig,
    pub control_listen: Option<SocketAddr>,
    /// How long a connection may take to complete its TLS handshake before it is dropped
    /// (a client that connects and sends nothing would otherwise hold a task forever).
    pub tls_handshake_timeout: Duration,
    /// How long a connection may go without sending a complete request header, counted
    /// from the connection (or the end of its previous response) on: idle keep-alive
    /// connections are closed after this. Keep it above clients' pool idle timeouts
    /// (cosmount's is 50 s), or a client may reuse a connection the server is closing.
    pub header_read_timeout: Duration,
    /// Send whitespace before every Complete Multipart Upload result right away, as COS
    /// may while it merges, so clients' handling of it can be tested.
    pub complete_whitespace: bool,
}

impl ServerConfig {
    /// A plain-HTTP server on a free loopback port with no credentials, request log,
    /// faults or control endpoint; callers set what they need with struct update syntax.
    pub fn new(data_dir: PathBuf, bucket: &str, region: &str) -> ServerConfig {
        ServerConfig {
            data_dir,
            bucket: bucket.into(),
            region: region.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: TlsMode::Plain,
            credentials: Vec::new(),
            request_log: None,
            faults: FaultConfig::default(),
            control_listen: None,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            complete_whitespace: false,
        }
    }
}

/// The default [`ServerConfig::tls_handshake_timeout`].
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`ServerConfig::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// How the server speaks TLS.
#[derive(Clone, Debug)]
pub enum TlsMode {
    Plain,
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Generate a CA and server certificate; write the CA PEM to `ca_out`.
    SelfSigned {
        ca_out: PathBuf,
    },
}

/// One accepted credential; with a token it is a temporary one and requests must carry
/// `x-cos-security-token`.
#[derive(Clone, Deserialize)]
pub struct ServerCredential {
    pub secret_id: String,
    pub secret_key: String,
    pub token: Option<String>,
}

impl std::fmt::Debug for ServerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredential")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Injected faults and network shaping. `ops` holds `CosOp::name()` values (empty = all
/// operations); latency and bandwidth apply to every request (the bandwidth cap paces
/// each response body and each uploaded body; HTTP/1 runs one request at a time per
/// connection, so that is a per-connection cap).
///
/// The fault kind is drawn uniformly from `kinds` when it is not empty, else it is `kind`
/// (the older single-kind form, still accepted); with neither, nothing is injected.
/// `max_faults` caps the faults injected under this configuration (setting a new one
/// starts the count over). With `seed`, the `rate` draws and the kind draws come from a
/// generator seeded anew on every set, so one request order gives one fault schedule.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    pub kind: Option<FaultKind>,
    pub kinds: Vec<FaultKind>,
    pub every_nth: Option<u64>,
    pub rate: f64,
    pub seed: Option<u64>,
    pub ops: Vec<String>,
    pub max_faults: Option<u64>,
    pub latency_ms: u64,
    pub bandwidth_bytes_per_sec: Option<u64>,
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 503 SlowDown.
    SlowDown,
    /// 500 InternalError.
    InternalError,
    /// Close the connection without a response (before the request is acted on).
    Reset,
    /// Full Content-Length, then half the body and a closed connection. On responses
    /// without a body the request is acted on and the connection then closed unanswered.
    TruncateBody,
}

impl FaultKind {
    /// The JSON name (as in `FaultConfig` and the `faults_by_kind` statistics).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::SlowDown => "slow_down",
            FaultKind::InternalError => "internal_error",
            FaultKind::Reset => "reset",
            FaultKind::TruncateBody => "truncate_body",
        }
    }
}

/// The shared state of a running server.
pub struct State {
    pub bucket: String,
    pub region: String,
    pub https: bool,
    pub store: store::Store,
    /// The credentials requests may be signed with; replaced at run time through the
    /// control endpoint (credential rotation), which also serves them as a CVM role's.
    pub accepted: std::sync::RwLock<Accepted>,
    /// Requests accepted per SecretId (for tests to see which credentials signed).
    pub by_secret_id: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Answers given by the fake CVM metadata endpoint.
    pub metadata_requests: AtomicU64,
    pub faults: faults::Faults,
    pub log: Option<reqlog::RequestLog>,
    /// Leave `x-cos-hash-crc64ecma` out of GET/HEAD Object responses (set through the
    /// control endpoint, to test clients' handling of a response without it).
    pub omit_crc: AtomicBool,
    /// See [`ServerConfig::complete_whitespace`].
    pub complete_whitespace: bool,
    requests: AtomicU64,
    seq: AtomicU64,
    id_prefix: String,
}

/// One accepted credential with what rotation adds: when it stops being accepted
/// (Unix seconds; then requests get 400 ExpiredToken, as COS answers) and the CVM role
/// whose credentials it is (served by the control listener's metadata endpoint).
#[derive(Clone, Debug, Deserialize)]
pub struct AcceptedCredential {
    #[serde(flatten)]
    pub credential: ServerCredential,
    #[serde(default)]
    pub expires: Option<u64>,
    #[serde(default)]
    pub role: Option<String>,
}

/// The accepted credentials, by SecretId, and by role (the last one listed for a role).
#[derive(Debug, Default)]
pub struct Accepted {
    pub creds: HashMap<String, ServerCredential>,
    pub expires: HashMap<String, u64>,
    pub roles: std::collections::BTreeMap<String, AcceptedCredential>,
}

impl Accepted {
    pub fn new(list: Vec<AcceptedCredential>) -> Accepted {
        let mut a = Accepted::default();
        for c in list {
            let id = c.credential.secret_id.clone();
            if let Some(e) = c.expires {
                a.expires.insert(id.clone(), e);
            }
            if let Some(r) = &c.role {
                a.roles.insert(r.clone(), c.clone());
            }
            a.creds.insert(id, c.credential);
        }
        a
    }
}

impl State {
    /// Counts a request signed with `secret_id`, refusing it once that credential has
    /// expired.
    pub fn credential_used(&self, secret_id: &str, now: u64) -> Result<(), error::ApiError> {
        let expires = self
            .accepted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .expires
            .get(secret_id)
            .copied();
        if expires.is_some_and(|e| e <= now) {
            return Err(error::ApiError::bad(
                "ExpiredToken",
                "The provided token has expired.",
            ));
        }
        *self
            .by_secret_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(secret_id.to_string())
            .or_default() += 1;
        Ok(())
    }

    /// The APPID part of the bucket name.
    pub fn appid(&self) -> &str {
        self.bucket.rsplit_once('-').map(|(_, a)| a).unwrap_or("")
    }

    /// A request id unique across runs (random prefix + sequence).
    pub fn next_request_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}{:010x}", self.id_prefix, n)
    }

    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    https: bool,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    active: Arc<AtomicUsize>,
    control_addr: Option<SocketAddr>,
}

impl ServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` for plain), with a loopback address when
    /// bound to an unspecified one.
    pub fn endpoint(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let ip = self.addr.ip();
        let host = if ip.is_unspecified() {
            if ip.is_ipv6() {
                "[::1]".to_string()
            } else {
                "127.0.0.1".to_string()
            }
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    /// The control endpoint's address, when one was configured.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    pub fn set_faults(&self, f: FaultConfig) {
        self.state.faults.set(f);
    }

    /// Faults injected over the server's lifetime.
    pub fn faults_injected(&self) -> u64 {
        self.state.faults.injected()
    }

    /// Faults injected since the fault configuration was last set.
    pub fn faults_injected_config(&self) -> u64 {
        self.state.faults.injected_config()
    }

    /// All fault counters (lifetime totals by operation and kind included).
    pub fn fault_stats(&self) -> faults::FaultStats {
        self.state.faults.stats()
    }

    /// Flips one bit of `key`'s stored data at plaintext `offset` (see
    /// [`store::Store::corrupt`]).
    pub async fn corrupt(&self, key: &str, offset: u64) -> Result<(), store::CorruptError> {
        let st = self.state.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || st.store.corrupt(&key, offset))
            .await
            .map_err(|e| store::CorruptError::Io(io::Error::other(e)))?
    }

    /// Makes GET/HEAD Object responses leave out `x-cos-hash-crc64ecma` (or not).
    pub fn set_omit_crc(&self, omit: bool) {
        self.state.omit_crc.store(omit, Ordering::SeqCst);
    }

    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s), then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Checks a `name-APPID` bucket name.
pub fn validate_bucket(bucket: &str) -> Result<(), String> {
    let Some((name, appid)) = bucket.rsplit_once('-') else {
        return Err(format!(
            "bucket {bucket:?} must be NAME-APPID (e.g. examplebucket-1250000000)"
        ));
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !name_ok || appid.is_empty() || !appid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "bucket {bucket:?} must be NAME-APPID: lowercase letters, digits and '-', then '-' and a numeric APPID"
        ));
    }
    Ok(())
}

/// Starts the server (and the control endpoint, if configured) and returns once it accepts
/// connections.
pub async fn spawn(cfg: ServerConfig) -> io::Result<ServerHandle> {
    validate_bucket(&cfg.bucket).map_err(invalid)?;
    if cfg.region.is_empty() {
        return Err(invalid("region must not be empty".into()));
    }
    if cfg.credentials.is_empty() {
        return Err(invalid(
            "no credentials configured: coslocal refuses to run without a SecretId/SecretKey"
                .into(),
        ));
    }
    let tls = match &cfg.tls {
        TlsMode::Plain => None,
        TlsMode::Files { cert, key } => Some(tls::from_files(cert, key)?),
        TlsMode::SelfSigned { ca_out } => Some(tls::self_signed(&cfg.bucket, &cfg.region, ca_out)?),
    };
    let data_dir = cfg.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || store::Store::open(&data_dir))
        .await
        .map_err(io::Error::other)?
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("data dir {}: {e}", cfg.data_dir.display()),
            )
        })?;
    let log =
        match &cfg.request_log {
            Some(p) => Some(reqlog::RequestLog::open(p).map_err(|e| {
                io::Error::new(e.kind(), format!("request log {}: {e}", p.display()))
            })?),
            None => None,
        };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", cfg.listen)))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State {
        bucket: cfg.bucket.clone(),
        region: cfg.region.clone(),
        https: tls.is_some(),
        store,
        accepted: std::sync::RwLock::new(Accepted::new(
            cfg.credentials
                .iter()
                .map(|c| AcceptedCredential {
                    credential: c.clone(),
                    expires: None,
                    role: None,
                })
                .collect(),
        )),
        by_secret_id: Default::default(),
        metadata_requests: AtomicU64::new(0),
        faults: faults::Faults::new(cfg.faults.clone()),
        log,
        omit_crc: AtomicBool::new(false),
        complete_whitespace: cfg.complete_whitespace,
        requests: AtomicU64::new(0),
        seq: AtomicU64::new(0),
        id_prefix: store::random_name()[..12].to_string(),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let active = Arc::new(AtomicUsize::new(0));
    let mut tasks = vec![tokio::spawn(accept_loop(
        listener,
        tls.map(tokio_rustls::TlsAcceptor::from),
        ConnTimeouts {
            handshake: cfg.tls_handshake_timeout,
            header_read: cfg.header_read_timeout,
        },
        state.clone(),
        shutdown_rx.clone(),
        active.clone(),
    ))];
    let mut control_addr = None;
    if let Some(c) = cfg.control_listen {
        let l = TcpListener::bind(c)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("control listen on {c}: {e}")))?;
        control_addr = Some(l.local_addr()?);
        tasks.push(tokio::spawn(control::serve(l, state.clone(), shutdown_rx)));
    }
    tracing::info!(%addr, bucket = %cfg.bucket, https = state.https, "coslocal listening");
    Ok(ServerHandle {
        addr,
        https: state.https,
        state,
        shutdown,
        tasks,
        active,
        control_addr,
    })
}

/// Per-connection deadlines (see [`ServerConfig`]).
#[derive(Clone, Copy)]
struct ConnTimeouts {
    handshake: Duration,
    header_read: Duration,
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    timeouts: ConnTimeouts,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    active: Arc<AtomicUsize>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        let rx = shutdown.clone();
        let active = active.clone();
        active.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            match tls {
                Some(acc) => {
                    match tokio::time::timeout(timeouts.handshake, acc.accept(stream)).await {
                        Ok(Ok(s)) => serve_conn(s, timeouts.header_read, state, rx).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        // Dropping the handshake future closes the socket.
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => serve_conn(stream, timeouts.header_read, state, rx).await,
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn serve_conn<I>(
    io: I,
    header_read_timeout: Duration,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Raised by the service when it hands hyper a response: the next head gets COS case.
    let head_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = head_flag.clone();
    let svc =
        hyper::service::service_fn(move |req| handler::service(state.clone(), flag.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(4 * 1024 * 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(
            hyper_util::rt::TokioIo::new(headcase::HeadCase::new(io, head_flag)),
            svc,
        );
    tokio::pin!(conn);
    let mut closing = *shutdown.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                break;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(validate_bucket("examplebucket-1250000000").is_ok());
        assert!(validate_bucket("my-bkt-1").is_ok());
        for bad in ["nobucketappid", "Upper-125", "bkt-", "bkt-12a", "-125"] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credential_debug_is_redacted() {
        let c = ServerCredential {
            secret_id: "id".into(),
            secret_key: "sk-value".into(),
            token: Some("tok-value".into()),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("sk-value") && !d.contains("tok-value"));
    }

    #[test]
    fn fault_config_json() {
        let f: FaultConfig =
            serde_json::from_str(r#"{"kind":"slow_down","every_nth":3,"ops":["GetObject"]}"#)
                .expect("json");
        assert_eq!(f.kind, Some(FaultKind::SlowDown));
        assert_eq!(f.every_nth, Some(3));
        assert_eq!(f.rate, 0.0);
    }
}

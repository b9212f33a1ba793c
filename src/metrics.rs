//! Process-wide counters and the Prometheus text page that shows them
//! (`-o metrics_listen=ADDR:PORT`, `GET /metrics`).
//!
//! One daemon serves one mount, so the counters are one static set of atomics that each
//! layer bumps where the event happens: COS requests by operation and outcome, bytes up
//! and down, uploads in flight and the bytes they are sending (`cos`), block-cache hits
//! and misses (`fs`), errnos returned to programs (`fuse`). Retries and credential
//! refreshes come from the client's own counters when the page is rendered. The server is
//! a few lines of HTTP/1.1 on tokio: it answers `GET /metrics` and nothing else.

use crate::cos::{ClientCounters, CosOp};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// How a request ended, for `cosmount_requests_total{outcome=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// No HTTP answer: connection refused or reset, TLS, timeout.
    Network,
}

const OUTCOMES: [(Outcome, &str); 4] = [
    (Outcome::Ok, "ok"),
    (Outcome::ClientError, "client_error"),
    (Outcome::ServerError, "server_error"),
    (Outcome::Network, "network"),
];
const OPS: usize = CosOp::ALL.len();
/// errno values above this are counted as this one (Linux's largest is 133).
const MAX_ERRNO: usize = 140;

pub struct Metrics {
    requests: [[AtomicU64; 4]; OPS],
    bytes_uploaded: AtomicU64,
    bytes_downloaded: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    uploads_in_flight: AtomicI64,
    upload_pending_bytes: AtomicI64,
    errnos: [AtomicU64; MAX_ERRNO + 1],
}

/// The counters of this process.
pub static METRICS: Metrics = Metrics::new();

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            requests: [const { [const { AtomicU64::new(0) }; 4] }; OPS],
            bytes_uploaded: AtomicU64::new(0),
            bytes_downloaded: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            uploads_in_flight: AtomicI64::new(0),
            upload_pending_bytes: AtomicI64::new(0),
            errnos: [const { AtomicU64::new(0) }; MAX_ERRNO + 1],
        }
    }

    pub fn request(&self, op: CosOp, outcome: Outcome) {
        let o = OUTCOMES
            .iter()
            .position(|(x, _)| *x == outcome)
            .unwrap_or(0);
        let i = CosOp::ALL.iter().position(|x| *x == op).unwrap_or(0);
        self.requests[i][o].fetch_add(1, Ordering::Relaxed);
    }

    pub fn uploaded(&self, bytes: u64) {
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn downloaded(&self, bytes: u64) {
        self.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn cache(&self, hit: bool) {
        let c = if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// An upload (PUT or multipart) started (+1) or ended (-1).
    pub fn upload_started(&self, delta: i64) {
        self.uploads_in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// Bytes handed to upload requests that COS has not acknowledged yet (+ when a body
    /// is sent, - when its answer arrives).
    pub fn upload_pending(&self, delta: i64) {
        self.upload_pending_bytes
            .fetch_add(delta, Ordering::Relaxed);
    }

    pub fn errno(&self, errno: i32) {
        let i = usize::try_from(errno).unwrap_or(0).min(MAX_ERRNO);
        self.errnos[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4) of everything, with the client's
    /// own counters.
    pub fn render(&self, client: &ClientCounters) -> String {
        let mut s = String::new();
        let family = |s: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut s,
            "cosmount_requests_total",
            "counter",
            "COS requests sent (every attempt), by operation and outcome.",
        );
        for (i, op) in CosOp::ALL.iter().enumerate() {
            for (o, (_, label)) in OUTCOMES.iter().enumerate() {
                let n = self.requests[i][o].load(Ordering::Relaxed);
                let _ = writeln!(
                    s,
                    "cosmount_requests_total{{op=\"{}\",outcome=\"{label}\"}} {n}",
                    op.name()
                );
            }
        }
        let counters: [(&str, &str, u64); 9] = [
            (
                "cosmount_retries_total",
                "COS requests sent again after a failure.",
                client.retries.retries,
            ),
            (
                "cosmount_retry_recoveries_total",
                "Operations that succeeded after retries.",
                client.retries.recovered,
            ),
            (
                "cosmount_retry_give_ups_total",
                "Operations that failed after their retries.",
                client.retries.gave_up,
            ),
            (
                "cosmount_uploaded_bytes_total",
                "Bytes of object data COS acknowledged (PUT, Upload Part).",
                self.bytes_uploaded.load(Ordering::Relaxed),
            ),
            (
                "cosmount_downloaded_bytes_total",
                "Bytes of object data received (GET).",
                self.bytes_downloaded.load(Ordering::Relaxed),
            ),
            (
                "cosmount_block_cache_hits_total",
                "Reads of a block found in the block cache.",
                self.cache_hits.load(Ordering::Relaxed),
            ),
            (
                "cosmount_block_cache_misses_total",
                "Reads of a block that had to be fetched (or joined a fetch).",
                self.cache_misses.load(Ordering::Relaxed),
            ),
            (
                "cosmount_credential_refreshes_total",
                "Credential refreshes that worked.",
                client.credentials.refreshes,
            ),
            (
                "cosmount_credential_refresh_failures_total",
                "Credential refreshes that failed.",
                client.credentials.failures,
            ),
        ];
        for (name, help, v) in counters {
            family(&mut s, name, "counter", help);
            let _ = writeln!(s, "{name} {v}");
        }
        for (name, help, v) in [
            (
                "cosmount_uploads_in_flight",
                "Uploads (PUT or multipart) started and not finished.",
                self.uploads_in_flight.load(Ordering::Relaxed),
            ),
            (
                "cosmount_upload_pending_bytes",
                "Bytes sent in upload requests COS has not acknowledged yet.",
                self.upload_pending_bytes.load(Ordering::Relaxed),
            ),
        ] {
            family(&mut s, name, "gauge", help);
            let _ = writeln!(s, "{name} {}", v.max(0));
        }
        family(
            &mut s,
            "cosmount_errors_returned_total",
            "counter",
            "Errors returned to programs, by errno.",
        );
        for (e, c) in self.errnos.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    s,
                    "cosmount_errors_returned_total{{errno=\"{}\"}} {n}",
                    errno_name(e as i32)
                );
            }
        }
        s
    }
}

/// `EIO`, `ENOENT`, ... (the number for the rare others).
fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENODATA => "ENODATA",
        libc::ENOTSUP => "ENOTSUP",
        libc::ESTALE => "ESTALE",
        _ => return e.to_string(),
    };
    name.to_string()
}

/// Serves `GET /metrics` on `listener` for the life of the runtime. `counters` reads the
/// client's own counters at each scrape.
pub async fn serve(
    listener: tokio::net::TcpListener,
    counters: impl Fn() -> ClientCounters + Send + Sync + 'static,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let counters = std::sync::Arc::new(counters);
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            // The request head, within 5 s and 4 KiB; the body (if any) is not read.
            let head = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while len < buf.len() {
                    let n = conn.read(&mut buf[len..]).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        return Some(());
                    }
                }
                None
            })
            .await;
            if !matches!(head, Ok(Some(()))) {
                return;
            }
            let line = String::from_utf8_lossy(&buf[..len]);
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, ctype, body) = if method == "GET" && path == "/metrics" {
                (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    METRICS.render(&counters()),
                )
            } else {
                (
                    "404 Not Found",
                    "text/plain",
                    "only GET /metrics\n".to_string(),
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_labels() {
        let m = Metrics::new();
        m.request(CosOp::PutObject, Outcome::Ok);
        m.request(CosOp::GetObject, Outcome::ServerError);
        m.uploaded(10);
        m.cache(true);
        m.cache(false);
        m.cache(false);
        m.errno(libc::ENOENT);
        m.errno(9999);
        m.upload_started(1);
        let text = m.render(&ClientCounters::default());
        for want in [
            "cosmount_requests_total{op=\"PutObject\",outcome=\"ok\"} 1",
            "cosmount_requests_total{op=\"GetObject\",outcome=\"server_error\"} 1",
            "cosmount_uploaded_bytes_total 10",
            "cosmount_block_cache_hits_total 1",
            "cosmount_block_cache_misses_total 2",
            "cosmount_errors_returned_total{errno=\"ENOENT\"} 1",
            "cosmount_errors_returned_total{errno=\"140\"} 1",
            "cosmount_uploads_in_flight 1",
            "# TYPE cosmount_upload_pending_bytes gauge",
            "cosmount_credential_refreshes_total 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        // Every sample line is `name{labels} value` or `name value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, v) = l.rsplit_once(' ').unwrap();
            assert!(name.starts_with("cosmount_"), "{l}");
            assert!(v.parse::<i64>().is_ok(), "{l}");
        }
    }
}

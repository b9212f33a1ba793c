//! `coslocal`: runs the strict COS-compatible server (the `coslocal` library) for one bucket.
//!
//! Secrets never come from argv: credentials are read from `--credentials-file`
//! (`SecretId:SecretKey[:Token]` lines, `#` comments) or from the environment
//! (`COSLOCAL_SECRET_ID`, `COSLOCAL_SECRET_KEY`, optional `COSLOCAL_TOKEN`).

// Every unsafe block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

use clap::Parser;
use coslocal::{self as server, FaultConfig, FaultKind, ServerConfig, ServerCredential, TlsMode};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "coslocal",
    about = "A strict, local, COS-compatible server for one bucket"
)]
struct Args {
    /// Directory holding the bucket's objects (created if missing; kept across restarts).
    #[arg(long)]
    data_dir: PathBuf,
    /// Bucket name with APPID, e.g. examplebucket-1250000000.
    #[arg(long)]
    bucket: String,
    #[arg(long, default_value = "ap-guangzhou")]
    region: String,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// PEM certificate chain (with --tls-key) to serve HTTPS.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Generate a private CA and server certificate; write the CA PEM to --ca-out.
    #[arg(long, requires = "ca_out")]
    tls_self_signed: bool,
    /// Where --tls-self-signed writes the CA certificate clients should trust.
    #[arg(long, requires = "tls_self_signed")]
    ca_out: Option<PathBuf>,
    /// File of `SecretId:SecretKey[:Token]` lines (default: env COSLOCAL_SECRET_ID/KEY/TOKEN).
    #[arg(long)]
    credentials_file: Option<PathBuf>,
    /// Append one JSON line per request here.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// Plain-HTTP control endpoint (PUT/GET /faults, GET /stats, POST /corrupt,
    /// POST/GET /omit-crc), loopback recommended.
    #[arg(long)]
    control_listen: Option<SocketAddr>,
    /// Send whitespace before every Complete Multipart Upload result at once, as COS may
    /// while it merges (to test clients against it).
    #[arg(long, env = "COSLOCAL_COMPLETE_WHITESPACE")]
    complete_whitespace: bool,
    /// Delay before every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Response bandwidth cap per connection, bytes per second.
    #[arg(long)]
    bandwidth: Option<u64>,
    /// Fault to inject: slow_down, internal_error, reset, truncate_body.
    #[arg(long, value_parser = parse_fault_kind)]
    fault: Option<FaultKind>,
    /// Inject the fault into every N-th matching request.
    #[arg(long, requires = "fault", conflicts_with = "fault_rate")]
    fault_every: Option<u64>,
    /// Inject the fault into this fraction (0..1) of matching requests.
    #[arg(long, requires = "fault")]
    fault_rate: Option<f64>,
    /// Comma-separated operation names the fault applies to (default: all), e.g. GetObject,UploadPart.
    #[arg(long, value_delimiter = ',', requires = "fault")]
    fault_ops: Vec<String>,
    /// Stop injecting after this many faults.
    #[arg(long, requires = "fault")]
    fault_max: Option<u64>,
    /// Seed for --fault-rate's draws, making the fault schedule reproducible.
    #[arg(long, requires = "fault_rate")]
    fault_seed: Option<u64>,
    /// Seconds a connection may take to finish its TLS handshake before it is closed.
    #[arg(long, value_name = "SECS", value_parser = parse_secs,
          default_value = "10")]
    tls_handshake_timeout: Duration,
    /// Seconds a connection may go without sending a complete request header (idle
    /// keep-alive connections included) before it is closed.
    #[arg(long, value_name = "SECS", value_parser = parse_secs,
          default_value = "120")]
    header_read_timeout: Duration,
}

/// A positive number of seconds (fractions allowed, for tests).
fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!("{s} must be more than 0 and at most 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn parse_fault_kind(s: &str) -> Result<FaultKind, String> {
    match s.to_ascii_lowercase().replace('-', "_").as_str() {
        "slow_down" | "slowdown" => Ok(FaultKind::SlowDown),
        "internal_error" | "internalerror" => Ok(FaultKind::InternalError),
        "reset" => Ok(FaultKind::Reset),
        "truncate_body" | "truncatebody" | "truncate" => Ok(FaultKind::TruncateBody),
        _ => Err(format!(
            "unknown fault {s:?}: use slow_down, internal_error, reset or truncate_body"
        )),
    }
}

/// Parses a credentials file: `SecretId:SecretKey` or `SecretId:SecretKey:Token` lines.
fn parse_credentials(text: &str, origin: &Path) -> Result<Vec<ServerCredential>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(key)) = (it.next(), it.next()) else {
            return Err(format!(
                "{} line {}: expected SecretId:SecretKey[:Token]",
                origin.display(),
                i + 1
            ));
        };
        if id.is_empty() || key.is_empty() {
            return Err(format!(
                "{} line {}: empty SecretId or SecretKey",
                origin.display(),
                i + 1
            ));
        }
        let token = it.next().filter(|t| !t.is_empty()).map(str::to_string);
        out.push(ServerCredential {
            secret_id: id.into(),
            secret_key: key.into(),
            token,
        });
    }
    if out.is_empty() {
        return Err(format!("{} holds no credentials", origin.display()));
    }
    Ok(out)
}

fn credentials(args: &Args) -> Result<Vec<ServerCredential>, String> {
    if let Some(p) = &args.credentials_file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read --credentials-file {}: {e}", p.display()))?;
        return parse_credentials(&text, p);
    }
    let id = std::env::var("COSLOCAL_SECRET_ID")
        .ok()
        .filter(|v| !v.is_empty());
    let key = std::env::var("COSLOCAL_SECRET_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    match (id, key) {
        (Some(secret_id), Some(secret_key)) => Ok(vec![ServerCredential {
            secret_id,
            secret_key,
            token: std::env::var("COSLOCAL_TOKEN")
                .ok()
                .filter(|v| !v.is_empty()),
        }]),
        _ => Err(
            "no credentials: pass --credentials-file FILE (SecretId:SecretKey[:Token] lines) \
                  or set COSLOCAL_SECRET_ID and COSLOCAL_SECRET_KEY"
                .into(),
        ),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {},
                _ = i.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let creds = match credentials(&args) {
        Ok(c) => c,
        Err(m) => {
            eprintln!("coslocal: {m}");
            return ExitCode::from(2);
        }
    };
    if let Some(r) = args.fault_rate {
        if !(0.0..=1.0).contains(&r) {
            eprintln!("coslocal: --fault-rate must be between 0 and 1");
            return ExitCode::from(2);
        }
    }
    let ops_known: Vec<&str> = cos_wire::CosOp::ALL.iter().map(|o| o.name()).collect();
    for op in &args.fault_ops {
        if !ops_known.contains(&op.as_str()) {
            eprintln!(
                "coslocal: unknown operation {op:?} in --fault-ops; known: {}",
                ops_known.join(",")
            );
            return ExitCode::from(2);
        }
    }
    if args.fault.is_some() && args.fault_every.is_none() && args.fault_rate.is_none() {
        eprintln!("coslocal: --fault needs --fault-every N or --fault-rate R");
        return ExitCode::from(2);
    }
    let tls = match (
        &args.tls_cert,
        &args.tls_key,
        args.tls_self_signed,
        &args.ca_out,
    ) {
        (Some(cert), Some(key), _, _) => TlsMode::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (_, _, true, Some(ca)) => TlsMode::SelfSigned { ca_out: ca.clone() },
        _ => TlsMode::Plain,
    };
    let cfg = ServerConfig {
        data_dir: args.data_dir.clone(),
        bucket: args.bucket.clone(),
        region: args.region.clone(),
        listen: args.listen,
        tls,
        credentials: creds,
        request_log: args.request_log.clone(),
        faults: FaultConfig {
            kind: args.fault,
            kinds: vec![],
            every_nth: args.fault_every,
            rate: args.fault_rate.unwrap_or(0.0),
            seed: args.fault_seed,
            ops: args.fault_ops.clone(),
            max_faults: args.fault_max,
            latency_ms: args.latency_ms,
            bandwidth_bytes_per_sec: args.bandwidth,
        },
        control_listen: args.control_listen,
        tls_handshake_timeout: args.tls_handshake_timeout,
        header_read_timeout: args.header_read_timeout,
        complete_whitespace: args.complete_whitespace,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coslocal: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let handle = match server::spawn(cfg).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("coslocal: {e}");
                return ExitCode::from(2);
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "coslocal ready endpoint={} bucket={} region={}",
            handle.endpoint(),
            args.bucket,
            args.region
        );
        let _ = out.flush();
        drop(out);
        if let Some(c) = handle.control_addr() {
            tracing::info!("control endpoint on http://{c}");
        }
        wait_for_signal().await;
        tracing::info!("signal received, shutting down");
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_format() {
        let c = parse_credentials(
            "# comment\nAKID1:sk1\n\nAKID2:sk2:tok:with:colons\n",
            Path::new("f"),
        )
        .expect("ok");
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].token.as_deref(), Some("tok:with:colons"));
        assert!(parse_credentials("justone\n", Path::new("f")).is_err());
        assert!(parse_credentials("# nothing\n", Path::new("f")).is_err());
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(parse_secs("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        for bad in ["0", "-1", "nan", "inf", "ten", "1e9"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
        let a = Args::try_parse_from([
            "coslocal",
            "--data-dir",
            "d",
            "--bucket",
            "b-1",
            "--tls-handshake-timeout",
            "3",
        ])
        .expect("parses");
        assert_eq!(a.tls_handshake_timeout, Duration::from_secs(3));
        assert_eq!(a.header_read_timeout, server::DEFAULT_HEADER_READ_TIMEOUT);
        let d = Args::try_parse_from(["coslocal", "--data-dir", "d", "--bucket", "b-1"])
            .expect("parses");
        assert_eq!(
            d.tls_handshake_timeout,
            server::DEFAULT_TLS_HANDSHAKE_TIMEOUT
        );
    }
}

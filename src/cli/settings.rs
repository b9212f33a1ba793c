//! Turns a parsed command line into the configurations of the components:
//! `CosClientConfig` (endpoint, credentials, SSE policy, retries, timeouts, storage
//! class, CA file, path style), `FsConfig` (prefix, ownership, umask, caches, part size,
//! staging) and the mount settings. Everything that can fail for a user-visible reason
//! (credentials, key files, paths) is done here, before the fork, so the error reaches
//! the terminal directly. Relative paths are made absolute because the daemon runs in `/`.

use super::args::MountArgs;
use super::credentials::{self, Found, PasswdFileSource};
use super::error::CliError;
use super::keyfile::load_key_file;
use super::logging::open_log_file;
use super::mountpoint::check_mountpoint;
use super::options::{LogLevel, Options, SseRequest};
use super::source::{parse_source, Source};
use crate::cos::config::{CosClientConfig, Credentials, Endpoint};
use crate::cos::credentials::CredentialSource;
use crate::cos::cvm_role::{self, CvmRoleSource};
use crate::cos::sse::{SseMode, SsePolicy};
use crate::fs::FsConfig;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Region used when neither `url=` nor `region=` is given.
pub const DEFAULT_REGION: &str = "ap-guangzhou";

/// Everything needed to mount, resolved and validated.
#[derive(Debug)]
pub struct Settings {
    pub source: Source,
    pub mountpoint: PathBuf,
    pub foreground: bool,
    pub log_level: LogLevel,
    /// `logfile=`, opened for appending, and its absolute path (reopened on SIGHUP).
    pub log_file: Option<File>,
    pub log_path: Option<PathBuf>,
    pub client: CosClientConfig,
    pub fs: FsConfig,
    pub allow_other: bool,
    pub read_only: bool,
    pub auto_unmount: bool,
    /// FUSE worker threads (`fuse_threads=`, `-s` = 1); `None` = the adapter's default.
    pub fuse_threads: Option<usize>,
    /// Source shown in /proc/mounts.
    pub fsname: String,
    /// Where requests go, for messages.
    pub endpoint_desc: String,
    /// Where the credentials came from, for messages.
    pub credentials_origin: String,
    /// `metrics_listen=`: where the Prometheus page is served.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `incomplete_mpu_abort=`: abort older incomplete uploads under the prefix at mount.
    pub incomplete_mpu_abort: Option<std::time::Duration>,
    /// The SSE-C key file (absolute), re-read on SIGHUP.
    pub ssec_key_file: Option<PathBuf>,
    /// What to do when the mount-time SSE-C check finds an object no key opens.
    pub ssec_check: super::check::SsecCheck,
    /// `cam_role=ROLE`: the daemon fetches the first credentials from it, then refreshes.
    pub role_source: Option<Arc<CvmRoleSource>>,
    /// Warnings to show the user (ignored options, credentials about to expire).
    pub warnings: Vec<String>,
}

/// What reaching the bucket takes: the COS client configuration and where its parts
/// came from (shared by the mount and by the upload-listing commands).
#[derive(Debug)]
pub struct Connection {
    pub source: Source,
    pub client: CosClientConfig,
    /// Where requests go, for messages.
    pub endpoint_desc: String,
    /// Where the credentials came from, for messages.
    pub credentials_origin: String,
    /// `cam_role=ROLE`: the first credentials are fetched from it (`run::connect`).
    pub role_source: Option<Arc<CvmRoleSource>>,
    /// Warnings to show the user (ignored options, credentials about to expire).
    pub warnings: Vec<String>,
}

/// Resolves a mount command line.
pub fn resolve(m: &MountArgs) -> Result<Settings, CliError> {
    let opts = Options::parse(&m.options)?;
    let mountpoint = check_mountpoint(&m.mountpoint)?;
    let conn = resolve_connection(&m.source, &opts)?;
    let fs = fs_config(&conn.source.prefix, &opts)?;
    let mut log_level = opts.log_level.unwrap_or(LogLevel::Warn);
    if m.debug {
        log_level = log_level.max(LogLevel::Debug);
    }
    let log_path = opts.logfile.as_deref().map(absolute).transpose()?;
    let log_file = match &log_path {
        Some(p) => Some(open_log_file(p)?),
        None => None,
    };
    Ok(Settings {
        mountpoint,
        foreground: m.foreground,
        log_level,
        log_file,
        log_path,
        client: conn.client,
        fs,
        allow_other: opts.allow_other,
        read_only: opts.read_only,
        auto_unmount: opts.auto_unmount,
        fuse_threads: if m.single_thread {
            Some(1)
        } else {
            opts.fuse_threads
        },
        fsname: opts.fsname.clone().unwrap_or_else(|| m.source.clone()),
        endpoint_desc: conn.endpoint_desc,
        credentials_origin: conn.credentials_origin,
        role_source: conn.role_source,
        ssec_check: opts.ssec_check,
        ssec_key_file: match &opts.sse {
            SseRequest::Customer { key_file } => Some(absolute(key_file)?),
            _ => None,
        },
        incomplete_mpu_abort: opts.incomplete_mpu_abort,
        metrics_listen: opts.metrics_listen,
        warnings: conn.warnings,
        source: conn.source,
    })
}

/// Resolves the bucket argument and the options that say how to reach it.
pub fn resolve_connection(source_arg: &str, opts: &Options) -> Result<Connection, CliError> {
    let source = parse_source(source_arg)?;
    let (endpoint, endpoint_desc) = endpoint(opts, &source.bucket);
    let passwd_file = opts.passwd_file.as_deref().map(absolute).transpose()?;
    let mut warnings = opts.warnings.clone();
    let role_source = match &opts.cam_role {
        Some(role) => {
            let url = opts
                .cam_role_endpoint
                .as_deref()
                .unwrap_or(cvm_role::DEFAULT_ENDPOINT);
            Some(Arc::new(
                CvmRoleSource::new(url, role).map_err(CliError::usage)?,
            ))
        }
        None => None,
    };
    let found = match &role_source {
        // Fetched by the daemon, which has the runtime; nothing is signed before that.
        Some(src) => Found {
            credentials: Credentials::new("", "", None),
            origin: src.describe(),
            expires: None,
            file: None,
        },
        None => credentials::find_credentials(&source.bucket, passwd_file.as_deref())?,
    };
    if let (Some(t), None) = (found.expires, &found.file) {
        warnings.push(format!(
            "the temporary credentials from {} expire at {t} and cannot be refreshed \
             (put them in a passwd file, or use cam_role=); requests will fail after that",
            found.origin
        ));
    }
    let sse = sse_policy(&opts.sse)?;
    let mut client = client_config(&source.bucket, endpoint, &found, sse, opts)?;
    if role_source.is_some() {
        // A placeholder until the daemon's first fetch: expired, so it signs nothing.
        client.credentials_expire = Some(std::time::UNIX_EPOCH);
    }
    Ok(Connection {
        client,
        endpoint_desc,
        credentials_origin: found.origin.clone(),
        role_source,
        warnings,
        source,
    })
}

fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(p).map_err(|e| CliError::usage(format!("{}: {e}", p.display())))
}

/// The endpoint and a description for messages.
pub fn endpoint(opts: &Options, bucket: &str) -> (Endpoint, String) {
    match &opts.url {
        Some(url) => (Endpoint::Url(url.clone()), url.clone()),
        None => {
            let region = opts.region.as_deref().unwrap_or(DEFAULT_REGION);
            (
                Endpoint::Region(region.to_string()),
                format!("https://{bucket}.cos.{region}.myqcloud.com"),
            )
        }
    }
}

/// Builds and validates the SSE policy, reading the SSE-C key file if any.
pub fn sse_policy(req: &SseRequest) -> Result<SsePolicy, CliError> {
    let mode = match req {
        SseRequest::None => SseMode::None,
        SseRequest::Cos => SseMode::CosManaged,
        SseRequest::Kms { key_id, context } => SseMode::Kms {
            key_id: key_id.clone(),
            context: context.clone(),
        },
        SseRequest::Customer { key_file } => SseMode::Customer {
            keys: load_key_file(&absolute(key_file)?)?,
        },
    };
    SsePolicy::new(mode).map_err(|e| CliError::usage(e.to_string()))
}

/// The COS client configuration.
pub fn client_config(
    bucket: &str,
    endpoint: Endpoint,
    found: &Found,
    sse: SsePolicy,
    opts: &Options,
) -> Result<CosClientConfig, CliError> {
    let creds: Credentials = found.credentials.clone();
    let mut c = CosClientConfig::new(bucket, endpoint, creds);
    c.credentials_expire = found.expires.map(std::time::SystemTime::from);
    // A passwd file is read again before STS credentials in it expire, on SIGHUP and when
    // COS rejects what it gave.
    if let Some(path) = &found.file {
        c.credential_source = Some(Arc::new(PasswdFileSource {
            path: path.clone(),
            bucket: bucket.to_string(),
        }));
    }
    c.path_style = opts.path_style;
    c.sse = sse;
    if let Some(p) = &opts.ca_file {
        let p = absolute(p)?;
        if !p.is_file() {
            return Err(CliError::usage(format!(
                "ca_file {} is not a readable file",
                p.display()
            )));
        }
        c.ca_file = Some(p);
    }
    c.storage_class = opts.storage_class.clone();
    if let Some(r) = opts.retries {
        c.retry.max_attempts = r + 1;
    }
    if let Some(t) = opts.connect_timeout {
        c.connect_timeout = t;
    }
    if let Some(t) = opts.readwrite_timeout {
        c.read_timeout = t;
    }
    Ok(c)
}

/// The filesystem configuration.
pub fn fs_config(prefix: &str, opts: &Options) -> Result<FsConfig, CliError> {
    let mut f = FsConfig {
        prefix: prefix.to_string(),
        read_only: opts.read_only,
        ..FsConfig::default()
    };
    if let Some(v) = opts.uid {
        f.uid = v;
    }
    if let Some(v) = opts.gid {
        f.gid = v;
    }
    if let Some(v) = opts.umask {
        f.umask = v;
    }
    if let Some(v) = opts.stat_cache_expire {
        f.stat_ttl = v;
    }
    if let Some(v) = opts.multipart_size {
        f.part_size = v;
    }
    if let Some(v) = opts.parallel_count {
        f.parallel_count = v;
    }
    if let Some(v) = opts.memory_limit {
        f.memory_budget = v;
    }
    if let Some(v) = opts.block_size {
        f.block_size = v;
    }
    if let Some(v) = &opts.staging_dir {
        f.staging_dir = Some(absolute(v)?);
    }
    if let Some(v) = opts.staging_min_free {
        f.staging_min_free = v;
    }
    f.validate().map_err(CliError::usage)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn opts(items: &[&str]) -> Options {
        Options::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid")
    }

    fn found() -> Found {
        Found {
            credentials: Credentials::new("AKID", "key", None),
            origin: "test".into(),
            expires: None,
            file: None,
        }
    }

    #[test]
    fn endpoints() {
        let (e, d) = endpoint(&opts(&[]), "b-1");
        assert_eq!(e, Endpoint::Region("ap-guangzhou".into()));
        assert_eq!(d, "https://b-1.cos.ap-guangzhou.myqcloud.com");
        let (e, _) = endpoint(&opts(&["region=ap-beijing"]), "b-1");
        assert_eq!(e, Endpoint::Region("ap-beijing".into()));
        let (e, _) = endpoint(&opts(&["url=http://127.0.0.1:9000"]), "b-1");
        assert_eq!(e, Endpoint::Url("http://127.0.0.1:9000".into()));
    }

    #[test]
    fn client_config_maps_options() {
        let o = opts(&[
            "retries=2",
            "connect_timeout=3",
            "readwrite_timeout=7",
            "storage_class=archive",
            "use_path_request_style",
        ]);
        let c = client_config(
            "b-1",
            Endpoint::Region("r".into()),
            &found(),
            SsePolicy::none(),
            &o,
        )
        .expect("ok");
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.read_timeout, Duration::from_secs(7));
        assert_eq!(c.storage_class.as_deref(), Some("ARCHIVE"));
        assert!(c.path_style);
        assert_eq!(c.bucket, "b-1");
        let e = client_config(
            "b-1",
            Endpoint::Region("r".into()),
            &found(),
            SsePolicy::none(),
            &opts(&["ca_file=/nonexistent.pem"]),
        )
        .expect_err("missing ca");
        assert!(e.message.contains("ca_file"));
    }

    #[test]
    fn fs_config_maps_options() {
        let o = opts(&[
            "uid=7",
            "gid=8",
            "umask=077",
            "ro",
            "stat_cache_expire=5",
            "multipart_size=32",
            "parallel_count=3",
            "memory_limit=64",
            "block_size=4M",
            "staging_dir=/var/tmp/st",
            "staging_min_free=10",
        ]);
        let f = fs_config("p/", &o).expect("ok");
        assert_eq!(f.prefix, "p/");
        assert_eq!((f.uid, f.gid, f.umask), (7, 8, 0o077));
        assert!(f.read_only);
        assert_eq!(f.stat_ttl, Duration::from_secs(5));
        assert_eq!(f.part_size, 32 << 20);
        assert_eq!(f.parallel_count, 3);
        assert_eq!(f.memory_budget, 64 << 20);
        assert_eq!(f.block_size, 4 << 20);
        assert_eq!(f.staging_dir, Some(PathBuf::from("/var/tmp/st")));
        assert_eq!(f.staging_min_free, 10 << 20);
        let d = fs_config("", &opts(&[])).expect("defaults");
        assert_eq!(d.prefix, "");
        assert_eq!(d.umask, FsConfig::default().umask);
        let e = fs_config("", &opts(&["memory_limit=16", "block_size=8M"])).expect_err("too small");
        assert!(e.message.contains("memory_limit"));
    }

    #[test]
    fn sse_policies() {
        assert!(!sse_policy(&SseRequest::None)
            .expect("none")
            .uses_customer_keys());
        assert!(matches!(
            sse_policy(&SseRequest::Cos).expect("cos").mode(),
            SseMode::CosManaged
        ));
        let bad_ctx = SseRequest::Kms {
            key_id: None,
            context: Some("not base64!".into()),
        };
        assert!(sse_policy(&bad_ctx)
            .unwrap_err()
            .message
            .contains("context"));
        let d = tempfile::tempdir().expect("tempdir");
        let k = d.path().join("k");
        std::fs::write(&k, "0123456789abcdef0123456789abcdef\n").expect("write");
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let req = SseRequest::Customer {
            key_file: k.clone(),
        };
        assert_eq!(sse_policy(&req).expect("ssec").customer_keys().len(), 1);
    }
}

//! The `cosmount` program: parse, resolve, daemonize, check the bucket, mount, serve.
//!
//! Order matters: everything that can fail for a user-visible reason (options,
//! credentials, key files, mountpoint, log file) is resolved in the original process and
//! printed directly. Then, unless `-f`, the process forks while still single-threaded;
//! only the child builds the tokio runtime, HEADs the bucket, creates the filesystem and
//! mounts, reporting readiness (or the reason for failure) to the waiting parent. In the
//! foreground the same steps run in-process and systemd is notified when `NOTIFY_SOCKET`
//! is set. `serve_mount` is generic over the client, so the daemon's mount-and-serve part
//! also runs over the in-memory store (tests/mount/over_mock.rs).

use super::args::{self, Command, MountArgs};
use super::check::{check_bucket, check_sse_keys, SsecCheck, CHECK_TIMEOUT};
use super::credentials::scrub_environment;
use super::daemon::{fork_and_wait, sd_notify_ready, Forked, Notifier};
use super::error::CliError;
use super::help;
use super::keyfile::load_key_file;
use super::limits;
use super::logging::{self, Destination};
use super::settings::{resolve, Settings};
use super::system_log::SystemLog;
use super::uploads::abort_old;
use crate::cos::config::CosClientConfig;
use crate::cos::credentials::CredentialSource;
use crate::cos::cvm_role::CvmRoleSource;
use crate::cos::http::CosHttpClient;
use crate::cos::{ClientCounters, ObjectClient};
use crate::fs::{CosFs, FsStats};
use crate::fuse::{serve, MountOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the parent waits for the daemon to report.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    let command = match args::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match command {
        Command::Help => {
            print!("{}", help::help());
            0
        }
        Command::Version => {
            println!("{}", help::version());
            0
        }
        Command::Mount(m) => mount_command(&m),
        Command::Uploads(u) => super::uploads::command(&u),
    }
}

fn fail(e: &CliError) -> i32 {
    eprintln!("cosmount: {}", e.message);
    e.code.code()
}

fn mount_command(m: &MountArgs) -> i32 {
    let settings = match resolve(m) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    // Nothing we spawn (fusermount3) needs the secrets; we hold them in memory now.
    scrub_environment();
    for w in &settings.warnings {
        eprintln!("cosmount: warning: {w}");
    }
    // A daemon without logfile= logs to the journal or syslog; opened here, before the
    // fork, so that the terminal hears when there is neither.
    let system_log = if settings.foreground || settings.log_file.is_some() {
        None
    } else {
        let log = SystemLog::open(&settings.mountpoint);
        if log.is_none() {
            eprintln!("cosmount: note: no system journal or syslog socket here (/run/systemd/journal/socket, /dev/log): the daemon's log is discarded; add -o logfile=FILE to keep it");
        }
        log
    };
    if settings.foreground {
        logging::init(settings.log_level, Destination::Stderr);
        return match execute(settings, None) {
            Ok(()) => 0,
            // The terminal (or journal) gets the message once, from `fail`.
            Err(e) => fail(&e),
        };
    }
    match fork_and_wait(READY_TIMEOUT, settings.log_file.as_ref()) {
        Err(e) => fail(&e),
        Ok(Forked::Parent(code)) => code.code(),
        Ok(Forked::Child(notifier)) => {
            let dest = match system_log {
                Some(mut log) => {
                    log.set_pid(std::process::id());
                    Destination::System(log)
                }
                None => Destination::Stderr,
            };
            logging::init(settings.log_level, dest);
            // Already printed by the parent; repeated for the log file.
            for w in &settings.warnings {
                tracing::warn!("{w}");
            }
            let notifier = Arc::new(Mutex::new(notifier));
            let result = execute(settings, Some(notifier.clone()));
            let mut n = notifier.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{}", e.message);
                    // Before readiness the parent prints the reason; after it, only the log has it.
                    n.fail(&e);
                    e.code.code()
                }
            }
        }
    }
}

/// One line at the end of a mount: what the client and the data paths counted.
fn log_statistics(client: ClientCounters, fs: &FsStats) {
    tracing::info!(
        requests = client.requests,
        retries = client.retries.retries,
        recovered_by_retry = client.retries.recovered,
        gave_up = client.retries.gave_up,
        credential_refreshes = client.credentials.refreshes,
        credential_refresh_failures = client.credentials.failures,
        reads_verified = fs.reads_verified,
        read_crc_mismatches = fs.read_mismatches,
        reads_without_crc = fs.reads_without_checksum,
        "statistics"
    );
}

/// Builds the runtime and the HTTP client, checks the bucket, then mounts and serves
/// until unmounted (`serve_mount`).
fn execute(mut s: Settings, notifier: Option<Arc<Mutex<Notifier>>>) -> Result<(), CliError> {
    // Before the runtime, the client and the FUSE session open their descriptors.
    let nofile = limits::raise_nofile();
    s.fs.max_staging_files = limits::staging_files_for(nofile);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cosmount-io")
        .build()
        .map_err(|e| CliError::mount(format!("cannot start the I/O runtime: {e}")))?;
    // Only the daemon's stderr is the log file; in the foreground it is the terminal.
    let reopen = if notifier.is_some() {
        s.log_path.clone()
    } else {
        None
    };
    let client = connect(
        &rt,
        s.client.clone(),
        s.role_source.clone(),
        &s.source.bucket,
        &s.endpoint_desc,
        &s.credentials_origin,
    )?;
    tracing::info!(
        bucket = %s.source.bucket,
        prefix = %s.source.prefix,
        endpoint = %s.endpoint_desc,
        credentials = %s.credentials_origin,
        "bucket reachable"
    );
    if s.ssec_check != SsecCheck::Off {
        let prefix = s.fs.prefix.clone();
        if let Some(msg) = rt.block_on(check_sse_keys(&client, &prefix, CHECK_TIMEOUT)) {
            if s.ssec_check == SsecCheck::Error {
                return Err(CliError::credentials(msg));
            }
            tracing::warn!("{msg}");
            if let Some(n) = &notifier {
                n.lock().unwrap_or_else(|p| p.into_inner()).warn(&msg);
            }
        }
    }
    let client = Arc::new(client);
    if let Some(addr) = s.metrics_listen {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| CliError::usage(format!("metrics_listen={addr}: cannot listen: {e}")))?;
        let c = client.clone();
        rt.spawn(crate::metrics::serve(listener, move || c.counters()));
    }
    if let Some(min) = s.incomplete_mpu_abort {
        // In the background: a bucket with many uploads must not delay the mount.
        let (c, prefix) = (client.clone(), s.fs.prefix.clone());
        rt.spawn(async move {
            let r = abort_old(&*c, &prefix, min, |u, r| {
                if let Err(e) = r {
                    tracing::warn!(
                        "incomplete_mpu_abort: could not abort the upload of {}: {e}",
                        u.key
                    );
                }
            })
            .await;
            match r {
                Ok(n) if n.aborted + n.failed > 0 => tracing::info!(
                    aborted = n.aborted,
                    failed = n.failed,
                    kept = n.kept,
                    "incomplete_mpu_abort: old incomplete uploads under the prefix aborted"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("incomplete_mpu_abort: cannot list the incomplete uploads: {e}")
                }
            }
        });
    }
    client.credentials().spawn_refresher(rt.handle());
    let (hup_client, key_file) = (client.clone(), s.ssec_key_file.clone());
    logging::spawn_signal_handlers(&rt, reopen, move || {
        let (client, key_file) = (hup_client.clone(), key_file.clone());
        async move {
            // SIGHUP re-reads the passwd file (or asks the metadata service) too,
            if client.credentials().is_refreshable() {
                let _ = client.credentials().refresh("SIGHUP").await;
            }
            // and the SSE-C key file: a rotated key takes effect without a remount.
            if let Some(path) = key_file {
                reload_key_file(client.sse(), &path);
            }
        }
    });
    let on_ready: Box<dyn FnOnce() + Send> = Box::new(move || match notifier {
        Some(n) => n.lock().unwrap_or_else(|p| p.into_inner()).ready(),
        None => sd_notify_ready(),
    });
    let served = serve_mount(client, &s, rt.handle(), on_ready);
    // Give in-flight tasks a moment; serving has already flushed what it could.
    rt.shutdown_timeout(Duration::from_secs(5));
    served
}

/// The HTTP client for a resolved configuration, checked with HEAD Bucket. For a CVM
/// role the first credentials are fetched from the metadata service first.
pub fn connect(
    rt: &tokio::runtime::Runtime,
    mut cfg: CosClientConfig,
    role: Option<Arc<CvmRoleSource>>,
    bucket: &str,
    endpoint_desc: &str,
    origin: &str,
) -> Result<CosHttpClient, CliError> {
    if let Some(role) = role {
        let fresh = rt
            .block_on(role.fetch())
            .map_err(|e| CliError::credentials(format!("{}: {e}", role.describe())))?;
        cfg.credentials = fresh.credentials;
        cfg.credentials_expire = fresh.expires;
        cfg.credential_source = Some(role);
    }
    let client = CosHttpClient::new(cfg)
        .map_err(|e| super::check::explain(&e, bucket, endpoint_desc, origin))?;
    rt.block_on(check_bucket(
        &client,
        bucket,
        endpoint_desc,
        origin,
        CHECK_TIMEOUT,
    ))?;
    Ok(client)
}

/// Reads the SSE-C key file again into `policy` (SIGHUP); a file that cannot be used
/// leaves the keys in force and says why.
fn reload_key_file(policy: &crate::cos::SsePolicy, path: &std::path::Path) {
    let outcome = load_key_file(path)
        .map_err(|e| e.message)
        .and_then(|keys| policy.reload_customer_keys(keys));
    match outcome {
        Ok(r) => tracing::info!(
            keys = r.keys,
            write_key_md5 = %r.write_key_md5,
            write_key_changed = r.write_key_changed,
            "SIGHUP: SSE-C key file {} read again", path.display()
        ),
        Err(e) => tracing::warn!(
            "SIGHUP: SSE-C key file {} not reloaded, the keys in force stay: {e}",
            path.display()
        ),
    }
}

/// Creates the filesystem over `client`, mounts it as `s` says and serves until
/// unmounted, then logs the statistics line. The part of the daemon that does not care
/// which client it has: the HTTP client in production, the in-memory store in tests.
/// `on_ready` runs once the mount is up (readiness to the parent or to systemd).
pub fn serve_mount<C: ObjectClient>(
    client: Arc<C>,
    s: &Settings,
    rt: &tokio::runtime::Handle,
    on_ready: Box<dyn FnOnce() + Send>,
) -> Result<(), CliError> {
    let fs = CosFs::new(client.clone(), s.fs.clone(), rt.clone())
        .map_err(|e| CliError::mount(format!("cannot initialise the filesystem: {e}")))?;
    let counted = fs.clone();
    let opts = MountOptions {
        mountpoint: s.mountpoint.clone(),
        fsname: s.fsname.clone(),
        allow_other: s.allow_other,
        read_only: s.read_only,
        threads: s.fuse_threads.unwrap_or(help::DEFAULT_FUSE_THREADS),
        auto_unmount: s.auto_unmount,
    };
    let mountpoint = s.mountpoint.display().to_string();
    let mounted = Arc::new(AtomicBool::new(false));
    let mounted_flag = mounted.clone();
    let on_ready: Box<dyn FnOnce() + Send> = Box::new(move || {
        mounted_flag.store(true, Ordering::SeqCst);
        tracing::info!(mountpoint = %mountpoint, "mounted");
        on_ready();
    });
    let served = serve(fs, &opts, on_ready);
    log_statistics(client.counters(), &counted.stats());
    drop(counted);
    served.map_err(|e| {
        if mounted.load(Ordering::SeqCst) {
            return CliError::mount(format!("{e}"));
        }
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            if rustix::process::geteuid().is_root() {
                " (is /dev/fuse available in this container?)"
            } else {
                " (a non-root mount needs access to /dev/fuse or a setuid fusermount3, \
                 write access to the mountpoint, and user_allow_other in /etc/fuse.conf \
                 for allow_other)"
            }
        } else {
            ""
        };
        CliError::mount(format!(
            "mounting {} failed: {e}{hint}",
            s.mountpoint.display()
        ))
    })?;
    tracing::info!("unmounted");
    Ok(())
}

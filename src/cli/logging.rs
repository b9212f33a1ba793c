//! Logging setup: `tracing` to stderr. In the foreground that is the terminal (or the
//! journal under systemd); in the daemon stderr has been pointed at `logfile=` (opened
//! in append mode) or /dev/null, so one writer serves both. `dbglevel=`/`-d` pick the
//! level for cosmount's own events (dependencies stay at `warn`); the `COSMOUNT_LOG`
//! environment variable, an `EnvFilter` directive, overrides both. Panics are logged
//! before the default hook runs, so a daemon's crash reaches its log file. SIGHUP
//! reopens the log file (for logrotate) instead of killing the daemon.

use super::error::CliError;
use super::options::LogLevel;
use std::fs::File;
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use tracing_subscriber::EnvFilter;

/// The filter directive for `level`: ours at `level`, everything else at most `warn`.
pub fn directive(level: LogLevel) -> String {
    match level {
        LogLevel::Error => "error".to_string(),
        LogLevel::Warn => "warn".to_string(),
        l => format!("warn,cosmount={}", l.directive()),
    }
}

/// Installs the global subscriber. Safe to call twice (the second call does nothing).
pub fn init(level: LogLevel) {
    let filter = std::env::var("COSMOUNT_LOG")
        .ok()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(directive(level)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("panic: {info}");
        default_hook(info);
    }));
}

/// Opens `logfile=` for appending (created 0640), before the fork so a bad path is
/// reported on the terminal.
pub fn open_log_file(path: &Path) -> Result<File, CliError> {
    File::options()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| CliError::usage(format!("cannot open logfile {}: {e}", path.display())))
}

/// Points stdout/stderr at a freshly opened `path` (after logrotate moved the old file).
pub fn reopen_log_file(path: &Path) -> Result<(), CliError> {
    let f = open_log_file(path)?;
    rustix::stdio::dup2_stdout(&f)
        .and_then(|()| rustix::stdio::dup2_stderr(&f))
        .map_err(|e| CliError::usage(format!("cannot redirect output to {}: {e}", path.display())))
}

/// Handles SIGHUP on the runtime for the life of the process: reopens `log_path` when
/// the daemon logs to a file, otherwise just notes the signal (its default action would
/// kill the mount).
pub fn spawn_sighup_handler(rt: &tokio::runtime::Runtime, log_path: Option<std::path::PathBuf>) {
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot handle SIGHUP: {e}");
                return;
            }
        };
        while hup.recv().await.is_some() {
            match &log_path {
                Some(p) => match reopen_log_file(p) {
                    Ok(()) => tracing::info!(path = %p.display(), "SIGHUP: log file reopened"),
                    Err(e) => tracing::error!("SIGHUP: {}", e.message),
                },
                None => tracing::info!("SIGHUP ignored (no logfile= to reopen)"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        assert_eq!(directive(LogLevel::Error), "error");
        assert_eq!(directive(LogLevel::Warn), "warn");
        assert_eq!(directive(LogLevel::Debug), "warn,cosmount=debug");
        for l in [LogLevel::Info, LogLevel::Trace] {
            assert!(EnvFilter::try_new(directive(l)).is_ok());
        }
    }

    #[test]
    fn log_file_appends() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("log");
        std::fs::write(&p, "old\n").expect("write");
        let mut f = open_log_file(&p).expect("open");
        std::io::Write::write_all(&mut f, b"new\n").expect("append");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "old\nnew\n");
        assert!(open_log_file(&d.path().join("no/such/dir/log")).is_err());
    }
}

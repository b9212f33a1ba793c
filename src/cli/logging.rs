//! Logging setup: one `tracing` subscriber whose lines go to stderr or to the system log.
//! In the foreground stderr is the terminal (or the journal under systemd); a daemon
//! with `logfile=` has its stderr pointed at that file; a daemon without one logs to the
//! journal or syslog (`system_log`), and only when neither is there to nowhere (the
//! mount command says so). `dbglevel=`/`-d` pick the level; the `COSMOUNT_LOG`
//! environment variable, an `EnvFilter` directive, overrides it at start. At the default
//! level a healthy mount is quiet: fuser's own chatter (a reply to an interrupted request,
//! its unmount attempt after ours) is off below debug. SIGUSR2 cycles the level at run
//! time, SIGHUP reopens the log file (for logrotate) instead of killing the daemon.
//! Panics are logged before the default hook runs, so a daemon's crash reaches its log.

use super::error::CliError;
use super::options::LogLevel;
use super::system_log::SystemLog;
use std::fs::File;
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// Where log lines go.
pub enum Destination {
    /// stderr: the terminal, systemd's capture of it, or the `logfile=` it points at.
    Stderr,
    /// The journal or syslog.
    System(SystemLog),
}

/// The filter directive for `level`: ours at `level`, everything else at most `warn`,
/// fuser quiet below debug (its reply errors are interrupted requests, its unmount
/// warning follows our own unmount).
pub fn directive(level: LogLevel) -> String {
    match level {
        LogLevel::Error => "error,fuser=off".to_string(),
        LogLevel::Warn => "warn,fuser=off".to_string(),
        LogLevel::Info => "warn,fuser=off,cosmount=info".to_string(),
        LogLevel::Debug => "warn,cosmount=debug".to_string(),
        LogLevel::Trace => "warn,fuser=debug,cosmount=trace".to_string(),
    }
}

/// The level in force and the handle that changes it (set once by `init`).
struct LevelControl {
    level: Mutex<LogLevel>,
    filter: reload::Handle<EnvFilter, Registry>,
}

static CONTROL: OnceLock<LevelControl> = OnceLock::new();

/// Installs the global subscriber. Safe to call twice (the second call does nothing).
pub fn init(level: LogLevel, dest: Destination) {
    let filter = std::env::var("COSMOUNT_LOG")
        .ok()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(directive(level)));
    let (filter, handle) = reload::Layer::new(filter);
    let (to_stderr, to_system) = match dest {
        Destination::Stderr => (
            Some(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            ),
            None,
        ),
        // The journal and syslog stamp the time and know the level from the priority.
        Destination::System(log) => (
            None,
            Some(
                fmt::layer()
                    .with_writer(log)
                    .with_ansi(false)
                    .without_time()
                    .with_target(false),
            ),
        ),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(to_stderr)
        .with(to_system)
        .try_init()
        .is_ok();
    if !installed {
        return;
    }
    let _ = CONTROL.set(LevelControl {
        level: Mutex::new(level),
        filter: handle,
    });
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("panic: {info}");
        default_hook(info);
    }));
}

/// Switches to the next level (`LogLevel::cycled`); the new level, or None before `init`.
pub fn cycle_level() -> Option<LogLevel> {
    let c = CONTROL.get()?;
    let mut level = c.level.lock().unwrap_or_else(|p| p.into_inner());
    let next = level.cycled();
    c.filter.reload(EnvFilter::new(directive(next))).ok()?;
    *level = next;
    Some(next)
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

/// Handles SIGHUP and SIGUSR2 on the runtime for the life of the process. SIGHUP reopens
/// `log_path` when the daemon logs to a file (its default action would kill the mount),
/// then runs `on_hup` (the credentials' refresh); SIGUSR2 cycles the log level.
pub fn spawn_signal_handlers<F, Fut>(
    rt: &tokio::runtime::Runtime,
    log_path: Option<std::path::PathBuf>,
    on_hup: F,
) where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    use tokio::signal::unix::{signal, SignalKind};
    rt.spawn(async move {
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
                None => tracing::info!("SIGHUP: no logfile= to reopen"),
            }
            on_hup().await;
        }
    });
    rt.spawn(async move {
        let mut usr2 = match signal(SignalKind::user_defined2()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot handle SIGUSR2: {e}");
                return;
            }
        };
        while usr2.recv().await.is_some() {
            if let Some(level) = cycle_level() {
                // At WARN so that it shows at every level but error: the admin asked.
                tracing::warn!("SIGUSR2: log level is now {}", level.directive());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        assert_eq!(directive(LogLevel::Warn), "warn,fuser=off");
        assert_eq!(directive(LogLevel::Debug), "warn,cosmount=debug");
        let mut l = LogLevel::Error;
        for _ in 0..5 {
            assert!(EnvFilter::try_new(directive(l)).is_ok(), "{l:?}");
            l = l.cycled();
        }
        assert_eq!(l, LogLevel::Error, "five steps come back");
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

//! Exit codes and the one error type of the command line: a message for the user and
//! the exit code that classifies it. Messages never contain secrets; callers format
//! them from option names, paths and line numbers only.

use std::fmt;

/// Process exit codes, documented in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Ok = 0,
    /// Bad command line or configuration (unknown option, bad value, missing mountpoint).
    Usage = 1,
    /// Credentials or key material missing, malformed, unsafe file modes, or rejected by COS.
    Credentials = 2,
    /// The endpoint or bucket cannot be reached (DNS, TCP, TLS, timeout, no such bucket).
    Endpoint = 3,
    /// The FUSE mount itself failed (mountpoint busy, /dev/fuse, fusermount3, readiness timeout).
    Mount = 4,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Inverse of `code`, for the status byte the daemon child sends its parent.
    pub fn from_code(c: u8) -> Option<ExitCode> {
        Some(match c {
            0 => ExitCode::Ok,
            1 => ExitCode::Usage,
            2 => ExitCode::Credentials,
            3 => ExitCode::Endpoint,
            4 => ExitCode::Mount,
            _ => return None,
        })
    }
}

/// A fatal command-line error: printed as `cosmount: <message>` and exited with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub code: ExitCode,
    pub message: String,
}

impl CliError {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(ExitCode::Usage, message)
    }

    pub fn credentials(message: impl Into<String>) -> Self {
        CliError::new(ExitCode::Credentials, message)
    }

    pub fn endpoint(message: impl Into<String>) -> Self {
        CliError::new(ExitCode::Endpoint, message)
    }

    pub fn mount(message: impl Into<String>) -> Self {
        CliError::new(ExitCode::Mount, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

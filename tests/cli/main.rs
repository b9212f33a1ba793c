//! The `cosmount` command line without a mount: usage errors and exit codes, secrets kept
//! out of `ps` and logs, and the daemon's process hardening.

#[path = "../support/host.rs"]
mod host;

mod errors;
mod process;
mod secrets;

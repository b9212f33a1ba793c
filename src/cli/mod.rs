//! The cosfs-compatible command line: `cosmount BUCKET-APPID[:/PREFIX] MOUNTPOINT [-f]
//! [-d] [-o OPT[,OPT...]]...`, also run by mount(8) through mount.fuse3.
//!
//! `args` splits argv, `source` reads the bucket and prefix, `options` types every `-o`
//! option, `credentials`/`passwd` find the SecretId/SecretKey, `keyfile` loads SSE-C
//! keys, `mountpoint` checks the target, and `settings` turns it all into the client,
//! filesystem and mount configurations. `run` drives a mount: `daemon` forks with a
//! readiness handshake (or notifies systemd in the foreground), `check` HEADs the bucket
//! before mounting, `logging` sets up tracing. `harden` makes the process non-dumpable
//! before any secret is read, `limits` raises the open-file limit. Exit codes live in
//! `error`, texts in `help`.

pub mod args;
pub mod check;
pub mod credentials;
pub mod daemon;
pub mod error;
pub mod harden;
pub mod help;
pub mod keyfile;
pub mod limits;
pub mod logging;
pub mod malloc;
pub mod mountpoint;
pub mod options;
pub mod passwd;
pub mod run;
pub mod settings;
pub mod source;
pub mod system_log;
pub mod uploads;

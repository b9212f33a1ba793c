//! The cosfs-compatible command line: `cosmount BUCKET-APPID[:/PREFIX] MOUNTPOINT [-f]
//! [-d] [-o OPT[,OPT...]]...`.
//!
//! `args` splits argv, `source` reads the bucket and prefix, `options` types every `-o`
//! option, `credentials`/`passwd` find the SecretId/SecretKey, `keyfile` loads SSE-C
//! keys. Exit codes live in `error`.

pub mod args;
pub mod check;
pub mod credentials;
pub mod daemon;
pub mod error;
pub mod help;
pub mod keyfile;
pub mod logging;
pub mod mountpoint;
pub mod options;
pub mod passwd;
pub mod settings;
pub mod source;
pub mod run;

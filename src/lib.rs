//! cosmount: a FUSE filesystem over a Tencent Cloud COS bucket, and `coslocal`, a strict
//! COS-compatible server to run it against without a cloud account.
//!
//! Layers, bottom up: `cos` (the only code that speaks HTTP to COS), `fs` (the filesystem
//! core, async and testable without a kernel), `fuse` (the thin fuser adapter, where
//! errno values are decided), `cli` (command line, credentials, daemonizing) and
//! `server` (coslocal).

pub mod cli;
pub mod cos;
pub mod fs;
pub mod fuse;
pub mod server;

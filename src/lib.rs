//! cosmount: a FUSE filesystem over a Tencent Cloud COS bucket. (`coslocal`, the strict
//! COS-compatible server to run it against without a cloud account, is its own package
//! in `coslocal/`; the wire facts both share are in `wire/`.)
//!
//! Layers, bottom up: `cos` (the only code that speaks HTTP to COS), `fs` (the filesystem
//! core, async and testable without a kernel), `fuse` (the thin fuser adapter, where
//! errno values are decided) and `cli` (command line, credentials, daemonizing).

// Every unsafe block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod cos;
pub mod fs;
pub mod fuse;
pub mod metrics;

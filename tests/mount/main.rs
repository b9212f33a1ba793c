//! Real FUSE mounts through the kernel: `cosmount` over the coslocal binary (HTTPS on
//! loopback), and the FUSE adapter over the in-memory store. Each test has its own
//! coslocal, bucket, request log and mount point (see the harness), so they run in
//! parallel.

#[path = "../support/bins.rs"]
mod bins;
#[path = "../support/harness/mod.rs"]
mod harness;
#[path = "../support/host.rs"]
mod host;
#[path = "../support/model.rs"]
mod model;
// Only its request builder: the harness test sends hand-signed requests to the binary.
#[allow(dead_code, unused_imports)]
#[path = "../support/signed.rs"]
mod signed;

mod backup_tools;
mod bucket_check;
mod cli;
mod concurrency;
mod credentials;
mod differential;
mod durability;
mod durability_model;
mod exit;
mod faults;
mod harness_coslocal;
mod logging;
mod metrics;
mod over_mock;
mod pjdfstest;
mod semantics;
mod sse;
mod ssec_interop;
mod tools;
mod uploads;

//! Where the test suite finds the workspace's binaries.

use std::path::{Path, PathBuf};

/// The coslocal binary: another package of the workspace, built beside cosmount's (plain
/// `cargo test` or `cargo build` at the root builds both).
pub fn coslocal() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_cosmount")).with_file_name("coslocal");
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build -p coslocal` (or plain `cargo build`)",
        p.display()
    );
    p
}

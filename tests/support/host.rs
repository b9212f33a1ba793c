//! What the test host has: tools on PATH, root, CI mode (in which whatever a test needs
//! and is missing is a failure, never a skip), and polling with a deadline.

use std::path::PathBuf;
use std::time::Duration;

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Refuses to go on without what a test needs: panics in CI, prints a skip locally and
/// returns false.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("{what} is required in CI (env CI is set) and is missing");
    }
    eprintln!("SKIP: {what} is missing; this kernel-level test did not run");
    false
}

/// `which`: the first executable named `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

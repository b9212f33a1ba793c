//! The daemon's open-file limit: raised to the hard limit at start, and the bound on
//! staging files derived from it. Every staging file, HTTP connection, FUSE device clone
//! and log file is a descriptor; the common default soft limit of 1024 would make busy
//! mounts fail with EMFILE long before memory or disk run out.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors left for everything that is not a staging file: HTTP connections
/// (`parallel_count` per transfer, several transfers at once), the FUSE device and its
/// per-thread clones, the log file, the runtime's own.
pub const RESERVED_FDS: u64 = 512;

/// The staging-file bound never goes below this, however low the limit: a mount that
/// cannot stage a few files at once cannot do random writes at all.
pub const MIN_STAGING_FILES: usize = 16;

/// A limit as a number; `None` (unlimited) is `u64::MAX`.
fn value(v: Option<u64>) -> u64 {
    v.unwrap_or(u64::MAX)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit in force
/// afterwards (unchanged if it could not be raised, which is logged).
pub fn raise_nofile() -> u64 {
    let r = getrlimit(Resource::Nofile);
    if value(r.current) < value(r.maximum) {
        // Raising the soft limit up to the hard one needs no privilege.
        let raised = Rlimit {
            current: r.maximum,
            maximum: r.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, soft = value(r.current), "cannot raise the open-file limit");
        }
    }
    let now = value(getrlimit(Resource::Nofile).current);
    tracing::debug!(soft = now, hard = value(r.maximum), "open-file limit");
    now
}

/// How many staging files may be open at once under an open-file limit of `limit`.
pub fn staging_files_for(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(RESERVED_FDS))
        .unwrap_or(usize::MAX)
        .max(MIN_STAGING_FILES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_bound_leaves_the_reserve() {
        assert_eq!(staging_files_for(1024), 512);
        assert_eq!(staging_files_for(524_288), 524_288 - 512);
        assert_eq!(staging_files_for(600), 88);
        assert_eq!(staging_files_for(256), MIN_STAGING_FILES);
        assert_eq!(staging_files_for(0), MIN_STAGING_FILES);
    }

    /// Lowers this test process's soft limit (at most to half the hard limit, which no
    /// other test comes near), then checks that it is raised back to the hard limit.
    #[test]
    fn soft_limit_is_raised_to_the_hard_limit() {
        let before = getrlimit(Resource::Nofile);
        let hard = value(before.maximum);
        let low = Rlimit {
            current: Some(value(before.current).min(hard / 2).max(256).min(hard)),
            maximum: before.maximum,
        };
        // Lowering the soft limit is always allowed.
        setrlimit(Resource::Nofile, low).expect("setrlimit");
        let got = raise_nofile();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(got, value(after.current));
        assert_eq!(after.current, before.maximum);
    }
}

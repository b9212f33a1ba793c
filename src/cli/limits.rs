//! The daemon's open-file limit: raised to the hard limit at start, and the bound on
//! staging files derived from it. Every staging file, HTTP connection, FUSE device clone
//! and log file is a descriptor; the common default soft limit of 1024 would make busy
//! mounts fail with EMFILE long before memory or disk run out.

use std::io;

/// Descriptors left for everything that is not a staging file: HTTP connections
/// (`parallel_count` per transfer, several transfers at once), the FUSE device and its
/// per-thread clones, the log file, the runtime's own.
pub const RESERVED_FDS: u64 = 512;

/// The staging-file bound never goes below this, however low the limit: a mount that
/// cannot stage a few files at once cannot do random writes at all.
pub const MIN_STAGING_FILES: usize = 16;

fn nofile() -> io::Result<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

// rlim_t is u64 on 64-bit Linux (the conversion is then the identity) but not everywhere.
#[allow(clippy::useless_conversion)]
fn to_u64(v: libc::rlim_t) -> u64 {
    u64::from(v)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit in force
/// afterwards (unchanged if it could not be raised, which is logged).
pub fn raise_nofile() -> u64 {
    let r = match nofile() {
        Ok(r) => r,
        Err(e) => {
            // Not expected on Linux; the classic default keeps the staging bound modest.
            tracing::warn!(error = %e, "cannot read the open-file limit; assuming 1024");
            return 1024;
        }
    };
    if r.rlim_cur < r.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the
        // hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            let e = io::Error::last_os_error();
            tracing::warn!(error = %e, soft = to_u64(r.rlim_cur), "cannot raise the open-file limit");
        }
    }
    let now = nofile().map_or(r.rlim_cur, |n| n.rlim_cur);
    tracing::debug!(
        soft = to_u64(now),
        hard = to_u64(r.rlim_max),
        "open-file limit"
    );
    to_u64(now)
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
        let before = nofile().expect("getrlimit");
        let low = libc::rlimit {
            rlim_cur: before
                .rlim_cur
                .min(before.rlim_max / 2)
                .max(256)
                .min(before.rlim_max),
            rlim_max: before.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; lowering the soft limit is always allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
        let got = raise_nofile();
        let after = nofile().expect("getrlimit");
        assert_eq!(got, to_u64(after.rlim_cur));
        assert_eq!(after.rlim_cur, before.rlim_max);
    }
}

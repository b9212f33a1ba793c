//! Keeping the secrets the daemon holds (SecretKey, session token, SSE-C keys) out of
//! core dumps and away from other processes of the same user: the process makes itself
//! non-dumpable and sets its core-file size to zero before it reads any of them.

use std::io;

/// `prctl(PR_SET_DUMPABLE, 0)` and a zero soft RLIMIT_CORE.
///
/// Non-dumpable means no core dump in the default configuration, no `ptrace` attach and
/// no reading of /proc/PID/{mem,environ,...} by processes of the same (non-root) user:
/// those files become owned by root. The core limit covers what non-dumpable does not:
/// with `fs.suid_dumpable=2` the kernel still dumps non-dumpable processes (for root),
/// and systemd-coredump stores nothing for a process whose core limit is zero.
pub fn make_non_dumpable() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_DUMPABLE takes one integer argument and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut core) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Only the soft limit: lowering it needs no privilege.
    core.rlim_cur = 0;
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &core) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes the test process itself non-dumpable (harmless: it only loses core dumps).
    #[test]
    fn process_becomes_non_dumpable_without_core_files() {
        make_non_dumpable().expect("prctl/setrlimit");
        // SAFETY: PR_GET_DUMPABLE takes no arguments and returns the flag.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
        let mut core = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: getrlimit writes into the struct we own.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut core) }, 0);
        assert_eq!(core.rlim_cur, 0);
    }
}

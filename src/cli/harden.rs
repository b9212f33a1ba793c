//! Keeping the secrets the daemon holds (SecretKey, session token, SSE-C keys) out of
//! core dumps and away from other processes of the same user: the process makes itself
//! non-dumpable and sets its core-file size to zero before it reads any of them.

use rustix::process::{
    getrlimit, set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit,
};
use std::io;

/// `prctl(PR_SET_DUMPABLE, 0)` and a zero soft RLIMIT_CORE.
///
/// Non-dumpable means no core dump in the default configuration, no `ptrace` attach and
/// no reading of /proc/PID/{mem,environ,...} by processes of the same (non-root) user:
/// those files become owned by root. The core limit covers what non-dumpable does not:
/// with `fs.suid_dumpable=2` the kernel still dumps non-dumpable processes (for root),
/// and systemd-coredump stores nothing for a process whose core limit is zero.
pub fn make_non_dumpable() -> io::Result<()> {
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    // Only the soft limit: lowering it needs no privilege.
    let core = getrlimit(Resource::Core);
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: core.maximum,
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes the test process itself non-dumpable (harmless: it only loses core dumps).
    #[test]
    fn process_becomes_non_dumpable_without_core_files() {
        make_non_dumpable().expect("prctl/setrlimit");
        assert_eq!(
            rustix::process::dumpable_behavior().expect("PR_GET_DUMPABLE"),
            DumpableBehavior::NotDumpable
        );
        assert_eq!(getrlimit(Resource::Core).current, Some(0));
    }
}

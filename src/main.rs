//! The `cosmount` binary; everything lives in `cosmount::cli`.

// Every unsafe block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

use cosmount::cli::{error::ExitCode, harden, malloc, run};

fn main() {
    // First of all, before credentials, key files or the environment are read: from here
    // on no core dump or same-user ptrace can capture the secrets this process will hold.
    if let Err(e) = harden::make_non_dumpable() {
        eprintln!("cosmount: cannot keep secrets out of core dumps (prctl PR_SET_DUMPABLE): {e}");
        std::process::exit(ExitCode::Mount.code());
    }
    // Before any thread: the allocator returns freed buffers instead of hoarding them.
    malloc::tune();
    std::process::exit(run::main());
}

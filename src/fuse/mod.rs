//! (in progress: owned by the filesystem helper) The only `impl fuser::Filesystem`.

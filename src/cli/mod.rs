//! (in progress: owned by the CLI helper) The cosfs-compatible command line.

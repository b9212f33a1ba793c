//! FUSE: `adapter` (the thin `fuser::Filesystem` over `CosFs`, where errno values are
//! decided), `session` (mounting, signals, read-ahead, unmounting only our own mount) and
//! `lazy_unmount` (the detach that a busy mount needs).

mod adapter;
pub mod lazy_unmount;
mod session;

pub use adapter::{errno_of, CosFuse};
pub use session::{serve, MountOptions};

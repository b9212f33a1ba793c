//! (in progress: owned by the filesystem helper) The filesystem core.
pub mod config;
pub use config::FsConfig;

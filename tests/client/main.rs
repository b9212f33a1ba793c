//! The COS client (`CosHttpClient`) against an in-process coslocal over HTTPS, and
//! against the official COS Python SDK through the same server.

#[path = "../support/local.rs"]
mod local;

mod over_coslocal;
mod sdk_interop;

//! Shared setup of the integration tests (`mod common;` in a test file).

pub mod coslocal;

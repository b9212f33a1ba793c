//! coslocal on its own: how strict it is (signatures, SSE-C rules, part rules), what it
//! stores and how it restarts, its faults and control endpoint, its wire options, and its
//! binary.

#[path = "../support/bins.rs"]
mod bins;
#[path = "../support/signed.rs"]
mod signed;

mod basic;
mod binary;
mod faults;
mod strict;
mod wire_options;

//! `cos-wire`: the facts of the COS XML API that both sides of the wire need, the client
//! in `cosmount` and the test server `coslocal`, so each is written once: the operation
//! list ([`op`]), the storage classes ([`STORAGE_CLASSES`]), the key length limit
//! ([`MAX_KEY_LEN`]), request signing ([`sign`]), the SSE header names ([`sse_headers`]),
//! CRC-64/XZ with its combination rule for multipart objects ([`crc64`]) and the XML
//! element tree and escaping ([`xml`]), and what a listing page holds ([`list`]).
//!
//! It has no I/O and no async: only pure functions and constants, small enough for the
//! server to depend on without pulling in the client, and the client without the server.

// Every unsafe block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod crc64;
pub mod list;
pub mod op;
pub mod sign;
pub mod sse_headers;
pub mod xml;

pub use op::{CosOp, KeyUse, OpFacts};

/// The longest object key COS accepts, in bytes of its UTF-8 form.
pub const MAX_KEY_LEN: usize = 850;

/// The `x-cos-storage-class` values COS accepts, spelled as COS spells them.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "ARCHIVE",
    "DEEP_ARCHIVE",
    "INTELLIGENT_TIERING",
    "MAZ_STANDARD",
    "MAZ_STANDARD_IA",
    "MAZ_INTELLIGENT_TIERING",
];

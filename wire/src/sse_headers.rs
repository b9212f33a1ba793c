//! The names of the server-side encryption headers (SSE-COS, SSE-KMS, SSE-C and the
//! SSE-C copy-source triple), as the client sends them and the server reads them. HTTP
//! header names are case-insensitive; these are the spellings COS documents.

pub const H_SSE: &str = "x-cos-server-side-encryption";
pub const H_SSE_KMS_KEY_ID: &str = "x-cos-server-side-encryption-cos-kms-key-id";
pub const H_SSE_CONTEXT: &str = "x-cos-server-side-encryption-context";
pub const H_SSEC_ALGORITHM: &str = "x-cos-server-side-encryption-customer-algorithm";
pub const H_SSEC_KEY: &str = "x-cos-server-side-encryption-customer-key";
pub const H_SSEC_KEY_MD5: &str = "x-cos-server-side-encryption-customer-key-MD5";
pub const H_SRC_SSEC_ALGORITHM: &str =
    "x-cos-copy-source-server-side-encryption-customer-algorithm";
pub const H_SRC_SSEC_KEY: &str = "x-cos-copy-source-server-side-encryption-customer-key";
pub const H_SRC_SSEC_KEY_MD5: &str = "x-cos-copy-source-server-side-encryption-customer-key-MD5";

//! `CosOp`: the list of COS operations cosmount performs.
//!
//! Every request the client sends is tagged with one of these. The SSE policy, the retry
//! rules and the error messages all match on it exhaustively, so adding an operation
//! does not compile until each of them has decided what it means for that operation.

/// One COS XML API operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CosOp {
    HeadBucket,
    HeadObject,
    GetObject,
    ListObjects,
    PutObject,
    DeleteObject,
    DeleteMultiple,
    CopyObject,
    InitiateMultipart,
    UploadPart,
    UploadPartCopy,
    CompleteMultipart,
    AbortMultipart,
    ListParts,
    ListMultipartUploads,
}

impl CosOp {
    /// Every operation, for tests that must cover them all.
    pub const ALL: [CosOp; 15] = [
        CosOp::HeadBucket,
        CosOp::HeadObject,
        CosOp::GetObject,
        CosOp::ListObjects,
        CosOp::PutObject,
        CosOp::DeleteObject,
        CosOp::DeleteMultiple,
        CosOp::CopyObject,
        CosOp::InitiateMultipart,
        CosOp::UploadPart,
        CosOp::UploadPartCopy,
        CosOp::CompleteMultipart,
        CosOp::AbortMultipart,
        CosOp::ListParts,
        CosOp::ListMultipartUploads,
    ];

    /// The name used in logs and error messages.
    pub fn name(self) -> &'static str {
        match self {
            CosOp::HeadBucket => "HeadBucket",
            CosOp::HeadObject => "HeadObject",
            CosOp::GetObject => "GetObject",
            CosOp::ListObjects => "ListObjects",
            CosOp::PutObject => "PutObject",
            CosOp::DeleteObject => "DeleteObject",
            CosOp::DeleteMultiple => "DeleteMultiple",
            CosOp::CopyObject => "CopyObject",
            CosOp::InitiateMultipart => "InitiateMultipartUpload",
            CosOp::UploadPart => "UploadPart",
            CosOp::UploadPartCopy => "UploadPartCopy",
            CosOp::CompleteMultipart => "CompleteMultipartUpload",
            CosOp::AbortMultipart => "AbortMultipartUpload",
            CosOp::ListParts => "ListParts",
            CosOp::ListMultipartUploads => "ListMultipartUploads",
        }
    }

    /// Whether an ambiguous failure (a timeout, a reset, an answer cut off) may be retried.
    /// Errors that prove the server did not act (5xx, SlowDown) are retried for every
    /// operation. Every operation cosmount sends is safe to repeat, some only with the
    /// recovery the client adds for them: a repeated Initiate can leave an orphan upload
    /// (the client finds and aborts it), a repeated Complete finds its upload gone (the
    /// client accepts it only if HEAD shows the object the parts make), a repeated copy is
    /// pinned to the source version with `x-cos-copy-source-If-Match`.
    pub fn is_idempotent(self) -> bool {
        match self {
            CosOp::HeadBucket
            | CosOp::HeadObject
            | CosOp::GetObject
            | CosOp::ListObjects
            | CosOp::PutObject
            | CosOp::DeleteObject
            | CosOp::DeleteMultiple
            | CosOp::CopyObject
            | CosOp::UploadPart
            | CosOp::UploadPartCopy
            | CosOp::CompleteMultipart
            | CosOp::AbortMultipart
            | CosOp::ListParts
            | CosOp::ListMultipartUploads
            | CosOp::InitiateMultipart => true,
        }
    }
}

impl std::fmt::Display for CosOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

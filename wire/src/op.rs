//! `CosOp`: the list of COS operations cosmount performs, and [`OpFacts`], the one table of
//! what each of them is.
//!
//! Every request the client sends is tagged with one of these, and coslocal names every
//! request it receives with one. The facts that several places need (which operations
//! choose a new object's encryption, which carry an SSE-C key and whose, which are safe
//! to repeat) live in [`CosOp::facts`] alone: the client's SSE policy, its request builder
//! and retry rules, the in-memory store, coslocal's checks and the tests' expectations all
//! read it. Its match is exhaustive, so a new operation does not compile until its facts
//! are written down.

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

    /// The operation whose [`name`](CosOp::name) is `name`.
    pub fn from_name(name: &str) -> Option<CosOp> {
        CosOp::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Whether an ambiguous failure (a timeout, a reset, an answer cut off) may be retried
    /// (see [`OpFacts::idempotent`]).
    pub fn is_idempotent(self) -> bool {
        self.facts().idempotent
    }

    /// What COS does with this operation.
    pub const fn facts(self) -> OpFacts {
        use KeyUse::{Read, Write};
        let f = OpFacts {
            chooses_encryption: false,
            describes_new_object: false,
            customer_key: None,
            copy_source_key: false,
            addresses_object: true,
            idempotent: true,
        };
        match self {
            CosOp::PutObject | CosOp::InitiateMultipart => OpFacts {
                chooses_encryption: true,
                describes_new_object: true,
                customer_key: Some(Write),
                ..f
            },
            CosOp::CopyObject => OpFacts {
                chooses_encryption: true,
                describes_new_object: true,
                customer_key: Some(Write),
                copy_source_key: true,
                ..f
            },
            CosOp::CompleteMultipart => OpFacts {
                describes_new_object: true,
                ..f
            },
            CosOp::HeadObject | CosOp::GetObject => OpFacts {
                customer_key: Some(Read),
                ..f
            },
            // Parts inherit SSE-COS/KMS from Initiate; SSE-C parts repeat its key.
            CosOp::UploadPart => OpFacts {
                customer_key: Some(Write),
                ..f
            },
            CosOp::UploadPartCopy => OpFacts {
                customer_key: Some(Write),
                copy_source_key: true,
                ..f
            },
            CosOp::DeleteObject | CosOp::AbortMultipart | CosOp::ListParts => f,
            CosOp::HeadBucket
            | CosOp::ListObjects
            | CosOp::DeleteMultiple
            | CosOp::ListMultipartUploads => OpFacts {
                addresses_object: false,
                ..f
            },
        }
    }
}

/// Whose SSE-C key a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// The key new data is written with (the first key of the history): PUT, Initiate,
    /// every part, the destination of a copy.
    Write,
    /// The key of the existing object the request reads, and only if it is SSE-C.
    Read,
}

/// The facts of one operation, as COS documents them (the SSE rules are written out row by
/// row in this module's test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpFacts {
    /// It chooses the new object's encryption and storage class: SSE-COS/KMS headers and
    /// `x-cos-storage-class` go on it and nowhere else.
    pub chooses_encryption: bool,
    /// Its answer describes the object it made (ETag, SSE echo, CRC-64), to be checked.
    /// Complete describes the object without choosing anything (Initiate did).
    pub describes_new_object: bool,
    /// The SSE-C triple it carries under an SSE-C policy, if any.
    pub customer_key: Option<KeyUse>,
    /// It carries the copy-source SSE-C triple when the source object is SSE-C.
    pub copy_source_key: bool,
    /// It names an object (so needs a key) rather than the bucket.
    pub addresses_object: bool,
    /// An ambiguous failure (a timeout, a reset, an answer cut off) may be retried. Errors
    /// that prove the server did not act (5xx, SlowDown) are retried for every operation.
    /// Every operation cosmount sends is safe to repeat, some only with the recovery the
    /// client adds for them: a repeated Initiate can leave an orphan upload (the client
    /// finds and aborts it), a repeated Complete finds its upload gone (the client accepts
    /// it only if HEAD shows the object the parts make), a repeated copy is pinned to the
    /// source version with `x-cos-copy-source-If-Match`.
    pub idempotent: bool,
}

impl std::fmt::Display for CosOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table against the documented SSE matrix, written out row by row so that a
    /// change to it is a visible change here: (op, SSE-COS/KMS allowed, SSE-C triple,
    /// copy-source triple).
    #[test]
    fn facts_follow_the_documented_sse_matrix() {
        use KeyUse::{Read, Write};
        let rows: [(CosOp, bool, Option<KeyUse>, bool); 15] = [
            (CosOp::PutObject, true, Some(Write), false),
            (CosOp::InitiateMultipart, true, Some(Write), false),
            (CosOp::CopyObject, true, Some(Write), true),
            (CosOp::HeadObject, false, Some(Read), false),
            (CosOp::GetObject, false, Some(Read), false),
            (CosOp::UploadPart, false, Some(Write), false),
            (CosOp::UploadPartCopy, false, Some(Write), true),
            (CosOp::CompleteMultipart, false, None, false),
            (CosOp::AbortMultipart, false, None, false),
            (CosOp::ListParts, false, None, false),
            (CosOp::DeleteObject, false, None, false),
            (CosOp::DeleteMultiple, false, None, false),
            (CosOp::HeadBucket, false, None, false),
            (CosOp::ListObjects, false, None, false),
            (CosOp::ListMultipartUploads, false, None, false),
        ];
        for (op, sse, customer, source) in rows {
            let f = op.facts();
            assert_eq!(
                (f.chooses_encryption, f.customer_key, f.copy_source_key),
                (sse, customer, source),
                "{op}"
            );
        }
        let described: Vec<CosOp> = CosOp::ALL
            .into_iter()
            .filter(|o| o.facts().describes_new_object)
            .collect();
        assert_eq!(
            described,
            [
                CosOp::PutObject,
                CosOp::CopyObject,
                CosOp::InitiateMultipart,
                CosOp::CompleteMultipart
            ]
        );
        assert!(CosOp::ALL.into_iter().all(|o| o.is_idempotent()));
    }

    #[test]
    fn names_round_trip() {
        for op in CosOp::ALL {
            assert_eq!(CosOp::from_name(op.name()), Some(op));
        }
        assert_eq!(CosOp::from_name("PostObject"), None);
    }
}

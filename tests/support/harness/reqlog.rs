//! coslocal's request log (one JSON object per line) and the check that every request
//! carried exactly the SSE headers the mount's policy requires.

use std::path::Path;

/// The SSE header values coslocal saw on one request (never the key itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseSeen {
    pub server_side_encryption: Option<String>,
    pub kms_key_id: Option<String>,
    pub customer_key_md5: Option<String>,
    pub copy_source_customer_key_md5: Option<String>,
}

/// One logged request.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub method: String,
    pub op: String,
    pub key: String,
    pub status: u16,
    pub sse: SseSeen,
}

fn opt_str(v: Option<&serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Parses the log; a torn last line (being written) is ignored.
pub fn read(path: &Path) -> Vec<LogEntry> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let sse = v.get("sse");
            let g = |name: &str| opt_str(sse.and_then(|s| s.get(name)));
            LogEntry {
                method: v["method"].as_str().unwrap_or("").to_string(),
                op: v["op"].as_str().unwrap_or("").to_string(),
                key: v["key"].as_str().unwrap_or("").to_string(),
                status: v["status"].as_u64().unwrap_or(0) as u16,
                sse: SseSeen {
                    server_side_encryption: g("server_side_encryption"),
                    kms_key_id: g("kms_key_id"),
                    customer_key_md5: g("customer_key_md5"),
                    copy_source_customer_key_md5: g("copy_source_customer_key_md5"),
                },
            }
        })
        .collect()
}

/// What the policy of a mount requires, for [`violations`].
#[derive(Debug, Clone)]
pub enum Expect {
    None,
    /// `x-cos-server-side-encryption: AES256`.
    Cos,
    /// `cos/kms` with this key id.
    Kms(String),
    /// SSE-C: base64 MD5 of the write key; every object in the bucket is encrypted with it.
    Customer(String),
}

/// The facts of a logged operation (the one table the client and coslocal read too).
fn facts(op: &str) -> cosmount::cos::op::OpFacts {
    cosmount::cos::CosOp::from_name(op)
        .unwrap_or_else(|| panic!("request log names an unknown operation {op:?}"))
        .facts()
}

/// Operations that create an object and so carry the SSE-COS/KMS choice.
fn creates(op: &str) -> bool {
    facts(op).chooses_encryption
}

/// Every request whose SSE headers differ from what `expect` requires, as readable lines.
///
/// SSE-C (bucket where every object was written by this mount, so with the write key):
/// the customer triple on HEAD/GET/PUT/Initiate/UploadPart/UploadPartCopy/Copy; the
/// copy-source triple on Copy/UploadPartCopy; nothing on any other request. SSE-COS/KMS:
/// the header only on PUT/Initiate/Copy. None: nothing anywhere.
pub fn violations(log: &[LogEntry], expect: &Expect) -> Vec<String> {
    let mut bad = Vec::new();
    for e in log {
        let s = &e.sse;
        let want = match expect {
            Expect::None => SseSeen::default(),
            Expect::Cos => SseSeen {
                server_side_encryption: creates(&e.op).then(|| "AES256".to_string()),
                ..Default::default()
            },
            Expect::Kms(id) => SseSeen {
                server_side_encryption: creates(&e.op).then(|| "cos/kms".to_string()),
                kms_key_id: creates(&e.op).then(|| id.clone()),
                ..Default::default()
            },
            Expect::Customer(md5) => {
                // Every object here was written by this mount: reads carry the write key too.
                let triple = facts(&e.op).customer_key.is_some();
                let source = facts(&e.op).copy_source_key;
                SseSeen {
                    customer_key_md5: triple.then(|| md5.clone()),
                    copy_source_customer_key_md5: source.then(|| md5.clone()),
                    ..Default::default()
                }
            }
        };
        // A read of a name that does not exist (lookup before create) identifies no
        // object, so either no key or the write key is acceptable on a 404.
        let absent_read = e.status == 404
            && matches!(e.op.as_str(), "HeadObject" | "GetObject")
            && *s == SseSeen::default();
        if *s != want && !absent_read {
            bad.push(format!(
                "{} {} key={:?} status={}: sent {:?}, policy requires {:?}",
                e.method, e.op, e.key, e.status, s, want
            ));
        }
    }
    bad
}

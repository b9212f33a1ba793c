//! Server-side-encryption rules of coslocal: parsing the SSE request headers, deciding
//! which operation may carry which of them, checking SSE-C keys against stored objects,
//! and the echo headers of responses.
//!
//! Assumptions, where COS does not document what it answers (chosen, documented in the
//! README, and kept in one place so a real bucket that differs is a one-line change):
//! * GET/HEAD of an SSE-C object without the customer triple: 400 `SsecDecryptHeaderInvalid`.
//! * Wrong customer key (well-formed, different key): 403 `AccessDenied`.
//! * SSE-C headers on a request whose object is not SSE-C: 400 `SSEHeaderNotAllowed`;
//!   the same for SSE-COS/SSE-KMS headers on GET/HEAD/Upload Part/Complete/Abort/List and
//!   for any SSE header on bucket-level and delete requests.
//! * Key MD5 not matching the key, key not 32 bytes, algorithm not `AES256`, or an
//!   incomplete triple: 400 `InvalidArgument`.
//! * Any SSE-C header (destination or copy source) over plain HTTP: 400 `InvalidRequest`.
//! * Upload Part carries the SSE-C triple iff Initiate did, with the same key (missing:
//!   400 `SsecDecryptHeaderInvalid`; different: 403 `AccessDenied`). Upload Part - Copy
//!   into an SSE-C upload also needs the destination triple (coslocal needs the key to
//!   encrypt; the Python SDK sends it).
//! * SSE-KMS without a key id uses the fixed id [`DEFAULT_KMS_KEY_ID`]; the context must be
//!   base64 of a JSON object.
//! * `x-cos-server-side-encryption` accepts `AES256` and `SM4` (SSE-COS) and `cos/kms`.
//! * ETags of SSE-KMS and SSE-C objects (and their parts) are random-looking, never the MD5.

use super::crypto::{KeyFingerprint, Segment};
use super::error::ApiError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cos_wire::sse_headers::{
    H_SRC_SSEC_ALGORITHM, H_SRC_SSEC_KEY, H_SRC_SSEC_KEY_MD5, H_SSE, H_SSEC_ALGORITHM, H_SSEC_KEY,
    H_SSEC_KEY_MD5, H_SSE_CONTEXT, H_SSE_KMS_KEY_ID,
};
use cos_wire::CosOp;
use hyper::HeaderMap;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The CMK id recorded for SSE-KMS requests that name none.
pub const DEFAULT_KMS_KEY_ID: &str = "coslocal-default-kms-key-0000";

/// How a stored object (or an upload in progress) is encrypted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum SseRecord {
    #[default]
    None,
    Cos {
        algorithm: String,
    },
    Kms {
        key_id: String,
        context: Option<String>,
    },
    Customer {
        key_md5: String,
        fingerprint: KeyFingerprint,
        /// Encrypted runs of the stored data (empty for an upload record).
        #[serde(default)]
        segments: Vec<Segment>,
    },
}

impl SseRecord {
    pub fn is_customer(&self) -> bool {
        matches!(self, SseRecord::Customer { .. })
    }

    /// Whether ETags must not be the MD5 of the data.
    pub fn hides_md5(&self) -> bool {
        matches!(self, SseRecord::Kms { .. } | SseRecord::Customer { .. })
    }

    /// The response headers that echo this encryption (never the key).
    pub fn echo(&self) -> Vec<(&'static str, String)> {
        match self {
            SseRecord::None => vec![],
            SseRecord::Cos { algorithm } => vec![(H_SSE, algorithm.clone())],
            SseRecord::Kms { key_id, .. } => {
                vec![
                    (H_SSE, "cos/kms".into()),
                    (H_SSE_KMS_KEY_ID, key_id.clone()),
                ]
            }
            SseRecord::Customer { key_md5, .. } => vec![
                (H_SSEC_ALGORITHM, "AES256".into()),
                (H_SSEC_KEY_MD5, key_md5.clone()),
            ],
        }
    }

    /// The record for the same encryption without data segments (for a new object).
    pub fn without_segments(&self) -> SseRecord {
        match self {
            SseRecord::Customer {
                key_md5,
                fingerprint,
                ..
            } => SseRecord::Customer {
                key_md5: key_md5.clone(),
                fingerprint: fingerprint.clone(),
                segments: vec![],
            },
            other => other.clone(),
        }
    }
}

/// A customer key received in a request: the raw bytes (zeroized) and its MD5 (loggable).
pub struct RequestKey {
    pub raw: Zeroizing<[u8; 32]>,
    pub md5_b64: String,
}

impl std::fmt::Debug for RequestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestKey(md5={})", self.md5_b64)
    }
}

/// The SSE headers of one request, validated for form.
#[derive(Debug, Default)]
pub struct SseHeaders {
    /// `x-cos-server-side-encryption` (+ KMS id and context), as a record.
    pub server_side: Option<SseRecord>,
    pub customer: Option<RequestKey>,
    pub source_customer: Option<RequestKey>,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

fn parse_triple(
    h: &HeaderMap,
    names: [&str; 3],
    what: &str,
) -> Result<Option<RequestKey>, ApiError> {
    let [alg, key, md5] = names.map(|n| header(h, n));
    if alg.is_none() && key.is_none() && md5.is_none() {
        return Ok(None);
    }
    let (Some(alg), Some(key), Some(md5)) = (alg, key, md5) else {
        return Err(ApiError::invalid_argument(format!(
            "{what}: the algorithm, key and key-MD5 headers must be sent together"
        )));
    };
    if alg != "AES256" {
        return Err(ApiError::invalid_argument(format!(
            "{what}: the algorithm must be AES256"
        )));
    }
    let raw =
        Zeroizing::new(B64.decode(key.trim()).map_err(|_| {
            ApiError::invalid_argument(format!("{what}: the key is not valid base64"))
        })?);
    let raw: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
        ApiError::invalid_argument(format!("{what}: the key must be 32 bytes (AES-256)"))
    })?;
    let raw = Zeroizing::new(raw);
    let md5_b64 = B64.encode(Md5::digest(raw.as_slice()));
    if md5_b64 != md5.trim() {
        return Err(ApiError::invalid_argument(format!(
            "{what}: the key MD5 does not match the key"
        )));
    }
    Ok(Some(RequestKey { raw, md5_b64 }))
}

/// Parses and validates the form of the SSE headers. `https` says whether the
/// connection is TLS: customer keys over plain HTTP are refused.
pub fn parse(h: &HeaderMap, https: bool) -> Result<SseHeaders, ApiError> {
    let any_customer = h.keys().any(|k| {
        k.as_str()
            .starts_with("x-cos-server-side-encryption-customer-")
            || k.as_str()
                .starts_with("x-cos-copy-source-server-side-encryption-customer-")
    });
    if any_customer && !https {
        return Err(ApiError::bad(
            "InvalidRequest",
            "SSE-C requests must be made over HTTPS.",
        ));
    }
    let customer = parse_triple(h, [H_SSEC_ALGORITHM, H_SSEC_KEY, H_SSEC_KEY_MD5], "SSE-C")?;
    let source_customer = parse_triple(
        h,
        [H_SRC_SSEC_ALGORITHM, H_SRC_SSEC_KEY, H_SRC_SSEC_KEY_MD5],
        "copy source SSE-C",
    )?;
    let kms_id = header(h, H_SSE_KMS_KEY_ID);
    let context = header(h, H_SSE_CONTEXT);
    let server_side = match header(h, H_SSE) {
        None => {
            if kms_id.is_some() || context.is_some() {
                return Err(ApiError::invalid_argument(
                    "SSE-KMS key id or context given without x-cos-server-side-encryption: cos/kms",
                ));
            }
            None
        }
        Some(v @ ("AES256" | "SM4")) => {
            if kms_id.is_some() || context.is_some() {
                return Err(ApiError::invalid_argument(
                    "SSE-KMS headers require cos/kms",
                ));
            }
            Some(SseRecord::Cos {
                algorithm: v.to_string(),
            })
        }
        Some("cos/kms") => {
            if let Some(c) = context {
                let ok = B64
                    .decode(c.trim())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .is_some_and(|v| v.is_object());
                if !ok {
                    return Err(ApiError::invalid_argument(
                        "x-cos-server-side-encryption-context must be base64 of a JSON object",
                    ));
                }
            }
            Some(SseRecord::Kms {
                key_id: kms_id.unwrap_or(DEFAULT_KMS_KEY_ID).to_string(),
                context: context.map(str::to_string),
            })
        }
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "unsupported x-cos-server-side-encryption value {other:?}"
            )))
        }
    };
    if server_side.is_some() && customer.is_some() {
        return Err(ApiError::invalid_argument(
            "x-cos-server-side-encryption and SSE-C headers cannot be combined",
        ));
    }
    Ok(SseHeaders {
        server_side,
        customer,
        source_customer,
    })
}

fn not_allowed(what: &str, op: CosOp) -> ApiError {
    ApiError::bad(
        "SSEHeaderNotAllowed",
        format!("{what} headers are not allowed on {}", op.name()),
    )
}

/// Refuses SSE headers the operation must not carry.
pub fn check_allowed(op: CosOp, h: &SseHeaders) -> Result<(), ApiError> {
    // The same table the client's policy reads (`cos_wire::OpFacts`).
    let f = op.facts();
    let (server_side_ok, customer_ok, source_ok) = (
        f.chooses_encryption,
        f.customer_key.is_some(),
        f.copy_source_key,
    );
    if h.server_side.is_some() && !server_side_ok {
        return Err(not_allowed("x-cos-server-side-encryption", op));
    }
    if h.customer.is_some() && !customer_ok {
        return Err(not_allowed("SSE-C", op));
    }
    if h.source_customer.is_some() && !source_ok {
        return Err(not_allowed("copy source SSE-C", op));
    }
    Ok(())
}

/// Checks the key a request offers for reading an object (or writing to an upload)
/// encrypted as `rec`. Returns the raw key when the object is SSE-C.
pub fn check_key(
    rec: &SseRecord,
    offered: Option<&RequestKey>,
    what: &str,
) -> Result<Option<Zeroizing<[u8; 32]>>, ApiError> {
    match (rec, offered) {
        (SseRecord::Customer { fingerprint, .. }, Some(k)) => {
            if fingerprint.matches(&k.raw) {
                Ok(Some(k.raw.clone()))
            } else {
                Err(ApiError::new(
                    403,
                    "AccessDenied",
                    format!("The {what} SSE-C key does not match the key the object was encrypted with."),
                ))
            }
        }
        (SseRecord::Customer { .. }, None) => Err(ApiError::bad(
            "SsecDecryptHeaderInvalid",
            format!("The {what} is encrypted with SSE-C: the customer key headers are required."),
        )),
        (_, Some(_)) => Err(ApiError::bad(
            "SSEHeaderNotAllowed",
            format!(
                "The {what} is not encrypted with SSE-C: customer key headers are not allowed."
            ),
        )),
        (_, None) => Ok(None),
    }
}

/// The encryption record of a new object or upload from the request's headers, and the
/// key to encrypt with when it is SSE-C.
pub fn new_record(h: &SseHeaders) -> (SseRecord, Option<Zeroizing<[u8; 32]>>) {
    if let Some(k) = &h.customer {
        return (
            SseRecord::Customer {
                key_md5: k.md5_b64.clone(),
                fingerprint: KeyFingerprint::new(&k.raw),
                segments: vec![],
            },
            Some(k.raw.clone()),
        );
    }
    (h.server_side.clone().unwrap_or_default(), None)
}

/// The ETag (unquoted) of data whose MD5 is `md5`: the MD5 itself, except under SSE-KMS
/// and SSE-C, where it is a keyed digest that does not reveal the MD5.
pub fn etag_for(rec: &SseRecord, md5: &[u8]) -> String {
    if rec.hides_md5() {
        let mut salt = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut salt);
        let mut h = Md5::new();
        h.update(md5);
        h.update(salt);
        cos_wire::sign::hex(&h.finalize())
    } else {
        cos_wire::sign::hex(md5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const KEY_B64: &str = "MDEyMzQ1Njc4OUFCQ0RFRjAxMjM0NTY3ODlBQkNERUY=";
    const KEY_MD5: &str = "U5L61r7jcwdNvT7frmUG8g==";
    const OTHER_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const OTHER_MD5: &str = "hRasmdxgYDKV3nvbahU1MA==";

    fn triple(key: &str, md5: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(H_SSEC_ALGORITHM, HeaderValue::from_static("AES256"));
        h.insert(H_SSEC_KEY, HeaderValue::from_str(key).expect("ascii"));
        h.insert(H_SSEC_KEY_MD5, HeaderValue::from_str(md5).expect("ascii"));
        h
    }

    #[test]
    fn customer_key_form_rules() {
        let ok = parse(&triple(KEY_B64, KEY_MD5), true).expect("valid");
        assert_eq!(
            ok.customer.as_ref().map(|k| k.md5_b64.as_str()),
            Some(KEY_MD5)
        );
        assert_eq!(
            parse(&triple(KEY_B64, KEY_MD5), false)
                .expect_err("http")
                .code,
            "InvalidRequest"
        );
        assert_eq!(
            parse(&triple(KEY_B64, OTHER_MD5), true)
                .expect_err("md5")
                .code,
            "InvalidArgument"
        );
        assert_eq!(
            parse(&triple("c2hvcnQ=", "x"), true)
                .expect_err("short")
                .code,
            "InvalidArgument"
        );
        let mut partial = triple(KEY_B64, KEY_MD5);
        partial.remove(H_SSEC_KEY_MD5);
        assert_eq!(
            parse(&partial, true).expect_err("partial").code,
            "InvalidArgument"
        );
    }

    #[test]
    fn server_side_values() {
        let mut h = HeaderMap::new();
        h.insert(H_SSE, HeaderValue::from_static("cos/kms"));
        let p = parse(&h, false).expect("kms");
        assert_eq!(
            p.server_side,
            Some(SseRecord::Kms {
                key_id: DEFAULT_KMS_KEY_ID.into(),
                context: None
            })
        );
        h.insert(H_SSE_CONTEXT, HeaderValue::from_static("bm90IGpzb24="));
        assert_eq!(parse(&h, false).expect_err("ctx").code, "InvalidArgument");
        let mut h = HeaderMap::new();
        h.insert(H_SSE, HeaderValue::from_static("aes256"));
        assert_eq!(parse(&h, false).expect_err("case").code, "InvalidArgument");
    }

    #[test]
    fn operation_matrix() {
        let mut h = HeaderMap::new();
        h.insert(H_SSE, HeaderValue::from_static("AES256"));
        let p = parse(&h, true).expect("sse-cos");
        assert!(check_allowed(CosOp::PutObject, &p).is_ok());
        for op in [
            CosOp::GetObject,
            CosOp::HeadObject,
            CosOp::UploadPart,
            CosOp::CompleteMultipart,
        ] {
            assert_eq!(
                check_allowed(op, &p).expect_err("refused").code,
                "SSEHeaderNotAllowed"
            );
        }
        let c = parse(&triple(KEY_B64, KEY_MD5), true).expect("ssec");
        assert!(check_allowed(CosOp::GetObject, &c).is_ok());
        assert_eq!(
            check_allowed(CosOp::CompleteMultipart, &c)
                .expect_err("no")
                .code,
            "SSEHeaderNotAllowed"
        );
    }

    #[test]
    fn key_checks_against_stored_objects() {
        let good = parse(&triple(KEY_B64, KEY_MD5), true).expect("k").customer;
        let other = parse(&triple(OTHER_B64, OTHER_MD5), true)
            .expect("k")
            .customer;
        let (rec, key) = new_record(&SseHeaders {
            customer: parse(&triple(KEY_B64, KEY_MD5), true).expect("k").customer,
            ..Default::default()
        });
        assert!(key.is_some() && rec.is_customer());
        assert!(check_key(&rec, good.as_ref(), "object")
            .expect("right key")
            .is_some());
        assert_eq!(
            check_key(&rec, other.as_ref(), "object")
                .expect_err("wrong")
                .code,
            "AccessDenied"
        );
        assert_eq!(
            check_key(&rec, None, "object").expect_err("missing").code,
            "SsecDecryptHeaderInvalid"
        );
        assert_eq!(
            check_key(&SseRecord::None, good.as_ref(), "object")
                .expect_err("plain")
                .code,
            "SSEHeaderNotAllowed"
        );
        assert!(check_key(&SseRecord::None, None, "object")
            .expect("plain")
            .is_none());
        // The stored record never contains the key or its base64.
        let json = serde_json::to_string(&rec).expect("json");
        assert!(!json.contains(KEY_B64) && !json.contains("0123456789ABCDEF"));
    }

    #[test]
    fn etags_hide_md5_only_for_kms_and_customer() {
        let md5 = [0xeeu8; 16];
        assert_eq!(etag_for(&SseRecord::None, &md5), cos_wire::sign::hex(&md5));
        assert_eq!(
            etag_for(
                &SseRecord::Cos {
                    algorithm: "AES256".into()
                },
                &md5
            ),
            cos_wire::sign::hex(&md5)
        );
        let kms = SseRecord::Kms {
            key_id: "k".into(),
            context: None,
        };
        assert_ne!(etag_for(&kms, &md5), cos_wire::sign::hex(&md5));
        assert_eq!(etag_for(&kms, &md5).len(), 32);
    }
}

//! `SsePolicy`: the one object that decides the server-side-encryption headers of every
//! COS request, built once from configuration and immutable afterwards.
//!
//! `headers_for` matches exhaustively over [`CosOp`], so no request path can forget the
//! headers and a new operation cannot compile without a decision (the rules are `cos_wire::OpFacts`):
//! SSE-COS and SSE-KMS headers go only on object-creating requests; the SSE-C triple goes
//! on HEAD, GET, PUT, Initiate, Upload Part and the destination of copies; the copy-source
//! triple on copies whose source is an SSE-C object. SSE-C keys form a history: the first
//! key encrypts everything new, every key is tried for reads. Keys are secrets: they are
//! zeroized on drop and never printed by `Debug`.

use super::op::{CosOp, KeyUse};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::{Digest, Md5};
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

// Header names, in the case the SDKs send them (one list, shared with coslocal).
pub use cos_wire::sse_headers::*;

/// Why an SSE configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseConfigError {
    #[error("SSE-C key on line {line} is {len} bytes; it must be exactly 32 raw bytes or the base64 of 32 bytes")]
    BadKeyLength { line: usize, len: usize },
    #[error("the SSE-C key file holds no key")]
    NoKeys,
    #[error("SSE-C requires HTTPS: COS refuses customer keys over plain http:// and sending one would expose it")]
    CustomerKeyOverHttp,
    #[error("SSE-KMS encryption context must be base64 of a JSON object: {0}")]
    BadKmsContext(String),
}

/// One SSE-C key: the base64 of the 32 raw bytes (secret) and the base64 of their MD5.
#[derive(Clone)]
pub struct CustomerKey {
    key_b64: Zeroizing<String>,
    md5_b64: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerKey")
            .field("key", &"<redacted>")
            .field("md5", &self.md5_b64)
            .finish()
    }
}

impl CustomerKey {
    /// Builds a key from its 32 raw bytes.
    pub fn from_raw(raw: &[u8]) -> Result<CustomerKey, SseConfigError> {
        if raw.len() != 32 {
            return Err(SseConfigError::BadKeyLength {
                line: 1,
                len: raw.len(),
            });
        }
        Ok(CustomerKey {
            key_b64: Zeroizing::new(B64.encode(raw)),
            md5_b64: B64.encode(Md5::digest(raw)),
        })
    }

    /// Accepts either exactly 32 raw bytes or the base64 text of 32 bytes (44 characters).
    pub fn parse(text: &[u8]) -> Result<CustomerKey, SseConfigError> {
        if text.len() == 32 {
            return CustomerKey::from_raw(text);
        }
        if let Ok(decoded) = B64.decode(text) {
            let decoded = Zeroizing::new(decoded);
            if decoded.len() == 32 {
                return CustomerKey::from_raw(&decoded);
            }
        }
        Err(SseConfigError::BadKeyLength {
            line: 1,
            len: text.len(),
        })
    }

    /// The 32 raw key bytes.
    pub fn raw(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(B64.decode(self.key_b64.as_bytes()).unwrap_or_default())
    }

    /// base64 of the key: only for putting into a request header.
    pub fn key_b64(&self) -> &str {
        &self.key_b64
    }

    /// base64(MD5(raw key)): safe to log, identifies the key.
    pub fn md5_b64(&self) -> &str {
        &self.md5_b64
    }
}

/// Parses an SSE-C key file: one key per line (32 raw bytes or base64 of 32 bytes),
/// `#` comments and blank lines ignored, a trailing `\r` stripped. Order is kept: the first
/// key encrypts new objects.
pub fn parse_key_file(contents: &[u8]) -> Result<Vec<CustomerKey>, SseConfigError> {
    let mut keys = Vec::new();
    for (i, line) in contents.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        // A base64 line may carry stray blanks from copy-paste; a raw key must not be touched.
        let key = CustomerKey::parse(line).or_else(|_| CustomerKey::parse(line.trim_ascii()));
        match key {
            Ok(k) => keys.push(k),
            Err(_) => {
                return Err(SseConfigError::BadKeyLength {
                    line: i + 1,
                    len: line.len(),
                })
            }
        }
    }
    if keys.is_empty() {
        return Err(SseConfigError::NoKeys);
    }
    Ok(keys)
}

/// The encryption a mount asks for.
#[derive(Debug, Clone)]
pub enum SseMode {
    None,
    /// SSE-COS: `x-cos-server-side-encryption: AES256`.
    CosManaged,
    /// SSE-KMS: `cos/kms` with an optional CMK id and base64 JSON context.
    Kms {
        key_id: Option<String>,
        context: Option<String>,
    },
    /// SSE-C with a key history; `keys[0]` encrypts writes. Never empty.
    Customer {
        keys: Vec<CustomerKey>,
    },
}

/// How an existing object that a request reads is encrypted with a customer key: the
/// target of HEAD/GET, or the source of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadKey {
    /// Not SSE-C (plain, SSE-COS or SSE-KMS): no customer headers.
    Plain,
    /// SSE-C with this key of the policy's key ring (append-only, so the number names
    /// the same key for the life of the process, across key-file reloads).
    Customer(usize),
}

/// One header the policy wants on a request.
#[derive(Clone, PartialEq, Eq)]
pub struct SseHeader {
    pub name: &'static str,
    pub value: String,
    /// Set for the customer key itself: must be marked sensitive and never logged.
    pub sensitive: bool,
}

impl std::fmt::Debug for SseHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v: &str = if self.sensitive {
            "<redacted>"
        } else {
            &self.value
        };
        write!(f, "{}: {}", self.name, v)
    }
}

/// The SSE policy. Cheap to clone; clones share the SSE-C key history, so a reload
/// (`reload_customer_keys`, on SIGHUP) reaches every holder at once.
#[derive(Debug, Clone)]
pub struct SsePolicy {
    mode: SseMode,
    /// SSE-C only: every key ever loaded (append-only) and the current order.
    keys: Option<Arc<RwLock<Arc<KeyHistory>>>>,
}

/// The customer keys: `ring` only grows, so a `ReadKey::Customer(i)` handed out before a
/// reload still names the same key after it; `order` is the history of the key file now
/// (its first entry encrypts writes).
#[derive(Debug)]
struct KeyHistory {
    ring: Vec<CustomerKey>,
    order: Vec<usize>,
}

/// What a key-file reload changed, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReload {
    pub keys: usize,
    pub write_key_md5: String,
    pub write_key_changed: bool,
}

impl SsePolicy {
    /// No encryption requested.
    pub fn none() -> SsePolicy {
        SsePolicy {
            mode: SseMode::None,
            keys: None,
        }
    }

    /// Validates `mode` once. Whether the endpoint may carry it is
    /// [`SsePolicy::check_transport`]'s question, asked where the two meet.
    pub fn new(mode: SseMode) -> Result<SsePolicy, SseConfigError> {
        match &mode {
            SseMode::Customer { keys } if keys.is_empty() => return Err(SseConfigError::NoKeys),
            SseMode::Kms {
                context: Some(c), ..
            } => {
                let bytes = B64
                    .decode(c)
                    .map_err(|e| SseConfigError::BadKmsContext(e.to_string()))?;
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| SseConfigError::BadKmsContext(e.to_string()))?;
                if !v.is_object() {
                    return Err(SseConfigError::BadKmsContext("not a JSON object".into()));
                }
            }
            _ => {}
        }
        let keys = match &mode {
            SseMode::Customer { keys } => Some(Arc::new(RwLock::new(Arc::new(KeyHistory {
                ring: keys.clone(),
                order: (0..keys.len()).collect(),
            })))),
            _ => None,
        };
        Ok(SsePolicy { mode, keys })
    }

    fn history(&self) -> Option<Arc<KeyHistory>> {
        self.keys
            .as_ref()
            .map(|k| k.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Replaces the SSE-C key history with `keys` (a re-read key file): keys already
    /// known keep their `ReadKey`, new ones are added to the ring, and `keys[0]` encrypts
    /// writes from now on. Refused without SSE-C or without keys.
    pub fn reload_customer_keys(&self, keys: Vec<CustomerKey>) -> Result<KeyReload, String> {
        let Some(lock) = &self.keys else {
            return Err("the mount does not use SSE-C".into());
        };
        if keys.is_empty() {
            return Err("the key file holds no key".into());
        }
        let mut guard = lock.write().unwrap_or_else(|p| p.into_inner());
        let old_write = guard.ring[guard.order[0]].md5_b64().to_string();
        let mut ring = guard.ring.clone();
        let mut order = Vec::with_capacity(keys.len());
        for k in keys {
            let i = match ring.iter().position(|r| r.md5_b64() == k.md5_b64()) {
                Some(i) => i,
                None => {
                    ring.push(k);
                    ring.len() - 1
                }
            };
            if !order.contains(&i) {
                order.push(i);
            }
        }
        let write_key_md5 = ring[order[0]].md5_b64().to_string();
        let reload = KeyReload {
            keys: order.len(),
            write_key_changed: write_key_md5 != old_write,
            write_key_md5,
        };
        *guard = Arc::new(KeyHistory { ring, order });
        Ok(reload)
    }

    /// The read key of objects written now (the first key of the history), or Plain.
    pub fn write_read_key(&self) -> ReadKey {
        match self.history() {
            Some(h) => ReadKey::Customer(h.order[0]),
            None => ReadKey::Plain,
        }
    }

    /// The key a `ReadKey` names (None for Plain or an unknown number).
    pub fn customer_key(&self, rk: ReadKey) -> Option<CustomerKey> {
        match rk {
            ReadKey::Customer(i) => self.history()?.ring.get(i).cloned(),
            ReadKey::Plain => None,
        }
    }

    pub fn mode(&self) -> &SseMode {
        &self.mode
    }

    /// Whether requests carry a customer key (and so must go over HTTPS).
    pub fn uses_customer_keys(&self) -> bool {
        matches!(self.mode, SseMode::Customer { .. })
    }

    /// The one place that decides whether this policy may be used over an endpoint:
    /// customer keys never travel over plain HTTP (COS refuses them there, and sending one
    /// would expose it). The request builder calls this once, when it is made; a builder
    /// never changes its endpoint or policy afterwards, so no request can escape it.
    pub fn check_transport(&self, https: bool) -> Result<(), SseConfigError> {
        if self.uses_customer_keys() && !https {
            return Err(SseConfigError::CustomerKeyOverHttp);
        }
        Ok(())
    }

    /// The customer key history now, write key first (empty unless SSE-C).
    pub fn customer_keys(&self) -> Vec<CustomerKey> {
        match self.history() {
            Some(h) => h.order.iter().map(|&i| h.ring[i].clone()).collect(),
            None => Vec::new(),
        }
    }

    /// The order in which to try keys when reading an object of unknown encryption:
    /// every key of the history in order, then no key (a plain object in the same bucket).
    pub fn read_candidates(&self) -> Vec<ReadKey> {
        let mut v: Vec<ReadKey> = match self.history() {
            Some(h) => h.order.iter().map(|&i| ReadKey::Customer(i)).collect(),
            None => Vec::new(),
        };
        v.push(ReadKey::Plain);
        v
    }

    /// The SSE headers of a request for `op`. `read` describes the existing object the
    /// request reads: the HEAD/GET target or the copy source; it is ignored by operations
    /// that read none.
    pub fn headers_for(&self, op: CosOp, read: ReadKey) -> Vec<SseHeader> {
        let mut h = Vec::new();
        let facts = op.facts();
        if facts.chooses_encryption {
            // The new object's encryption (for SSE-C: the write key).
            self.push_create(&mut h);
        } else {
            match facts.customer_key {
                Some(KeyUse::Write) => self.push_write_customer(&mut h),
                // Reads of an existing object: the customer triple iff the object is SSE-C.
                Some(KeyUse::Read) => self.push_customer(&mut h, read, false),
                None => {}
            }
        }
        if facts.copy_source_key {
            self.push_customer(&mut h, read, true);
        }
        h
    }

    fn push_create(&self, h: &mut Vec<SseHeader>) {
        match &self.mode {
            SseMode::None => {}
            SseMode::CosManaged => h.push(plain(H_SSE, "AES256")),
            SseMode::Kms { key_id, context } => {
                h.push(plain(H_SSE, "cos/kms"));
                if let Some(id) = key_id {
                    h.push(plain(H_SSE_KMS_KEY_ID, id));
                }
                if let Some(c) = context {
                    h.push(plain(H_SSE_CONTEXT, c));
                }
            }
            SseMode::Customer { .. } => self.push_write_customer(h),
        }
    }

    fn push_write_customer(&self, h: &mut Vec<SseHeader>) {
        if let Some(k) = self.customer_key(self.write_read_key()) {
            push_triple(h, &k, false);
        }
    }

    fn push_customer(&self, h: &mut Vec<SseHeader>, read: ReadKey, source: bool) {
        if let Some(k) = self.customer_key(read) {
            push_triple(h, &k, source);
        }
    }

    /// Checks the SSE headers COS echoed on a response to an object-creating request
    /// (PUT, Initiate, Complete, Copy). `get` looks a response header up by lowercase name.
    /// `Err` says what disagrees; the caller treats that as a failed upload.
    pub fn check_echo(
        &self,
        op: CosOp,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        if !op.facts().describes_new_object {
            return Ok(());
        }
        let sse = get("x-cos-server-side-encryption");
        match &self.mode {
            // A bucket may encrypt by default; asking for nothing accepts anything.
            SseMode::None => Ok(()),
            SseMode::CosManaged => match sse.as_deref() {
                Some("AES256") | Some("SM4") => Ok(()),
                other => Err(format!(
                    "asked for SSE-COS (AES256), COS answered {other:?}"
                )),
            },
            SseMode::Kms { key_id, .. } => {
                if sse.as_deref() != Some("cos/kms") {
                    return Err(format!("asked for SSE-KMS (cos/kms), COS answered {sse:?}"));
                }
                if let Some(want) = key_id {
                    let got = get("x-cos-server-side-encryption-cos-kms-key-id");
                    if got.as_deref() != Some(want.as_str()) {
                        return Err(format!("asked for KMS key {want}, COS answered {got:?}"));
                    }
                }
                Ok(())
            }
            SseMode::Customer { .. } => {
                let alg = get("x-cos-server-side-encryption-customer-algorithm");
                let md5 = get("x-cos-server-side-encryption-customer-key-md5");
                // The write key, or one it replaced: a key-file reload between sending and
                // this answer changes the write key, and an object under a key this mount
                // holds is still readable. Any other key, or none, is a failure.
                let ring = self.history().map(|h| h.ring.clone()).unwrap_or_default();
                let held = md5
                    .as_deref()
                    .is_some_and(|m| ring.iter().any(|k| k.md5_b64() == m));
                if alg.as_deref() != Some("AES256") || !held {
                    let want = self
                        .customer_key(self.write_read_key())
                        .map(|k| k.md5_b64().to_string())
                        .unwrap_or_default();
                    return Err(format!(
                        "asked for SSE-C with key MD5 {want}, COS answered algorithm {alg:?} key MD5 {md5:?}"
                    ));
                }
                Ok(())
            }
        }
    }
}

fn plain(name: &'static str, value: &str) -> SseHeader {
    SseHeader {
        name,
        value: value.to_string(),
        sensitive: false,
    }
}

fn push_triple(h: &mut Vec<SseHeader>, k: &CustomerKey, source: bool) {
    let (a, key, md5) = if source {
        (H_SRC_SSEC_ALGORITHM, H_SRC_SSEC_KEY, H_SRC_SSEC_KEY_MD5)
    } else {
        (H_SSEC_ALGORITHM, H_SSEC_KEY, H_SSEC_KEY_MD5)
    };
    h.push(plain(a, "AES256"));
    h.push(SseHeader {
        name: key,
        value: k.key_b64().to_string(),
        sensitive: true,
    });
    h.push(plain(md5, k.md5_b64()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<CustomerKey> {
        vec![
            CustomerKey::parse(b"0123456789ABCDEF0123456789ABCDEF").unwrap(),
            CustomerKey::parse(b"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap(),
        ]
    }

    fn names(h: &[SseHeader]) -> Vec<&'static str> {
        h.iter().map(|x| x.name).collect()
    }

    #[test]
    fn doc_key_pairs_derive_the_documented_headers() {
        let k = keys();
        assert_eq!(
            k[0].key_b64(),
            "MDEyMzQ1Njc4OUFCQ0RFRjAxMjM0NTY3ODlBQkNERUY="
        );
        assert_eq!(k[0].md5_b64(), "U5L61r7jcwdNvT7frmUG8g==");
        assert_eq!(k[1].md5_b64(), "hRasmdxgYDKV3nvbahU1MA==");
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(matches!(
            CustomerKey::parse(b"short"),
            Err(SseConfigError::BadKeyLength { len: 5, .. })
        ));
        // base64 of 16 bytes is not a 32-byte key.
        assert!(CustomerKey::parse(b"MDEyMzQ1Njc4OUFCQ0RFRg==").is_err());
        let err = parse_key_file(b"# c\n0123456789ABCDEF0123456789ABCDEF\nnope\n").unwrap_err();
        assert_eq!(err, SseConfigError::BadKeyLength { line: 3, len: 4 });
        assert_eq!(
            parse_key_file(b"# only a comment\n\n").unwrap_err(),
            SseConfigError::NoKeys
        );
    }

    #[test]
    fn key_file_keeps_order_and_ignores_comments_and_crlf() {
        let ks = parse_key_file(
            b"# newest first\r\nMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\r\n\n0123456789ABCDEF0123456789ABCDEF\n",
        )
        .unwrap();
        assert_eq!(ks.len(), 2);
        assert_eq!(ks[0].md5_b64(), "hRasmdxgYDKV3nvbahU1MA==");
        assert_eq!(ks[1].md5_b64(), "U5L61r7jcwdNvT7frmUG8g==");
    }

    #[test]
    fn customer_keys_over_http_are_refused() {
        let ssec = SsePolicy::new(SseMode::Customer { keys: keys() }).unwrap();
        assert_eq!(
            ssec.check_transport(false),
            Err(SseConfigError::CustomerKeyOverHttp)
        );
        assert_eq!(ssec.check_transport(true), Ok(()));
        let managed = SsePolicy::new(SseMode::CosManaged).unwrap();
        assert_eq!(managed.check_transport(false), Ok(()));
    }

    #[test]
    fn ssec_matrix_over_every_operation() {
        let p = SsePolicy::new(SseMode::Customer { keys: keys() }).unwrap();
        for op in CosOp::ALL {
            let h = p.headers_for(op, ReadKey::Customer(1));
            let expect: Vec<&str> = match op {
                CosOp::PutObject | CosOp::InitiateMultipart | CosOp::UploadPart => {
                    vec![H_SSEC_ALGORITHM, H_SSEC_KEY, H_SSEC_KEY_MD5]
                }
                CosOp::HeadObject | CosOp::GetObject => {
                    vec![H_SSEC_ALGORITHM, H_SSEC_KEY, H_SSEC_KEY_MD5]
                }
                CosOp::CopyObject | CosOp::UploadPartCopy => vec![
                    H_SSEC_ALGORITHM,
                    H_SSEC_KEY,
                    H_SSEC_KEY_MD5,
                    H_SRC_SSEC_ALGORITHM,
                    H_SRC_SSEC_KEY,
                    H_SRC_SSEC_KEY_MD5,
                ],
                _ => vec![],
            };
            assert_eq!(names(&h), expect, "{op}");
        }
        // Reads use the key that opens the object; writes always use the first key.
        let get = p.headers_for(CosOp::GetObject, ReadKey::Customer(1));
        assert_eq!(get[2].value, "hRasmdxgYDKV3nvbahU1MA==");
        let put = p.headers_for(CosOp::PutObject, ReadKey::Customer(1));
        assert_eq!(put[2].value, "U5L61r7jcwdNvT7frmUG8g==");
        let copy = p.headers_for(CosOp::CopyObject, ReadKey::Customer(1));
        assert_eq!(copy[2].value, "U5L61r7jcwdNvT7frmUG8g==");
        assert_eq!(copy[5].value, "hRasmdxgYDKV3nvbahU1MA==");
        // A plain object in an SSE-C bucket is read without any key; a copy of it still
        // encrypts the destination.
        assert!(p.headers_for(CosOp::GetObject, ReadKey::Plain).is_empty());
        assert_eq!(p.headers_for(CosOp::CopyObject, ReadKey::Plain).len(), 3);
        assert_eq!(
            p.read_candidates(),
            vec![ReadKey::Customer(0), ReadKey::Customer(1), ReadKey::Plain]
        );
    }

    #[test]
    fn managed_modes_only_touch_object_creating_requests() {
        let kms = SsePolicy::new(SseMode::Kms {
            key_id: Some("kms-1".into()),
            context: Some("eyJhIjoiYiJ9".into()),
        })
        .unwrap();
        let cos = SsePolicy::new(SseMode::CosManaged).unwrap();
        for op in CosOp::ALL {
            let creates = matches!(
                op,
                CosOp::PutObject | CosOp::InitiateMultipart | CosOp::CopyObject
            );
            assert_eq!(
                kms.headers_for(op, ReadKey::Plain).len(),
                if creates { 3 } else { 0 },
                "{op}"
            );
            assert_eq!(
                cos.headers_for(op, ReadKey::Plain).len(),
                usize::from(creates),
                "{op}"
            );
            assert!(SsePolicy::none()
                .headers_for(op, ReadKey::Customer(0))
                .is_empty());
        }
        assert!(SsePolicy::new(SseMode::Kms {
            key_id: None,
            context: Some("not base64!".into())
        })
        .is_err());
    }

    #[test]
    fn echo_check_catches_a_server_that_ignored_the_policy() {
        let p = SsePolicy::new(SseMode::Customer { keys: keys() }).unwrap();
        let good = |n: &str| match n {
            "x-cos-server-side-encryption-customer-algorithm" => Some("AES256".to_string()),
            "x-cos-server-side-encryption-customer-key-md5" => {
                Some("U5L61r7jcwdNvT7frmUG8g==".to_string())
            }
            _ => None,
        };
        assert!(p.check_echo(CosOp::PutObject, &good).is_ok());
        assert!(p.check_echo(CosOp::PutObject, &|_| None).is_err());
        assert!(p.check_echo(CosOp::UploadPart, &|_| None).is_ok());
        let cos = SsePolicy::new(SseMode::CosManaged).unwrap();
        assert!(cos.check_echo(CosOp::CompleteMultipart, &|_| None).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let p = SsePolicy::new(SseMode::Customer { keys: keys() }).unwrap();
        let dbg = format!(
            "{p:?} {:?}",
            p.headers_for(CosOp::PutObject, ReadKey::Plain)
        );
        assert!(
            !dbg.contains("MDEyMzQ1Njc4OUFCQ0RFRjAxMjM0NTY3ODlBQkNERUY="),
            "{dbg}"
        );
        assert!(!dbg.contains("0123456789ABCDEF"), "{dbg}");
    }

    #[test]
    fn reloaded_keys_keep_their_numbers_and_the_first_writes() {
        let k = |b: u8| CustomerKey::from_raw(&[b; 32]).unwrap();
        let p = SsePolicy::new(SseMode::Customer { keys: vec![k(1)] }).unwrap();
        let clone = p.clone();
        assert_eq!(p.write_read_key(), ReadKey::Customer(0));
        let r = p.reload_customer_keys(vec![k(2), k(1)]).unwrap();
        assert_eq!((r.keys, r.write_key_changed), (2, true));
        // Every clone sees it; the old key keeps its number, the new one is added.
        assert_eq!(clone.write_read_key(), ReadKey::Customer(1));
        assert_eq!(
            clone.read_candidates(),
            vec![ReadKey::Customer(1), ReadKey::Customer(0), ReadKey::Plain]
        );
        assert_eq!(
            clone.customer_key(ReadKey::Customer(0)).unwrap().md5_b64(),
            k(1).md5_b64()
        );
        let put = clone.headers_for(CosOp::PutObject, ReadKey::Plain);
        assert!(put.iter().any(|h| h.value == k(2).md5_b64()), "{put:?}");
        // The echo of the old write key is still one this mount holds.
        let echo = |md5: String| {
            move |n: &str| match n {
                "x-cos-server-side-encryption-customer-algorithm" => Some("AES256".to_string()),
                "x-cos-server-side-encryption-customer-key-md5" => Some(md5.clone()),
                _ => None,
            }
        };
        assert!(p
            .check_echo(CosOp::PutObject, &echo(k(1).md5_b64().to_string()))
            .is_ok());
        assert!(p
            .check_echo(CosOp::PutObject, &echo(k(3).md5_b64().to_string()))
            .is_err());
        assert!(p.reload_customer_keys(vec![]).is_err());
        assert!(SsePolicy::none().reload_customer_keys(vec![k(1)]).is_err());
    }
}

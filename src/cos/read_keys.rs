//! Which SSE-C key opens which object: the key history is tried in order, starting with the
//! key that last opened that object (a bounded LRU of hints), moving on after a 400 or 403
//! that means "wrong key" (HEAD has no error body, so the status is all there is), and
//! last without a key (plain objects in an SSE-C mount). When none of them opens the
//! object, the error is `SseKeyRejected`, naming the keys by their MD5. The policy itself
//! is owned by the request builder; it is passed in, not kept here.
//!
//! The transport does not live here: a probe is given the request to run with each
//! candidate, so this logic is tested without HTTP.

use super::error::{CosError, CosErrorKind};
use super::op::CosOp;
use super::sse::{ReadKey, SsePolicy};
use lru::LruCache;
use parking_lot::Mutex;
use std::future::Future;
use std::num::NonZeroUsize;

/// How many objects' working SSE-C key is remembered.
const READ_HINTS: usize = 8192;

/// Whether a failed read may just be the wrong SSE-C key (try the next one): a 400 or 403
/// that is not clearly about the credentials, the clock or the request itself.
pub(super) fn is_key_rejection(e: &CosError) -> bool {
    matches!(e.status, Some(400) | Some(403))
        && !matches!(
            e.code.as_deref(),
            Some("SignatureDoesNotMatch")
                | Some("InvalidAccessKeyId")
                | Some("RequestTimeTooSkewed")
                | Some("Request has expired")
                | Some("ExpiredToken")
                | Some("InvalidObjectState")
                | Some("PathStyleDomainForbidden")
        )
}

/// A read without SSE-C headers that COS refuses with 400 as an SSE-C object without its
/// key (`SsecDecryptHeaderInvalid`; a HEAD's 400 has no code to tell): said as exactly
/// that, so the log names the problem instead of a bare BadRequest.
fn missing_key(e: CosError) -> CosError {
    let coded_as_missing_key = e.code.as_deref() == Some("SsecDecryptHeaderInvalid");
    let bare_head_400 = e.code.is_none() && e.op == CosOp::HeadObject;
    if e.status != Some(400) || !(coded_as_missing_key || bare_head_400) {
        return e;
    }
    CosError {
        kind: CosErrorKind::SseKeyRejected,
        message: "COS refuses to read this object without an SSE-C key (HTTP 400): it is \
                  SSE-C encrypted and this mount has no SSE-C key; mount with \
                  use_sse=custom:FILE holding the key that wrote it"
            .to_string(),
        ..e
    }
}

/// What was learnt about which key of the policy's history opens which object.
pub(super) struct ReadKeys {
    hints: Mutex<LruCache<String, ReadKey>>,
}

impl ReadKeys {
    pub fn new() -> ReadKeys {
        ReadKeys {
            hints: Mutex::new(LruCache::new(
                NonZeroUsize::new(READ_HINTS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The read key remembered for `key`, if any.
    pub fn hint(&self, key: &str) -> Option<ReadKey> {
        self.hints.lock().peek(key).copied()
    }

    /// `rk` opened (or wrote) `key`.
    pub fn remember(&self, policy: &SsePolicy, key: &str, rk: ReadKey) {
        if policy.uses_customer_keys() {
            self.hints.lock().put(key.to_string(), rk);
        }
    }

    /// `key` was deleted, or its remembered key stopped working.
    pub fn forget(&self, key: &str) {
        self.hints.lock().pop(key);
    }

    /// The read key of objects this client creates under the policy.
    pub fn for_new_objects(policy: &SsePolicy) -> ReadKey {
        policy.write_read_key()
    }

    /// The order to try keys for `key`: the remembered one first, then the rest of the
    /// history, then no key.
    fn order(&self, policy: &SsePolicy, key: &str) -> Vec<ReadKey> {
        let mut order = policy.read_candidates();
        if let Some(h) = self.hint(key) {
            if let Some(i) = order.iter().position(|c| *c == h) {
                let h = order.remove(i);
                order.insert(0, h);
            }
        }
        order
    }

    /// Runs `read` of `key` with each candidate key in turn until one is accepted, and
    /// records the winner. Without SSE-C it runs once, with no key.
    pub async fn probe<T, F, Fut>(
        &self,
        policy: &SsePolicy,
        op: CosOp,
        key: &str,
        read: F,
    ) -> Result<T, CosError>
    where
        F: Fn(ReadKey) -> Fut,
        Fut: Future<Output = Result<T, CosError>>,
    {
        if !policy.uses_customer_keys() {
            return read(ReadKey::Plain).await.map_err(missing_key);
        }
        let mut last: Option<CosError> = None;
        for rk in self.order(policy, key) {
            match read(rk).await {
                Ok(v) => {
                    self.remember(policy, key, rk);
                    return Ok(v);
                }
                Err(e) if is_key_rejection(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        self.forget(key);
        let last =
            last.unwrap_or_else(|| CosError::local(CosErrorKind::SseKeyRejected, op, key, ""));
        Err(CosError {
            kind: CosErrorKind::SseKeyRejected,
            message: format!(
                "no key of the SSE-C key history (key MD5s {}) opens this object, and it \
                 is not readable without a key either",
                policy
                    .customer_keys()
                    .iter()
                    .map(|k| k.md5_b64())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ..last
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cos::sse::{CustomerKey, SseMode};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn rejected(status: u16, code: Option<&str>) -> CosError {
        let mut e = CosError::local(CosErrorKind::BadRequest, CosOp::HeadObject, "k", "");
        e.status = Some(status);
        e.code = code.map(str::to_string);
        e
    }

    fn two_keys() -> (SsePolicy, ReadKeys) {
        let keys = vec![
            CustomerKey::parse(b"0123456789abcdef0123456789abcdef").unwrap(),
            CustomerKey::parse(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345").unwrap(),
        ];
        let policy = SsePolicy::new(SseMode::Customer { keys }).unwrap();
        (policy, ReadKeys::new())
    }

    #[test]
    fn key_rejections_are_told_from_request_errors() {
        assert!(is_key_rejection(&rejected(400, None)));
        assert!(is_key_rejection(&rejected(403, Some("AccessDenied"))));
        assert!(is_key_rejection(&rejected(
            400,
            Some("SsecDecryptHeaderInvalid")
        )));
        assert!(!is_key_rejection(&rejected(
            403,
            Some("SignatureDoesNotMatch")
        )));
        assert!(!is_key_rejection(&rejected(404, None)));
    }

    #[tokio::test]
    async fn the_opening_key_is_found_remembered_and_tried_first() {
        let (policy, rk) = two_keys();
        let tries = AtomicUsize::new(0);
        let open_with_second = |k: ReadKey| {
            tries.fetch_add(1, Ordering::Relaxed);
            async move {
                match k {
                    ReadKey::Customer(1) => Ok(k),
                    _ => Err(rejected(400, None)),
                }
            }
        };
        let got = rk
            .probe(&policy, CosOp::HeadObject, "o", open_with_second)
            .await;
        assert_eq!(got.unwrap(), ReadKey::Customer(1));
        assert_eq!(tries.swap(0, Ordering::Relaxed), 2);
        assert_eq!(rk.hint("o"), Some(ReadKey::Customer(1)));
        // Next time the remembered key goes first: one request.
        let got = rk
            .probe(&policy, CosOp::GetObject, "o", open_with_second)
            .await;
        assert_eq!(got.unwrap(), ReadKey::Customer(1));
        assert_eq!(tries.load(Ordering::Relaxed), 1);
        assert_eq!(ReadKeys::for_new_objects(&policy), ReadKey::Customer(0));
    }

    #[tokio::test]
    async fn plain_objects_are_read_without_a_key_after_the_history() {
        let (policy, rk) = two_keys();
        let got = rk
            .probe(&policy, CosOp::HeadObject, "p", |k| async move {
                if k == ReadKey::Plain {
                    Ok(())
                } else {
                    Err(rejected(400, None))
                }
            })
            .await;
        assert!(got.is_ok());
        assert_eq!(rk.hint("p"), Some(ReadKey::Plain));
    }

    #[tokio::test]
    async fn no_key_opening_is_sse_key_rejected_and_other_errors_stop_the_probe() {
        let (policy, rk) = two_keys();
        rk.remember(&policy, "x", ReadKey::Customer(0));
        let e = rk
            .probe(&policy, CosOp::HeadObject, "x", |_| async {
                Err::<(), _>(rejected(403, None))
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, CosErrorKind::SseKeyRejected);
        assert!(e.message.contains("key MD5s"), "{}", e.message);
        assert_eq!(
            rk.hint("x"),
            None,
            "a key that stopped working is forgotten"
        );
        let tries = AtomicUsize::new(0);
        let e = rk
            .probe(&policy, CosOp::HeadObject, "y", |_| {
                tries.fetch_add(1, Ordering::Relaxed);
                async { Err::<(), _>(rejected(404, Some("NoSuchKey"))) }
            })
            .await
            .unwrap_err();
        assert_eq!(e.status, Some(404));
        assert_eq!(tries.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn without_customer_keys_one_plain_attempt_and_no_hints() {
        let policy = SsePolicy::none();
        let rk = ReadKeys::new();
        let got = rk
            .probe(&policy, CosOp::HeadObject, "k", |k| async move { Ok(k) })
            .await;
        assert_eq!(got.unwrap(), ReadKey::Plain);
        rk.remember(&policy, "k", ReadKey::Plain);
        assert_eq!(rk.hint("k"), None);
        assert_eq!(ReadKeys::for_new_objects(&policy), ReadKey::Plain);
    }
}

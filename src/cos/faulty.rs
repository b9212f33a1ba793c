//! `FaultyClient`: an `ObjectClient` wrapper that makes requests fail, for tests of the
//! layers above (the filesystem's durability rules), reproducibly from a seed.
//!
//! It injects what the filesystem can see of a fault once the real client's retries are
//! spent: a request refused before it acted (5xx, throttling, a reset), a request that
//! acted but whose answer was lost (the object was written, the caller hears an error),
//! and a GET body that breaks part way. Any inner client can be wrapped, so the same
//! faults apply over `MemStore` or over the HTTP client. Counters say what was injected,
//! so a test can prove its faults happened.

use super::{
    CompletedPart, CopySource, CosError, CosErrorKind, CosOp, DeleteFailures, GetRequest,
    GetResponse, ListPage, ListPartsPage, ListUploadsPage, MetadataDirective, ObjectClient,
    ObjectMeta, PutOptions, PutResult, UploadId,
};
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request fails before the store acts on it, with this kind.
    Refused(CosErrorKind),
    /// The store acts on the request, then the answer is lost (Transport).
    AnswerLost,
    /// A GET answers, then its body breaks after part of it (other requests: Refused).
    BodyCut,
}

/// Which requests fail and how.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Probability that one request fails.
    pub rate: f64,
    /// Operations that may fail (empty: all).
    pub ops: Vec<CosOp>,
    /// The faults to choose from, uniformly.
    pub faults: Vec<Fault>,
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> FaultPlan {
        FaultPlan {
            rate: 0.0,
            ops: Vec::new(),
            faults: Vec::new(),
        }
    }

    /// Every kind of fault, on every operation, at `rate`.
    pub fn all(rate: f64) -> FaultPlan {
        FaultPlan {
            rate,
            ops: Vec::new(),
            faults: vec![
                Fault::Refused(CosErrorKind::ServerError),
                Fault::Refused(CosErrorKind::Throttled),
                Fault::Refused(CosErrorKind::Transport),
                Fault::AnswerLost,
                Fault::BodyCut,
            ],
        }
    }
}

/// The wrapper.
pub struct FaultyClient<C> {
    inner: Arc<C>,
    plan: Mutex<FaultPlan>,
    rng: Mutex<StdRng>,
    injected: AtomicU64,
}

impl<C: ObjectClient> FaultyClient<C> {
    pub fn new(inner: Arc<C>, seed: u64) -> FaultyClient<C> {
        FaultyClient {
            inner,
            plan: Mutex::new(FaultPlan::none()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            injected: AtomicU64::new(0),
        }
    }

    pub fn set_plan(&self, plan: FaultPlan) {
        *self.plan.lock() = plan;
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    pub fn inner(&self) -> &Arc<C> {
        &self.inner
    }

    /// The fault for one request of `op`, if it gets one.
    fn draw(&self, op: CosOp) -> Option<Fault> {
        let plan = self.plan.lock();
        if plan.faults.is_empty() || !(plan.ops.is_empty() || plan.ops.contains(&op)) {
            return None;
        }
        let mut rng = self.rng.lock();
        if !rng.gen_bool(plan.rate.clamp(0.0, 1.0)) {
            return None;
        }
        let f = plan.faults[rng.gen_range(0..plan.faults.len())];
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(f)
    }

    /// Runs `call` under a drawn fault: refused before it runs, or run and its answer lost.
    async fn run<T, Fut>(&self, op: CosOp, key: &str, call: Fut) -> Result<T, CosError>
    where
        Fut: Future<Output = Result<T, CosError>>,
    {
        match self.draw(op) {
            None => call.await,
            Some(Fault::Refused(kind)) => Err(injected(kind, op, key)),
            Some(Fault::BodyCut) => Err(injected(CosErrorKind::Transport, op, key)),
            Some(Fault::AnswerLost) => {
                let _ = call.await;
                Err(injected(CosErrorKind::Transport, op, key))
            }
        }
    }
}

fn injected(kind: CosErrorKind, op: CosOp, key: &str) -> CosError {
    CosError::local(kind, op, key, "injected fault")
}

impl<C: ObjectClient> ObjectClient for FaultyClient<C> {
    fn counters(&self) -> super::ClientCounters {
        self.inner.counters()
    }

    async fn head_bucket(&self) -> Result<(), CosError> {
        self.run(CosOp::HeadBucket, "", self.inner.head_bucket())
            .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, CosError> {
        self.run(CosOp::HeadObject, key, self.inner.head(key)).await
    }

    async fn get(
        &self,
        key: &str,
        req: impl Into<GetRequest> + Send,
    ) -> Result<GetResponse, CosError> {
        let req: GetRequest = req.into();
        let op = CosOp::GetObject;
        match self.draw(op) {
            None => self.inner.get(key, req.clone()).await,
            Some(Fault::BodyCut) => {
                let resp = self.inner.get(key, req.clone()).await?;
                let keep = self.rng.lock().gen_range(0..4096usize);
                let k = key.to_string();
                // Some bytes arrive, then the connection breaks.
                let mut left = keep;
                let cut = resp
                    .body
                    .flat_map(move |chunk| {
                        let items: Vec<Result<Bytes, CosError>> = match chunk {
                            Err(e) => vec![Err(e)],
                            Ok(c) if left >= c.len() => {
                                left -= c.len();
                                vec![Ok(c)]
                            }
                            Ok(c) => {
                                let part = c.slice(..left);
                                left = 0;
                                let broken = Err(injected(CosErrorKind::Transport, op, &k));
                                if part.is_empty() {
                                    vec![broken]
                                } else {
                                    vec![Ok(part), broken]
                                }
                            }
                        };
                        futures::stream::iter(items)
                    })
                    .scan(false, |broken, item| {
                        // One error ends the body.
                        if *broken {
                            return futures::future::ready(None);
                        }
                        *broken = item.is_err();
                        futures::future::ready(Some(item))
                    });
                Ok(GetResponse {
                    meta: resp.meta,
                    body: Box::pin(cut),
                })
            }
            Some(Fault::Refused(kind)) => Err(injected(kind, op, key)),
            Some(Fault::AnswerLost) => Err(injected(CosErrorKind::Transport, op, key)),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max_keys: u32,
    ) -> Result<ListPage, CosError> {
        self.run(
            CosOp::ListObjects,
            prefix,
            self.inner.list(prefix, delimiter, marker, max_keys),
        )
        .await
    }

    async fn put(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<PutResult, CosError> {
        self.run(CosOp::PutObject, key, self.inner.put(key, body, opts))
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), CosError> {
        self.run(CosOp::DeleteObject, key, self.inner.delete(key))
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<DeleteFailures, CosError> {
        self.run(CosOp::DeleteMultiple, "", self.inner.delete_many(keys))
            .await
    }

    async fn copy(
        &self,
        src: &CopySource<'_>,
        dst: &str,
        directive: &MetadataDirective,
    ) -> Result<PutResult, CosError> {
        self.run(CosOp::CopyObject, dst, self.inner.copy(src, dst, directive))
            .await
    }

    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<UploadId, CosError> {
        self.run(
            CosOp::InitiateMultipart,
            key,
            self.inner.create_multipart(key, opts),
        )
        .await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<CompletedPart, CosError> {
        self.run(
            CosOp::UploadPart,
            key,
            self.inner.upload_part(key, upload, number, body),
        )
        .await
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        src: &str,
        range: Range<u64>,
    ) -> Result<CompletedPart, CosError> {
        self.run(
            CosOp::UploadPartCopy,
            key,
            self.inner.upload_part_copy(key, upload, number, src, range),
        )
        .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload: &UploadId,
        parts: &[CompletedPart],
    ) -> Result<PutResult, CosError> {
        self.run(
            CosOp::CompleteMultipart,
            key,
            self.inner.complete_multipart(key, upload, parts),
        )
        .await
    }

    async fn abort_multipart(&self, key: &str, upload: &UploadId) -> Result<(), CosError> {
        self.run(
            CosOp::AbortMultipart,
            key,
            self.inner.abort_multipart(key, upload),
        )
        .await
    }

    async fn list_parts(
        &self,
        key: &str,
        upload: &UploadId,
        part_number_marker: Option<u32>,
    ) -> Result<ListPartsPage, CosError> {
        self.run(
            CosOp::ListParts,
            key,
            self.inner.list_parts(key, upload, part_number_marker),
        )
        .await
    }

    async fn list_uploads(
        &self,
        prefix: &str,
        marker: Option<(&str, &str)>,
    ) -> Result<ListUploadsPage, CosError> {
        self.run(
            CosOp::ListMultipartUploads,
            prefix,
            self.inner.list_uploads(prefix, marker),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cos::mem::MemStore;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_lost_answer_still_acts_and_a_refusal_does_not() {
        rt().block_on(async {
            let store = Arc::new(MemStore::default());
            let c = FaultyClient::new(store.clone(), 1);
            c.set_plan(FaultPlan {
                rate: 1.0,
                ops: vec![CosOp::PutObject],
                faults: vec![Fault::AnswerLost],
            });
            let opts = PutOptions::default();
            assert!(c.put("a", Bytes::from_static(b"x"), &opts).await.is_err());
            assert!(store.object("a").is_some(), "the PUT acted");
            c.set_plan(FaultPlan {
                rate: 1.0,
                ops: vec![CosOp::PutObject],
                faults: vec![Fault::Refused(CosErrorKind::ServerError)],
            });
            assert!(c.put("b", Bytes::from_static(b"x"), &opts).await.is_err());
            assert!(store.object("b").is_none(), "the PUT did not act");
            // Other operations pass.
            assert!(c.head("a").await.is_ok());
            assert_eq!(c.injected(), 2);
        });
    }

    #[test]
    fn a_cut_body_errors_after_some_bytes_and_the_same_seed_repeats() {
        rt().block_on(async {
            let store = Arc::new(MemStore::default());
            store.insert("k", vec![7u8; 100_000], &[]);
            let mut outcomes = Vec::new();
            for _ in 0..2 {
                let c = FaultyClient::new(store.clone(), 42);
                c.set_plan(FaultPlan {
                    rate: 1.0,
                    ops: vec![CosOp::GetObject],
                    faults: vec![Fault::BodyCut],
                });
                let r = c.get("k", None).await.unwrap().collect().await;
                assert!(r.is_err(), "a cut body must end in an error");
                outcomes.push(c.injected());
            }
            assert_eq!(outcomes, vec![1, 1]);
        });
    }
}

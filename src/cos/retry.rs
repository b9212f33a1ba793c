//! The retry loop of the COS client: which failures are worth another attempt, how long
//! to wait (exponential backoff with full jitter), and the bounds (attempts and total time).
//!
//! Every attempt is a fresh request built by the caller's closure, so a retried request
//! gets a new signature and re-sends its `Bytes` body from the start. Failures that prove
//! the server did not act (5xx, throttling) are retried for every
//! operation; ambiguous ones (timeouts, resets, cut bodies) only for idempotent operations.
//! Each retry is logged with its attempt number, the operation and the key: never headers.

use super::config::RetryConfig;
use super::error::{CosError, CosErrorKind};
use super::op::CosOp;
use rand::Rng;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the retry loop did, counted over the life of a client: how many operations
/// needed more than one attempt and were saved by it, and how many gave up.
#[derive(Debug, Default)]
pub struct RetryStats {
    /// Attempts after the first (every retry sent).
    pub retries: AtomicU64,
    /// Operations that failed at least once and then succeeded.
    pub recovered: AtomicU64,
    /// Operations that failed with a retryable error once the bounds were reached.
    pub gave_up: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetrySnapshot {
    pub retries: u64,
    pub recovered: u64,
    pub gave_up: u64,
}

impl RetryStats {
    pub fn snapshot(&self) -> RetrySnapshot {
        RetrySnapshot {
            retries: self.retries.load(Ordering::Relaxed),
            recovered: self.recovered.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
        }
    }
}

/// The retry bounds of one client (clones share the counters).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    cfg: RetryConfig,
    stats: Arc<RetryStats>,
}

impl RetryPolicy {
    pub fn new(cfg: RetryConfig) -> Self {
        RetryPolicy {
            cfg,
            stats: Arc::new(RetryStats::default()),
        }
    }

    /// The counters of every loop run under this policy.
    pub fn stats(&self) -> &RetryStats {
        &self.stats
    }

    pub fn config(&self) -> &RetryConfig {
        &self.cfg
    }

    /// The upper bound of the wait before retry number `retry` (1 = first retry):
    /// `min(max_delay, base_delay · 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let d = self.cfg.base_delay.saturating_mul(1u32 << exp);
        d.min(self.cfg.max_delay)
    }

    /// The wait before retry number `retry`, drawn uniformly from `[0, ceiling]` (full
    /// jitter spreads out clients that failed together). `unit` is a draw from `[0, 1)`.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Whether `err`, the result of attempt number `attempt` (1-based), may be retried given
    /// the time already spent.
    pub fn should_retry(&self, op: CosOp, err: &CosError, attempt: u32, elapsed: Duration) -> bool {
        if attempt >= self.cfg.max_attempts || elapsed >= self.cfg.max_total {
            return false;
        }
        retryable_for(op, err)
    }
}

/// Whether an error is worth another attempt of `op`, regardless of the bounds.
pub fn retryable_for(op: CosOp, err: &CosError) -> bool {
    match err.kind {
        // The request may or may not have taken effect: only repeat what is safe to repeat.
        CosErrorKind::Timeout | CosErrorKind::Transport => op.is_idempotent(),
        // Otherwise the kind decides: the server answered and either did not act (5xx,
        // throttling) or refused for a reason a retry cannot change.
        kind => kind.is_retryable(),
    }
}

/// Runs `attempt_fn(attempt)` until it succeeds, fails with a non-retryable error, or the
/// bounds are reached; then the last error is returned.
pub async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    op: CosOp,
    key: &str,
    mut attempt_fn: F,
) -> Result<T, CosError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, CosError>>,
{
    let start = Instant::now();
    let mut attempt = 1;
    loop {
        match attempt_fn(attempt).await {
            Ok(v) => {
                if attempt > 1 {
                    policy.stats.recovered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(op = op.name(), key, attempt, "succeeded after retries");
                }
                return Ok(v);
            }
            Err(e) => {
                if !policy.should_retry(op, &e, attempt, start.elapsed()) {
                    if e.kind.is_retryable() {
                        policy.stats.gave_up.fetch_add(1, Ordering::Relaxed);
                    }
                    // Debug only: whoever gets the error logs it once, with what it means
                    // for the file (one line per problem, not one per layer).
                    if attempt > 1 && e.kind.is_retryable() {
                        tracing::debug!(op = op.name(), key, attempts = attempt, kind = ?e.kind,
                            code = e.code.as_deref().unwrap_or(""), "giving up after retries");
                    }
                    return Err(e);
                }
                let wait = policy.delay(attempt, rand::thread_rng().gen::<f64>());
                // A wait that would end past max_total is cut short rather than skipped: the
                // next attempt still starts, but no later than the bound.
                let left = policy.cfg.max_total.saturating_sub(start.elapsed());
                let wait = wait.min(left);
                // A retry that works is not the admin's business (the statistics count
                // them); one that does not is logged by whoever gets the error.
                tracing::debug!(op = op.name(), key, attempt, kind = ?e.kind,
                    code = e.code.as_deref().unwrap_or(""), status = e.status.unwrap_or(0),
                    wait_ms = wait.as_millis() as u64, "retrying COS request");
                tokio::time::sleep(wait).await;
                policy.stats.retries.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            max_attempts,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_total: Duration::from_secs(60),
        })
    }

    fn err(kind: CosErrorKind) -> CosError {
        CosError::local(kind, CosOp::GetObject, "k", "x")
    }

    #[test]
    fn delay_doubles_up_to_the_cap_and_is_jittered_below_it() {
        let p = policy(10);
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(6), Duration::from_secs(2));
        assert_eq!(p.ceiling(200), Duration::from_secs(2));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(200));
        assert_eq!(p.delay(3, 0.0), Duration::ZERO);
        assert!(p.delay(3, 0.999_999) <= p.ceiling(3));
    }

    #[test]
    fn bounds_and_kinds_decide() {
        let p = policy(3);
        let e = err(CosErrorKind::ServerError);
        assert!(p.should_retry(CosOp::GetObject, &e, 1, Duration::ZERO));
        assert!(p.should_retry(CosOp::GetObject, &e, 2, Duration::ZERO));
        assert!(!p.should_retry(CosOp::GetObject, &e, 3, Duration::ZERO));
        assert!(!p.should_retry(CosOp::GetObject, &e, 1, Duration::from_secs(61)));
        assert!(!p.should_retry(
            CosOp::GetObject,
            &err(CosErrorKind::NotFound),
            1,
            Duration::ZERO
        ));
        // Ambiguous failures are repeated: Initiate too (the client cleans up orphans).
        let t = CosError::local(CosErrorKind::Timeout, CosOp::InitiateMultipart, "k", "x");
        assert!(p.should_retry(CosOp::InitiateMultipart, &t, 1, Duration::ZERO));
        assert!(p.should_retry(CosOp::PutObject, &t, 1, Duration::ZERO));
        assert!(p.should_retry(
            CosOp::InitiateMultipart,
            &err(CosErrorKind::Throttled),
            1,
            Duration::ZERO
        ));
    }

    #[tokio::test]
    async fn run_retries_then_gives_up_with_the_last_error() {
        let p = RetryPolicy::new(RetryConfig {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_total: Duration::from_secs(5),
        });
        let n = AtomicU32::new(0);
        let r: Result<(), _> = run(&p, CosOp::GetObject, "k", |a| {
            n.fetch_add(1, Ordering::SeqCst);
            async move {
                Err(CosError::local(
                    CosErrorKind::ServerError,
                    CosOp::GetObject,
                    "k",
                    format!("attempt {a}"),
                ))
            }
        })
        .await;
        assert_eq!(n.load(Ordering::SeqCst), 3);
        assert_eq!(r.unwrap_err().message, "attempt 3");
        let n = AtomicU32::new(0);
        let r = run(&p, CosOp::GetObject, "k", |a| {
            n.fetch_add(1, Ordering::SeqCst);
            async move {
                if a < 2 {
                    Err(err(CosErrorKind::Transport))
                } else {
                    Ok(a)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        let n2 = AtomicU32::new(0);
        let r: Result<(), _> = run(&p, CosOp::GetObject, "k", |_| {
            n2.fetch_add(1, Ordering::SeqCst);
            async { Err(err(CosErrorKind::AccessDenied)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(n2.load(Ordering::SeqCst), 1);
    }
}

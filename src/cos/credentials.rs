//! The credentials requests are signed with, and keeping them fresh.
//!
//! A `CredentialStore` holds the current SecretId/SecretKey/token and when they expire.
//! Fixed credentials (a key pair, environment variables) never change. Refreshable ones
//! come from a `CredentialSource` (an STS password file re-read, the CVM metadata
//! service asked): a background task fetches new ones `REFRESH_MARGIN` before they
//! expire (cosfs's 10 minutes), retries a failed fetch every `RETRY_EVERY` and logs each
//! failure as one line; a rejection of the credentials by COS (403, `ExpiredToken`)
//! makes the client fetch at once and send the request again (`refresh_after_rejection`),
//! and so does SIGHUP (`refresh`). A request is never signed with credentials known to be
//! expired: `usable` refuses them with `CredentialsExpired` (EIO), which only happens
//! once every refresh until the expiry has failed.

use super::config::Credentials;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// How long before the expiry a refresh is due (cosfs's RAM_EXPIRE_MERGIN).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(600);
/// How soon a failed refresh is tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(30);
/// Rejections fetch at most this often (a denied operation, or a wrong SSE-C key being
/// probed, must not make every request ask the source).
const MIN_REFETCH: Duration = Duration::from_secs(5);

/// Credentials and their expiry (None: they do not expire).
#[derive(Debug, Clone)]
pub struct Fresh {
    pub credentials: Credentials,
    pub expires: Option<SystemTime>,
}

/// The credentials in force, numbered: a request remembers which generation signed it,
/// so a rejection after someone else's refresh only retries.
#[derive(Debug)]
pub struct Current {
    pub fresh: Fresh,
    pub generation: u64,
}

/// A fetch of new credentials; the error is a message for the log (never a secret).
pub type Fetch = Pin<Box<dyn Future<Output = Result<Fresh, String>> + Send>>;

/// Where refreshed credentials come from.
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    /// For messages: `STS passwd file /etc/passwd-cosfs`, `CVM role r (http://...)`.
    fn describe(&self) -> String;
    fn fetch(&self) -> Fetch;
}

/// Counts for the statistics line and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RefreshCounts {
    pub refreshes: u64,
    pub failures: u64,
}

pub struct CredentialStore {
    current: RwLock<Arc<Current>>,
    source: Option<Arc<dyn CredentialSource>>,
    /// One fetch at a time; holds when a rejection last made one.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    refreshes: AtomicU64,
    failures: AtomicU64,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore")
            .field("current", &self.current())
            .field("source", &self.source.as_ref().map(|s| s.describe()))
            .finish()
    }
}

/// Whether `expires` has passed at `now`.
fn expired(expires: Option<SystemTime>, now: SystemTime) -> bool {
    expires.is_some_and(|e| e <= now)
}

impl CredentialStore {
    /// Credentials that never change.
    pub fn fixed(credentials: Credentials) -> CredentialStore {
        CredentialStore::new(
            Fresh {
                credentials,
                expires: None,
            },
            None,
        )
    }

    /// `initial` now, then whatever `source` gives (`source` None: fixed).
    pub fn new(initial: Fresh, source: Option<Arc<dyn CredentialSource>>) -> CredentialStore {
        CredentialStore {
            current: RwLock::new(Arc::new(Current {
                fresh: initial,
                generation: 1,
            })),
            source,
            fetching: tokio::sync::Mutex::new(None),
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The credentials to sign with at `now`, or why there are none.
    pub fn usable(&self, now: SystemTime) -> Result<Arc<Current>, String> {
        let c = self.current();
        if expired(c.fresh.expires, now) {
            return Err(format!(
                "the credentials {} expired at {} and no refresh has succeeded{}",
                c.fresh.credentials.secret_id,
                humantime_utc(c.fresh.expires),
                self.source
                    .as_ref()
                    .map(|s| format!(" (from {})", s.describe()))
                    .unwrap_or_else(|| {
                        " (they cannot be refreshed: give a passwd file or cam_role=)".into()
                    }),
            ));
        }
        Ok(c)
    }

    pub fn is_refreshable(&self) -> bool {
        self.source.is_some()
    }

    pub fn counts(&self) -> RefreshCounts {
        RefreshCounts {
            refreshes: self.refreshes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Fetches new credentials now (`why` goes into the log line). Ok(false) when there
    /// is no source.
    pub async fn refresh(&self, why: &str) -> Result<bool, String> {
        let Some(source) = &self.source else {
            return Ok(false);
        };
        let _one_at_a_time = self.fetching.lock().await;
        self.fetch_locked(source.as_ref(), why).await.map(|_| true)
    }

    /// Fetches and installs new credentials; Ok(whether they differ from the old ones).
    /// Only different ones get a new generation (a request rejected with the old ones is
    /// worth sending again only then).
    async fn fetch_locked(&self, source: &dyn CredentialSource, why: &str) -> Result<bool, String> {
        match source.fetch().await {
            Ok(fresh) => {
                let old = self.current();
                let changed = fresh.credentials.secret_id != old.fresh.credentials.secret_id
                    || fresh.credentials.token() != old.fresh.credentials.token()
                    || fresh.credentials.secret_key() != old.fresh.credentials.secret_key();
                if expired(fresh.expires, SystemTime::now()) {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    let msg = format!(
                        "{} gave credentials that expired at {}",
                        source.describe(),
                        humantime_utc(fresh.expires)
                    );
                    tracing::warn!("credential refresh ({why}) failed: {msg}; will retry");
                    return Err(msg);
                }
                tracing::info!(
                    secret_id = %fresh.credentials.secret_id,
                    expires = %humantime_utc(fresh.expires),
                    changed,
                    "credentials refreshed ({why}) from {}",
                    source.describe()
                );
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Current {
                    fresh,
                    generation: old.generation + u64::from(changed),
                });
                self.refreshes.fetch_add(1, Ordering::Relaxed);
                Ok(changed)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let left = self.current().fresh.expires.map(|x| {
                    x.duration_since(SystemTime::now())
                        .map(|d| format!("{} s left", d.as_secs()))
                        .unwrap_or_else(|_| "already expired".into())
                });
                tracing::warn!(
                    "credential refresh ({why}) from {} failed: {e}; the current credentials stay in use ({}); will retry",
                    source.describe(),
                    left.unwrap_or_else(|| "no expiry".into())
                );
                Err(e)
            }
        }
    }

    /// After COS rejected a request signed with generation `used`: whether sending it
    /// again may help. Another request's refresh since then: yes, at once. Otherwise a
    /// fetch (unless a rejection made one moments ago), and yes if it gave different
    /// credentials.
    pub async fn refresh_after_rejection(&self, used: u64) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let mut last_fetch = self.fetching.lock().await;
        if self.current().generation != used {
            return true;
        }
        if last_fetch.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
            return false;
        }
        *last_fetch = Some(Instant::now());
        self.fetch_locked(source.as_ref(), "COS rejected the credentials")
            .await
            .unwrap_or(false)
    }

    /// When the next scheduled refresh is due (None: never, no source or no expiry).
    fn next_due(&self, now: SystemTime) -> Option<Duration> {
        self.source.as_ref()?;
        let expires = self.current().fresh.expires?;
        let due = expires.checked_sub(REFRESH_MARGIN).unwrap_or(expires);
        Some(due.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// Refreshes in the background for the life of the runtime: at the margin before each
    /// expiry, and every `RETRY_EVERY` while that fails.
    pub fn spawn_refresher(self: &Arc<Self>, rt: &tokio::runtime::Handle) {
        if self.source.is_none() {
            return;
        }
        let store = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                let Some(s) = store.upgrade() else { return };
                let Some(wait) = s.next_due(SystemTime::now()) else {
                    // No expiry to plan for: only SIGHUP and rejections refresh.
                    return;
                };
                let generation = s.current().generation;
                drop(s);
                tokio::time::sleep(wait).await;
                let Some(s) = store.upgrade() else { return };
                if s.current().generation != generation {
                    continue; // refreshed meanwhile (SIGHUP, a rejection)
                }
                let failed = s.refresh("due before expiry").await.is_err();
                // Still due after a refresh that worked: the source has nothing newer yet
                // (an STS file not rewritten so far). Ask again later, not in a loop.
                let still_due = s.next_due(SystemTime::now()) == Some(Duration::ZERO);
                drop(s);
                if failed || still_due {
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
        });
    }
}

/// `2026-12-07T23:05:09Z`, or `never`.
pub fn humantime_utc(t: Option<SystemTime>) -> String {
    match t {
        None => "never".into(),
        Some(t) => chrono::DateTime::<chrono::Utc>::from(t)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Hands out the queued answers in order.
    #[derive(Debug)]
    struct Queue(Mutex<Vec<Result<Fresh, String>>>);

    impl CredentialSource for Queue {
        fn describe(&self) -> String {
            "test queue".into()
        }
        fn fetch(&self) -> Fetch {
            let next = self.0.lock().unwrap().remove(0);
            Box::pin(async move { next })
        }
    }

    fn fresh(id: &str, expires_in: i64) -> Fresh {
        let now = SystemTime::now();
        Fresh {
            credentials: Credentials::new(id, "key", Some("token".into())),
            expires: Some(if expires_in >= 0 {
                now + Duration::from_secs(expires_in as u64)
            } else {
                now - Duration::from_secs((-expires_in) as u64)
            }),
        }
    }

    fn store(initial: Fresh, answers: Vec<Result<Fresh, String>>) -> CredentialStore {
        CredentialStore::new(initial, Some(Arc::new(Queue(Mutex::new(answers)))))
    }

    #[tokio::test]
    async fn expired_credentials_are_never_used() {
        let s = store(fresh("A", -1), vec![Err("metadata down".into())]);
        let e = s.usable(SystemTime::now()).unwrap_err();
        assert!(e.contains("A expired at"), "{e}");
        assert!(s.refresh("test").await.is_err());
        assert_eq!(
            s.counts(),
            RefreshCounts {
                refreshes: 0,
                failures: 1
            }
        );
        let fixed = CredentialStore::fixed(Credentials::new("K", "S", None));
        assert!(fixed.usable(SystemTime::now()).is_ok());
        assert_eq!(fixed.next_due(SystemTime::now()), None);
    }

    #[tokio::test]
    async fn refresh_swaps_and_numbers_generations() {
        let s = store(
            fresh("A", 3600),
            vec![Ok(fresh("B", 3600)), Ok(fresh("C", -5))],
        );
        let due = s.next_due(SystemTime::now()).unwrap();
        assert!(
            due > Duration::from_secs(2990) && due <= Duration::from_secs(3000),
            "{due:?}"
        );
        assert!(s.refresh("test").await.unwrap());
        let c = s.usable(SystemTime::now()).unwrap();
        assert_eq!(
            (c.fresh.credentials.secret_id.as_str(), c.generation),
            ("B", 2)
        );
        // Already-expired answers are refused; B stays.
        assert!(s.refresh("test").await.is_err());
        assert_eq!(s.current().fresh.credentials.secret_id, "B");
    }

    #[tokio::test]
    async fn rejections_refetch_once_not_in_a_loop() {
        let s = store(
            fresh("A", 3600),
            vec![Ok(fresh("B", 3600)), Ok(fresh("C", 3600))],
        );
        // Signed with generation 1, rejected: fetch B.
        assert!(s.refresh_after_rejection(1).await);
        assert_eq!(s.current().fresh.credentials.secret_id, "B");
        // Another request signed with 1 rejected too: B is already there, just retry.
        assert!(s.refresh_after_rejection(1).await);
        // B itself rejected right after it came: no new fetch.
        assert!(!s.refresh_after_rejection(2).await);
        assert_eq!(s.current().fresh.credentials.secret_id, "B");
        let none = CredentialStore::fixed(Credentials::new("K", "S", None));
        assert!(!none.refresh_after_rejection(1).await);
    }

    #[tokio::test(start_paused = true)]
    async fn background_refresh_is_due_at_the_margin_and_retries() {
        // Inside the margin already: due now; the first fetch fails, the retry works.
        let s = Arc::new(store(
            fresh("A", 300),
            vec![Err("down".into()), Ok(fresh("B", 7200))],
        ));
        s.spawn_refresher(&tokio::runtime::Handle::current());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            s.counts(),
            RefreshCounts {
                refreshes: 0,
                failures: 1
            }
        );
        assert_eq!(
            s.current().fresh.credentials.secret_id,
            "A",
            "A stays meanwhile"
        );
        tokio::time::sleep(RETRY_EVERY).await;
        assert_eq!(s.counts().refreshes, 1, "retried");
        assert_eq!(s.current().fresh.credentials.secret_id, "B");
        // B is due 10 minutes before its expiry, not before.
        let due = s.next_due(SystemTime::now()).unwrap();
        assert!(
            due > Duration::from_secs(6590) && due <= Duration::from_secs(6600),
            "{due:?}"
        );
    }
}

//! The JWKS cache: which keys are trusted now, and when the JWKS is fetched again.
//!
//! - A fetched JWKS is trusted for the identity provider's `Cache-Control: max-age`,
//!   bounded by `auth.jwks_cache_min_seconds` and `auth.jwks_cache_max_seconds` (a file, or a
//!   response without max-age, gets the upper bound). The first token verified after that
//!   refetches it, so a key the provider removed is refused at most that long after.
//! - If that refetch fails, the keys fetched before stay trusted and the refetch is tried
//!   again after the lower bound: an identity provider that is down must not lock every
//!   client out (a warning says so each time).
//! - A token naming a key the cache lacks (a rotation, or a made-up `kid`) refetches at most
//!   once per `auth.jwks_unknown_kid_refetch_seconds`: a stream of invented `kid`s costs the
//!   provider one request per interval, and a key published during it is trusted at the next.
//! - Refetches are one at a time; tokens signed with a cached, fresh key never wait for one.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::jwks::{Fetched, JwksError, JwksFetcher, KeySet};
use crate::verifier::{TokenError, Untrusted};

/// How long fetched keys are trusted, and how often an unknown `kid` may refetch them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefreshPolicy {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) unknown_kid: Duration,
}

impl RefreshPolicy {
    /// How long a JWKS served with `max_age` is trusted.
    fn trusted_for(&self, max_age: Option<Duration>) -> Duration {
        max_age.unwrap_or(self.max).clamp(self.min, self.max)
    }
}

#[derive(Debug)]
struct Cached {
    keys: Arc<KeySet>,
    /// Past this instant the keys are refetched before the next token is checked with them.
    expires: Instant,
}

#[derive(Debug)]
pub(crate) struct KeyCache {
    fetcher: JwksFetcher,
    policy: RefreshPolicy,
    current: RwLock<Cached>,
    /// Held while a refetch runs, so concurrent requests wait for one instead of each
    /// starting their own; holds when an unknown `kid` last refetched.
    refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyCache {
    /// Fetches the JWKS a first time; fails, naming its source, when it cannot.
    pub(crate) async fn load(
        fetcher: JwksFetcher,
        policy: RefreshPolicy,
    ) -> Result<Self, JwksError> {
        let fetched = fetcher.fetch().await?;
        let current = RwLock::new(Cached {
            expires: Instant::now() + policy.trusted_for(fetched.max_age),
            keys: Arc::new(fetched.keys),
        });
        Ok(Self {
            fetcher,
            policy,
            current,
            refetch: tokio::sync::Mutex::new(None),
        })
    }

    pub(crate) fn source(&self) -> crate::JwksSource {
        self.fetcher.source()
    }

    /// The keys to check a token naming `kid` with: refetched first when they expired, or
    /// when they lack `kid` and no unknown `kid` refetched within the interval. The caller
    /// refuses the token if `kid` is still missing.
    pub(crate) async fn keys_for(&self, kid: &str) -> Result<Arc<KeySet>, TokenError> {
        if Instant::now() >= self.snapshot().expires {
            self.refresh_expired().await;
        }
        let keys = Arc::clone(&self.snapshot().keys);
        if keys.get(kid).is_some() {
            return Ok(keys);
        }
        self.refetch_for_unknown(kid).await
    }

    /// The current keys, unless they are due for a refetch: what a token verified with
    /// them before may still be trusted on ([`crate::verified`]).
    pub(crate) fn fresh(&self) -> Option<Arc<KeySet>> {
        let cached = self.snapshot();
        (Instant::now() < cached.expires).then(|| Arc::clone(&cached.keys))
    }

    fn snapshot(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn store(&self, keys: Arc<KeySet>, trusted_for: Duration) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Cached {
            keys,
            expires: Instant::now() + trusted_for,
        };
    }

    async fn refresh_expired(&self) {
        let _one_at_a_time = self.refetch.lock().await;
        if Instant::now() < self.snapshot().expires {
            return; // Another request refreshed while this one waited.
        }
        match self.fetcher.fetch().await {
            Ok(Fetched { keys, max_age }) => {
                tracing::debug!(jwks = %self.fetcher.source(), "JWKS refreshed");
                self.store(Arc::new(keys), self.policy.trusted_for(max_age));
            }
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    retry_in = ?self.policy.min,
                    "the JWKS could not be refreshed; the keys fetched before stay trusted \
                     until it can be"
                );
                let keys = Arc::clone(&self.snapshot().keys);
                self.store(keys, self.policy.min);
            }
        }
    }

    async fn refetch_for_unknown(&self, kid: &str) -> Result<Arc<KeySet>, TokenError> {
        let mut last = self.refetch.lock().await;
        let keys = Arc::clone(&self.snapshot().keys);
        // Another request may have refetched while this one waited for the lock.
        if keys.get(kid).is_some() {
            return Ok(keys);
        }
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.policy.unknown_kid) {
            return Ok(keys);
        }
        *last = Some(now);
        let Fetched { keys, max_age } =
            self.fetcher
                .fetch()
                .await
                .map_err(|source| TokenError::KeyRefetch {
                    kid: Untrusted::new(kid),
                    source: Box::new(source),
                })?;
        let keys = Arc::new(keys);
        self.store(Arc::clone(&keys), self.policy.trusted_for(max_age));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RefreshPolicy;

    #[test]
    fn a_jwks_is_trusted_for_its_max_age_within_the_bounds() {
        let policy = RefreshPolicy {
            min: Duration::from_secs(60),
            max: Duration::from_secs(900),
            unknown_kid: Duration::from_secs(10),
        };
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(policy.trusted_for(secs(300)), Duration::from_secs(300));
        assert_eq!(
            policy.trusted_for(secs(5)),
            Duration::from_secs(60),
            "floor"
        );
        assert_eq!(
            policy.trusted_for(secs(86_400)),
            Duration::from_secs(900),
            "ceiling"
        );
        assert_eq!(
            policy.trusted_for(None),
            Duration::from_secs(900),
            "no max-age"
        );
    }
}

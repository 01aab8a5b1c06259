//! Tokens verified a moment ago: a client sends the same bearer token with every request
//! until it expires, and checking its signature again each time is the verifier's main
//! cost (an Ed25519 or RSA verification per request).
//!
//! What a hit may skip, and why it is still safe:
//! - The key is the **whole token**, compared exactly: a hit is the very string whose
//!   header, claims and signature were verified, never one that merely shares a signature.
//! - An entry is good only **until the token's `exp`** (no leeway: stricter than a fresh
//!   verification), so an expired token is refused as it would be without the cache.
//! - An entry is good only **while the key set it was verified with is the current, fresh
//!   one** ([`crate::cache::KeyCache::fresh`]): once the JWKS is due for a refetch, or was
//!   refetched (a key removed, or rotated), every token is verified again against the keys
//!   as they are now. A key the issuer withdraws is refused exactly as soon as without the
//!   cache.
//! - Refusals are never cached. The verifier's config never changes while it runs, so the
//!   algorithm, `typ`, `iss`, `aud` and `nbf` checks a token passed still hold.
//! - Bounded: at most `auth.verified_tokens_cached` entries (0: no cache), evicted by
//!   `quick_cache` (S3-FIFO) when full; its hasher is randomly seeded, so made-up tokens
//!   cannot aim at one bucket.

use std::sync::Arc;

use quick_cache::sync::Cache;

use crate::jwks::KeySet;
use crate::principal::Principal;

#[derive(Clone)]
struct Verified {
    principal: Principal,
    /// The token's `exp`, in seconds since the epoch.
    expires: u64,
    /// The key set it was verified with.
    keys: Arc<KeySet>,
}

pub(crate) struct VerifiedTokens {
    cache: Option<Cache<Box<str>, Verified>>,
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens; none at all for 0.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            cache: (capacity > 0).then(|| Cache::new(capacity)),
        }
    }

    /// The principal of `token` if it was verified with `fresh_keys` (the current key set,
    /// not due for a refetch) and its `exp` is after `now` (seconds since the epoch).
    pub(crate) fn get(&self, token: &str, fresh_keys: &Arc<KeySet>, now: u64) -> Option<Principal> {
        let cache = self.cache.as_ref()?;
        let hit = cache.get(token)?;
        if now < hit.expires && Arc::ptr_eq(&hit.keys, fresh_keys) {
            Some(hit.principal)
        } else {
            cache.remove(token);
            None
        }
    }

    /// Remembers that `token` was verified with `keys` and names `principal` until `expires`.
    pub(crate) fn insert(
        &self,
        token: &str,
        principal: &Principal,
        expires: u64,
        keys: &Arc<KeySet>,
    ) {
        if let Some(cache) = &self.cache {
            cache.insert(
                token.into(),
                Verified {
                    principal: principal.clone(),
                    expires,
                    keys: Arc::clone(keys),
                },
            );
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::len)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::VerifiedTokens;
    use crate::jwks::KeySet;
    use crate::principal::Principal;

    fn alice() -> Principal {
        Principal {
            issuer: "https://issuer.example".to_owned(),
            subject: "alice".to_owned(),
            scopes: BTreeSet::new(),
        }
    }

    #[test]
    fn a_hit_needs_the_same_token_the_same_fresh_keys_and_a_time_before_exp() {
        let keys = Arc::new(KeySet::default());
        let cache = VerifiedTokens::new(10);
        cache.insert("a.b.c", &alice(), 100, &keys);
        assert_eq!(cache.get("a.b.c", &keys, 99), Some(alice()));
        assert_eq!(cache.get("a.b.x", &keys, 99), None, "another token");
        assert_eq!(
            cache.get("x.b.c", &keys, 99),
            None,
            "the same signature, another header"
        );
        let refetched = Arc::new(KeySet::default());
        assert_eq!(
            cache.get("a.b.c", &refetched, 99),
            None,
            "the keys were refetched"
        );
        assert_eq!(cache.len(), 0, "a stale entry is dropped");
        cache.insert("a.b.c", &alice(), 100, &keys);
        assert_eq!(cache.get("a.b.c", &keys, 100), None, "expired at exp");
    }

    #[test]
    fn it_holds_at_most_its_capacity_and_nothing_when_off() {
        let keys = Arc::new(KeySet::default());
        let cache = VerifiedTokens::new(8);
        for n in 0..100 {
            cache.insert(&format!("token-{n}"), &alice(), 100, &keys);
        }
        assert!(cache.len() <= 8, "{} entries", cache.len());
        let off = VerifiedTokens::new(0);
        off.insert("a.b.c", &alice(), 100, &keys);
        assert_eq!(off.get("a.b.c", &keys, 1), None);
    }
}

//! [`IdempotencyKey`]: what makes a `POST` safe to retry.

use std::fmt;
use std::str::FromStr;

/// A valid `Idempotency-Key`: 1 to 255 visible ASCII characters (`!` to `~`), as the server
/// accepts. The first answer to a key is stored and replayed to the same caller for the
/// same method, path and body ([`crate::Reply::replayed`]); the key on another request is
/// refused (`idempotency-key-reuse`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// A string that the server would refuse as an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an Idempotency-Key is 1 to {} visible ASCII characters",
    IdempotencyKey::MAX_LEN
)]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn new(key: impl Into<String>) -> Result<Self, InvalidIdempotencyKey> {
        let key = key.into();
        let visible = key.bytes().all(|b| (b'!'..=b'~').contains(&b));
        if key.is_empty() || key.len() > Self::MAX_LEN || !visible {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(key))
    }

    /// A fresh random key (a UUID v4), for a caller that retries the same request itself.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IdempotencyKey {
    type Err = InvalidIdempotencyKey;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        Self::new(key)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::new("key-1").is_ok());
        assert!(IdempotencyKey::new("k".repeat(255)).is_ok());
        assert_eq!(IdempotencyKey::new(""), Err(InvalidIdempotencyKey));
        assert_eq!(
            IdempotencyKey::new("k".repeat(256)),
            Err(InvalidIdempotencyKey)
        );
        assert_eq!(
            IdempotencyKey::new("with space"),
            Err(InvalidIdempotencyKey)
        );
        assert_eq!(IdempotencyKey::new("é"), Err(InvalidIdempotencyKey));
        assert_eq!(IdempotencyKey::random().as_str().len(), 36);
    }
}

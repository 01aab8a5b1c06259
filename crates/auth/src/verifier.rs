//! [`Verifier`]: a bearer token in, a [`Principal`] or the reason for refusing it out.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;

use crate::cache::KeyCache;
use crate::config::{AuthConfig, ConfigError, SigningAlgorithm};
use crate::jwks::{JwksError, JwksFetcher};
use crate::principal::{AccessClaims, Principal};
use crate::verified::VerifiedTokens;

/// Why a [`Verifier`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Jwks(#[from] JwksError),
}

/// Why a token was refused. For logs and metrics only: every kind is answered the same way
/// (401 `invalid_token`), so a caller learns nothing about which check failed. No variant holds
/// the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWS with a base64url JSON header")]
    MalformedHeader,
    #[error("the token is malformed")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    #[error("algorithm {0} is not allowed")]
    DisallowedAlgorithm(Untrusted),
    #[error(
        "the token's typ {} is not at+jwt",
        .0.as_ref().map_or_else(|| "(none)".to_owned(), ToString::to_string)
    )]
    WrongType(Option<Untrusted>),
    #[error("the token names no key (`kid`)")]
    MissingKeyId,
    #[error("no key {kid} in the JWKS")]
    UnknownKey { kid: Untrusted },
    #[error("the JWKS could not be refetched to look for key {kid}")]
    KeyRefetch {
        kid: Untrusted,
        #[source]
        source: Box<JwksError>,
    },
    #[error("key {kid} is not a key for {alg}")]
    KeyMismatch {
        kid: Untrusted,
        alg: SigningAlgorithm,
    },
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is for another audience")]
    BadAudience,
    #[error("the token is from another issuer")]
    BadIssuer,
    #[error("the token has no {0:?} claim")]
    MissingClaim(String),
}

/// Text a token's sender chose (a `kid`, an `alg`, a `typ`), made safe to log: at most
/// [`Untrusted::MAX_CHARS`] characters, every control character, quote and backslash
/// escaped, shown quoted; `…` marks a cut. A refused token can carry anything, and logs are
/// read by people and parsed by machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted(String);

impl Untrusted {
    pub const MAX_CHARS: usize = 64;

    pub fn new(text: &str) -> Self {
        let mut shown: String = text
            .chars()
            .take(Self::MAX_CHARS)
            .flat_map(char::escape_default)
            .collect();
        if text.chars().nth(Self::MAX_CHARS).is_some() {
            shown.push('…');
        }
        Self(shown)
    }

    /// The escaped, bounded form (without the quotes).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

impl TokenError {
    /// A fixed, low-cardinality name of the kind, for a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MalformedHeader | Self::Malformed(_) => "malformed",
            Self::DisallowedAlgorithm(_) => "disallowed_algorithm",
            Self::WrongType(_) => "wrong_type",
            Self::MissingKeyId | Self::UnknownKey { .. } => "unknown_key",
            Self::KeyRefetch { .. } => "key_refetch_failed",
            Self::KeyMismatch { .. } => "key_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadAudience => "bad_audience",
            Self::BadIssuer => "bad_issuer",
            Self::MissingClaim(_) => "missing_claim",
        }
    }

    fn from_jwt(error: jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidAudience => Self::BadAudience,
            ErrorKind::InvalidIssuer => Self::BadIssuer,
            ErrorKind::MissingRequiredClaim(claim) => Self::MissingClaim(claim.clone()),
            _ => Self::Malformed(error),
        }
    }
}

/// Verifies bearer access tokens against one issuer's JWKS. Cheap to clone: clones share the
/// cached keys.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// One [`Validation`] per allowed algorithm: jsonwebtoken checks that every algorithm of a
    /// validation belongs to the key's family, so each verification names exactly one.
    validations: Vec<(SigningAlgorithm, Validation)>,
    require_at_jwt_typ: bool,
    keys: KeyCache,
    verified: VerifiedTokens,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("jwks", &self.inner.keys.source())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Validates the config and loads the JWKS; fails, naming the JWKS source, when it cannot.
    pub async fn new(config: &AuthConfig) -> Result<Self, VerifierError> {
        config.validate()?;
        let fetcher = JwksFetcher::new(&config.jwks)?;
        let keys = KeyCache::load(fetcher, config.refresh_policy()).await?;
        let validations = config
            .algorithms
            .iter()
            .map(|&alg| (alg, validation(config, alg)))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                validations,
                require_at_jwt_typ: config.require_at_jwt_typ,
                keys,
                verified: VerifiedTokens::new(config.verified_tokens_cached),
            }),
        })
    }

    /// Checks `token` (the part after `Bearer `): header, algorithm, key, signature, then the
    /// claims (`iss`, `aud`, `exp`, `sub` required; `nbf` honoured; leeway applied). A
    /// token verified a moment ago with the keys still current is answered from memory
    /// until its `exp` ([`crate::verified`]).
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if let Some(keys) = self.inner.keys.fresh()
            && let Some(principal) = self.inner.verified.get(token, &keys, now)
        {
            return Ok(principal);
        }
        let header = RawHeader::parse(token)?;
        let (alg, validation) = self
            .inner
            .validations
            .iter()
            .find(|(alg, _)| alg.name() == header.alg)
            .ok_or_else(|| TokenError::DisallowedAlgorithm(Untrusted::new(&header.alg)))?;
        if self.inner.require_at_jwt_typ && !is_at_jwt(header.typ.as_deref()) {
            return Err(TokenError::WrongType(
                header.typ.as_deref().map(Untrusted::new),
            ));
        }
        let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
        let keys = self.inner.keys.keys_for(&kid).await?;
        let key = keys.get(&kid).ok_or_else(|| TokenError::UnknownKey {
            kid: Untrusted::new(&kid),
        })?;
        if !key.fits(*alg) {
            return Err(TokenError::KeyMismatch {
                kid: Untrusted::new(&kid),
                alg: *alg,
            });
        }
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, validation)
            .map_err(TokenError::from_jwt)?
            .claims;
        let scopes = claims.scopes();
        let expires = claims.exp.as_ref().and_then(serde_json::Number::as_u64);
        let issuer = claims
            .iss
            .ok_or_else(|| TokenError::MissingClaim("iss".into()))?;
        let subject = claims
            .sub
            .filter(|sub| !sub.is_empty())
            .ok_or_else(|| TokenError::MissingClaim("sub".into()))?;
        let principal = Principal {
            issuer,
            subject,
            scopes,
        };
        if let Some(expires) = expires {
            self.inner
                .verified
                .insert(token, &principal, expires, &keys);
        }
        Ok(principal)
    }
}

fn validation(config: &AuthConfig, alg: SigningAlgorithm) -> Validation {
    let mut validation = Validation::new(alg.jwt());
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.leeway = config.leeway_seconds;
    validation
}

/// RFC 9068 section 4: `typ` is `at+jwt` (or `application/at+jwt`), compared case-insensitively.
fn is_at_jwt(typ: Option<&str>) -> bool {
    typ.is_some_and(|typ| {
        let typ = typ.to_ascii_lowercase();
        typ == "at+jwt" || typ == "application/at+jwt"
    })
}

/// The header fields read before any key is chosen. `alg` is read as a plain string so that
/// `none` or `HS256` are reported as disallowed algorithms, not as unparseable headers.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
}

impl RawHeader {
    fn parse(token: &str) -> Result<Self, TokenError> {
        let (header, _) = token.split_once('.').ok_or(TokenError::MalformedHeader)?;
        let json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::MalformedHeader)?;
        serde_json::from_slice(&json).map_err(|_| TokenError::MalformedHeader)
    }
}

#[cfg(test)]
mod tests {
    use super::{TokenError, Untrusted};

    #[test]
    fn attacker_text_is_bounded_escaped_and_quoted_in_every_message() {
        let hostile = format!("k\n\u{1b}[31m\"{}", "x".repeat(10_000));
        let error = TokenError::UnknownKey {
            kid: Untrusted::new(&hostile),
        };
        let message = error.to_string();
        assert!(
            !message.contains('\n') && !message.contains('\u{1b}'),
            "{message}"
        );
        assert!(message.contains(r#""k\n\u{1b}[31m\"xx"#), "{message}");
        assert!(message.ends_with("…\" in the JWKS"), "{message}");
        assert!(message.len() < 200, "{} bytes", message.len());
        assert_eq!(Untrusted::new("key-1").to_string(), "\"key-1\"");
    }
}

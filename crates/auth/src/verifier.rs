//! [`Verifier`]: a bearer token in, a [`Principal`] or the reason for refusing it out.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::{AuthConfig, ConfigError, SigningAlgorithm};
use crate::jwks::{JwksError, JwksFetcher, KeySet};
use crate::principal::{AccessClaims, Principal};

/// An unknown `kid` refetches the JWKS at most this often; in between it is refused at once,
/// so a stream of made-up `kid`s cannot turn into a stream of requests to the identity
/// provider.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

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
    #[error("algorithm {0:?} is not allowed")]
    DisallowedAlgorithm(String),
    #[error("the token's typ {0:?} is not at+jwt")]
    WrongType(Option<String>),
    #[error("the token names no key (`kid`)")]
    MissingKeyId,
    #[error("no key {kid:?} in the JWKS")]
    UnknownKey { kid: String },
    #[error("the JWKS could not be refetched to look for key {kid:?}")]
    KeyRefetch {
        kid: String,
        #[source]
        source: Box<JwksError>,
    },
    #[error("key {kid:?} is not a key for {alg}")]
    KeyMismatch { kid: String, alg: SigningAlgorithm },
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
    fetcher: JwksFetcher,
    keys: RwLock<Arc<KeySet>>,
    /// When an unknown `kid` last refetched the JWKS. Behind an async mutex, so concurrent
    /// requests with a new `kid` wait for one refetch instead of each starting their own.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("jwks", &self.inner.fetcher.source())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Validates the config and loads the JWKS; fails, naming the JWKS source, when it cannot.
    pub async fn new(config: &AuthConfig) -> Result<Self, VerifierError> {
        config.validate()?;
        let fetcher = JwksFetcher::new(&config.jwks)?;
        let keys = fetcher.fetch().await?;
        let validations = config
            .algorithms
            .iter()
            .map(|&alg| (alg, validation(config, alg)))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                validations,
                require_at_jwt_typ: config.require_at_jwt_typ,
                fetcher,
                keys: RwLock::new(Arc::new(keys)),
                last_refetch: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// Checks `token` (the part after `Bearer `): header, algorithm, key, signature, then the
    /// claims (`iss`, `aud`, `exp`, `sub` required; `nbf` honoured; leeway applied).
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let header = RawHeader::parse(token)?;
        let (alg, validation) = self
            .inner
            .validations
            .iter()
            .find(|(alg, _)| alg.name() == header.alg)
            .ok_or_else(|| TokenError::DisallowedAlgorithm(header.alg.clone()))?;
        if self.inner.require_at_jwt_typ && !is_at_jwt(header.typ.as_deref()) {
            return Err(TokenError::WrongType(header.typ));
        }
        let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
        let keys = self.keys_with(&kid).await?;
        let key = keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey { kid: kid.clone() })?;
        if !key.fits(*alg) {
            return Err(TokenError::KeyMismatch { kid, alg: *alg });
        }
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, validation)
            .map_err(TokenError::from_jwt)?
            .claims;
        let scopes = claims.scopes();
        let issuer = claims
            .iss
            .ok_or_else(|| TokenError::MissingClaim("iss".into()))?;
        let subject = claims
            .sub
            .filter(|sub| !sub.is_empty())
            .ok_or_else(|| TokenError::MissingClaim("sub".into()))?;
        Ok(Principal {
            issuer,
            subject,
            scopes,
        })
    }

    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The key set, refetched first if it lacks `kid` and the last refetch is a minute old.
    async fn keys_with(&self, kid: &str) -> Result<Arc<KeySet>, TokenError> {
        let keys = self.current_keys();
        if keys.get(kid).is_some() {
            return Ok(keys);
        }
        let mut last_refetch = self.inner.last_refetch.lock().await;
        // Another request may have refetched while this one waited for the lock.
        let keys = self.current_keys();
        if keys.get(kid).is_some() {
            return Ok(keys);
        }
        let now = Instant::now();
        if last_refetch.is_some_and(|at| now.duration_since(at) < REFETCH_INTERVAL) {
            return Ok(keys);
        }
        *last_refetch = Some(now);
        tracing::info!(kid, jwks = %self.inner.fetcher.source(), "unknown kid: refetching the JWKS");
        let fresh = Arc::new(self.inner.fetcher.fetch().await.map_err(|source| {
            TokenError::KeyRefetch {
                kid: kid.to_owned(),
                source: Box::new(source),
            }
        })?);
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
        Ok(fresh)
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

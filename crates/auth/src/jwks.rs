//! Loading a JWKS (RFC 7517) from a file or URL into the keys a token may be verified with.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use serde::Deserialize;
use url::Url;

use crate::config::{JwksSource, SigningAlgorithm};

/// A JWKS larger than this is refused: real ones hold a handful of keys in a few KiB.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// A JWKS fetch (connect, request, body) that takes longer fails.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the JWKS could not be loaded. Every message names where it was loaded from.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read the JWKS file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up an HTTPS client for the JWKS at {url}")]
    Client {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot fetch the JWKS from {url}")]
    Fetch {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("the JWKS at {url} answered HTTP {status}")]
    Status {
        url: Url,
        status: reqwest::StatusCode,
    },
    #[error("the JWKS from {jwks} is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge { jwks: JwksSource },
    #[error("the JWKS from {jwks} is not a JSON object with a `keys` array")]
    Parse {
        jwks: JwksSource,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the JWKS from {jwks} holds no usable signing key (each needs a `kid`, kty RSA, EC P-256/P-384 \
         or OKP Ed25519, and no `use` other than `sig`)"
    )]
    NoUsableKeys { jwks: JwksSource },
}

/// Reads the JWKS from where the config says, again on every [`JwksFetcher::fetch`].
#[derive(Debug)]
pub(crate) enum JwksFetcher {
    File(PathBuf),
    /// The client is built once, so refetches reuse its connections.
    Url {
        url: Url,
        client: reqwest::Client,
    },
}

impl JwksFetcher {
    pub(crate) fn new(source: &JwksSource) -> Result<Self, JwksError> {
        match source {
            JwksSource::File(path) => Ok(Self::File(path.clone())),
            JwksSource::Url(url) => {
                let client = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .https_only(url.scheme() == "https")
                    .build()
                    .map_err(|source| JwksError::Client {
                        url: url.clone(),
                        source,
                    })?;
                Ok(Self::Url {
                    url: url.clone(),
                    client,
                })
            }
        }
    }

    pub(crate) fn source(&self) -> JwksSource {
        match self {
            Self::File(path) => JwksSource::File(path.clone()),
            Self::Url { url, .. } => JwksSource::Url(url.clone()),
        }
    }

    #[tracing::instrument(skip_all, fields(jwks = %self.source()))]
    pub(crate) async fn fetch(&self) -> Result<Fetched, JwksError> {
        let (body, max_age) = match self {
            Self::File(path) => {
                let body = tokio::fs::read(path)
                    .await
                    .map_err(|source| JwksError::Read {
                        path: path.clone(),
                        source,
                    })?;
                (body, None)
            }
            Self::Url { url, client } => fetch_url(client, url).await?,
        };
        if body.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge {
                jwks: self.source(),
            });
        }
        Ok(Fetched {
            keys: KeySet::parse(&self.source(), &body)?,
            max_age,
        })
    }
}

/// A JWKS as fetched: its keys, and how long its server says it may be cached.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) keys: KeySet,
    /// `Cache-Control: max-age` (zero for `no-cache` or `no-store`); `None` when the answer
    /// says nothing (or the JWKS is a file).
    pub(crate) max_age: Option<Duration>,
}

/// How long a response may be cached, from its `Cache-Control`.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    use headers::HeaderMapExt as _;
    let control: headers::CacheControl = headers.typed_get()?;
    if control.no_cache() || control.no_store() {
        return Some(Duration::ZERO);
    }
    control.max_age()
}

async fn fetch_url(
    client: &reqwest::Client,
    url: &Url,
) -> Result<(Vec<u8>, Option<Duration>), JwksError> {
    let fetch_error = |source| JwksError::Fetch {
        url: url.clone(),
        source,
    };
    let mut response = client.get(url.clone()).send().await.map_err(fetch_error)?;
    if !response.status().is_success() {
        return Err(JwksError::Status {
            url: url.clone(),
            status: response.status(),
        });
    }
    let max_age = max_age(response.headers());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS_BYTES {
            break;
        }
    }
    Ok((body, max_age))
}

/// The usable keys of one JWKS, by `kid`.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, VerificationKey>,
}

/// A public key and the algorithms it may verify.
#[derive(Debug)]
pub(crate) struct VerificationKey {
    pub(crate) decoding: DecodingKey,
    shape: KeyShape,
    /// The JWK's own `alg`, if it pins one.
    pinned: Option<KeyAlgorithm>,
}

#[derive(Debug, Clone, Copy)]
enum KeyShape {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl VerificationKey {
    /// Whether a token signed with `alg` may be checked with this key: the key type fits the
    /// algorithm (RSA for RS*/PS*, the matching curve for ES*, Ed25519 for EdDSA) and the key
    /// does not pin another algorithm.
    pub(crate) fn fits(&self, alg: SigningAlgorithm) -> bool {
        use SigningAlgorithm as A;
        let shape_fits = match self.shape {
            KeyShape::Rsa => matches!(
                alg,
                A::Rs256 | A::Rs384 | A::Rs512 | A::Ps256 | A::Ps384 | A::Ps512
            ),
            KeyShape::P256 => alg == A::Es256,
            KeyShape::P384 => alg == A::Es384,
            KeyShape::Ed25519 => alg == A::EdDsa,
        };
        shape_fits
            && self
                .pinned
                .is_none_or(|pinned| pinned == KeyAlgorithm::from(alg.jwt()))
    }
}

impl KeySet {
    /// Parses a JWKS, keeping the keys that can verify signatures. A key this crate cannot use
    /// (an encryption key, an HMAC `oct` key, an unknown type) is skipped rather than failing
    /// the whole set: identity providers publish such keys beside their signing keys.
    pub(crate) fn parse(jwks: &JwksSource, body: &[u8]) -> Result<Self, JwksError> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = serde_json::from_slice(body).map_err(|source| JwksError::Parse {
            jwks: jwks.clone(),
            source,
        })?;
        let keys: HashMap<String, VerificationKey> = raw
            .keys
            .into_iter()
            .filter_map(|value| {
                let jwk: Jwk = serde_json::from_value(value).ok()?;
                let kid = jwk.common.key_id.clone()?;
                let key = usable_key(&jwk);
                if key.is_none() {
                    tracing::debug!(%jwks, kid, "skipping a JWKS key that cannot verify tokens");
                }
                Some((kid, key?))
            })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys { jwks: jwks.clone() });
        }
        Ok(Self { keys })
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid)
    }
}

fn usable_key(jwk: &Jwk) -> Option<VerificationKey> {
    let for_signatures = match (&jwk.common.public_key_use, &jwk.common.key_operations) {
        (Some(key_use), _) => *key_use == PublicKeyUse::Signature,
        (None, Some(ops)) => ops.contains(&KeyOperations::Verify),
        (None, None) => true,
    };
    if !for_signatures {
        return None;
    }
    let shape = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyShape::Rsa,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyShape::P256,
            EllipticCurve::P384 => KeyShape::P384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => KeyShape::Ed25519,
            _ => return None,
        },
        // Symmetric keys never verify tokens here, whatever the token's header says.
        AlgorithmParameters::OctetKey(_) => return None,
        _ => return None,
    };
    Some(VerificationKey {
        decoding: DecodingKey::from_jwk(jwk).ok()?,
        shape,
        pinned: jwk.common.key_algorithm,
    })
}

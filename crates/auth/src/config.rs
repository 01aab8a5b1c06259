//! The `[auth]` configuration: which issuer to trust, for which audience, with which keys.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

/// Clock skew tolerated on `exp` and `nbf`, unless configured otherwise.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
/// The longest a JWKS may be trusted without a refetch: a day.
pub const MAX_JWKS_CACHE_SECONDS: u64 = 86_400;
/// The most skew a config may allow: beyond a minute an expired token lives on noticeably.
pub const MAX_LEEWAY_SECONDS: u64 = 60;

/// How bearer tokens are verified. Deserializing refuses unknown keys, symmetric or `none`
/// algorithms and non-https JWKS URLs; [`AuthConfig::validate`] checks the rest, and
/// [`crate::Verifier::new`] runs it, so a service that builds its verifier at startup fails
/// fast.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The `iss` every token must carry, exactly as the identity provider writes it
    /// (Keycloak: `https://HOST/realms/REALM`; Auth0: `https://TENANT.auth0.com/`, with the
    /// slash; Entra ID: `https://login.microsoftonline.com/TENANT_ID/v2.0`).
    pub issuer: String,
    /// The `aud` every token must name: this API's identifier at the identity provider, so a
    /// token minted for another service (or an ID token for a client) is refused.
    pub audience: String,
    /// Where the issuer's public keys are: a JWKS file path or an `https://` URL.
    pub jwks: JwksSource,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (at most 60).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Signature algorithms accepted; asymmetric ones only.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,
    /// Require the RFC 9068 header `typ: at+jwt`. Off by default because Keycloak and Entra ID
    /// issue access tokens typed `JWT`; the `aud` check is what keeps ID tokens out there.
    /// Turn it on when the issuer follows RFC 9068 (Auth0 can, the dev issuer does).
    #[serde(default)]
    pub require_at_jwt_typ: bool,
    /// A fetched JWKS is trusted for its `Cache-Control: max-age`, but at least this long...
    #[serde(default = "default_jwks_cache_min")]
    pub jwks_cache_min_seconds: u64,
    /// ...and at most this long (also when it states no max-age, and for a file): a key the
    /// issuer removes is refused at most this long after.
    #[serde(default = "default_jwks_cache_max")]
    pub jwks_cache_max_seconds: u64,
    /// A token naming a key the cache lacks refetches the JWKS at most this often: made-up
    /// `kid`s cost the issuer one request per interval, and a key it publishes is trusted
    /// at most this long after the first token that names it.
    #[serde(default = "default_unknown_kid_refetch")]
    pub jwks_unknown_kid_refetch_seconds: u64,
    /// Tokens remembered as verified, until their `exp` and while the keys they were
    /// verified with are current (`crates/auth/src/verified.rs`); 0 verifies every request.
    #[serde(default = "default_verified_tokens_cached")]
    pub verified_tokens_cached: usize,
}

fn default_verified_tokens_cached() -> usize {
    10_000
}

fn default_jwks_cache_min() -> u64 {
    60
}

fn default_jwks_cache_max() -> u64 {
    900
}

fn default_unknown_kid_refetch() -> u64 {
    10
}

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECONDS
}

fn default_algorithms() -> Vec<SigningAlgorithm> {
    SigningAlgorithm::DEFAULT.to_vec()
}

impl AuthConfig {
    /// A config with the defaults for everything but the three settings each deployment must
    /// choose.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            algorithms: default_algorithms(),
            require_at_jwt_typ: false,
            jwks_cache_min_seconds: default_jwks_cache_min(),
            jwks_cache_max_seconds: default_jwks_cache_max(),
            jwks_unknown_kid_refetch_seconds: default_unknown_kid_refetch(),
            verified_tokens_cached: default_verified_tokens_cached(),
        }
    }

    /// How long fetched keys are trusted, and how often an unknown `kid` refetches them.
    pub(crate) fn refresh_policy(&self) -> crate::cache::RefreshPolicy {
        crate::cache::RefreshPolicy {
            min: std::time::Duration::from_secs(self.jwks_cache_min_seconds),
            max: std::time::Duration::from_secs(self.jwks_cache_max_seconds),
            unknown_kid: std::time::Duration::from_secs(self.jwks_unknown_kid_refetch_seconds),
        }
    }

    /// Checks what the types cannot: non-empty issuer, audience and algorithm list, and the
    /// leeway bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        if self.audience.trim().is_empty() {
            return Err(ConfigError::EmptyAudience);
        }
        if self.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(ConfigError::LeewayTooLarge(self.leeway_seconds));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if self.jwks_cache_min_seconds == 0
            || self.jwks_cache_max_seconds < self.jwks_cache_min_seconds
            || self.jwks_cache_max_seconds > MAX_JWKS_CACHE_SECONDS
        {
            return Err(ConfigError::JwksCacheBounds {
                min: self.jwks_cache_min_seconds,
                max: self.jwks_cache_max_seconds,
            });
        }
        if self.jwks_unknown_kid_refetch_seconds == 0 {
            return Err(ConfigError::UnknownKidRefetch);
        }
        Ok(())
    }
}

/// An invalid `[auth]` setting; the message names the key and says what is accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("auth.issuer is empty: set it to the `iss` your identity provider puts in tokens")]
    EmptyIssuer,
    #[error("auth.audience is empty: set it to this API's identifier at the identity provider")]
    EmptyAudience,
    #[error("auth.leeway_seconds is {0}; at most {MAX_LEEWAY_SECONDS} is allowed")]
    LeewayTooLarge(u64),
    #[error("auth.algorithms is empty: list at least one of RS256, ES256, EdDSA, ...")]
    NoAlgorithms,
    #[error(
        "auth.jwks_cache_min_seconds ({min}) and auth.jwks_cache_max_seconds ({max}) must satisfy \
         1 <= min <= max <= {MAX_JWKS_CACHE_SECONDS}"
    )]
    JwksCacheBounds { min: u64, max: u64 },
    #[error("auth.jwks_unknown_kid_refetch_seconds must be at least 1")]
    UnknownKidRefetch,
    #[error(
        "auth.algorithms: `{0}` means an unsigned token, which anyone can forge; it is never accepted"
    )]
    UnsignedAlgorithm(String),
    #[error(
        "auth.algorithms: `{0}` is symmetric (the verifier would hold the signing secret, and a \
         public key could be abused as that secret); only RS*, PS*, ES256, ES384 and EdDSA are \
         accepted"
    )]
    SymmetricAlgorithm(String),
    #[error(
        "auth.algorithms: `{0}` is not a supported algorithm (RS256, RS384, RS512, PS256, PS384, \
         PS512, ES256, ES384, EdDSA)"
    )]
    UnknownAlgorithm(String),
    #[error("auth.jwks is empty: give a JWKS file path or an https:// URL")]
    EmptyJwks,
    #[error("auth.jwks `{value}` is not a valid URL")]
    JwksUrl {
        value: String,
        #[source]
        source: url::ParseError,
    },
    #[error(
        "auth.jwks `{0}` must use https (plain http is accepted only for localhost/loopback, for tests)"
    )]
    JwksNotHttps(String),
    #[error("auth.jwks URL must not carry a user name or password")]
    JwksCredentials,
}

/// Where the JWKS (the issuer's public signing keys) is read from. Written in config as one
/// string: anything with `://` is a URL, anything else a file path (relative to the working
/// directory).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum JwksSource {
    File(PathBuf),
    /// `https://`, or `http://` to a loopback host.
    Url(Url),
}

impl FromStr for JwksSource {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.trim().is_empty() {
            return Err(ConfigError::EmptyJwks);
        }
        if !value.contains("://") {
            return Ok(Self::File(PathBuf::from(value)));
        }
        let url = Url::parse(value).map_err(|source| ConfigError::JwksUrl {
            value: value.to_owned(),
            source,
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::JwksCredentials);
        }
        match url.scheme() {
            "https" => Ok(Self::Url(url)),
            "http" if is_loopback(&url) => Ok(Self::Url(url)),
            _ => Err(ConfigError::JwksNotHttps(value.to_owned())),
        }
    }
}

impl TryFrom<String> for JwksSource {
    type Error = ConfigError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => write!(f, "{url}"),
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// An asymmetric JWS algorithm (RFC 7518). HMAC and `none` have no variant, so no config can
/// allow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum SigningAlgorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl SigningAlgorithm {
    /// The default allow-list: what Keycloak, Auth0, Entra ID and the dev issuer sign with.
    pub const DEFAULT: [Self; 3] = [Self::Rs256, Self::Es256, Self::EdDsa];

    /// The JOSE name (`alg` header value).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::Rs256 => A::RS256,
            Self::Rs384 => A::RS384,
            Self::Rs512 => A::RS512,
            Self::Ps256 => A::PS256,
            Self::Ps384 => A::PS384,
            Self::Ps512 => A::PS512,
            Self::Es256 => A::ES256,
            Self::Es384 => A::ES384,
            Self::EdDsa => A::EdDSA,
        }
    }

    const ALL: [Self; 9] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
    ];
}

impl FromStr for SigningAlgorithm {
    type Err = ConfigError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if let Some(alg) = Self::ALL.into_iter().find(|alg| alg.name() == name) {
            return Ok(alg);
        }
        if name.eq_ignore_ascii_case("none") {
            Err(ConfigError::UnsignedAlgorithm(name.to_owned()))
        } else if name.to_ascii_uppercase().starts_with("HS") {
            Err(ConfigError::SymmetricAlgorithm(name.to_owned()))
        } else {
            Err(ConfigError::UnknownAlgorithm(name.to_owned()))
        }
    }
}

impl TryFrom<String> for SigningAlgorithm {
    type Error = ConfigError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

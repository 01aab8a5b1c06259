//! The local development issuer: a signing key kept on disk and a JWKS file beside it that a
//! config can trust, so the service can be tried without an identity provider.
//!
//! Nothing here is fit for production: whoever can read the key directory can mint any token.
//! A service recognises this issuer with [`is_dev_issuer`] and must refuse it in production.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde::Serialize;

use crate::config::AuthConfig;

/// Whether `config` trusts the development issuer (so a production start can refuse it).
pub fn is_dev_issuer(config: &AuthConfig) -> bool {
    config.issuer == DevIssuer::ISSUER
}

/// Signs access tokens with an Ed25519 key created on first use.
pub struct DevIssuer {
    key: EncodingKey,
    kid: String,
    jwks_path: PathBuf,
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuer")
            .field("kid", &self.kid)
            .field("jwks_path", &self.jwks_path)
            .finish_non_exhaustive()
    }
}

/// Why the development issuer could not load, create or sign.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    #[error("dev issuer: cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("dev issuer: {0} is not a PKCS#8 Ed25519 private key (delete it to create a new one)")]
    InvalidKey(PathBuf),
    #[error("dev issuer: the system could not generate a key")]
    Generate,
    #[error("dev issuer: {0} must not be empty")]
    Empty(&'static str),
    #[error("dev issuer: scope {0:?} is empty or contains whitespace")]
    InvalidScope(String),
    #[error("dev issuer: cannot sign the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

impl DevIssuer {
    /// The `iss` of every dev token; a config trusting it is a development config.
    pub const ISSUER: &'static str = "http://wallet-hub.local/dev-issuer";
    /// The `client_id` claim (RFC 9068) of dev tokens.
    pub const CLIENT_ID: &'static str = "wallet-hub-dev";
    /// The private key (PKCS#8 DER, mode 0600) under the issuer's directory.
    pub const KEY_FILE: &'static str = "signing-key.pk8";
    /// The public JWKS under the issuer's directory; point `auth.jwks` at it.
    pub const JWKS_FILE: &'static str = "jwks.json";

    /// Loads the key under `dir`, creating `dir` (mode 0700) and the key (mode 0600) on first
    /// use, and (re)writes the JWKS file beside it. Safe to run from several processes at
    /// once: one key wins and all of them use it. Blocking file I/O, meant for startup or a CLI.
    pub fn load_or_create(dir: &Path) -> Result<Self, DevIssuerError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("create", dir))?;
        let key_path = dir.join(Self::KEY_FILE);
        if !key_path.exists() {
            create_key(dir, &key_path)?;
        }
        let pkcs8 = fs::read(&key_path).map_err(io_error("read", &key_path))?;
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| DevIssuerError::InvalidKey(key_path.clone()))?;
        let jwk = public_jwk(&pair).map_err(|_| DevIssuerError::InvalidKey(key_path.clone()))?;
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        let jwks_path = dir.join(Self::JWKS_FILE);
        write_jwks(dir, &jwks_path, &JwkSet { keys: vec![jwk] })?;
        Ok(Self {
            key: EncodingKey::from_ed_der(&pkcs8),
            kid,
            jwks_path,
        })
    }

    /// The JWKS file that verifies this issuer's tokens.
    pub fn jwks_path(&self) -> &Path {
        &self.jwks_path
    }

    /// An RFC 9068 access token (`typ: at+jwt`) for `subject`, valid for `ttl` from now, for
    /// `audience`, granting `scopes`.
    pub fn mint<S: AsRef<str>>(
        &self,
        audience: &str,
        subject: &str,
        scopes: &[S],
        ttl: Duration,
    ) -> Result<SecretString, DevIssuerError> {
        if audience.is_empty() {
            return Err(DevIssuerError::Empty("audience"));
        }
        if subject.is_empty() {
            return Err(DevIssuerError::Empty("subject"));
        }
        let scopes: Vec<&str> = scopes.iter().map(AsRef::as_ref).collect();
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(DevIssuerError::InvalidScope((*bad).to_owned()));
        }
        let now = jsonwebtoken::get_current_timestamp();
        let claims = DevClaims {
            iss: Self::ISSUER,
            sub: subject,
            aud: audience,
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: Self::CLIENT_ID,
            scope: scopes.join(" "),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(SecretString::from)
            .map_err(DevIssuerError::Sign)
    }
}

#[derive(Serialize)]
struct DevClaims<'a> {
    iss: &'static str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
    client_id: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    scope: String,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DevIssuerError {
    let path = path.to_owned();
    move |source| DevIssuerError::Io {
        action,
        path,
        source,
    }
}

/// Writes a new key to a private temporary file, then links it into place: the link fails if
/// another process got there first, and a reader never sees a half-written key.
fn create_key(dir: &Path, key_path: &Path) -> Result<(), DevIssuerError> {
    let pair = Ed25519KeyPair::generate().map_err(|_| DevIssuerError::Generate)?;
    let pkcs8 = pair.to_pkcs8v1().map_err(|_| DevIssuerError::Generate)?;
    let temp = dir.join(format!(".{}.{}", DevIssuer::KEY_FILE, uuid::Uuid::new_v4()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io_error("create", &temp))?;
    file.write_all(pkcs8.as_ref())
        .and_then(|()| file.sync_all())
        .map_err(io_error("write", &temp))?;
    let linked = fs::hard_link(&temp, key_path);
    fs::remove_file(&temp).map_err(io_error("remove", &temp))?;
    match linked {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => {
            Err(io_error("create", key_path)(error))
        }
        _ => Ok(()),
    }
}

/// The public half as a JWK, its `kid` the RFC 7638 thumbprint.
fn public_jwk(pair: &Ed25519KeyPair) -> Result<Jwk, jsonwebtoken::errors::Error> {
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        }),
    };
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256)?);
    Ok(jwk)
}

/// Replaces the JWKS file atomically (a verifier reading it never sees half of it), and only
/// when its content changes.
fn write_jwks(dir: &Path, jwks_path: &Path, jwks: &JwkSet) -> Result<(), DevIssuerError> {
    let mut content = serde_json::to_string_pretty(jwks).map_err(|e| DevIssuerError::Io {
        action: "serialize",
        path: jwks_path.to_owned(),
        source: e.into(),
    })?;
    content.push('\n');
    if fs::read_to_string(jwks_path).is_ok_and(|existing| existing == content) {
        return Ok(());
    }
    let temp = dir.join(format!(
        ".{}.{}",
        DevIssuer::JWKS_FILE,
        uuid::Uuid::new_v4()
    ));
    fs::write(&temp, content).map_err(io_error("write", &temp))?;
    fs::rename(&temp, jwks_path).map_err(io_error("replace", jwks_path))
}

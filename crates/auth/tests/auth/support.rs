//! Test keys and tokens. Tokens are signed here with aws-lc-rs directly, not with
//! jsonwebtoken, so the tests can build any header (including hostile ones) and the verifier
//! is checked against an independent signer.

use std::path::Path;

use auth::{AuthConfig, JwksSource, TokenError, Verifier};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ISSUER: &str = "https://idp.example/realms/wallet-hub";
pub const AUDIENCE: &str = "wallet-hub-api";

enum Pair {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

/// A signing key with its `kid`.
pub struct TestKey {
    pub kid: String,
    pair: Pair,
}

impl TestKey {
    pub fn ed25519(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().expect("generate Ed25519");
        Self::new(kid, Pair::Ed25519(pair))
    }

    pub fn p256(kid: &str) -> Self {
        let pair =
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generate P-256");
        Self::new(kid, Pair::P256(pair))
    }

    pub fn rsa(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).expect("generate RSA");
        Self::new(kid, Pair::Rsa(pair))
    }

    fn new(kid: &str, pair: Pair) -> Self {
        Self {
            kid: kid.to_owned(),
            pair,
        }
    }

    /// The JOSE algorithm this key signs with.
    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Ed25519(_) => "EdDSA",
            Pair::P256(_) => "ES256",
            Pair::Rsa(_) => "RS256",
        }
    }

    /// The public key as a JWK, as an identity provider publishes it.
    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Ed25519(pair) => json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": self.kid,
                "x": b64(pair.public_key().as_ref()),
            }),
            Pair::P256(pair) => {
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": "P-256", "use": "sig", "kid": self.kid,
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
            Pair::Rsa(pair) => json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                "n": b64(pair.public_key().modulus().big_endian_without_leading_zero()),
                "e": b64(pair.public_key().exponent().big_endian_without_leading_zero()),
            }),
        }
    }

    /// The public key as X.509 SubjectPublicKeyInfo DER, what a PEM public key file holds.
    pub fn public_key_der(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(pair) => pair.public_key().as_der().expect("DER").as_ref().to_vec(),
            Pair::Ed25519(pair) => pair.public_key().as_der().expect("DER").as_ref().to_vec(),
            Pair::P256(pair) => pair.public_key().as_der().expect("DER").as_ref().to_vec(),
        }
    }

    /// A token with the usual header (`alg` of this key, `typ: JWT`, this `kid`).
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(
            &json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    /// A token with any header, signed with this key's algorithm.
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", part(header), part(claims));
        let signature = match &self.pair {
            Pair::Ed25519(pair) => pair.sign(message.as_bytes()).as_ref().to_vec(),
            Pair::P256(pair) => pair
                .sign(&SystemRandom::new(), message.as_bytes())
                .expect("ES256 sign")
                .as_ref()
                .to_vec(),
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message.as_bytes(),
                    &mut signature,
                )
                .expect("RS256 sign");
                signature
            }
        };
        format!("{message}.{}", b64(&signature))
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JSON value as a base64url JWT part.
pub fn part(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims that pass every check, valid for five minutes.
pub fn claims(sub: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now(),
        "exp": now() + 300,
        "scope": "wallets:read wallets:deposit",
    })
}

/// `claims(sub)` with `changes` merged in; a `null` removes the claim.
pub fn claims_with(sub: &str, changes: &Value) -> Value {
    let mut claims = claims(sub);
    for (name, value) in changes.as_object().expect("changes are an object") {
        let object = claims.as_object_mut().expect("claims are an object");
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.clone(), value.clone());
        }
    }
    claims
}

pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>()})
}

pub fn write_jwks(path: &Path, jwks: &Value) {
    std::fs::write(path, jwks.to_string()).expect("write the JWKS file");
}

/// A JWKS file in a temporary directory, and a config that trusts it. The file is deleted
/// when this is dropped, so keep it alive where a verifier may refetch.
pub struct Trust {
    pub dir: TempDir,
    pub config: AuthConfig,
}

impl Trust {
    pub fn new(keys: &[&TestKey]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("jwks.json");
        write_jwks(&path, &jwks(keys));
        Self {
            config: AuthConfig::new(ISSUER, AUDIENCE, JwksSource::File(path)),
            dir,
        }
    }

    pub fn jwks_path(&self) -> std::path::PathBuf {
        self.dir.path().join("jwks.json")
    }

    pub async fn verifier(&self) -> Verifier {
        Verifier::new(&self.config).await.expect("verifier starts")
    }
}

/// Verifies `token`, expecting a refusal, and checks that the error does not repeat the
/// token or its signature in its message or `Debug` form.
pub async fn refused(verifier: &Verifier, token: &str) -> TokenError {
    let error = verifier
        .verify(token)
        .await
        .expect_err("the token must be refused");
    let printed = format!("{error} {error:?}");
    let signature = token.rsplit('.').next().unwrap_or_default();
    // Short strings (an empty token, "a.b.c") would match by chance.
    if token.len() > 16 {
        assert!(
            !printed.contains(token),
            "error echoes the token: {printed}"
        );
    }
    if signature.len() > 16 {
        assert!(
            !printed.contains(signature),
            "error echoes the signature: {printed}"
        );
    }
    error
}

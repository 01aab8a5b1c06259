//! Access tokens the service must refuse, each wrong in one way only.
//!
//! They are forged with the service's own development issuer key (read from its key
//! directory) so that everything but the one defect is right: the subject is a registered
//! user and the scopes are the operator's, so a check that is skipped shows up as a 2xx.

use std::path::{Path, PathBuf};

use auth::JwksSource;
use auth::dev::DevIssuer;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;
use wallet_hub_tests::TestApp;
use wallet_hub_tests::app::OPERATOR_SCOPES;

/// One way for a token to be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Expired ten minutes ago (the leeway is at most a minute).
    Expired,
    /// `nbf` ten minutes from now.
    NotYetValid,
    /// Issued for another API.
    WrongAudience,
    /// Names another issuer, though signed with the trusted key.
    WrongIssuer,
    /// Unsigned: `alg: none` and an empty signature.
    AlgNone,
    /// HS256 keyed with the trusted public key (the classic algorithm confusion).
    Hs256WithPublicKey,
    /// Signed with the trusted key but naming a key id the JWKS does not have.
    UnknownKid,
    /// A genuine token for the subject without scopes, its payload swapped for one
    /// granting the operator's scopes, the original signature kept.
    TamperedPayload,
    /// Signed by a second issuer's key (another development issuer, same `iss` string)
    /// that names the trusted key's id: only the signature tells them apart.
    SecondIssuer,
}

impl Forgery {
    pub const ALL: [Forgery; 9] = [
        Forgery::Expired,
        Forgery::NotYetValid,
        Forgery::WrongAudience,
        Forgery::WrongIssuer,
        Forgery::AlgNone,
        Forgery::Hs256WithPublicKey,
        Forgery::UnknownKid,
        Forgery::TamperedPayload,
        Forgery::SecondIssuer,
    ];
}

/// Signs tokens with the key the service trusts, and with a stranger's.
pub struct Forger {
    key: EncodingKey,
    kid: String,
    /// The trusted Ed25519 public key, raw (what an HS256 confusion attack keys with).
    public_key: Vec<u8>,
    audience: String,
    stranger: EncodingKey,
    /// Private key files, for tests that check they never leak.
    key_files: Vec<PathBuf>,
}

impl Forger {
    pub fn new(app: &TestApp) -> Self {
        let trusted = issuer_dir(app);
        let stranger_dir = std::env::temp_dir().join(format!(
            "wallet-hub-tests/stranger-{}",
            Uuid::now_v7().simple()
        ));
        DevIssuer::load_or_create(&stranger_dir).expect("second development issuer");
        let jwks: Value = serde_json::from_slice(
            &std::fs::read(trusted.join(DevIssuer::JWKS_FILE)).expect("trusted JWKS"),
        )
        .expect("JWKS JSON");
        let jwk = &jwks["keys"][0];
        let key_files = vec![
            trusted.join(DevIssuer::KEY_FILE),
            stranger_dir.join(DevIssuer::KEY_FILE),
        ];
        let read_key = |path: &Path| std::fs::read(path).expect("issuer's private key");
        Self {
            key: EncodingKey::from_ed_der(&read_key(&key_files[0])),
            kid: jwk["kid"].as_str().expect("kid").to_owned(),
            public_key: URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().expect("Ed25519 x"))
                .expect("base64url"),
            audience: app.settings.auth.audience.clone(),
            stranger: EncodingKey::from_ed_der(&read_key(&key_files[1])),
            key_files,
        }
    }

    /// A token for `subject` with the operator's scopes, wrong as `forgery` says.
    pub fn forge(&self, app: &TestApp, forgery: Forgery, subject: &str) -> String {
        let now = now();
        let claims = |changes: Value| self.claims(subject, &OPERATOR_SCOPES, changes);
        match forgery {
            Forgery::Expired => self.sign(
                &claims(json!({"iat": now - 4200, "exp": now - 600})),
                &self.kid,
            ),
            Forgery::NotYetValid => self.sign(&claims(json!({"nbf": now + 600})), &self.kid),
            Forgery::WrongAudience => self.sign(&claims(json!({"aud": "another-api"})), &self.kid),
            Forgery::WrongIssuer => {
                self.sign(&claims(json!({"iss": "https://evil.example/"})), &self.kid)
            }
            Forgery::AlgNone => format!(
                "{}.{}.",
                part(&json!({"alg": "none", "typ": "at+jwt", "kid": self.kid})),
                part(&claims(json!({})))
            ),
            Forgery::Hs256WithPublicKey => {
                let header = header(Algorithm::HS256, &self.kid);
                let secret = EncodingKey::from_secret(&self.public_key).expect("an HMAC key");
                jsonwebtoken::encode(&header, &claims(json!({})), &secret).expect("HS256 token")
            }
            Forgery::UnknownKid => self.sign(&claims(json!({})), "retired-key-1"),
            Forgery::TamperedPayload => {
                let genuine = app.token(subject, &[]);
                let mut parts = genuine.split('.');
                let (head, _payload, signature) = (
                    parts.next().expect("header"),
                    parts.next().expect("payload"),
                    parts.next().expect("signature"),
                );
                format!("{head}.{}.{signature}", part(&claims(json!({}))))
            }
            Forgery::SecondIssuer => jsonwebtoken::encode(
                &header(Algorithm::EdDSA, &self.kid),
                &claims(json!({})),
                &self.stranger,
            )
            .expect("second issuer's token"),
        }
    }

    /// The private key files of both issuers (trusted and stranger).
    pub fn key_files(&self) -> &[PathBuf] {
        &self.key_files
    }

    fn claims(&self, subject: &str, scopes: &[&str], changes: Value) -> Value {
        let now = now();
        let mut claims = json!({
            "iss": DevIssuer::ISSUER,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + 3600,
            "jti": Uuid::new_v4().to_string(),
            "client_id": DevIssuer::CLIENT_ID,
            "scope": scopes.join(" "),
        });
        for (name, value) in changes.as_object().expect("changes are an object") {
            claims[name] = value.clone();
        }
        claims
    }

    fn sign(&self, claims: &Value, kid: &str) -> String {
        jsonwebtoken::encode(&header(Algorithm::EdDSA, kid), claims, &self.key).expect("signed")
    }
}

fn header(alg: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(kid.to_owned());
    header
}

fn part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The folder of the development issuer the service trusts.
fn issuer_dir(app: &TestApp) -> PathBuf {
    match &app.settings.auth.jwks {
        JwksSource::File(path) => path.parent().expect("JWKS in a folder").to_path_buf(),
        JwksSource::Url(url) => panic!("tests trust a JWKS file, not {url}"),
    }
}

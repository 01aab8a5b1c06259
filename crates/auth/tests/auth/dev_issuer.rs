//! The development issuer: a key on disk, a JWKS beside it, tokens a verifier accepts.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use auth::dev::{DevIssuer, DevIssuerError, is_dev_issuer};
use auth::{AuthConfig, JwksSource, Verifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use serde_json::Value;

const AUDIENCE: &str = "wallet-hub-api";

fn dev_config(issuer: &DevIssuer) -> AuthConfig {
    let mut config = AuthConfig::new(
        DevIssuer::ISSUER,
        AUDIENCE,
        JwksSource::File(issuer.jwks_path().to_owned()),
    );
    config.require_at_jwt_typ = true;
    config
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

#[tokio::test]
async fn the_dev_issuer_creates_a_private_key_and_a_jwks_that_verifies_its_tokens() {
    let home = tempfile::tempdir().expect("temporary directory");
    let dir = home.path().join(".local/dev-issuer");
    let issuer = DevIssuer::load_or_create(&dir).expect("created");

    let key_mode = std::fs::metadata(dir.join(DevIssuer::KEY_FILE))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    assert_eq!(issuer.jwks_path(), dir.join(DevIssuer::JWKS_FILE));
    let jwks = std::fs::read_to_string(issuer.jwks_path()).expect("JWKS file");
    assert!(
        !jwks.contains("\"d\""),
        "the JWKS holds no private part: {jwks}"
    );

    let token = issuer
        .mint(
            AUDIENCE,
            "alice",
            &["wallets:deposit"],
            Duration::from_secs(600),
        )
        .expect("minted");
    let verifier = Verifier::new(&dev_config(&issuer))
        .await
        .expect("verifier starts");
    let principal = verifier
        .verify(token.expose_secret())
        .await
        .expect("accepted");

    assert_eq!(principal.issuer, DevIssuer::ISSUER);
    assert_eq!(principal.subject, "alice");
    assert!(principal.has_scope("wallets:deposit"));
    assert_eq!(principal.scopes.len(), 1);
}

#[tokio::test]
async fn dev_tokens_carry_the_rfc_9068_header_and_claims() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let issuer = DevIssuer::load_or_create(dir.path()).expect("created");
    let secret = issuer
        .mint(AUDIENCE, "alice", &[] as &[&str], Duration::from_secs(600))
        .expect("minted");
    let token = secret.expose_secret();
    assert!(
        !format!("{secret:?}").contains(token),
        "Debug redacts the token"
    );

    let header = decode_part(token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let claims = decode_part(token, 1);
    assert_eq!(claims["iss"], DevIssuer::ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["client_id"], DevIssuer::CLIENT_ID);
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
    let (iat, exp) = (
        claims["iat"].as_u64().expect("iat"),
        claims["exp"].as_u64().expect("exp"),
    );
    assert_eq!(exp - iat, 600);
    assert!(claims.get("scope").is_none(), "no scopes, no scope claim");
}

#[tokio::test]
async fn loading_again_reuses_the_key_so_earlier_tokens_stay_valid() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let first = DevIssuer::load_or_create(dir.path()).expect("created");
    let token = first
        .mint(
            AUDIENCE,
            "alice",
            &["wallets:read"],
            Duration::from_secs(600),
        )
        .expect("minted");
    let jwks_before = std::fs::read_to_string(first.jwks_path()).expect("JWKS");

    let second = DevIssuer::load_or_create(dir.path()).expect("loaded");

    assert_eq!(
        std::fs::read_to_string(second.jwks_path()).expect("JWKS"),
        jwks_before
    );
    let verifier = Verifier::new(&dev_config(&second))
        .await
        .expect("verifier starts");
    assert!(verifier.verify(token.expose_secret()).await.is_ok());
}

#[test]
fn processes_starting_together_agree_on_one_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let described: Vec<String> = std::thread::scope(|scope| {
        let loads: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| DevIssuer::load_or_create(dir.path()).expect("loaded")))
            .collect();
        loads
            .into_iter()
            .map(|load| {
                let issuer = load.join().expect("thread");
                format!("{issuer:?}")
            })
            .collect()
    });

    assert!(
        described.windows(2).all(|pair| pair[0] == pair[1]),
        "one kid for all: {described:?}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "only the key and the JWKS remain: {leftovers:?}"
    );
}

#[test]
fn scopes_with_spaces_and_empty_subjects_are_not_minted() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let issuer = DevIssuer::load_or_create(dir.path()).expect("created");
    let hour = Duration::from_secs(3600);

    assert!(matches!(
        issuer.mint(AUDIENCE, "alice", &["wallets:read wallets:admin"], hour),
        Err(DevIssuerError::InvalidScope(_))
    ));
    assert!(matches!(
        issuer.mint(AUDIENCE, "", &["wallets:read"], hour),
        Err(DevIssuerError::Empty("subject"))
    ));
}

#[test]
fn a_config_trusting_the_dev_issuer_is_recognised() {
    let jwks = JwksSource::File("jwks.json".into());
    assert!(is_dev_issuer(&AuthConfig::new(
        DevIssuer::ISSUER,
        AUDIENCE,
        jwks.clone()
    )));
    assert!(!is_dev_issuer(&AuthConfig::new(
        "https://idp.example/",
        AUDIENCE,
        jwks
    )));
}

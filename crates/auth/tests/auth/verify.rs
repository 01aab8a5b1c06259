//! The verification matrix: each way a token can be wrong, against one trusted issuer.

use auth::{SigningAlgorithm, TokenError};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::support::{
    AUDIENCE, ISSUER, TestKey, Trust, b64, claims, claims_with, now, part, refused,
};

#[tokio::test]
async fn a_valid_token_is_accepted_with_its_identity_and_scopes() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;

    let principal = verifier
        .verify(&key.token(&claims("alice")))
        .await
        .expect("accepted");

    assert_eq!(principal.issuer, ISSUER);
    assert_eq!(principal.subject, "alice");
    assert!(principal.has_scope("wallets:read"));
    assert!(principal.has_scope("wallets:deposit"));
    assert!(!principal.has_scope("wallets:admin"));
    assert_eq!(principal.scopes.len(), 2);
}

#[tokio::test]
async fn rs256_and_es256_tokens_are_accepted_with_keys_from_the_same_jwks() {
    let rsa = TestKey::rsa("rsa-1");
    let ec = TestKey::p256("ec-1");
    let ed = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&rsa, &ec, &ed]).verifier().await;

    for key in [&rsa, &ec, &ed] {
        let principal = verifier
            .verify(&key.token(&claims(key.alg())))
            .await
            .unwrap_or_else(|e| panic!("{} token refused: {e}", key.alg()));
        assert_eq!(principal.subject, key.alg());
    }
}

#[tokio::test]
async fn a_token_expired_beyond_the_leeway_is_refused() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;
    let token = key.token(&claims_with("alice", &json!({"exp": now() - 31 - 5})));

    assert!(matches!(
        refused(&verifier, &token).await,
        TokenError::Expired
    ));
}

#[tokio::test]
async fn a_token_remembered_as_verified_is_refused_once_it_expires() {
    let key = TestKey::ed25519("ed-1");
    let mut trust = Trust::new(&[&key]);
    trust.config.leeway_seconds = 0;
    let verifier = trust.verifier().await;
    let token = key.token(&claims_with("alice", &json!({"exp": now() + 2})));
    for _ in 0..3 {
        assert!(
            verifier.verify(&token).await.is_ok(),
            "valid, then remembered"
        );
    }
    // The memory never outlives `exp`: past it, the same token is checked in full again.
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    assert!(matches!(
        refused(&verifier, &token).await,
        TokenError::Expired
    ));
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_still_accepted() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;
    let token = key.token(&claims_with("alice", &json!({"exp": now() - 10})));

    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_token_whose_nbf_is_beyond_the_leeway_is_refused_and_within_it_accepted() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;
    let early = key.token(&claims_with("alice", &json!({"nbf": now() + 120})));
    let skewed = key.token(&claims_with("alice", &json!({"nbf": now() + 10})));

    assert!(matches!(
        refused(&verifier, &early).await,
        TokenError::NotYetValid
    ));
    assert!(verifier.verify(&skewed).await.is_ok());
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_but_one_listing_ours_is_accepted() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;
    let other = key.token(&claims_with("alice", &json!({"aud": "another-api"})));
    let listed = key.token(&claims_with(
        "alice",
        &json!({"aud": ["another-api", AUDIENCE]}),
    ));

    assert!(matches!(
        refused(&verifier, &other).await,
        TokenError::BadAudience
    ));
    assert!(verifier.verify(&listed).await.is_ok());
}

#[tokio::test]
async fn a_token_with_another_issuer_is_refused() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;
    let token = key.token(&claims_with(
        "alice",
        &json!({"iss": "https://evil.example/"}),
    ));

    assert!(matches!(
        refused(&verifier, &token).await,
        TokenError::BadIssuer
    ));
}

#[tokio::test]
async fn tokens_missing_a_required_claim_are_refused_naming_it() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;

    for claim in ["sub", "exp", "iss", "aud"] {
        let token = key.token(&claims_with("alice", &json!({ claim: null })));
        match refused(&verifier, &token).await {
            TokenError::MissingClaim(missing) => assert_eq!(missing, claim),
            other => panic!("without {claim}: {other:?}"),
        }
    }
    let empty_sub = key.token(&claims_with("", &json!({})));
    assert!(matches!(
        refused(&verifier, &empty_sub).await,
        TokenError::MissingClaim(claim) if claim == "sub"
    ));
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;

    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": key.kid});
        let token = format!("{}.{}.", part(&header), part(&claims("alice")));
        assert!(matches!(
            refused(&verifier, &token).await,
            TokenError::DisallowedAlgorithm(named) if named.as_str() == alg
        ));
    }
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_issuers_public_key_is_refused() {
    let rsa = TestKey::rsa("rsa-1");
    let verifier = Trust::new(&[&rsa]).verifier().await;
    let der = rsa.public_key_der();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&der)
    );
    let jwk_json = rsa.jwk().to_string();

    for secret in [der.as_slice(), pem.as_bytes(), jwk_json.as_bytes()] {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": rsa.kid});
        let message = format!("{}.{}", part(&header), part(&claims("alice")));
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret),
            message.as_bytes(),
        );
        let token = format!("{message}.{}", b64(tag.as_ref()));
        assert!(matches!(
            refused(&verifier, &token).await,
            TokenError::DisallowedAlgorithm(alg) if alg.as_str() == "HS256"
        ));
    }
}

#[tokio::test]
async fn an_algorithm_outside_the_allow_list_or_unfit_for_the_key_is_refused() {
    let rsa = TestKey::rsa("rsa-1");
    let ed = TestKey::ed25519("ed-1");
    let trust = Trust::new(&[&rsa, &ed]);
    let verifier = trust.verifier().await;
    let claims = claims("alice");

    // PS256 is not in the default allow-list, even though the key is RSA.
    let ps256 = rsa.token_with_header(&json!({"alg": "PS256", "kid": rsa.kid}), &claims);
    assert!(matches!(
        refused(&verifier, &ps256).await,
        TokenError::DisallowedAlgorithm(alg) if alg.as_str() == "PS256"
    ));
    // ES256 is allowed, but the kid names an Ed25519 key.
    let es_on_ed = ed.token_with_header(&json!({"alg": "ES256", "kid": ed.kid}), &claims);
    assert!(matches!(
        refused(&verifier, &es_on_ed).await,
        TokenError::KeyMismatch {
            alg: SigningAlgorithm::Es256,
            ..
        }
    ));
    // The RSA JWK pins RS256; with RS512 allowed too, an RS512 header still does not fit it.
    let mut config = trust.config.clone();
    config.algorithms.push(SigningAlgorithm::Rs512);
    let permissive = auth::Verifier::new(&config).await.expect("verifier starts");
    let rs512 = rsa.token_with_header(&json!({"alg": "RS512", "kid": rsa.kid}), &claims);
    assert!(matches!(
        refused(&permissive, &rs512).await,
        TokenError::KeyMismatch {
            alg: SigningAlgorithm::Rs512,
            ..
        }
    ));
}

#[tokio::test]
async fn a_tampered_payload_is_refused_even_with_the_original_signature() {
    let key = TestKey::p256("ec-1");
    let verifier = Trust::new(&[&key]).verifier().await;
    let token = key.token(&claims("alice"));
    let (header, rest) = token.split_once('.').expect("three parts");
    let (_, signature) = rest.split_once('.').expect("three parts");
    let elevated = claims_with("alice", &json!({"scope": "wallets:admin"}));
    let impersonating = claims("bob");

    for payload in [elevated, impersonating] {
        let tampered = format!("{header}.{}.{signature}", part(&payload));
        assert!(matches!(
            refused(&verifier, &tampered).await,
            TokenError::BadSignature
        ));
    }
}

#[tokio::test]
async fn a_token_signed_by_a_second_issuers_key_is_refused_whatever_kid_it_names() {
    let trusted = TestKey::ed25519("ed-1");
    let stranger = TestKey::ed25519("stranger-1");
    // Kept alive: the unknown kid makes the verifier read the JWKS file again.
    let trust = Trust::new(&[&trusted]);
    let verifier = trust.verifier().await;
    let claims = claims("alice");

    let own_kid = stranger.token(&claims);
    assert!(matches!(
        refused(&verifier, &own_kid).await,
        TokenError::UnknownKey { kid } if kid.as_str() == "stranger-1"
    ));
    let borrowed_kid = stranger.token_with_header(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": trusted.kid}),
        &claims,
    );
    assert!(matches!(
        refused(&verifier, &borrowed_kid).await,
        TokenError::BadSignature
    ));
}

#[tokio::test]
async fn a_token_naming_no_key_is_refused() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;
    let token = key.token_with_header(&json!({"alg": "EdDSA", "typ": "JWT"}), &claims("alice"));

    assert!(matches!(
        refused(&verifier, &token).await,
        TokenError::MissingKeyId
    ));
}

#[tokio::test]
async fn the_at_jwt_typ_is_required_only_when_configured() {
    let key = TestKey::ed25519("ed-1");
    let trust = Trust::new(&[&key]);
    let lenient = trust.verifier().await;
    let mut config = trust.config.clone();
    config.require_at_jwt_typ = true;
    let strict = auth::Verifier::new(&config).await.expect("verifier starts");
    let claims = claims("alice");
    let typed_jwt = key.token(&claims);
    let typed_at = key.token_with_header(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid}),
        &claims,
    );
    let typed_media = key.token_with_header(
        &json!({"alg": "EdDSA", "typ": "application/AT+JWT", "kid": key.kid}),
        &claims,
    );

    assert!(lenient.verify(&typed_jwt).await.is_ok());
    assert!(matches!(
        refused(&strict, &typed_jwt).await,
        TokenError::WrongType(Some(typ)) if typ.as_str() == "JWT"
    ));
    assert!(strict.verify(&typed_at).await.is_ok());
    assert!(strict.verify(&typed_media).await.is_ok());
}

#[tokio::test]
async fn garbage_is_refused_as_malformed() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;
    let valid = key.token(&claims("alice"));
    let (header, _) = valid.split_once('.').expect("three parts");

    for token in [
        String::new(),
        "not-a-token".to_owned(),
        "a.b.c".to_owned(),
        format!("{header}.{}", part(&claims("alice"))),
        key.token(&json!(["signed", "but", "not", "claims"])),
    ] {
        let error = refused(&verifier, &token).await;
        assert_eq!(error.reason(), "malformed", "{token:?} gave {error:?}");
    }
}

#[tokio::test]
async fn clones_of_a_verifier_verify_on_other_tasks_with_the_same_keys() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Trust::new(&[&key]).verifier().await;
    let token = key.token(&claims("alice"));

    // tokio::spawn also proves the verify future is Send, as axum handlers need.
    let clone = verifier.clone();
    let principal = tokio::spawn(async move { clone.verify(&token).await })
        .await
        .expect("task")
        .expect("accepted");

    assert_eq!(principal.subject, "alice");
}

//! Loading the JWKS: at startup, from a file or a URL, and again on an unknown `kid`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use auth::{AuthConfig, JwksSource, TokenError, Verifier, VerifierError};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::support::{AUDIENCE, ISSUER, TestKey, Trust, claims, jwks, refused, write_jwks};

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_refetches_the_jwks_at_most_once_per_interval() {
    let interval = Duration::from_secs(
        AuthConfig::new("i", "a", "k.json".parse().expect("path")).jwks_unknown_kid_refetch_seconds,
    );
    let first = TestKey::ed25519("key-1");
    let second = TestKey::ed25519("key-2");
    let third = TestKey::ed25519("key-3");
    let trust = Trust::new(&[&first]);
    let verifier = trust.verifier().await;
    let claims = claims("alice");

    // Rotation: the issuer publishes key-2; the first token naming it triggers a refetch.
    write_jwks(&trust.jwks_path(), &jwks(&[&first, &second]));
    assert!(verifier.verify(&second.token(&claims)).await.is_ok());

    // key-3 appears moments later: within the interval there is no refetch, so it is
    // refused...
    write_jwks(&trust.jwks_path(), &jwks(&[&first, &second, &third]));
    tokio::time::advance(interval / 2).await;
    assert!(matches!(
        refused(&verifier, &third.token(&claims)).await,
        TokenError::UnknownKey { kid } if kid.as_str() == "key-3"
    ));

    // ...and once the interval is over, the next unknown kid refetches again.
    tokio::time::advance(interval / 2).await;
    assert!(verifier.verify(&third.token(&claims)).await.is_ok());
    // Keys already known never wait for a refetch.
    assert!(verifier.verify(&first.token(&claims)).await.is_ok());
}

/// A JWKS endpoint whose document (and `Cache-Control`) can be swapped, counting the
/// requests it serves.
#[derive(Clone, Default)]
struct JwksEndpoint {
    document: Arc<Mutex<Value>>,
    cache_control: Arc<Mutex<Option<&'static str>>>,
    hits: Arc<AtomicUsize>,
}

impl JwksEndpoint {
    fn publish(&self, document: Value) {
        *self.document.lock().expect("lock") = document;
    }

    fn cache_control(&self, value: &'static str) {
        *self.cache_control.lock().expect("lock") = Some(value);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    async fn serve(self) -> SocketAddr {
        async fn handler(State(endpoint): State<JwksEndpoint>) -> Response {
            endpoint.hits.fetch_add(1, Ordering::SeqCst);
            let document = endpoint.document.lock().expect("lock").clone();
            if document.is_null() {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            let control = *endpoint.cache_control.lock().expect("lock");
            match control {
                Some(value) => (
                    [(axum::http::header::CACHE_CONTROL, value)],
                    axum::Json(document),
                )
                    .into_response(),
                None => axum::Json(document).into_response(),
            }
        }
        let app = Router::new().route("/certs", get(handler)).with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }
}

fn url_config(addr: SocketAddr) -> AuthConfig {
    let jwks = format!("http://{addr}/certs")
        .parse()
        .expect("loopback http is allowed");
    AuthConfig::new(ISSUER, AUDIENCE, jwks)
}

/// A verifier whose JWKS URL is served by a fresh endpoint publishing `keys`.
async fn verifier_over_http(keys: &[&TestKey]) -> (JwksEndpoint, Verifier) {
    verifier_over_http_with(keys, None, |_| {}).await
}

/// The same, with the endpoint's `Cache-Control` and the config adjusted.
async fn verifier_over_http_with(
    keys: &[&TestKey],
    cache_control: Option<&'static str>,
    adjust: impl FnOnce(&mut AuthConfig),
) -> (JwksEndpoint, Verifier) {
    let endpoint = JwksEndpoint::default();
    endpoint.publish(jwks(keys));
    if let Some(value) = cache_control {
        endpoint.cache_control(value);
    }
    let addr = endpoint.clone().serve().await;
    let mut config = url_config(addr);
    adjust(&mut config);
    let verifier = Verifier::new(&config).await.expect("verifier starts");
    (endpoint, verifier)
}

#[tokio::test]
async fn a_jwks_url_is_fetched_once_at_startup_then_again_only_after_key_rotation() {
    let old = TestKey::rsa("rsa-old");
    let new = TestKey::p256("ec-new");
    let (endpoint, verifier) = verifier_over_http(&[&old]).await;
    let claims = claims("alice");

    for _ in 0..3 {
        assert!(verifier.verify(&old.token(&claims)).await.is_ok());
    }
    assert_eq!(endpoint.hits(), 1, "known keys are served from the cache");

    endpoint.publish(jwks(&[&new]));
    assert!(verifier.verify(&new.token(&claims)).await.is_ok());
    assert_eq!(endpoint.hits(), 2, "the unknown kid refetched once");

    // The rotated-out key is gone from the cache, and asking for it again within the
    // interval does not reach the endpoint.
    assert!(matches!(
        refused(&verifier, &old.token(&claims)).await,
        TokenError::UnknownKey { .. }
    ));
    assert_eq!(endpoint.hits(), 2);
}

#[tokio::test]
async fn a_failed_refetch_keeps_the_cached_keys() {
    let key = TestKey::ed25519("ed-1");
    let (endpoint, verifier) = verifier_over_http(&[&key]).await;
    endpoint.publish(Value::Null);

    let unknown = TestKey::ed25519("ed-2").token(&claims("alice"));
    let error = refused(&verifier, &unknown).await;

    assert!(matches!(error, TokenError::KeyRefetch { .. }), "{error:?}");
    assert!(verifier.verify(&key.token(&claims("alice"))).await.is_ok());
}

async fn startup_error(jwks: JwksSource) -> String {
    let config = AuthConfig::new(ISSUER, AUDIENCE, jwks);
    let error = Verifier::new(&config).await.expect_err("startup must fail");
    assert!(matches!(error, VerifierError::Jwks(_)), "{error:?}");
    error.to_string()
}

#[tokio::test]
async fn startup_fails_naming_the_jwks_source_when_it_cannot_be_loaded() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing.json");
    let message = startup_error(JwksSource::File(missing.clone())).await;
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );

    let not_json = dir.path().join("not-json.json");
    std::fs::write(&not_json, "<html>").expect("write");
    let message = startup_error(JwksSource::File(not_json.clone())).await;
    assert!(
        message.contains(&not_json.display().to_string()),
        "{message}"
    );

    let endpoint = JwksEndpoint::default();
    let addr = endpoint.clone().serve().await;
    let message = startup_error(url_config(addr).jwks).await;
    assert!(
        message.contains(&format!("http://{addr}/certs")),
        "{message}"
    );
    assert!(message.contains("500"), "{message}");

    // Nothing listens on the port of a dropped listener.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let message = startup_error(url_config(closed).jwks).await;
    assert!(
        message.contains(&format!("http://{closed}/certs")),
        "{message}"
    );
}

#[tokio::test]
async fn keys_that_cannot_verify_signatures_are_ignored() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("jwks.json");
    let signing = TestKey::ed25519("ed-1");
    let encryption = TestKey::rsa("enc-1");
    let mut encryption_jwk = encryption.jwk();
    encryption_jwk["use"] = json!("enc");
    encryption_jwk["alg"] = json!("RSA-OAEP");
    let only_unusable = json!({"keys": [
        {"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0"},
        encryption_jwk,
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
    ]});
    write_jwks(&path, &only_unusable);
    let message = startup_error(JwksSource::File(path.clone())).await;
    assert!(message.contains("no usable signing key"), "{message}");

    let mut with_signing = only_unusable.clone();
    with_signing["keys"]
        .as_array_mut()
        .expect("keys")
        .push(signing.jwk());
    write_jwks(&path, &with_signing);
    let verifier = Verifier::new(&AuthConfig::new(ISSUER, AUDIENCE, JwksSource::File(path)))
        .await
        .expect("verifier starts");
    let claims = claims("alice");

    assert!(verifier.verify(&signing.token(&claims)).await.is_ok());
    assert!(matches!(
        refused(&verifier, &encryption.token(&claims)).await,
        TokenError::UnknownKey { .. }
    ));
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_is_refused_once_the_jwks_max_age_runs_out() {
    let old = TestKey::ed25519("old");
    let new = TestKey::ed25519("new");
    let (endpoint, verifier) =
        verifier_over_http_with(&[&old, &new], Some("public, max-age=1"), |config| {
            config.jwks_cache_min_seconds = 1;
            config.jwks_cache_max_seconds = 600;
        })
        .await;
    let claims = claims("alice");
    assert!(verifier.verify(&old.token(&claims)).await.is_ok());

    // The issuer withdraws `old` (compromised, say). Within the max-age it is still cached...
    endpoint.publish(jwks(&[&new]));
    assert!(verifier.verify(&old.token(&claims)).await.is_ok());
    assert_eq!(endpoint.hits(), 1);
    // ...and once the max-age is over, the next token refetches and `old` is refused.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(matches!(
        refused(&verifier, &old.token(&claims)).await,
        TokenError::UnknownKey { .. }
    ));
    assert!(verifier.verify(&new.token(&claims)).await.is_ok());
    assert!(
        (2..=3).contains(&endpoint.hits()),
        "one refresh when the max-age ran out (and at most one unknown-kid refetch): {}",
        endpoint.hits()
    );
}

#[tokio::test]
async fn without_a_max_age_the_jwks_is_refreshed_after_the_configured_maximum() {
    let old = TestKey::ed25519("old");
    let new = TestKey::ed25519("new");
    let (endpoint, verifier) = verifier_over_http_with(&[&old, &new], None, |config| {
        config.jwks_cache_min_seconds = 1;
        config.jwks_cache_max_seconds = 1;
    })
    .await;
    let claims = claims("alice");
    endpoint.publish(jwks(&[&new]));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(matches!(
        refused(&verifier, &old.token(&claims)).await,
        TokenError::UnknownKey { .. }
    ));
}

#[tokio::test]
async fn made_up_kids_refetch_once_per_interval_and_a_newly_published_key_is_trusted_after_it() {
    let current = TestKey::ed25519("current");
    let (endpoint, verifier) = verifier_over_http_with(&[&current], None, |config| {
        config.jwks_unknown_kid_refetch_seconds = 1;
    })
    .await;
    let claims = claims("mallory");
    // A burst of tokens naming keys nobody published.
    for n in 0..50 {
        let forged = TestKey::ed25519(&format!("made-up-{n}"));
        assert!(matches!(
            refused(&verifier, &forged.token(&claims)).await,
            TokenError::UnknownKey { .. }
        ));
    }
    assert_eq!(
        endpoint.hits(),
        2,
        "the start, and one refetch for the whole burst"
    );
    assert!(
        verifier.verify(&current.token(&claims)).await.is_ok(),
        "known keys never wait"
    );

    // The issuer rotates during the burst: its new key is trusted once the interval is over.
    let rotated = TestKey::ed25519("rotated");
    endpoint.publish(jwks(&[&current, &rotated]));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(verifier.verify(&rotated.token(&claims)).await.is_ok());
    assert_eq!(endpoint.hits(), 3);
}

#[tokio::test]
async fn jwks_cache_bounds_that_make_no_sense_stop_startup() {
    let (_endpoint, verifier) = verifier_over_http(&[&TestKey::ed25519("k")]).await;
    drop(verifier);
    for (min, max, refetch) in [(0, 10, 10), (20, 10, 10), (1, 86_401, 10), (1, 10, 0)] {
        let mut config = AuthConfig::new(ISSUER, AUDIENCE, "k.json".parse().expect("path"));
        config.jwks_cache_min_seconds = min;
        config.jwks_cache_max_seconds = max;
        config.jwks_unknown_kid_refetch_seconds = refetch;
        let error = config.validate().expect_err("refused").to_string();
        assert!(error.contains("auth.jwks_"), "{error}");
    }
}

//! Reading `[auth]`: defaults, and the settings that must stop a service at startup.

use auth::{AuthConfig, ConfigError, JwksSource, SigningAlgorithm};
use serde_json::{Value, json};

fn parse(config: Value) -> Result<AuthConfig, String> {
    serde_json::from_value::<AuthConfig>(config)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            config
                .validate()
                .map(|()| config)
                .map_err(|e| e.to_string())
        })
}

fn minimal() -> Value {
    json!({
        "issuer": "https://idp.example/realms/wallet-hub",
        "audience": "wallet-hub-api",
        "jwks": "https://idp.example/realms/wallet-hub/protocol/openid-connect/certs",
    })
}

fn with(key: &str, value: Value) -> Value {
    let mut config = minimal();
    config[key] = value;
    config
}

#[test]
fn issuer_audience_and_jwks_are_enough_and_the_rest_has_safe_defaults() {
    let config = parse(minimal()).expect("valid");

    assert_eq!(config.leeway_seconds, 30);
    assert_eq!(
        config.algorithms,
        [
            SigningAlgorithm::Rs256,
            SigningAlgorithm::Es256,
            SigningAlgorithm::EdDsa
        ]
    );
    assert!(!config.require_at_jwt_typ);
    assert!(matches!(config.jwks, JwksSource::Url(url) if url.scheme() == "https"));
}

#[test]
fn unsigned_and_symmetric_algorithms_are_refused_with_the_reason() {
    let none = parse(with("algorithms", json!(["RS256", "none"]))).expect_err("refused");
    assert!(none.contains("`none`") && none.contains("forge"), "{none}");

    for hmac in ["HS256", "HS384", "HS512"] {
        let error = parse(with("algorithms", json!([hmac]))).expect_err("refused");
        assert!(
            error.contains(hmac) && error.contains("symmetric"),
            "{error}"
        );
    }
    let unknown = parse(with("algorithms", json!(["RS1"]))).expect_err("refused");
    assert!(unknown.contains("not a supported algorithm"), "{unknown}");
    let empty = parse(with("algorithms", json!([]))).expect_err("refused");
    assert!(empty.contains("auth.algorithms is empty"), "{empty}");
}

#[test]
fn a_leeway_above_sixty_seconds_is_invalid() {
    assert!(parse(with("leeway_seconds", json!(60))).is_ok());
    let error = parse(with("leeway_seconds", json!(61))).expect_err("refused");
    assert!(error.contains("leeway_seconds is 61"), "{error}");
}

#[test]
fn unknown_keys_and_empty_settings_are_refused() {
    assert!(parse(with("audiences", json!(["x"]))).is_err());
    for key in ["issuer", "audience", "jwks"] {
        let error = parse(with(key, json!(" "))).expect_err("refused");
        assert!(error.contains(&format!("auth.{key}")), "{error}");
    }
}

#[test]
fn the_jwks_is_a_file_or_an_https_url_with_plain_http_only_for_loopback() {
    let file: JwksSource = ".local/dev-issuer/jwks.json".parse().expect("a path");
    assert_eq!(file, JwksSource::File(".local/dev-issuer/jwks.json".into()));

    for loopback in [
        "http://127.0.0.1:9/certs",
        "http://localhost/certs",
        "http://[::1]:80/c",
    ] {
        assert!(loopback.parse::<JwksSource>().is_ok(), "{loopback}");
    }
    for refused in [
        "http://idp.example/certs",
        "http://10.0.0.1/certs",
        "ftp://idp.example/c",
    ] {
        assert!(
            matches!(
                refused.parse::<JwksSource>(),
                Err(ConfigError::JwksNotHttps(_))
            ),
            "{refused}"
        );
    }
    assert!(matches!(
        "https://user:secret@idp.example/certs".parse::<JwksSource>(),
        Err(ConfigError::JwksCredentials)
    ));
    assert!(matches!(
        "https://".parse::<JwksSource>(),
        Err(ConfigError::JwksUrl { .. })
    ));
}

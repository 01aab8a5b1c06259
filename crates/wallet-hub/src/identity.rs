//! The token side of the service: the verifier the API checks bearer tokens with, and the
//! local development issuer that makes the service usable without an identity provider.
//!
//! The development issuer is used only when `[auth]` points at it (its issuer URL and a
//! JWKS file), and never when `env = "production"`: then startup fails, naming the setting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use auth::dev::{DevIssuer, is_dev_issuer};
use auth::{AuthConfig, JwksSource};
use secrecy::SecretString;

use crate::config::{Environment, Settings};

/// The folder of the development issuer `config` trusts, if it trusts that issuer.
fn dev_issuer_dir(config: &AuthConfig) -> Option<PathBuf> {
    match &config.jwks {
        JwksSource::File(path) if is_dev_issuer(config) => Some(
            path.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        ),
        _ => None,
    }
}

/// Refuses the development issuer in production.
fn check_environment(settings: &Settings) -> anyhow::Result<()> {
    if settings.env == Environment::Production && is_dev_issuer(&settings.auth) {
        bail!(
            "auth.issuer is the local development issuer, which env = \"production\" refuses: \
             configure auth.issuer, auth.audience and auth.jwks for your identity provider"
        );
    }
    Ok(())
}

/// The development issuer, its key and JWKS created on first use.
async fn dev_issuer(dir: PathBuf) -> anyhow::Result<DevIssuer> {
    tokio::task::spawn_blocking(move || {
        DevIssuer::load_or_create(&dir)
            .with_context(|| format!("cannot set up the development issuer in {}", dir.display()))
    })
    .await
    .context("development issuer task failed")?
}

/// The verifier for `[auth]`; fails at startup (naming the JWKS source) rather than on the
/// first request.
pub async fn verifier(settings: &Settings) -> anyhow::Result<auth::Verifier> {
    check_environment(settings)?;
    if let Some(dir) = dev_issuer_dir(&settings.auth) {
        dev_issuer(dir).await?;
        tracing::warn!(
            issuer = DevIssuer::ISSUER,
            "trusting the local development token issuer; not for production"
        );
    }
    auth::Verifier::new(&settings.auth)
        .await
        .context("cannot set up bearer token verification ([auth])")
}

/// `wallet-hub token`: a token from the development issuer for `subject` with `scopes`.
pub async fn mint(
    settings: &Settings,
    subject: &str,
    scopes: &[String],
    ttl: Duration,
) -> anyhow::Result<SecretString> {
    check_environment(settings)?;
    let Some(dir) = dev_issuer_dir(&settings.auth) else {
        bail!(
            "`wallet-hub token` signs with the local development issuer, but [auth] trusts \
             {}: get tokens from that identity provider",
            settings.auth.issuer
        );
    };
    let issuer = dev_issuer(dir).await?;
    issuer
        .mint(&settings.auth.audience, subject, scopes, ttl)
        .context("cannot sign the token")
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;
    use crate::config::DEFAULT_TOML;

    fn settings(overlay: &str, dir: &Path) -> Settings {
        let mut settings: Settings = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string(overlay))
            .extract()
            .expect("valid settings");
        settings.auth.jwks = JwksSource::File(dir.join(DevIssuer::JWKS_FILE));
        settings
    }

    #[tokio::test]
    async fn production_refuses_to_start_with_the_development_issuer_and_creates_no_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings("env = \"production\"", dir.path());
        let error = verifier(&settings).await.expect_err("refused");
        assert!(format!("{error:#}").contains("production"), "{error:#}");
        assert!(!dir.path().join(DevIssuer::KEY_FILE).exists());
        let minted = mint(&settings, "alice", &[], Duration::from_secs(60)).await;
        assert!(minted.is_err(), "no development tokens in production");
    }

    #[tokio::test]
    async fn development_creates_the_issuer_on_first_start_and_accepts_its_tokens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings("", dir.path());
        let verifier = verifier(&settings)
            .await
            .expect("development issuer trusted");
        let token = mint(
            &settings,
            "alice",
            &["wallets:deposit".to_owned()],
            Duration::from_secs(60),
        )
        .await
        .expect("token");
        use secrecy::ExposeSecret as _;
        let principal = verifier.verify(token.expose_secret()).await.expect("valid");
        assert_eq!(principal.subject, "alice");
        assert!(principal.has_scope("wallets:deposit"));
    }

    #[tokio::test]
    async fn tokens_are_not_minted_for_an_identity_provider_the_service_trusts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings(
            "[auth]\nissuer = \"https://sso.example.com/realms/w\"",
            dir.path(),
        );
        let error = mint(&settings, "alice", &[], Duration::from_secs(60))
            .await
            .expect_err("refused");
        assert!(
            format!("{error:#}").contains("sso.example.com"),
            "{error:#}"
        );
    }
}

//! Settings: `config/default.toml` (compiled in), then an optional file, then
//! `WALLET_HUB__SECTION__KEY` variables, then `DATABASE_URL`, `DATABASE_MIGRATE_URL` and
//! `KAFKA_BROKERS`.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::Path;

use api::ApiConfig;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use kafka::KafkaConfig;
use outbox::RelayConfig;
use secrecy::SecretString;
use serde::Deserialize;
use telemetry::{LogConfig, TelemetryConfig};

use crate::admin::{AdminConfig, HealthConfig};

/// The documented defaults; every key must appear here.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `development` or `production` (`WALLET_HUB__ENV`): production refuses the local
    /// development token issuer.
    pub env: Environment,
    /// After SIGTERM (or SIGINT), the time the parts get to finish their work and close
    /// their clients; past it the process exits anyway, so a client stuck closing never
    /// outlives the orchestrator's grace period.
    pub shutdown_grace_ms: u64,
    /// Which bearer tokens the API accepts.
    pub auth: auth::AuthConfig,
    pub api: ApiConfig,
    pub admin: AdminConfig,
    pub health: HealthConfig,
    pub database: DatabaseConfig,
    pub kafka: KafkaConfig,
    pub relay: RelayConfig,
    pub consumer: ConsumerConfig,
    pub topics: TopicsConfig,
    /// Binding name (`wallet_created_out`, ...) -> destination topic; the names and the
    /// built-in topics are `event_bindings`'s.
    pub bindings: BTreeMap<String, String>,
    pub events: EventsConfig,
    pub telemetry: TelemetryConfig,
    pub log: LogConfig,
}

/// Where the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The runtime role's URL (`serve`, `outbox`, `dlq`). Wrapped so that it never
    /// appears in logs or `Debug` output.
    pub url: SecretString,
    /// The migration owner's URL (`migrate`, and `serve` when `migrate_on_start`): the
    /// role that owns the tables. Empty: `url`.
    pub migrate_url: SecretString,
    /// Each part has its own pool, so that a flood of one cannot starve the others.
    pub api_max_connections: u32,
    pub relay_max_connections: u32,
    pub consumers_max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// `statement_timeout` of every runtime connection (0: none).
    pub statement_timeout_ms: u64,
    /// `lock_timeout` of every runtime connection (0: none).
    pub lock_timeout_ms: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    pub enabled: bool,
    pub group_id: String,
    pub dead_letter_suffix: String,
    pub max_payload_bytes: usize,
    /// Replace a consumer's Kafka client that has been without a group assignment this
    /// long.
    pub rejoin_timeout_ms: u64,
    /// The most records one poll applies together: a partition's ready records of a poll
    /// commit in one transaction.
    pub batch_max: NonZeroUsize,
    /// At shutdown, the final offset commit and the close of each consumer's Kafka client
    /// get this long (on a thread of their own); past it the consumer stops without them.
    pub close_timeout_ms: u64,
    /// `ce_source` values the consumers accept; events from any other source are
    /// dead-lettered (class `untrusted-source`).
    pub trusted_sources: Vec<String>,
}

/// `[topics]`: the Kafka topics the service creates when they are missing, and checks
/// (warning on each difference) when they exist.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    pub provision: bool,
    pub partitions: i32,
    pub replication_factor: i32,
    /// `retention.ms` of a created topic (-1: keep forever).
    pub retention_ms: i64,
}

impl TopicsConfig {
    /// What every provisioned topic should be.
    pub fn spec(&self) -> kafka::topics::TopicSpec {
        kafka::topics::TopicSpec {
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            configs: [("retention.ms".to_owned(), self.retention_ms.to_string())].into(),
        }
    }
}

/// `[events]`: what the published events say about themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Base URL of the schemas named by each event's `dataschema`
    /// (`<base>/schemas/<type>.json`, served by the API). Empty: the API's own address.
    pub schema_base_url: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Settings {
    /// Loads the layers from the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("WALLET_HUB__").split("__"));
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(("database.url", url));
        }
        if let Ok(url) = std::env::var("DATABASE_MIGRATE_URL") {
            figment = figment.merge(("database.migrate_url", url));
        }
        if let Ok(brokers) = std::env::var("KAFKA_BROKERS") {
            figment = figment.merge(("kafka.brokers", brokers));
        }
        figment.extract().map_err(|e| ConfigError(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_defaults_are_complete_and_valid() {
        let settings: Settings = Figment::from(Toml::string(DEFAULT_TOML))
            .extract()
            .expect("default.toml holds every key");
        assert_eq!(settings.relay.poll_interval_ms, 5000);
        assert_eq!(settings.kafka.brokers, "localhost:9092");
        assert_eq!(settings.consumer.group_id, "wallet-hub-consumers");
        assert_eq!(
            event_bindings::EventBindings::new(&settings.bindings),
            Ok(event_bindings::EventBindings::default()),
            "the file names every binding with its built-in topic"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let result: Result<Settings, _> = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[relay]\npoll_interval = 10"))
            .extract();
        assert!(result.is_err());
    }

    #[test]
    fn database_url_does_not_leak_through_debug() {
        let settings: Settings = Figment::from(Toml::string(DEFAULT_TOML))
            .extract()
            .expect("defaults are valid");
        assert!(!format!("{settings:?}").contains("wallet_hub:wallet_hub"));
    }

    #[test]
    fn kafka_security_comes_from_the_environment_and_a_bad_protocol_is_refused_by_name() {
        jailed(|jail| {
            // librdkafka's spelling; the documented one is `sasl_ssl`.
            jail.set_env("WALLET_HUB__KAFKA__SECURITY_PROTOCOL", "SASL_SSL");
            jail.set_env("WALLET_HUB__KAFKA__SASL_USERNAME", "svc");
            jail.set_env("WALLET_HUB__KAFKA__SASL_PASSWORD", "s3cret-from-env");
            let settings = Settings::load(None).expect("valid settings");
            let client = settings.kafka.producer_config();
            assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
            assert_eq!(client.get("sasl.password"), Some("s3cret-from-env"));
            assert!(!format!("{settings:?}").contains("s3cret-from-env"));

            jail.set_env("WALLET_HUB__KAFKA__SECURITY_PROTOCOL", "SASL-SSL");
            let error = Settings::load(None).expect_err("unknown protocol");
            let message = format!("{:#}", error.0);
            assert!(
                message.to_lowercase().contains("kafka.security_protocol"),
                "{message}"
            );
        });
    }

    /// The topic `wallet_created_out` resolves to after loading, and how many entries
    /// `[bindings]` has: default.toml names every event type's (a second spelling of a name
    /// would be one more).
    fn wallet_created_topic(file: Option<&Path>) -> (String, usize) {
        let settings = Settings::load(file).expect("valid settings");
        let bindings =
            event_bindings::EventBindings::new(&settings.bindings).expect("valid bindings");
        (
            bindings
                .destination(domain::EventType::WalletCreated)
                .to_owned(),
            settings.bindings.len(),
        )
    }

    const OVERLAY: &str = "overlay.toml";
    const OVERLAY_TEXT: &str = "[bindings]\nwallet_created_out = \"from-file\"\n";

    /// Runs `test` in a figment jail: its own working directory, and environment variables
    /// that are removed again afterwards.
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail's closures return figment::Result"
    )]
    fn jailed(test: impl FnOnce(&mut figment::Jail)) {
        figment::Jail::expect_with(|jail| {
            test(jail);
            Ok(())
        });
    }

    #[test]
    fn a_file_overrides_the_topic_of_a_binding_that_default_toml_names() {
        jailed(|jail| {
            jail.create_file(OVERLAY, OVERLAY_TEXT).expect("overlay");
            assert_eq!(
                wallet_created_topic(Some(Path::new(OVERLAY))),
                ("from-file".to_owned(), domain::EventType::ALL.len())
            );
        });
    }

    #[test]
    fn an_environment_variable_overrides_the_topic_of_a_binding_that_default_toml_names() {
        jailed(|jail| {
            jail.set_env("WALLET_HUB__BINDINGS__WALLET_CREATED_OUT", "from-env");
            assert_eq!(
                wallet_created_topic(None),
                ("from-env".to_owned(), domain::EventType::ALL.len())
            );
        });
    }

    #[test]
    fn an_environment_variable_overrides_the_file_for_the_same_binding() {
        jailed(|jail| {
            jail.create_file(OVERLAY, OVERLAY_TEXT).expect("overlay");
            jail.set_env("WALLET_HUB__BINDINGS__WALLET_CREATED_OUT", "from-env");
            assert_eq!(
                wallet_created_topic(Some(Path::new(OVERLAY))),
                ("from-env".to_owned(), domain::EventType::ALL.len())
            );
        });
    }
}

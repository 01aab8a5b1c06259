//! The `[kafka]` configuration section.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`KAFKA_BROKERS`).
    pub brokers: String,
    /// Prefix of the client ids this process shows to the brokers.
    pub client_id: String,
    /// How long the producer keeps retrying one message before reporting it failed. The
    /// outbox row stays unsent and is retried by the relay.
    pub message_timeout_ms: u64,
    /// How every client of the service talks to the brokers: TLS, SASL, both or neither.
    pub security_protocol: SecurityProtocol,
    /// SASL mechanism, used only with `sasl_plaintext` and `sasl_ssl`.
    pub sasl_mechanism: SaslMechanism,
    /// SASL user name (empty: no SASL credentials are sent).
    pub sasl_username: String,
    /// Wrapped so that it never appears in logs or `Debug` output.
    pub sasl_password: SecretString,
    /// PEM file of the CA(s) that signed the brokers' certificates; empty means the system's
    /// trust store. The broker's host name is always verified against its certificate.
    pub ssl_ca_location: String,
    /// Extra librdkafka properties for the producer (override the defaults set here).
    pub producer: BTreeMap<String, String>,
    /// Extra librdkafka properties for consumers.
    pub consumer: BTreeMap<String, String>,
}

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    // librdkafka's own spelling is accepted too.
    #[serde(alias = "PLAINTEXT")]
    Plaintext,
    #[serde(alias = "SSL")]
    Ssl,
    #[serde(alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(alias = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_tls(self) -> bool {
        match self {
            Self::Ssl | Self::SaslSsl => true,
            Self::Plaintext | Self::SaslPlaintext => false,
        }
    }

    fn uses_sasl(self) -> bool {
        match self {
            Self::SaslPlaintext | Self::SaslSsl => true,
            Self::Plaintext | Self::Ssl => false,
        }
    }
}

/// librdkafka's `sasl.mechanisms`, the ones that need nothing beyond OpenSSL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "PLAIN")]
    Plain,
}

impl SaslMechanism {
    fn as_librdkafka(self) -> &'static str {
        match self {
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::Plain => "PLAIN",
        }
    }
}

impl KafkaConfig {
    /// What every client of the service starts from: the brokers, a client id
    /// `<client_id>-<role>`, and the security settings. The producer, the consumers, the
    /// readiness probe and the operator commands all build on it, so none of them can
    /// connect with less security than the configuration asks for.
    pub fn client_config(&self, role: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("{}-{role}", self.client_id))
            .set("security.protocol", self.security_protocol.as_librdkafka());
        if self.security_protocol.uses_tls() {
            config.set("ssl.endpoint.identification.algorithm", "https");
            if !self.ssl_ca_location.is_empty() {
                config.set("ssl.ca.location", &self.ssl_ca_location);
            }
        }
        if self.security_protocol.uses_sasl() {
            config.set("sasl.mechanisms", self.sasl_mechanism.as_librdkafka());
            if !self.sasl_username.is_empty() {
                config
                    .set("sasl.username", &self.sasl_username)
                    .set("sasl.password", self.sasl_password.expose_secret());
            }
        }
        config
    }

    /// Idempotent producer: `acks=all`, no duplicates or reordering on internal retries.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config("producer");
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set("compression.type", "lz4")
            // No waiting for more: the relay enqueues a whole batch at once and awaits its
            // reports before the next, so a linger only delays it. Messages enqueued while a
            // request is in flight still go out together (median latency at 1,000 events/s:
            // 7.7-9.7 ms with 0, 12.2-12.7 ms with 1; drain rate unchanged).
            .set("linger.ms", "0");
        for (key, value) in &self.producer {
            config.set(key, value);
        }
        config
    }

    /// Admin client (topic provisioning).
    pub fn admin_config(&self) -> ClientConfig {
        self.client_config("admin")
    }

    /// Consumer in `group_id`; offsets are stored by the runtime after each effect and
    /// committed by librdkafka in the background, on rebalance and at shutdown.
    pub fn consumer_config(&self, group_id: &str) -> ClientConfig {
        let mut config = self.client_config("consumer");
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("partition.assignment.strategy", "cooperative-sticky")
            // Topics are provisioned at startup (`[topics]`); a consumer never asks the
            // brokers to create what it subscribes to, as with auto-creation off.
            .set("allow.auto.create.topics", "false")
            // Feeds the consumer_lag gauge and readiness.
            .set("statistics.interval.ms", "5000");
        for (key, value) in &self.consumer {
            config.set(key, value);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(protocol: SecurityProtocol) -> KafkaConfig {
        KafkaConfig {
            brokers: "kafka:9093".to_owned(),
            client_id: "wh".to_owned(),
            message_timeout_ms: 1000,
            security_protocol: protocol,
            sasl_mechanism: SaslMechanism::ScramSha512,
            sasl_username: "svc".to_owned(),
            sasl_password: SecretString::from("s3cret"),
            ssl_ca_location: "/etc/ca.pem".to_owned(),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
        }
    }

    #[test]
    fn every_client_of_a_sasl_ssl_configuration_gets_tls_and_the_credentials() {
        let kafka = config(SecurityProtocol::SaslSsl);
        for client in [
            kafka.producer_config(),
            kafka.consumer_config("g"),
            kafka.admin_config(),
            kafka.client_config("health"),
        ] {
            assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
            assert_eq!(client.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
            assert_eq!(client.get("sasl.username"), Some("svc"));
            assert_eq!(client.get("sasl.password"), Some("s3cret"));
            assert_eq!(client.get("ssl.ca.location"), Some("/etc/ca.pem"));
            assert_eq!(
                client.get("ssl.endpoint.identification.algorithm"),
                Some("https")
            );
        }
    }

    #[test]
    fn plaintext_sends_no_credentials_and_no_tls_settings() {
        let client = config(SecurityProtocol::Plaintext).producer_config();
        assert_eq!(client.get("security.protocol"), Some("plaintext"));
        assert_eq!(client.get("sasl.password"), None);
        assert_eq!(client.get("ssl.ca.location"), None);
    }

    #[test]
    fn the_password_does_not_leak_through_debug() {
        assert!(!format!("{:?}", config(SecurityProtocol::SaslSsl)).contains("s3cret"));
    }
}

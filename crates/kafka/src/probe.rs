//! Kafka reachability and topic availability: metadata requests with a timeout, for
//! `/health/ready` and the relay's circuit, and the check `serve` makes before it starts,
//! which tells a refused connection (bad credentials, an untrusted certificate) from a
//! broker that is merely not there yet.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaConfig;

/// A dedicated, idle client used only to ask the brokers for metadata.
///
/// A failed [`KafkaProbe::check`] replaces the client: after back-to-back outages (a broker
/// stopped, then frozen) a long-lived client kept failing, or answered with no brokers,
/// while a fresh one connected at once (the soak, docs/faults.md).
#[derive(Clone)]
pub struct KafkaProbe {
    client: Arc<Mutex<Arc<BaseConsumer<ProbeContext>>>>,
    config: KafkaConfig,
}

impl std::fmt::Debug for KafkaProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProbe").finish_non_exhaustive()
    }
}

/// Why the brokers could not be used when the service started.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The brokers answered but refused us: a wrong password or mechanism, or a TLS
    /// handshake that failed (an untrusted CA, a host name not in the certificate). Waiting
    /// does not fix these, so the service stops.
    #[error("Kafka brokers {brokers} refused the connection: {reason}")]
    Refused { brokers: String, reason: String },
    /// No metadata within the timeout and no refusal either: the brokers may be down or
    /// still starting. The relay and the consumers retry; readiness reports it.
    #[error("Kafka brokers {brokers} did not answer a metadata request")]
    Unreachable {
        brokers: String,
        #[source]
        source: KafkaError,
    },
}

/// What librdkafka reported about its connections. Its error events carry only a code and
/// are not always delivered (identical errors are suppressed, a failed TLS handshake may
/// arrive as a transport failure); its log lines always say what failed.
#[derive(Default)]
struct ProbeContext {
    /// The last warning or error logged.
    last_failure: Mutex<Option<String>>,
    /// The last logged failure that waiting cannot fix (see [`REFUSALS`]).
    refusal: Mutex<Option<String>>,
}

/// What librdkafka's log lines say of the failures that retrying cannot fix: OpenSSL
/// rejecting the handshake ("SSL routines::certificate verify failed" for an untrusted CA
/// or another host's certificate) and rejected SASL credentials. A handshake cut off by the
/// peer ("SSL handshake failed: Disconnected", also what TLS to a plaintext Kafka listener
/// gets) is not one of them: it reads as unreachable.
const REFUSALS: [&str; 2] = ["SSL routines", "SASL authentication error"];

impl ProbeContext {
    fn take(slot: &Mutex<Option<String>>) -> Option<String> {
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn set(slot: &Mutex<Option<String>>, message: &str) {
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(message.to_owned());
    }
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                Self::set(&self.last_failure, log_message);
                if REFUSALS.iter().any(|marker| log_message.contains(marker)) {
                    Self::set(&self.refusal, log_message);
                }
                tracing::warn!(target: "librdkafka", facility = fac, "{log_message}");
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{log_message}");
            }
        }
    }
}

impl ConsumerContext for ProbeContext {}

impl KafkaProbe {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            client: Arc::new(Mutex::new(Arc::new(Self::client(config)?))),
            config: config.clone(),
        })
    }

    fn client(config: &KafkaConfig) -> Result<BaseConsumer<ProbeContext>, KafkaError> {
        config
            .client_config("health")
            .create_with_context(ProbeContext::default())
    }

    /// The current client (a cheap handle).
    fn current(&self) -> Arc<BaseConsumer<ProbeContext>> {
        Arc::clone(&self.client.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the client with a fresh one; keeps the old one if that cannot be created.
    fn renew(&self) {
        match Self::client(&self.config) {
            Ok(fresh) => {
                let old = std::mem::replace(
                    &mut *self.client.lock().unwrap_or_else(PoisonError::into_inner),
                    Arc::new(fresh),
                );
                crate::close_in_background("probe", old);
            }
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "cannot create a fresh Kafka probe client; keeping the old one"
            ),
        }
    }

    /// The topics of `topics` that cannot take traffic: missing, in error, or with a
    /// partition that has no leader, each with the reason. Empty when all are available.
    pub async fn unavailable_topics(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<Vec<String>, KafkaError> {
        let client = self.current();
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            let metadata = client.fetch_metadata(None, timeout)?;
            let mut unavailable = Vec::new();
            for topic in &topics {
                match metadata.topics().iter().find(|t| t.name() == topic) {
                    None => unavailable.push(format!("{topic}: does not exist")),
                    Some(found) => {
                        if let Some(error) = found.error() {
                            unavailable.push(format!("{topic}: {error:?}"));
                        } else if let Some(partition) =
                            found.partitions().iter().find(|p| p.leader() < 0)
                        {
                            unavailable.push(format!(
                                "{topic}: partition {} has no leader",
                                partition.id()
                            ));
                        }
                    }
                }
            }
            Ok(unavailable)
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
    }

    /// Fetches cluster metadata; returns the number of brokers that answered (at least one:
    /// metadata that lists no broker is a failure too). A failure renews the client.
    pub async fn check(&self, timeout: Duration) -> Result<usize, KafkaError> {
        let client = self.current();
        let checked = tokio::task::spawn_blocking(move || {
            // Error events queue up on this never-polled client: drop them.
            while client.poll(Duration::ZERO).is_some() {}
            match client.fetch_metadata(None, timeout) {
                Ok(metadata) if metadata.brokers().is_empty() => {
                    Err(KafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown))
                }
                Ok(metadata) => Ok(metadata.brokers().len()),
                Err(error) => Err(error),
            }
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled));
        if checked.is_err() {
            self.renew();
        }
        checked
    }

    /// The startup check: metadata within `timeout`, or why not. An authentication or TLS
    /// failure reported while waiting ends the wait, since retrying cannot fix it.
    pub async fn check_at_startup(
        &self,
        brokers: &str,
        timeout: Duration,
    ) -> Result<usize, ProbeError> {
        let client = self.current();
        let brokers = brokers.to_owned();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + timeout;
            loop {
                let mut refused = ProbeContext::take(&client.context().refusal);
                while let Some(event) = client.poll(Duration::ZERO) {
                    if let Err(error) = event
                        && refusal(&error)
                        && refused.is_none()
                    {
                        refused = Some(
                            ProbeContext::take(&client.context().last_failure)
                                .unwrap_or_else(|| error.to_string()),
                        );
                    }
                }
                if let Some(reason) = refused {
                    return Err(ProbeError::Refused { brokers, reason });
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match client.fetch_metadata(None, left.min(STARTUP_ATTEMPT)) {
                    Ok(metadata) => return Ok(metadata.brokers().len()),
                    Err(source) if left <= STARTUP_ATTEMPT => {
                        return Err(match ProbeContext::take(&client.context().refusal) {
                            Some(reason) => ProbeError::Refused { brokers, reason },
                            None => ProbeError::Unreachable { brokers, source },
                        });
                    }
                    Err(_) => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(ProbeError::Unreachable {
                brokers: String::new(),
                source: KafkaError::Canceled,
            })
        })
    }
}

/// How long one metadata request of the startup check waits before the error events are
/// looked at again.
const STARTUP_ATTEMPT: Duration = Duration::from_millis(500);

/// An error that retrying cannot fix: credentials or TLS.
fn refusal(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use secrecy::SecretString;

    use super::*;
    use crate::config::{SaslMechanism, SecurityProtocol};

    #[tokio::test]
    async fn a_failed_check_renews_the_client() {
        let nobody = KafkaConfig {
            brokers: "127.0.0.1:1".to_owned(),
            client_id: "probe-test".to_owned(),
            message_timeout_ms: 1000,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: SaslMechanism::ScramSha512,
            sasl_username: String::new(),
            sasl_password: SecretString::from(""),
            ssl_ca_location: String::new(),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
        };
        let probe = KafkaProbe::new(&nobody).expect("a client");
        let first = Arc::as_ptr(&probe.current());

        probe
            .check(Duration::from_millis(300))
            .await
            .expect_err("nothing listens on port 1");

        assert_ne!(Arc::as_ptr(&probe.current()), first, "a fresh client");
    }
}

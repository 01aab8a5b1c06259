//! Kafka reachability and topic availability for `/health/ready` and the relay's circuit:
//! metadata requests with a timeout.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use std::sync::Arc;

use crate::config::KafkaConfig;

/// A dedicated, idle client used only to ask the brokers for metadata.
#[derive(Clone)]
pub struct KafkaProbe {
    client: Arc<BaseConsumer>,
}

impl std::fmt::Debug for KafkaProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProbe").finish_non_exhaustive()
    }
}

impl KafkaProbe {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", format!("{}-health", config.client_id))
            .create()?;
        Ok(Self {
            client: Arc::new(client),
        })
    }

    /// The topics of `topics` that cannot take traffic: missing, in error, or with a
    /// partition that has no leader, each with the reason. Empty when all are available.
    pub async fn unavailable_topics(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<Vec<String>, KafkaError> {
        let client = Arc::clone(&self.client);
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

    /// Fetches cluster metadata; returns the number of brokers that answered.
    pub async fn check(&self, timeout: Duration) -> Result<usize, KafkaError> {
        let client = Arc::clone(&self.client);
        tokio::task::spawn_blocking(move || {
            client
                .fetch_metadata(None, timeout)
                .map(|metadata| metadata.brokers().len())
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
    }
}

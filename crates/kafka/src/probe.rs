//! Kafka reachability for `/health/ready`: a metadata request with a timeout.

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

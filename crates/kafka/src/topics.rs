//! Topic provisioning: the service creates the topics it produces to and consumes from
//! (dead-letter topics included) when they are missing, so a fresh cluster needs no
//! auto-creation and consumers never subscribe to a topic nobody made.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot create a Kafka admin client")]
    Client(#[source] KafkaError),
    #[error("cannot create Kafka topics")]
    Request(#[source] KafkaError),
    #[error("cannot create Kafka topic {topic}: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates each of `topics` that does not exist, with `partitions` partitions and
/// `replication` replicas; existing topics are left as they are. Returns the topics it
/// created.
pub async fn ensure_topics(
    config: &KafkaConfig,
    topics: &[String],
    partitions: i32,
    replication: i32,
) -> Result<Vec<String>, ProvisionError> {
    let admin: AdminClient<DefaultClientContext> = config
        .admin_config()
        .create()
        .map_err(ProvisionError::Client)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(ProvisionError::Request)?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(ProvisionError::Topic { topic, code }),
        }
    }
    Ok(created)
}

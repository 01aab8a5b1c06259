//! Consumer-group lag as the brokers see it: each group's committed offsets against the
//! end offsets of its topics. Unlike the lag a running consumer reports about itself
//! ([`crate::ConsumerStatus`]), this exists while every member of a group is down, which
//! is exactly when it matters.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

/// One partition's lag for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// End offset minus the committed offset; with nothing committed, every retained
    /// message counts (the groups start from the earliest offset).
    pub lag: i64,
}

/// A consumer group and the topics it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTopics {
    pub group: String,
    pub topics: Vec<String>,
}

/// Reads committed offsets without joining the groups: one idle client per group, never
/// subscribed, so reading never triggers a rebalance.
#[derive(Clone)]
pub struct LagReader {
    groups: Arc<Vec<(GroupTopics, BaseConsumer)>>,
}

impl std::fmt::Debug for LagReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagReader").finish_non_exhaustive()
    }
}

impl LagReader {
    pub fn new(config: &KafkaConfig, groups: Vec<GroupTopics>) -> Result<Self, KafkaError> {
        let groups = groups
            .into_iter()
            .map(|group| {
                let mut client = config.consumer_config(&group.group);
                client.set("client.id", format!("{}-lag", config.client_id));
                // Never stores or commits anything: it only reads the group's offsets.
                client.set("enable.auto.commit", "false");
                client.remove("statistics.interval.ms");
                let consumer: BaseConsumer = client.create()?;
                Ok((group, consumer))
            })
            .collect::<Result<Vec<_>, KafkaError>>()?;
        Ok(Self {
            groups: Arc::new(groups),
        })
    }

    /// Every partition of every group's topics. A topic that does not exist yet has no
    /// partitions and no lag.
    pub async fn read(&self, timeout: Duration) -> Result<Vec<PartitionLag>, KafkaError> {
        let groups = Arc::clone(&self.groups);
        tokio::task::spawn_blocking(move || {
            let mut lags = Vec::new();
            for (group, consumer) in groups.iter() {
                lags.extend(read_group(group, consumer, timeout)?);
            }
            Ok(lags)
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
    }
}

fn read_group(
    group: &GroupTopics,
    consumer: &BaseConsumer,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, KafkaError> {
    let mut partitions = TopicPartitionList::new();
    for topic in &group.topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for found in metadata.topics() {
            if found.error().is_some() {
                continue;
            }
            for partition in found.partitions() {
                partitions.add_partition(found.name(), partition.id());
            }
        }
    }
    if partitions.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(partitions, timeout)?;
    let mut lags = Vec::with_capacity(committed.count());
    for element in committed.elements() {
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        let from = match element.offset() {
            Offset::Offset(offset) => offset.max(low),
            _ => low,
        };
        lags.push(PartitionLag {
            group: group.group.clone(),
            topic: element.topic().to_owned(),
            partition: element.partition(),
            lag: (high - from).max(0),
        });
    }
    Ok(lags)
}

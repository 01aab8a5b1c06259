//! The Kafka side of the service's start: the brokers checked before anything runs, the
//! consumer groups and the topics they read, and the topics created when missing.

use std::time::Duration;

use anyhow::Context as _;
use consumers::Consumer;
use event_bindings::EventBindings;
use kafka::topics::Provisioned;
use kafka::{GroupTopics, KafkaProbe, ProbeError};

use crate::config::{Settings, TopicsConfig};

/// Asks the brokers for metadata before anything runs. Refused credentials or an untrusted
/// certificate stop the service here, with a message naming Kafka and librdkafka's reason.
/// Brokers that do not answer at all only warn: the relay and the consumers retry and
/// readiness reports Kafka down, so a broker restart does not stop a rollout.
pub(crate) async fn check_kafka(settings: &Settings) -> anyhow::Result<()> {
    let probe = KafkaProbe::new(&settings.kafka)
        .context("cannot create a Kafka client from the [kafka] settings")?;
    let timeout = Duration::from_millis(settings.health.check_timeout_ms);
    match probe
        .check_at_startup(&settings.kafka.brokers, timeout)
        .await
    {
        Ok(_) => Ok(()),
        Err(error @ ProbeError::Refused { .. }) => Err(error).context(
            "cannot use Kafka (check kafka.security_protocol, kafka.sasl_username, \
             kafka.sasl_password and kafka.ssl_ca_location)",
        ),
        Err(error @ ProbeError::Unreachable { .. }) => {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "Kafka is not reachable yet; the relay and the consumers keep trying"
            );
            Ok(())
        }
    }
}

/// The consumer group of `consumer` (`consumer.group_id` and its suffix) and the topics
/// its event types are bound to.
pub fn consumer_group(
    settings: &Settings,
    bindings: &EventBindings,
    consumer: Consumer,
) -> GroupTopics {
    GroupTopics {
        group: format!("{}{}", settings.consumer.group_id, consumer.group_suffix()),
        topics: consumer
            .event_types()
            .iter()
            .map(|t| bindings.destination(*t).to_owned())
            .collect(),
    }
}

/// Every consumer's group and topics ([`Consumer::ALL`]).
pub fn consumer_groups(settings: &Settings, bindings: &EventBindings) -> Vec<GroupTopics> {
    Consumer::ALL
        .into_iter()
        .map(|consumer| consumer_group(settings, bindings, consumer))
        .collect()
}

/// The topics the consumers read, and their dead-letter topics.
pub(crate) fn consumed_topics(settings: &Settings, groups: &[GroupTopics]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| g.topics.iter())
        .flat_map(|topic| {
            [
                topic.clone(),
                format!("{topic}{}", settings.consumer.dead_letter_suffix),
            ]
        })
        .collect()
}

/// Creates the missing topics this service uses (every binding's topic, and the
/// dead-letter topics of the consumed ones), so that nothing depends on the brokers'
/// auto-creation; logs one warning per existing topic that differs from `[topics]`.
/// Returns what it did and found.
pub async fn provision_topics(
    settings: &Settings,
    bindings: &EventBindings,
) -> anyhow::Result<Provisioned> {
    let TopicsConfig {
        provision: _,
        partitions,
        replication_factor,
        retention_ms,
    } = settings.topics;
    let mut topics: Vec<String> = bindings.topics().into_iter().map(str::to_owned).collect();
    topics.extend(consumed_topics(
        settings,
        &consumer_groups(settings, bindings),
    ));
    topics.sort();
    topics.dedup();
    let provisioned =
        kafka::topics::ensure_topics(&settings.kafka, &topics, &settings.topics.spec())
            .await
            .context("cannot provision the Kafka topics (topics.provision)")?;
    if !provisioned.created.is_empty() {
        tracing::info!(
            created = ?provisioned.created,
            partitions,
            replication_factor,
            retention_ms,
            "created missing Kafka topics"
        );
    }
    for mismatch in &provisioned.mismatches {
        tracing::warn!(
            topic = %mismatch.topic,
            "{mismatch} (the topic is left as it is)"
        );
    }
    Ok(provisioned)
}

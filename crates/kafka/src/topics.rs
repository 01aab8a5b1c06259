//! Topic provisioning: the service creates the topics it produces to and consumes from
//! (dead-letter topics included) when they are missing, so a fresh cluster needs no
//! auto-creation and consumers never subscribe to a topic nobody made.
//!
//! A topic that already exists is never changed (data is the operators'), but it is
//! compared with what the configuration says: partitions, replication factor and the
//! configured topic configs (`retention.ms`). [`Provisioned::mismatches`] names each
//! difference, for the caller to log.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;

const TIMEOUT: Duration = Duration::from_secs(10);
/// How often, and how far apart, the layout of a topic that the metadata shows without
/// partitions (just created: not propagated yet) is asked for again.
const METADATA_ATTEMPTS: u32 = 20;
const METADATA_RETRY_PAUSE: Duration = Duration::from_millis(250);

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
    #[error("cannot describe the existing Kafka topics")]
    Describe(#[source] KafkaError),
    #[error("cannot describe Kafka topic {topic}: {code}")]
    DescribeTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("the topic check stopped before it finished")]
    Interrupted,
}

/// What a topic should be: its partitions, replicas and topic-level configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configs set on creation and checked on existing topics, e.g.
    /// `retention.ms`.
    pub configs: BTreeMap<String, String>,
}

/// The outcome of [`ensure_topics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// The topics that were missing and are now created.
    pub created: Vec<String>,
    /// The existing topics that differ from the spec, one entry per topic.
    pub mismatches: Vec<TopicMismatch>,
}

/// How one existing topic differs from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMismatch {
    pub topic: String,
    pub differences: Vec<Difference>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Partitions {
        actual: i32,
        configured: i32,
    },
    ReplicationFactor {
        actual: i32,
        configured: i32,
    },
    /// A topic config with another value; `actual` is `None` where the broker reported none.
    Config {
        name: String,
        actual: Option<String>,
        configured: String,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Partitions { actual, configured } => {
                write!(f, "{actual} partitions, config says {configured}")
            }
            Difference::ReplicationFactor { actual, configured } => {
                write!(f, "replication factor {actual}, config says {configured}")
            }
            Difference::Config {
                name,
                actual,
                configured,
            } => write!(
                f,
                "{name} {}, config says {configured}",
                actual.as_deref().unwrap_or("unset")
            ),
        }
    }
}

/// `topic wallet-events has 3 partitions, config says 6; retention.ms 604800000, config
/// says 86400000`.
impl fmt::Display for TopicMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topic {} has ", self.topic)?;
        for (i, difference) in self.differences.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{difference}")?;
        }
        Ok(())
    }
}

/// Creates each of `topics` that does not exist as `spec` says; compares the existing ones
/// with `spec` and reports how they differ, changing nothing.
pub async fn ensure_topics(
    config: &KafkaConfig,
    topics: &[String],
    spec: &TopicSpec,
) -> Result<Provisioned, ProvisionError> {
    let admin: AdminClient<DefaultClientContext> = config
        .admin_config()
        .create()
        .map_err(ProvisionError::Client)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| {
            spec.configs.iter().fold(
                NewTopic::new(
                    name,
                    spec.partitions,
                    TopicReplication::Fixed(spec.replication_factor),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(ProvisionError::Request)?;
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for result in results {
        match result {
            Ok(topic) => created.push(topic),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(topic),
            Err((topic, code)) => return Err(ProvisionError::Topic { topic, code }),
        }
    }
    let mismatches = compare(admin, existing, spec).await?;
    Ok(Provisioned {
        created,
        mismatches,
    })
}

/// The differences of the `existing` topics from `spec`.
async fn compare(
    admin: AdminClient<DefaultClientContext>,
    existing: Vec<String>,
    spec: &TopicSpec,
) -> Result<Vec<TopicMismatch>, ProvisionError> {
    if existing.is_empty() {
        return Ok(Vec::new());
    }
    let mut configs: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    if !spec.configs.is_empty() {
        let resources: Vec<ResourceSpecifier<'_>> = existing
            .iter()
            .map(|topic| ResourceSpecifier::Topic(topic))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
        // A topic's configuration lists every entry, defaults included, once the broker
        // knows the topic; one created a moment ago can come back without them: ask again
        // (briefly) rather than report its settings as unset.
        let mut described = Vec::new();
        for attempt in 0..METADATA_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(METADATA_RETRY_PAUSE).await;
            }
            described = admin
                .describe_configs(&resources, &options)
                .await
                .map_err(ProvisionError::Describe)?;
            let settled = described.iter().all(|result| {
                result.as_ref().is_ok_and(|resource| {
                    spec.configs.keys().all(|name| resource.get(name).is_some())
                })
            });
            if settled {
                break;
            }
        }
        for (topic, result) in existing.iter().zip(described) {
            let resource = result.map_err(|code| ProvisionError::DescribeTopic {
                topic: topic.clone(),
                code,
            })?;
            let values = spec
                .configs
                .keys()
                .map(|name| {
                    let value = resource.get(name).and_then(|entry| entry.value.clone());
                    (name.clone(), value)
                })
                .collect();
            configs.insert(topic.clone(), values);
        }
    }
    // Partitions and replicas come from the cluster metadata, a blocking call (the admin
    // client is dropped there too: dropping it joins its thread).
    let topics = existing.clone();
    let layout = tokio::task::spawn_blocking(move || {
        topics
            .iter()
            .map(|topic| {
                // A topic created a moment ago can be listed before its partitions are in
                // the metadata the broker answers with: ask again (briefly) rather than
                // report a topic of 0 partitions.
                let mut layout = (0, 0);
                for attempt in 0..METADATA_ATTEMPTS {
                    if attempt > 0 {
                        std::thread::sleep(METADATA_RETRY_PAUSE);
                    }
                    let metadata = admin
                        .inner()
                        .fetch_metadata(Some(topic), TIMEOUT)
                        .map_err(ProvisionError::Describe)?;
                    let found = metadata.topics().iter().find(|t| t.name() == topic);
                    layout = found.map_or((0, 0), |t| {
                        let replicas = t.partitions().first().map_or(0, |p| p.replicas().len());
                        (t.partitions().len(), replicas)
                    });
                    if layout.0 > 0 {
                        break;
                    }
                }
                let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
                Ok((count(layout.0), count(layout.1)))
            })
            .collect::<Result<Vec<_>, ProvisionError>>()
    })
    .await
    .map_err(|_| ProvisionError::Interrupted)??;
    let mut mismatches = Vec::new();
    for (topic, (partitions, replicas)) in existing.into_iter().zip(layout) {
        let mut differences = Vec::new();
        if partitions != spec.partitions {
            differences.push(Difference::Partitions {
                actual: partitions,
                configured: spec.partitions,
            });
        }
        if replicas != spec.replication_factor {
            differences.push(Difference::ReplicationFactor {
                actual: replicas,
                configured: spec.replication_factor,
            });
        }
        let actual_configs = configs.remove(&topic).unwrap_or_default();
        for (name, configured) in &spec.configs {
            let actual = actual_configs.get(name).cloned().flatten();
            if actual.as_deref() != Some(configured.as_str()) {
                differences.push(Difference::Config {
                    name: name.clone(),
                    actual,
                    configured: configured.clone(),
                });
            }
        }
        if !differences.is_empty() {
            mismatches.push(TopicMismatch { topic, differences });
        }
    }
    Ok(mismatches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_names_each_difference_in_one_line() {
        let mismatch = TopicMismatch {
            topic: "wallet-events".to_owned(),
            differences: vec![
                Difference::Partitions {
                    actual: 3,
                    configured: 6,
                },
                Difference::ReplicationFactor {
                    actual: 1,
                    configured: 3,
                },
                Difference::Config {
                    name: "retention.ms".to_owned(),
                    actual: Some("604800000".to_owned()),
                    configured: "86400000".to_owned(),
                },
            ],
        };
        assert_eq!(
            mismatch.to_string(),
            "topic wallet-events has 3 partitions, config says 6; replication factor 1, \
             config says 3; retention.ms 604800000, config says 86400000"
        );
    }
}

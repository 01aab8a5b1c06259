//! The test's own view of Kafka: creating its topics and reading what the service
//! published, with plain rdkafka clients.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use uuid::Uuid;

use crate::KAFKA_WAIT;

pub async fn create_topics(brokers: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, 3, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new_topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("Kafka reachable (run scripts/test, or scripts/services up)");
    for result in results {
        result.expect("topic created");
    }
}

/// Makes `topic` refuse record batches larger than `bytes` (its `max.message.bytes`), and
/// returns once the broker reports the new limit, so a record produced after it meets it.
pub async fn limit_message_size(brokers: &str, topic: &str, bytes: usize) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let size = bytes.to_string();
    let config = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("max.message.bytes", &size);
    let results = admin
        .alter_configs(&[config], &AdminOptions::new())
        .await
        .expect("alter configs");
    for result in results {
        result.expect("topic config changed");
    }
    crate::eventually(
        "the broker to report the topic's new max.message.bytes",
        || async {
            let described = admin
                .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
                .await
                .expect("describe configs");
            let resource = described.into_iter().next()?.ok()?;
            let value = resource.get("max.message.bytes")?.value.as_deref()?;
            (value == size).then_some(())
        },
    )
    .await;
}

/// Reads `count` records from `topic` with a fresh consumer group, from the beginning.
pub async fn read_records(brokers: &str, topic: &str, count: usize) -> Vec<OwnedMessage> {
    let consumer = reader(brokers, topic);
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + KAFKA_WAIT;
    while records.len() < count {
        let received = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {count} records arrived on {topic}",
                    records.len()
                )
            });
        if let Some(message) = received_or_retry(received) {
            let message = message.detach();
            crate::contracts::check_published(&message);
            records.push(message);
        }
    }
    records
}

/// The message, or `None` for an error a fresh reader sees while a new topic's metadata
/// spreads through the broker (then it just asks again); any other error fails the test.
fn received_or_retry(
    received: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>,
) -> Option<rdkafka::message::BorrowedMessage<'_>> {
    match received {
        Ok(message) => Some(message),
        Err(error)
            if error.rdkafka_error_code()
                == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) =>
        {
            None
        }
        Err(error) => panic!("receive: {error}"),
    }
}

/// Reads at least `min` records from `topic`, then whatever else arrives until it has
/// been quiet for two seconds (for topics that may hold duplicates).
pub async fn read_all_records(brokers: &str, topic: &str, min: usize) -> Vec<OwnedMessage> {
    let consumer = reader(brokers, topic);
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + KAFKA_WAIT;
    loop {
        let wait = if records.len() < min {
            deadline
        } else {
            tokio::time::Instant::now() + Duration::from_secs(2)
        };
        match tokio::time::timeout_at(wait, consumer.recv()).await {
            Ok(received) => {
                if let Some(message) = received_or_retry(received) {
                    let message = message.detach();
                    crate::contracts::check_published(&message);
                    records.push(message);
                }
            }
            Err(_) if records.len() >= min => return records,
            Err(_) => panic!("only {} of {min} records arrived on {topic}", records.len()),
        }
    }
}

/// Header value of a Kafka record, as text.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A consumer of `topic` in a fresh group, from the beginning, that commits nothing. It
/// closes on a thread of its own when the test drops it: closing a consumer that is still
/// joining its group can block for good (rust-rdkafka issue 509), and the test must not.
fn reader(brokers: &str, topic: &str) -> kafka::Detached<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-reader-{}", Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("test consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    kafka::Detached::new("test-reader", consumer)
}

/// A member of consumer group `group` on `topic` that runs `handler` through the service's
/// own consumer runtime until `shutdown`, with `close_timeout` for its final commit and
/// close: for tests that make a group rebalance.
pub fn group_member<H: kafka::EventHandler + 'static>(
    kafka: &kafka::KafkaConfig,
    group: &str,
    topic: &str,
    trusted_sources: &[String],
    handler: H,
    close_timeout: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<Result<(), kafka::consumer::ConsumerError>> {
    let (kafka, group, topic) = (kafka.clone(), group.to_owned(), topic.to_owned());
    let admission = kafka::Admission::new(trusted_sources.to_vec());
    tokio::spawn(async move {
        let topics = [topic.as_str()];
        let options = kafka::ConsumerOptions {
            group_id: &group,
            topics: &topics,
            dead_letter_suffix: ".dlq",
            max_payload_bytes: 262_144,
            rejoin_timeout: Duration::from_secs(60),
            admission: &admission,
            batch_max: std::num::NonZeroUsize::new(16).unwrap_or(std::num::NonZeroUsize::MIN),
            close_timeout,
        };
        let status = kafka::ConsumerStatus::new();
        kafka::run_consumer(&kafka, options, handler, status, shutdown).await
    })
}

/// Sends `event` in binary mode (`ce_*` headers) to `topic` under `key`, as a producer of
/// ours or anyone with write access to the topic would; waits for the broker's ack.
pub async fn send_event(brokers: &str, topic: &str, key: &str, event: cloudevents::Event) {
    use cloudevents::binding::rdkafka::{FutureRecordExt, MessageRecord};
    let producer: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    let message = MessageRecord::from_event(event).expect("record");
    producer
        .send(
            rdkafka::producer::FutureRecord::to(topic)
                .key(key)
                .message_record(&message),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
}

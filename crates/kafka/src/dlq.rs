//! Dead-letter topics for operators (`wallet-hub dlq ...`): read what landed there, and
//! send chosen records back to the topic they came from, unchanged (same key, value and
//! headers, so the same CloudEvent id: consumers that did apply it dedupe).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::consumer::dlq_headers;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One dead-lettered record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// All headers, the original ones and the `dlq_*` ones, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl DeadLetter {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("Kafka request failed")]
    Kafka(#[from] KafkaError),
    #[error("record {partition}:{offset} has no {} header", dlq_headers::TOPIC)]
    NoOriginalTopic { partition: i32, offset: i64 },
}

/// A consumer that reads dead-letter topics by assignment and never commits.
fn reader(config: &KafkaConfig) -> Result<BaseConsumer, KafkaError> {
    config
        .client_config("dlq-reader")
        .set("group.id", format!("{}-dlq-reader", config.client_id))
        .set("enable.auto.commit", "false")
        .create()
}

/// Reads every record of `dlq_topic` that exists now (up to the high watermarks).
pub fn list(config: &KafkaConfig, dlq_topic: &str) -> Result<Vec<DeadLetter>, DlqError> {
    let consumer = reader(config)?;
    let metadata = consumer.fetch_metadata(Some(dlq_topic), TIMEOUT)?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for topic in metadata.topics() {
        for partition in topic.partitions() {
            let (low, high) = consumer.fetch_watermarks(dlq_topic, partition.id(), TIMEOUT)?;
            if high > low {
                assignment.add_partition_offset(dlq_topic, partition.id(), Offset::Offset(low))?;
                ends.push((partition.id(), high));
            }
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&assignment)?;
    let wanted: i64 = ends.iter().map(|(_, high)| *high).sum::<i64>()
        - assignment
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum::<i64>();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while i64::try_from(records.len()).unwrap_or(i64::MAX) < wanted
        && std::time::Instant::now() < deadline
    {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        records.push(dead_letter(&message?));
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

/// One page of a dead-letter topic: its records in (partition, offset) order, and where the
/// next page starts (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqPage {
    pub records: Vec<DeadLetter>,
    pub next: Option<(i32, i64)>,
}

/// At most `limit` records of `dlq_topic` in (partition, offset) order, from `from`
/// (`partition:offset`, as [`DlqPage::next`] gave it; the start of the topic when `None`),
/// up to the high watermarks of now. Reads one partition at a time, no further than needed.
pub fn page(
    config: &KafkaConfig,
    dlq_topic: &str,
    from: Option<(i32, i64)>,
    limit: usize,
) -> Result<DlqPage, DlqError> {
    let consumer = reader(config)?;
    let metadata = consumer.fetch_metadata(Some(dlq_topic), TIMEOUT)?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|topic| topic.partitions().iter().map(|p| p.id()))
        .collect();
    partitions.sort_unstable();
    let (first_partition, first_offset) = from.unwrap_or((i32::MIN, 0));
    let mut records = Vec::new();
    for partition in partitions.into_iter().filter(|&p| p >= first_partition) {
        let (low, high) = consumer.fetch_watermarks(dlq_topic, partition, TIMEOUT)?;
        let start = if partition == first_partition {
            low.max(first_offset)
        } else {
            low
        };
        if start >= high {
            continue;
        }
        if records.len() == limit {
            return Ok(DlqPage {
                records,
                next: Some((partition, start)),
            });
        }
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(dlq_topic, partition, Offset::Offset(start))?;
        consumer.assign(&assignment)?;
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut next = start;
        while next < high && records.len() < limit && std::time::Instant::now() < deadline {
            let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let message = message?;
            // Only what this assignment asked for (a record fetched for an earlier
            // partition may still be queued).
            if message.partition() != partition || message.offset() < next {
                continue;
            }
            let record = dead_letter(&message);
            next = record.offset + 1;
            records.push(record);
        }
        if next < high {
            return Ok(DlqPage {
                records,
                next: Some((partition, next)),
            });
        }
    }
    Ok(DlqPage {
        records,
        next: None,
    })
}

fn dead_letter(message: &impl Message) -> DeadLetter {
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    DeadLetter {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// Sends `records` back to their original topics without the `dlq_*` headers, in order,
/// and waits for each acknowledgement. Returns how many were sent.
pub async fn redrive(
    config: &KafkaConfig,
    records: &[DeadLetter],
    mut progress: impl FnMut(u64),
) -> Result<u64, DlqError> {
    let producer: FutureProducer = config.producer_config().create()?;
    let mut sent = 0;
    for record in records {
        let topic = record
            .header(dlq_headers::TOPIC)
            .ok_or(DlqError::NoOriginalTopic {
                partition: record.partition,
                offset: record.offset,
            })?
            .to_owned();
        let mut headers = OwnedHeaders::new();
        for (key, value) in record
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with("dlq_"))
        {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            out = out.payload(payload.as_slice());
        }
        producer
            .send(out, TIMEOUT)
            .await
            .map_err(|(error, _)| DlqError::Kafka(error))?;
        sent += 1;
        progress(sent);
    }
    Ok(sent)
}

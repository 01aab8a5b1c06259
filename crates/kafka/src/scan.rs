//! Reading whole topics once, for `wallet-hub audit`: every record from the beginning (or
//! from a point in time) up to the end offsets taken when the scan starts, reduced to what
//! an audit compares (where the record is, its key, its CloudEvent id).
//!
//! The reader assigns partitions itself and never commits offsets, so it leaves no trace in
//! any consumer group. It runs on a blocking thread and hands records over in batches
//! through a bounded channel, so a large topic is never held in memory at once.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::config::KafkaConfig;

/// Metadata, watermark and offset requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the scan waits for the next record before it gives up on the rest.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Records per batch handed to the caller.
pub const BATCH: usize = 5_000;

/// One record, as an audit sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The key as text (lossy UTF-8); `None` for a record without key.
    pub key: Option<String>,
    /// The `ce_id` header (the CloudEvent id in binary content mode), if present.
    pub ce_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("Kafka request failed")]
    Kafka(#[from] KafkaError),
    #[error(
        "no record arrived for {seconds} s while {partitions} partition(s) (of {topic}, ...) \
         had not reached their end offsets",
        seconds = STALL_TIMEOUT.as_secs()
    )]
    Stalled {
        topic: String,
        partitions: usize,
        /// The last error the reader saw (a lost connection, a topic it may not read).
        #[source]
        last_error: Option<KafkaError>,
    },
    #[error("the topic reader stopped unexpectedly")]
    ReaderGone,
}

/// A running scan: batches of records until every partition reached its end offset.
#[derive(Debug)]
pub struct TopicScan {
    /// How many records the scan reads (the offsets between start and end positions).
    pub total: u64,
    batches: mpsc::Receiver<Result<Vec<ScannedRecord>, ScanError>>,
}

impl TopicScan {
    /// Takes each partition's end offset now and starts reading `topics` from the beginning,
    /// or, with `since`, from the first record written at or after that time (by record
    /// timestamp). A topic that does not exist is read as empty.
    pub async fn start(
        config: &KafkaConfig,
        topics: &[&str],
        since: Option<DateTime<Utc>>,
    ) -> Result<Self, ScanError> {
        let config = config.clone();
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let (consumer, ends, total) =
            tokio::task::spawn_blocking(move || assign(&config, &topics, since))
                .await
                .map_err(|_| ScanError::ReaderGone)??;
        let (sender, batches) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || read(&consumer, ends, &sender));
        Ok(Self { total, batches })
    }

    /// The next batch; `None` once everything up to the end offsets was read.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<ScannedRecord>, ScanError>> {
        self.batches.recv().await
    }
}

/// End offset (exclusive) still to reach, per (topic, partition).
type Ends = HashMap<(String, i32), i64>;

fn assign(
    config: &KafkaConfig,
    topics: &[String],
    since: Option<DateTime<Utc>>,
) -> Result<(BaseConsumer, Ends, u64), ScanError> {
    let consumer: BaseConsumer = config
        .client_config("audit")
        // Required by librdkafka; nothing is ever committed under it.
        .set("group.id", format!("{}-audit", config.client_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        // Records that retention deletes while the scan runs are skipped, not waited for.
        .set("auto.offset.reset", "earliest")
        .create()?;
    let mut starts = TopicPartitionList::new();
    let mut ends = Ends::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        for found in metadata.topics() {
            if found.error().is_some() {
                // Unknown topic (or not visible yet): nothing was published to it.
                continue;
            }
            for partition in found.partitions() {
                let (low, high) =
                    consumer.fetch_watermarks(topic, partition.id(), REQUEST_TIMEOUT)?;
                if high > low {
                    starts.add_partition_offset(topic, partition.id(), Offset::Offset(low))?;
                    ends.insert((topic.clone(), partition.id()), high);
                }
            }
        }
    }
    if let Some(since) = since {
        starts = from_time(&consumer, &starts, since)?;
        ends.retain(|(topic, partition), _| starts.find_partition(topic, *partition).is_some());
    }
    let total = starts
        .elements()
        .iter()
        .map(|element| {
            let end = ends
                .get(&(element.topic().to_owned(), element.partition()))
                .copied()
                .unwrap_or(0);
            match element.offset() {
                Offset::Offset(start) => end.saturating_sub(start),
                _ => 0,
            }
        })
        .sum::<i64>();
    if !ends.is_empty() {
        consumer.assign(&starts)?;
    }
    Ok((consumer, ends, u64::try_from(total).unwrap_or(0)))
}

/// The start offsets moved forward to the first record at or after `since`; partitions
/// with no such record are left out.
fn from_time(
    consumer: &BaseConsumer,
    starts: &TopicPartitionList,
    since: DateTime<Utc>,
) -> Result<TopicPartitionList, ScanError> {
    let mut query = TopicPartitionList::new();
    for element in starts.elements() {
        query.add_partition_offset(
            element.topic(),
            element.partition(),
            Offset::Offset(since.timestamp_millis()),
        )?;
    }
    let found = consumer.offsets_for_times(query, REQUEST_TIMEOUT)?;
    let mut moved = TopicPartitionList::new();
    for element in found.elements() {
        if let Offset::Offset(offset) = element.offset() {
            moved.add_partition_offset(
                element.topic(),
                element.partition(),
                Offset::Offset(offset),
            )?;
        }
    }
    Ok(moved)
}

fn read(
    consumer: &BaseConsumer,
    mut ends: Ends,
    sender: &mpsc::Sender<Result<Vec<ScannedRecord>, ScanError>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_progress = std::time::Instant::now();
    let mut last_error = None;
    while !ends.is_empty() {
        if last_progress.elapsed() > STALL_TIMEOUT {
            let stalled = ScanError::Stalled {
                topic: ends
                    .keys()
                    .next()
                    .map(|(t, _)| t.clone())
                    .unwrap_or_default(),
                partitions: ends.len(),
                last_error,
            };
            let _ = sender.blocking_send(Err(stalled));
            return;
        }
        let message = match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Ok(message)) => message,
            Some(Err(error))
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) =>
            {
                continue;
            }
            // librdkafka reports connection trouble here and goes on retrying by itself (a
            // broker that just restarted): only a lack of progress ends the scan.
            Some(Err(error)) => {
                last_error = Some(error);
                continue;
            }
        };
        last_progress = std::time::Instant::now();
        let key = (message.topic().to_owned(), message.partition());
        let Some(end) = ends.get(&key).copied() else {
            continue;
        };
        if message.offset() >= end {
            continue;
        }
        let ce_id = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|header| header.key == "ce_id")
                .and_then(|header| header.value)
                .map(|value| String::from_utf8_lossy(value).into_owned())
        });
        batch.push(ScannedRecord {
            topic: key.0.clone(),
            partition: key.1,
            offset: message.offset(),
            key: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            ce_id,
        });
        if message.offset() + 1 >= end {
            ends.remove(&key);
        }
        if batch.len() >= BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if sender.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = sender.blocking_send(Ok(batch));
    }
}

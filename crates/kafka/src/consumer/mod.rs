//! The consumer runtime: every Kafka consumer of Wallet Hub runs through [`run_consumer`].
//!
//! Each poll takes the records that are ready (never waiting for more), up to
//! `batch_max`, and handles them partition by partition. For each partition's records, in
//! partition order:
//! 1. decode the CloudEvent (binary or structured mode) and admit it (trusted source,
//!    known type and version, data valid against its schema: see [`admission`]);
//! 2. open a consumer span that continues the producer's trace (`traceparent`, falling back
//!    to the `ce_traceparent` extension);
//! 3. hand the admitted events to the handler as one batch ([`EventHandler::handle_batch`],
//!    one transaction); if the batch fails (after one retry when the error is transient),
//!    call the handler on each event alone;
//! 4. for an event alone: a transient error is retried with exponential backoff and jitter on
//!    the same message (the partition waits, nothing is skipped, nothing is dead-lettered:
//!    a database or broker outage pauses consumption, shown as `paused` in
//!    [`ConsumerStatus`] and the `consumer_state` gauge, until it ends);
//! 5. store the partition's offset only once the handler returned, i.e. after its effects
//!    committed.
//!
//! librdkafka commits stored offsets in the background, on rebalance and at shutdown, so a
//! crash between the effect and the commit redelivers the message: handlers must be
//! idempotent (the `consumers` crate dedupes by event id in the effect's transaction).

pub mod admission;
mod runtime;

use std::error::Error as StdError;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use cloudevents::Event;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use crate::close::Detached;
use crate::config::KafkaConfig;
use crate::status::{ConsumerStatus, RuntimeContext};
pub use admission::Admission;
use runtime::Runtime;

type BoxError = Box<dyn StdError + Send + Sync>;

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: the database is unreachable, a serialization failure, a timeout.
    #[error("transient: {0}")]
    Transient(#[source] BoxError),
    /// Retrying cannot help: the event breaks a business rule or cannot be read.
    #[error("permanent: {0}")]
    Permanent(#[source] BoxError),
}

/// What a handler did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect was applied (and committed).
    Applied,
    /// The event had already been applied; nothing was done.
    Duplicate,
}

/// A decoded message with where it came from.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    pub event: Event,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One consumer's reaction to events.
pub trait EventHandler: Send + Sync {
    /// Stable name: the dedupe scope of its inbox and its label in logs.
    fn name(&self) -> &'static str;

    /// Applies the event. Must be idempotent: the same event can arrive more than once.
    fn handle(
        &self,
        event: &ReceivedEvent,
    ) -> impl Future<Output = Result<Outcome, HandlerError>> + Send;

    /// Applies `events`, admitted records of one partition in partition order, returning one
    /// outcome per event in the same order (a copy of an earlier event of the batch is a
    /// `Duplicate`). A handler that can should apply them all in one transaction, so an
    /// error means none took effect. On an error the runtime retries the batch once if it
    /// is transient, then hands the events to [`handle`](Self::handle) one at a time, so
    /// one bad event never holds back its neighbours.
    ///
    /// The default calls `handle` for each event in turn (one transaction each).
    fn handle_batch(
        &self,
        events: &[ReceivedEvent],
    ) -> impl Future<Output = Result<Vec<Outcome>, HandlerError>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                outcomes.push(self.handle(event).await?);
            }
            Ok(outcomes)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("cannot create Kafka consumer for group {group}")]
    Create {
        group: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot subscribe group {group} to {topics:?}")]
    Subscribe {
        group: String,
        topics: Vec<String>,
        #[source]
        source: KafkaError,
    },
}

/// Where a consumer reads and what it does with what it cannot apply.
#[derive(Debug, Clone)]
pub struct ConsumerOptions<'a> {
    pub group_id: &'a str,
    pub topics: &'a [&'a str],
    /// Permanently failing messages go to `<topic><dead_letter_suffix>`.
    pub dead_letter_suffix: &'a str,
    /// Larger payloads are dead-lettered unread (class `oversized`).
    pub max_payload_bytes: usize,
    /// A consumer that has been without a group assignment this long (after a broker
    /// outage librdkafka can stay stuck rejoining its group) is replaced by a new client.
    pub rejoin_timeout: Duration,
    /// What an event must be before the handler sees it; the rest is dead-lettered.
    pub admission: &'a Admission,
    /// The most records one poll takes: whatever is ready (no waiting), up to this many,
    /// is handed to the handler as one batch per partition. 1: one record at a time.
    pub batch_max: NonZeroUsize,
    /// At shutdown, the final offset commit and the client's close (both on a thread of
    /// their own) get this long; past it the consumer returns without them, and the
    /// records since the last commit are redelivered to the group (handlers are idempotent).
    pub close_timeout: Duration,
}

/// Why one client's consumption ended.
enum Ended {
    /// Shutdown: commit and stop.
    Shutdown,
    /// The client has not rejoined its group within the rejoin timeout: replace it.
    Stalled,
}

/// Dead-letter headers added to the original ones (incoming headers with the `dlq_`
/// prefix are dropped first, so these are the only ones).
pub mod dlq_headers {
    pub const TOPIC: &str = "dlq_original_topic";
    pub const PARTITION: &str = "dlq_original_partition";
    pub const OFFSET: &str = "dlq_original_offset";
    pub const CONSUMER: &str = "dlq_consumer";
    pub const ERROR_CLASS: &str = "dlq_error_class";
    pub const ERROR_MESSAGE: &str = "dlq_error_message";
    pub const TIME: &str = "dlq_time";
}

/// Consumes `options.topics` in `options.group_id` with `handler` until `shutdown` is
/// cancelled, then commits the stored offsets and returns. A client that stays without a
/// group assignment longer than `options.rejoin_timeout` is replaced by a new one (its
/// uncommitted offsets are redelivered: handlers are idempotent).
pub async fn run_consumer<H: EventHandler>(
    config: &KafkaConfig,
    options: ConsumerOptions<'_>,
    handler: H,
    status: Arc<ConsumerStatus>,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    let group_id = options.group_id;
    let dead_letters: FutureProducer =
        config
            .producer_config()
            .create()
            .map_err(|source| ConsumerError::Create {
                group: group_id.to_owned(),
                source,
            })?;
    let dead_letters = Detached::new("dead-letter-producer", dead_letters);
    status.set_running(true);
    status.export(handler.name());
    let runtime = Runtime {
        handler: &handler,
        dead_letters: &dead_letters,
        dead_letter_suffix: options.dead_letter_suffix,
        max_payload_bytes: options.max_payload_bytes,
        admission: options.admission,
        batch_max: options.batch_max.get(),
        shutdown: &shutdown,
        status: &status,
    };
    loop {
        // However this ends (shutdown, a stall, or the runtime dropping this future), the
        // client is closed on a thread of its own: see `crate::close`.
        let consumer = Detached::new(
            "consumer",
            subscribe(config, &options, &status).map_err(|error| *error)?,
        );
        tracing::info!(
            consumer = handler.name(),
            group = group_id,
            topics = ?options.topics,
            "consumer started"
        );
        match consume(&consumer, &runtime, options.rejoin_timeout).await {
            Ended::Shutdown => {
                let name = handler.name();
                let commit = move |consumer: &StreamConsumer<RuntimeContext>| {
                    commit_stored(consumer, name, CommitMode::Sync);
                };
                consumer.close(commit, options.close_timeout).await;
                break;
            }
            Ended::Stalled => {
                tracing::warn!(
                    consumer = handler.name(),
                    group = group_id,
                    timeout = ?options.rejoin_timeout,
                    "consumer has not rejoined its group in time; replacing its Kafka client"
                );
                // Closing a stuck client can block on the group for good: `Detached` closes
                // it on a thread of its own.
                drop(consumer);
            }
        }
    }
    status.set_running(false);
    status.export(handler.name());
    tracing::info!(consumer = handler.name(), "consumer stopped");
    Ok(())
}

/// A new client in the group, subscribed to the topics, waiting for its assignment.
fn subscribe(
    config: &KafkaConfig,
    options: &ConsumerOptions<'_>,
    status: &Arc<ConsumerStatus>,
) -> Result<StreamConsumer<RuntimeContext>, Box<ConsumerError>> {
    let group_id = options.group_id;
    let context = RuntimeContext {
        status: Arc::clone(status),
        group: group_id.to_owned(),
    };
    let consumer: StreamConsumer<RuntimeContext> = config
        .consumer_config(group_id)
        .create_with_context(context)
        .map_err(|source| ConsumerError::Create {
            group: group_id.to_owned(),
            source,
        })?;
    status.restart_assignment_wait();
    consumer.subscribe(options.topics).map_err(|source| {
        Box::new(ConsumerError::Subscribe {
            group: group_id.to_owned(),
            topics: options.topics.iter().map(|t| (*t).to_owned()).collect(),
            source,
        })
    })?;
    Ok(consumer)
}

/// Processes messages until shutdown, or until the client has been without an assignment
/// longer than `rejoin_timeout`.
async fn consume<H: EventHandler>(
    consumer: &StreamConsumer<RuntimeContext>,
    runtime: &Runtime<'_, H>,
    rejoin_timeout: Duration,
) -> Ended {
    let name = runtime.handler.name();
    let mut watchdog = tokio::time::interval(Duration::from_secs(1));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            () = runtime.shutdown.cancelled() => return Ended::Shutdown,
            _ = watchdog.tick() => {
                if runtime.status.unassigned_for_longer_than(rejoin_timeout) {
                    return Ended::Stalled;
                }
                continue;
            }
            message = consumer.recv() => message,
        };
        let mut messages = match message {
            Ok(message) => vec![message],
            Err(error) => {
                tracing::warn!(
                    consumer = name,
                    error = &error as &dyn StdError,
                    "kafka receive failed"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // Whatever else is ready joins this poll: a zero timeout polls `recv` once, and
        // `recv` is cancel-safe, so nothing is lost when it is not ready.
        while messages.len() < runtime.batch_max {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(Ok(message)) => messages.push(message),
                Ok(Err(error)) => {
                    tracing::warn!(
                        consumer = name,
                        error = &error as &dyn StdError,
                        "kafka receive failed"
                    );
                    break;
                }
                Err(_not_ready) => break,
            }
        }
        for partition in by_partition(&messages) {
            if !runtime.process_batch(&partition).await {
                // Shut down mid-retry: leave the offset where it is, the messages come again.
                return Ended::Shutdown;
            }
            runtime.status.resume(name);
            crate::failpoint::crash_point(crate::failpoint::CONSUMER_AFTER_EFFECT);
            // The last record's offset covers the partition's earlier ones.
            let Some(last) = partition.last() else {
                continue;
            };
            if let Err(error) = consumer.store_offset_from_message(last) {
                tracing::warn!(
                    consumer = name,
                    error = &error as &dyn StdError,
                    "cannot store offset"
                );
            }
        }
        // What this poll applied is committed now (in the background), not at the next
        // auto-commit tick: the group's committed offsets, and so `consumer_group_lag`,
        // then count only what is not applied yet, instead of up to
        // `auto.commit.interval.ms` (5 s) of applied traffic.
        commit_stored(consumer, name, CommitMode::Async);
    }
}

/// The messages of one poll grouped by topic and partition, each group in partition
/// order, the groups in the order their first message came.
fn by_partition<M: Message>(messages: &[M]) -> Vec<Vec<&M>> {
    let mut groups: Vec<Vec<&M>> = Vec::new();
    for message in messages {
        let same = |group: &&mut Vec<&M>| {
            group.first().is_some_and(|first| {
                first.topic() == message.topic() && first.partition() == message.partition()
            })
        };
        match groups.iter_mut().find(same) {
            Some(group) => group.push(message),
            None => groups.push(vec![message]),
        }
    }
    groups
}

/// Commits the stored offsets: `Sync` before the client goes, `Async` after each poll.
fn commit_stored(consumer: &StreamConsumer<RuntimeContext>, name: &'static str, mode: CommitMode) {
    if let Err(error) = consumer.commit_consumer_state(mode) {
        // NoOffset just means nothing was consumed since the last commit.
        if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::NoOffset) {
            tracing::warn!(
                consumer = name,
                error = &error as &dyn StdError,
                ?mode,
                "offset commit failed; the next one sends these offsets again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::{Message, OwnedMessage};

    use cloudevents::{AttributesReader, EventBuilder};

    use super::{EventHandler, HandlerError, Outcome, ReceivedEvent, by_partition};

    fn message(topic: &str, partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            None,
            None,
            topic.to_owned(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[test]
    fn a_polls_messages_are_grouped_by_topic_and_partition_keeping_partition_order() {
        let poll = [
            message("a", 0, 10),
            message("a", 1, 5),
            message("b", 0, 7),
            message("a", 0, 11),
            message("a", 1, 6),
            message("a", 0, 12),
        ];
        let groups: Vec<Vec<(String, i32, i64)>> = by_partition(&poll)
            .into_iter()
            .map(|group| {
                group
                    .into_iter()
                    .map(|m| (m.topic().to_owned(), m.partition(), m.offset()))
                    .collect()
            })
            .collect();
        let expected = |topic: &str, partition, offsets: &[i64]| -> Vec<(String, i32, i64)> {
            offsets
                .iter()
                .map(|offset| (topic.to_owned(), partition, *offset))
                .collect()
        };
        assert_eq!(
            groups,
            [
                expected("a", 0, &[10, 11, 12]),
                expected("a", 1, &[5, 6]),
                expected("b", 0, &[7]),
            ]
        );
    }

    #[test]
    fn an_empty_poll_has_no_groups() {
        assert!(by_partition::<OwnedMessage>(&[]).is_empty());
    }

    /// A handler without a batch of its own: applies ids it has not seen, refuses "bad".
    #[derive(Debug, Default)]
    struct OneAtATime {
        seen: std::sync::Mutex<Vec<String>>,
    }

    impl EventHandler for OneAtATime {
        fn name(&self) -> &'static str {
            "one-at-a-time"
        }

        async fn handle(&self, received: &ReceivedEvent) -> Result<Outcome, HandlerError> {
            let id = received.event.id().to_owned();
            if id == "bad" {
                return Err(HandlerError::Permanent("bad".into()));
            }
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.contains(&id) {
                return Ok(Outcome::Duplicate);
            }
            seen.push(id);
            Ok(Outcome::Applied)
        }
    }

    fn received(id: &str) -> ReceivedEvent {
        let event = cloudevents::EventBuilderV10::new()
            .id(id)
            .source("/test")
            .ty("test")
            .build()
            .unwrap_or_else(|error| panic!("a valid event: {error}"));
        ReceivedEvent {
            event,
            topic: "t".to_owned(),
            partition: 0,
            offset: 0,
        }
    }

    #[tokio::test]
    async fn the_default_batch_handles_each_event_in_order_and_stops_at_the_first_error() {
        let handler = OneAtATime::default();
        let outcomes = handler
            .handle_batch(&[received("a"), received("b"), received("a")])
            .await
            .unwrap_or_else(|error| panic!("applied: {error}"));
        assert_eq!(
            outcomes,
            [Outcome::Applied, Outcome::Applied, Outcome::Duplicate]
        );
        let refused = handler
            .handle_batch(&[received("c"), received("bad"), received("d")])
            .await;
        assert!(matches!(refused, Err(HandlerError::Permanent(_))));
        let seen = handler
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(
            *seen,
            ["a", "b", "c"],
            "nothing after the refused event ran"
        );
    }
}

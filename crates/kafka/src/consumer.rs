//! The consumer runtime: every Kafka consumer of Wallet Hub runs through [`run_consumer`].
//!
//! For each message, in partition order:
//! 1. decode the CloudEvent (binary or structured mode);
//! 2. open a consumer span that continues the producer's trace (`traceparent`, falling back
//!    to the `ce_traceparent` extension);
//! 3. call the handler; a transient error is retried with exponential backoff and jitter on
//!    the same message (the partition waits, nothing is skipped);
//! 4. store the offset only once the handler returned, i.e. after its effect committed.
//!
//! librdkafka commits stored offsets in the background, on rebalance and at shutdown, so a
//! crash between the effect and the commit redelivers the message: handlers must be
//! idempotent (the `consumers` crate dedupes by event id in the effect's transaction).

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use cloudevents::binding::rdkafka::MessageExt;
use cloudevents::{AttributesReader, Event};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use telemetry::TraceHeaders;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::KafkaConfig;

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
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
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

/// Consumes `topics` in `group_id` with `handler` until `shutdown` is cancelled, then
/// commits the stored offsets and returns.
pub async fn run_consumer<H: EventHandler>(
    config: &KafkaConfig,
    group_id: &str,
    topics: &[&str],
    handler: H,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    let consumer: StreamConsumer = config
        .consumer_config(group_id)
        .create()
        .map_err(|source| ConsumerError::Create {
            group: group_id.to_owned(),
            source,
        })?;
    consumer
        .subscribe(topics)
        .map_err(|source| ConsumerError::Subscribe {
            group: group_id.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            source,
        })?;
    tracing::info!(
        consumer = handler.name(),
        group = group_id,
        ?topics,
        "consumer started"
    );

    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(
                    consumer = handler.name(),
                    error = &error as &dyn StdError,
                    "kafka receive failed"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if !process(&handler, &message, &shutdown).await {
            // Shut down mid-retry: leave the offset where it is, the message comes again.
            break;
        }
        if let Err(error) = consumer.store_offset_from_message(&message) {
            tracing::warn!(
                consumer = handler.name(),
                error = &error as &dyn StdError,
                "cannot store offset"
            );
        }
    }

    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        // NoOffset just means nothing was consumed since the last commit.
        if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::NoOffset) {
            tracing::warn!(
                consumer = handler.name(),
                error = &error as &dyn StdError,
                "final offset commit failed"
            );
        }
    }
    tracing::info!(consumer = handler.name(), "consumer stopped");
    Ok(())
}

/// Handles one message to completion. Returns false if shutdown interrupted the retries.
async fn process<H: EventHandler>(
    handler: &H,
    message: &BorrowedMessage<'_>,
    shutdown: &CancellationToken,
) -> bool {
    let trace = trace_headers(message);
    let span = tracing::info_span!(
        "consume",
        otel.kind = "consumer",
        otel.name = format!("process {}", message.topic()),
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = message.topic(),
        messaging.destination.partition.id = message.partition(),
        messaging.kafka.offset = message.offset(),
        messaging.consumer.group.name = tracing::field::Empty,
        messaging.message.id = tracing::field::Empty,
        consumer = handler.name(),
    );
    trace.continue_in(&span);

    let event = match message.to_event() {
        Ok(event) => event,
        Err(error) => {
            span.in_scope(|| {
                tracing::error!(
                    error = &error as &dyn StdError,
                    "undecodable CloudEvent skipped"
                );
            });
            return true;
        }
    };
    span.record("messaging.message.id", event.id());
    let received = ReceivedEvent {
        event,
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
    };

    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match handler.handle(&received).instrument(span.clone()).await {
            Ok(()) => return true,
            Err(HandlerError::Permanent(error)) => {
                span.in_scope(|| {
                    tracing::error!(
                        error = &*error as &dyn StdError,
                        "event rejected permanently; skipped"
                    );
                });
                return true;
            }
            Err(HandlerError::Transient(error)) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                span.in_scope(|| {
                    tracing::warn!(
                        error = &*error as &dyn StdError,
                        ?delay,
                        "transient failure; retrying"
                    );
                });
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// The W3C context of a message: plain `traceparent` first, then the CloudEvents extension.
fn trace_headers(message: &BorrowedMessage<'_>) -> TraceHeaders {
    let Some(headers) = message.headers() else {
        return TraceHeaders::default();
    };
    let get = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    TraceHeaders {
        traceparent: get("traceparent")
            .or_else(|| get("ce_traceparent"))
            .map(str::to_owned),
        tracestate: get("tracestate")
            .or_else(|| get("ce_tracestate"))
            .map(str::to_owned),
    }
}

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
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use cloudevents::binding::rdkafka::MessageExt;
use cloudevents::{AttributesReader, Event};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use telemetry::TraceHeaders;
use telemetry::metrics::{EVENT_PROCESSING_LATENCY_SECONDS, EVENTS_CONSUMED_TOTAL};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::KafkaConfig;
use crate::status::{ConsumerStatus, RuntimeContext};

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
}

/// Dead-letter headers added to the original ones.
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
/// cancelled, then commits the stored offsets and returns.
pub async fn run_consumer<H: EventHandler>(
    config: &KafkaConfig,
    options: ConsumerOptions<'_>,
    handler: H,
    status: Arc<ConsumerStatus>,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    let group_id = options.group_id;
    let topics = options.topics;
    let context = RuntimeContext {
        status: Arc::clone(&status),
        group: group_id.to_owned(),
    };
    let consumer: StreamConsumer<RuntimeContext> = config
        .consumer_config(group_id)
        .create_with_context(context)
        .map_err(|source| ConsumerError::Create {
            group: group_id.to_owned(),
            source,
        })?;
    let dead_letters: FutureProducer =
        config
            .producer_config()
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
    status.set_running(true);
    let runtime = Runtime {
        handler: &handler,
        dead_letters: &dead_letters,
        dead_letter_suffix: options.dead_letter_suffix,
        max_payload_bytes: options.max_payload_bytes,
        shutdown: &shutdown,
    };

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
        if !runtime.process(&message).await {
            // Shut down mid-retry: leave the offset where it is, the message comes again.
            break;
        }
        crate::failpoint::crash_point(crate::failpoint::CONSUMER_AFTER_EFFECT);
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
    status.set_running(false);
    tracing::info!(consumer = handler.name(), "consumer stopped");
    Ok(())
}

struct Runtime<'a, H> {
    handler: &'a H,
    dead_letters: &'a FutureProducer,
    dead_letter_suffix: &'a str,
    max_payload_bytes: usize,
    shutdown: &'a CancellationToken,
}

/// Why a message goes to the dead-letter topic.
struct Rejection {
    class: &'static str,
    message: String,
}

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
}

impl<H: EventHandler> Runtime<'_, H> {
    /// Handles one message to completion: applied, duplicate, or dead-lettered. Returns
    /// false if shutdown interrupted the retries (the offset must not move).
    async fn process(&self, message: &BorrowedMessage<'_>) -> bool {
        let handler = self.handler;
        let topic = message.topic();
        let trace = trace_headers(message);
        let span = tracing::info_span!(
            "consume",
            otel.kind = "consumer",
            otel.name = format!("process {topic}"),
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = topic,
            messaging.destination.partition.id = message.partition(),
            messaging.kafka.offset = message.offset(),
            messaging.message.id = tracing::field::Empty,
            consumer = handler.name(),
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        trace.continue_in(&span);
        telemetry::record_trace_ids(&span);
        let count = |outcome: &'static str| {
            metrics::counter!(
                EVENTS_CONSUMED_TOTAL,
                "topic" => topic.to_owned(),
                "consumer" => handler.name(),
                "outcome" => outcome,
            )
            .increment(1);
        };

        let size = message.payload().map_or(0, <[u8]>::len);
        if size > self.max_payload_bytes {
            let rejection = Rejection {
                class: "oversized",
                message: format!(
                    "payload of {size} bytes exceeds {} bytes",
                    self.max_payload_bytes
                ),
            };
            let moved_on = self.dead_letter(message, rejection, &span).await;
            if moved_on {
                count("dead_lettered");
            }
            return moved_on;
        }
        let event = match message.to_event() {
            Ok(event) => event,
            Err(error) => {
                let rejection = Rejection {
                    class: "undecodable",
                    message: error.to_string(),
                };
                let moved_on = self.dead_letter(message, rejection, &span).await;
                if moved_on {
                    count("dead_lettered");
                }
                return moved_on;
            }
        };
        span.record("messaging.message.id", event.id());
        let event_time = event.time().copied();
        let received = ReceivedEvent {
            event,
            topic: topic.to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        };

        let mut delays = backoff();
        loop {
            match handler.handle(&received).instrument(span.clone()).await {
                Ok(Outcome::Applied) => {
                    count("ok");
                    if let Some(time) = event_time {
                        let latency = (chrono::Utc::now() - time).to_std().unwrap_or_default();
                        metrics::histogram!(
                            EVENT_PROCESSING_LATENCY_SECONDS,
                            "topic" => topic.to_owned(),
                            "consumer" => handler.name(),
                        )
                        .record(latency.as_secs_f64());
                    }
                    return true;
                }
                Ok(Outcome::Duplicate) => {
                    count("duplicate");
                    return true;
                }
                Err(HandlerError::Permanent(error)) => {
                    let rejection = Rejection {
                        class: "permanent",
                        message: telemetry::error_chain(&*error),
                    };
                    let moved_on = self.dead_letter(message, rejection, &span).await;
                    if moved_on {
                        count("dead_lettered");
                    }
                    return moved_on;
                }
                Err(HandlerError::Transient(error)) => {
                    count("retried");
                    let delay = delays.next().unwrap_or(Duration::from_secs(10));
                    span.in_scope(|| {
                        tracing::warn!(
                            error = &*error as &dyn StdError,
                            ?delay,
                            "transient failure; retrying"
                        );
                    });
                    tokio::select! {
                        () = self.shutdown.cancelled() => return false,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Copies the message (key, value, headers) to the dead-letter topic with headers that
    /// say where it came from and why. Retries until the copy is acknowledged; returns
    /// false only if shutdown came first (then the offset must not move).
    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        rejection: Rejection,
        span: &tracing::Span,
    ) -> bool {
        let dlq_topic = format!("{}{}", message.topic(), self.dead_letter_suffix);
        span.in_scope(|| {
            tracing::error!(
                error_class = rejection.class,
                error = %rejection.message,
                dlq_topic,
                "message cannot be applied; dead-lettering it"
            );
        });
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                headers = headers.insert(Header {
                    key: header.key,
                    value: header.value,
                });
            }
        }
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let time = chrono::Utc::now().to_rfc3339();
        for (key, value) in [
            (dlq_headers::TOPIC, message.topic()),
            (dlq_headers::PARTITION, partition.as_str()),
            (dlq_headers::OFFSET, offset.as_str()),
            (dlq_headers::CONSUMER, self.handler.name()),
            (dlq_headers::ERROR_CLASS, rejection.class),
            (dlq_headers::ERROR_MESSAGE, rejection.message.as_str()),
            (dlq_headers::TIME, time.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut delays = backoff();
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&dlq_topic).headers(headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            match self.dead_letters.send(record, Duration::from_secs(5)).await {
                Ok(_) => return true,
                Err((error, _)) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(10));
                    span.in_scope(|| {
                        tracing::warn!(
                            error = &error as &dyn StdError,
                            ?delay,
                            "dead-letter write failed; offset held, retrying"
                        );
                    });
                    tokio::select! {
                        () = self.shutdown.cancelled() => return false,
                        () = tokio::time::sleep(delay) => {}
                    }
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

//! [`Runtime`]: what happens to a partition's records of one poll: decode, admit and trace
//! each, apply the admitted ones as one batch (one by one if the batch fails), retry what is
//! transient, dead-letter what can never be applied, and report the outcomes.

use std::error::Error as StdError;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use cloudevents::AttributesReader;
use cloudevents::binding::rdkafka::MessageExt;
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use telemetry::TraceHeaders;
use telemetry::metrics::{EVENT_PROCESSING_LATENCY_SECONDS, EVENTS_CONSUMED_TOTAL};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{EventHandler, HandlerError, Outcome, ReceivedEvent, dlq_headers};
use crate::status::ConsumerStatus;

pub(super) struct Runtime<'a, H> {
    pub(super) handler: &'a H,
    /// The most records one poll takes.
    pub(super) batch_max: usize,
    pub(super) dead_letters: &'a FutureProducer,
    pub(super) dead_letter_suffix: &'a str,
    pub(super) max_payload_bytes: usize,
    pub(super) admission: &'a super::Admission,
    pub(super) shutdown: &'a CancellationToken,
    /// Paused while a transient failure (an outage) is retried.
    pub(super) status: &'a ConsumerStatus,
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

/// Attempts at a batch whose error is transient before its events go one by one.
const BATCH_ATTEMPTS: u32 = 2;

/// How a batch ended.
enum BatchEnd {
    /// Committed: one outcome per event.
    Applied(Vec<Outcome>),
    /// Failed: apply the events one at a time.
    OneByOne,
    /// Shutdown came during a retry.
    Shutdown,
}

/// An admitted record, besides its event: where it came from and its span.
struct Admitted<'m, 'c> {
    message: &'m BorrowedMessage<'c>,
    span: tracing::Span,
}

impl<H: EventHandler> Runtime<'_, H> {
    /// Handles the records of one partition, in partition order, to completion: each one
    /// applied, duplicate or dead-lettered. The admitted ones go to the handler as one batch;
    /// if that fails they go one at a time, so a record that cannot be applied is retried or
    /// dead-lettered alone. Returns false if shutdown interrupted (no offset may move).
    pub(super) async fn process_batch(&self, messages: &[&BorrowedMessage<'_>]) -> bool {
        let mut admitted = Vec::with_capacity(messages.len());
        let mut events = Vec::with_capacity(messages.len());
        for &message in messages {
            let span = self.span(message);
            match self.admit(message, &span) {
                Ok(received) => {
                    admitted.push(Admitted { message, span });
                    events.push(received);
                }
                Err(rejection) => {
                    if !self.dead_letter(message, rejection, &span).await {
                        return false;
                    }
                    self.count(message.topic(), "dead_lettered");
                }
            }
        }
        if events.len() > 1 {
            match self.apply_batch(&events, &admitted).await {
                BatchEnd::Applied(outcomes) => {
                    for (received, outcome) in events.iter().zip(outcomes) {
                        self.record_outcome(received, outcome);
                    }
                    return true;
                }
                BatchEnd::Shutdown => return false,
                BatchEnd::OneByOne => {}
            }
        }
        for (record, received) in admitted.iter().zip(&events) {
            if !self.apply_one(record, received).await {
                return false;
            }
        }
        true
    }

    /// The record's consumer span, continuing the producer's trace.
    fn span(&self, message: &BorrowedMessage<'_>) -> tracing::Span {
        let topic = message.topic();
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
            consumer = self.handler.name(),
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        trace_headers(message).continue_in(&span);
        telemetry::record_trace_ids(&span);
        span
    }

    /// The record's event if it may reach the handler (size, decoding, admission), or why
    /// it goes to the dead-letter topic.
    fn admit(
        &self,
        message: &BorrowedMessage<'_>,
        span: &tracing::Span,
    ) -> Result<ReceivedEvent, Rejection> {
        let size = message.payload().map_or(0, <[u8]>::len);
        if size > self.max_payload_bytes {
            return Err(Rejection {
                class: "oversized",
                message: format!(
                    "payload of {size} bytes exceeds {} bytes",
                    self.max_payload_bytes
                ),
            });
        }
        let event = message.to_event().map_err(|error| Rejection {
            class: "undecodable",
            message: error.to_string(),
        })?;
        span.record("messaging.message.id", event.id());
        self.admission.check(&event).map_err(|refusal| Rejection {
            class: refusal.class,
            message: refusal.message,
        })?;
        Ok(ReceivedEvent {
            event,
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        })
    }

    /// Runs the handler's batch: retried once after a transient error, given up (the
    /// events then go one by one) after a second one or a permanent error.
    async fn apply_batch(
        &self,
        events: &[ReceivedEvent],
        records: &[Admitted<'_, '_>],
    ) -> BatchEnd {
        let handler = self.handler;
        let span = tracing::info_span!(
            "consume_batch",
            consumer = handler.name(),
            messaging.destination.name = events.first().map(|e| e.topic.as_str()),
            messaging.destination.partition.id = events.first().map(|e| e.partition),
            messaging.batch.message_count = events.len(),
        );
        // Each record's trace shows the batch that applied it.
        for record in records {
            record.span.follows_from(&span);
        }
        let mut delays = backoff();
        for attempt in 1..=BATCH_ATTEMPTS {
            let error = match handler.handle_batch(events).instrument(span.clone()).await {
                Ok(outcomes) if outcomes.len() == events.len() => {
                    return BatchEnd::Applied(outcomes);
                }
                Ok(outcomes) => {
                    span.in_scope(|| {
                        tracing::error!(
                            outcomes = outcomes.len(),
                            events = events.len(),
                            "handler answered a batch with a wrong number of outcomes; \
                             applying its events one by one"
                        );
                    });
                    return BatchEnd::OneByOne;
                }
                Err(HandlerError::Permanent(error)) => {
                    span.in_scope(|| {
                        tracing::warn!(
                            error = &*error as &dyn StdError,
                            "batch refused; applying its events one by one"
                        );
                    });
                    return BatchEnd::OneByOne;
                }
                Err(HandlerError::Transient(error)) => error,
            };
            span.in_scope(|| {
                tracing::warn!(
                    error = &*error as &dyn StdError,
                    attempt,
                    "batch failed (transient)"
                );
            });
            if attempt < BATCH_ATTEMPTS {
                let delay = delays.next().unwrap_or(Duration::from_secs(10));
                tokio::select! {
                    () = self.shutdown.cancelled() => return BatchEnd::Shutdown,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
        BatchEnd::OneByOne
    }

    /// Applies one admitted record alone: retried with back-off while the error is
    /// transient, dead-lettered when it is permanent. Returns false if shutdown interrupted
    /// the retries (the offset must not move).
    async fn apply_one(&self, record: &Admitted<'_, '_>, received: &ReceivedEvent) -> bool {
        let handler = self.handler;
        let span = &record.span;
        let mut delays = backoff();
        loop {
            match handler.handle(received).instrument(span.clone()).await {
                Ok(outcome) => {
                    self.record_outcome(received, outcome);
                    return true;
                }
                Err(HandlerError::Permanent(error)) => {
                    let rejection = Rejection {
                        class: "permanent",
                        message: telemetry::error_chain(&*error),
                    };
                    let moved_on = self.dead_letter(record.message, rejection, span).await;
                    if moved_on {
                        self.count(&received.topic, "dead_lettered");
                    }
                    return moved_on;
                }
                Err(HandlerError::Transient(error)) => {
                    self.count(&received.topic, "retried");
                    self.status
                        .pause(handler.name(), || telemetry::error_chain(&*error));
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

    /// Counts an applied or duplicate event (and the latency of an applied one).
    fn record_outcome(&self, received: &ReceivedEvent, outcome: Outcome) {
        match outcome {
            Outcome::Applied => {
                self.count(&received.topic, "ok");
                if let Some(time) = received.event.time() {
                    let latency = (chrono::Utc::now() - *time).to_std().unwrap_or_default();
                    metrics::histogram!(
                        EVENT_PROCESSING_LATENCY_SECONDS,
                        "topic" => received.topic.clone(),
                        "consumer" => self.handler.name(),
                    )
                    .record(latency.as_secs_f64());
                }
            }
            Outcome::Duplicate => self.count(&received.topic, "duplicate"),
        }
    }

    fn count(&self, topic: &str, outcome: &'static str) {
        metrics::counter!(
            EVENTS_CONSUMED_TOTAL,
            "topic" => topic.to_owned(),
            "consumer" => self.handler.name(),
            "outcome" => outcome,
        )
        .increment(1);
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
            // Incoming `dlq_*` headers are not ours: a forged `dlq_original_topic` must
            // never steer `wallet-hub dlq redrive`.
            for header in original.iter().filter(|h| !h.key.starts_with("dlq_")) {
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
                    self.status.pause(self.handler.name(), || {
                        format!(
                            "dead-letter write failed: {}",
                            telemetry::error_chain(&error)
                        )
                    });
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

//! [`Runtime`]: what happens to one message: decode, trace, handle with retries,
//! dead-letter what can never be applied, and report the outcome.

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

impl<H: EventHandler> Runtime<'_, H> {
    /// Handles one message to completion: applied, duplicate, or dead-lettered. Returns
    /// false if shutdown interrupted the retries (the offset must not move).
    pub(super) async fn process(&self, message: &BorrowedMessage<'_>) -> bool {
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
        if let Err(refusal) = self.admission.check(&event) {
            let rejection = Rejection {
                class: refusal.class,
                message: refusal.message,
            };
            let moved_on = self.dead_letter(message, rejection, &span).await;
            if moved_on {
                count("dead_lettered");
            }
            return moved_on;
        }
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

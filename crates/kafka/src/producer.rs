//! Publishing CloudEvents to Kafka.

use std::future::Future;

use cloudevents::Event;
use cloudevents::binding::rdkafka::{FutureRecordExt, MessageRecord};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use telemetry::{TRACEPARENT, TRACESTATE, TraceHeaders};

use crate::config::KafkaConfig;

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("cannot create Kafka producer")]
    Create(#[source] KafkaError),
    #[error("cannot serialize CloudEvent for Kafka")]
    Encode(#[source] cloudevents::message::Error),
    #[error("cannot enqueue message for {topic}")]
    Enqueue {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("delivery to {topic} failed")]
    Delivery {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("producer dropped the delivery report for {topic}")]
    Canceled { topic: String },
}

impl ProduceError {
    /// True when librdkafka says the producer instance can no longer be used (fatal error,
    /// e.g. fenced idempotent producer); it must be recreated.
    pub fn is_fatal(&self) -> bool {
        match self {
            ProduceError::Enqueue { source, .. } | ProduceError::Delivery { source, .. } => {
                source.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::Fatal)
            }
            _ => false,
        }
    }
}

/// Where a message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// An idempotent producer of CloudEvents. Cheap to clone (shares one librdkafka client).
#[derive(Clone)]
pub struct EventProducer {
    producer: FutureProducer,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer").finish_non_exhaustive()
    }
}

impl EventProducer {
    pub fn new(config: &KafkaConfig) -> Result<Self, ProduceError> {
        let producer = config
            .producer_config()
            .create()
            .map_err(ProduceError::Create)?;
        Ok(Self { producer })
    }

    /// Enqueues `event` for `topic` with `key`, in CloudEvents binary mode, plus the plain
    /// W3C trace headers that OpenTelemetry Kafka consumers read. Enqueueing is synchronous
    /// (so calls made in order are sent in order); the returned future resolves with the
    /// delivery report. Await the futures of a batch together.
    pub fn send(
        &self,
        topic: &str,
        key: &str,
        event: Event,
        trace: &TraceHeaders,
    ) -> Result<impl Future<Output = Result<Delivered, ProduceError>> + Send + 'static, ProduceError>
    {
        if crate::failpoint::fire_once(crate::failpoint::PRODUCER_FATAL) {
            return Err(ProduceError::Enqueue {
                topic: topic.to_owned(),
                source: KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::Fatal),
            });
        }
        let message = MessageRecord::from_event(event).map_err(ProduceError::Encode)?;
        let mut record = FutureRecord::to(topic).key(key).message_record(&message);
        let mut headers = record.headers.take().unwrap_or_else(OwnedHeaders::new);
        for (name, value) in [
            (TRACEPARENT, &trace.traceparent),
            (TRACESTATE, &trace.tracestate),
        ] {
            if let Some(value) = value {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_str()),
                });
            }
        }
        record.headers = Some(headers);
        let pending =
            self.producer
                .send_result(record)
                .map_err(|(source, _)| ProduceError::Enqueue {
                    topic: topic.to_owned(),
                    source,
                })?;
        let topic = topic.to_owned();
        Ok(async move {
            match pending.await {
                Ok(Ok(delivery)) => Ok(Delivered {
                    partition: delivery.partition,
                    offset: delivery.offset,
                }),
                Ok(Err((source, _message))) => Err(ProduceError::Delivery { topic, source }),
                Err(_canceled) => Err(ProduceError::Canceled { topic }),
            }
        })
    }

    /// Messages enqueued but not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits up to `timeout` for outstanding deliveries (used at shutdown).
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

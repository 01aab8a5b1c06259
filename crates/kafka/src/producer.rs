//! Publishing CloudEvents to Kafka.

use std::future::Future;

use cloudevents::event::SpecVersion;
use cloudevents::message::{BinaryDeserializer, BinarySerializer, MessageAttributeValue};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use telemetry::{TRACEPARENT, TRACESTATE, TraceHeaders};

use crate::close::Detached;
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
                source.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal)
            }
            _ => false,
        }
    }

    /// True when the failure says nothing about this record: no broker reachable, the
    /// delivery timed out, the local queue is full, a transport error, an unusable
    /// producer. Sending the same record again can succeed once the infrastructure is
    /// back, so such a failure must not count against the record. False for failures of
    /// the record itself, which would fail again on a healthy cluster: too large, an
    /// invalid or unknown topic or partition, no authorization for the topic, a record
    /// the broker refuses, a CloudEvent that cannot be encoded.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            ProduceError::Create(_) | ProduceError::Canceled { .. } => true,
            ProduceError::Encode(_) => false,
            ProduceError::Enqueue { source, .. } | ProduceError::Delivery { source, .. } => {
                !source.rdkafka_error_code().is_some_and(is_record_failure)
            }
        }
    }
}

/// Codes that blame the record (or its topic), not the cluster's availability.
fn is_record_failure(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BadMessage
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::PolicyViolation
            | RDKafkaErrorCode::InvalidArgument
    )
}

/// A CloudEvent in Kafka binary content mode: `ce_<attribute>` headers (`content-type` for
/// `datacontenttype`) and the data as the value, named exactly as the SDK's
/// `cloudevents::binding::rdkafka::MessageRecord` names them (a test compares the two).
/// Ours builds the header list once, sized up front, and borrows text values; the SDK's
/// allocates a name and a value per header and clones the whole list onto the record,
/// which at relay rates was a fifth of encoding a message.
struct BinaryRecord {
    /// Always `Some` between calls (`insert` takes the list by value).
    headers: Option<OwnedHeaders>,
    payload: Option<Vec<u8>>,
}

/// Headers a relayed event carries: specversion, id, source, type, subject, time,
/// dataschema, content-type, the traceparent/tracestate extensions and the plain trace
/// headers.
const HEADERS_PER_EVENT: usize = 12;

impl Default for BinaryRecord {
    fn default() -> Self {
        Self {
            headers: Some(OwnedHeaders::new_with_capacity(HEADERS_PER_EVENT)),
            payload: None,
        }
    }
}

impl BinaryRecord {
    fn header(&mut self, key: &str, value: &str) {
        self.headers = self.headers.take().map(|headers| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        });
    }
}

impl BinarySerializer<BinaryRecord> for BinaryRecord {
    fn set_spec_version(mut self, version: SpecVersion) -> cloudevents::message::Result<Self> {
        self.header("ce_specversion", version.as_str());
        Ok(self)
    }

    fn set_attribute(
        mut self,
        name: &str,
        value: MessageAttributeValue,
    ) -> cloudevents::message::Result<Self> {
        // Text values as they are; others as the SDK's `Display` writes them.
        let formatted;
        let value = match &value {
            MessageAttributeValue::String(text) | MessageAttributeValue::UriRef(text) => text,
            MessageAttributeValue::Uri(uri) => uri.as_str(),
            other => {
                formatted = other.to_string();
                &formatted
            }
        };
        match name {
            "datacontenttype" => self.header("content-type", value),
            "id" => self.header("ce_id", value),
            "source" => self.header("ce_source", value),
            "type" => self.header("ce_type", value),
            "subject" => self.header("ce_subject", value),
            "time" => self.header("ce_time", value),
            "dataschema" => self.header("ce_dataschema", value),
            "traceparent" => self.header("ce_traceparent", value),
            "tracestate" => self.header("ce_tracestate", value),
            "sequence" => self.header("ce_sequence", value),
            _ => self.header(&format!("ce_{name}"), value),
        }
        Ok(self)
    }

    fn set_extension(
        self,
        name: &str,
        value: MessageAttributeValue,
    ) -> cloudevents::message::Result<Self> {
        self.set_attribute(name, value)
    }

    fn end_with_data(mut self, bytes: Vec<u8>) -> cloudevents::message::Result<Self> {
        self.payload = Some(bytes);
        Ok(self)
    }

    fn end(self) -> cloudevents::message::Result<Self> {
        Ok(self)
    }
}

/// Where a message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// An idempotent producer of CloudEvents (one librdkafka client).
pub struct EventProducer {
    /// Closed on a thread of its own however the producer is dropped: dropping purges the
    /// queue and waits for the brokers' answers (`crate::close`).
    producer: Detached<FutureProducer>,
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
        Ok(Self {
            producer: Detached::new("producer", producer),
        })
    }

    /// Enqueues `event` (an `Event`, or any message in binary form) for `topic` with `key`,
    /// in CloudEvents binary mode, plus the plain W3C trace headers that OpenTelemetry
    /// Kafka consumers read. Enqueueing is synchronous (so calls made in order are sent in
    /// order); the returned future resolves with the delivery report. Await the futures of
    /// a batch together.
    pub fn send(
        &self,
        topic: &str,
        key: &str,
        event: impl BinaryDeserializer,
        trace: &TraceHeaders,
    ) -> Result<impl Future<Output = Result<Delivered, ProduceError>> + Send + 'static, ProduceError>
    {
        fail::fail_point!(crate::failpoint::PRODUCER_FATAL, |_| {
            Err(ProduceError::Enqueue {
                topic: topic.to_owned(),
                source: KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::Fatal),
            })
        });
        let mut message = event
            .deserialize_binary(BinaryRecord::default())
            .map_err(ProduceError::Encode)?;
        for (name, value) in [
            (TRACEPARENT, &trace.traceparent),
            (TRACESTATE, &trace.tracestate),
        ] {
            if let Some(value) = value {
                message.header(name, value);
            }
        }
        let mut record = FutureRecord::to(topic).key(key);
        record.headers = message.headers;
        if let Some(payload) = &message.payload {
            record = record.payload(payload);
        }
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

#[cfg(test)]
mod tests {
    use cloudevents::binding::rdkafka::{FutureRecordExt, MessageRecord};
    use cloudevents::{Event, EventBuilder, EventBuilderV10};
    use rdkafka::message::Headers;

    use super::*;

    fn pairs(headers: &OwnedHeaders) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|h| {
                let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                (h.key.to_owned(), value.unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn binary_record_writes_the_headers_and_value_the_sdk_binding_writes() {
        let time = chrono::DateTime::parse_from_rfc3339("2026-11-27T01:02:03.456Z")
            .expect("valid time")
            .with_timezone(&chrono::Utc);
        let event = EventBuilderV10::new()
            .id("0195d2c4-0000-7000-8000-000000000001")
            .source("/wallet-hub")
            .ty("io.wallethub.funds.added.v1")
            .subject("0195d2c4-0000-7000-8000-0000000000aa")
            .time(time)
            .data("application/json", br#"{"amount":"1.00"}"#.to_vec())
            .extension(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .extension("tracestate", "vendor=1")
            .extension("attempt", 3)
            .build()
            .expect("valid event");

        let (sdk, ours) = records(event.clone(), event);
        assert_eq!(ours.0, sdk.0);
        assert_eq!(
            ours.0
                .iter()
                .find(|(k, _)| k == "ce_time")
                .map(|(_, v)| v.as_str()),
            Some("2026-11-27T01:02:03.456+00:00")
        );
        assert_eq!(ours.1, sdk.1);
    }

    /// The header pairs and value of the record the SDK's Kafka binding writes for `event`,
    /// and of ours for `message`.
    fn records(event: Event, message: impl BinaryDeserializer) -> (Record, Record) {
        let sdk = MessageRecord::from_event(event).expect("sdk encodes");
        let sdk_record: FutureRecord<'_, str, Vec<u8>> =
            FutureRecord::to("topic").message_record(&sdk);
        let ours = message
            .deserialize_binary(BinaryRecord::default())
            .expect("encodes");
        (
            (
                pairs(sdk_record.headers.as_ref().expect("sdk headers")),
                sdk_record.payload.cloned(),
            ),
            (pairs(ours.headers.as_ref().expect("headers")), ours.payload),
        )
    }

    /// A record's header pairs, in order, and its value.
    type Record = (Vec<(String, String)>, Option<Vec<u8>>);

    #[test]
    fn a_stored_event_is_written_as_the_sdk_writes_its_cloud_event() {
        let bindings = event_bindings::EventBindings::default();
        let payload = r#"{"amount":{"value":"1.00","currency":"USD"}}"#;
        for (traceparent, tracestate, sequence) in [
            (
                Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                Some("vendor=1"),
                Some(7),
            ),
            (None, None, None),
        ] {
            let event = event_bindings::OutgoingEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: domain::EventType::FundsAdded,
                aggregate_id: uuid::Uuid::now_v7(),
                occurred_at: chrono::Utc::now(),
                payload,
                traceparent,
                tracestate,
                sequence,
            };
            let (mut sdk, mut ours) = records(
                bindings.encode(&event).expect("an event"),
                bindings.message(event),
            );
            assert_eq!(
                ours.0.len(),
                8 + usize::from(traceparent.is_some())
                    + usize::from(tracestate.is_some())
                    + usize::from(sequence.is_some()),
                "every attribute once"
            );
            // The SDK writes extensions in its map's order.
            sdk.0.sort();
            ours.0.sort();
            assert_eq!(ours, sdk);
            assert_eq!(ours.1.as_deref(), Some(payload.as_bytes()));
        }
    }

    #[test]
    fn outages_are_the_infrastructures_failures_and_bad_records_are_the_records() {
        let delivery = |code| ProduceError::Delivery {
            topic: "t".to_owned(),
            source: KafkaError::MessageProduction(code),
        };
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::Fatal,
        ] {
            assert!(delivery(code).is_infrastructure(), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::InvalidRecord,
        ] {
            assert!(!delivery(code).is_infrastructure(), "{code:?}");
        }
        assert!(
            ProduceError::Canceled {
                topic: "t".to_owned()
            }
            .is_infrastructure()
        );
    }
}

//! One batch through Kafka: encode every row as a CloudEvent and enqueue it in id order,
//! hold back the rows whose key already failed, then await the delivery reports and sort
//! the rows into delivered, failed (the record's fault: an attempt counts) and unsent (the
//! infrastructure's fault: nothing counts, the circuit opens). Nothing here touches the
//! database.

use std::collections::HashSet;
use std::error::Error as StdError;

use futures::future::join_all;
use kafka::ProduceError;
use telemetry::KeyValue;
use uuid::Uuid;

use super::Relay;
use super::published::{self, DeliveredByTopic, UNRESOLVED_TOPIC};
use crate::store::PendingRow;

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct BatchOutcome {
    pub(super) fetched: usize,
    pub(super) published: usize,
    pub(super) failed: usize,
    /// Not attempted because an earlier row of the same key failed.
    pub(super) held: usize,
    /// Rows that reached the attempt limit in this batch and parked.
    pub(super) parked: u64,
    /// Not delivered because of the infrastructure (no broker, timeouts, an unusable
    /// producer): no attempt counted, the rows stay queued as they were.
    pub(super) unsent: usize,
    /// The producer reported a fatal error (e.g. fenced): it must be recreated.
    pub(super) producer_fatal: bool,
}

/// A batch handed to the producer, its delivery reports pending.
pub(super) struct InFlight<'r> {
    outcome: BatchOutcome,
    /// Rows enqueued, with their topic and delivery report, in id order.
    sent: Vec<(PendingRow, &'r str, DeliveryFuture)>,
    /// Rows that could not be enqueued, and why.
    failed_ids: Vec<i64>,
    errors: Vec<String>,
    /// Keys with a failed row in this batch.
    failed_keys: HashSet<Uuid>,
    /// The first infrastructure failure: once set, nothing more is enqueued.
    outage: Option<String>,
}

/// A batch whose delivery reports are all in, not yet recorded.
pub(super) struct Acked {
    pub(super) outcome: BatchOutcome,
    /// Delivered rows.
    pub(super) sent_ids: Vec<i64>,
    /// Rows not delivered, with their errors (same order).
    pub(super) failed_ids: Vec<i64>,
    pub(super) errors: Vec<String>,
    /// Keys with a failed or unsent row: their later rows wait.
    pub(super) failed_keys: HashSet<Uuid>,
    /// The first infrastructure failure of the batch: the relay opens its circuit.
    pub(super) outage: Option<String>,
}

type DeliveryFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<kafka::Delivered, ProduceError>> + Send>,
>;

/// Why a row could not be enqueued.
struct SendFailure {
    /// The error chain, kept on the row.
    error: String,
    /// librdkafka declared the producer unusable: recreate it.
    fatal: bool,
    /// Not the record's fault (see [`ProduceError::is_infrastructure`]).
    infrastructure: bool,
}

impl From<String> for SendFailure {
    fn from(error: String) -> Self {
        Self {
            error,
            fatal: false,
            infrastructure: false,
        }
    }
}

impl Relay {
    /// Encodes and enqueues `rows` in id order (the idempotent producer keeps that order
    /// per partition). A row is held back, unsent and without an attempt counted, when its
    /// key is in `failed_keys` (an earlier row of it failed in the previous batch) or failed
    /// earlier in this one, or after a fatal producer error or an infrastructure failure.
    pub(super) fn dispatch(
        &self,
        rows: Vec<PendingRow>,
        failed_keys: &HashSet<Uuid>,
    ) -> InFlight<'_> {
        let mut batch = InFlight {
            outcome: BatchOutcome {
                fetched: rows.len(),
                ..BatchOutcome::default()
            },
            sent: Vec::with_capacity(rows.len()),
            failed_ids: Vec::new(),
            errors: Vec::new(),
            failed_keys: HashSet::new(),
            outage: None,
        };
        for row in rows {
            if batch.outcome.producer_fatal
                || batch.outage.is_some()
                || failed_keys.contains(&row.aggregate_id)
                || batch.failed_keys.contains(&row.aggregate_id)
            {
                batch.outcome.held += 1;
                continue;
            }
            match self.send(&row) {
                Ok((topic, pending)) => batch.sent.push((row, topic, pending)),
                Err(failure) => {
                    published::count_failed(UNRESOLVED_TOPIC);
                    batch.outcome.producer_fatal |= failure.fatal;
                    batch.failed_keys.insert(row.aggregate_id);
                    if failure.infrastructure {
                        batch.outcome.unsent += 1;
                        batch.outage.get_or_insert(failure.error);
                    } else {
                        batch.failed_ids.push(row.id);
                        batch.errors.push(failure.error);
                    }
                }
            }
        }
        batch
    }

    /// Awaits a batch's delivery reports and sorts its rows into delivered and failed.
    pub(super) async fn await_reports(&self, batch: InFlight<'_>) -> Acked {
        let InFlight {
            mut outcome,
            sent,
            mut failed_ids,
            mut errors,
            mut failed_keys,
            mut outage,
        } = batch;
        let (sent_rows, pending): (Vec<_>, Vec<_>) = sent
            .into_iter()
            .map(|(row, topic, pending)| ((row, topic), pending))
            .unzip();
        let reports = join_all(pending).await;
        let acked_at = chrono::Utc::now();
        let mut delivered = DeliveredByTopic::default();
        let mut sent_ids = Vec::with_capacity(sent_rows.len());
        for ((row, topic), report) in sent_rows.into_iter().zip(reports) {
            match report {
                Ok(_delivered) => {
                    let latency = (acked_at - row.created_at).to_std().unwrap_or_default();
                    delivered.record(topic, latency);
                    sent_ids.push(row.id);
                }
                Err(error) if error.is_infrastructure() => {
                    // Logged once per batch by the relay when it opens its circuit.
                    outcome.producer_fatal |= error.is_fatal();
                    outcome.unsent += 1;
                    published::count_failed(topic);
                    failed_keys.insert(row.aggregate_id);
                    outage.get_or_insert_with(|| telemetry::error_chain(&error));
                }
                Err(error) => {
                    published::count_failed(topic);
                    tracing::warn!(
                        outbox_id = row.id,
                        event_id = %row.event_id,
                        error = &error as &dyn StdError,
                        "outbox row not delivered; will retry"
                    );
                    failed_keys.insert(row.aggregate_id);
                    failed_ids.push(row.id);
                    errors.push(telemetry::error_chain(&error));
                }
            }
        }
        delivered.count();
        if !sent_ids.is_empty() {
            kafka::failpoint::crash_point(kafka::failpoint::RELAY_AFTER_PRODUCE);
        }
        outcome.published = sent_ids.len();
        outcome.failed = failed_ids.len();
        Acked {
            outcome,
            sent_ids,
            failed_ids,
            errors,
            failed_keys,
            outage,
        }
    }

    /// Enqueues one row and returns its topic and delivery report, or says why it cannot
    /// be sent.
    fn send(&self, row: &PendingRow) -> Result<(&str, DeliveryFuture), SendFailure> {
        let result = self
            .bindings
            .resolve(&row.event_type)
            .map_err(|e| SendFailure::from(e.to_string()));
        let result = result.and_then(|(event_type, topic)| {
            // The message carries this span's context: the consumer continues from it,
            // within the originating request's trace.
            let span = telemetry::ProducerSpan::start(
                &row.trace(),
                format!("send {topic}"),
                vec![
                    KeyValue::new("messaging.system", "kafka"),
                    KeyValue::new("messaging.operation.type", "send"),
                    KeyValue::new("messaging.destination.name", topic.to_owned()),
                    KeyValue::new("messaging.message.id", row.event_id.to_string()),
                    KeyValue::new("messaging.kafka.message.key", row.aggregate_id.to_string()),
                    KeyValue::new("outbox_id", row.id),
                ],
            );
            let event = self
                .bindings
                .encode(&row.outgoing(event_type))
                .map_err(|e| SendFailure::from(telemetry::error_chain(&e)))?;
            let pending = self
                .producer
                .send(topic, &row.aggregate_id.to_string(), event, &span.headers())
                .map_err(|e| SendFailure {
                    fatal: e.is_fatal(),
                    infrastructure: e.is_infrastructure(),
                    error: telemetry::error_chain(&e),
                })?;
            Ok((topic, Box::pin(pending) as DeliveryFuture))
        });
        if let Err(failure) = &result
            && !failure.infrastructure
        {
            tracing::warn!(outbox_id = row.id, event_id = %row.event_id, error = %failure.error, "outbox row cannot be sent; will retry");
        }
        result
    }
}

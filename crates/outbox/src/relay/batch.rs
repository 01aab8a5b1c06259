//! One batch through Kafka: encode every row as a CloudEvent and enqueue it in id order, in
//! rounds that hold at most one row per key (a key's next row waits for the delivery report
//! of the one before), hold back the rows whose key already failed, and sort the rows by
//! their delivery reports into delivered, failed (the record's fault: an attempt counts)
//! and unsent (the infrastructure's fault: nothing counts, the circuit opens). Nothing here
//! touches the database.

use std::collections::{HashMap, HashSet};
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
    /// Not attempted: an earlier row of the same key was not delivered, or the batch
    /// stopped at an infrastructure failure.
    pub(super) held: usize,
    /// Rows that reached the attempt limit in this batch and parked.
    pub(super) parked: u64,
    /// Not delivered because of the infrastructure (no broker, timeouts, an unusable
    /// producer): no attempt counted, the rows stay queued as they were.
    pub(super) unsent: usize,
    /// The producer reported a fatal error (e.g. fenced): it must be recreated.
    pub(super) producer_fatal: bool,
}

/// A batch handed to the producer: its earlier rounds settled, the delivery reports of its
/// last round pending.
pub(super) struct InFlight<'r> {
    /// What the batch's rows came to so far: failures at enqueue and the reports of its
    /// earlier rounds.
    acked: Acked,
    /// Rows delivered so far, by topic (counted once the batch is in).
    delivered: DeliveredByTopic<'r>,
    /// The last round: rows enqueued, with their topic and delivery report, in id order.
    sent: Vec<Enqueued<'r>>,
}

/// A batch whose delivery reports are all in, not yet recorded.
#[derive(Default)]
pub(super) struct Acked {
    pub(super) outcome: BatchOutcome,
    /// Delivered rows.
    pub(super) sent_ids: Vec<i64>,
    /// Rows not delivered, with their errors (same order).
    pub(super) failed_ids: Vec<i64>,
    pub(super) errors: Vec<String>,
    /// Where the keys with a row not delivered (failed, unsent or held back) start: their
    /// later rows wait.
    pub(super) undelivered: Undelivered,
    /// The first infrastructure failure of the batch: the relay opens its circuit.
    pub(super) outage: Option<String>,
}

/// The lowest id of each key that has a row a batch did not deliver (failed, unsent or held
/// back). A later row of such a key waits, in this batch and the next: the next batch was
/// read while this one was in flight, so it can hold a key's later rows without the
/// undelivered ones (those were left out of its read), and those must not overtake them.
#[derive(Debug, Default)]
pub(super) struct Undelivered(HashMap<Uuid, i64>);

impl Undelivered {
    /// Notes a row that was not delivered.
    fn note(&mut self, row: &PendingRow) {
        let first = self.0.entry(row.aggregate_id).or_insert(row.id);
        *first = (*first).min(row.id);
    }

    /// True when an earlier row of `row`'s key was not delivered.
    fn blocks(&self, row: &PendingRow) -> bool {
        self.0
            .get(&row.aggregate_id)
            .is_some_and(|&first| first < row.id)
    }
}

/// One round of a batch, enqueued.
struct Round<'r> {
    sent: Vec<Enqueued<'r>>,
    /// Rows whose key has an earlier row in this round: they wait for its delivery report.
    later: Vec<PendingRow>,
}

/// Which rows of a round go now.
#[derive(Debug)]
struct RoundPlan {
    /// The earliest row of each key that is not held back, in id order.
    now: Vec<PendingRow>,
    /// The other rows of those keys, in id order: the next round's.
    later: Vec<PendingRow>,
    /// Rows that wait behind an undelivered earlier row of their key: not sent, no
    /// attempt counted.
    held: Vec<PendingRow>,
}

/// Splits `rows` (in id order) into the rows of this round and those of the next: one row
/// per key, so no key has two rows in flight at once and a key's row never goes out before
/// the report of its earlier one is in. Rows that `held_back` names go nowhere.
fn plan_round(rows: Vec<PendingRow>, held_back: impl Fn(&PendingRow) -> bool) -> RoundPlan {
    let mut plan = RoundPlan {
        now: Vec::with_capacity(rows.len()),
        later: Vec::new(),
        held: Vec::new(),
    };
    let mut keys = HashSet::with_capacity(rows.len());
    for row in rows {
        if held_back(&row) {
            plan.held.push(row);
        } else if keys.insert(row.aggregate_id) {
            plan.now.push(row);
        } else {
            plan.later.push(row);
        }
    }
    plan
}

/// Rows a round encodes and enqueues between two yields to the scheduler (see
/// [`Relay::enqueue_round`]): about 2 ms of work.
const ROWS_BETWEEN_YIELDS: usize = 256;

/// A row handed to the producer, with its topic and its pending delivery report.
type Enqueued<'r> = (PendingRow, &'r str, DeliveryFuture);

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

impl Acked {
    /// Notes a row held back: not sent, no attempt counted.
    fn hold(&mut self, row: &PendingRow) {
        self.outcome.held += 1;
        self.undelivered.note(row);
    }

    /// Notes a row the producer would not take.
    fn enqueue_failed(&mut self, row: &PendingRow, failure: SendFailure) {
        published::count_failed(UNRESOLVED_TOPIC);
        self.outcome.producer_fatal |= failure.fatal;
        self.undelivered.note(row);
        if failure.infrastructure {
            self.outcome.unsent += 1;
            self.outage.get_or_insert(failure.error);
        } else {
            self.failed_ids.push(row.id);
            self.errors.push(failure.error);
        }
    }

    /// Notes a row's delivery report.
    fn report<'r>(
        &mut self,
        row: &PendingRow,
        topic: &'r str,
        report: Result<kafka::Delivered, ProduceError>,
        delivered: &mut DeliveredByTopic<'r>,
        acked_at: chrono::DateTime<chrono::Utc>,
    ) {
        match report {
            Ok(_delivered) => {
                let latency = (acked_at - row.created_at).to_std().unwrap_or_default();
                delivered.record(topic, latency);
                self.sent_ids.push(row.id);
            }
            Err(error) if error.is_infrastructure() => {
                // Logged once per batch by the relay when it opens its circuit.
                self.outcome.producer_fatal |= error.is_fatal();
                self.outcome.unsent += 1;
                published::count_failed(topic);
                self.undelivered.note(row);
                self.outage
                    .get_or_insert_with(|| telemetry::error_chain(&error));
            }
            Err(error) => {
                published::count_failed(topic);
                tracing::warn!(
                    outbox_id = row.id,
                    event_id = %row.event_id,
                    error = &error as &dyn StdError,
                    "outbox row not delivered; will retry"
                );
                self.undelivered.note(row);
                self.failed_ids.push(row.id);
                self.errors.push(telemetry::error_chain(&error));
            }
        }
    }
}

impl Relay {
    /// Encodes and enqueues `rows` (in id order) in rounds, and returns once the last round
    /// is enqueued. A round takes the earliest remaining row of each key; the rows after it
    /// go in the next round, once every delivery report of this one is in. So no row is
    /// enqueued before the earlier rows of its key were acknowledged, and a batch in which
    /// no key repeats is one round. A row is held back, unsent and without an attempt
    /// counted, when an earlier row of its key was not delivered, in the previous batch
    /// (`previous`) or in this one (at enqueue or in its report), or after a fatal producer
    /// error or an infrastructure failure.
    pub(super) async fn dispatch(
        &self,
        rows: Vec<PendingRow>,
        previous: &Undelivered,
    ) -> InFlight<'_> {
        let mut acked = Acked {
            outcome: BatchOutcome {
                fetched: rows.len(),
                ..BatchOutcome::default()
            },
            ..Acked::default()
        };
        let mut delivered = DeliveredByTopic::default();
        let mut round = self.enqueue_round(rows, previous, &mut acked).await;
        while !round.later.is_empty() {
            collect_reports(round.sent, &mut acked, &mut delivered).await;
            round = self.enqueue_round(round.later, previous, &mut acked).await;
        }
        InFlight {
            acked,
            delivered,
            sent: round.sent,
        }
    }

    /// Enqueues one round of `rows` (see [`plan_round`]) and counts the rows it holds back.
    ///
    /// Encoding a full batch takes tens of milliseconds of CPU, so it yields to the
    /// scheduler every [`ROWS_BETWEEN_YIELDS`] rows: the drain runs it in one task with the
    /// relay's statements on its session, and without those pauses the previous batch's
    /// record would wait for the whole encoding before the next read could be sent (in a
    /// 400,000-row drain that serialized the read after the encoding, a third of each
    /// batch's time).
    async fn enqueue_round(
        &self,
        rows: Vec<PendingRow>,
        previous: &Undelivered,
        acked: &mut Acked,
    ) -> Round<'_> {
        let plan = plan_round(rows, |row| {
            previous.blocks(row) || acked.undelivered.blocks(row)
        });
        for row in &plan.held {
            acked.hold(row);
        }
        let mut sent = Vec::with_capacity(plan.now.len());
        for (n, row) in plan.now.into_iter().enumerate() {
            if n > 0 && n % ROWS_BETWEEN_YIELDS == 0 {
                tokio::task::yield_now().await;
            }
            if acked.outcome.producer_fatal || acked.outage.is_some() {
                acked.hold(&row);
                continue;
            }
            match self.send(&row) {
                Ok((topic, pending)) => sent.push((row, topic, pending)),
                Err(failure) => acked.enqueue_failed(&row, failure),
            }
        }
        Round {
            sent,
            later: plan.later,
        }
    }

    /// Awaits the delivery reports of a batch's last round and sorts its rows into
    /// delivered and failed.
    pub(super) async fn await_reports(&self, batch: InFlight<'_>) -> Acked {
        let InFlight {
            mut acked,
            mut delivered,
            sent,
        } = batch;
        collect_reports(sent, &mut acked, &mut delivered).await;
        delivered.count();
        if !acked.sent_ids.is_empty() {
            kafka::failpoint::crash_point(kafka::failpoint::RELAY_AFTER_PRODUCE);
        }
        acked.outcome.published = acked.sent_ids.len();
        acked.outcome.failed = acked.failed_ids.len();
        acked
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
                row.trace(),
                || format!("send {topic}"),
                || {
                    vec![
                        KeyValue::new("messaging.system", "kafka"),
                        KeyValue::new("messaging.operation.type", "send"),
                        KeyValue::new("messaging.destination.name", topic.to_owned()),
                        KeyValue::new("messaging.message.id", row.event_id.to_string()),
                        KeyValue::new("messaging.kafka.message.key", row.aggregate_id.to_string()),
                        KeyValue::new("outbox_id", row.id),
                    ]
                },
            );
            let event = self.bindings.message(row.outgoing(event_type));
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

/// Awaits a round's delivery reports and notes them in `acked`.
async fn collect_reports<'r>(
    sent: Vec<Enqueued<'r>>,
    acked: &mut Acked,
    delivered: &mut DeliveredByTopic<'r>,
) {
    let (rows, pending): (Vec<_>, Vec<_>) = sent
        .into_iter()
        .map(|(row, topic, pending)| ((row, topic), pending))
        .unzip();
    let reports = join_all(pending).await;
    let acked_at = chrono::Utc::now();
    for ((row, topic), report) in rows.into_iter().zip(reports) {
        acked.report(&row, topic, report, delivered, acked_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, key: Uuid) -> PendingRow {
        PendingRow {
            id,
            event_id: Uuid::now_v7(),
            event_type: "FundsAdded".to_owned(),
            aggregate_id: key,
            payload: "{}".to_owned(),
            traceparent: None,
            tracestate: None,
            occurred_at: chrono::Utc::now(),
            created_at: chrono::Utc::now(),
            sequence: None,
        }
    }

    /// Rows with ids 1, 2, ... of the given keys.
    fn rows(keys: &[Uuid]) -> Vec<PendingRow> {
        keys.iter()
            .zip(1..)
            .map(|(key, id)| row(id, *key))
            .collect()
    }

    fn ids(rows: &[PendingRow]) -> Vec<i64> {
        rows.iter().map(|row| row.id).collect()
    }

    #[test]
    fn a_round_takes_the_first_row_of_each_key_and_leaves_the_rest_in_order_for_the_next() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let first = plan_round(rows(&[a, b, a, c, a, b]), |_| false);
        assert_eq!(ids(&first.now), [1, 2, 4]);
        assert_eq!(ids(&first.later), [3, 5, 6]);
        assert!(first.held.is_empty());

        // B's first row failed: its next row goes nowhere, A's next goes alone.
        let mut undelivered = Undelivered::default();
        undelivered.note(&first.now[1]);
        let second = plan_round(first.later, |row| undelivered.blocks(row));
        assert_eq!(ids(&second.now), [3]);
        assert_eq!(ids(&second.later), [5]);
        assert_eq!(ids(&second.held), [6]);

        let third = plan_round(second.later, |row| undelivered.blocks(row));
        assert_eq!(ids(&third.now), [5]);
        assert!(third.later.is_empty());
        assert!(third.held.is_empty());
    }

    #[test]
    fn a_batch_without_a_repeated_key_is_one_round() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let plan = plan_round(rows(&[a, b, c]), |_| false);
        assert_eq!(ids(&plan.now), [1, 2, 3]);
        assert!(plan.later.is_empty(), "one round");
    }

    #[test]
    fn a_row_waits_behind_an_earlier_undelivered_row_of_its_key_and_only_behind_one() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        // The previous batch held back A's row 4 (behind a failure) and delivered B's.
        let mut previous = Undelivered::default();
        previous.note(&row(4, a));
        previous.note(&row(9, a));
        // This batch was read meanwhile: A's failed row 2 is due again, A's row 7 came after
        // row 4, which this read left out (it was in flight).
        let plan = plan_round(vec![row(2, a), row(6, b), row(7, a)], |row| {
            previous.blocks(row)
        });
        assert_eq!(
            ids(&plan.now),
            [2, 6],
            "row 2 is earlier than every row held"
        );
        assert_eq!(ids(&plan.held), [7], "row 7 would overtake row 4");
        assert!(plan.later.is_empty());
    }

    /// A relay whose servers are never reached: the pool connects lazily, and the producer
    /// only queues locally (its messages time out after a second; dropping it purges them).
    fn relay_without_servers() -> Relay {
        let kafka: kafka::KafkaConfig = serde_json::from_value(serde_json::json!({
            "brokers": "127.0.0.1:1",
            "client_id": "wallet-hub-test",
            "message_timeout_ms": 1000,
            "security_protocol": "plaintext",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "",
            "sasl_password": "",
            "ssl_ca_location": "",
            "producer": {},
            "consumer": {},
        }))
        .expect("a Kafka configuration");
        let config = super::super::RelayConfig {
            enabled: true,
            poll_interval_ms: 5000,
            batch_size: 5000,
            notify: false,
            max_attempts: 3,
            retry_base_ms: 0,
            retry_max_ms: 0,
            retention_hours: 1,
            retention_batch: 1,
            vacuum_after_rows: 0,
            leader_timeout_ms: 10_000,
        };
        let pool =
            sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("a lazy pool");
        Relay::new(
            pool,
            kafka,
            event_bindings::EventBindings::default(),
            config,
        )
        .expect("a producer")
    }

    #[tokio::test]
    async fn a_round_yields_to_the_task_every_few_hundred_rows_and_enqueues_every_row_in_order() {
        let relay = relay_without_servers();
        let rows: Vec<PendingRow> = (1..=600).map(|id| row(id, Uuid::now_v7())).collect();
        let previous = Undelivered::default();
        let mut dispatch = std::pin::pin!(relay.dispatch(rows, &previous));

        // Each poll runs to the next yield: the task's other future (the relay's session)
        // is polled in between.
        for enqueued in [ROWS_BETWEEN_YIELDS, 2 * ROWS_BETWEEN_YIELDS] {
            assert!(
                futures::poll!(dispatch.as_mut()).is_pending(),
                "the round yields after {enqueued} rows"
            );
            assert_eq!(usize::try_from(relay.producer.in_flight()), Ok(enqueued));
        }
        let in_flight = dispatch.await;
        assert_eq!(relay.producer.in_flight(), 600);
        let ids: Vec<i64> = in_flight.sent.iter().map(|(row, _, _)| row.id).collect();
        assert_eq!(
            ids,
            (1..=600).collect::<Vec<i64>>(),
            "one round, in id order"
        );
    }
}

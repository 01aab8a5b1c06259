//! The relay: publishes pending outbox rows to Kafka.
//!
//! It wakes on a tokio interval (`relay.poll_interval_ms`, 5 s by default) and, when
//! `relay.notify` is on, as soon as a transaction that wrote outbox rows commits
//! (LISTEN/NOTIFY). While a full batch was published it goes again at once.
//!
//! One batch is one database transaction:
//! 1. take the relay advisory lock (another relay holding it means: skip this round);
//! 2. read the oldest unsent rows by id;
//! 3. enqueue every row as a CloudEvent keyed by its aggregate id, in id order (the
//!    idempotent producer keeps that order per partition), then await all delivery reports;
//! 4. mark the delivered rows sent in one statement (they leave the `outbox_pending`
//!    queue; the `outbox` log keeps them for replay), and record an attempt and the error on
//!    the others; a row whose key already failed in this batch is held back, not sent, so
//!    one wallet's events never overtake each other; a failed row backs off exponentially
//!    with jitter and parks after `relay.max_attempts` (later rows of its key wait behind
//!    it, other keys flow) until an operator redrives it;
//! 5. commit. A crash before the commit re-sends the batch with the same CloudEvent ids
//!    (at least once; consumers dedupe).
//!
//! Beside the publishing loop, a maintenance task wakes once a second: it samples the
//! outbox gauges, deletes rows past their retention in bounded batches and, after
//! `relay.vacuum_after_rows` rows left the queue, vacuums it. None of that runs between
//! batches, so it never adds to an event's latency.

use std::collections::HashSet;
use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use event_bindings::EventBindings;
use futures::future::join_all;
use kafka::{EventProducer, ProduceError};
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use telemetry::TraceHeaders;
use telemetry::metrics::{
    EVENTS_PUBLISHED_TOTAL, KAFKA_PRODUCER_QUEUE_DEPTH, OUTBOX_OLDEST_PENDING_AGE_SECONDS,
    OUTBOX_PARKED_TOTAL, OUTBOX_PUBLISH_LATENCY_SECONDS, OUTBOX_QUEUE_SIZE,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::publisher::OUTBOX_CHANNEL;
use crate::store::{self, PendingRow};

/// `[relay]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Run the relay in this process.
    pub enabled: bool,
    /// Safety-net poll interval.
    pub poll_interval_ms: u64,
    /// Rows per batch (one transaction, one statement marking them sent).
    pub batch_size: u32,
    /// Wake the relay when outbox rows commit (LISTEN/NOTIFY); also makes writers notify.
    pub notify: bool,
    /// Failed attempts after which a row parks until `wallet-hub outbox redrive`.
    pub max_attempts: i32,
    /// First retry delay after a failed attempt; doubles each attempt, +-50% jitter.
    pub retry_base_ms: i64,
    /// Longest retry delay.
    pub retry_max_ms: i64,
    /// Sent rows are kept this long (for `outbox replay`), then deleted.
    pub retention_hours: u32,
    /// Rows deleted per retention statement; at most ten such statements a second, so
    /// retention never competes with publishing.
    pub retention_batch: i64,
    /// Vacuum the queue table once this many rows left it since the last vacuum (0: leave
    /// it to autovacuum).
    pub vacuum_after_rows: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox database query failed")]
    Database(#[from] sqlx::Error),
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Another relay held the lock; nothing was read.
    pub skipped_locked: bool,
    pub fetched: usize,
    pub published: usize,
    pub failed: usize,
    /// Not attempted because an earlier row of the same key failed in this batch.
    pub held: usize,
    /// Rows that reached the attempt limit in this batch and parked.
    pub parked: u64,
    /// The producer reported a fatal error (e.g. fenced): it must be recreated.
    pub producer_fatal: bool,
}

#[derive(Debug)]
pub struct Relay {
    pool: PgPool,
    producer: EventProducer,
    /// To recreate the producer after a fatal error.
    kafka: kafka::KafkaConfig,
    bindings: EventBindings,
    config: RelayConfig,
    /// Rows that left the queue since its last vacuum (read by the maintenance task).
    dequeued: Arc<AtomicU64>,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        kafka: kafka::KafkaConfig,
        bindings: EventBindings,
        config: RelayConfig,
    ) -> Result<Self, ProduceError> {
        Ok(Self {
            pool,
            producer: EventProducer::new(&kafka)?,
            kafka,
            bindings,
            config,
            dequeued: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Runs until `shutdown` is cancelled. A batch in progress is finished first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let maintenance = tokio::spawn(
            Maintenance {
                pool: self.pool.clone(),
                config: self.config.clone(),
                dequeued: Arc::clone(&self.dequeued),
            }
            .run(shutdown.clone()),
        );
        let mut listener = if self.config.notify {
            self.listen().await
        } else {
            None
        };
        let mut interval =
            tokio::time::interval(Duration::from_millis(self.config.poll_interval_ms.max(1)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(
            poll_interval_ms = self.config.poll_interval_ms,
            notify = listener.is_some(),
            "outbox relay started"
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
                () = next_notification(&mut listener) => {}
            }
            if self.drain(&shutdown).await {
                self.recreate_producer();
            }
            metrics::gauge!(KAFKA_PRODUCER_QUEUE_DEPTH).set(f64::from(self.producer.in_flight()));
        }
        if let Err(error) = maintenance.await {
            tracing::error!(
                error = &error as &dyn StdError,
                "outbox maintenance task failed"
            );
        }
        if let Err(error) = self.producer.flush(Duration::from_secs(5)) {
            tracing::warn!(
                error = &error as &dyn StdError,
                "producer flush at shutdown failed"
            );
        }
        tracing::info!("outbox relay stopped");
    }

    async fn listen(&self) -> Option<PgListener> {
        let result = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(OUTBOX_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        match result {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn StdError,
                    "cannot LISTEN for outbox commits; relying on polling"
                );
                None
            }
        }
    }

    /// Publishes batches while full batches make progress. Returns true if the producer
    /// reported a fatal error.
    async fn drain(&self, shutdown: &CancellationToken) -> bool {
        loop {
            match self.publish_batch().await {
                Ok(outcome) if outcome.producer_fatal => return true,
                Ok(outcome) => {
                    let full = outcome.fetched >= self.config.batch_size as usize;
                    if !full || outcome.published == 0 || shutdown.is_cancelled() {
                        return false;
                    }
                }
                Err(error) => {
                    tracing::error!(error = &error as &dyn StdError, "outbox batch failed");
                    return false;
                }
            }
        }
    }

    /// Replaces a producer that librdkafka declared unusable (fatal error, fenced).
    fn recreate_producer(&mut self) {
        match EventProducer::new(&self.kafka) {
            Ok(producer) => {
                tracing::warn!("Kafka producer hit a fatal error; recreated it");
                self.producer = producer;
            }
            Err(error) => {
                tracing::error!(
                    error = &error as &dyn StdError,
                    "cannot recreate the Kafka producer; retrying next round"
                );
            }
        }
    }

    /// Publishes one batch (see the module docs). Public so tests and tools can step it.
    #[tracing::instrument(name = "outbox.publish_batch", skip_all, err)]
    pub async fn publish_batch(&self) -> Result<BatchOutcome, RelayError> {
        let mut tx = self.pool.begin().await?;
        if !store::try_lock_relay(&mut tx).await? {
            return Ok(BatchOutcome {
                skipped_locked: true,
                ..BatchOutcome::default()
            });
        }
        let rows = store::fetch_pending(&mut tx, i64::from(self.config.batch_size)).await?;
        let mut outcome = BatchOutcome {
            fetched: rows.len(),
            ..BatchOutcome::default()
        };
        if rows.is_empty() {
            return Ok(outcome);
        }

        let mut failed_keys: HashSet<Uuid> = HashSet::new();
        let mut in_flight = Vec::with_capacity(rows.len());
        let mut failed_ids = Vec::new();
        let mut errors = Vec::new();
        for row in &rows {
            if failed_keys.contains(&row.aggregate_id) {
                outcome.held += 1;
                continue;
            }
            match self.send(row) {
                Ok((topic, pending)) => in_flight.push(((row, topic), pending)),
                Err(error) => {
                    count_published(UNRESOLVED_TOPIC, "failed");
                    failed_keys.insert(row.aggregate_id);
                    failed_ids.push(row.id);
                    errors.push(error);
                }
            }
        }

        let (sent_rows, pending): (Vec<_>, Vec<_>) = in_flight.into_iter().unzip();
        let reports = join_all(pending).await;
        let mut sent_ids = Vec::with_capacity(sent_rows.len());
        for ((row, topic), report) in sent_rows.into_iter().zip(reports) {
            match report {
                Ok(_delivered) => {
                    count_published(topic, "ok");
                    let latency = (chrono::Utc::now() - row.created_at)
                        .to_std()
                        .unwrap_or_default();
                    metrics::histogram!(OUTBOX_PUBLISH_LATENCY_SECONDS, "topic" => topic.to_owned())
                        .record(latency.as_secs_f64());
                    sent_ids.push(row.id);
                }
                Err(error) => {
                    outcome.producer_fatal |= error.is_fatal();
                    count_published(topic, "failed");
                    tracing::warn!(
                        outbox_id = row.id,
                        event_id = %row.event_id,
                        error = &error as &dyn StdError,
                        "outbox row not delivered; will retry"
                    );
                    failed_ids.push(row.id);
                    errors.push(telemetry::error_chain(&error));
                }
            }
        }
        if !sent_ids.is_empty() {
            kafka::failpoint::hit(kafka::failpoint::RELAY_AFTER_PRODUCE);
        }
        outcome.published = sent_ids.len();
        outcome.failed = failed_ids.len();
        let dequeued = store::mark_sent(&mut tx, &sent_ids).await?;
        let policy = store::RetryPolicy {
            max_attempts: self.config.max_attempts,
            base_ms: self.config.retry_base_ms,
            max_ms: self.config.retry_max_ms,
        };
        outcome.parked = store::record_failures(&mut tx, &failed_ids, &errors, policy).await?;
        tx.commit().await?;
        self.dequeued.fetch_add(dequeued, Ordering::Relaxed);
        if outcome.parked > 0 {
            tracing::error!(
                parked = outcome.parked,
                "outbox rows parked after too many failed attempts; see `wallet-hub outbox parked`"
            );
        }
        if outcome.failed > 0 || outcome.held > 0 {
            tracing::info!(?outcome, "outbox batch left rows pending");
        }
        Ok(outcome)
    }

    /// Enqueues one row and returns its topic and delivery report, or says why it cannot
    /// be sent.
    fn send(&self, row: &PendingRow) -> Result<(&str, DeliveryFuture), String> {
        let result = self
            .bindings
            .resolve(&row.event_type)
            .map_err(|e| e.to_string());
        let result = result.and_then(|(event_type, topic)| {
            let span = tracing::info_span!(
                "publish",
                otel.kind = "producer",
                otel.name = format!("send {topic}"),
                messaging.system = "kafka",
                messaging.operation.type = "send",
                messaging.destination.name = topic,
                messaging.message.id = %row.event_id,
                messaging.kafka.message.key = %row.aggregate_id,
                outbox_id = row.id,
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
            );
            row.trace().continue_in(&span);
            telemetry::record_trace_ids(&span);
            let _entered = span.enter();
            let event = event_bindings::encode(&row.outgoing(event_type))
                .map_err(|e| telemetry::error_chain(&e))?;
            // Headers carry this publish span's context: the consumer continues from it,
            // within the originating request's trace.
            let pending = self
                .producer
                .send(
                    topic,
                    &row.aggregate_id.to_string(),
                    event,
                    &TraceHeaders::current(),
                )
                .map_err(|e| telemetry::error_chain(&e))?;
            Ok((topic, Box::pin(pending) as DeliveryFuture))
        });
        if let Err(error) = &result {
            tracing::warn!(outbox_id = row.id, event_id = %row.event_id, %error, "outbox row cannot be sent; will retry");
        }
        result
    }
}

/// The relay's housekeeping, off the publishing path.
struct Maintenance {
    pool: PgPool,
    config: RelayConfig,
    dequeued: Arc<AtomicU64>,
}

/// How often the maintenance task wakes.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// Retention statements per maintenance round at most.
const RETENTION_ROUNDS: u32 = 10;

impl Maintenance {
    async fn run(self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(MAINTENANCE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            self.vacuum_if_due().await;
            self.sample_gauges().await;
            self.apply_retention(&shutdown).await;
        }
    }

    /// Updates the outbox gauges.
    async fn sample_gauges(&self) {
        let sampled = async {
            let size = store::pending_count(&self.pool).await?;
            let age = store::oldest_pending_age_seconds(&self.pool).await?;
            let parked = store::parked_count(&self.pool).await?;
            Ok::<_, sqlx::Error>((size, age, parked))
        }
        .await;
        match sampled {
            #[allow(clippy::cast_precision_loss)] // counts and ages far below 2^53
            Ok((size, age, parked)) => {
                metrics::gauge!(OUTBOX_QUEUE_SIZE).set(size as f64);
                metrics::gauge!(OUTBOX_PARKED_TOTAL).set(parked as f64);
                metrics::gauge!(OUTBOX_OLDEST_PENDING_AGE_SECONDS).set(age as f64);
            }
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn StdError,
                    "cannot sample outbox gauges"
                );
            }
        }
    }

    /// Deletes rows past their retention, a bounded batch at a time.
    async fn apply_retention(&self, shutdown: &CancellationToken) {
        for _ in 0..RETENTION_ROUNDS {
            if shutdown.is_cancelled() {
                return;
            }
            match store::delete_sent_before(
                &self.pool,
                self.config.retention_hours,
                self.config.retention_batch,
            )
            .await
            {
                Ok(deleted) => {
                    if deleted > 0 {
                        tracing::debug!(deleted, "outbox retention");
                    }
                    if i64::try_from(deleted).unwrap_or(i64::MAX) < self.config.retention_batch {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = &error as &dyn StdError, "outbox retention failed");
                    return;
                }
            }
        }
    }

    /// Vacuums the queue once enough rows left it.
    async fn vacuum_if_due(&self) {
        let threshold = self.config.vacuum_after_rows;
        let dequeued = self.dequeued.load(Ordering::Relaxed);
        if threshold == 0 || dequeued < threshold {
            return;
        }
        self.dequeued.fetch_sub(dequeued, Ordering::Relaxed);
        match store::vacuum_queue(&self.pool).await {
            Ok(()) => tracing::debug!("outbox queue vacuumed"),
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn StdError,
                    "outbox queue vacuum failed"
                )
            }
        }
    }
}

type DeliveryFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<kafka::Delivered, ProduceError>> + Send>,
>;

/// Topic label of rows whose event type has no binding.
const UNRESOLVED_TOPIC: &str = "unresolved";

fn count_published(topic: &str, outcome: &'static str) {
    metrics::counter!(EVENTS_PUBLISHED_TOTAL, "topic" => topic.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Waits for the next NOTIFY; never returns without a listener. A broken connection is
/// logged and retried a second later (polling covers the gap).
async fn next_notification(listener: &mut Option<PgListener>) {
    match listener {
        Some(listener) => {
            if let Err(error) = listener.recv().await {
                tracing::warn!(
                    error = &error as &dyn StdError,
                    "outbox LISTEN connection lost; reconnecting"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        None => futures::future::pending().await,
    }
}

//! The relay: publishes pending outbox rows to Kafka.
//!
//! It wakes on a tokio interval (`relay.poll_interval_ms`, 5 s by default) and, when
//! `relay.notify` is on, as soon as a transaction that wrote outbox rows commits
//! (LISTEN/NOTIFY); once awake it publishes until the queue is empty.
//!
//! **One publisher at a time.** Per-wallet order across several relay processes comes
//! from leadership, not from row locks: the relay that holds a PostgreSQL session advisory
//! lock on its own connection publishes; the others stand by and try the lock on every
//! poll tick. Every batch runs on that same connection, so if the leader dies its
//! connection closes, PostgreSQL frees the lock, and a standby takes over within one
//! `poll_interval_ms`. (Plain `SKIP LOCKED` over rows would let two relays send one
//! wallet's consecutive events at once, in either order.)
//!
//! **A batch:**
//! 1. read the oldest queued rows by id (`outbox_pending`: by state, never by an id
//!    high-water mark, so a late commit with a lower id is still found), skipping parked
//!    or backing-off rows and every later row of their keys;
//! 2. enqueue every row as a CloudEvent keyed by its aggregate id, in id order (the
//!    idempotent producer keeps that order per partition); a row whose key already failed
//!    is held back, unsent, so one wallet's events never overtake each other;
//! 3. await all delivery reports, then in one transaction delete the delivered rows from
//!    the queue (the `outbox` log keeps them for replay) and record an attempt and the
//!    error on the others: a failed row backs off exponentially with jitter and parks after
//!    `relay.max_attempts` (later rows of its key wait behind it, other keys flow) until an
//!    operator redrives it. A crash before that commit re-sends the batch with the same
//!    CloudEvent ids (at least once; consumers dedupe).
//!
//! **Pipelined:** batch N+1 is enqueued as soon as all of N's delivery reports are in,
//! without the keys that failed in N. While it is encoded and enqueued, the relay's
//! connection records N's outcome, commits, and reads N+2 (excluding N+1's rows). So
//! Kafka, PostgreSQL and the encoder work at once, and the order guarantees are those of
//! one batch at a time: no row is enqueued before every earlier row of its key was
//! acknowledged or held back. (A crash before N's record commits re-sends N and N+1 with
//! the same CloudEvent ids.)
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
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use telemetry::KeyValue;
use telemetry::metrics::{
    EVENTS_PUBLISHED_TOTAL, KAFKA_PRODUCER_QUEUE_DEPTH, KAFKA_PRODUCER_RECREATED_TOTAL,
    OUTBOX_OLDEST_PENDING_AGE_SECONDS, OUTBOX_PARKED_TOTAL, OUTBOX_PUBLISH_LATENCY_SECONDS,
    OUTBOX_QUEUE_SIZE,
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
    /// Wake the relay when outbox rows commit (LISTEN/NOTIFY); also makes the API notify
    /// after its commits ([`crate::CommitWaker`]).
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
    /// The relay's own connection (outside the pool). While this relay leads, it holds
    /// the relay lock for the session and every batch runs on it, so the lock and the
    /// work die together.
    session: Option<PgConnection>,
    /// This relay holds the session lock on `session`.
    leading: bool,
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
            session: None,
            leading: false,
        })
    }

    /// Runs until `shutdown` is cancelled. The batches in flight are finished first.
    ///
    /// A relay that does not lead (another holds the lock) tries again on every poll tick,
    /// so it takes over within `relay.poll_interval_ms` of the leader's death.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let maintenance = tokio::spawn(
            Maintenance {
                pool: self.pool.clone(),
                config: self.config.clone(),
                dequeued: Arc::clone(&self.dequeued),
            }
            .run(shutdown.clone()),
        );
        // The listener runs in its own task, reading every notification as it arrives: a
        // listening backend whose client stops reading blocks mid-send inside a
        // transaction, and its snapshot would keep VACUUM from cleaning the queue for as
        // long as a drain lasts.
        let wake = if self.config.notify {
            self.listen().await.map(|listener| {
                let wake = Arc::new(tokio::sync::Notify::new());
                tokio::spawn(forward_notifications(
                    listener,
                    Arc::clone(&wake),
                    shutdown.clone(),
                ));
                wake
            })
        } else {
            None
        };
        let mut interval =
            tokio::time::interval(Duration::from_millis(self.config.poll_interval_ms.max(1)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(
            poll_interval_ms = self.config.poll_interval_ms,
            notify = wake.is_some(),
            "outbox relay started"
        );
        loop {
            let ticked = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => true,
                () = woken(wake.as_deref()) => false,
            };
            // A standby relay only competes for the lock on ticks: commits wake every relay.
            if !self.leading && !ticked {
                continue;
            }
            let fatal = match self.take_lead().await {
                Ok(Some(mut conn)) => {
                    let drained = self.drain(&mut conn, &shutdown).await;
                    self.keep_lead(conn, drained.is_ok());
                    drained.unwrap_or_else(|error| {
                        tracing::error!(
                            error = &error as &dyn StdError,
                            "outbox relay failed; reconnecting"
                        );
                        false
                    })
                }
                Ok(None) => false,
                Err(error) => {
                    tracing::warn!(
                        error = &error as &dyn StdError,
                        "cannot reach the database for the relay lock; retrying next tick"
                    );
                    false
                }
            };
            if fatal {
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
        if let Some(conn) = self.session.take() {
            // Closing ends the session and frees the lock for a standby at once.
            let _ = conn.close().await;
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

    /// The session connection, taken out while this relay leads (give it back with
    /// `keep_lead`); `None` while another relay holds the lock.
    async fn take_lead(&mut self) -> Result<Option<PgConnection>, RelayError> {
        let mut conn = match self.session.take() {
            Some(conn) => conn,
            None => {
                let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
                store::prepare_relay_session(&mut conn).await?;
                self.leading = false;
                conn
            }
        };
        if !self.leading {
            match store::try_lock_relay(&mut conn).await {
                Ok(true) => {
                    tracing::info!("this relay now publishes the outbox");
                    self.leading = true;
                }
                Ok(false) => {
                    self.session = Some(conn);
                    return Ok(None);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Some(conn))
    }

    /// Gives the session back after a drain; a session whose work failed is dropped (its
    /// lock with it) and the next round reconnects.
    fn keep_lead(&mut self, conn: PgConnection, healthy: bool) {
        if healthy {
            self.session = Some(conn);
        } else {
            self.leading = false;
        }
    }

    /// Publishes until the queue is empty (see the module docs). Once batch N's delivery
    /// reports are in, batch N+1 is encoded and enqueued while, on the session, N's
    /// outcome is recorded and committed and then N+2 is read. Returns true if the producer
    /// reported a fatal error.
    async fn drain(
        &self,
        conn: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<bool, RelayError> {
        let limit = i64::from(self.config.batch_size);
        let mut next = store::fetch_pending(&mut *conn, limit, &[]).await?;
        let mut in_flight: Option<InFlight<'_>> = None;
        loop {
            let mut acked = match in_flight.take() {
                Some(batch) => Some(self.await_reports(batch).await),
                None => None,
            };
            let failed_keys = acked
                .as_mut()
                .map(|acked| std::mem::take(&mut acked.failed_keys))
                .unwrap_or_default();
            let fatal = acked
                .as_ref()
                .is_some_and(|acked| acked.outcome.producer_fatal);
            if fatal || next.is_empty() {
                if let Some(acked) = acked {
                    self.record(&mut *conn, acked).await?;
                }
                // After a fatal error the rows read meanwhile stay queued for the new
                // producer.
                return Ok(fatal);
            }
            let rows = std::mem::take(&mut next);
            // Read ahead only behind a full batch: a short one means the queue was empty
            // a moment ago, and whatever commits meanwhile wakes the relay again. At
            // moderate rates that halves the relay's statements per wake-up.
            let read_ahead = i64::try_from(rows.len()).is_ok_and(|n| n >= limit);
            let exclude: Vec<i64> = if read_ahead {
                rows.iter().map(|row| row.id).collect()
            } else {
                Vec::new()
            };
            let on_session = async {
                if let Some(acked) = acked {
                    self.record(&mut *conn, acked).await?;
                }
                if !read_ahead || shutdown.is_cancelled() {
                    return Ok::<_, RelayError>(Vec::new());
                }
                Ok(store::fetch_pending(&mut *conn, limit, &exclude).await?)
            };
            // The statements are sent first; PostgreSQL runs them while this task encodes.
            let (read, batch) =
                tokio::join!(on_session, async { self.dispatch(rows, &failed_keys) });
            in_flight = Some(batch);
            next = read?;
        }
    }

    /// Records an acknowledged batch: one statement when every row was delivered, else a
    /// transaction that also records the failures.
    async fn record(&self, conn: &mut PgConnection, acked: Acked) -> Result<(), RelayError> {
        let settled = if acked.failed_ids.is_empty() {
            self.settle(conn, acked).await?
        } else {
            let mut tx = conn.begin().await?;
            let settled = self.settle(&mut tx, acked).await?;
            tx.commit().await?;
            settled
        };
        self.after_commit(&settled);
        Ok(())
    }

    /// Replaces a producer that librdkafka declared unusable (fatal error, fenced).
    fn recreate_producer(&mut self) {
        match EventProducer::new(&self.kafka) {
            Ok(producer) => {
                tracing::warn!("Kafka producer hit a fatal error; recreated it");
                metrics::counter!(KAFKA_PRODUCER_RECREATED_TOTAL).increment(1);
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

    /// Publishes one batch, start to end, in one transaction holding the relay lock for
    /// the batch only: read, send, await the reports, record. For tests and tools that
    /// step the relay; `run` pipelines the same steps.
    #[tracing::instrument(name = "outbox.publish_batch", skip_all, err)]
    pub async fn publish_batch(&mut self) -> Result<BatchOutcome, RelayError> {
        let Some(mut conn) = self.take_lead().await? else {
            return Ok(BatchOutcome {
                skipped_locked: true,
                ..BatchOutcome::default()
            });
        };
        let result = self.one_batch(&mut conn).await;
        let released = store::unlock_relay(&mut conn).await;
        self.leading = false;
        self.keep_lead(conn, result.is_ok() && released.is_ok());
        released?;
        result
    }

    async fn one_batch(&self, conn: &mut PgConnection) -> Result<BatchOutcome, RelayError> {
        let mut tx = conn.begin().await?;
        let rows = store::fetch_pending(&mut tx, i64::from(self.config.batch_size), &[]).await?;
        let batch = self.dispatch(rows, &HashSet::new());
        let acked = self.await_reports(batch).await;
        let settled = self.settle(&mut tx, acked).await?;
        tx.commit().await?;
        self.after_commit(&settled);
        Ok(settled.outcome)
    }

    /// Encodes and enqueues `rows` in id order (the idempotent producer keeps that order
    /// per partition). A row is held back, unsent and without an attempt counted, when its
    /// key is in `failed_keys` (an earlier row of it failed in the previous batch) or failed
    /// earlier in this one, or after a fatal producer error.
    fn dispatch(&self, rows: Vec<PendingRow>, failed_keys: &HashSet<Uuid>) -> InFlight<'_> {
        let mut batch = InFlight {
            outcome: BatchOutcome {
                fetched: rows.len(),
                ..BatchOutcome::default()
            },
            sent: Vec::with_capacity(rows.len()),
            failed_ids: Vec::new(),
            errors: Vec::new(),
            failed_keys: HashSet::new(),
        };
        for row in rows {
            if batch.outcome.producer_fatal
                || failed_keys.contains(&row.aggregate_id)
                || batch.failed_keys.contains(&row.aggregate_id)
            {
                batch.outcome.held += 1;
                continue;
            }
            match self.send(&row) {
                Ok((topic, pending)) => batch.sent.push((row, topic, pending)),
                Err(failure) => {
                    count_published(UNRESOLVED_TOPIC, "failed");
                    batch.outcome.producer_fatal |= failure.fatal;
                    batch.failed_keys.insert(row.aggregate_id);
                    batch.failed_ids.push(row.id);
                    batch.errors.push(failure.error);
                }
            }
        }
        batch
    }

    /// Awaits a batch's delivery reports and sorts its rows into delivered and failed.
    async fn await_reports(&self, batch: InFlight<'_>) -> Acked {
        let InFlight {
            mut outcome,
            sent,
            mut failed_ids,
            mut errors,
            mut failed_keys,
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
                Err(error) => {
                    outcome.producer_fatal |= error.is_fatal();
                    count_published(topic, "failed");
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
        }
    }

    /// Records an acknowledged batch in the open transaction: delivered rows leave the
    /// queue in one statement; failed ones get an attempt, back off, and park after
    /// `relay.max_attempts`.
    async fn settle(&self, tx: &mut PgConnection, acked: Acked) -> Result<Settled, RelayError> {
        let Acked {
            mut outcome,
            sent_ids,
            failed_ids,
            errors,
            failed_keys: _,
        } = acked;
        let dequeued = store::mark_sent(&mut *tx, &sent_ids).await?;
        let policy = store::RetryPolicy {
            max_attempts: self.config.max_attempts,
            base_ms: self.config.retry_base_ms,
            max_ms: self.config.retry_max_ms,
        };
        outcome.parked = store::record_failures(&mut *tx, &failed_ids, &errors, policy).await?;
        Ok(Settled { outcome, dequeued })
    }

    /// Logs and counts what a committed batch did.
    fn after_commit(&self, settled: &Settled) {
        let outcome = &settled.outcome;
        self.dequeued.fetch_add(settled.dequeued, Ordering::Relaxed);
        if outcome.parked > 0 {
            tracing::error!(
                parked = outcome.parked,
                "outbox rows parked after too many failed attempts; see `wallet-hub outbox parked`"
            );
        }
        if outcome.failed > 0 || outcome.held > 0 {
            tracing::info!(?outcome, "outbox batch left rows pending");
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
            let event = event_bindings::encode(&row.outgoing(event_type))
                .map_err(|e| SendFailure::from(telemetry::error_chain(&e)))?;
            let pending = self
                .producer
                .send(topic, &row.aggregate_id.to_string(), event, &span.headers())
                .map_err(|e| SendFailure {
                    fatal: e.is_fatal(),
                    error: telemetry::error_chain(&e),
                })?;
            Ok((topic, Box::pin(pending) as DeliveryFuture))
        });
        if let Err(failure) = &result {
            tracing::warn!(outbox_id = row.id, event_id = %row.event_id, error = %failure.error, "outbox row cannot be sent; will retry");
        }
        result
    }
}

/// A batch handed to the producer, its delivery reports pending.
struct InFlight<'r> {
    outcome: BatchOutcome,
    /// Rows enqueued, with their topic and delivery report, in id order.
    sent: Vec<(PendingRow, &'r str, DeliveryFuture)>,
    /// Rows that could not be enqueued, and why.
    failed_ids: Vec<i64>,
    errors: Vec<String>,
    /// Keys with a failed row in this batch.
    failed_keys: HashSet<Uuid>,
}

/// A batch whose delivery reports are all in, not yet recorded.
struct Acked {
    outcome: BatchOutcome,
    /// Delivered rows.
    sent_ids: Vec<i64>,
    /// Rows not delivered, with their errors (same order).
    failed_ids: Vec<i64>,
    errors: Vec<String>,
    /// Keys with a failed row: their later rows wait.
    failed_keys: HashSet<Uuid>,
}

/// A batch whose delivery reports are recorded.
struct Settled {
    outcome: BatchOutcome,
    /// Rows that left the queue.
    dequeued: u64,
}

/// Why a row could not be enqueued.
struct SendFailure {
    /// The error chain, kept on the row.
    error: String,
    /// librdkafka declared the producer unusable: recreate it.
    fatal: bool,
}

impl From<String> for SendFailure {
    fn from(error: String) -> Self {
        Self {
            error,
            fatal: false,
        }
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

    /// Updates the outbox gauges from one `outbox status` query.
    async fn sample_gauges(&self) {
        match crate::ops::status(&self.pool).await {
            #[allow(clippy::cast_precision_loss)] // counts and ages far below 2^53
            Ok(status) => {
                metrics::gauge!(OUTBOX_QUEUE_SIZE).set(status.pending as f64);
                metrics::gauge!(OUTBOX_PARKED_TOTAL).set(status.parked as f64);
                metrics::gauge!(OUTBOX_OLDEST_PENDING_AGE_SECONDS)
                    .set(status.oldest_pending_age_seconds as f64);
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

/// One batch's delivered rows by topic: metric handles are looked up (and their label
/// strings built) once per topic and batch, not once per row.
#[derive(Default)]
struct DeliveredByTopic<'a> {
    topics: Vec<(&'a str, u64, metrics::Histogram)>,
}

impl<'a> DeliveredByTopic<'a> {
    fn record(&mut self, topic: &'a str, commit_to_ack: Duration) {
        let index = match self.topics.iter().position(|(t, ..)| *t == topic) {
            Some(index) => index,
            None => {
                let histogram = metrics::histogram!(
                    OUTBOX_PUBLISH_LATENCY_SECONDS, "topic" => topic.to_owned()
                );
                self.topics.push((topic, 0, histogram));
                self.topics.len() - 1
            }
        };
        let (_, count, histogram) = &mut self.topics[index];
        *count += 1;
        histogram.record(commit_to_ack.as_secs_f64());
    }

    /// Adds the batch's counts to `events_published_total{outcome="ok"}`.
    fn count(&self) {
        for (topic, count, _) in &self.topics {
            metrics::counter!(EVENTS_PUBLISHED_TOTAL, "topic" => (*topic).to_owned(), "outcome" => "ok")
                .increment(*count);
        }
    }
}

/// Topic label of rows whose event type has no binding.
const UNRESOLVED_TOPIC: &str = "unresolved";

fn count_published(topic: &str, outcome: &'static str) {
    metrics::counter!(EVENTS_PUBLISHED_TOTAL, "topic" => topic.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Reads the outbox channel until shutdown and turns every burst of notifications into
/// one wake-up (a `Notify` permit: commits that arrive during a drain are covered by it or
/// by the next one). A broken connection is logged and retried a second later; polling
/// covers the gap.
async fn forward_notifications(
    mut listener: PgListener,
    wake: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    while let Some(received) = shutdown.run_until_cancelled(listener.recv()).await {
        if let Err(error) = received {
            tracing::warn!(
                error = &error as &dyn StdError,
                "outbox LISTEN connection lost; reconnecting"
            );
            if !retry_pause(&shutdown).await {
                return;
            }
        } else {
            wake.notify_one();
        }
    }
}

/// Waits a second before a reconnect; false if shutdown came first.
pub(crate) async fn retry_pause(shutdown: &CancellationToken) -> bool {
    let pause = tokio::time::sleep(Duration::from_secs(1));
    shutdown.run_until_cancelled(pause).await.is_some()
}

/// Resolves at the next wake-up; never without a listener.
async fn woken(wake: Option<&tokio::sync::Notify>) {
    match wake {
        Some(wake) => wake.notified().await,
        None => futures::future::pending().await,
    }
}

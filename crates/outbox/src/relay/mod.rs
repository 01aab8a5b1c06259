//! The relay: publishes pending outbox rows to Kafka.
//!
//! It wakes on a tokio interval (`relay.poll_interval_ms`, 5 s by default) and, when
//! `relay.notify` is on, as soon as a transaction that wrote outbox rows commits: through
//! LISTEN/NOTIFY, or directly when the writer runs in this process and this relay leads
//! ([`crate::CommitWaker`]); once awake it publishes until the queue is empty.
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
//! 2. enqueue the rows as CloudEvents keyed by their aggregate id, in id order and in
//!    rounds: a round takes the earliest remaining row of each key, and the next round
//!    goes out once every delivery report of this one is in. A row is held back, unsent,
//!    behind an earlier row of its key that was not delivered (it failed at enqueue or in
//!    its delivery report, or was held back itself) in this batch or the one before. So
//!    no row is enqueued before every earlier row of its key was acknowledged, and one
//!    wallet's events never overtake each other, on its partition or across topics: once
//!    a consumer sees a wallet's event, the wallet's earlier events are on their topics.
//!    A batch in which no key repeats is one round;
//! 3. await all delivery reports, then in one transaction delete the delivered rows from
//!    the queue (the `outbox` log keeps them for replay) and record an attempt and the
//!    error on the others: a failed row backs off exponentially with jitter and parks after
//!    `relay.max_attempts` (later rows of its key wait behind it, other keys flow) until an
//!    operator redrives it. A crash before that commit re-sends the batch with the same
//!    CloudEvent ids (at least once; consumers dedupe).
//!
//! **Why rounds, and not the producer's ordering:** the idempotent producer keeps the
//! order of what it delivers and never duplicates on its own retries, but it does not stop
//! at a gap. When the broker refuses a MessageSet for good (a record larger than its
//! topic's `max.message.bytes`, no authorization), librdkafka fails those records and goes
//! on with the partition's later MessageSets, bumping its epoch and renumbering them
//! (librdkafka INTRODUCTION.md, "Standard errors"); records that time out in its queue are
//! skipped the same way. So with two rows of a wallet in flight, the second could land
//! before the first, which would follow on retry. `enable.gapless.guarantee` would instead
//! make such a refusal a fatal error of the whole producer, failing everything queued: one
//! bad record would stop every wallet (the relay would recreate its producer and open its
//! circuit each time). It also leaves out timeouts, is marked experimental, and orders one
//! partition only, while a wallet's events go to several topics. Hence at most one row per
//! key in flight. The cost: a batch takes one broker round trip more for every further
//! row of its most repeated key, and none when no key repeats in it. Those later rounds
//! run while the relay's connection records the previous batch and reads the next
//! (below), so they add to a batch's time only where they outlast that; a backlog of one
//! hot wallet goes out one row per round trip.
//!
//! **Pipelined:** batch N+1 is enqueued as soon as all of N's delivery reports are in,
//! holding back the rows behind those N did not deliver (N+1 was read while N was in
//! flight, without N's rows). While it is encoded and enqueued, round after round, the
//! relay's connection records N's outcome, commits, and reads N+2 (excluding N+1's rows).
//! So Kafka, PostgreSQL and the encoder work at once (the encoder yields to the session's
//! statements every few hundred rows), and the order guarantees are those of one batch at
//! a time. (A crash before N's record commits re-sends N and N+1 with the
//! same CloudEvent ids.)
//!
//! **Circuit breaking:** only a failure of the record itself (too large, an invalid or
//! unknown topic, no authorization, an event that cannot be encoded) counts an attempt and
//! can park a row. A failure of the infrastructure (no broker, deliveries timing out, a
//! full local queue, a fatal producer error) counts nothing: the relay records what was
//! delivered, opens its circuit, stops fetching and sending, and probes the brokers with
//! backoff until they answer; then it drains at once. So a broker outage of any length
//! parks nothing. The state is in [`RelayStatus`] (readiness, `outbox_relay_state`).
//!
//! Beside the publishing loop, a maintenance task wakes once a second: it samples the
//! outbox gauges, deletes rows past their retention in bounded batches and, after
//! `relay.vacuum_after_rows` rows left the queue, vacuums it. None of that runs between
//! batches, so it never adds to an event's latency.
//!
//! **Layout**, one job per module:
//! - this module: [`RelayConfig`] and the [`Relay`] loop that ties the others together;
//! - `leadership`: the relay's own session and the advisory lock it holds while it leads;
//! - `drain`: the pipeline above, and recording each batch's outcome in the queue;
//! - `batch`: one batch through Kafka: encode, enqueue in order and in rounds of one row
//!   per key, hold back failed keys, await the delivery reports;
//! - `circuit`: the relay's state and the wait for the brokers while its circuit is open;
//! - `published`: the per-topic publish metrics, batched per batch;
//! - `maintenance`: gauges, retention and vacuum, off the publishing path;
//! - `listen`: LISTEN/NOTIFY wake-ups.

mod batch;
mod circuit;
mod drain;
mod leadership;
mod listen;
mod maintenance;
mod published;

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use event_bindings::EventBindings;
use kafka::{EventProducer, KafkaProbe, ProduceError};
use serde::Deserialize;
use sqlx::PgPool;
use telemetry::metrics::{KAFKA_PRODUCER_QUEUE_DEPTH, KAFKA_PRODUCER_RECREATED_TOTAL};
use tokio_util::sync::CancellationToken;

use crate::LocalWake;
pub use circuit::{RelayState, RelayStatus};
use leadership::Leadership;
pub(crate) use listen::retry_pause;
use maintenance::Maintenance;

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
    /// Failed attempts after which a row parks until `wallet-hub outbox redrive`. Only
    /// failures of the record count; an unreachable broker counts nothing.
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
    /// A leader that goes silent (no FIN: its host lost power or its network) loses the
    /// relay lock after about this long, and a standby takes over at its next poll tick.
    pub leader_timeout_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox database query failed")]
    Database(#[from] sqlx::Error),
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
    /// The relay's own session, and whether it holds the relay lock.
    leadership: Leadership,
    /// Asks the brokers for metadata while the circuit is open.
    probe: KafkaProbe,
    status: Arc<RelayStatus>,
    /// How this process's writers wake the relay while it leads (its flag is kept by
    /// `leadership`).
    local: LocalWake,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        kafka: kafka::KafkaConfig,
        bindings: EventBindings,
        config: RelayConfig,
    ) -> Result<Self, ProduceError> {
        let local = LocalWake::default();
        Ok(Self {
            pool,
            producer: EventProducer::new(&kafka)?,
            probe: KafkaProbe::new(&kafka).map_err(ProduceError::Create)?,
            status: Arc::new(RelayStatus::default()),
            kafka,
            bindings,
            config,
            dequeued: Arc::new(AtomicU64::new(0)),
            leadership: Leadership::new(Arc::clone(&local.leading)),
            local,
        })
    }

    /// The relay as this process's writers wake it ([`crate::CommitWaker::with_local`]).
    pub fn local_wake(&self) -> LocalWake {
        self.local.clone()
    }

    /// The relay's state, for readiness.
    pub fn status(&self) -> Arc<RelayStatus> {
        Arc::clone(&self.status)
    }

    /// Runs until `shutdown` is cancelled. The batches in flight are finished first.
    ///
    /// A relay that does not lead (another holds the lock) tries again on every poll tick,
    /// so it takes over within `relay.poll_interval_ms` of the leader's death.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let maintenance = tokio::spawn(
            Maintenance::new(
                self.pool.clone(),
                self.config.clone(),
                Arc::clone(&self.dequeued),
            )
            .run(shutdown.clone()),
        );
        let wake = if self.config.notify {
            listen::wake_on_commits(&self.pool, &shutdown).await
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
        // After the circuit closes the relay drains at once, without waiting for a wake-up.
        let mut resume = false;
        loop {
            let ticked = std::mem::take(&mut resume)
                || tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = interval.tick() => true,
                    () = listen::woken(wake.as_deref()) => false,
                    () = self.local.wake.notified() => false,
                };
            // A standby relay only competes for the lock on ticks: commits wake every relay.
            if !self.leadership.is_leading() && !ticked {
                continue;
            }
            let leader_timeout = Duration::from_millis(self.config.leader_timeout_ms);
            let interrupted = match self.leadership.take(&self.pool, leader_timeout).await {
                Ok(Some(mut conn)) => {
                    self.status.set(RelayState::Closed);
                    let drained = self.drain(&mut conn, &shutdown).await;
                    self.leadership.keep(conn, drained.is_ok());
                    drained.unwrap_or_else(|error| {
                        tracing::error!(
                            error = &error as &dyn StdError,
                            "outbox relay failed; reconnecting"
                        );
                        drain::Interrupted::default()
                    })
                }
                Ok(None) => {
                    self.status.set(RelayState::Standby);
                    drain::Interrupted::default()
                }
                Err(error) => {
                    tracing::warn!(
                        error = &error as &dyn StdError,
                        "cannot reach the database for the relay lock; retrying next tick"
                    );
                    drain::Interrupted::default()
                }
            };
            if interrupted.producer_fatal {
                self.replace_producer(Replacement::Fatal);
            }
            metrics::gauge!(KAFKA_PRODUCER_QUEUE_DEPTH).set(f64::from(self.producer.in_flight()));
            if let Some(reason) = interrupted.outage {
                tracing::error!(
                    error = %reason,
                    "Kafka failed; the relay's circuit is open: nothing is sent, and no \
                     attempt counted, until the brokers answer"
                );
                self.status.set(RelayState::Open {
                    since: chrono::Utc::now(),
                    reason,
                });
                if !circuit::wait_for_brokers(&self.probe, &shutdown).await {
                    break;
                }
                // A producer that lived through the outage can stay wedged: after a broker
                // freeze every delivery timed out for minutes while the brokers answered
                // (the soak, docs/faults.md). A new one starts clean; what the old one still
                // held was never acknowledged, so those rows are in the queue and go again.
                self.replace_producer(Replacement::AfterOutage);
                self.status.set(RelayState::Closed);
                resume = true;
            }
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
        self.leadership.close().await;
        tracing::info!("outbox relay stopped");
    }

    /// Replaces the producer with a new one. The old one is closed on a thread of its own:
    /// dropping purges its queue and waits for the purge's reports.
    fn replace_producer(&mut self, why: Replacement) {
        match EventProducer::new(&self.kafka) {
            Ok(producer) => {
                // The old one closes on a thread of its own (`kafka::Detached`).
                drop(std::mem::replace(&mut self.producer, producer));
                match why {
                    Replacement::Fatal => {
                        tracing::warn!("Kafka producer hit a fatal error; recreated it");
                    }
                    Replacement::AfterOutage => {
                        tracing::info!("Kafka producer recreated after the outage");
                    }
                }
                metrics::counter!(KAFKA_PRODUCER_RECREATED_TOTAL, "reason" => why.label())
                    .increment(1);
            }
            Err(error) => {
                tracing::error!(
                    error = &error as &dyn StdError,
                    "cannot recreate the Kafka producer; retrying next round"
                );
            }
        }
    }
}

/// Why the relay replaces its producer.
#[derive(Debug, Clone, Copy)]
enum Replacement {
    /// librdkafka declared it unusable (fatal error, fenced).
    Fatal,
    /// The circuit closes after an outage.
    AfterOutage,
}

impl Replacement {
    fn label(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::AfterOutage => "outage",
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_layout_in_the_module_docs_names_every_module_of_the_folder_and_no_other() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/src/relay");
        let mut modules: Vec<String> = std::fs::read_dir(folder)
            .expect("the relay folder")
            .map(|entry| entry.expect("a folder entry").file_name())
            .filter_map(|name| name.to_str()?.strip_suffix(".rs").map(str::to_owned))
            .filter(|name| name != "mod")
            .collect();
        modules.sort();
        let mut listed: Vec<&str> = include_str!("mod.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! - `")?.split_once("`:"))
            .map(|(name, _)| name)
            .collect();
        listed.sort_unstable();
        assert_eq!(listed, modules);
    }
}

//! The relay's housekeeping, off the publishing path: once a second it samples the outbox
//! gauges, deletes rows past their retention in bounded batches and, after
//! `relay.vacuum_after_rows` rows left the queue, vacuums it.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use telemetry::metrics::{
    OUTBOX_OLDEST_PENDING_AGE_SECONDS, OUTBOX_PARKED_TOTAL, OUTBOX_QUEUE_SIZE,
};
use tokio_util::sync::CancellationToken;

use super::RelayConfig;
use crate::store;

/// How often the maintenance task wakes.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// Retention statements per maintenance round at most.
const RETENTION_ROUNDS: u32 = 10;

pub(super) struct Maintenance {
    pool: PgPool,
    config: RelayConfig,
    /// Rows that left the queue since its last vacuum (the drain adds to it).
    dequeued: Arc<AtomicU64>,
}

impl Maintenance {
    pub(super) fn new(pool: PgPool, config: RelayConfig, dequeued: Arc<AtomicU64>) -> Self {
        Self {
            pool,
            config,
            dequeued,
        }
    }

    pub(super) async fn run(self, shutdown: CancellationToken) {
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

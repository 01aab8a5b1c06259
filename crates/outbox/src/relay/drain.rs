//! The pipelined drain (see the relay's module docs): publishes until the queue is empty,
//! overlapping Kafka, PostgreSQL and the encoder, and records each acknowledged batch in
//! the queue.

use std::sync::atomic::Ordering;

use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use super::batch::{Acked, BatchOutcome, InFlight};
use super::{Relay, RelayError};
use crate::store;

/// Why a drain stopped before the queue was empty.
#[derive(Debug, Default)]
pub(super) struct Interrupted {
    /// The producer reported a fatal error: recreate it.
    pub(super) producer_fatal: bool,
    /// Kafka failed (the first error): open the circuit.
    pub(super) outage: Option<String>,
}

/// A batch whose delivery reports are recorded.
struct Settled {
    outcome: BatchOutcome,
    /// Rows that left the queue.
    dequeued: u64,
}

impl Relay {
    /// Publishes until the queue is empty. Once batch N's delivery reports are in, batch
    /// N+1 is encoded and enqueued (in rounds when a key repeats in it) while, on the
    /// session, N's outcome is recorded and committed and then N+2 is read. Stops early,
    /// after recording what was delivered, on a fatal producer error or an infrastructure
    /// failure, and says which.
    pub(super) async fn drain(
        &self,
        conn: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<Interrupted, RelayError> {
        let limit = i64::from(self.config.batch_size);
        let mut next = store::fetch_pending(&mut *conn, limit, &[]).await?;
        let mut in_flight: Option<InFlight<'_>> = None;
        loop {
            let mut acked = match in_flight.take() {
                Some(batch) => Some(self.await_reports(batch).await),
                None => None,
            };
            let undelivered = acked
                .as_mut()
                .map(|acked| std::mem::take(&mut acked.undelivered))
                .unwrap_or_default();
            let interrupted = Interrupted {
                producer_fatal: acked
                    .as_ref()
                    .is_some_and(|acked| acked.outcome.producer_fatal),
                outage: acked.as_mut().and_then(|acked| acked.outage.take()),
            };
            if interrupted.producer_fatal || interrupted.outage.is_some() || next.is_empty() {
                if let Some(acked) = acked {
                    self.record(&mut *conn, acked).await?;
                }
                // After a fatal error or an outage the rows read meanwhile stay queued,
                // for the new producer or for when the circuit closes.
                return Ok(interrupted);
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
            // One task runs both: the statements are sent first, and PostgreSQL runs them
            // while this task encodes (the encoding yields every few hundred rows, so the
            // read follows the record without waiting for the whole batch to be encoded)
            // and while the batch's later rounds (keys that repeat) wait for their turn.
            let (read, batch) = tokio::join!(on_session, self.dispatch(rows, &undelivered));
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

    /// Records an acknowledged batch in the open transaction: delivered rows leave the
    /// queue in one statement; failed ones get an attempt, back off, and park after
    /// `relay.max_attempts`.
    async fn settle(&self, tx: &mut PgConnection, acked: Acked) -> Result<Settled, RelayError> {
        let Acked {
            mut outcome,
            sent_ids,
            failed_ids,
            errors,
            undelivered: _,
            outage: _,
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
        if outcome.failed > 0 || outcome.held > 0 || outcome.unsent > 0 {
            tracing::info!(?outcome, "outbox batch left rows pending");
        }
    }
}

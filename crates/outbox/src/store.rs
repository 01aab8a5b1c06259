//! The relay's queries over the `outbox` table.
//!
//! The statements that `scripts/bench-relay` runs as well live in `crates/outbox/sql/`,
//! one per file, included here with `include_str!` and read as they are by the benchmark.
//! Those files hold the statement alone, without comments or a trailing semicolon:
//! `pg_stat_activity` and sqlx's slow-statement log show the text from its start, and
//! pgbench ends a query with `\aset` in place of the semicolon.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// A row waiting to be published.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRow {
    pub id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_id: Uuid,
    /// The JSON payload as PostgreSQL prints it (`payload::text`), sent as is.
    pub payload: String,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// When the row was committed (for the commit-to-ack latency).
    pub created_at: DateTime<Utc>,
    /// The event's place in its wallet's stream (the CloudEvent `sequence`).
    pub sequence: Option<i64>,
}

impl PendingRow {
    /// The row as an event to encode, once its type is resolved.
    pub fn outgoing(&self, event_type: domain::EventType) -> event_bindings::OutgoingEvent<'_> {
        event_bindings::OutgoingEvent {
            event_id: self.event_id,
            event_type,
            aggregate_id: self.aggregate_id,
            occurred_at: self.occurred_at,
            payload: &self.payload,
            traceparent: self.traceparent.as_deref(),
            tracestate: self.tracestate.as_deref(),
            sequence: self.sequence,
        }
    }

    /// The W3C context stored with the row.
    pub fn trace(&self) -> telemetry::TraceHeaders {
        telemetry::TraceHeaders {
            traceparent: self.traceparent.clone(),
            tracestate: self.tracestate.clone(),
        }
    }
}

/// Takes the relay lock for this session (until the connection ends); false if another
/// relay holds it. One relay publishes at a time, so one wallet's events reach Kafka in
/// commit order even when several service instances run a relay. The lock's key is
/// `0x7761_6c6c_6574` ("wallet" in ASCII), written in decimal in the SQL.
pub async fn try_lock_relay(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(include_str!("../sql/try_lock_relay.sql"))
        .fetch_one(conn)
        .await
}

/// Settings of the relay's own session.
///
/// - Commit without waiting for the WAL flush: a mark-sent lost in a database crash only
///   means those events are published again, with the same CloudEvent ids (at least once
///   holds), and every batch saves an fsync.
/// - The server gives up on this session's TCP connection once its client has been silent
///   for about `leader_timeout`: keepalive probes start after half of it and the connection
///   is dropped after four unanswered ones, and unacknowledged data is given up after all of
///   it (`tcp_user_timeout`). Dropping the session frees the relay lock, so a leader whose
///   host loses power or its network without a FIN is replaced by a standby within that
///   bound, not after the kernel's two hours.
pub async fn prepare_relay_session(
    conn: &mut PgConnection,
    leader_timeout: std::time::Duration,
) -> Result<(), sqlx::Error> {
    let keepalive = Keepalive::within(leader_timeout);
    sqlx::query(include_str!("../sql/prepare_relay_session.sql"))
        .bind(keepalive.idle_s.to_string())
        .bind(keepalive.interval_s.to_string())
        .bind(keepalive.count.to_string())
        .bind(keepalive.user_timeout_ms.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// TCP keepalive settings that detect a silent peer within a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub idle_s: u64,
    pub interval_s: u64,
    pub count: u64,
    pub user_timeout_ms: u64,
}

impl Keepalive {
    /// Probes start after half of `bound`; four unanswered probes, spread over the other
    /// half, end the connection. Whole seconds (PostgreSQL's unit), at least one each.
    pub fn within(bound: std::time::Duration) -> Self {
        const COUNT: u64 = 4;
        let seconds = bound.as_secs().max(2);
        let idle_s = seconds / 2;
        let interval_s = ((seconds - idle_s) / COUNT).max(1);
        Self {
            idle_s,
            interval_s,
            count: COUNT,
            user_timeout_ms: u64::try_from(bound.as_millis())
                .unwrap_or(u64::MAX)
                .max(1_000),
        }
    }
}

/// The oldest publishable rows, by id. Claimed by state (queued in `outbox_pending`),
/// never by an id high-water mark, so a transaction that commits late with a lower id is
/// still found. A row is publishable unless it is parked or backing off, or an earlier
/// queued row of its key is (then it waits, keeping the key's order); that check probes
/// `outbox_pending_blocked`, which holds only such rows.
///
/// The batch's ids are chosen from the narrow queue first, as an array, and only then is
/// the log (kept for replay) read by primary key for exactly those rows, already in id
/// order. `exclude` are rows already in flight (enqueued, not yet recorded); `NOT IN` over
/// them is a hashed subplan. Both hold in the generic plan too, so PostgreSQL plans the
/// statement once per session (a fetch at a quiet moment took 0.1-0.2 ms, against about
/// 0.8 ms when every fetch was planned afresh for its ids).
pub async fn fetch_pending(
    conn: &mut PgConnection,
    limit: i64,
    exclude: &[i64],
) -> Result<Vec<PendingRow>, sqlx::Error> {
    sqlx::query_as(include_str!("../sql/fetch_pending.sql"))
        .bind(limit)
        .bind(exclude)
        .fetch_all(conn)
        .await
}

/// Marks rows sent, in one statement: they leave the queue (the log keeps them for
/// replay). Returns how many were still queued.
pub async fn mark_sent(conn: &mut PgConnection, ids: &[i64]) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(include_str!("../sql/mark_sent.sql"))
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// How failed rows are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after which a row parks.
    pub max_attempts: i32,
    /// First backoff; doubles with every attempt, with +-50% jitter.
    pub base_ms: i64,
    pub max_ms: i64,
}

/// Records one failed attempt per row, with its error, in one statement: the row backs
/// off exponentially (with jitter), and parks once it reached `max_attempts`.
/// Returns the number of rows that parked.
pub async fn record_failures(
    conn: &mut PgConnection,
    ids: &[i64],
    errors: &[String],
    policy: RetryPolicy,
) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let parked: i64 = sqlx::query_scalar(
        "WITH failed AS ( \
             UPDATE outbox_pending p SET attempts = attempts + 1, last_error = failed.error, \
                 next_attempt_at = now() + make_interval(secs => \
                     least($5::float8, $4::float8 * power(2, least(attempts, 30))) \
                     * (0.5 + random()) / 1000.0), \
                 parked_at = CASE WHEN attempts + 1 >= $3 THEN now() END \
             FROM unnest($1::bigint[], $2::text[]) AS failed(id, error) \
             WHERE p.id = failed.id \
             RETURNING parked_at) \
         SELECT count(*) FROM failed WHERE parked_at IS NOT NULL",
    )
    .bind(ids)
    .bind(errors)
    .bind(policy.max_attempts)
    .bind(policy.base_ms)
    .bind(policy.max_ms)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(parked).unwrap_or(0))
}

/// Seconds since the oldest unsent row (the lowest queued id) was written; 0 when nothing
/// is pending.
pub async fn oldest_pending_age_seconds<'e>(db: impl PgExecutor<'e>) -> Result<u64, sqlx::Error> {
    let age: i64 = sqlx::query_scalar(
        "SELECT COALESCE(( \
             SELECT EXTRACT(EPOCH FROM now() - o.created_at)::bigint FROM outbox o \
             WHERE o.id = (SELECT min(id) FROM outbox_pending)), 0)",
    )
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(age).unwrap_or(0))
}

/// Deletes up to `batch` published rows written more than `retention_hours` ago, oldest
/// first; a row still queued (pending, backing off or parked) is never deleted. Returns
/// how many went.
pub async fn delete_sent_before<'e>(
    db: impl PgExecutor<'e>,
    retention_hours: u32,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM outbox WHERE id = ANY(ARRAY( \
             SELECT o.id FROM outbox o \
             WHERE o.created_at < now() - make_interval(hours => $1) \
               AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) \
             ORDER BY o.created_at LIMIT $2))",
    )
    .bind(i32::try_from(retention_hours).unwrap_or(i32::MAX))
    .bind(batch)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Vacuums the queue table: every published row leaves a dead tuple and a dead index
/// entry there, which the relay's ordered scan would otherwise step over on every batch
/// until autovacuum comes round. Skipped when autovacuum is already at it. Needs table
/// ownership (else PostgreSQL skips it with a warning).
pub async fn vacuum_queue<'e>(db: impl PgExecutor<'e>) -> Result<(), sqlx::Error> {
    sqlx::query("VACUUM (ANALYZE, SKIP_LOCKED) outbox_pending")
        .execute(db)
        .await?;
    Ok(())
}

//! Operator actions on the outbox (`wallet-hub outbox ...`): status, parked rows, redrive,
//! replay.

use chrono::{DateTime, Utc};
use event_bindings::EventBindings;
use futures::future::join_all;
use kafka::EventProducer;
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::store::PendingRow;

/// Pending work at a glance.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Status {
    pub pending: i64,
    pub parked: i64,
    /// Seconds since the oldest unsent row was written (0 when none).
    pub oldest_pending_age_seconds: i64,
}

/// Per event type: events written in the last minute and the last five that have been
/// published (have left the queue) by now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Rate {
    pub event_type: String,
    pub last_minute: i64,
    pub last_five_minutes: i64,
}

pub async fn status<'e>(db: impl PgExecutor<'e>) -> Result<Status, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) AS pending, \
                count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked, \
                COALESCE(( \
                    SELECT EXTRACT(EPOCH FROM now() - o.created_at)::bigint FROM outbox o \
                    WHERE o.id = (SELECT min(id) FROM outbox_pending)), 0) \
                    AS oldest_pending_age_seconds \
         FROM outbox_pending",
    )
    .fetch_one(db)
    .await
}

pub async fn rates<'e>(db: impl PgExecutor<'e>) -> Result<Vec<Rate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.event_type, \
                count(*) FILTER (WHERE o.created_at > now() - interval '1 minute') AS last_minute, \
                count(*) AS last_five_minutes \
         FROM outbox o \
         WHERE o.created_at > now() - interval '5 minutes' \
           AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) \
         GROUP BY o.event_type ORDER BY o.event_type",
    )
    .fetch_all(db)
    .await
}

/// A parked row, for `outbox parked`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Parked {
    pub id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_id: Uuid,
    pub attempts: i32,
    pub parked_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

pub async fn parked<'e>(db: impl PgExecutor<'e>, limit: i64) -> Result<Vec<Parked>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id, o.event_id, o.event_type, p.aggregate_id, p.attempts, p.parked_at, \
                p.last_error \
         FROM outbox_pending p JOIN outbox o ON o.id = p.id \
         WHERE p.parked_at IS NOT NULL ORDER BY p.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Which parked rows to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveSelection {
    Id(i64),
    Key(Uuid),
    All,
}

/// Releases parked rows: attempts start again from zero, and the relay picks them up
/// (and, behind them, the rows of the same key that waited) in id order.
pub async fn redrive<'e>(
    db: impl PgExecutor<'e>,
    selection: &RedriveSelection,
) -> Result<u64, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(
        "UPDATE outbox_pending SET parked_at = NULL, attempts = 0, next_attempt_at = NULL \
         WHERE parked_at IS NOT NULL",
    );
    match selection {
        RedriveSelection::Id(id) => {
            query.push(" AND id = ").push_bind(*id);
        }
        RedriveSelection::Key(key) => {
            query.push(" AND aggregate_id = ").push_bind(*key);
        }
        RedriveSelection::All => {}
    }
    Ok(query.build().execute(db).await?.rows_affected())
}

/// Which already-sent events to publish again. Every given bound applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySelection {
    pub from_id: Option<i64>,
    pub to_id: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub aggregate_id: Option<Uuid>,
    pub event_type: Option<String>,
}

impl ReplaySelection {
    fn push_filters(&self, query: &mut QueryBuilder<Postgres>) {
        query.push(" WHERE NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = outbox.id)");
        if let Some(from) = self.from_id {
            query.push(" AND id >= ").push_bind(from);
        }
        if let Some(to) = self.to_id {
            query.push(" AND id <= ").push_bind(to);
        }
        if let Some(since) = self.since {
            query.push(" AND occurred_at >= ").push_bind(since);
        }
        if let Some(until) = self.until {
            query.push(" AND occurred_at < ").push_bind(until);
        }
        if let Some(aggregate) = self.aggregate_id {
            query.push(" AND aggregate_id = ").push_bind(aggregate);
        }
        if let Some(event_type) = &self.event_type {
            query
                .push(" AND event_type = ")
                .push_bind(event_type.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

pub async fn replay_count<'e>(
    db: impl PgExecutor<'e>,
    selection: &ReplaySelection,
) -> Result<i64, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new("SELECT count(*) FROM outbox");
    selection.push_filters(&mut query);
    query.build_query_scalar().fetch_one(db).await
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay query failed")]
    Database(#[from] sqlx::Error),
    #[error("{origin} cannot be replayed: {reason}")]
    Row { origin: Origin, reason: String },
}

/// Where a replayed event was read: its outbox row, or its wallet's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Outbox(i64),
    Stream(Uuid),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Outbox(id) => write!(f, "outbox row {id}"),
            Origin::Stream(event_id) => write!(f, "stream event {event_id}"),
        }
    }
}

/// One stored event to publish again: where it was read, the event (with its original id
/// and sequence) and the trace context it was stored with.
#[derive(Debug, Clone)]
pub struct Republish<'a> {
    pub origin: Origin,
    pub event: event_bindings::OutgoingEvent<'a>,
    pub trace: telemetry::TraceHeaders,
}

/// Publishes `events` again, in the order given, keyed by their aggregate ids, as the
/// relay encodes them (`replay` of the outbox and of the streams share it), and waits for
/// every delivery; how many were published.
pub async fn publish(
    producer: &EventProducer,
    bindings: &EventBindings,
    events: &[Republish<'_>],
) -> Result<u64, ReplayError> {
    let mut deliveries = Vec::with_capacity(events.len());
    for republish in events {
        let fail = |reason: String| ReplayError::Row {
            origin: republish.origin,
            reason,
        };
        let topic = bindings.destination(republish.event.event_type);
        let event = bindings
            .encode(&republish.event)
            .map_err(|e| fail(e.to_string()))?;
        let pending = producer
            .send(
                topic,
                &republish.event.aggregate_id.to_string(),
                event,
                &republish.trace,
            )
            .map_err(|e| fail(e.to_string()))?;
        deliveries.push((republish.origin, pending));
    }
    let (origins, pending): (Vec<Origin>, Vec<_>) = deliveries.into_iter().unzip();
    let mut published = 0;
    for (origin, report) in origins.into_iter().zip(join_all(pending).await) {
        report.map_err(|e| ReplayError::Row {
            origin,
            reason: e.to_string(),
        })?;
        published += 1;
    }
    Ok(published)
}

/// Publishes the selected, already-sent events again, in id order and with their
/// original CloudEvent ids (consumers dedupe them), in pages; `progress` is told how many
/// were published after each page. The outbox rows are not changed.
pub async fn replay(
    pool: &PgPool,
    producer: &EventProducer,
    bindings: &EventBindings,
    selection: &ReplaySelection,
    page_size: i64,
    mut progress: impl FnMut(u64),
) -> Result<u64, ReplayError> {
    let mut after_id = 0_i64;
    let mut published = 0_u64;
    loop {
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT id, event_id, event_type, aggregate_id, payload::text AS payload, traceparent, tracestate, \
                    occurred_at, created_at, sequence FROM outbox",
        );
        selection.push_filters(&mut query);
        query
            .push(" AND id > ")
            .push_bind(after_id)
            .push(" ORDER BY id LIMIT ")
            .push_bind(page_size);
        let rows: Vec<PendingRow> = query.build_query_as().fetch_all(pool).await?;
        let Some(last) = rows.last() else {
            return Ok(published);
        };
        after_id = last.id;
        let events = rows
            .iter()
            .map(|row| {
                let (event_type, _) =
                    bindings
                        .resolve(&row.event_type)
                        .map_err(|e| ReplayError::Row {
                            origin: Origin::Outbox(row.id),
                            reason: e.to_string(),
                        })?;
                Ok(Republish {
                    origin: Origin::Outbox(row.id),
                    event: row.outgoing(event_type),
                    trace: row.trace(),
                })
            })
            .collect::<Result<Vec<_>, ReplayError>>()?;
        published += publish(producer, bindings, &events).await?;
        progress(published);
    }
}

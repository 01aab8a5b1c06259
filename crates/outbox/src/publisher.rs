//! Writing events to the outbox inside the caller's transaction: publishing a domain event
//! (the design's `OutboxEventPublisher`) is [`publish`] or [`publish_many`], plain
//! functions, since PostgreSQL is the only implementation and there is no state. After the
//! transaction commits, wake the relay with [`crate::CommitWaker::wake`].

use domain::{DomainEvent, EventId};
use sqlx::PgConnection;
use telemetry::TraceHeaders;

/// PostgreSQL channel the relay listens on; [`crate::CommitWaker`] notifies it after
/// writers' commits.
pub const OUTBOX_CHANNEL: &str = "wallet_hub_outbox";

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot serialize {event_type} event {event_id}")]
    Serialize {
        event_type: &'static str,
        event_id: EventId,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot insert {count} events into the outbox")]
    InsertMany {
        count: usize,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot insert {event_type} event {event_id} into the outbox")]
    Insert {
        event_type: &'static str,
        event_id: EventId,
        #[source]
        source: sqlx::Error,
    },
}

const INSERT: &str = "INSERT INTO outbox \
     (event_id, event_type, aggregate_id, payload, correlation_id, traceparent, tracestate, occurred_at, \
      sequence) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

const INSERT_MANY: &str = "INSERT INTO outbox \
     (event_id, event_type, aggregate_id, payload, correlation_id, traceparent, tracestate, occurred_at, \
      sequence) \
     SELECT o.event_id, o.event_type, o.aggregate_id, o.payload, o.correlation_id, o.traceparent, \
            o.tracestate, o.occurred_at, o.sequence \
     FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::jsonb[], $5::text[], $6::text[], \
                 $7::text[], $8::timestamptz[], $9::bigint[]) WITH ORDINALITY \
          AS o(event_id, event_type, aggregate_id, payload, correlation_id, traceparent, \
               tracestate, occurred_at, sequence, n) \
     ORDER BY o.n";

/// An event to publish: the trace context of the request that caused it, and its place in
/// its wallet's stream (`None` for an event of no wallet, such as `UserCreated`).
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub event: &'a DomainEvent,
    pub trace: &'a TraceHeaders,
    pub sequence: Option<i64>,
}

/// Inserts `event` into the outbox on `conn`, which must be inside the transaction that
/// makes the state change. `trace` is the context of the request that caused it;
/// `sequence` its place in its wallet's stream.
#[tracing::instrument(
    name = "outbox.insert",
    skip_all,
    fields(
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "INSERT",
        db.collection.name = "outbox",
        event_type = %event.event_type(),
        event_id = %event.metadata().event_id,
    ),
    err
)]
pub async fn publish(
    conn: &mut PgConnection,
    event: &DomainEvent,
    trace: &TraceHeaders,
    sequence: Option<i64>,
) -> Result<(), OutboxError> {
    let meta = event.metadata();
    let event_type = event.event_type().as_str();
    let payload = event.to_json().map_err(|source| OutboxError::Serialize {
        event_type,
        event_id: meta.event_id,
        source,
    })?;
    sqlx::query(INSERT)
        .bind(meta.event_id.as_uuid())
        .bind(event_type)
        .bind(meta.aggregate_id)
        .bind(payload)
        .bind(&meta.correlation_id)
        .bind(trace.traceparent.as_deref())
        .bind(trace.tracestate.as_deref())
        .bind(meta.occurred_at)
        .bind(sequence)
        .execute(conn)
        .await
        .map_err(|source| OutboxError::Insert {
            event_type,
            event_id: meta.event_id,
            source,
        })?;
    Ok(())
}

/// Inserts several events into the outbox in one statement, in the order given (ids,
/// and so each aggregate's publishing order, follow it), each with the trace context
/// of the request that caused it. Rows are exactly those [`publish`] writes.
#[tracing::instrument(
    name = "outbox.insert",
    skip_all,
    fields(
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "INSERT",
        db.collection.name = "outbox",
        count = events.len(),
    ),
    err
)]
pub async fn publish_many(
    conn: &mut PgConnection,
    events: &[Outgoing<'_>],
) -> Result<(), OutboxError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut aggregates = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut correlations = Vec::with_capacity(events.len());
    let mut parents = Vec::with_capacity(events.len());
    let mut states = Vec::with_capacity(events.len());
    let mut occurred = Vec::with_capacity(events.len());
    let mut sequences = Vec::with_capacity(events.len());
    for Outgoing {
        event,
        trace,
        sequence,
    } in events
    {
        let meta = event.metadata();
        let event_type = event.event_type().as_str();
        let payload = event.to_json().map_err(|source| OutboxError::Serialize {
            event_type,
            event_id: meta.event_id,
            source,
        })?;
        ids.push(meta.event_id.as_uuid());
        types.push(event_type);
        aggregates.push(meta.aggregate_id);
        payloads.push(payload);
        correlations.push(meta.correlation_id.as_str());
        parents.push(trace.traceparent.as_deref());
        states.push(trace.tracestate.as_deref());
        occurred.push(meta.occurred_at);
        sequences.push(*sequence);
    }
    sqlx::query(INSERT_MANY)
        .bind(ids)
        .bind(types)
        .bind(aggregates)
        .bind(payloads)
        .bind(correlations)
        .bind(parents)
        .bind(states)
        .bind(occurred)
        .bind(sequences)
        .execute(conn)
        .await
        .map_err(|source| OutboxError::InsertMany {
            count: events.len(),
            source,
        })?;
    Ok(())
}

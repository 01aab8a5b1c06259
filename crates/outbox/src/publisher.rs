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
     (event_id, event_type, aggregate_id, payload, correlation_id, traceparent, tracestate, occurred_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

const INSERT_MANY: &str = "INSERT INTO outbox \
     (event_id, event_type, aggregate_id, payload, correlation_id, traceparent, tracestate, occurred_at) \
     SELECT o.event_id, o.event_type, o.aggregate_id, o.payload, o.correlation_id, o.traceparent, \
            o.tracestate, o.occurred_at \
     FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::jsonb[], $5::text[], $6::text[], \
                 $7::text[], $8::timestamptz[]) WITH ORDINALITY \
          AS o(event_id, event_type, aggregate_id, payload, correlation_id, traceparent, \
               tracestate, occurred_at, n) \
     ORDER BY o.n";

/// Inserts `event` into the outbox on `conn`, which must be inside the transaction that
/// makes the state change. `trace` is the context of the request that caused it.
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
    events: &[(&DomainEvent, &TraceHeaders)],
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
    for (event, trace) in events {
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
        .execute(conn)
        .await
        .map_err(|source| OutboxError::InsertMany {
            count: events.len(),
            source,
        })?;
    Ok(())
}

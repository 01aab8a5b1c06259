//! Writing events to the outbox inside the caller's transaction.

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

/// Publishes domain events by writing them to the outbox (the design's
/// `OutboxEventPublisher`). PostgreSQL is the only implementation, so this is a concrete
/// type rather than a trait. After the transaction commits, wake the relay with
/// [`crate::CommitWaker::wake`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DomainEventPublisher;

impl DomainEventPublisher {
    pub fn new() -> Self {
        Self
    }

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
        &self,
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
}

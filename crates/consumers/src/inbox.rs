//! The handlers' side of the inbox: which events of a batch it is asked about, and what
//! its answer means for each.

use cloudevents::AttributesReader;
use kafka::{HandlerError, Outcome, ReceivedEvent};
use sqlx::{PgConnection, PgPool};
use store::inbox::InboxKey;

use crate::errors::classify;

/// The inbox keys of `batch`, in order.
pub(crate) fn keys(batch: &[ReceivedEvent]) -> Vec<InboxKey<'_>> {
    batch
        .iter()
        .map(|received| InboxKey {
            source: received.event.source().as_str(),
            id: received.event.id(),
        })
        .collect()
}

/// `Applied` for the events the inbox took as new, `Duplicate` (logged) for the others.
pub(crate) fn outcomes(batch: &[ReceivedEvent], new: &[bool]) -> Vec<Outcome> {
    batch
        .iter()
        .zip(new)
        .map(|(received, &new)| {
            if new {
                Outcome::Applied
            } else {
                tracing::info!(event_id = received.event.id(), "duplicate event skipped");
                Outcome::Duplicate
            }
        })
        .collect()
}

/// Applies one event once: records it in `consumer`'s inbox and, if it is new, runs
/// `apply` in the same transaction, so the effect and the record commit together.
/// `Duplicate` (and no effect) for an event the inbox already holds.
pub(crate) async fn apply_once(
    pool: &PgPool,
    consumer: &str,
    received: &ReceivedEvent,
    apply: impl AsyncFnOnce(&mut PgConnection) -> Result<(), HandlerError>,
) -> Result<Outcome, HandlerError> {
    let batch = std::slice::from_ref(received);
    let mut tx = pool.begin().await.map_err(classify)?;
    let new = store::inbox::record_all(&mut tx, consumer, &keys(batch))
        .await
        .map_err(classify)?;
    if new[0] {
        apply(&mut tx).await?;
    }
    tx.commit().await.map_err(classify)?;
    Ok(outcomes(batch, &new)[0])
}

//! The consumer inbox: one row per (consumer, CloudEvent source, CloudEvent id), written
//! in the transaction of the consumer's effect, so an event takes effect at most once.

use sqlx::PgConnection;

use crate::error::StoreError;

/// Records that `consumer` applies the event, inside the effect's transaction. Returns
/// false when it was already applied: the caller then skips the effect.
pub async fn record(
    conn: &mut PgConnection,
    consumer: &str,
    event_source: &str,
    event_id: &str,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (consumer, event_source, event_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(event_source)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

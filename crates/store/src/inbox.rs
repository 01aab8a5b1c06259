//! The consumer inbox: one row per (consumer, CloudEvent source, CloudEvent id), written
//! in the transaction of the consumer's effects, so an event takes effect at most once.

use std::collections::HashSet;

use sqlx::PgConnection;

use crate::error::StoreError;

/// An event as the inbox knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboxKey<'a> {
    /// The CloudEvent `source`.
    pub source: &'a str,
    /// The CloudEvent `id`.
    pub id: &'a str,
}

/// Records that `consumer` applies `events`, in one statement inside the effects'
/// transaction. Returns, in the order of `events`, whether each one is new: false when it
/// was applied before or appears earlier in `events` (the caller then skips its effect).
pub async fn record_all(
    conn: &mut PgConnection,
    consumer: &str,
    events: &[InboxKey<'_>],
) -> Result<Vec<bool>, StoreError> {
    let sources: Vec<&str> = events.iter().map(|e| e.source).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id).collect();
    // ON CONFLICT DO NOTHING also skips a key repeated inside the statement.
    let inserted: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO inbox (consumer, event_source, event_id) \
         SELECT $1, source, id FROM unnest($2::text[], $3::text[]) AS e(source, id) \
         ON CONFLICT DO NOTHING RETURNING event_source, event_id",
    )
    .bind(consumer)
    .bind(&sources)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let mut new: HashSet<(&str, &str)> = inserted
        .iter()
        .map(|(source, id)| (source.as_str(), id.as_str()))
        .collect();
    // The first occurrence takes the inserted row; a later copy is a duplicate.
    Ok(events
        .iter()
        .map(|e| new.remove(&(e.source, e.id)))
        .collect())
}

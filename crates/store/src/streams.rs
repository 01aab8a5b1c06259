//! The `wallet_events` table: each wallet's event stream (docs/event-sourcing.md).
//! Insert-only for the runtime role; the database refuses a gap (a foreign key from each
//! event to the one before it) and a wallet row whose version is not its stream's last
//! sequence (checked at commit).

use chrono::{DateTime, Utc};
use domain::{Appended, DomainEvent, EventType, WalletId};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::StoreError;

/// Violated by an event whose sequence does not follow one in its wallet's stream.
pub const NO_GAP: &str = "wallet_events_no_gap";

/// One event as its wallet's stream holds it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredEvent {
    pub wallet_id: Uuid,
    pub sequence: i64,
    pub event_id: Uuid,
    /// The domain event type's name (`FundsAdded`).
    pub event_type: String,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    /// Derived from the history of a wallet that existed before streams.
    pub migrated: bool,
}

impl StoredEvent {
    /// The event's type; a name that is no event type is a corrupt row.
    pub fn domain_type(&self) -> Result<EventType, StoreError> {
        self.event_type
            .parse()
            .map_err(|e| StoreError::corrupt("wallet event", self.event_id, Box::new(e)))
    }

    /// The domain event and its place; a row that does not read as one is corrupt.
    pub fn appended(&self) -> Result<Appended, StoreError> {
        let event = DomainEvent::from_json(self.domain_type()?, self.payload.clone())
            .map_err(|e| StoreError::corrupt("wallet event", self.event_id, Box::new(e)))?;
        Ok(Appended {
            sequence: self.sequence,
            event,
        })
    }
}

/// Appends events to their wallets' streams, in one statement, in the order given;
/// `migrated` marks events derived from a wallet's history by the migration.
pub async fn append_many(
    conn: &mut PgConnection,
    events: &[&Appended],
    migrated: bool,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut wallets = Vec::with_capacity(events.len());
    let mut sequences = Vec::with_capacity(events.len());
    let mut ids = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut occurred = Vec::with_capacity(events.len());
    for appended in events {
        let meta = appended.event.metadata();
        let payload = appended.event.to_json().map_err(|source| {
            StoreError::corrupt("wallet event", meta.event_id, Box::new(source))
        })?;
        wallets.push(meta.aggregate_id);
        sequences.push(appended.sequence);
        ids.push(meta.event_id.as_uuid());
        types.push(appended.event.event_type().as_str());
        payloads.push(payload);
        occurred.push(meta.occurred_at);
    }
    sqlx::query(
        "INSERT INTO wallet_events \
             (wallet_id, sequence, event_id, event_type, payload, occurred_at, migrated) \
         SELECT e.wallet_id, e.sequence, e.event_id, e.event_type, e.payload, e.occurred_at, $7 \
         FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::jsonb[], \
                     $6::timestamptz[]) WITH ORDINALITY \
              AS e(wallet_id, sequence, event_id, event_type, payload, occurred_at, n) \
         ORDER BY e.n",
    )
    .bind(wallets)
    .bind(sequences)
    .bind(ids)
    .bind(types)
    .bind(payloads)
    .bind(occurred)
    .bind(migrated)
    .execute(conn)
    .await?;
    Ok(())
}

/// Up to `limit` events of `wallet`'s stream after `after_sequence`, in sequence order.
pub async fn read<'e>(
    db: impl PgExecutor<'e>,
    wallet: WalletId,
    after_sequence: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT wallet_id, sequence, event_id, event_type, payload, occurred_at, recorded_at, migrated \
         FROM wallet_events WHERE wallet_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(wallet.as_uuid())
    .bind(after_sequence)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// `wallet`'s whole stream, read as domain events.
pub async fn read_all(
    conn: &mut PgConnection,
    wallet: WalletId,
) -> Result<Vec<Appended>, StoreError> {
    read(conn, wallet, 0, i64::MAX)
        .await?
        .iter()
        .map(StoredEvent::appended)
        .collect()
}

/// Up to `limit` events that occurred in `[since, until)`, after `after` (an occurrence
/// instant, wallet and sequence: the last one of the previous page), in that order.
pub async fn read_between<'e>(
    db: impl PgExecutor<'e>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid, i64)>,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let (at, wallet, sequence) = after.unwrap_or((since, Uuid::nil(), 0));
    Ok(sqlx::query_as(
        "SELECT wallet_id, sequence, event_id, event_type, payload, occurred_at, recorded_at, migrated \
         FROM wallet_events \
         WHERE occurred_at >= $1 AND occurred_at < $2 \
           AND (occurred_at, wallet_id, sequence) > ($3, $4, $5) \
         ORDER BY occurred_at, wallet_id, sequence LIMIT $6",
    )
    .bind(since)
    .bind(until)
    .bind(at)
    .bind(wallet)
    .bind(sequence)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Up to `limit` wallet ids after `after`, in id order (what `rebuild --all` and the audit
/// walk in batches).
pub async fn wallet_ids_after<'e>(
    db: impl PgExecutor<'e>,
    after: Uuid,
    limit: i64,
) -> Result<Vec<WalletId>, StoreError> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM wallets WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(db)
            .await?;
    Ok(ids.into_iter().map(WalletId::from_uuid).collect())
}

/// The whole streams of `wallets`, by wallet and sequence (the audit folds a batch of
/// wallets from one statement).
pub async fn read_many(
    conn: &mut PgConnection,
    wallets: &[WalletId],
) -> Result<Vec<StoredEvent>, StoreError> {
    let ids: Vec<Uuid> = wallets.iter().map(|id| id.as_uuid()).collect();
    Ok(sqlx::query_as(
        "SELECT wallet_id, sequence, event_id, event_type, payload, occurred_at, recorded_at, migrated \
         FROM wallet_events WHERE wallet_id = ANY($1) ORDER BY wallet_id, sequence",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

//! The `wallet_activity` read model: per wallet, running totals of the money that came in
//! and went out, fed by the activity projection's events.

use chrono::{DateTime, Utc};
use domain::{Money, WalletId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;

/// One wallet's activity, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub wallet_id: WalletId,
    /// ISO 4217 code, as stored.
    pub currency: String,
    pub total_in_minor: i64,
    pub total_out_minor: i64,
    pub events_applied: i64,
    pub last_activity_at: DateTime<Utc>,
}

/// Which total a movement adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A deposit or an incoming transfer.
    In,
    /// A withdrawal or an outgoing transfer.
    Out,
}

impl From<domain::Flow> for Direction {
    fn from(flow: domain::Flow) -> Self {
        match flow {
            domain::Flow::In => Direction::In,
            domain::Flow::Out => Direction::Out,
        }
    }
}

/// One event's change to one wallet.
#[derive(Debug, Clone, Copy)]
pub struct Movement {
    pub wallet_id: WalletId,
    pub direction: Direction,
    /// What moved, always positive, in the wallet's currency.
    pub amount: Money,
    pub at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct ActivityRow {
    wallet_id: Uuid,
    currency: String,
    total_in_minor: i64,
    total_out_minor: i64,
    events_applied: i64,
    last_activity_at: DateTime<Utc>,
}

/// Adds the movements to their wallets' totals (creating them on a wallet's first
/// event), in one statement: one row per wallet, locked in wallet id order, so two
/// transactions touching the same wallets wait for each other instead of deadlocking.
pub async fn apply_all(conn: &mut PgConnection, movements: &[Movement]) -> Result<(), StoreError> {
    if movements.is_empty() {
        return Ok(());
    }
    let mut wallet_ids = Vec::with_capacity(movements.len());
    let mut currencies = Vec::with_capacity(movements.len());
    let mut totals_in = Vec::with_capacity(movements.len());
    let mut totals_out = Vec::with_capacity(movements.len());
    let mut times = Vec::with_capacity(movements.len());
    for movement in movements {
        let minor = movement.amount.minor_units();
        let (total_in, total_out) = match movement.direction {
            Direction::In => (minor, 0),
            Direction::Out => (0, minor),
        };
        wallet_ids.push(movement.wallet_id.as_uuid());
        currencies.push(movement.amount.currency().code());
        totals_in.push(total_in);
        totals_out.push(total_out);
        times.push(movement.at);
    }
    // A sum beyond BIGINT fails the cast (22003), as one addition at a time would.
    sqlx::query(
        "INSERT INTO wallet_activity (wallet_id, currency, total_in_minor, total_out_minor, events_applied, last_activity_at) \
         SELECT wallet_id, min(currency), sum(total_in)::bigint, sum(total_out)::bigint, count(*), max(at) \
         FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[]) \
             AS m(wallet_id, currency, total_in, total_out, at) \
         GROUP BY wallet_id ORDER BY wallet_id \
         ON CONFLICT (wallet_id) DO UPDATE SET \
             total_in_minor = wallet_activity.total_in_minor + EXCLUDED.total_in_minor, \
             total_out_minor = wallet_activity.total_out_minor + EXCLUDED.total_out_minor, \
             events_applied = wallet_activity.events_applied + EXCLUDED.events_applied, \
             last_activity_at = greatest(wallet_activity.last_activity_at, EXCLUDED.last_activity_at)",
    )
    .bind(&wallet_ids)
    .bind(&currencies)
    .bind(&totals_in)
    .bind(&totals_out)
    .bind(&times)
    .execute(conn)
    .await?;
    Ok(())
}

/// The activity of one wallet, if any event has reached it.
pub async fn find(
    conn: &mut PgConnection,
    wallet_id: WalletId,
) -> Result<Option<Activity>, StoreError> {
    let row: Option<ActivityRow> = sqlx::query_as(
        "SELECT wallet_id, currency, total_in_minor, total_out_minor, events_applied, last_activity_at \
         FROM wallet_activity WHERE wallet_id = $1",
    )
    .bind(wallet_id.as_uuid())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Activity::from))
}

impl From<ActivityRow> for Activity {
    fn from(row: ActivityRow) -> Self {
        Activity {
            wallet_id: row.wallet_id.into(),
            currency: row.currency,
            total_in_minor: row.total_in_minor,
            total_out_minor: row.total_out_minor,
            events_applied: row.events_applied,
            last_activity_at: row.last_activity_at,
        }
    }
}

/// The activity of one wallet, locked until the transaction ends: the activity consumer
/// adds to it only once `wallet-hub rebuild` has written it back.
pub async fn lock(
    conn: &mut PgConnection,
    wallet_id: WalletId,
) -> Result<Option<Activity>, StoreError> {
    let row: Option<ActivityRow> = sqlx::query_as(
        "SELECT wallet_id, currency, total_in_minor, total_out_minor, events_applied, last_activity_at \
         FROM wallet_activity WHERE wallet_id = $1 FOR UPDATE",
    )
    .bind(wallet_id.as_uuid())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Activity::from))
}

/// `query` with the six columns of `activity` bound as $1 to $6, in the table's order.
fn bind_activity<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    activity: &'q Activity,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(activity.wallet_id.as_uuid())
        .bind(&activity.currency)
        .bind(activity.total_in_minor)
        .bind(activity.total_out_minor)
        .bind(activity.events_applied)
        .bind(activity.last_activity_at)
}

/// Writes one wallet's activity as given (not added to what is there).
pub async fn replace(conn: &mut PgConnection, activity: &Activity) -> Result<(), StoreError> {
    bind_activity(
        sqlx::query(
            "INSERT INTO wallet_activity (wallet_id, currency, total_in_minor, total_out_minor, events_applied, last_activity_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (wallet_id) DO UPDATE SET currency = EXCLUDED.currency, \
                 total_in_minor = EXCLUDED.total_in_minor, total_out_minor = EXCLUDED.total_out_minor, \
                 events_applied = EXCLUDED.events_applied, last_activity_at = EXCLUDED.last_activity_at",
        ),
        activity,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes one wallet's activity as given if it has no row; false if one exists (the
/// activity consumer wrote it since it was looked for: there was no row to lock, and its
/// row counts what it applied, so it is left as it is).
pub async fn insert_absent(
    conn: &mut PgConnection,
    activity: &Activity,
) -> Result<bool, StoreError> {
    let inserted = bind_activity(
        sqlx::query(
            "INSERT INTO wallet_activity (wallet_id, currency, total_in_minor, total_out_minor, events_applied, last_activity_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (wallet_id) DO NOTHING",
        ),
        activity,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Removes one wallet's activity row (none of its money events has been applied).
pub async fn remove(conn: &mut PgConnection, wallet_id: WalletId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM wallet_activity WHERE wallet_id = $1")
        .bind(wallet_id.as_uuid())
        .execute(conn)
        .await?;
    Ok(())
}

/// The sequences of `wallet_id`'s stream whose money movement `consumer` has applied (its
/// inbox holds the event that carries the movement to it, from `source`): the wallet's own
/// event, or for a `FundsReceived` the `FundsTransferred` or `HoldCaptured` of the sending
/// wallet that it completes (the activity consumer counts both sides from that one).
///
/// What the consumer has not applied yet is still on its way to it, and is left for it:
/// counting it here too would add it twice. Migrated events count as applied: they
/// restate history from before streams, which the consumer applied under the original
/// events' ids.
pub async fn applied_sequences(
    conn: &mut PgConnection,
    wallet_id: WalletId,
    consumer: &str,
    source: &str,
) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT e.sequence FROM wallet_events e \
         LEFT JOIN LATERAL ( \
             SELECT s.event_id FROM wallet_events s \
             WHERE e.event_type = 'FundsReceived' \
               AND s.wallet_id = (e.payload->>'from_wallet_id')::uuid \
               AND ((s.event_type = 'FundsTransferred' \
                     AND s.payload->>'transfer_id' = e.payload->>'transaction_id') \
                 OR (s.event_type = 'HoldCaptured' \
                     AND s.payload->>'transaction_id' = e.payload->>'transaction_id')) \
             LIMIT 1) carrier ON true \
         LEFT JOIN inbox i ON i.consumer = $2 AND i.event_source = $3 \
                          AND i.event_id = COALESCE(carrier.event_id, e.event_id)::text \
         WHERE e.wallet_id = $1 AND (e.migrated OR i.event_id IS NOT NULL) \
         ORDER BY e.sequence",
    )
    .bind(wallet_id.as_uuid())
    .bind(consumer)
    .bind(source)
    .fetch_all(conn)
    .await?)
}

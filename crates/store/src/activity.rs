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
    Ok(row.map(|row| Activity {
        wallet_id: row.wallet_id.into(),
        currency: row.currency,
        total_in_minor: row.total_in_minor,
        total_out_minor: row.total_out_minor,
        events_applied: row.events_applied,
        last_activity_at: row.last_activity_at,
    }))
}

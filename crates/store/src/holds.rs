//! The `holds` table: each hold's state (docs/holds.md). What a hold reserves is in the
//! ledger (the wallet's `held` account, [`crate::ledger`]); this table says which holds
//! are pending, until when, and how each ended.

use chrono::{DateTime, Utc};
use domain::{Currency, Hold, HoldId, HoldStatus, Money, WalletId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;

#[derive(Debug, sqlx::FromRow)]
struct HoldRow {
    id: Uuid,
    wallet_id: Uuid,
    to_wallet_id: Option<Uuid>,
    currency: String,
    amount_minor: i64,
    captured_minor: Option<i64>,
    status: String,
    description: Option<String>,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

impl TryFrom<HoldRow> for Hold {
    type Error = StoreError;

    fn try_from(row: HoldRow) -> Result<Self, Self::Error> {
        let id = row.id;
        let currency: Currency = row
            .currency
            .trim()
            .parse()
            .map_err(|e: domain::MoneyError| StoreError::corrupt("hold", id, e))?;
        let status: HoldStatus = row
            .status
            .parse()
            .map_err(|e: domain::UnknownHoldStatus| StoreError::corrupt("hold", id, e))?;
        Ok(Hold {
            id: HoldId::from(row.id),
            wallet_id: WalletId::from(row.wallet_id),
            to_wallet_id: row.to_wallet_id.map(WalletId::from),
            amount: Money::from_minor(row.amount_minor, currency),
            captured: row.captured_minor.map(|m| Money::from_minor(m, currency)),
            status,
            description: row.description,
            expires_at: row.expires_at,
            created_at: row.created_at,
            closed_at: row.closed_at,
        })
    }
}

macro_rules! select_holds {
    () => {
        "SELECT id, wallet_id, to_wallet_id, currency, amount_minor, captured_minor, status, \
                description, expires_at, created_at, closed_at FROM holds "
    };
}

pub async fn find(conn: &mut PgConnection, id: HoldId) -> Result<Option<Hold>, StoreError> {
    let row: Option<HoldRow> = sqlx::query_as(concat!(select_holds!(), "WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?;
    row.map(Hold::try_from).transpose()
}

/// What a decision on the locked `wallets` needs: their holds recorded as pending, and the
/// holds `named` by its commands whatever their status. Read under the wallets' locks
/// (every change of a hold locks its wallet first), so they stay as read.
pub async fn for_decision(
    conn: &mut PgConnection,
    wallets: &[WalletId],
    named: &[HoldId],
) -> Result<Vec<Hold>, StoreError> {
    let wallets: Vec<Uuid> = wallets.iter().map(|id| id.as_uuid()).collect();
    let named: Vec<Uuid> = named.iter().map(|id| id.as_uuid()).collect();
    let rows: Vec<HoldRow> = sqlx::query_as(concat!(
        select_holds!(),
        "WHERE (wallet_id = ANY($1) AND status = 'pending') OR id = ANY($2) ORDER BY id"
    ))
    .bind(wallets)
    .bind(named)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Hold::try_from).collect()
}

/// Writes holds placed or closed by a batch, in one statement: a new hold is inserted, a
/// known one gets its new status, captured amount and closing time.
pub async fn save_many(conn: &mut PgConnection, holds: &[&Hold]) -> Result<(), StoreError> {
    if holds.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = holds.iter().map(|h| h.id.as_uuid()).collect();
    let wallets: Vec<Uuid> = holds.iter().map(|h| h.wallet_id.as_uuid()).collect();
    let targets: Vec<Option<Uuid>> = holds
        .iter()
        .map(|h| h.to_wallet_id.map(WalletId::as_uuid))
        .collect();
    let currencies: Vec<&str> = holds.iter().map(|h| h.amount.currency().code()).collect();
    let amounts: Vec<i64> = holds.iter().map(|h| h.amount.minor_units()).collect();
    let captured: Vec<Option<i64>> = holds
        .iter()
        .map(|h| h.captured.map(|m| m.minor_units()))
        .collect();
    let statuses: Vec<&str> = holds.iter().map(|h| h.status.as_str()).collect();
    let descriptions: Vec<Option<&str>> = holds.iter().map(|h| h.description.as_deref()).collect();
    let expires: Vec<DateTime<Utc>> = holds.iter().map(|h| h.expires_at).collect();
    let created: Vec<DateTime<Utc>> = holds.iter().map(|h| h.created_at).collect();
    let closed: Vec<Option<DateTime<Utc>>> = holds.iter().map(|h| h.closed_at).collect();
    sqlx::query(
        "INSERT INTO holds (id, wallet_id, to_wallet_id, currency, amount_minor, captured_minor, \
                            status, description, expires_at, created_at, closed_at) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], \
                              $6::bigint[], $7::text[], $8::text[], $9::timestamptz[], \
                              $10::timestamptz[], $11::timestamptz[]) \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             captured_minor = excluded.captured_minor, closed_at = excluded.closed_at",
    )
    .bind(ids)
    .bind(wallets)
    .bind(targets)
    .bind(currencies)
    .bind(amounts)
    .bind(captured)
    .bind(statuses)
    .bind(descriptions)
    .bind(expires)
    .bind(created)
    .bind(closed)
    .execute(conn)
    .await?;
    Ok(())
}

/// A wallet's holds, newest first, after hold `after` (none if it is not the wallet's),
/// those with status `status` at `at` only if given (a pending hold past its expiry is
/// expired).
pub async fn list_for_wallet(
    conn: &mut PgConnection,
    wallet_id: WalletId,
    status: Option<HoldStatus>,
    at: DateTime<Utc>,
    after: Option<HoldId>,
    limit: i64,
) -> Result<Vec<Hold>, StoreError> {
    let rows: Vec<HoldRow> = sqlx::query_as(concat!(
        select_holds!(),
        "WHERE wallet_id = $1 \
           AND ($2::text IS NULL OR \
                CASE WHEN status = 'pending' AND expires_at <= $3 THEN 'expired' ELSE status END = $2) \
           AND ($4::uuid IS NULL OR id < (SELECT a.id FROM holds a WHERE a.id = $4 AND a.wallet_id = $1)) \
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(wallet_id.as_uuid())
    .bind(status.map(HoldStatus::as_str))
    .bind(at)
    .bind(after.map(HoldId::as_uuid))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Hold::try_from).collect()
}

/// What the pending holds of each of `wallets` reserve at `at` (minor units; wallets
/// without any are left out).
pub async fn reserved_at(
    conn: &mut PgConnection,
    wallets: &[WalletId],
    at: DateTime<Utc>,
) -> Result<Vec<(WalletId, i64)>, StoreError> {
    let wallets: Vec<Uuid> = wallets.iter().map(|id| id.as_uuid()).collect();
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT wallet_id, sum(amount_minor)::bigint FROM holds \
         WHERE wallet_id = ANY($1) AND status = 'pending' AND expires_at > $2 \
         GROUP BY wallet_id",
    )
    .bind(wallets)
    .bind(at)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, minor)| (WalletId::from(id), minor))
        .collect())
}

/// Up to `limit` holds recorded as pending whose expiry is at or before `at`, soonest
/// first: what the sweeper records as expired.
pub async fn expired(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(HoldId, WalletId)>, StoreError> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, wallet_id FROM holds WHERE status = 'pending' AND expires_at <= $1 \
         ORDER BY expires_at, id LIMIT $2",
    )
    .bind(at)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(hold, wallet)| (HoldId::from(hold), WalletId::from(wallet)))
        .collect())
}

/// Takes the sweeper's lock for the caller's transaction, without waiting: whether this
/// instance sweeps now (another holds it until its transaction ends).
pub async fn lead_sweep(conn: &mut PgConnection) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('wallet-hub hold sweeper'))")
            .fetch_one(conn)
            .await?,
    )
}

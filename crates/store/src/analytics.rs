//! What the analytics job sends back: `analytics_volume` (volume per currency and
//! minute) and `risk_alerts` (velocity alerts), written by their consumers and read by the
//! API's `/v1/analytics/volume` and `/v1/risk/alerts`.

use chrono::{DateTime, Utc};
use domain::{Currency, EventId, Money, UserId, WalletId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;

/// Count and sum of one kind of movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    pub amount: Money,
}

/// One currency's volume in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeMinute {
    pub currency: Currency,
    /// The minute's first instant.
    pub minute: DateTime<Utc>,
    pub deposits: Total,
    pub withdrawals: Total,
    pub transfers: Total,
    /// The event it came from (the list's cursor).
    pub event_id: EventId,
}

#[derive(Debug, sqlx::FromRow)]
struct VolumeRow {
    currency: String,
    minute: DateTime<Utc>,
    deposits_count: i64,
    deposits_minor: i64,
    withdrawals_count: i64,
    withdrawals_minor: i64,
    transfers_count: i64,
    transfers_minor: i64,
    event_id: Uuid,
}

impl TryFrom<VolumeRow> for VolumeMinute {
    type Error = StoreError;

    fn try_from(row: VolumeRow) -> Result<Self, StoreError> {
        let currency: Currency = row.currency.parse().map_err(|error| StoreError::Corrupt {
            entity: "analytics volume",
            id: row.event_id.to_string(),
            source: Box::new(error),
        })?;
        let total = |count, minor| Total {
            count,
            amount: Money::from_minor(minor, currency),
        };
        Ok(Self {
            currency,
            minute: row.minute,
            deposits: total(row.deposits_count, row.deposits_minor),
            withdrawals: total(row.withdrawals_count, row.withdrawals_minor),
            transfers: total(row.transfers_count, row.transfers_minor),
            event_id: row.event_id.into(),
        })
    }
}

/// Stores a minute's volume; a later event for the same currency and minute replaces it
/// (the job emits a minute once; a replayed copy is the inbox's to drop).
pub async fn upsert_volume(
    conn: &mut PgConnection,
    volume: &VolumeMinute,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO analytics_volume (currency, minute, deposits_count, deposits_minor, \
           withdrawals_count, withdrawals_minor, transfers_count, transfers_minor, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (currency, minute) DO UPDATE SET \
           deposits_count = EXCLUDED.deposits_count, deposits_minor = EXCLUDED.deposits_minor, \
           withdrawals_count = EXCLUDED.withdrawals_count, \
           withdrawals_minor = EXCLUDED.withdrawals_minor, \
           transfers_count = EXCLUDED.transfers_count, transfers_minor = EXCLUDED.transfers_minor, \
           event_id = EXCLUDED.event_id, received_at = now()",
    )
    .bind(volume.currency.code())
    .bind(volume.minute)
    .bind(volume.deposits.count)
    .bind(volume.deposits.amount.minor_units())
    .bind(volume.withdrawals.count)
    .bind(volume.withdrawals.amount.minor_units())
    .bind(volume.transfers.count)
    .bind(volume.transfers.amount.minor_units())
    .bind(volume.event_id.as_uuid())
    .execute(conn)
    .await?;
    Ok(())
}

/// One currency's minutes in `[from, to)`, oldest first; a page resumes after the minute
/// whose event is `after` (none if it is not of this currency).
pub async fn list_volume(
    conn: &mut PgConnection,
    currency: Currency,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<VolumeMinute>, StoreError> {
    let rows: Vec<VolumeRow> = sqlx::query_as(
        "SELECT currency, minute, deposits_count, deposits_minor, withdrawals_count, \
           withdrawals_minor, transfers_count, transfers_minor, event_id \
         FROM analytics_volume \
         WHERE currency = $1 AND minute >= $2 AND minute < $3 \
           AND ($4::uuid IS NULL OR minute > \
             (SELECT a.minute FROM analytics_volume a WHERE a.event_id = $4 AND a.currency = $1)) \
         ORDER BY minute LIMIT $5",
    )
    .bind(currency.code())
    .bind(from)
    .bind(to)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(VolumeMinute::try_from).collect()
}

/// A velocity alert as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskAlert {
    pub id: Uuid,
    pub wallet_id: WalletId,
    pub user_id: UserId,
    /// What tripped: `velocity-exceeded`.
    pub kind: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Outgoing movements in the window, and their sum.
    pub movements: i64,
    pub amount: Money,
    pub event_id: EventId,
    pub created_at: DateTime<Utc>,
}

/// An alert to record.
#[derive(Debug, Clone, Copy)]
pub struct NewRiskAlert<'a> {
    pub wallet_id: WalletId,
    pub user_id: UserId,
    pub kind: &'a str,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub movements: i64,
    pub amount: Money,
    pub event_id: EventId,
}

#[derive(Debug, sqlx::FromRow)]
struct RiskAlertRow {
    id: Uuid,
    wallet_id: Uuid,
    user_id: Uuid,
    kind: String,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    currency: String,
    movements: i64,
    amount_minor: i64,
    event_id: Uuid,
    created_at: DateTime<Utc>,
}

impl TryFrom<RiskAlertRow> for RiskAlert {
    type Error = StoreError;

    fn try_from(row: RiskAlertRow) -> Result<Self, StoreError> {
        let currency: Currency = row.currency.parse().map_err(|error| StoreError::Corrupt {
            entity: "risk alert",
            id: row.id.to_string(),
            source: Box::new(error),
        })?;
        Ok(Self {
            id: row.id,
            wallet_id: row.wallet_id.into(),
            user_id: row.user_id.into(),
            kind: row.kind,
            window_start: row.window_start,
            window_end: row.window_end,
            movements: row.movements,
            amount: Money::from_minor(row.amount_minor, currency),
            event_id: row.event_id.into(),
            created_at: row.created_at,
        })
    }
}

/// Records an alert unless its event was recorded before; returns whether it was new.
pub async fn insert_alert(
    conn: &mut PgConnection,
    alert: &NewRiskAlert<'_>,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO risk_alerts (id, wallet_id, user_id, kind, window_start, window_end, \
           currency, movements, amount_minor, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(alert.wallet_id.as_uuid())
    .bind(alert.user_id.as_uuid())
    .bind(alert.kind)
    .bind(alert.window_start)
    .bind(alert.window_end)
    .bind(alert.amount.currency().code())
    .bind(alert.movements)
    .bind(alert.amount.minor_units())
    .bind(alert.event_id.as_uuid())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// All alerts, newest first; a page resumes after the alert `after`.
pub async fn list_alerts(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RiskAlert>, StoreError> {
    let rows: Vec<RiskAlertRow> = sqlx::query_as(
        "SELECT id, wallet_id, user_id, kind, window_start, window_end, currency, movements, \
           amount_minor, event_id, created_at \
         FROM risk_alerts WHERE ($1::uuid IS NULL OR (created_at, id) < \
           (SELECT a.created_at, a.id FROM risk_alerts a WHERE a.id = $1)) \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(RiskAlert::try_from).collect()
}

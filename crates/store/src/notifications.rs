//! The `notifications` table: what users were told (today, the welcome to a new wallet).

use chrono::{DateTime, Utc};
use domain::{EventId, UserId, WalletId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;

/// A notification as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: UserId,
    pub wallet_id: WalletId,
    /// What it is about, e.g. `welcome`; at most one of each kind per wallet.
    pub kind: String,
    pub message: String,
    /// The event that caused it.
    pub event_id: EventId,
    pub created_at: DateTime<Utc>,
}

/// A notification to record.
#[derive(Debug, Clone, Copy)]
pub struct NewNotification<'a> {
    pub user_id: UserId,
    pub wallet_id: WalletId,
    pub kind: &'a str,
    pub message: &'a str,
    pub event_id: EventId,
}

#[derive(Debug, sqlx::FromRow)]
struct NotificationRow {
    id: Uuid,
    user_id: Uuid,
    wallet_id: Uuid,
    kind: String,
    message: String,
    event_id: Uuid,
    created_at: DateTime<Utc>,
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id.into(),
            wallet_id: row.wallet_id.into(),
            kind: row.kind,
            message: row.message,
            event_id: row.event_id.into(),
            created_at: row.created_at,
        }
    }
}

/// Records a notification unless the wallet already has one of its kind; returns false
/// if it had.
pub async fn insert_once_per_wallet(
    conn: &mut PgConnection,
    notification: NewNotification<'_>,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO notifications (id, user_id, wallet_id, kind, message, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (wallet_id, kind) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(notification.user_id.as_uuid())
    .bind(notification.wallet_id.as_uuid())
    .bind(notification.kind)
    .bind(notification.message)
    .bind(notification.event_id.as_uuid())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A user's notifications, newest first.
pub async fn list_for_user(
    conn: &mut PgConnection,
    user_id: UserId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Notification>, StoreError> {
    // Newest first; a page resumes after the notification `after` (none if not the user's).
    let rows: Vec<NotificationRow> = sqlx::query_as(
        "SELECT id, user_id, wallet_id, kind, message, event_id, created_at \
         FROM notifications WHERE user_id = $1 AND ($2::uuid IS NULL OR (created_at, id) < \
           (SELECT a.created_at, a.id FROM notifications a WHERE a.id = $2 AND a.user_id = $1)) \
         ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(user_id.as_uuid())
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

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

/// Records the notifications in one statement, each unless its wallet already has one of
/// its kind (from before, or earlier in `notifications`). Returns, in order, whether each
/// was recorded.
pub async fn insert_all_once_per_wallet(
    conn: &mut PgConnection,
    notifications: &[NewNotification<'_>],
) -> Result<Vec<bool>, StoreError> {
    let ids: Vec<Uuid> = notifications.iter().map(|_| Uuid::now_v7()).collect();
    let users: Vec<Uuid> = notifications.iter().map(|n| n.user_id.as_uuid()).collect();
    let wallets: Vec<Uuid> = notifications
        .iter()
        .map(|n| n.wallet_id.as_uuid())
        .collect();
    let kinds: Vec<&str> = notifications.iter().map(|n| n.kind).collect();
    let messages: Vec<&str> = notifications.iter().map(|n| n.message).collect();
    let events: Vec<Uuid> = notifications.iter().map(|n| n.event_id.as_uuid()).collect();
    // WITH ORDINALITY + ORDER BY: the first of two for one wallet and kind is the one kept.
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO notifications (id, user_id, wallet_id, kind, message, event_id) \
         SELECT id, user_id, wallet_id, kind, message, event_id \
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::uuid[]) \
             WITH ORDINALITY AS n(id, user_id, wallet_id, kind, message, event_id, position) \
         ORDER BY position \
         ON CONFLICT (wallet_id, kind) WHERE kind <> 'velocity-exceeded' DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&users)
    .bind(&wallets)
    .bind(&kinds)
    .bind(&messages)
    .bind(&events)
    .fetch_all(conn)
    .await?;
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    Ok(ids.iter().map(|id| inserted.contains(id)).collect())
}

/// Records one notification whose once-ness the caller's inbox keeps (a velocity alert:
/// one per alert event, however many a wallet has).
pub async fn insert(
    conn: &mut PgConnection,
    notification: &NewNotification<'_>,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO notifications (id, user_id, wallet_id, kind, message, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(notification.user_id.as_uuid())
    .bind(notification.wallet_id.as_uuid())
    .bind(notification.kind)
    .bind(notification.message)
    .bind(notification.event_id.as_uuid())
    .execute(conn)
    .await?;
    Ok(id)
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

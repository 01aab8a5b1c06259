//! Notifications sent to users, stored in PostgreSQL.

use chrono::{DateTime, Utc};
use domain::WalletCreated;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

pub const WELCOME: &str = "welcome";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub wallet_id: Uuid,
    pub kind: String,
    pub message: String,
    /// The event that caused it.
    pub event_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// Sends notifications. Today "sending" is recording them for the user to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotificationService;

impl NotificationService {
    /// Records the welcome notification for a new wallet, at most once per wallet.
    /// Returns false if the wallet already had one.
    pub async fn send_welcome(
        &self,
        conn: &mut PgConnection,
        event: &WalletCreated,
    ) -> Result<bool, sqlx::Error> {
        let message = format!(
            "Welcome! Your {} wallet \"{}\" is ready.",
            event.currency, event.name
        );
        let inserted = sqlx::query(
            "INSERT INTO notifications (id, user_id, wallet_id, kind, message, event_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (wallet_id, kind) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(event.user_id)
        .bind(event.wallet_id)
        .bind(WELCOME)
        .bind(message)
        .bind(event.metadata.event_id)
        .execute(conn)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }
}

/// A user's notifications, newest first.
pub async fn list_for_user<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, wallet_id, kind, message, event_id, created_at \
         FROM notifications WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

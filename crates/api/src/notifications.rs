//! `GET /v1/users/{id}/notifications`: a user's notifications, newest first.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use domain::{EventId, UserId, WalletId};
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ValidPath;

/// At most this many are returned (pagination comes with the history endpoints).
const LIMIT: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/users/{id}/notifications", get(list))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Notification)]
pub struct NotificationResponse {
    pub id: Uuid,
    #[schema(value_type = uuid::Uuid)]
    pub user_id: UserId,
    #[schema(value_type = uuid::Uuid)]
    pub wallet_id: WalletId,
    pub kind: String,
    pub message: String,
    /// The event that caused it.
    #[schema(value_type = uuid::Uuid)]
    pub event_id: EventId,
    pub created_at: DateTime<Utc>,
}

impl From<store::notifications::Notification> for NotificationResponse {
    fn from(notification: store::notifications::Notification) -> Self {
        Self {
            id: notification.id,
            user_id: notification.user_id,
            wallet_id: notification.wallet_id,
            kind: notification.kind,
            message: notification.message,
            event_id: notification.event_id,
            created_at: notification.created_at,
        }
    }
}

#[utoipa::path(get, path = "/v1/users/{id}/notifications", tag = "users", params(("id" = Uuid, Path)), responses((status = 200, body = [NotificationResponse])))]
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
async fn list(
    State(state): State<AppState>,
    ValidPath(user_id): ValidPath<UserId>,
) -> Result<Json<Vec<NotificationResponse>>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let notifications = store::notifications::list_for_user(&mut conn, user_id, LIMIT).await?;
    Ok(Json(
        notifications
            .into_iter()
            .map(NotificationResponse::from)
            .collect(),
    ))
}

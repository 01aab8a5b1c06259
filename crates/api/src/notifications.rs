//! `GET /v1/users/{id}/notifications`: a user's notifications, newest first, paginated
//! ([`crate::pagination`]).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::{EventId, UserId, WalletId};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ValidPath, ValidQuery};
use crate::openapi::problems;
use crate::pagination::{Page, PageQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_notifications))
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

#[utoipa::path(
    get,
    path = "/v1/users/{id}/notifications",
    tag = "users",
    params(("id" = Uuid, Path), PageQuery),
    responses(
        (status = 200, body = Page<NotificationResponse>),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
async fn list_notifications(
    State(state): State<AppState>,
    caller: Caller,
    ValidPath(user_id): ValidPath<UserId>,
    ValidQuery(query): ValidQuery<PageQuery>,
) -> Result<Json<Page<NotificationResponse>>, ApiError> {
    let page = query.resolve()?;
    let mut conn = state.pool.acquire().await?;
    crate::users::readable_user(&mut conn, &caller, user_id).await?;
    let notifications =
        store::notifications::list_for_user(&mut conn, user_id, page.after, page.fetch()).await?;
    Ok(Json(Page::from_rows(
        notifications,
        page,
        |notification| notification.id,
        NotificationResponse::from,
    )))
}

//! `GET /v1/users/{id}/notifications`: a user's notifications, newest first.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use consumers::Notification;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ValidPath;

/// At most this many are returned (pagination comes with the history endpoints).
const LIMIT: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/users/{id}/notifications", get(list))
}

#[utoipa::path(get, path = "/v1/users/{id}/notifications", tag = "users", params(("id" = Uuid, Path)), responses((status = 200, body = [consumers::Notification])))]
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
async fn list(
    State(state): State<AppState>,
    ValidPath(user_id): ValidPath<Uuid>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let notifications = consumers::notifications::list_for_user(&state.pool, user_id, LIMIT)
        .await
        .map_err(ApiError::database)?;
    Ok(Json(notifications))
}

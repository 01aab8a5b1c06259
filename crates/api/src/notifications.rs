//! `GET /v1/users/{id}/notifications`: a user's notifications, newest first.

use axum::Json;
use axum::extract::State;
use consumers::Notification;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ValidPath;
use crate::openapi::problems;

/// At most this many are returned (pagination comes with the history endpoints).
const LIMIT: i64 = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[utoipa::path(
    get,
    path = "/v1/users/{id}/notifications",
    tag = "users",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = [consumers::Notification]),
        problems::Malformed,
        problems::ServerErrors,
    )
)]
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

//! `/v1/users`: create a user, read it, list its wallets.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use domain::{Email, EventContext, User, UserId, UserName};
use serde::{Deserialize, Serialize};
use store::{users, wallets};

use crate::error::ApiError;
use crate::extract::{ValidJson, ValidPath};
use crate::wallets::WalletResponse;
use crate::write::{self, MaybeIdempotencyKey, Reply, Write, publish};
use crate::{AppState, RequestContext};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users", post(create_user))
        .route("/v1/users/{id}", get(get_user))
        .route("/v1/users/{id}/wallets", get(list_wallets))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    #[schema(value_type = uuid::Uuid)]
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id(),
            email: user.email().as_str().to_owned(),
            name: user.name().as_str().to_owned(),
            created_at: user.created_at(),
        }
    }
}

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUserRequest, params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the first answer to a key is stored for 24 h and replayed"), ("X-Client-Id" = Option<String>, Header, description = "Scopes Idempotency-Keys to a caller")), responses((status = 201, description = "Created", body = UserResponse), (status = 409, description = "email-taken", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "validation-error", body = crate::error::Problem, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all)]
async fn create_user(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidJson(request): ValidJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&request.email).map_err(|e| ApiError::Validation(e.to_string()))?;
    let name = UserName::parse(&request.name).map_err(|e| ApiError::Validation(e.to_string()))?;
    let body = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let publisher = state.publisher;
    let operation = write::operation(move |conn| {
        let (email, name, ctx) = (email.clone(), name.clone(), ctx.clone());
        Box::pin(async move {
            let event_ctx = EventContext::new(Utc::now(), ctx.correlation_id.clone());
            let (user, event) = User::create(UserId::new(), email, name, &event_ctx);
            users::insert(&mut *conn, &user).await?;
            publish(publisher, &mut *conn, event.into()).await?;
            Reply::created(
                UserResponse::from(&user),
                Some(format!("/v1/users/{}", user.id())),
            )
        })
    });
    let write = Write {
        route: "POST /v1/users",
        key,
        request: &body,
    };
    write::execute(&state, write, &operation).await
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)), responses((status = 200, body = UserResponse), (status = 404, description = "not-found", body = crate::error::Problem, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn get_user(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<UserId>,
) -> Result<Json<UserResponse>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let user = users::find(&mut conn, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    Ok(Json(UserResponse::from(&user)))
}

#[utoipa::path(get, path = "/v1/users/{id}/wallets", tag = "users", params(("id" = Uuid, Path)), responses((status = 200, body = [WalletResponse]), (status = 404, description = "not-found", body = crate::error::Problem, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn list_wallets(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<UserId>,
) -> Result<Json<Vec<WalletResponse>>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    users::find(&mut conn, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    let wallets = wallets::list_for_user(&mut conn, id).await?;
    Ok(Json(wallets.iter().map(WalletResponse::from).collect()))
}

fn user_not_found(id: UserId) -> ApiError {
    ApiError::NotFound {
        resource: "user",
        id: id.to_string(),
    }
}

//! `/v1/users`: create a user, read it, list its wallets.

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use domain::{DomainEvent, Email, EventContext, User, UserName};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor};
use telemetry::TraceHeaders;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ValidJson, ValidPath};
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::wallets::{self, WalletResponse};
use crate::write::{self, MaybeIdempotencyKey, Reply, Write};
use crate::{AppState, RequestContext};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user))
        .routes(routes!(get_user))
        .routes(routes!(list_wallets))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
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

#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    request_body = CreateUserRequest,
    params(IdempotencyHeaders),
    responses(
        (status = 201, description = "Created", body = UserResponse),
        problems::Malformed,
        problems::EmailTaken,
        problems::Invalid,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
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
            let (user, event) = User::create(Uuid::now_v7(), email, name, &event_ctx);
            insert_user(&mut *conn, &user).await?;
            publisher
                .publish(
                    &mut *conn,
                    &DomainEvent::from(event),
                    &TraceHeaders::current(),
                )
                .await
                .map_err(ApiError::internal)?;
            Reply::created(
                UserResponse::from(&user),
                Some(format!("/v1/users/{}", user.id())),
            )
        })
    });
    let write = Write {
        key,
        request: &body,
    };
    write::execute(&state, write, &operation).await
}

#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = UserResponse),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn get_user(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<UserResponse>, ApiError> {
    let user = find_user(&state.pool, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    Ok(Json(UserResponse::from(&user)))
}

#[utoipa::path(
    get,
    path = "/v1/users/{id}/wallets",
    tag = "users",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = [WalletResponse]),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn list_wallets(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Vec<WalletResponse>>, ApiError> {
    find_user(&state.pool, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    let wallets = wallets::store::list_for_user(&state.pool, id).await?;
    Ok(Json(wallets.iter().map(WalletResponse::from).collect()))
}

fn user_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound {
        resource: "user",
        id: id.to_string(),
    }
}

#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    created_at: DateTime<Utc>,
}

async fn insert_user(conn: &mut PgConnection, user: &User) -> Result<(), ApiError> {
    let result = sqlx::query(
        "INSERT INTO users (id, email, email_normalized, name, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user.id())
    .bind(user.email().as_str())
    .bind(user.email().normalized())
    .bind(user.name().as_str())
    .bind(user.created_at())
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) if ApiError::violates(&error, "users_email_unique") => Err(ApiError::EmailTaken),
        Err(error) => Err(ApiError::database(error)),
    }
}

pub async fn find_user<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Option<User>, ApiError> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, email, name, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await
            .map_err(ApiError::database)?;
    row.map(|row| {
        let email = Email::parse(&row.email).map_err(ApiError::internal)?;
        let name = UserName::parse(&row.name).map_err(ApiError::internal)?;
        Ok(User::restore(row.id, email, name, row.created_at))
    })
    .transpose()
}

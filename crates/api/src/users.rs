//! `/v1/users`: create a user, read it, list its wallets (paginated, oldest first).

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use domain::{Email, EventContext, User, UserId, UserName, WalletId};
use serde::{Deserialize, Serialize};
use store::{users, wallets};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, ValidPath, ValidQuery};
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::pagination::{Page, PageQuery};
use crate::wallets::WalletResponse;
use crate::write::{self, MaybeIdempotencyKey, Reply, Write, publish};
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
    #[schema(schema_with = crate::grammar::email_schema)]
    pub email: String,
    #[schema(schema_with = crate::grammar::name_schema)]
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

#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    request_body = CreateUserRequest,
    params(IdempotencyHeaders),
    responses(
        (status = 201, description = "Created", body = UserResponse,
            headers(("Location" = String, description = "The new user's path"))),
        problems::Malformed,
        problems::UserExists,
        problems::Invalid,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all)]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidJson(request): ValidJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&request.email).map_err(|e| ApiError::Validation(e.to_string()))?;
    let name = UserName::parse(&request.name).map_err(|e| ApiError::Validation(e.to_string()))?;
    let body = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let owner = caller.actor();
    let operation = write::operation(move |conn| {
        let (email, name, ctx, owner) = (email.clone(), name.clone(), ctx.clone(), owner.clone());
        Box::pin(async move {
            let event_ctx =
                EventContext::new(Utc::now(), ctx.correlation_id.clone()).acted_by(owner.clone());
            let (user, event) = User::create(UserId::new(), email, name, &event_ctx);
            users::insert(&mut *conn, &user, &owner).await?;
            publish(&mut *conn, event.into()).await?;
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
    caller: Caller,
    ValidPath(id): ValidPath<UserId>,
) -> Result<Json<UserResponse>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    readable_user(&mut conn, &caller, id).await?;
    let user = users::find(&mut conn, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    Ok(Json(UserResponse::from(&user)))
}

#[utoipa::path(
    get,
    path = "/v1/users/{id}/wallets",
    tag = "users",
    params(("id" = Uuid, Path), PageQuery),
    responses(
        (status = 200, body = Page<WalletResponse>),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %id))]
async fn list_wallets(
    State(state): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<UserId>,
    ValidQuery(query): ValidQuery<PageQuery>,
) -> Result<Json<Page<WalletResponse>>, ApiError> {
    let page = query.resolve()?;
    let mut conn = state.pool.acquire().await?;
    readable_user(&mut conn, &caller, id).await?;
    let after = page.after.map(WalletId::from_uuid);
    let wallets = wallets::list_for_user(&mut conn, id, after, page.fetch()).await?;
    let wallets = crate::wallets::with_reserved(&mut conn, wallets).await?;
    Ok(Json(Page::from_rows(
        wallets,
        page,
        |(wallet, _)| wallet.id().as_uuid(),
        |(wallet, reserved)| WalletResponse::new(&wallet, reserved),
    )))
}

/// Ok if the caller may read the user `id` (its own, or any for an admin); a user it may
/// not read is answered exactly like one that does not exist.
pub(crate) async fn readable_user(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    id: UserId,
) -> Result<(), ApiError> {
    if caller.may_read(conn, id).await? {
        Ok(())
    } else {
        Err(user_not_found(id))
    }
}

fn user_not_found(id: UserId) -> ApiError {
    ApiError::NotFound {
        resource: "user",
        id: id.to_string(),
    }
}

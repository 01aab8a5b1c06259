//! Holds (docs/holds.md): `POST /v1/wallets/{id}/holds` reserves money in one of the
//! caller's wallets; `POST /v1/holds/{id}/capture` and `/void` end it; the reads show a hold
//! as it stands at the instant of the answer (a pending hold past its expiry is expired).
//!
//! Placing, capturing and voiding are wallet commands through the write pipeline, like a
//! withdrawal. Who may: placing, the wallet's owner; capturing and voiding, the owner or a
//! caller with [`CAPTURE_SCOPE`] (a merchant's or processor's client); reading a hold, its
//! wallet's owner, an admin, or [`CAPTURE_SCOPE`]; anyone else is told it does not exist.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use domain::{Command, Expiry, Hold, HoldId, HoldStatus, WalletId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use store::holds;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::{CAPTURE_SCOPE, Caller};
use crate::error::ApiError;
use crate::extract::{ValidJson, ValidPath, ValidQuery};
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::pagination::{Page, PageQuery};
use crate::pipeline::Request;
use crate::preconditions::{self, IfMatch, IfMatchHeader};
use crate::resources::HoldResponse;
use crate::write::MaybeIdempotencyKey;
use crate::{AppState, RequestContext};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place_hold, list_holds))
        .routes(routes!(get_hold))
        .routes(routes!(capture_hold))
        .routes(routes!(void_hold))
}

/// A new hold: its expiry as a duration (`expires_in_seconds`) or as an instant
/// (`expires_at`), exactly one of them.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PlaceHoldRequest {
    For(HoldForRequest),
    Until(HoldUntilRequest),
}

/// A hold that expires some seconds after it is placed.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldForRequest {
    /// What to reserve, in the wallet's currency; at most what is available.
    #[schema(schema_with = crate::grammar::amount_schema)]
    pub amount: String,
    /// Seconds until the hold expires: 1 to 2592000 (30 days).
    #[schema(minimum = 1, maximum = 2_592_000)]
    #[serde(deserialize_with = "crate::grammar::whole_number")]
    pub expires_in_seconds: u32,
    /// Where a capture sends the money (another wallet of the currency, a transfer);
    /// absent: out of the wallet, as a withdrawal.
    #[schema(value_type = Option<uuid::Uuid>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_wallet_id: Option<WalletId>,
    /// Free text for the caller (an order number), at most 500 characters.
    #[schema(max_length = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A hold that expires at an instant.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldUntilRequest {
    #[schema(schema_with = crate::grammar::amount_schema)]
    pub amount: String,
    /// When the hold expires (RFC 3339): later than now, at most 30 days ahead (else 422
    /// `invalid-expiry`).
    pub expires_at: DateTime<Utc>,
    /// Where a capture sends the money (another wallet of the currency, a transfer);
    /// absent: out of the wallet, as a withdrawal.
    #[schema(value_type = Option<uuid::Uuid>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_wallet_id: Option<WalletId>,
    /// Free text for the caller (an order number), at most 500 characters.
    #[schema(max_length = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// What to capture, at most the hold's amount; absent: all of it. The rest is released.
    #[schema(schema_with = crate::grammar::amount_schema)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HoldListQuery {
    /// Only holds with this status at the instant of the answer.
    #[param(schema_with = status_schema, nullable = false)]
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 200, nullable = false)]
    pub limit: Option<i64>,
    #[param(schema_with = crate::grammar::cursor_schema, nullable = false)]
    pub cursor: Option<String>,
}

fn status_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::new(
            utoipa::openapi::schema::Type::String,
        ))
        .enum_values(Some(HoldStatus::ALL.map(HoldStatus::as_str)))
        .build()
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/holds",
    tag = "holds",
    request_body = PlaceHoldRequest,
    params(("id" = Uuid, Path), IdempotencyHeaders, IfMatchHeader),
    responses(
        (status = 201, body = HoldResponse,
            headers(("Location" = String, description = "The new hold's path"))),
        problems::Malformed,
        problems::NotFound,
        problems::WalletNotActive,
        problems::InvalidHold,
        problems::VersionChanged,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
async fn place_hold(
    State(state): State<AppState>,
    caller: Caller,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidPath(id): ValidPath<WalletId>,
    IfMatch(if_match): IfMatch,
    ValidJson(request): ValidJson<PlaceHoldRequest>,
) -> Result<Response, ApiError> {
    let body = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let (amount, expiry, to, description) = match request {
        PlaceHoldRequest::For(r) => (
            r.amount,
            Expiry::In(r.expires_in_seconds),
            r.to_wallet_id,
            r.description,
        ),
        PlaceHoldRequest::Until(r) => (
            r.amount,
            Expiry::At(r.expires_at),
            r.to_wallet_id,
            r.description,
        ),
    };
    let amount = crate::grammar::amount(&amount)?;
    let request = Request {
        command: Command::PlaceHold {
            wallet: id,
            to,
            amount,
            expiry,
            description,
        },
        caller,
        ctx,
        key,
        body,
        if_match,
    };
    state.pipeline.submit(request).await
}

#[utoipa::path(
    post,
    path = "/v1/holds/{id}/capture",
    tag = "holds",
    request_body = CaptureRequest,
    params(("id" = Uuid, Path), IdempotencyHeaders, HoldIfMatchHeader),
    responses(
        (status = 200, body = HoldResponse),
        problems::Malformed,
        problems::NotFound,
        problems::HoldConflict,
        problems::InvalidCapture,
        problems::VersionChanged,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(hold_id = %id))]
async fn capture_hold(
    State(state): State<AppState>,
    caller: Caller,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidPath(id): ValidPath<HoldId>,
    IfMatch(if_match): IfMatch,
    ValidJson(request): ValidJson<CaptureRequest>,
) -> Result<Response, ApiError> {
    let amount = request
        .amount
        .as_deref()
        .map(crate::grammar::amount)
        .transpose()?;
    let body = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let hold = named(&state, id).await?;
    let request = Request {
        command: Command::CaptureHold {
            hold: id,
            wallet: hold.wallet_id,
            to: hold.to_wallet_id,
            amount,
            scoped: caller.has(CAPTURE_SCOPE),
        },
        caller,
        ctx,
        key,
        body,
        if_match,
    };
    state.pipeline.submit(request).await
}

#[utoipa::path(
    post,
    path = "/v1/holds/{id}/void",
    tag = "holds",
    params(("id" = Uuid, Path), IdempotencyHeaders, HoldIfMatchHeader),
    responses(
        (status = 200, body = HoldResponse),
        problems::Malformed,
        problems::NotFound,
        problems::HoldConflict,
        problems::KeyReused,
        problems::VersionChanged,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(hold_id = %id))]
async fn void_hold(
    State(state): State<AppState>,
    caller: Caller,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidPath(id): ValidPath<HoldId>,
    IfMatch(if_match): IfMatch,
) -> Result<Response, ApiError> {
    let hold = named(&state, id).await?;
    let request = Request {
        command: Command::VoidHold {
            hold: id,
            wallet: hold.wallet_id,
            scoped: caller.has(CAPTURE_SCOPE),
        },
        caller,
        ctx,
        key,
        body: serde_json::Value::Null,
        if_match,
    };
    state.pipeline.submit(request).await
}

/// `If-Match` of a capture or void: the hold's version.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct HoldIfMatchHeader {
    /// Act only if the hold is still at this version (its `ETag`: `"1"` while pending,
    /// `"2"` once closed; or `*`); else 412 `precondition-failed` and nothing changes.
    #[param(rename = "If-Match", nullable = false)]
    pub if_match: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/holds/{id}",
    tag = "holds",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = HoldResponse,
            headers(("ETag" = String, description = "The hold's version: `\"1\"` pending, `\"2\"` closed"))),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(hold_id = %id))]
async fn get_hold(
    State(state): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<HoldId>,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let hold = holds::find(&mut conn, id)
        .await?
        .ok_or_else(|| hold_not_found(id))?;
    if !caller.has(CAPTURE_SCOPE) && !readable_wallet(&mut conn, &caller, hold.wallet_id).await? {
        return Err(hold_not_found(id));
    }
    let etag = [(header::ETAG, preconditions::etag(hold.version()))];
    Ok((etag, Json(HoldResponse::at(&hold, Utc::now()))).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/holds",
    tag = "holds",
    params(("id" = Uuid, Path), HoldListQuery),
    responses(
        (status = 200, body = Page<HoldResponse>),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
async fn list_holds(
    State(state): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<WalletId>,
    ValidQuery(query): ValidQuery<HoldListQuery>,
) -> Result<Json<Page<HoldResponse>>, ApiError> {
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<HoldStatus>()
                .map_err(|e| ApiError::MalformedRequest(e.to_string()))
        })
        .transpose()?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .resolve()?;
    let mut conn = state.pool.acquire().await?;
    crate::wallets::find_readable(&mut conn, &caller, id).await?;
    let now = Utc::now();
    let after = page.after.map(HoldId::from_uuid);
    let rows = holds::list_for_wallet(&mut conn, id, status, now, after, page.fetch()).await?;
    Ok(Json(Page::from_rows(
        rows,
        page,
        |hold| hold.id.as_uuid(),
        |hold| HoldResponse::at(&hold, now),
    )))
}

/// The hold a capture or void names: its wallet and target, which never change, are what
/// the write pipeline locks. Whether the caller may act on it is the decision's to judge.
async fn named(state: &AppState, id: HoldId) -> Result<Hold, ApiError> {
    let mut conn = state.pool.acquire().await?;
    holds::find(&mut conn, id)
        .await?
        .ok_or_else(|| hold_not_found(id))
}

/// Whether the caller may read wallet `id` (its owner, or an admin).
async fn readable_wallet(
    conn: &mut PgConnection,
    caller: &Caller,
    id: WalletId,
) -> Result<bool, ApiError> {
    match crate::wallets::find_readable(conn, caller, id).await {
        Ok(_) => Ok(true),
        Err(ApiError::NotFound { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

fn hold_not_found(id: HoldId) -> ApiError {
    ApiError::NotFound {
        resource: "hold",
        id: id.to_string(),
    }
}

//! `/v1/wallets`: create and read here; deposits and withdrawals in [`movements`], freeze,
//! unfreeze and close in [`status`], history and activity in [`reads`], the balance at an
//! instant and statements in [`statement`], its event stream in [`events`].
//!
//! Creating a wallet is one transaction of its own ([`crate::write::execute`]: retried on
//! contention, idempotent with `Idempotency-Key`). Every other change is a wallet command
//! submitted to the write pipeline ([`crate::pipeline`]), which locks the wallet, decides
//! ([`domain::decide`]), posts to the ledger and writes the domain event to the outbox
//! before the commit. Input is validated before the database is touched wherever the
//! currency is not needed; the rest is decided under the lock, and a refusal writes
//! nothing.

pub mod events;
pub(crate) mod movements;
pub mod reads;
pub mod statement;
mod status;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use domain::{
    Actor, Appended, Currency, DecimalAmount, EventContext, Wallet, WalletId, WalletName,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::collections::HashMap;

use store::{holds, wallets};
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, ValidPath};
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::preconditions::{self, IfNoneMatch, IfNoneMatchHeader};
pub use crate::resources::{MovementResponse, WalletResponse};
use crate::write::{self, MaybeIdempotencyKey, Reply, Write};
use crate::{AppState, RequestContext};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_wallet))
        .routes(routes!(get_wallet))
        .routes(routes!(movements::deposit))
        .routes(routes!(movements::withdraw))
        .routes(routes!(status::freeze))
        .routes(routes!(status::unfreeze))
        .routes(routes!(status::close))
        .routes(routes!(reads::history))
        .routes(routes!(reads::activity))
        .routes(routes!(statement::balance_at))
        .routes(routes!(statement::statement))
        .routes(routes!(events::events))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWalletRequest {
    /// The owner is the caller (the user its token registered), never a body field.
    #[schema(schema_with = crate::grammar::name_schema)]
    pub name: String,
    #[schema(schema_with = crate::grammar::currency_schema)]
    pub currency: String,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    #[schema(schema_with = crate::grammar::amount_schema)]
    pub amount: String,
}

/// The clock reading, correlation id and acting principal the request's events carry.
pub(crate) fn event_context(ctx: &RequestContext, actor: &Actor) -> EventContext {
    EventContext::new(Utc::now(), ctx.correlation_id.clone()).acted_by(actor.clone())
}

/// The wallet `id` if the caller may read it (its owner, or an admin); else not found.
pub(crate) async fn find_readable(
    conn: &mut PgConnection,
    caller: &Caller,
    id: WalletId,
) -> Result<Wallet, ApiError> {
    let wallet = wallets::find(&mut *conn, id)
        .await?
        .ok_or_else(|| wallet_not_found(id))?;
    if caller.may_read(conn, wallet.user_id()).await? {
        Ok(wallet)
    } else {
        Err(wallet_not_found(id))
    }
}

pub(crate) fn wallet_not_found(id: WalletId) -> ApiError {
    ApiError::NotFound {
        resource: "wallet",
        id: id.to_string(),
    }
}

pub(crate) fn parse_amount(text: &str) -> Result<DecimalAmount, ApiError> {
    crate::grammar::amount(text)
}

#[utoipa::path(
    post,
    path = "/v1/wallets",
    tag = "wallets",
    request_body = CreateWalletRequest,
    params(IdempotencyHeaders),
    responses(
        (status = 201, body = WalletResponse,
            headers(("Location" = String, description = "The new wallet's path"))),
        problems::Malformed,
        problems::InFlight,
        problems::InvalidWallet,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all)]
async fn create_wallet(
    State(state): State<AppState>,
    caller: Caller,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidJson(request): ValidJson<CreateWalletRequest>,
) -> Result<Response, ApiError> {
    let name = WalletName::parse(&request.name)?;
    let currency: Currency = request
        .currency
        .parse()
        .map_err(|e: domain::MoneyError| ApiError::Validation(e.to_string()))?;
    let body = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let operation = write::operation(move |conn| {
        let (name, ctx, caller) = (name.clone(), ctx.clone(), caller.clone());
        Box::pin(
            async move {
                let user_id = caller.user(&mut *conn).await?;
                let (wallet, event) = Wallet::create(
                    WalletId::new(),
                    user_id,
                    name,
                    currency,
                    &event_context(&ctx, &caller.actor()),
                );
                wallets::insert(&mut *conn, &wallet).await?;
                let opened = Appended {
                    sequence: wallet.version(),
                    event: event.into(),
                };
                write::append(&mut *conn, &opened).await?;
                let location = format!("/v1/wallets/{}", wallet.id());
                Reply::created(WalletResponse::new(&wallet, 0), Some(location))
            }
            .instrument(write::db_transaction_span("create wallet")),
        )
    });
    let write = Write {
        key,
        request: &body,
    };
    write::execute(&state, write, &operation).await
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}",
    tag = "wallets",
    params(("id" = Uuid, Path), IfNoneMatchHeader),
    responses(
        (status = 200, body = WalletResponse,
            headers(("ETag" = String, description = "The wallet's version, e.g. `\"7\"`"))),
        (status = 304, description = "The copy named by If-None-Match is current",
            headers(("ETag" = String, description = "The wallet's version"))),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
async fn get_wallet(
    State(state): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<WalletId>,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let wallet = find_readable(&mut conn, &caller, id).await?;
    let etag = [(header::ETAG, preconditions::etag(wallet.version()))];
    if if_none_match.is_current(wallet.version()) {
        return Ok((StatusCode::NOT_MODIFIED, etag).into_response());
    }
    let reserved = reserved_now(&mut conn, wallet.id()).await?;
    Ok((etag, Json(WalletResponse::new(&wallet, reserved))).into_response())
}

/// What the pending holds of each wallet reserve now (minor units), for their answers.
pub(crate) async fn with_reserved(
    conn: &mut PgConnection,
    wallets: Vec<Wallet>,
) -> Result<Vec<(Wallet, i64)>, ApiError> {
    let ids: Vec<WalletId> = wallets.iter().map(Wallet::id).collect();
    let reserved: HashMap<WalletId, i64> = holds::reserved_at(conn, &ids, Utc::now())
        .await?
        .into_iter()
        .collect();
    Ok(wallets
        .into_iter()
        .map(|wallet| {
            let minor = reserved.get(&wallet.id()).copied().unwrap_or(0);
            (wallet, minor)
        })
        .collect())
}

/// What the pending holds of wallet `id` reserve now (minor units).
pub(crate) async fn reserved_now(conn: &mut PgConnection, id: WalletId) -> Result<i64, ApiError> {
    Ok(holds::reserved_at(conn, &[id], Utc::now())
        .await?
        .first()
        .map_or(0, |(_, minor)| *minor))
}

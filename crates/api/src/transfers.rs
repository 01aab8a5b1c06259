//! `POST /v1/transfers`: move money between two wallets of the same currency, atomically.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::{TransactionId, WalletError, WalletId};
use serde::{Deserialize, Serialize};
use store::ledger::{self, Entry, Kind, Posting};
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::money::{self, MoneyRequest, Movement};
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::wallets;
use crate::write::{self, MaybeIdempotencyKey, Reply, Write, publish};
use crate::{AppState, RequestContext};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(transfer))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[schema(value_type = uuid::Uuid)]
    pub from_wallet_id: WalletId,
    #[schema(value_type = uuid::Uuid)]
    pub to_wallet_id: WalletId,
    /// In the wallets' currency.
    #[schema(schema_with = crate::grammar::amount_schema)]
    pub amount: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransferResponse {
    #[schema(value_type = uuid::Uuid)]
    pub id: TransactionId,
    #[schema(value_type = uuid::Uuid)]
    pub from_wallet_id: WalletId,
    #[schema(value_type = uuid::Uuid)]
    pub to_wallet_id: WalletId,
    pub amount: String,
    pub from_balance_after: String,
    pub to_balance_after: String,
    pub created_at: DateTime<Utc>,
}

#[utoipa::path(
    post,
    path = "/v1/transfers",
    tag = "transfers",
    request_body = TransferRequest,
    params(IdempotencyHeaders),
    responses(
        (status = 201, body = TransferResponse),
        problems::Malformed,
        problems::NotFound,
        problems::WalletNotActive,
        problems::InvalidTransfer,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(from = %request.from_wallet_id, to = %request.to_wallet_id))]
async fn transfer(
    State(state): State<AppState>,
    caller: Caller,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidJson(request): ValidJson<TransferRequest>,
) -> Result<Response, ApiError> {
    let amount = wallets::parse_amount(&request.amount)?;
    let (from_id, to_id) = (request.from_wallet_id, request.to_wallet_id);
    if from_id == to_id {
        return Err(ApiError::Wallet(WalletError::SameWallet));
    }
    let body = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let request = MoneyRequest {
        movement: Movement::Transfer {
            from: from_id,
            to: to_id,
        },
        amount,
        caller,
        ctx,
        key,
        body,
        expected_version: None,
        span: tracing::Span::current(),
    };
    money::run(&state, request).await
}

/// The transfer `request` (from `from_id` to `to_id`) in a transaction of its own.
pub(crate) async fn run_alone(
    state: &AppState,
    request: &MoneyRequest,
    from_id: WalletId,
    to_id: WalletId,
) -> Result<Response, ApiError> {
    let (amount, publisher) = (request.amount, state.publisher);
    let operation = write::operation(move |conn| {
        let (ctx, caller) = (request.ctx.clone(), request.caller.clone());
        Box::pin(
            async move {
                // Both rows locked in id order: opposite transfers cannot deadlock.
                let locked = store::wallets::lock_many(&mut *conn, &[from_id, to_id]).await?;
                let find = |id: WalletId| {
                    locked
                        .iter()
                        .find(|w| w.id() == id)
                        .cloned()
                        .ok_or_else(|| wallets::wallet_not_found(id))
                };
                let mut from = find(from_id)?;
                // Money leaves only by its owner's hand; it may go to any wallet.
                if !caller.owns(&mut *conn, from.user_id()).await? {
                    return Err(wallets::wallet_not_found(from_id));
                }
                let actor = caller.actor();
                let amount = wallets::in_currency(amount, from.currency())?;
                // The source first: nothing about the target (not even whether it exists)
                // is told to a caller whose own wallet could not send this.
                domain::check_source(&from, amount)?;
                let mut to = find(to_id)?;
                let transfer_id = TransactionId::new();
                let event = domain::transfer(
                    &mut from,
                    &mut to,
                    amount,
                    transfer_id,
                    &wallets::event_context(&ctx, &actor),
                )?;
                let created_at = event.metadata.occurred_at;
                store::wallets::update(&mut *conn, &from).await?;
                store::wallets::update(&mut *conn, &to).await?;
                let entries = [
                    Entry::wallet(from.id(), -amount.minor_units(), from.balance()),
                    Entry::wallet(to.id(), amount.minor_units(), to.balance()),
                ];
                ledger::post(
                    &mut *conn,
                    &Posting {
                        id: transfer_id,
                        kind: Kind::Transfer,
                        amount,
                        correlation_id: &ctx.correlation_id,
                        actor: &actor,
                        created_at,
                        entries: &entries,
                    },
                )
                .await?;
                publish(publisher, &mut *conn, event.into()).await?;
                Reply::created(
                    TransferResponse {
                        id: transfer_id,
                        from_wallet_id: from.id(),
                        to_wallet_id: to.id(),
                        amount: amount.to_string(),
                        from_balance_after: from.balance().to_string(),
                        to_balance_after: to.balance().to_string(),
                        created_at,
                    },
                    None,
                )
            }
            .instrument(wallets::db_transaction_span("transfer")),
        )
    });
    let write = Write {
        key: request.key.clone(),
        request: &request.body,
    };
    write::execute(state, write, &operation).await
}

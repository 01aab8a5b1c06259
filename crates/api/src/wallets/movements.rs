//! Deposits and withdrawals: money between a wallet and its currency's external account.
//! Money enters any active wallet only with the `wallets:deposit` scope; it leaves only by
//! its owner's hand.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use domain::{Command, DecimalAmount, WalletId};

use super::{AmountRequest, parse_amount};
use crate::caller::{Caller, DEPOSIT_SCOPE};
use crate::error::ApiError;
use crate::extract::{ValidJson, ValidPath};
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::pipeline::Request;
use crate::preconditions::{Condition, IfMatch, IfMatchHeader};
use crate::resources::MovementResponse;
use crate::write::{IdempotencyKey, MaybeIdempotencyKey};
use crate::{AppState, RequestContext};

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/deposits",
    tag = "wallets",
    request_body = AmountRequest,
    params(("id" = Uuid, Path), IdempotencyHeaders, IfMatchHeader),
    responses(
        (status = 201, body = MovementResponse),
        problems::Malformed,
        problems::Forbidden,
        problems::NotFound,
        problems::WalletNotActive,
        problems::InvalidDeposit,
        problems::VersionChanged,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
pub(super) async fn deposit(
    State(state): State<AppState>,
    caller: Caller,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidPath(id): ValidPath<WalletId>,
    IfMatch(expected): IfMatch,
    ValidJson(request): ValidJson<AmountRequest>,
) -> Result<Response, ApiError> {
    caller.require(DEPOSIT_SCOPE)?;
    let deposit = |amount| Command::Deposit { wallet: id, amount };
    move_money(state, caller, ctx, key, deposit, expected, request).await
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/withdrawals",
    tag = "wallets",
    request_body = AmountRequest,
    params(("id" = Uuid, Path), IdempotencyHeaders, IfMatchHeader),
    responses(
        (status = 201, body = MovementResponse),
        problems::Malformed,
        problems::NotFound,
        problems::WalletNotActive,
        problems::InvalidWithdrawal,
        problems::VersionChanged,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
pub(super) async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidPath(id): ValidPath<WalletId>,
    IfMatch(expected): IfMatch,
    ValidJson(request): ValidJson<AmountRequest>,
) -> Result<Response, ApiError> {
    let withdrawal = |amount| Command::Withdraw { wallet: id, amount };
    move_money(state, caller, ctx, key, withdrawal, expected, request).await
}

/// A deposit or a withdrawal: parsed here, run by the write pipeline.
async fn move_money(
    state: AppState,
    caller: Caller,
    ctx: RequestContext,
    key: Option<IdempotencyKey>,
    command: impl FnOnce(DecimalAmount) -> Command,
    if_match: Option<Condition>,
    request: AmountRequest,
) -> Result<Response, ApiError> {
    // Grammar first: a malformed amount never costs a transaction.
    let amount = parse_amount(&request.amount)?;
    let body = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let request = Request {
        command: command(amount),
        caller,
        ctx,
        key,
        body,
        if_match,
    };
    state.pipeline.submit(request).await
}

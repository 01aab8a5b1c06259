//! Deposits and withdrawals: money between a wallet and its currency's external account.
//! Money enters any active wallet only with the `wallets:deposit` scope; it leaves only by
//! its owner's hand.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use domain::{TransactionId, WalletId};
use store::ledger::{self, Entry, Posting};
use store::wallets;
use tracing::Instrument;

use super::{
    AmountRequest, MovementResponse, apply_movement, db_transaction_span, event_context,
    in_currency, lock_owned, parse_amount, wallet_not_found,
};
use crate::caller::{Caller, DEPOSIT_SCOPE};
use crate::error::ApiError;
use crate::extract::{ValidJson, ValidPath};
use crate::money::{self, MoneyRequest, Movement};
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::preconditions::{Condition, IfMatch, IfMatchHeader, require_version};
use crate::write::{self, MaybeIdempotencyKey, Reply, Write, publish};
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
    move_money(
        state,
        caller,
        ctx,
        key,
        Movement::Deposit { wallet: id },
        expected,
        request,
    )
    .await
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
    move_money(
        state,
        caller,
        ctx,
        key,
        Movement::Withdrawal { wallet: id },
        expected,
        request,
    )
    .await
}

/// A deposit or a withdrawal (`movement`): parsed here, run by [`money::run`].
async fn move_money(
    state: AppState,
    caller: Caller,
    ctx: RequestContext,
    key: Option<write::IdempotencyKey>,
    movement: Movement,
    expected_version: Option<Condition>,
    request: AmountRequest,
) -> Result<Response, ApiError> {
    // Grammar first: a malformed amount never costs a transaction.
    let amount = parse_amount(&request.amount)?;
    let body = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let request = MoneyRequest {
        movement,
        amount,
        caller,
        ctx,
        key,
        body,
        expected_version,
        span: tracing::Span::current(),
    };
    money::run(&state, request).await
}

/// The deposit (`deposit`) or withdrawal `request` in a transaction of its own: the wallet
/// `wallet_id` against its currency's external account.
pub(crate) async fn run_alone(
    state: &AppState,
    request: &MoneyRequest,
    wallet_id: WalletId,
    deposit: bool,
) -> Result<Response, ApiError> {
    let kind = request.movement.kind();
    let (amount, publisher) = (request.amount, state.publisher);
    let operation = write::operation(move |conn| {
        let (ctx, caller) = (request.ctx.clone(), request.caller.clone());
        let expected_version = request.expected_version.clone();
        Box::pin(
            async move {
                // Money enters any wallet through the deposit scope (checked before);
                // it leaves only by its owner's hand.
                let mut wallet = if deposit {
                    wallets::lock(&mut *conn, wallet_id)
                        .await?
                        .ok_or_else(|| wallet_not_found(wallet_id))?
                } else {
                    lock_owned(&mut *conn, &caller, wallet_id).await?
                };
                require_version(&wallet, expected_version.as_ref())?;
                let amount = in_currency(amount, wallet.currency())?;
                let transaction_id = TransactionId::new();
                let actor = caller.actor();
                let event_ctx = event_context(&ctx, &actor);
                let (event, signed) =
                    apply_movement(&mut wallet, deposit, amount, transaction_id, &event_ctx)?;
                let created_at = event.metadata().occurred_at;
                wallets::update(&mut *conn, &wallet).await?;
                let entries = [
                    Entry::wallet(wallet.id(), signed, wallet.balance()),
                    Entry::external(-signed),
                ];
                ledger::post(
                    &mut *conn,
                    &Posting {
                        id: transaction_id,
                        kind,
                        amount,
                        correlation_id: &ctx.correlation_id,
                        actor: &actor,
                        created_at,
                        entries: &entries,
                    },
                )
                .await?;
                publish(publisher, &mut *conn, event).await?;
                Reply::created(
                    MovementResponse {
                        id: transaction_id,
                        wallet_id: wallet.id(),
                        amount: amount.to_string(),
                        balance_after: wallet.balance().to_string(),
                        created_at,
                    },
                    None,
                )
            }
            .instrument(db_transaction_span(kind.as_str())),
        )
    });
    let write = Write {
        key: request.key.clone(),
        request: &request.body,
    };
    write::execute(state, write, &operation).await
}

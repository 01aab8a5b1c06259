//! Freeze, unfreeze (risk and operations: `wallets:admin`) and close (the owner), each
//! recorded with who did it.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use domain::{StatusAction, WalletId};
use store::wallets;
use tracing::Instrument;

use super::{WalletResponse, db_transaction_span, event_context, lock_owned, wallet_not_found};
use crate::caller::{ADMIN_SCOPE, Caller};
use crate::error::ApiError;
use crate::extract::ValidPath;
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::preconditions::{IfMatch, IfMatchHeader, require_version};
use crate::write::{self, MaybeIdempotencyKey, Reply, Write, publish};
use crate::{AppState, RequestContext};

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/freeze",
    tag = "wallets",
    params(("id" = Uuid, Path), IdempotencyHeaders, IfMatchHeader),
    responses(
        (status = 200, body = WalletResponse),
        problems::Malformed,
        problems::Forbidden,
        problems::NotFound,
        problems::StatusConflict,
        problems::KeyReused,
        problems::VersionChanged,
        problems::ServerErrors,
    )
)]
pub(super) async fn freeze(
    state: State<AppState>,
    caller: Caller,
    ctx: Extension<RequestContext>,
    key: MaybeIdempotencyKey,
    id: ValidPath<WalletId>,
    if_match: IfMatch,
) -> Result<Response, ApiError> {
    change_status(state, caller, ctx, key, id, if_match, StatusAction::Freeze).await
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/unfreeze",
    tag = "wallets",
    params(("id" = Uuid, Path), IdempotencyHeaders, IfMatchHeader),
    responses(
        (status = 200, body = WalletResponse),
        problems::Malformed,
        problems::Forbidden,
        problems::NotFound,
        problems::StatusConflict,
        problems::KeyReused,
        problems::VersionChanged,
        problems::ServerErrors,
    )
)]
pub(super) async fn unfreeze(
    state: State<AppState>,
    caller: Caller,
    ctx: Extension<RequestContext>,
    key: MaybeIdempotencyKey,
    id: ValidPath<WalletId>,
    if_match: IfMatch,
) -> Result<Response, ApiError> {
    change_status(
        state,
        caller,
        ctx,
        key,
        id,
        if_match,
        StatusAction::Unfreeze,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/close",
    tag = "wallets",
    params(("id" = Uuid, Path), IdempotencyHeaders, IfMatchHeader),
    responses(
        (status = 200, body = WalletResponse),
        problems::Malformed,
        problems::NotFound,
        problems::CloseConflict,
        problems::KeyReused,
        problems::VersionChanged,
        problems::ServerErrors,
    )
)]
pub(super) async fn close(
    state: State<AppState>,
    caller: Caller,
    ctx: Extension<RequestContext>,
    key: MaybeIdempotencyKey,
    id: ValidPath<WalletId>,
    if_match: IfMatch,
) -> Result<Response, ApiError> {
    change_status(state, caller, ctx, key, id, if_match, StatusAction::Close).await
}

#[tracing::instrument(skip_all, fields(wallet_id = %wallet_id, action = %action))]
async fn change_status(
    State(state): State<AppState>,
    caller: Caller,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidPath(wallet_id): ValidPath<WalletId>,
    IfMatch(expected): IfMatch,
    action: StatusAction,
) -> Result<Response, ApiError> {
    // Freezing is risk's and operations' business; closing is the owner's.
    match action {
        StatusAction::Freeze | StatusAction::Unfreeze => caller.require(ADMIN_SCOPE)?,
        StatusAction::Close => {}
    }
    let publisher = state.publisher;
    let operation = write::operation(move |conn| {
        let (ctx, caller, expected) = (ctx.clone(), caller.clone(), expected.clone());
        Box::pin(
            async move {
                let mut wallet = match action {
                    StatusAction::Freeze | StatusAction::Unfreeze => {
                        wallets::lock(&mut *conn, wallet_id)
                            .await?
                            .ok_or_else(|| wallet_not_found(wallet_id))?
                    }
                    StatusAction::Close => lock_owned(&mut *conn, &caller, wallet_id).await?,
                };
                require_version(&wallet, expected.as_ref())?;
                let from = wallet.status();
                let actor = caller.actor();
                let event_ctx = event_context(&ctx, &actor);
                let event = match action {
                    StatusAction::Freeze => wallet.freeze(&event_ctx)?,
                    StatusAction::Unfreeze => wallet.unfreeze(&event_ctx)?,
                    StatusAction::Close => wallet.close(&event_ctx)?,
                };
                wallets::update(&mut *conn, &wallet).await?;
                wallets::record_status_change(
                    &mut *conn,
                    &wallets::StatusChange {
                        wallet_id,
                        from,
                        to: wallet.status(),
                        actor: &actor,
                        correlation_id: &ctx.correlation_id,
                        at: event_ctx.occurred_at(),
                    },
                )
                .await?;
                publish(publisher, &mut *conn, event.into()).await?;
                Reply::ok(WalletResponse::from(&wallet))
            }
            .instrument(db_transaction_span(action.as_str())),
        )
    });
    let write = Write {
        key,
        request: &serde_json::Value::Null,
    };
    write::execute(&state, write, &operation).await
}

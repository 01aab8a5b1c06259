//! Freeze, unfreeze (risk and operations: `wallets:admin`) and close (the owner), each
//! recorded with who did it.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use domain::{Command, StatusAction, WalletId};

use crate::caller::{ADMIN_SCOPE, Caller};
use crate::error::ApiError;
use crate::extract::ValidPath;
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::pipeline::Request;
use crate::preconditions::{IfMatch, IfMatchHeader};
use crate::resources::WalletResponse;
use crate::write::MaybeIdempotencyKey;
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
    let request = Request {
        command: Command::ChangeStatus {
            wallet: wallet_id,
            action,
        },
        caller,
        ctx,
        key,
        body: serde_json::Value::Null,
        if_match: expected,
    };
    state.pipeline.submit(request).await
}

//! `POST /v1/transfers`: move money between two wallets of the same currency, atomically.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use domain::{Command, WalletError, WalletId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::pipeline::Request;
use crate::resources::TransferResponse;
use crate::wallets;
use crate::write::MaybeIdempotencyKey;
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
    let request = Request {
        command: Command::Transfer {
            from: from_id,
            to: to_id,
            amount,
        },
        caller,
        ctx,
        key,
        body,
        // Transfers take no If-Match.
        if_match: None,
    };
    state.pipeline.submit(request).await
}

//! Money movements (deposits, withdrawals, transfers) as one request type, and where they
//! run: through the batching writer ([`crate::batch`], `api.write_batching = true`) or one
//! transaction per request ([`crate::write::execute`]), which is also the writer's
//! fallback. Both write the same rows and events and give the same answers.

use axum::response::Response;
use domain::{DecimalAmount, WalletId};
use store::ledger::Kind;
use tracing::Instrument;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::write::IdempotencyKey;
use crate::{AppState, RequestContext, transfers, wallets};

/// Which money movement, and between which wallets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// Into `wallet` from its currency's external account (the `wallets:deposit` scope,
    /// checked before).
    Deposit { wallet: WalletId },
    /// Out of `wallet`, by its owner's hand, to the external account.
    Withdrawal { wallet: WalletId },
    /// From `from` (by its owner's hand) to `to`, same currency.
    Transfer { from: WalletId, to: WalletId },
}

impl Movement {
    pub fn kind(self) -> Kind {
        match self {
            Movement::Deposit { .. } => Kind::Deposit,
            Movement::Withdrawal { .. } => Kind::Withdrawal,
            Movement::Transfer { .. } => Kind::Transfer,
        }
    }

    /// The wallets the movement locks.
    pub fn wallets(self) -> impl Iterator<Item = WalletId> {
        let (first, second) = match self {
            Movement::Deposit { wallet } | Movement::Withdrawal { wallet } => (wallet, None),
            Movement::Transfer { from, to } => (from, Some(to)),
        };
        std::iter::once(first).chain(second)
    }
}

/// One money movement as a client asked for it, validated as far as it can be without the
/// database (the amount's grammar, a transfer's two distinct wallets).
#[derive(Debug, Clone)]
pub struct MoneyRequest {
    pub movement: Movement,
    pub amount: DecimalAmount,
    pub caller: Caller,
    pub ctx: RequestContext,
    pub key: Option<IdempotencyKey>,
    /// The request body (hashed to recognise a retry of the same request).
    pub body: serde_json::Value,
    /// `If-Match` of a deposit or withdrawal: the wallet's version as the client last saw
    /// it, checked under the row lock (per request) or in the batch's rule phase, on the
    /// wallet as the earlier requests of the batch left it; 412 when it differs. Transfers
    /// take none.
    pub expected_version: Option<crate::preconditions::Condition>,
    /// The request's span: a fallback to one transaction per request runs in it, so its
    /// spans and the outbox row's trace context are those of the request.
    pub span: tracing::Span,
}

/// Runs `request`: through the batching writer when it is on, else in its own transaction.
pub async fn run(state: &AppState, request: MoneyRequest) -> Result<Response, ApiError> {
    match &state.batcher {
        Some(batcher) => batcher.submit(request).await,
        None => run_alone(state, &request).await,
    }
}

/// Runs `request` in a transaction of its own (retried on contention, idempotent), in its
/// request's span.
pub async fn run_alone(state: &AppState, request: &MoneyRequest) -> Result<Response, ApiError> {
    let span = request.span.clone();
    match request.movement {
        Movement::Deposit { wallet } => {
            wallets::movements::run_alone(state, request, wallet, true)
                .instrument(span)
                .await
        }
        Movement::Withdrawal { wallet } => {
            wallets::movements::run_alone(state, request, wallet, false)
                .instrument(span)
                .await
        }
        Movement::Transfer { from, to } => {
            transfers::run_alone(state, request, from, to)
                .instrument(span)
                .await
        }
    }
}

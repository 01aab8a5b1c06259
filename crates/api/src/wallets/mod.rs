//! `/v1/wallets`: create a wallet, read it, deposit into it.
//!
//! Each change is one transaction: the wallet row is locked, changed, and the domain event
//! is written to the outbox before the commit. Input is validated before the database is
//! touched wherever the currency is not needed; the rest is validated under the lock and
//! a failure rolls everything back.

mod store;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use domain::{
    Currency, DecimalAmount, DomainEvent, EventContext, Money, Wallet, WalletError, WalletName,
};
use serde::{Deserialize, Serialize};
use telemetry::TraceHeaders;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ValidJson, ValidPath};
use crate::{AppState, RequestContext};

pub use store::Deposit;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/wallets", post(create_wallet))
        .route("/v1/wallets/{id}", get(get_wallet))
        .route("/v1/wallets/{id}/deposits", post(deposit))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWalletRequest {
    pub user_id: Uuid,
    pub name: String,
    /// ISO 4217 code, upper case.
    pub currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositRequest {
    /// Decimal string with at most the currency's decimal places, e.g. `"10.50"`.
    pub amount: String,
}

#[derive(Debug, Serialize)]
pub struct WalletResponse {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub currency: Currency,
    /// Decimal string with exactly the currency's scale.
    pub balance: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl From<&Wallet> for WalletResponse {
    fn from(wallet: &Wallet) -> Self {
        Self {
            id: wallet.id(),
            user_id: wallet.user_id(),
            name: wallet.name().as_str().to_owned(),
            currency: wallet.currency(),
            balance: wallet.balance().to_string(),
            version: wallet.version(),
            created_at: wallet.created_at(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DepositResponse {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub amount: String,
    pub balance_after: String,
    pub created_at: DateTime<Utc>,
}

impl From<WalletError> for ApiError {
    fn from(error: WalletError) -> Self {
        ApiError::Validation(error.to_string())
    }
}

fn event_context(ctx: &RequestContext) -> EventContext {
    EventContext::new(Utc::now(), ctx.correlation_id.clone())
}

/// A client span around one database transaction (OpenTelemetry database conventions);
/// the outbox row written inside it carries this span's context.
fn db_transaction_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db.transaction",
        otel.kind = "client",
        otel.name = format!("transaction {operation}"),
        db.system.name = "postgresql",
        db.operation.name = operation,
    )
}

fn wallet_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound {
        resource: "wallet",
        id: id.to_string(),
    }
}

#[tracing::instrument(skip_all, fields(wallet_id = tracing::field::Empty), err(Debug))]
async fn create_wallet(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    ValidJson(request): ValidJson<CreateWalletRequest>,
) -> Result<(StatusCode, HeaderMap, Json<WalletResponse>), ApiError> {
    let name = WalletName::parse(&request.name)?;
    let currency: Currency = request
        .currency
        .parse()
        .map_err(|e: domain::MoneyError| ApiError::Validation(e.to_string()))?;
    let (wallet, event) = Wallet::create(
        Uuid::now_v7(),
        request.user_id,
        name,
        currency,
        &event_context(&ctx),
    );
    tracing::Span::current().record("wallet_id", tracing::field::display(wallet.id()));

    async {
        let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
        store::insert_wallet(&mut tx, &wallet)
            .await
            .map_err(ApiError::database)?;
        state
            .publisher
            .publish(&mut tx, &DomainEvent::from(event), &TraceHeaders::current())
            .await
            .map_err(ApiError::internal)?;
        tx.commit().await.map_err(ApiError::database)
    }
    .instrument(db_transaction_span("create wallet"))
    .await?;

    let mut headers = HeaderMap::new();
    let location = format!("/v1/wallets/{}", wallet.id());
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(ApiError::internal)?,
    );
    Ok((
        StatusCode::CREATED,
        headers,
        Json(WalletResponse::from(&wallet)),
    ))
}

#[tracing::instrument(skip_all, fields(wallet_id = %id), err(Debug))]
async fn get_wallet(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<WalletResponse>, ApiError> {
    let wallet = store::find_wallet(&state.pool, id)
        .await?
        .ok_or_else(|| wallet_not_found(id))?;
    Ok(Json(WalletResponse::from(&wallet)))
}

#[tracing::instrument(skip_all, fields(wallet_id = %id), err(Debug))]
async fn deposit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(request): ValidJson<DepositRequest>,
) -> Result<(StatusCode, Json<DepositResponse>), ApiError> {
    // Grammar first: a malformed amount never costs a transaction.
    let amount = DecimalAmount::parse(&request.amount)
        .map_err(|e| ApiError::Validation(format!("amount: {e}")))?;

    async {
        let mut tx = state.pool.begin().await.map_err(ApiError::database)?;
        let mut wallet = store::lock_wallet(&mut tx, id)
            .await?
            .ok_or_else(|| wallet_not_found(id))?;
        let amount = Money::from_decimal(amount, wallet.currency())
            .map_err(|e| ApiError::Validation(format!("amount: {e}")))?;
        let deposit_id = Uuid::now_v7();
        let event = wallet.add_funds(amount, deposit_id, &event_context(&ctx))?;
        store::update_balance(&mut tx, &wallet)
            .await
            .map_err(ApiError::database)?;
        let deposit = Deposit {
            id: deposit_id,
            wallet_id: wallet.id(),
            amount,
            balance_after: wallet.balance(),
            correlation_id: ctx.correlation_id.clone(),
            created_at: event.metadata.occurred_at,
        };
        store::insert_deposit(&mut tx, &deposit)
            .await
            .map_err(ApiError::database)?;
        state
            .publisher
            .publish(&mut tx, &DomainEvent::from(event), &TraceHeaders::current())
            .await
            .map_err(ApiError::internal)?;
        tx.commit().await.map_err(ApiError::database)?;

        Ok((
            StatusCode::CREATED,
            Json(DepositResponse {
                id: deposit.id,
                wallet_id: deposit.wallet_id,
                amount: deposit.amount.to_string(),
                balance_after: deposit.balance_after.to_string(),
                created_at: deposit.created_at,
            }),
        ))
    }
    .instrument(db_transaction_span("deposit"))
    .await
}

//! `/v1/wallets`: create, read, deposit, withdraw, freeze/unfreeze/close, history.
//!
//! Each change is one transaction (run by [`crate::write::execute`]: retried on
//! contention, idempotent with `Idempotency-Key`): the wallet row is locked, changed,
//! posted to the ledger, and its domain event written to the outbox before the commit.
//! Input is validated before the database is touched wherever the currency is not
//! needed; the rest is validated under the lock, and a refusal rolls everything back.

pub(crate) mod store;

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use domain::{
    Currency, DecimalAmount, DomainEvent, EventContext, Money, StatusAction, Wallet, WalletName,
    WalletStatus,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use telemetry::TraceHeaders;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ValidJson, ValidPath, ValidQuery};
use crate::ledger::{self, Entry, Kind, Posting};
use crate::openapi::headers::IdempotencyHeaders;
use crate::openapi::problems;
use crate::write::{self, MaybeIdempotencyKey, Reply, Write};
use crate::{AppState, RequestContext};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_wallet))
        .routes(routes!(get_wallet))
        .routes(routes!(deposit))
        .routes(routes!(withdraw))
        .routes(routes!(freeze))
        .routes(routes!(unfreeze))
        .routes(routes!(close))
        .routes(routes!(history))
        .routes(routes!(activity))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWalletRequest {
    pub user_id: Uuid,
    pub name: String,
    /// ISO 4217 code, upper case.
    pub currency: String,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// Decimal string with at most the currency's decimal places, e.g. `"10.50"`.
    pub amount: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WalletResponse {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// ISO 4217 code.
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    /// Decimal string with exactly the currency's scale.
    #[schema(example = "10.50")]
    pub balance: String,
    /// `active`, `frozen` or `closed`.
    #[schema(value_type = String, example = "active")]
    pub status: WalletStatus,
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
            status: wallet.status(),
            version: wallet.version(),
            created_at: wallet.created_at(),
        }
    }
}

/// A deposit or withdrawal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MovementResponse {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub amount: String,
    pub balance_after: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) fn event_context(ctx: &RequestContext) -> EventContext {
    EventContext::new(Utc::now(), ctx.correlation_id.clone())
}

/// A client span around one database transaction (OpenTelemetry database conventions);
/// the outbox row written inside it carries this span's context.
pub(crate) fn db_transaction_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db.transaction",
        otel.kind = "client",
        otel.name = format!("transaction {operation}"),
        db.system.name = "postgresql",
        db.operation.name = operation,
    )
}

pub(crate) fn wallet_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound {
        resource: "wallet",
        id: id.to_string(),
    }
}

pub(crate) fn parse_amount(text: &str) -> Result<DecimalAmount, ApiError> {
    DecimalAmount::parse(text).map_err(|e| ApiError::Validation(format!("amount: {e}")))
}

pub(crate) fn in_currency(amount: DecimalAmount, currency: Currency) -> Result<Money, ApiError> {
    Money::from_decimal(amount, currency).map_err(|e| ApiError::Validation(format!("amount: {e}")))
}

/// Writes `event` to the outbox in the caller's transaction.
pub(crate) async fn publish(
    publisher: outbox::DomainEventPublisher,
    conn: &mut PgConnection,
    event: DomainEvent,
) -> Result<(), ApiError> {
    match publisher
        .publish(conn, &event, &TraceHeaders::current())
        .await
    {
        Ok(()) => Ok(()),
        // A database error (possibly contention, which is retried) keeps its code.
        Err(outbox::OutboxError::Insert { source, .. }) => Err(ApiError::database(source)),
        Err(other) => Err(ApiError::internal(other)),
    }
}

#[utoipa::path(
    post,
    path = "/v1/wallets",
    tag = "wallets",
    request_body = CreateWalletRequest,
    params(IdempotencyHeaders),
    responses(
        (status = 201, body = WalletResponse),
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
    let (publisher, user_id) = (state.publisher, request.user_id);
    let operation = write::operation(move |conn| {
        let (name, ctx) = (name.clone(), ctx.clone());
        Box::pin(
            async move {
                let (wallet, event) = Wallet::create(
                    Uuid::now_v7(),
                    user_id,
                    name,
                    currency,
                    &event_context(&ctx),
                );
                store::insert_wallet(&mut *conn, &wallet).await?;
                publish(publisher, &mut *conn, event.into()).await?;
                let location = format!("/v1/wallets/{}", wallet.id());
                Reply::created(WalletResponse::from(&wallet), Some(location))
            }
            .instrument(db_transaction_span("create wallet")),
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
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = WalletResponse),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
async fn get_wallet(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<WalletResponse>, ApiError> {
    let wallet = store::find_wallet(&state.pool, id)
        .await?
        .ok_or_else(|| wallet_not_found(id))?;
    Ok(Json(WalletResponse::from(&wallet)))
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/deposits",
    tag = "wallets",
    request_body = AmountRequest,
    params(("id" = Uuid, Path), IdempotencyHeaders),
    responses(
        (status = 201, body = MovementResponse),
        problems::Malformed,
        problems::NotFound,
        problems::WalletNotActive,
        problems::Invalid,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
async fn deposit(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(request): ValidJson<AmountRequest>,
) -> Result<Response, ApiError> {
    move_money(state, ctx, key, id, request, Kind::Deposit).await
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/withdrawals",
    tag = "wallets",
    request_body = AmountRequest,
    params(("id" = Uuid, Path), IdempotencyHeaders),
    responses(
        (status = 201, body = MovementResponse),
        problems::Malformed,
        problems::NotFound,
        problems::WalletNotActive,
        problems::InvalidWithdrawal,
        problems::BodyRejected,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
async fn withdraw(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(request): ValidJson<AmountRequest>,
) -> Result<Response, ApiError> {
    move_money(state, ctx, key, id, request, Kind::Withdrawal).await
}

/// A deposit or a withdrawal: the wallet against its currency's external account.
async fn move_money(
    state: AppState,
    ctx: RequestContext,
    key: Option<write::IdempotencyKey>,
    wallet_id: Uuid,
    request: AmountRequest,
    kind: Kind,
) -> Result<Response, ApiError> {
    // Grammar first: a malformed amount never costs a transaction.
    let amount = parse_amount(&request.amount)?;
    let body = serde_json::to_value(&request).map_err(ApiError::internal)?;
    let publisher = state.publisher;
    let operation = write::operation(move |conn| {
        let ctx = ctx.clone();
        Box::pin(
            async move {
                let mut wallet = store::lock_wallet(&mut *conn, wallet_id)
                    .await?
                    .ok_or_else(|| wallet_not_found(wallet_id))?;
                let amount = in_currency(amount, wallet.currency())?;
                let transaction_id = Uuid::now_v7();
                let event_ctx = event_context(&ctx);
                let (event, signed): (DomainEvent, i64) = match kind {
                    Kind::Deposit => (
                        wallet.add_funds(amount, transaction_id, &event_ctx)?.into(),
                        amount.minor_units(),
                    ),
                    _ => (
                        wallet.withdraw(amount, transaction_id, &event_ctx)?.into(),
                        -amount.minor_units(),
                    ),
                };
                let created_at = event.metadata().occurred_at;
                store::update_wallet(&mut *conn, &wallet).await?;
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
                        created_at,
                        entries: &entries,
                    },
                )
                .await
                .map_err(ApiError::database)?;
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
        key,
        request: &body,
    };
    write::execute(&state, write, &operation).await
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/freeze",
    tag = "wallets",
    params(("id" = Uuid, Path), IdempotencyHeaders),
    responses(
        (status = 200, body = WalletResponse),
        problems::Malformed,
        problems::NotFound,
        problems::StatusConflict,
        problems::ServerErrors,
    )
)]
async fn freeze(
    state: State<AppState>,
    ctx: Extension<RequestContext>,
    key: MaybeIdempotencyKey,
    id: ValidPath<Uuid>,
) -> Result<Response, ApiError> {
    change_status(state, ctx, key, id, StatusAction::Freeze).await
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/unfreeze",
    tag = "wallets",
    params(("id" = Uuid, Path), IdempotencyHeaders),
    responses(
        (status = 200, body = WalletResponse),
        problems::Malformed,
        problems::NotFound,
        problems::StatusConflict,
        problems::ServerErrors,
    )
)]
async fn unfreeze(
    state: State<AppState>,
    ctx: Extension<RequestContext>,
    key: MaybeIdempotencyKey,
    id: ValidPath<Uuid>,
) -> Result<Response, ApiError> {
    change_status(state, ctx, key, id, StatusAction::Unfreeze).await
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/close",
    tag = "wallets",
    params(("id" = Uuid, Path), IdempotencyHeaders),
    responses(
        (status = 200, body = WalletResponse),
        problems::Malformed,
        problems::NotFound,
        problems::CloseConflict,
        problems::ServerErrors,
    )
)]
async fn close(
    state: State<AppState>,
    ctx: Extension<RequestContext>,
    key: MaybeIdempotencyKey,
    id: ValidPath<Uuid>,
) -> Result<Response, ApiError> {
    change_status(state, ctx, key, id, StatusAction::Close).await
}

#[tracing::instrument(skip_all, fields(wallet_id = %wallet_id, action = %action))]
async fn change_status(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    ValidPath(wallet_id): ValidPath<Uuid>,
    action: StatusAction,
) -> Result<Response, ApiError> {
    let publisher = state.publisher;
    let operation = write::operation(move |conn| {
        let ctx = ctx.clone();
        Box::pin(
            async move {
                let mut wallet = store::lock_wallet(&mut *conn, wallet_id)
                    .await?
                    .ok_or_else(|| wallet_not_found(wallet_id))?;
                let event_ctx = event_context(&ctx);
                let event = match action {
                    StatusAction::Freeze => wallet.freeze(&event_ctx)?,
                    StatusAction::Unfreeze => wallet.unfreeze(&event_ctx)?,
                    StatusAction::Close => wallet.close(&event_ctx)?,
                };
                store::update_wallet(&mut *conn, &wallet).await?;
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryItem {
    /// The ledger transaction id (the deposit, withdrawal or transfer id).
    pub id: Uuid,
    pub kind: String,
    /// Signed: positive credits the wallet, negative debits it.
    pub amount: String,
    pub balance_after: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty_wallet_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/transactions",
    tag = "wallets",
    params(("id" = Uuid, Path), HistoryQuery),
    responses(
        (status = 200, body = HistoryPage),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
async fn history(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::MalformedRequest(
            "limit must be between 1 and 200".to_owned(),
        ));
    }
    let cursor = query
        .cursor
        .map(|c| {
            c.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| {
                ApiError::MalformedRequest("cursor is not one this API returned".to_owned())
            })
        })
        .transpose()?;
    store::find_wallet(&state.pool, id)
        .await?
        .ok_or_else(|| wallet_not_found(id))?;
    let mut rows = ledger::history(&state.pool, id, cursor, limit + 1)
        .await
        .map_err(ApiError::database)?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more
        .then(|| rows.last().map(|r| r.entry_id.to_string()))
        .flatten();
    let items = rows
        .into_iter()
        .map(|row| {
            let currency = ledger::currency(&row.currency).map_err(ApiError::internal)?;
            Ok(HistoryItem {
                id: row.transaction_id,
                kind: row.kind,
                amount: Money::from_minor(row.amount_minor, currency).to_string(),
                balance_after: Money::from_minor(row.balance_after_minor, currency).to_string(),
                counterparty_wallet_id: row.counterparty_wallet_id,
                created_at: row.created_at,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(HistoryPage { items, next_cursor }))
}

/// The activity read model of a wallet (eventually consistent: fed by Kafka events).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityResponse {
    pub wallet_id: Uuid,
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    /// Everything that came in (deposits, incoming transfers).
    pub total_in: String,
    /// Everything that went out (withdrawals, outgoing transfers).
    pub total_out: String,
    pub events_applied: i64,
    /// Absent until the first movement has been projected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/activity",
    tag = "wallets",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = ActivityResponse),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
async fn activity(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<ActivityResponse>, ApiError> {
    let wallet = store::find_wallet(&state.pool, id)
        .await?
        .ok_or_else(|| wallet_not_found(id))?;
    let currency = wallet.currency();
    let found = consumers::activity::find(&state.pool, id)
        .await
        .map_err(ApiError::database)?;
    let (total_in, total_out, events_applied, last) = found.map_or((0, 0, 0, None), |a| {
        (
            a.total_in_minor,
            a.total_out_minor,
            a.events_applied,
            Some(a.last_activity_at),
        )
    });
    Ok(Json(ActivityResponse {
        wallet_id: id,
        currency,
        total_in: Money::from_minor(total_in, currency).to_string(),
        total_out: Money::from_minor(total_out, currency).to_string(),
        events_applied,
        last_activity_at: last,
    }))
}

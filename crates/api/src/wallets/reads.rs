//! The reads of one wallet beyond its state: its ledger history (paginated, newest first,
//! [`crate::pagination`])
//! and its activity read model.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::{Currency, Money, TransactionId, WalletId};
use serde::Serialize;
use store::{activity, ledger};

use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ValidPath, ValidQuery};
use crate::openapi::problems;
use crate::pagination::{Page, PageQuery};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryItem {
    /// The ledger transaction id (the deposit, withdrawal or transfer id).
    #[schema(value_type = uuid::Uuid)]
    pub id: TransactionId,
    #[schema(schema_with = kind_schema)]
    pub kind: String,
    /// Signed: positive credits the wallet, negative debits it.
    pub amount: String,
    pub balance_after: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub counterparty_wallet_id: Option<WalletId>,
    /// Who moved the money; absent on transactions from before authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<ActorResponse>,
    pub created_at: DateTime<Utc>,
}

/// Every kind the ledger stores (`deposit`, `withdrawal`, `transfer`, `hold`, `capture`,
/// `void`, `expiry`).
pub(crate) fn kind_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::new(
            utoipa::openapi::schema::Type::String,
        ))
        .enum_values(Some(ledger::Kind::ALL.map(ledger::Kind::as_str)))
        .build()
}

/// An authenticated principal: the issuer of its token and the subject it names.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Actor)]
pub struct ActorResponse {
    pub issuer: String,
    pub subject: String,
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/transactions",
    tag = "wallets",
    params(("id" = Uuid, Path), PageQuery),
    responses(
        (status = 200, body = Page<HistoryItem>),
        problems::Malformed,
        problems::NotFound,
        problems::ServerErrors,
    )
)]
#[tracing::instrument(skip_all, fields(wallet_id = %id))]
pub(crate) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<WalletId>,
    ValidQuery(query): ValidQuery<PageQuery>,
) -> Result<Json<Page<HistoryItem>>, ApiError> {
    let page = query.resolve()?;
    let mut conn = state.pool.acquire().await?;
    super::find_readable(&mut conn, &caller, id).await?;
    let after = page.after.map(TransactionId::from_uuid);
    let entries = ledger::history(&mut conn, id, after, page.fetch()).await?;
    Ok(Json(Page::from_rows(
        entries,
        page,
        |entry| entry.transaction_id.as_uuid(),
        |entry| HistoryItem {
            id: entry.transaction_id,
            kind: entry.kind.as_str().to_owned(),
            amount: entry.amount.to_string(),
            balance_after: entry.balance_after.to_string(),
            counterparty_wallet_id: entry.counterparty_wallet_id,
            actor: entry.actor.map(|actor| ActorResponse {
                issuer: actor.issuer,
                subject: actor.subject,
            }),
            created_at: entry.created_at,
        },
    )))
}

/// The activity read model of a wallet (eventually consistent: fed by Kafka events).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityResponse {
    #[schema(value_type = uuid::Uuid)]
    pub wallet_id: WalletId,
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
pub(crate) async fn activity(
    State(state): State<AppState>,
    caller: Caller,
    ValidPath(id): ValidPath<WalletId>,
) -> Result<Json<ActivityResponse>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let wallet = super::find_readable(&mut conn, &caller, id).await?;
    let currency = wallet.currency();
    let found = activity::find(&mut conn, id).await?;
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

//! The representations of wallets and money movements in answers: what a handler reads
//! back and what the write pipeline answers with, in one place that both use.

use chrono::{DateTime, Utc};
use domain::{Currency, Outcome, TransactionId, UserId, Wallet, WalletId, WalletStatus};
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WalletResponse {
    #[schema(value_type = uuid::Uuid)]
    pub id: WalletId,
    #[schema(value_type = uuid::Uuid)]
    pub user_id: UserId,
    pub name: String,
    /// ISO 4217 code.
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    /// Decimal string with exactly the currency's scale.
    #[schema(example = "10.50")]
    pub balance: String,
    #[schema(schema_with = status_schema)]
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

fn status_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::new(
            utoipa::openapi::schema::Type::String,
        ))
        .enum_values(Some(WalletStatus::ALL.map(|s| s.as_str())))
        .examples(["active"])
        .build()
}

/// A deposit or withdrawal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MovementResponse {
    #[schema(value_type = uuid::Uuid)]
    pub id: TransactionId,
    #[schema(value_type = uuid::Uuid)]
    pub wallet_id: WalletId,
    pub amount: String,
    pub balance_after: String,
    pub created_at: DateTime<Utc>,
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

/// The answer body of an accepted command whose event occurred at `created_at`.
pub(crate) fn outcome_body(
    outcome: &Outcome,
    created_at: DateTime<Utc>,
) -> Result<serde_json::Value, serde_json::Error> {
    match outcome {
        Outcome::Moved {
            id,
            wallet,
            amount,
            balance_after,
        } => serde_json::to_value(MovementResponse {
            id: *id,
            wallet_id: *wallet,
            amount: amount.to_string(),
            balance_after: balance_after.to_string(),
            created_at,
        }),
        Outcome::Transferred {
            id,
            from,
            to,
            amount,
            from_balance_after,
            to_balance_after,
        } => serde_json::to_value(TransferResponse {
            id: *id,
            from_wallet_id: *from,
            to_wallet_id: *to,
            amount: amount.to_string(),
            from_balance_after: from_balance_after.to_string(),
            to_balance_after: to_balance_after.to_string(),
            created_at,
        }),
        Outcome::StatusChanged(wallet) => serde_json::to_value(WalletResponse::from(&**wallet)),
    }
}

//! The representations of wallets and money movements in answers: what a handler reads
//! back and what the write pipeline answers with, in one place that both use.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::{
    Currency, Hold, HoldId, HoldStatus, Money, Outcome, TransactionId, UserId, Wallet, WalletId,
    WalletStatus,
};
use serde::Serialize;

use crate::write::Reply;

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
    /// Posted money: decimal string with exactly the currency's scale.
    #[schema(example = "10.50")]
    pub balance: String,
    /// What pending holds reserve at the instant of the answer (a hold past its expiry
    /// reserves nothing). docs/holds.md.
    #[schema(example = "2.00")]
    pub held: String,
    /// `balance - held`: what withdrawals, transfers and new holds may use.
    #[schema(example = "8.50")]
    pub available: String,
    #[schema(schema_with = status_schema)]
    pub status: WalletStatus,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl WalletResponse {
    /// `wallet`, whose pending holds reserve `reserved_minor` at the instant of the answer.
    pub fn new(wallet: &Wallet, reserved_minor: i64) -> Self {
        let currency = wallet.currency();
        let available = wallet
            .balance()
            .minor_units()
            .saturating_sub(reserved_minor);
        Self {
            id: wallet.id(),
            user_id: wallet.user_id(),
            name: wallet.name().as_str().to_owned(),
            currency,
            balance: wallet.balance().to_string(),
            held: Money::from_minor(reserved_minor, currency).to_string(),
            available: Money::from_minor(available, currency).to_string(),
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

/// A hold (docs/holds.md), as it stands at the instant of the answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HoldResponse {
    #[schema(value_type = uuid::Uuid)]
    pub id: HoldId,
    #[schema(value_type = uuid::Uuid)]
    pub wallet_id: WalletId,
    /// Where a capture sends the money; `null`: out of the wallet, as a withdrawal.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub to_wallet_id: Option<WalletId>,
    /// What is (or was) reserved.
    #[schema(example = "25.00")]
    pub amount: String,
    /// What a capture moved ("0.00" until then, and for a voided or expired hold).
    #[schema(example = "0.00")]
    pub captured: String,
    /// At the instant of the answer: a pending hold past `expires_at` is `expired`.
    #[schema(schema_with = hold_status_schema)]
    pub status: &'static str,
    pub description: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// When it was captured, voided or recorded as expired.
    pub closed_at: Option<DateTime<Utc>>,
}

impl HoldResponse {
    /// `hold` as it stands at `at`.
    pub fn at(hold: &Hold, at: DateTime<Utc>) -> Self {
        Self {
            id: hold.id,
            wallet_id: hold.wallet_id,
            to_wallet_id: hold.to_wallet_id,
            amount: hold.amount.to_string(),
            captured: hold
                .captured
                .unwrap_or(Money::zero(hold.amount.currency()))
                .to_string(),
            status: hold.status_at(at).as_str(),
            description: hold.description.clone(),
            expires_at: hold.expires_at,
            created_at: hold.created_at,
            closed_at: hold.closed_at,
        }
    }
}

fn hold_status_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::new(
            utoipa::openapi::schema::Type::String,
        ))
        .enum_values(Some(HoldStatus::ALL.map(HoldStatus::as_str)))
        .examples(["pending"])
        .build()
}

/// The answer of an accepted command whose event occurred at `created_at`: its status,
/// body and `Location`.
pub(crate) fn outcome_reply(
    outcome: &Outcome,
    created_at: DateTime<Utc>,
) -> Result<Reply, serde_json::Error> {
    let (status, location) = match outcome {
        Outcome::Moved { .. } | Outcome::Transferred { .. } => (StatusCode::CREATED, None),
        Outcome::HoldPlaced(hold) => (StatusCode::CREATED, Some(format!("/v1/holds/{}", hold.id))),
        Outcome::StatusChanged { .. } | Outcome::HoldClosed(_) => (StatusCode::OK, None),
    };
    Ok(Reply {
        status,
        body: outcome_body(outcome, created_at)?,
        location,
    })
}

fn outcome_body(
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
        Outcome::StatusChanged { wallet, reserved } => {
            serde_json::to_value(WalletResponse::new(wallet, reserved.minor_units()))
        }
        Outcome::HoldPlaced(hold) | Outcome::HoldClosed(hold) => {
            serde_json::to_value(HoldResponse::at(hold, created_at))
        }
    }
}

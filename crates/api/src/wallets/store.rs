//! SQL for wallets and their transactions.

use chrono::{DateTime, Utc};
use domain::{Currency, Money, Wallet, WalletName};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::ApiError;

#[derive(Debug, sqlx::FromRow)]
struct WalletRow {
    id: Uuid,
    user_id: Uuid,
    name: String,
    currency: String,
    balance_minor: i64,
    status: String,
    version: i64,
    created_at: DateTime<Utc>,
}

/// A stored row that breaks a domain rule means the database was changed behind our back.
#[derive(Debug, thiserror::Error)]
#[error("stored wallet {id} is invalid: {reason}")]
struct CorruptWallet {
    id: Uuid,
    reason: String,
}

impl TryFrom<WalletRow> for Wallet {
    type Error = ApiError;

    fn try_from(row: WalletRow) -> Result<Self, Self::Error> {
        let corrupt = |reason: String| ApiError::internal(CorruptWallet { id: row.id, reason });
        let currency: Currency = row.currency.parse().map_err(|e| corrupt(format!("{e}")))?;
        let name = WalletName::parse(&row.name).map_err(|e| corrupt(e.to_string()))?;
        Ok(Wallet::restore(
            row.id,
            row.user_id,
            name,
            Money::from_minor(row.balance_minor, currency),
            row.status
                .parse()
                .map_err(|e: domain::UnknownWalletStatus| corrupt(e.to_string()))?,
            row.version,
            row.created_at,
        ))
    }
}

macro_rules! select_wallet {
    () => {
        "SELECT id, user_id, name, currency, balance_minor, 'active' AS status, version, created_at FROM wallets WHERE id = $1"
    };
}

pub async fn insert_wallet(conn: &mut PgConnection, wallet: &Wallet) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wallets (id, user_id, name, currency, balance_minor, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(wallet.id())
    .bind(wallet.user_id())
    .bind(wallet.name().as_str())
    .bind(wallet.currency().code())
    .bind(wallet.balance().minor_units())
    .bind(wallet.version())
    .bind(wallet.created_at())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_wallet<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> Result<Option<Wallet>, ApiError> {
    let row: Option<WalletRow> = sqlx::query_as(select_wallet!())
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(ApiError::database)?;
    row.map(Wallet::try_from).transpose()
}

/// Reads the wallet and locks its row until the transaction ends, so concurrent changes
/// to one wallet queue up and its outbox rows get ids in commit order.
pub async fn lock_wallet(conn: &mut PgConnection, id: Uuid) -> Result<Option<Wallet>, ApiError> {
    let row: Option<WalletRow> = sqlx::query_as(concat!(select_wallet!(), " FOR UPDATE"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(ApiError::database)?;
    row.map(Wallet::try_from).transpose()
}

pub async fn update_balance(conn: &mut PgConnection, wallet: &Wallet) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE wallets SET balance_minor = $2, version = $3, updated_at = now() WHERE id = $1",
    )
    .bind(wallet.id())
    .bind(wallet.balance().minor_units())
    .bind(wallet.version())
    .execute(conn)
    .await?;
    Ok(())
}

/// A deposit as stored in `wallet_transactions`.
#[derive(Debug, Clone)]
pub struct Deposit {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub amount: Money,
    pub balance_after: Money,
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_deposit(conn: &mut PgConnection, deposit: &Deposit) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wallet_transactions \
         (id, wallet_id, kind, amount_minor, balance_after_minor, correlation_id, created_at) \
         VALUES ($1, $2, 'deposit', $3, $4, $5, $6)",
    )
    .bind(deposit.id)
    .bind(deposit.wallet_id)
    .bind(deposit.amount.minor_units())
    .bind(deposit.balance_after.minor_units())
    .bind(&deposit.correlation_id)
    .bind(deposit.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

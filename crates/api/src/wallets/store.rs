//! SQL for wallets.

use chrono::{DateTime, Utc};
use domain::{Currency, Money, Wallet, WalletName, WalletStatus};
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
        let currency: Currency = row
            .currency
            .trim()
            .parse()
            .map_err(|e| corrupt(format!("{e}")))?;
        let name = WalletName::parse(&row.name).map_err(|e| corrupt(e.to_string()))?;
        let status: WalletStatus = row
            .status
            .parse()
            .map_err(|e: domain::UnknownWalletStatus| corrupt(e.to_string()))?;
        Ok(Wallet::restore(
            row.id,
            row.user_id,
            name,
            Money::from_minor(row.balance_minor, currency),
            status,
            row.version,
            row.created_at,
        ))
    }
}

macro_rules! select_wallets {
    () => {
        "SELECT id, user_id, name, currency, balance_minor, status, version, created_at FROM wallets "
    };
}

/// Inserts a new wallet; a user id that names no user is [`ApiError::UnknownUser`].
pub async fn insert_wallet(conn: &mut PgConnection, wallet: &Wallet) -> Result<(), ApiError> {
    let result = sqlx::query(
        "INSERT INTO wallets (id, user_id, name, currency, balance_minor, status, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(wallet.id())
    .bind(wallet.user_id())
    .bind(wallet.name().as_str())
    .bind(wallet.currency().code())
    .bind(wallet.balance().minor_units())
    .bind(wallet.status().as_str())
    .bind(wallet.version())
    .bind(wallet.created_at())
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(error) if ApiError::violates(&error, "wallets_user_exists") => {
            Err(ApiError::UnknownUser(wallet.user_id()))
        }
        Err(error) => Err(ApiError::database(error)),
    }
}

pub async fn find_wallet<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> Result<Option<Wallet>, ApiError> {
    let row: Option<WalletRow> = sqlx::query_as(concat!(select_wallets!(), "WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(ApiError::database)?;
    row.map(Wallet::try_from).transpose()
}

pub async fn list_for_user<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
) -> Result<Vec<Wallet>, ApiError> {
    let rows: Vec<WalletRow> = sqlx::query_as(concat!(
        select_wallets!(),
        "WHERE user_id = $1 ORDER BY created_at, id"
    ))
    .bind(user_id)
    .fetch_all(db)
    .await
    .map_err(ApiError::database)?;
    rows.into_iter().map(Wallet::try_from).collect()
}

/// Reads the wallet and locks its row until the transaction ends, so concurrent changes
/// to one wallet queue up and its outbox rows get ids in commit order.
pub async fn lock_wallet(conn: &mut PgConnection, id: Uuid) -> Result<Option<Wallet>, ApiError> {
    let row: Option<WalletRow> =
        sqlx::query_as(concat!(select_wallets!(), "WHERE id = $1 FOR UPDATE"))
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(ApiError::database)?;
    row.map(Wallet::try_from).transpose()
}

/// Locks several wallets in id order (so two transfers in opposite directions cannot
/// deadlock); returns those that exist, in id order.
pub async fn lock_wallets(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Wallet>, ApiError> {
    let rows: Vec<WalletRow> = sqlx::query_as(concat!(
        select_wallets!(),
        "WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    ))
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(ApiError::database)?;
    rows.into_iter().map(Wallet::try_from).collect()
}

/// Writes balance, status and version back.
pub async fn update_wallet(conn: &mut PgConnection, wallet: &Wallet) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE wallets SET balance_minor = $2, status = $3, version = $4, updated_at = now() WHERE id = $1",
    )
    .bind(wallet.id())
    .bind(wallet.balance().minor_units())
    .bind(wallet.status().as_str())
    .bind(wallet.version())
    .execute(conn)
    .await
    .map_err(ApiError::database)?;
    Ok(())
}

//! The `wallets` table: the wallet aggregate's stored state.

use chrono::{DateTime, Utc};
use domain::{Actor, Currency, Held, Money, UserId, Wallet, WalletId, WalletName, WalletStatus};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;
use crate::transactions::TransactionXid;

/// Violated when a new wallet names a user that does not exist.
const USER_EXISTS: &str = "wallets_user_exists";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct WalletRow {
    id: Uuid,
    user_id: Uuid,
    name: String,
    currency: String,
    balance_minor: i64,
    held_minor: i64,
    status: String,
    version: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<WalletRow> for Wallet {
    type Error = StoreError;

    fn try_from(row: WalletRow) -> Result<Self, Self::Error> {
        let id = row.id;
        let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| {
            StoreError::corrupt("wallet", id, source)
        };
        let currency: Currency = row
            .currency
            .trim()
            .parse()
            .map_err(|e: domain::MoneyError| corrupt(e.into()))?;
        let name = WalletName::parse(&row.name).map_err(|e| corrupt(e.into()))?;
        let status: WalletStatus = row
            .status
            .parse()
            .map_err(|e: domain::UnknownWalletStatus| corrupt(e.into()))?;
        Ok(Wallet::restore(
            WalletId::from(row.id),
            UserId::from(row.user_id),
            name,
            Money::from_minor(row.balance_minor, currency),
            status,
            row.version,
            row.created_at,
        )
        .with_held(Money::from_minor(row.held_minor, currency)))
    }
}

macro_rules! select_wallets {
    () => {
        "SELECT id, user_id, name, currency, balance_minor, held_minor, status, version, created_at \
         FROM wallets "
    };
}

/// Inserts a new wallet; a user id that names no user is [`StoreError::UnknownUser`].
pub async fn insert(conn: &mut PgConnection, wallet: &Wallet) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO wallets (id, user_id, name, currency, balance_minor, status, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(wallet.id().as_uuid())
    .bind(wallet.user_id().as_uuid())
    .bind(wallet.name().as_str())
    .bind(wallet.currency().code())
    .bind(wallet.balance().minor_units())
    .bind(wallet.status().as_str())
    .bind(wallet.version())
    .bind(wallet.created_at())
    .execute(conn)
    .await
    .map_err(|error| match StoreError::from(error) {
        error if error.constraint() == Some(USER_EXISTS) => {
            StoreError::UnknownUser(wallet.user_id())
        }
        error => error,
    })?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, id: WalletId) -> Result<Option<Wallet>, StoreError> {
    let row: Option<WalletRow> = sqlx::query_as(concat!(select_wallets!(), "WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?;
    row.map(Wallet::try_from).transpose()
}

/// A user's wallets, oldest first.
pub async fn list_for_user(
    conn: &mut PgConnection,
    user_id: UserId,
    after: Option<WalletId>,
    limit: i64,
) -> Result<Vec<Wallet>, StoreError> {
    // Oldest first; a page resumes after the wallet `after` (none if it is not the user's).
    let rows: Vec<WalletRow> = sqlx::query_as(concat!(
        select_wallets!(),
        "WHERE user_id = $1 AND ($2::uuid IS NULL OR (created_at, id) > \
           (SELECT a.created_at, a.id FROM wallets a WHERE a.id = $2 AND a.user_id = $1)) \
         ORDER BY created_at, id LIMIT $3"
    ))
    .bind(user_id.as_uuid())
    .bind(after.map(WalletId::as_uuid))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Wallet::try_from).collect()
}

/// One freeze, unfreeze or close: who did it and when (`wallet_status_changes`).
#[derive(Debug, Clone)]
pub struct StatusChange<'a> {
    pub wallet_id: WalletId,
    pub from: WalletStatus,
    pub to: WalletStatus,
    pub actor: &'a Actor,
    pub correlation_id: &'a str,
    pub at: DateTime<Utc>,
}

/// Records status changes in the caller's transaction, in one statement.
pub async fn record_status_changes(
    conn: &mut PgConnection,
    changes: &[StatusChange<'_>],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = changes.iter().map(|_| Uuid::now_v7()).collect();
    let wallets: Vec<Uuid> = changes.iter().map(|c| c.wallet_id.as_uuid()).collect();
    let from: Vec<&str> = changes.iter().map(|c| c.from.as_str()).collect();
    let to: Vec<&str> = changes.iter().map(|c| c.to.as_str()).collect();
    let issuers: Vec<&str> = changes.iter().map(|c| c.actor.issuer.as_str()).collect();
    let subjects: Vec<&str> = changes.iter().map(|c| c.actor.subject.as_str()).collect();
    let correlations: Vec<&str> = changes.iter().map(|c| c.correlation_id).collect();
    let at: Vec<DateTime<Utc>> = changes.iter().map(|c| c.at).collect();
    sqlx::query(
        "INSERT INTO wallet_status_changes \
         (id, wallet_id, from_status, to_status, actor_issuer, actor_subject, correlation_id, created_at) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
                              $6::text[], $7::text[], $8::timestamptz[])",
    )
    .bind(ids)
    .bind(wallets)
    .bind(from)
    .bind(to)
    .bind(issuers)
    .bind(subjects)
    .bind(correlations)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct LockedRow {
    #[sqlx(flatten)]
    wallet: WalletRow,
    issuer: Option<String>,
    subject: Option<String>,
    xid: String,
}

/// Wallets locked for a write, and the id of the transaction holding their locks.
#[derive(Debug)]
pub struct Locked {
    /// In id order, without their holds.
    pub wallets: Vec<Held>,
    /// The transaction's id, read with the locks (a row lock assigns one anyway), so the
    /// COMMIT rule ([`crate::transactions`]) costs no round trip of its own; `None` when
    /// none of the wallets exists.
    pub xid: Option<TransactionXid>,
}

/// Locks all `ids` in one statement, in id order (so two batches cannot deadlock), until
/// the transaction ends, and reads each wallet's owning principal with it (`None` when
/// the owner has none, or no longer exists); returns those that exist, in id order,
/// without their holds ([`crate::holds::for_decision`] reads those).
/// Concurrent changes to one wallet queue up on its row, so its outbox rows get ids in
/// commit order.
pub async fn lock_with_owners(
    conn: &mut PgConnection,
    ids: &[WalletId],
) -> Result<Locked, StoreError> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let rows: Vec<LockedRow> = sqlx::query_as(
        "SELECT w.id, w.user_id, w.name, w.currency, w.balance_minor, w.held_minor, w.status, \
                w.version, w.created_at, u.issuer, u.subject, pg_current_xact_id()::text AS xid \
         FROM wallets w LEFT JOIN users u ON u.id = w.user_id \
         WHERE w.id = ANY($1) ORDER BY w.id FOR UPDATE OF w",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let xid = rows.first().map(|row| TransactionXid::new(row.xid.clone()));
    let wallets = rows
        .into_iter()
        .map(|row| {
            let owner = row
                .issuer
                .zip(row.subject)
                .map(|(issuer, subject)| Actor { issuer, subject });
            Ok(Held {
                wallet: Wallet::try_from(row.wallet)?,
                owner,
                holds: Vec::new(),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Locked { wallets, xid })
}

/// Writes balance, held amount, status and version of several wallets back, in one
/// statement.
pub async fn update_many(conn: &mut PgConnection, wallets: &[Wallet]) -> Result<(), StoreError> {
    if wallets.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = wallets.iter().map(|w| w.id().as_uuid()).collect();
    let balances: Vec<i64> = wallets.iter().map(|w| w.balance().minor_units()).collect();
    let held: Vec<i64> = wallets.iter().map(|w| w.held().minor_units()).collect();
    let statuses: Vec<&str> = wallets.iter().map(|w| w.status().as_str()).collect();
    let versions: Vec<i64> = wallets.iter().map(Wallet::version).collect();
    sqlx::query(
        "UPDATE wallets w SET balance_minor = u.balance_minor, held_minor = u.held_minor, \
                status = u.status, version = u.version, updated_at = now() \
         FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[]) \
              AS u(id, balance_minor, status, version, held_minor) \
         WHERE w.id = u.id",
    )
    .bind(ids)
    .bind(balances)
    .bind(statuses)
    .bind(versions)
    .bind(held)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stored wallets of `ids` that exist, in id order, without locking them; each as a
/// wallet, or as why its row does not read as one (the audit reports that wallet and
/// goes on).
pub async fn find_many(
    conn: &mut PgConnection,
    ids: &[WalletId],
) -> Result<Vec<(WalletId, Result<Wallet, StoreError>)>, StoreError> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let rows: Vec<WalletRow> =
        sqlx::query_as(concat!(select_wallets!(), "WHERE id = ANY($1) ORDER BY id"))
            .bind(ids)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|row| (WalletId::from(row.id), Wallet::try_from(row)))
        .collect())
}

/// Overwrites every stored field of a wallet's row with `wallet` (what `wallet-hub rebuild`
/// writes when the row is not the fold of its stream): the caller holds the row's lock.
/// The deferred triggers still judge the result at commit (version against the stream,
/// balance and held amount against the ledger).
pub async fn rewrite(conn: &mut PgConnection, wallet: &Wallet) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE wallets SET user_id = $2, name = $3, currency = $4, balance_minor = $5, \
                held_minor = $6, status = $7, version = $8, created_at = $9, updated_at = now() \
         WHERE id = $1",
    )
    .bind(wallet.id().as_uuid())
    .bind(wallet.user_id().as_uuid())
    .bind(wallet.name().as_str())
    .bind(wallet.currency().code())
    .bind(wallet.balance().minor_units())
    .bind(wallet.held().minor_units())
    .bind(wallet.status().as_str())
    .bind(wallet.version())
    .bind(wallet.created_at())
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks one wallet's row until the transaction ends, without reading it (a row that no
/// longer reads as a wallet can still be locked and rewritten); false if there is none.
pub async fn lock(conn: &mut PgConnection, id: WalletId) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM wallets WHERE id = $1 FOR UPDATE")
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

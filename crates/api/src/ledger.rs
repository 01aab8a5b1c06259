//! The double-entry ledger: every money movement is a ledger transaction whose entries sum
//! to zero. Deposits and withdrawals post against the currency's external account
//! (`wallet_id` NULL). The database re-checks every rule (see the migration's triggers).

use chrono::{DateTime, Utc};
use domain::{Currency, Money};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deposit,
    Withdrawal,
    Transfer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deposit => "deposit",
            Kind::Withdrawal => "withdrawal",
            Kind::Transfer => "transfer",
        }
    }
}

/// One side of a posting: a wallet (with its balance after) or the external account.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub wallet_id: Option<Uuid>,
    /// Signed: credits positive, debits negative.
    pub amount_minor: i64,
    pub balance_after: Option<Money>,
}

impl Entry {
    pub fn wallet(wallet_id: Uuid, amount_minor: i64, balance_after: Money) -> Self {
        Self {
            wallet_id: Some(wallet_id),
            amount_minor,
            balance_after: Some(balance_after),
        }
    }

    pub fn external(amount_minor: i64) -> Self {
        Self {
            wallet_id: None,
            amount_minor,
            balance_after: None,
        }
    }
}

/// A ledger transaction to post.
#[derive(Debug, Clone)]
pub struct Posting<'a> {
    pub id: Uuid,
    pub kind: Kind,
    pub amount: Money,
    pub correlation_id: &'a str,
    pub created_at: DateTime<Utc>,
    pub entries: &'a [Entry],
}

/// Writes the transaction and its entries (in the given order) in two statements.
pub async fn post(conn: &mut PgConnection, posting: &Posting<'_>) -> Result<(), sqlx::Error> {
    let currency = posting.amount.currency().code();
    sqlx::query(
        "INSERT INTO ledger_transactions (id, kind, currency, amount_minor, correlation_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(posting.id)
    .bind(posting.kind.as_str())
    .bind(currency)
    .bind(posting.amount.minor_units())
    .bind(posting.correlation_id)
    .bind(posting.created_at)
    .execute(&mut *conn)
    .await?;
    let wallets: Vec<Option<Uuid>> = posting.entries.iter().map(|e| e.wallet_id).collect();
    let amounts: Vec<i64> = posting.entries.iter().map(|e| e.amount_minor).collect();
    let balances: Vec<Option<i64>> = posting
        .entries
        .iter()
        .map(|e| e.balance_after.map(|m| m.minor_units()))
        .collect();
    sqlx::query(
        "INSERT INTO ledger_entries (transaction_id, wallet_id, currency, amount_minor, balance_after_minor, created_at) \
         SELECT $1, e.wallet_id, $2, e.amount_minor, e.balance_after_minor, $3 \
         FROM unnest($4::uuid[], $5::bigint[], $6::bigint[]) WITH ORDINALITY \
              AS e(wallet_id, amount_minor, balance_after_minor, n) ORDER BY e.n",
    )
    .bind(posting.id)
    .bind(currency)
    .bind(posting.created_at)
    .bind(wallets)
    .bind(amounts)
    .bind(balances)
    .execute(conn)
    .await?;
    Ok(())
}

/// One line of a wallet's history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRow {
    pub entry_id: i64,
    pub transaction_id: Uuid,
    pub kind: String,
    pub currency: String,
    pub amount_minor: i64,
    pub balance_after_minor: i64,
    pub counterparty_wallet_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A wallet's entries, newest first, before `cursor` (an entry id) if given.
pub async fn history<'e>(
    db: impl PgExecutor<'e>,
    wallet_id: Uuid,
    cursor: Option<i64>,
    limit: i64,
) -> Result<Vec<HistoryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.id AS entry_id, t.id AS transaction_id, t.kind, e.currency, e.amount_minor, \
                e.balance_after_minor, \
                (SELECT o.wallet_id FROM ledger_entries o \
                  WHERE o.transaction_id = t.id AND o.wallet_id IS NOT NULL AND o.wallet_id <> e.wallet_id \
                  LIMIT 1) AS counterparty_wallet_id, \
                t.created_at \
         FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id \
         WHERE e.wallet_id = $1 AND ($2::bigint IS NULL OR e.id < $2) \
         ORDER BY e.id DESC LIMIT $3",
    )
    .bind(wallet_id)
    .bind(cursor)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Parses a stored currency code (the database only holds valid ones).
pub fn currency(code: &str) -> Result<Currency, domain::MoneyError> {
    code.trim().parse()
}

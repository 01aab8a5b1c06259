//! The double-entry ledger: every money movement is a ledger transaction whose entries sum
//! to zero. Deposits and withdrawals post against the currency's external account
//! (`wallet_id` NULL). The database re-checks every rule (see the migration's triggers).

use chrono::{DateTime, Utc};
use domain::{Actor, Currency, HoldId, Money, TransactionId, WalletId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;

pub use domain::ledger::{Account, Entry, Kind, UnknownKind};

/// A ledger transaction to post.
#[derive(Debug, Clone)]
pub struct Posting<'a> {
    pub id: TransactionId,
    pub kind: Kind,
    pub amount: Money,
    pub correlation_id: &'a str,
    /// Who moved the money.
    pub actor: &'a Actor,
    pub created_at: DateTime<Utc>,
    /// The hold a `hold`, `capture`, `void` or `expiry` transaction records.
    pub hold_id: Option<HoldId>,
    pub entries: &'a [Entry],
}

/// Writes several transactions and all their entries in one statement (one round trip):
/// entries in the order given (postings in order, each posting's entries in order), so the
/// running-balance trigger sees each wallet's entries in the order its balance moved. The
/// transactions go in through a data-modifying `WITH`; the entries' foreign key to them is
/// checked at the end of the statement, when both are in.
pub async fn post_many(
    conn: &mut PgConnection,
    postings: &[Posting<'_>],
) -> Result<(), StoreError> {
    if postings.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = postings.iter().map(|p| p.id.as_uuid()).collect();
    let kinds: Vec<&str> = postings.iter().map(|p| p.kind.as_str()).collect();
    let currencies: Vec<&str> = postings
        .iter()
        .map(|p| p.amount.currency().code())
        .collect();
    let amounts: Vec<i64> = postings.iter().map(|p| p.amount.minor_units()).collect();
    let correlations: Vec<&str> = postings.iter().map(|p| p.correlation_id).collect();
    let times: Vec<DateTime<Utc>> = postings.iter().map(|p| p.created_at).collect();
    let issuers: Vec<&str> = postings.iter().map(|p| p.actor.issuer.as_str()).collect();
    let subjects: Vec<&str> = postings.iter().map(|p| p.actor.subject.as_str()).collect();
    let holds: Vec<Option<Uuid>> = postings
        .iter()
        .map(|p| p.hold_id.map(HoldId::as_uuid))
        .collect();
    let entries = postings
        .iter()
        .zip(ids.iter().zip(currencies.iter().zip(&times)));
    let count = postings.iter().map(|p| p.entries.len()).sum();
    let mut transaction_ids = Vec::with_capacity(count);
    let mut wallets: Vec<Option<Uuid>> = Vec::with_capacity(count);
    let mut accounts = Vec::with_capacity(count);
    let mut entry_currencies = Vec::with_capacity(count);
    let mut entry_amounts = Vec::with_capacity(count);
    let mut balances: Vec<Option<i64>> = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for (posting, (id, (currency, at))) in entries {
        for entry in posting.entries {
            transaction_ids.push(*id);
            wallets.push(entry.wallet_id.map(WalletId::as_uuid));
            accounts.push(entry.account.as_str());
            entry_currencies.push(*currency);
            entry_amounts.push(entry.amount_minor);
            balances.push(entry.balance_after.map(|m| m.minor_units()));
            created.push(*at);
        }
    }
    sqlx::query(
        "WITH transactions AS ( \
             INSERT INTO ledger_transactions \
             (id, kind, currency, amount_minor, correlation_id, created_at, actor_issuer, \
              actor_subject, hold_id) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                                  $6::timestamptz[], $7::text[], $8::text[], $9::uuid[])) \
         INSERT INTO ledger_entries \
         (transaction_id, wallet_id, currency, amount_minor, balance_after_minor, created_at, \
          account) \
         SELECT e.transaction_id, e.wallet_id, e.currency, e.amount_minor, e.balance_after_minor, \
                e.created_at, e.account \
         FROM unnest($10::uuid[], $11::uuid[], $12::text[], $13::bigint[], $14::bigint[], \
                     $15::timestamptz[], $16::text[]) WITH ORDINALITY \
              AS e(transaction_id, wallet_id, currency, amount_minor, balance_after_minor, \
                   created_at, account, n) \
         ORDER BY e.n",
    )
    .bind(&ids)
    .bind(kinds)
    .bind(&currencies)
    .bind(amounts)
    .bind(correlations)
    .bind(&times)
    .bind(issuers)
    .bind(subjects)
    .bind(holds)
    .bind(transaction_ids)
    .bind(wallets)
    .bind(entry_currencies)
    .bind(entry_amounts)
    .bind(balances)
    .bind(created)
    .bind(accounts)
    .execute(conn)
    .await?;
    Ok(())
}

/// One line of a wallet's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Orders the history; the cursor of the next page.
    pub entry_id: i64,
    pub transaction_id: TransactionId,
    pub kind: Kind,
    /// Signed: positive credits the wallet, negative debits it.
    pub amount: Money,
    pub balance_after: Money,
    /// The other wallet of a transfer.
    pub counterparty_wallet_id: Option<WalletId>,
    /// Who moved the money (absent on transactions from before authentication).
    pub actor: Option<Actor>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct HistoryRow {
    entry_id: i64,
    transaction_id: Uuid,
    kind: String,
    currency: String,
    amount_minor: i64,
    balance_after_minor: i64,
    counterparty_wallet_id: Option<Uuid>,
    actor_issuer: Option<String>,
    actor_subject: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<HistoryRow> for HistoryEntry {
    type Error = StoreError;

    fn try_from(row: HistoryRow) -> Result<Self, Self::Error> {
        let id = row.entry_id;
        let currency: Currency = row
            .currency
            .trim()
            .parse()
            .map_err(|e: domain::MoneyError| StoreError::corrupt("ledger entry", id, e))?;
        let kind: Kind = row
            .kind
            .parse()
            .map_err(|e: UnknownKind| StoreError::corrupt("ledger entry", id, e))?;
        Ok(HistoryEntry {
            entry_id: row.entry_id,
            transaction_id: TransactionId::from(row.transaction_id),
            kind,
            amount: Money::from_minor(row.amount_minor, currency),
            balance_after: Money::from_minor(row.balance_after_minor, currency),
            counterparty_wallet_id: row.counterparty_wallet_id.map(WalletId::from),
            actor: row
                .actor_issuer
                .zip(row.actor_subject)
                .map(|(issuer, subject)| Actor { issuer, subject }),
            created_at: row.created_at,
        })
    }
}

/// A wallet's entries on its balance (holds reserve and release on its held account, which
/// moves no money), newest first, after the entry of transaction `after` if given (none if
/// that transaction did not move the wallet's balance).
pub async fn history(
    conn: &mut PgConnection,
    wallet_id: WalletId,
    after: Option<TransactionId>,
    limit: i64,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT e.id AS entry_id, t.id AS transaction_id, t.kind, e.currency, e.amount_minor, \
                e.balance_after_minor, \
                (SELECT o.wallet_id FROM ledger_entries o \
                  WHERE o.transaction_id = t.id AND o.wallet_id IS NOT NULL AND o.wallet_id <> e.wallet_id \
                    AND o.account = 'balance' LIMIT 1) AS counterparty_wallet_id, \
                t.actor_issuer, t.actor_subject, t.created_at \
         FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id \
         WHERE e.wallet_id = $1 AND e.account = 'balance' AND ($2::uuid IS NULL OR e.id < \
           (SELECT a.id FROM ledger_entries a WHERE a.wallet_id = $1 AND a.transaction_id = $2 \
              AND a.account = 'balance')) \
         ORDER BY e.id DESC LIMIT $3",
    )
    .bind(wallet_id.as_uuid())
    .bind(after.map(TransactionId::as_uuid))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(HistoryEntry::try_from).collect()
}

/// A wallet's ledger at an instant: its balance and the held amount in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct BalanceAt {
    /// The running balance after its latest balance entry at or before the instant.
    pub balance_minor: i64,
    /// What its holds reserved at the instant: placed at or before it, not yet closed and
    /// not past their expiry (the holds' times are their ledger transactions').
    pub held_minor: i64,
}

/// Wallet `wallet_id`'s balance and held amount at `at` (zeros before its first entry).
pub async fn balance_at(
    conn: &mut PgConnection,
    wallet_id: WalletId,
    at: DateTime<Utc>,
) -> Result<BalanceAt, StoreError> {
    Ok(sqlx::query_as(
        "SELECT COALESCE((SELECT balance_after_minor FROM ledger_entries \
                           WHERE wallet_id = $1 AND account = 'balance' AND created_at <= $2 \
                           ORDER BY id DESC LIMIT 1), 0) AS balance_minor, \
                COALESCE((SELECT sum(amount_minor) FROM holds \
                           WHERE wallet_id = $1 AND created_at <= $2 AND expires_at > $2 \
                             AND (closed_at IS NULL OR closed_at > $2)), 0)::bigint AS held_minor",
    )
    .bind(wallet_id.as_uuid())
    .bind(at)
    .fetch_one(conn)
    .await?)
}

/// A wallet's two ledger accounts as they stood before an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Accounts {
    pub balance_minor: i64,
    /// What its `held` account carried (holds recorded pending).
    pub held_minor: i64,
}

/// Wallet `wallet_id`'s balance and held accounts after its entries created before
/// `before` (zeros before its first entry): a statement's opening (or closing) line.
pub async fn accounts_before(
    conn: &mut PgConnection,
    wallet_id: WalletId,
    before: DateTime<Utc>,
) -> Result<Accounts, StoreError> {
    Ok(sqlx::query_as(
        "SELECT COALESCE((SELECT balance_after_minor FROM ledger_entries \
                           WHERE wallet_id = $1 AND account = 'balance' AND created_at < $2 \
                           ORDER BY id DESC LIMIT 1), 0) AS balance_minor, \
                COALESCE((SELECT balance_after_minor FROM ledger_entries \
                           WHERE wallet_id = $1 AND account = 'held' AND created_at < $2 \
                           ORDER BY id DESC LIMIT 1), 0) AS held_minor",
    )
    .bind(wallet_id.as_uuid())
    .bind(before)
    .fetch_one(conn)
    .await?)
}

/// One ledger transaction of a wallet's statement: what it changed on each of the
/// wallet's accounts, and where they stood after it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatementLine {
    pub transaction_id: Uuid,
    pub kind: String,
    pub hold_id: Option<Uuid>,
    /// Signed change of the balance (0 for a hold placed, voided or expired).
    pub balance_change_minor: i64,
    /// Signed change of the held account.
    pub held_change_minor: i64,
    pub balance_after_minor: i64,
    pub held_after_minor: i64,
    pub created_at: DateTime<Utc>,
}

/// The ledger transactions of wallet `wallet_id` created in `[from, to)`, oldest first,
/// after transaction `after` (none if it is not the wallet's), at most `limit`.
pub async fn statement(
    conn: &mut PgConnection,
    wallet_id: WalletId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<TransactionId>,
    limit: i64,
) -> Result<Vec<StatementLine>, StoreError> {
    Ok(sqlx::query_as(
        "WITH lines AS ( \
             SELECT e.transaction_id, min(e.id) AS first_entry, max(e.id) AS last_entry, \
                    COALESCE(sum(e.amount_minor) FILTER (WHERE e.account = 'balance'), 0)::bigint \
                        AS balance_change_minor, \
                    COALESCE(sum(e.amount_minor) FILTER (WHERE e.account = 'held'), 0)::bigint \
                        AS held_change_minor \
             FROM ledger_entries e \
             WHERE e.wallet_id = $1 AND e.created_at >= $2 AND e.created_at < $3 \
             GROUP BY e.transaction_id) \
         SELECT l.transaction_id, t.kind, t.hold_id, l.balance_change_minor, l.held_change_minor, \
                COALESCE((SELECT b.balance_after_minor FROM ledger_entries b \
                           WHERE b.wallet_id = $1 AND b.account = 'balance' AND b.id <= l.last_entry \
                           ORDER BY b.id DESC LIMIT 1), 0) AS balance_after_minor, \
                COALESCE((SELECT h.balance_after_minor FROM ledger_entries h \
                           WHERE h.wallet_id = $1 AND h.account = 'held' AND h.id <= l.last_entry \
                           ORDER BY h.id DESC LIMIT 1), 0) AS held_after_minor, \
                t.created_at \
         FROM lines l JOIN ledger_transactions t ON t.id = l.transaction_id \
         WHERE $4::uuid IS NULL \
            OR l.first_entry > (SELECT a.first_entry FROM lines a WHERE a.transaction_id = $4) \
         ORDER BY l.first_entry LIMIT $5",
    )
    .bind(wallet_id.as_uuid())
    .bind(from)
    .bind(to)
    .bind(after.map(TransactionId::as_uuid))
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

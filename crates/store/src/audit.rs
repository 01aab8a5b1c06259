//! Reconciliation queries over the store's tables, for `wallet-hub audit`: each looks at a
//! whole table in one set-based statement and returns the rows that break an invariant,
//! at most `limit` of them, each carrying `total`, how many broke it in all.
//!
//! The database enforces most of these rules itself (checks, triggers); the audit asks
//! again because triggers can be disabled, rows restored from a backup, or a bug can sit
//! in the triggers themselves.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;

/// How many rows the audit looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct StoreCounts {
    pub wallets: i64,
    /// Ledger transactions created at or after `since` (all without it).
    pub ledger_transactions: i64,
    pub inbox_rows: i64,
    pub notifications: i64,
    pub activity_wallets: i64,
}

pub async fn counts(
    conn: &mut PgConnection,
    since: Option<DateTime<Utc>>,
) -> Result<StoreCounts, StoreError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM wallets) AS wallets, \
                (SELECT count(*) FROM ledger_transactions \
                  WHERE $1::timestamptz IS NULL OR created_at >= $1) AS ledger_transactions, \
                (SELECT count(*) FROM inbox) AS inbox_rows, \
                (SELECT count(*) FROM notifications) AS notifications, \
                (SELECT count(*) FROM wallet_activity) AS activity_wallets",
    )
    .bind(since)
    .fetch_one(conn)
    .await?)
}

/// A wallet whose stored balance is not what its ledger says, or is negative.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BalanceMismatch {
    pub wallet_id: Uuid,
    pub balance_minor: i64,
    /// The sum of the wallet's ledger entries (0 without entries).
    pub ledger_sum_minor: i64,
    /// The running balance after the wallet's latest entry (0 without entries).
    pub latest_balance_after_minor: i64,
    pub total: i64,
}

/// Wallets whose `balance_minor` differs from the sum of their ledger entries on their
/// balance or from their latest such entry's `balance_after_minor`, or is negative.
pub async fn balance_mismatches(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<BalanceMismatch>, StoreError> {
    Ok(sqlx::query_as(
        "WITH sums AS ( \
             SELECT wallet_id, sum(amount_minor)::bigint AS ledger_sum_minor \
             FROM ledger_entries WHERE wallet_id IS NOT NULL AND account = 'balance' \
             GROUP BY wallet_id), \
         latest AS ( \
             SELECT DISTINCT ON (wallet_id) wallet_id, balance_after_minor \
             FROM ledger_entries WHERE wallet_id IS NOT NULL AND account = 'balance' \
             ORDER BY wallet_id, id DESC) \
         SELECT w.id AS wallet_id, w.balance_minor, \
                COALESCE(s.ledger_sum_minor, 0) AS ledger_sum_minor, \
                COALESCE(l.balance_after_minor, 0) AS latest_balance_after_minor, \
                count(*) OVER () AS total \
         FROM wallets w \
         LEFT JOIN sums s ON s.wallet_id = w.id \
         LEFT JOIN latest l ON l.wallet_id = w.id \
         WHERE w.balance_minor <> COALESCE(s.ledger_sum_minor, 0) \
            OR w.balance_minor <> COALESCE(l.balance_after_minor, 0) \
            OR w.balance_minor < 0 \
         ORDER BY w.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A ledger entry whose running balance does not continue the previous entry of the
/// wallet's account (its balance, or its held amount).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunningBalanceBreak {
    pub entry_id: i64,
    pub wallet_id: Uuid,
    pub amount_minor: i64,
    pub balance_after_minor: i64,
    /// The previous entry's running balance (0 for the wallet's first entry).
    pub previous_balance_after_minor: i64,
    pub total: i64,
}

pub async fn running_balance_breaks(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<RunningBalanceBreak>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT entry_id, wallet_id, amount_minor, balance_after_minor, \
                previous_balance_after_minor, count(*) OVER () AS total \
         FROM ( \
             SELECT id AS entry_id, wallet_id, amount_minor, balance_after_minor, \
                    COALESCE(lag(balance_after_minor) \
                             OVER (PARTITION BY wallet_id, account ORDER BY id), 0) \
                        AS previous_balance_after_minor \
             FROM ledger_entries WHERE wallet_id IS NOT NULL) e \
         WHERE balance_after_minor <> previous_balance_after_minor + amount_minor \
            OR balance_after_minor < 0 \
         ORDER BY entry_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A ledger transaction whose entries do not sum to zero, or that has fewer than two.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UnbalancedTransaction {
    pub transaction_id: Uuid,
    pub kind: String,
    pub entries: i64,
    pub sum_minor: i64,
    pub total: i64,
}

/// Ledger transactions created at or after `since` (all without it) that do not balance.
pub async fn unbalanced_transactions(
    conn: &mut PgConnection,
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<UnbalancedTransaction>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.id AS transaction_id, t.kind, count(e.id) AS entries, \
                COALESCE(sum(e.amount_minor), 0)::bigint AS sum_minor, \
                count(*) OVER () AS total \
         FROM ledger_transactions t \
         LEFT JOIN ledger_entries e ON e.transaction_id = t.id \
         WHERE $1::timestamptz IS NULL OR t.created_at >= $1 \
         GROUP BY t.id, t.kind \
         HAVING count(e.id) < 2 OR COALESCE(sum(e.amount_minor), 0) <> 0 \
         ORDER BY t.id LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A wallet whose activity totals are not its ledger's.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActivityMismatch {
    pub wallet_id: Uuid,
    /// Deposits and incoming transfers, per the ledger.
    pub ledger_in_minor: i64,
    /// Withdrawals and outgoing transfers, per the ledger.
    pub ledger_out_minor: i64,
    /// Ledger transactions that moved the wallet's money: one event each for the projection.
    pub ledger_movements: i64,
    /// `None` when the projection has no row for the wallet.
    pub activity_in_minor: Option<i64>,
    pub activity_out_minor: Option<i64>,
    pub events_applied: Option<i64>,
    pub total: i64,
}

/// Wallets whose `wallet_activity` row differs from what their ledger says (money in, money
/// out, one applied event per movement), or that have movements but no row, or a row but no
/// movements. Wallets with a ledger entry newer than `settled_before` are left out: their
/// events may still be on their way to the projection.
pub async fn activity_mismatches(
    conn: &mut PgConnection,
    settled_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ActivityMismatch>, StoreError> {
    Ok(sqlx::query_as(
        "WITH ledger AS ( \
             SELECT wallet_id, \
                    COALESCE(sum(amount_minor) FILTER (WHERE amount_minor > 0), 0)::bigint AS in_minor, \
                    COALESCE(-sum(amount_minor) FILTER (WHERE amount_minor < 0), 0)::bigint AS out_minor, \
                    count(*) AS movements, max(created_at) AS latest \
             FROM ledger_entries WHERE wallet_id IS NOT NULL AND account = 'balance' \
             GROUP BY wallet_id) \
         SELECT COALESCE(l.wallet_id, a.wallet_id) AS wallet_id, \
                COALESCE(l.in_minor, 0) AS ledger_in_minor, \
                COALESCE(l.out_minor, 0) AS ledger_out_minor, \
                COALESCE(l.movements, 0) AS ledger_movements, \
                a.total_in_minor AS activity_in_minor, a.total_out_minor AS activity_out_minor, \
                a.events_applied, count(*) OVER () AS total \
         FROM ledger l FULL JOIN wallet_activity a ON a.wallet_id = l.wallet_id \
         WHERE (l.latest IS NULL OR l.latest < $1) \
           AND (a.wallet_id IS NULL OR l.wallet_id IS NULL \
                OR a.total_in_minor <> l.in_minor OR a.total_out_minor <> l.out_minor \
                OR a.events_applied <> l.movements) \
         ORDER BY 1 LIMIT $2",
    )
    .bind(settled_before)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A wallet whose held amount is not the sum of its holds recorded pending, or not its
/// `held` ledger account's latest running balance.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HeldMismatch {
    pub wallet_id: Uuid,
    pub held_minor: i64,
    /// The sum of its holds recorded pending (0 without any).
    pub pending_minor: i64,
    /// The running balance after its latest `held` entry (0 without any).
    pub ledger_held_minor: i64,
    pub total: i64,
}

pub async fn held_mismatches(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<HeldMismatch>, StoreError> {
    Ok(sqlx::query_as(
        "WITH pending AS ( \
             SELECT wallet_id, sum(amount_minor)::bigint AS pending_minor \
             FROM holds WHERE status = 'pending' GROUP BY wallet_id), \
         latest AS ( \
             SELECT DISTINCT ON (wallet_id) wallet_id, balance_after_minor \
             FROM ledger_entries WHERE wallet_id IS NOT NULL AND account = 'held' \
             ORDER BY wallet_id, id DESC) \
         SELECT w.id AS wallet_id, w.held_minor, \
                COALESCE(p.pending_minor, 0) AS pending_minor, \
                COALESCE(l.balance_after_minor, 0) AS ledger_held_minor, \
                count(*) OVER () AS total \
         FROM wallets w \
         LEFT JOIN pending p ON p.wallet_id = w.id \
         LEFT JOIN latest l ON l.wallet_id = w.id \
         WHERE w.held_minor <> COALESCE(p.pending_minor, 0) \
            OR w.held_minor <> COALESCE(l.balance_after_minor, 0) \
         ORDER BY w.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A wallet whose pending holds reserve more than its balance now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Overdrawn {
    pub wallet_id: Uuid,
    pub balance_minor: i64,
    /// What its pending holds not past their expiry reserve now.
    pub reserved_minor: i64,
    pub total: i64,
}

/// Wallets whose available amount (balance less what pending holds reserve at the
/// database's now) is negative.
pub async fn overdrawn_wallets(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<Overdrawn>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT w.id AS wallet_id, w.balance_minor, r.reserved_minor, count(*) OVER () AS total \
         FROM wallets w \
         JOIN (SELECT wallet_id, sum(amount_minor)::bigint AS reserved_minor FROM holds \
               WHERE status = 'pending' AND expires_at > now() GROUP BY wallet_id) r \
           ON r.wallet_id = w.id \
         WHERE w.balance_minor < r.reserved_minor \
         ORDER BY w.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A hold whose capture is more than it held, or differs from its ledger transaction.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CaptureBreak {
    pub hold_id: Uuid,
    pub status: String,
    pub amount_minor: i64,
    pub captured_minor: Option<i64>,
    /// The amount of its `capture` ledger transactions, summed (`None` without one).
    pub ledger_captured_minor: Option<i64>,
    pub captures: i64,
    pub total: i64,
}

/// Holds captured, or with a `capture` transaction, whose capture is not exactly one ledger
/// transaction of the captured amount, at most the hold's.
pub async fn capture_breaks(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<CaptureBreak>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT h.id AS hold_id, h.status, h.amount_minor, h.captured_minor, \
                sum(t.amount_minor)::bigint AS ledger_captured_minor, count(t.id) AS captures, \
                count(*) OVER () AS total \
         FROM holds h \
         LEFT JOIN ledger_transactions t ON t.hold_id = h.id AND t.kind = 'capture' \
         GROUP BY h.id \
         HAVING (h.status = 'captured' OR count(t.id) > 0) \
            AND (count(t.id) <> 1 OR h.captured_minor IS DISTINCT FROM sum(t.amount_minor) \
                 OR sum(t.amount_minor) > h.amount_minor OR h.captured_minor > h.amount_minor) \
         ORDER BY h.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A wallet with more than one notification of a kind.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DuplicateNotification {
    pub wallet_id: Uuid,
    pub kind: String,
    pub notifications: i64,
    pub total: i64,
}

/// Wallets with more than one notification of the same kind (the welcome is sent once;
/// `velocity-exceeded` is sent per alert, and the inbox keeps each alert's once).
pub async fn duplicate_notifications(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<DuplicateNotification>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT wallet_id, kind, count(*) AS notifications, count(*) OVER () AS total \
         FROM notifications WHERE kind <> 'velocity-exceeded' \
         GROUP BY wallet_id, kind HAVING count(*) > 1 \
         ORDER BY wallet_id, kind LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The database's clock: the audit's "now", on the clock that stamped the rows.
pub async fn database_now(conn: &mut PgConnection) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(conn).await?)
}

/// A wallet whose version is not its stream's last sequence (a deferred trigger refuses
/// it at commit; the audit asks again, from the other side of the fold).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionMismatch {
    pub wallet_id: Uuid,
    pub version: i64,
    /// `None` when the wallet has no stream at all.
    pub last_sequence: Option<i64>,
    pub total: i64,
}

pub async fn version_mismatches(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<VersionMismatch>, StoreError> {
    Ok(sqlx::query_as(
        "WITH last AS ( \
             SELECT wallet_id, max(sequence) AS last_sequence FROM wallet_events GROUP BY wallet_id) \
         SELECT w.id AS wallet_id, w.version, l.last_sequence, count(*) OVER () AS total \
         FROM wallets w LEFT JOIN last l ON l.wallet_id = w.id \
         WHERE w.version IS DISTINCT FROM l.last_sequence \
         ORDER BY w.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

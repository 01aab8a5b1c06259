//! The ledger's checks: balances against their entries, running balances, balanced
//! transactions.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use store::audit as store_audit;

use super::{AuditError, AuditReport, BALANCE, BALANCED, LIST_LIMIT, RUNNING_BALANCE, store_err};

/// Each balance is its ledger's; running balances continue; transactions sum to zero.
pub(super) async fn check(
    conn: &mut PgConnection,
    since: Option<DateTime<Utc>>,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let rows = store_audit::balance_mismatches(conn, LIST_LIMIT)
        .await
        .map_err(store_err(BALANCE))?;
    report.add(BALANCE, &rows, |r| r.total, |r| {
        format!(
            "wallet {}: balance {} minor units, its ledger entries sum to {}, latest running balance {}",
            r.wallet_id, r.balance_minor, r.ledger_sum_minor, r.latest_balance_after_minor
        )
    });
    let rows = store_audit::running_balance_breaks(conn, LIST_LIMIT)
        .await
        .map_err(store_err(RUNNING_BALANCE))?;
    report.add(
        RUNNING_BALANCE,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "ledger entry {} of wallet {}: {} after {} + {} minor units",
                r.entry_id,
                r.wallet_id,
                r.balance_after_minor,
                r.previous_balance_after_minor,
                r.amount_minor
            )
        },
    );
    let rows = store_audit::unbalanced_transactions(conn, since, LIST_LIMIT)
        .await
        .map_err(store_err(BALANCED))?;
    report.add(
        BALANCED,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "ledger transaction {} ({}): {} entries summing to {} minor units",
                r.transaction_id, r.kind, r.entries, r.sum_minor
            )
        },
    );

    Ok(())
}

//! The holds' checks: held amounts, what is available, captures.

use sqlx::PgConnection;
use store::audit as store_audit;

use super::{AVAILABLE, AuditError, AuditReport, CAPTURE, HELD, LIST_LIMIT, store_err};

/// The holds' checks: held amounts, what is available, captures.
pub(super) async fn check(
    conn: &mut PgConnection,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let rows = store_audit::held_mismatches(conn, LIST_LIMIT)
        .await
        .map_err(store_err(HELD))?;
    report.add(HELD, &rows, |r| r.total, |r| {
        format!(
            "wallet {}: held {} minor units, its pending holds sum to {}, its held account's latest running balance {}",
            r.wallet_id, r.held_minor, r.pending_minor, r.ledger_held_minor
        )
    });
    let rows = store_audit::overdrawn_wallets(conn, LIST_LIMIT)
        .await
        .map_err(store_err(AVAILABLE))?;
    report.add(
        AVAILABLE,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "wallet {}: pending holds reserve {} minor units of a balance of {}",
                r.wallet_id, r.reserved_minor, r.balance_minor
            )
        },
    );
    let rows = store_audit::capture_breaks(conn, LIST_LIMIT)
        .await
        .map_err(store_err(CAPTURE))?;
    report.add(CAPTURE, &rows, |r| r.total, |r| {
        format!(
            "hold {} ({}, {} minor units): captured {:?}, {} capture transactions of {:?} in the ledger",
            r.hold_id, r.status, r.amount_minor, r.captured_minor, r.captures, r.ledger_captured_minor
        )
    });
    Ok(())
}

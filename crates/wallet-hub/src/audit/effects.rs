//! The consumers' effects: the activity projection against the ledger, each event applied
//! once, each notification sent once.

use chrono::{DateTime, Utc};
use consumers::WalletActivityProjection;
use outbox::audit as outbox_audit;
use sqlx::PgConnection;
use store::audit as store_audit;

use super::{
    ACTIVITY, APPLIED_ONCE, AuditError, AuditReport, LIST_LIMIT, NOTIFIED_ONCE, db_err, store_err,
};

/// What the consumers applied of the events settled before `settled_before`.
pub(super) async fn check(
    conn: &mut PgConnection,
    settled_before: DateTime<Utc>,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let rows = store_audit::activity_mismatches(conn, settled_before, LIST_LIMIT)
        .await
        .map_err(store_err(ACTIVITY))?;
    report.add(ACTIVITY, &rows, |r| r.total, |r| match (r.activity_in_minor, r.activity_out_minor, r.events_applied) {
        (Some(total_in), Some(total_out), Some(applied)) => format!(
            "wallet {}: activity in {total_in} / out {total_out} minor units over {applied} events, ledger in {} / out {} over {} movements",
            r.wallet_id, r.ledger_in_minor, r.ledger_out_minor, r.ledger_movements
        ),
        _ => format!(
            "wallet {}: no activity row, ledger in {} / out {} over {} movements",
            r.wallet_id, r.ledger_in_minor, r.ledger_out_minor, r.ledger_movements
        ),
    });
    let rows = outbox_audit::inbox_mismatches(
        conn,
        WalletActivityProjection::NAME,
        settled_before,
        LIST_LIMIT,
    )
    .await
    .map_err(db_err(APPLIED_ONCE))?;
    report.add(
        APPLIED_ONCE,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "wallet {}: {} events applied to its activity, {} inbox rows of {} for its events",
                r.wallet_id,
                r.events_applied,
                r.inbox_rows,
                WalletActivityProjection::NAME
            )
        },
    );
    let rows = store_audit::duplicate_notifications(conn, LIST_LIMIT)
        .await
        .map_err(store_err(NOTIFIED_ONCE))?;
    report.add(
        NOTIFIED_ONCE,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "wallet {} has {} `{}` notifications",
                r.wallet_id, r.notifications, r.kind
            )
        },
    );

    Ok(())
}

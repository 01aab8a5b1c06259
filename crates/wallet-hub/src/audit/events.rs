//! The outbox's checks against the ledger: one money event per ledger transaction and the
//! other way round, and the rows parked after too many failed sends.

use chrono::{DateTime, Utc};
use outbox::audit as outbox_audit;
use sqlx::PgConnection;

use super::report::count;
use super::{AuditError, AuditReport, HAS_TRANSACTION, LIST_LIMIT, ONE_EVENT, PARKED, db_err};

/// Ledger transactions written since `outbox_from` against the outbox's money events; the
/// parked rows.
pub(super) async fn check(
    conn: &mut PgConnection,
    outbox_from: DateTime<Utc>,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let rows = outbox_audit::transactions_without_one_event(conn, outbox_from, LIST_LIMIT)
        .await
        .map_err(db_err(ONE_EVENT))?;
    report.add(
        ONE_EVENT,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "ledger transaction {} ({}) has {} money events in the outbox, not 1",
                r.transaction_id, r.kind, r.events
            )
        },
    );
    let rows = outbox_audit::events_without_transaction(conn, outbox_from, LIST_LIMIT)
        .await
        .map_err(db_err(HAS_TRANSACTION))?;
    report.add(HAS_TRANSACTION, &rows, |r| r.total, |r| {
        format!(
            "outbox event {} ({} {}) names ledger transaction {}, which does not exist (with this kind)",
            r.outbox_id,
            r.event_type,
            r.event_id,
            r.names.as_deref().unwrap_or("(none)")
        )
    });
    let status = outbox::ops::status(&mut *conn)
        .await
        .map_err(db_err(PARKED))?;
    report.checked.queued = count(status.pending);
    report.checked.parked = count(status.parked);
    let parked = outbox::ops::parked(&mut *conn, LIST_LIMIT)
        .await
        .map_err(db_err(PARKED))?;
    report.add(
        PARKED,
        &parked,
        |_| status.parked,
        |r| {
            format!(
                "outbox event {} ({} {}, key {}) parked at {} after {} attempts: {}",
                r.id,
                r.event_type,
                r.event_id,
                r.aggregate_id,
                r.parked_at.to_rfc3339(),
                r.attempts,
                r.last_error.as_deref().unwrap_or("-")
            )
        },
    );

    Ok(())
}

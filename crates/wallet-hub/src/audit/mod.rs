//! `wallet-hub audit`: reconciliation as a command. Checks that the ledger, the wallets, the
//! outbox, the Kafka topics and the consumers' effects agree, and reports every disagreement
//! as a [`Finding`]; a failure to look at all (database or Kafka unreachable) is an
//! [`AuditError`] instead.
//!
//! The checks, by name (docs/runbook.md says what each finding means and what to do):
//!
//! - `balance_matches_ledger`: a wallet's balance is the sum of its ledger entries and its
//!   latest running balance, and is not negative;
//! - `running_balance_continues`: each ledger entry's running balance continues the
//!   wallet's previous one;
//! - `transaction_balanced`: a ledger transaction has at least two entries summing to zero;
//! - `held_matches_holds`: a wallet's held amount is the sum of its holds recorded pending
//!   and its `held` ledger account's latest running balance;
//! - `available_not_negative`: what a wallet's pending holds reserve now is at most its
//!   balance;
//! - `capture_within_hold`: a captured hold has exactly one capture transaction, of the
//!   captured amount, at most the hold's;
//! - `wallet_matches_stream`: a wallet's row (owner, name, currency, balance, held, status,
//!   version, creation time) is the fold of its stream, which folds;
//! - `version_is_last_sequence`: a wallet's version is its stream's last sequence;
//! - `transaction_has_one_event`: a ledger transaction (within the outbox's retention) has
//!   exactly one money event of its kind in the outbox;
//! - `event_has_transaction`: a money event names a ledger transaction of its kind;
//! - `parked`: an outbox row parked after too many failed sends;
//! - `event_on_topic`: an outbox event older than the settle time that left the queue is on
//!   its topic (by `ce_id`);
//! - `event_keyed_by_aggregate`: its records are keyed by its aggregate id;
//! - `per_key_order`: per topic and key, first occurrences follow outbox id order;
//! - `activity_matches_ledger`: the activity projection's totals and applied-event count
//!   per wallet are the ledger's;
//! - `activity_applied_once`: a wallet's applied-event count is the number of inbox rows of
//!   the activity consumer for its events;
//! - `notification_sent_once`: at most one notification of each kind per wallet.
//!
//! Every check is one set-based query (in `store::audit` and `outbox::audit`), except
//! `wallet_matches_stream`, which reads rows and streams in batches of wallets and folds
//! them here (the fold is the domain's, not SQL's); the topics are read once and compared
//! inside PostgreSQL.

mod progress;
mod report;
mod streams;

use std::time::Duration;

use chrono::{DateTime, Utc};
use consumers::WalletActivityProjection;
use event_bindings::{BindingError, EventBindings};
use kafka::scan::{ScanError, TopicScan};
use outbox::audit as outbox_audit;
use secrecy::ExposeSecret as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use store::StoreError;
use store::audit as store_audit;

use crate::Settings;
use progress::Progress;
use report::count;
pub use report::{AuditOptions, AuditReport, Counts, Finding};

/// Every check's name, in the order they run.
pub const CHECKS: [&str; 17] = [
    BALANCE,
    RUNNING_BALANCE,
    BALANCED,
    HELD,
    AVAILABLE,
    CAPTURE,
    STREAM,
    VERSION,
    ONE_EVENT,
    HAS_TRANSACTION,
    PARKED,
    ON_TOPIC,
    KEYED,
    ORDER,
    ACTIVITY,
    APPLIED_ONCE,
    NOTIFIED_ONCE,
];
const BALANCE: &str = "balance_matches_ledger";
const RUNNING_BALANCE: &str = "running_balance_continues";
const BALANCED: &str = "transaction_balanced";
const HELD: &str = "held_matches_holds";
const AVAILABLE: &str = "available_not_negative";
const CAPTURE: &str = "capture_within_hold";
const STREAM: &str = "wallet_matches_stream";
const VERSION: &str = "version_is_last_sequence";
const ONE_EVENT: &str = "transaction_has_one_event";
const HAS_TRANSACTION: &str = "event_has_transaction";
const PARKED: &str = "parked";
const ON_TOPIC: &str = "event_on_topic";
const KEYED: &str = "event_keyed_by_aggregate";
const ORDER: &str = "per_key_order";
const ACTIVITY: &str = "activity_matches_ledger";
const APPLIED_ONCE: &str = "activity_applied_once";
const NOTIFIED_ONCE: &str = "notification_sent_once";

/// Findings listed per check; the rest are summed up in one more finding.
const LIST_LIMIT: i64 = 50;
/// Outbox rows are deleted `relay.retention_hours` after they were written; ledger
/// transactions this close to that edge are not matched against the outbox.
const RETENTION_MARGIN: chrono::Duration = chrono::Duration::minutes(10);
/// Kafka records are read from this long before `since` (the producer stamps records when
/// it sends them, after the outbox row was written, on another clock).
const KAFKA_SINCE_MARGIN: chrono::Duration = chrono::Duration::minutes(1);

/// The audit could not run (as opposed to finding something).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid [bindings] configuration")]
    Bindings(#[from] BindingError),
    #[error("cannot connect to PostgreSQL (database.url / DATABASE_URL)")]
    Connect(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL within {0:?}")]
    ConnectTimeout(Duration),
    #[error("audit query failed ({0})")]
    Store(&'static str, #[source] StoreError),
    #[error("audit query failed ({0})")]
    Database(&'static str, #[source] sqlx::Error),
    #[error("cannot read the Kafka topics")]
    Kafka(#[from] ScanError),
}

/// Runs every check once and reports what disagrees.
pub async fn run(settings: &Settings, options: &AuditOptions) -> Result<AuditReport, AuditError> {
    let bindings = EventBindings::new(&settings.bindings)?;
    let mut conn = connect(settings).await?;
    let progress = Progress::new(options.progress);
    let result = audit(&mut conn, settings, &bindings, options, &progress).await;
    progress.finish();
    // Closing also drops the session's temporary tables; a failure here changes nothing.
    let _ = conn.close().await;
    result
}

async fn connect(settings: &Settings) -> Result<PgConnection, AuditError> {
    let options = settings
        .database
        .url
        .expose_secret()
        .parse::<PgConnectOptions>()
        .map_err(AuditError::Connect)?
        // Every audit query compares whole tables, where hash joins are right. Row estimates
        // over payload fields are guesses (a GROUP BY over a JSON field is estimated at a
        // handful of groups), and a nested loop chosen on such a guess is quadratic: 104 s
        // instead of 4 s for one check at 200,000 events (scripts/bench-audit). A larger
        // work_mem keeps those hashes and sorts in memory.
        .options([("enable_nestloop", "off"), ("work_mem", "64MB")]);
    let timeout = Duration::from_millis(settings.database.acquire_timeout_ms);
    tokio::time::timeout(timeout, PgConnection::connect_with(&options))
        .await
        .map_err(|_| AuditError::ConnectTimeout(timeout))?
        .map_err(AuditError::Connect)
}

async fn audit(
    conn: &mut PgConnection,
    settings: &Settings,
    bindings: &EventBindings,
    options: &AuditOptions,
    progress: &Progress,
) -> Result<AuditReport, AuditError> {
    let mut report = AuditReport::default();
    let now = store_audit::database_now(conn)
        .await
        .map_err(|e| AuditError::Store("now", e))?;
    // Windows are clamped to 1970 onwards: far-off settings must not overflow the
    // arithmetic or leave PostgreSQL's timestamp range.
    let floor = DateTime::<Utc>::UNIX_EPOCH;
    let before = |span: Option<chrono::Duration>| {
        span.and_then(|span| now.checked_sub_signed(span))
            .map_or(floor, |t| t.max(floor))
    };
    let settled_before = before(
        i64::try_from(options.settle_seconds)
            .ok()
            .and_then(chrono::Duration::try_seconds),
    );
    let retention = chrono::Duration::try_hours(i64::from(settings.relay.retention_hours))
        .and_then(|span| span.checked_sub(&RETENTION_MARGIN));
    let outbox_from = before(retention).max(options.since.unwrap_or(floor));

    progress.step("ledger and balances");
    let store_err = |check| move |e| AuditError::Store(check, e);
    let db_err = |check| move |e| AuditError::Database(check, e);
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
    let rows = store_audit::unbalanced_transactions(conn, options.since, LIST_LIMIT)
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

    check_holds(conn, &mut report).await?;

    progress.step("wallets against their streams");
    check_streams(conn, &mut report).await?;

    progress.step("outbox against the ledger");
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

    if options.kafka {
        check_topics(
            conn,
            settings,
            bindings,
            options,
            settled_before,
            progress,
            &mut report,
        )
        .await?;
    }

    progress.step("consumers' effects");
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

    let counts = store_audit::counts(conn, options.since)
        .await
        .map_err(store_err("counts"))?;
    report.checked.wallets = count(counts.wallets);
    report.checked.ledger_transactions = count(counts.ledger_transactions);
    report.checked.inbox_rows = count(counts.inbox_rows);
    report.checked.activity_wallets = count(counts.activity_wallets);
    report.checked.notifications = count(counts.notifications);
    report.checked.outbox_events = count(
        outbox_audit::count_events(conn, options.since)
            .await
            .map_err(db_err("counts"))?,
    );
    Ok(report)
}

/// Every settled, published event is on its topic, keyed by its aggregate, in per-key order.
async fn check_topics(
    conn: &mut PgConnection,
    settings: &Settings,
    bindings: &EventBindings,
    options: &AuditOptions,
    settled_before: DateTime<Utc>,
    progress: &Progress,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let db_err = |check| move |e| AuditError::Database(check, e);
    progress.step("published events");
    // Before the end offsets are taken: see `snapshot_published`.
    let published = outbox_audit::snapshot_published(conn, bindings, settled_before, options.since)
        .await
        .map_err(db_err(ON_TOPIC))?;
    report.checked.published_events = count(published);
    // The analytics job's topics hold no outbox event.
    let topics = bindings.outbox_topics();
    let mut scan = TopicScan::start(
        &settings.kafka,
        &topics,
        options.since.map(|since| {
            since
                .checked_sub_signed(KAFKA_SINCE_MARGIN)
                .unwrap_or(since)
        }),
    )
    .await?;
    progress.records(scan.total);
    let mut read = 0_u64;
    while let Some(batch) = scan.next_batch().await {
        let batch = batch?;
        outbox_audit::store_records(conn, &batch)
            .await
            .map_err(db_err(ON_TOPIC))?;
        read += u64::try_from(batch.len()).unwrap_or(u64::MAX);
        progress.read(read);
    }
    progress.step("topics against the outbox");
    outbox_audit::analyze_snapshot(conn)
        .await
        .map_err(db_err(ON_TOPIC))?;
    let counts = outbox_audit::record_counts(conn)
        .await
        .map_err(db_err(ON_TOPIC))?;
    report.checked.kafka_records = count(counts.records);
    report.checked.kafka_duplicates = count(counts.duplicates);
    let rows = outbox_audit::missing_from_topics(conn, LIST_LIMIT)
        .await
        .map_err(db_err(ON_TOPIC))?;
    report.add(
        ON_TOPIC,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "outbox event {} ({} {}, key {}) is not on topic {}",
                r.outbox_id, r.event_type, r.event_id, r.aggregate_id, r.topic
            )
        },
    );
    let rows = outbox_audit::wrongly_keyed(conn, LIST_LIMIT)
        .await
        .map_err(db_err(KEYED))?;
    report.add(
        KEYED,
        &rows,
        |r| r.total,
        |r| {
            format!(
                "outbox event {} ({} {}) is at {}/{}@{} keyed {}, not by its aggregate {}",
                r.outbox_id,
                r.event_type,
                r.event_id,
                r.topic,
                r.partition.unwrap_or(-1),
                r.offset.unwrap_or(-1),
                r.key.as_deref().unwrap_or("(no key)"),
                r.aggregate_id
            )
        },
    );
    let rows = outbox_audit::order_breaks(conn, LIST_LIMIT)
        .await
        .map_err(db_err(ORDER))?;
    report.add(ORDER, &rows, |r| r.total, |r| {
        format!(
            "key {} on {}: outbox event {} ({}) first appears at {}@{}, but the earlier event {} at {}@{}",
            r.aggregate_id,
            r.topic,
            r.outbox_id,
            r.event_type,
            r.partition,
            r.offset,
            r.previous_outbox_id,
            r.previous_partition,
            r.previous_offset
        )
    });
    Ok(())
}

/// The streams' checks: each row is its stream's fold, each version its last sequence.
async fn check_streams(
    conn: &mut PgConnection,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let store_err = |check| move |e| AuditError::Store(check, e);
    let limit = usize::try_from(LIST_LIMIT).unwrap_or(usize::MAX);
    let (rows, total) = streams::stream_mismatches(conn, limit)
        .await
        .map_err(store_err(STREAM))?;
    report.add(
        STREAM,
        &rows,
        |_| total,
        |r| format!("wallet {}: {}", r.wallet_id, r.detail),
    );
    let rows = store_audit::version_mismatches(conn, LIST_LIMIT)
        .await
        .map_err(store_err(VERSION))?;
    report.add(
        VERSION,
        &rows,
        |r| r.total,
        |r| match r.last_sequence {
            Some(last) => format!(
                "wallet {}: version {}, its stream ends at sequence {last}",
                r.wallet_id, r.version
            ),
            None => format!(
                "wallet {}: version {}, it has no stream",
                r.wallet_id, r.version
            ),
        },
    );
    Ok(())
}

/// The holds' checks: held amounts, what is available, captures.
async fn check_holds(conn: &mut PgConnection, report: &mut AuditReport) -> Result<(), AuditError> {
    let store_err = |check| move |e| AuditError::Store(check, e);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbook_explains_every_check() {
        let runbook = include_str!("../../../../docs/runbook.md");
        for check in CHECKS {
            assert!(
                runbook.contains(&format!("`{check}`")),
                "docs/runbook.md does not explain `{check}`"
            );
        }
    }
}

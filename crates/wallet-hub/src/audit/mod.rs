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
//!
//! **Layout**, one source of truth a module; [`run`] here takes them in turn:
//! - `ledger`: balances, running balances, balanced transactions;
//! - `holds`: held amounts, what is available, captures;
//! - `streams`: each wallet's row against the fold of its stream;
//! - `events`: the outbox's money events against the ledger, parked rows;
//! - `topics`: the published events against the Kafka topics;
//! - `effects`: the consumers' effects against the ledger and the inbox;
//! - `report`: the options, findings and counts; `progress`: the progress bar.

mod effects;
mod events;
mod holds;
mod ledger;
mod progress;
mod report;
mod streams;
mod topics;

use std::time::Duration;

use chrono::{DateTime, Utc};
use event_bindings::{BindingError, EventBindings};
use kafka::scan::ScanError;
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
    ledger::check(conn, options.since, &mut report).await?;
    holds::check(conn, &mut report).await?;
    progress.step("wallets against their streams");
    streams::check(conn, &mut report).await?;
    progress.step("outbox against the ledger");
    events::check(conn, outbox_from, &mut report).await?;
    if options.kafka {
        topics::check(
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
    effects::check(conn, settled_before, &mut report).await?;
    count_checked(conn, options.since, &mut report).await?;
    Ok(report)
}

/// How much the audit looked at.
async fn count_checked(
    conn: &mut PgConnection,
    since: Option<DateTime<Utc>>,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let counts = store_audit::counts(conn, since)
        .await
        .map_err(store_err("counts"))?;
    report.checked.wallets = count(counts.wallets);
    report.checked.ledger_transactions = count(counts.ledger_transactions);
    report.checked.inbox_rows = count(counts.inbox_rows);
    report.checked.activity_wallets = count(counts.activity_wallets);
    report.checked.notifications = count(counts.notifications);
    report.checked.outbox_events = count(
        outbox_audit::count_events(conn, since)
            .await
            .map_err(db_err("counts"))?,
    );
    Ok(())
}

/// Maps a failed store query to the check it served.
fn store_err(check: &'static str) -> impl Fn(StoreError) -> AuditError {
    move |e| AuditError::Store(check, e)
}

/// Maps a failed query to the check it served.
fn db_err(check: &'static str) -> impl Fn(sqlx::Error) -> AuditError {
    move |e| AuditError::Database(check, e)
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

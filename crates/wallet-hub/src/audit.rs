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
//! Every check is one set-based query (in `store::audit` and `outbox::audit`); the topics
//! are read once and compared inside PostgreSQL.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use consumers::WalletActivityProjection;
use event_bindings::{BindingError, EventBindings};
use indicatif::{ProgressBar, ProgressStyle};
use kafka::scan::{ScanError, TopicScan};
use outbox::audit as outbox_audit;
use secrecy::ExposeSecret as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use store::StoreError;
use store::audit as store_audit;

use crate::Settings;

/// Every check's name, in the order they run.
pub const CHECKS: [&str; 12] = [
    BALANCE,
    RUNNING_BALANCE,
    BALANCED,
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

/// What to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    /// Events younger than this may still be on their way (queued, or not yet applied by
    /// the consumers); they are not expected on Kafka or in the projection yet.
    pub settle_seconds: u64,
    /// Only ledger transactions and outbox events written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Read the topics back (off: database checks only).
    pub kafka: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            settle_seconds: 60,
            since: None,
            kafka: true,
            progress: false,
        }
    }
}

/// One disagreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which check found it, one of [`CHECKS`].
    pub check: &'static str,
    pub detail: String,
}

/// What the audit looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub wallets: u64,
    /// Ledger transactions written at or after `since` (all without it).
    pub ledger_transactions: u64,
    /// Outbox rows written at or after `since` (all that retention kept without it).
    pub outbox_events: u64,
    /// Outbox events that had left the queue and settled: expected on Kafka.
    pub published_events: u64,
    /// Still queued for the relay (including parked ones).
    pub queued: u64,
    pub parked: u64,
    pub kafka_records: u64,
    /// Records of an event already read earlier on its topic (at-least-once re-sends):
    /// counted, not findings.
    pub kafka_duplicates: u64,
    pub inbox_rows: u64,
    pub activity_wallets: u64,
    pub notifications: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub findings: Vec<Finding>,
    pub checked: Counts,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings of one check.
    pub fn of(&self, check: &str) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.check == check).collect()
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            writeln!(f, "audit: clean")?;
        } else {
            writeln!(f, "audit: {} finding(s)", self.findings.len())?;
            for finding in &self.findings {
                writeln!(f, "[{}] {}", finding.check, finding.detail)?;
            }
        }
        let c = &self.checked;
        write!(
            f,
            "checked: {} wallets, {} ledger transactions, {} outbox events ({} published and \
             settled, {} queued, {} parked), {} Kafka records ({} duplicates), {} inbox rows, \
             {} activity rows, {} notifications",
            c.wallets,
            c.ledger_transactions,
            c.outbox_events,
            c.published_events,
            c.queued,
            c.parked,
            c.kafka_records,
            c.kafka_duplicates,
            c.inbox_rows,
            c.activity_wallets,
            c.notifications,
        )
    }
}

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
    let options: PgConnectOptions = settings
        .database
        .url
        .expose_secret()
        .parse()
        .map_err(AuditError::Connect)?;
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
    let settle =
        chrono::Duration::seconds(i64::try_from(options.settle_seconds).unwrap_or(i64::MAX));
    let settled_before = now
        .checked_sub_signed(settle)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let retention = chrono::Duration::hours(i64::from(settings.relay.retention_hours));
    let outbox_from =
        (now - retention + RETENTION_MARGIN).max(options.since.unwrap_or(DateTime::<Utc>::MIN_UTC));

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
    let topics = bindings.topics();
    let mut scan = TopicScan::start(
        &settings.kafka,
        &topics,
        options.since.map(|since| since - KAFKA_SINCE_MARGIN),
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

impl AuditReport {
    /// Adds one finding per row, and one more that counts the rows not listed.
    fn add<R>(
        &mut self,
        check: &'static str,
        rows: &[R],
        total: impl Fn(&R) -> i64,
        detail: impl Fn(&R) -> String,
    ) {
        for row in rows {
            self.findings.push(Finding {
                check,
                detail: detail(row),
            });
        }
        let listed = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let all = rows.first().map_or(0, total);
        if all > listed {
            self.findings.push(Finding {
                check,
                detail: format!("... and {} more like these", all - listed),
            });
        }
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The progress bar on stderr, or nothing.
struct Progress(Option<ProgressBar>);

impl Progress {
    fn new(enabled: bool) -> Self {
        Self(enabled.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }))
    }

    /// A step without a known length.
    fn step(&self, what: &str) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("checking {what}"));
        }
    }

    /// Reading `total` Kafka records.
    fn records(&self, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} records {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message("reading topics");
            bar.set_length(total);
            bar.set_position(0);
        }
    }

    fn read(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbook_explains_every_check() {
        let runbook = include_str!("../../../docs/runbook.md");
        for check in CHECKS {
            assert!(
                runbook.contains(&format!("`{check}`")),
                "docs/runbook.md does not explain `{check}`"
            );
        }
    }

    #[test]
    fn a_report_lists_its_findings_and_what_it_checked() {
        let mut report = AuditReport::default();
        assert!(report.is_clean());
        assert!(
            report
                .to_string()
                .starts_with("audit: clean\nchecked: 0 wallets")
        );
        report.add(PARKED, &[1_i64, 2], |_| 5, |n| format!("row {n}"));
        assert!(!report.is_clean());
        let text = report.to_string();
        assert!(
            text.starts_with("audit: 3 finding(s)\n[parked] row 1\n[parked] row 2\n"),
            "{text}"
        );
        assert!(
            text.contains("[parked] ... and 3 more like these"),
            "{text}"
        );
    }
}

//! What an audit is asked to do and what it answers: [`AuditOptions`], [`AuditReport`] with
//! its [`Finding`]s and [`Counts`], and the report's text.

use std::fmt;

use chrono::{DateTime, Utc};

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

impl AuditReport {
    /// Adds one finding per row, and one more that counts the rows not listed.
    pub(super) fn add<R>(
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

pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_lists_its_findings_and_what_it_checked() {
        let mut report = AuditReport::default();
        assert!(report.is_clean());
        assert!(
            report
                .to_string()
                .starts_with("audit: clean\nchecked: 0 wallets")
        );
        report.add("parked", &[1_i64, 2], |_| 5, |n| format!("row {n}"));
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

//! What a rebuild did: per wallet, what it fixed or why it could not, and the summary.

use std::collections::BTreeSet;
use std::fmt;

use domain::WalletId;
use store::activity::Activity;

use super::plan::Field;

/// What one wallet's rebuild found and changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Row and activity are what the stream says.
    Unchanged,
    /// Something differed and was rewritten from the stream.
    Fixed(Fix),
    /// Nothing of the wallet changed: its stream does not fold, or the database refused
    /// what the fold says (a deferred check at commit: the ledger disagrees).
    Failed(String),
    /// The wallet is gone (it was listed, then not found).
    Missing,
}

/// What differed in one wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// The row's fields that were not the fold's (empty: the row was right).
    pub fields: BTreeSet<Field>,
    /// The activity before and after, when it differed.
    pub activity: Option<(Option<Activity>, Option<Activity>)>,
}

/// One wallet's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletLine {
    pub wallet_id: WalletId,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Wallets that were fixed or failed, in the order they were checked.
    pub lines: Vec<WalletLine>,
    pub wallets_checked: u64,
    pub rows_fixed: u64,
    pub activity_fixed: u64,
    pub failed: u64,
}

impl RebuildReport {
    pub(super) fn record(&mut self, wallet_id: WalletId, outcome: Outcome) {
        self.wallets_checked += 1;
        match &outcome {
            Outcome::Unchanged | Outcome::Missing => return,
            Outcome::Fixed(fix) => {
                self.rows_fixed += u64::from(!fix.fields.is_empty());
                self.activity_fixed += u64::from(fix.activity.is_some());
            }
            Outcome::Failed(_) => self.failed += 1,
        }
        self.lines.push(WalletLine { wallet_id, outcome });
    }

    /// Whether every stream folded and every fix committed.
    pub fn is_complete(&self) -> bool {
        self.failed == 0
    }
}

fn totals(activity: Option<&Activity>) -> String {
    activity.map_or_else(
        || "none".to_owned(),
        |a| {
            format!(
                "in {} / out {} over {} events, last {}",
                a.total_in_minor,
                a.total_out_minor,
                a.events_applied,
                a.last_activity_at.to_rfc3339()
            )
        },
    )
}

impl fmt::Display for WalletLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.wallet_id;
        match &self.outcome {
            Outcome::Unchanged | Outcome::Missing => Ok(()),
            Outcome::Failed(why) => write!(f, "[error] wallet {id}: unchanged, {why}"),
            Outcome::Fixed(fix) => {
                if !fix.fields.is_empty() {
                    let fields: Vec<&str> = fix.fields.iter().map(|f| f.as_str()).collect();
                    write!(
                        f,
                        "[fixed] wallet {id}: row differed from its stream in {}",
                        fields.join(", ")
                    )?;
                }
                if let Some((before, after)) = &fix.activity {
                    if !fix.fields.is_empty() {
                        writeln!(f)?;
                    }
                    write!(
                        f,
                        "[fixed] wallet {id}: activity totals were {}, its stream says {}",
                        totals(before.as_ref()),
                        totals(after.as_ref())
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for RebuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        write!(
            f,
            "rebuild: {} wallets checked, {} rows fixed, {} activity rows fixed, {} failed",
            self.wallets_checked, self.rows_fixed, self.activity_fixed, self.failed
        )
    }
}

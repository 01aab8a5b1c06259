//! `wallet-hub rebuild`: recomputes wallet rows and the activity read model from the
//! wallets' streams (docs/event-sourcing.md: the stream is the truth,
//! the row a snapshot of its fold), and rewrites what differs.
//!
//! Safe beside live traffic: each wallet is handled in its own transaction that first locks
//! its row (so a concurrent write waits for the rebuild of that wallet, and the rebuild
//! for the write), then reads its stream, folds it, and rewrites the row if it is not the
//! fold. The activity row is locked too and rebuilt from the events of the stream that the
//! activity consumer has applied (its inbox says which): an event still on its way to the
//! consumer is left for it, since counting it here as well would add it twice.
//!
//! A stream that does not fold, or a fold that the database refuses at commit (its
//! deferred checks against the ledger), is reported for that wallet, and nothing of the
//! wallet changes.
//!
//! - [`plan`]: the pure decisions (which fields differ, what the activity adds up to);
//! - [`report`]: what was fixed, what failed, the summary.

pub mod plan;
mod report;

use std::collections::BTreeSet;

use consumers::WalletActivityProjection;
use domain::{Wallet, WalletId};
use sqlx::{PgConnection, PgPool};
use store::StoreError;
use store::{activity, streams, wallets};
use uuid::Uuid;

pub use report::{Fix, Outcome, RebuildReport, WalletLine};

/// Which wallets to rebuild, and how many per batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildOptions {
    /// One wallet, or every wallet (`None`).
    pub wallet: Option<WalletId>,
    /// Wallet ids listed per query when rebuilding all.
    pub batch: i64,
}

/// The rebuild could not run on (as opposed to a wallet that could not be rebuilt).
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("rebuild query failed ({0})")]
    Store(&'static str, #[source] StoreError),
    #[error("cannot begin or end wallet {0}'s transaction")]
    Transaction(WalletId, #[source] sqlx::Error),
}

/// Rebuilds the chosen wallets, one transaction each, in batches by wallet id;
/// `progress` is told how many wallets were checked after each batch.
pub async fn run(
    pool: &PgPool,
    options: &RebuildOptions,
    mut progress: impl FnMut(u64),
) -> Result<RebuildReport, RebuildError> {
    let mut report = RebuildReport::default();
    if let Some(wallet) = options.wallet {
        // A wallet named on the command line that does not exist is an operator's mistake
        // worth an exit code; one listed by --all and gone since is not.
        let outcome = match rebuild_wallet(pool, wallet).await? {
            Outcome::Missing => Outcome::Failed("no such wallet".to_owned()),
            outcome => outcome,
        };
        report.record(wallet, outcome);
        progress(report.wallets_checked);
        return Ok(report);
    }
    let mut after = Uuid::nil();
    loop {
        let ids = streams::wallet_ids_after(pool, after, options.batch)
            .await
            .map_err(|e| RebuildError::Store("list wallets", e))?;
        let Some(last) = ids.last() else {
            return Ok(report);
        };
        after = last.as_uuid();
        for id in ids {
            report.record(id, rebuild_wallet(pool, id).await?);
        }
        progress(report.wallets_checked);
    }
}

/// One wallet in its own transaction; what the wallet itself is to blame for (a stream
/// that does not fold, a stored row or event that does not read, a fold the database
/// refuses) is its outcome, anything else stops the rebuild.
pub async fn rebuild_wallet(pool: &PgPool, id: WalletId) -> Result<Outcome, RebuildError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| RebuildError::Transaction(id, e))?;
    let outcome = match decide_and_write(&mut tx, id).await {
        Ok(outcome) => outcome,
        Err(error) => return wallet_failure(error),
    };
    match outcome {
        Outcome::Fixed(_) => match tx.commit().await {
            Ok(()) => Ok(outcome),
            Err(error) => wallet_failure(StoreError::from(error)),
        },
        // Nothing written (a failed fold changes nothing): end the transaction unchanged.
        Outcome::Unchanged | Outcome::Missing | Outcome::Failed(_) => {
            tx.rollback()
                .await
                .map_err(|e| RebuildError::Transaction(id, e))?;
            Ok(outcome)
        }
    }
}

/// A row or event that does not read, or a constraint (checked at commit) that refuses
/// the fold, is the wallet's failure; anything else is the database's.
fn wallet_failure(error: StoreError) -> Result<Outcome, RebuildError> {
    match error {
        StoreError::Corrupt { .. } => Ok(Outcome::Failed(error_chain(&error))),
        error if error.constraint().is_some() => Ok(Outcome::Failed(error_chain(&error))),
        error => Err(RebuildError::Store("rebuild a wallet", error)),
    }
}

/// An error with its causes, on one line (reports print it, not logs).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Locks the wallet, folds its stream, and writes back the row and the activity where
/// they are not what the stream says.
async fn decide_and_write(conn: &mut PgConnection, id: WalletId) -> Result<Outcome, StoreError> {
    if !wallets::lock(conn, id).await? {
        return Ok(Outcome::Missing);
    }
    let stream = streams::read_all(conn, id).await?;
    let folded = match domain::fold(&stream) {
        Ok(folded) => folded,
        Err(error) => {
            return Ok(Outcome::Failed(format!(
                "its stream does not fold: {error}"
            )));
        }
    };
    // A row that no longer reads as a wallet differs in everything: rewrite it whole.
    let row = match wallets::find(conn, id).await {
        Ok(row) => row,
        Err(StoreError::Corrupt { .. }) => None,
        Err(error) => return Err(error),
    };
    let fields = plan::differences(row.as_ref(), &folded);
    if !fields.is_empty() {
        wallets::rewrite(conn, &folded).await?;
    }
    let activity = rebuild_activity(conn, &folded, &stream).await?;
    if fields.is_empty() && activity.is_none() {
        return Ok(Outcome::Unchanged);
    }
    Ok(Outcome::Fixed(Fix { fields, activity }))
}

/// Rewrites the wallet's activity if it is not what the applied events of its stream add
/// up to; the activity before and after when it did.
///
/// The row is locked before the inbox is read, so the consumer's next addition waits for
/// this transaction and what it reads of the inbox is what the row should count. Without
/// a row there is nothing to lock: the fold's row is then only inserted if the consumer
/// has not written one meanwhile (a later rebuild judges that one).
async fn rebuild_activity(
    conn: &mut PgConnection,
    wallet: &Wallet,
    stream: &[domain::Appended],
) -> Result<Option<(Option<activity::Activity>, Option<activity::Activity>)>, StoreError> {
    let current = activity::lock(conn, wallet.id()).await?;
    let applied: BTreeSet<i64> = activity::applied_sequences(
        conn,
        wallet.id(),
        WalletActivityProjection::NAME,
        event_bindings::SOURCE,
    )
    .await?
    .into_iter()
    .collect();
    let expected = plan::activity(wallet, stream, &applied).map_err(|e| StoreError::Corrupt {
        entity: "wallet stream",
        id: wallet.id().to_string(),
        source: Box::new(e),
    })?;
    let written = match (&current, &expected) {
        (current, expected) if current == expected => false,
        // No row was there to lock: one the consumer has written since is its own count.
        (None, Some(expected)) => activity::insert_absent(conn, expected).await?,
        (Some(_), Some(expected)) => {
            activity::replace(conn, expected).await?;
            true
        }
        (Some(_), None) => {
            activity::remove(conn, wallet.id()).await?;
            true
        }
        (None, None) => false,
    };
    Ok(written.then_some((current, expected)))
}

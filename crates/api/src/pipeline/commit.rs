//! The COMMIT rule: an error from COMMIT itself (the connection lost, the server shut
//! down, the session killed while it waited for a synchronous standby) says nothing about
//! whether the transaction committed. Running it again could apply it twice; answering
//! 503 could hide a change that happened. So the transaction's id is read before COMMIT
//! (with the wallet locks, [`store::wallets::Locked`], or else
//! [`store::transactions::current`]) and, when COMMIT fails, a fresh session (not one of
//! the pool's, which may be stuck on the same trouble) asks the server what became of it,
//! until `api.commit_outcome_wait_ms` has passed:
//! - committed: every request of the batch gets the answer decided for it;
//! - aborted: nothing happened; the batch may run again;
//! - still in progress, or no answer in time: the outcome is unknown, answered 503
//!   `outcome-unknown`, and the batch is never run again.

use std::time::{Duration, Instant};

use sqlx::{ConnectOptions as _, PgPool, Postgres, Transaction};
use store::StoreError;
use store::transactions::{self, Status, TransactionXid};
use telemetry::metrics as telemetry_metrics;

/// Fault point (tests): the COMMIT took effect but its answer is lost, as when the
/// connection drops right after the server committed.
pub const COMMIT_LOST: &str = "write-commit-lost";
/// Fault point (tests): the COMMIT fails and the transaction rolls back, as when the
/// server goes away before it commits.
pub const COMMIT_FAILED: &str = "write-commit-failed";

/// How often the outcome is asked while the transaction is still in progress.
const ASK_EVERY: Duration = Duration::from_millis(100);

/// What became of a COMMIT.
#[derive(Debug)]
pub(super) enum Commit {
    Committed,
    /// Rolled back: nothing was written, the work may run again.
    Aborted(sqlx::Error),
    /// Not known within the wait: never run the work again.
    Unknown,
}

/// Commits `tx`, whose id is `xid`; when COMMIT fails, resolves its outcome (see the
/// module docs).
pub(super) async fn commit(
    tx: Transaction<'static, Postgres>,
    xid: &TransactionXid,
    pool: &PgPool,
    wait: Duration,
) -> Commit {
    let error = match send_commit(tx).await {
        Ok(()) => return Commit::Committed,
        Err(error) => error,
    };
    tracing::warn!(
        error = &error as &dyn std::error::Error,
        %xid,
        "COMMIT failed; asking the database what became of the transaction"
    );
    let outcome = resolve(pool, xid, wait).await;
    let label = match &outcome {
        Status::Committed => "committed",
        Status::Aborted => "aborted",
        Status::InProgress | Status::Forgotten => "unknown",
    };
    metrics::counter!(
        telemetry_metrics::API_WRITE_COMMIT_OUTCOMES_RESOLVED_TOTAL,
        "outcome" => label
    )
    .increment(1);
    match outcome {
        Status::Committed => {
            tracing::info!(%xid, "the transaction whose COMMIT failed had committed");
            Commit::Committed
        }
        Status::Aborted => Commit::Aborted(error),
        Status::InProgress | Status::Forgotten => {
            tracing::error!(%xid, ?wait, "the outcome of a COMMIT is unknown; answering outcome-unknown");
            Commit::Unknown
        }
    }
}

/// COMMIT, with the tests' fault points around it.
async fn send_commit(tx: Transaction<'static, Postgres>) -> Result<(), sqlx::Error> {
    // Dropping `tx` rolls it back.
    fail::fail_point!(COMMIT_FAILED, |_| Err(lost("before it committed")));
    tx.commit().await?;
    fail::fail_point!(COMMIT_LOST, |_| Err(lost("after it committed")));
    Ok(())
}

#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
fn lost(when: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        format!("fault point: the connection was lost {when}"),
    ))
}

/// Asks for `xid`'s status until it is committed or aborted, or `wait` has passed.
async fn resolve(pool: &PgPool, xid: &TransactionXid, wait: Duration) -> Status {
    let deadline = Instant::now() + wait;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, ask(pool, xid)).await {
            Ok(Ok(status @ (Status::Committed | Status::Aborted | Status::Forgotten))) => {
                return status;
            }
            Ok(Ok(Status::InProgress)) => {}
            Ok(Err(error)) => tracing::debug!(
                error = &error as &dyn std::error::Error,
                "cannot ask for a transaction's outcome yet"
            ),
            Err(_elapsed) => return Status::InProgress,
        }
        if Instant::now() + ASK_EVERY >= deadline {
            return Status::InProgress;
        }
        tokio::time::sleep(ASK_EVERY).await;
    }
}

/// One question on a fresh session.
async fn ask(pool: &PgPool, xid: &TransactionXid) -> Result<Status, StoreError> {
    let mut conn = pool.connect_options().connect().await?;
    let status = transactions::status(&mut conn, xid).await;
    // Best effort: the server closes an abandoned session too.
    let _ = sqlx::Connection::close(conn).await;
    status
}

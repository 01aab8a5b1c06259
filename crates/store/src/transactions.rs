//! What became of a transaction whose COMMIT got no answer: its id is read before the
//! COMMIT ([`current`]), and a fresh session asks the server for its status ([`status`]).

use sqlx::PgConnection;

use crate::error::StoreError;

/// A transaction's id (`xid8`, as text: it never wraps around).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionXid(String);

impl TransactionXid {
    /// `xid` as `pg_current_xact_id()::text` reads it.
    pub(crate) fn new(xid: String) -> Self {
        Self(xid)
    }
}

impl std::fmt::Display for TransactionXid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the server says of a transaction (`pg_xact_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Committed,
    Aborted,
    /// Still running, or committed and not yet visible (a commit waiting for a
    /// synchronous standby stays in progress until its session ends).
    InProgress,
    /// Too old for the server to remember (its commit log was truncated).
    Forgotten,
}

/// The id of the caller's transaction (assigning one if it has none yet). A transaction
/// that locks wallets has it already ([`crate::wallets::Locked`]).
pub async fn current(conn: &mut PgConnection) -> Result<TransactionXid, StoreError> {
    let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(conn)
        .await?;
    Ok(TransactionXid::new(xid))
}

/// The status of the transaction `xid`, asked on another session than its own.
pub async fn status(conn: &mut PgConnection, xid: &TransactionXid) -> Result<Status, StoreError> {
    let status: Option<String> = sqlx::query_scalar("SELECT pg_xact_status($1::text::xid8)")
        .bind(&xid.0)
        .fetch_one(conn)
        .await?;
    Ok(match status.as_deref() {
        Some("committed") => Status::Committed,
        Some("aborted") => Status::Aborted,
        Some("in progress") => Status::InProgress,
        _ => Status::Forgotten,
    })
}

//! Wallet Hub's PostgreSQL persistence: every SQL statement about wallets, users, the
//! ledger, idempotency keys, the consumer inbox and the read models (notifications,
//! wallet activity). The outbox is not here: the `outbox` crate owns its table.
//!
//! Functions are plain `async fn`s over a `&mut PgConnection`: the caller decides the
//! transaction (a write's transaction, a consumer's effect) or takes a pooled connection
//! for a read. They take and return domain types and typed ids; rows that break a domain
//! rule are reported, never patched up. This crate may touch the tables above and nothing
//! else; it knows nothing about HTTP or Kafka.
//!
//! - [`audit`]: reconciliation queries for `wallet-hub audit` (balances against the
//!   ledger, balanced transactions, the activity projection against the ledger, duplicate
//!   notifications).
//! - [`error`]: [`StoreError`], where database failures are classified, once.
//! - [`wallets`], [`users`]: the aggregates' stored state (a wallet's row is the
//!   snapshot of its stream).
//! - [`streams`]: each wallet's event stream, the truth of the wallet; [`history`]: the
//!   streams of wallets older than streams, derived from their ledger and status history.
//! - [`ledger`]: double-entry postings and a wallet's history.
//! - [`holds`]: each hold's state (what it reserves is in the ledger).
//! - [`idempotency`]: the stored answers to `Idempotency-Key`s.
//! - [`transactions`]: what became of a transaction whose COMMIT got no answer.
//! - [`inbox`]: which events a consumer has applied.
//! - [`notifications`], [`activity`]: the read models the consumers feed and the API
//!   serves.
//! - [`analytics`]: volume per minute and velocity alerts, as the analytics job sends them.

pub mod activity;
pub mod analytics;
pub mod audit;
pub mod error;
pub mod history;
pub mod holds;
pub mod idempotency;
pub mod inbox;
pub mod ledger;
pub mod notifications;
pub mod streams;
pub mod transactions;
pub mod users;
pub mod wallets;

pub use error::StoreError;

use sqlx::PgConnection;

/// Answers when the database does (the readiness check).
pub async fn ping(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(conn).await?;
    Ok(())
}
